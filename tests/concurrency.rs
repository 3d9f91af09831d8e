//! Runs that contend for the lock, and runs killed at random moments, on
//! the real kernel, each test in its own IPC namespace.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let seed = t.as_nanos() as u64 | 1;
        eprintln!("random seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn four_concurrent_runs_remove_each_cookie_exactly_once() {
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    let cookies: BTreeSet<i32> = fixture(&["cookie", "--count", "5000"])
        .into_iter()
        .collect();
    assert_eq!(cookies.len(), 5000);
    let unrelated = sorted(fixture(&["unrelated", "--count", "200"]));

    // Hold the lock until all four have opened the lock file and wait for
    // it, so that they really contend.
    let mut gate = Proc::fixture(&["fcntl-hold", lock.to_str().unwrap()], true);
    let runs: Vec<Bg> = (0..4)
        .map(|i| {
            let mut c = sb.semprep();
            c.args(["run", "--min-age", "0", "--json"]);
            Bg::spawn(c, &sb.dir, &format!("run{i}"))
        })
        .collect();
    for r in &runs {
        wait_until("every run to open the lock file", || {
            has_open(r.pid(), &lock)
        });
    }
    gate.kill();

    let mut removed = Vec::new();
    let mut removers = 0;
    for (i, r) in runs.into_iter().enumerate() {
        let (status, out, err) = r.finish();
        assert_eq!(status.code(), Some(0), "run {i}: {err}");
        assert_eq!(complaints(&err), Vec::<&str>::new(), "run {i}");
        let doc: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("run {i}: not JSON ({e}): {out:.300}"));
        assert_eq!(doc["exit_code"], 0, "run {i}");
        // A run that raced another would find sets gone under it.
        assert_eq!(doc["result"]["skipped"], serde_json::json!([]), "run {i}");
        let ids: Vec<i32> = doc["result"]["removed"]
            .as_array()
            .unwrap_or_else(|| panic!("run {i}: no result.removed"))
            .iter()
            .map(|v| v.as_i64().unwrap() as i32)
            .collect();
        removers += usize::from(!ids.is_empty());
        removed.extend(ids);
    }
    let unique: BTreeSet<i32> = removed.iter().copied().collect();
    assert_eq!(removed.len(), unique.len(), "a cookie was removed twice");
    assert!(unique == cookies, "removed sets differ from the cookies");
    // Serialised by the lock: the first holder removes everything, the
    // others find nothing left to do.
    assert_eq!(removers, 1, "the runs interleaved");
    assert_eq!(semids(), unrelated);
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_leaves_no_lock() {
    const TARGET: usize = 20_000;
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    let (busy, _busy_procs) = busy_cookies();
    let mut keep = fixture(&["unrelated", "--count", "200"]);
    keep.extend(&busy);
    let keep = sorted(keep);
    let residual = || semids().len() - keep.len();
    let refill = || {
        let n = TARGET - residual();
        if n > 0 {
            fixture(&["cookie", "--count", &n.to_string()]);
        }
        assert_eq!(residual(), TARGET);
    };
    let check_kept = |when: &str| {
        let now = semids();
        let lost: Vec<_> = keep.iter().filter(|id| !now.contains(id)).collect();
        assert!(lost.is_empty(), "{when}: lost {lost:?}");
    };

    // How long a whole clean takes here: the kills fall within that span.
    refill();
    let t = Instant::now();
    let o = sb.run(&["clean", "--min-age", "0"]);
    let full = t.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), keep);

    let mut rng = Rng::new();
    let span = full.as_micros() as u64 * 5 / 4 + 1;
    let mut log = Vec::new();
    for round in 0..10 {
        refill();
        let mut c = sb.semprep();
        c.args(["clean", "--min-age", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut p = Proc(spawn(&mut c));
        let delay = Duration::from_micros(rng.below(span));
        std::thread::sleep(delay);
        p.0.kill().unwrap(); // SIGKILL
        let status = p.0.wait().unwrap();
        let left = residual();
        log.push(format!(
            "{delay:?}: {} removed {}",
            if status.signal() == Some(libc::SIGKILL) {
                "killed,"
            } else {
                "finished,"
            },
            TARGET - left
        ));
        let when = format!("round {round}, killed after {delay:?}");
        check_kept(&when);
        assert!(lock_is_free(&lock), "{when}: the lock is still held");
        // A clean that may not wait takes the lock; every cookie is young
        // for it, so it changes nothing.
        let before = semids();
        let o = sb.run(&["clean", "--lock-timeout", "0", "--min-age", "1h"]);
        assert_eq!(code(&o), 0, "{when}: {}", stderr(&o));
        assert_eq!(semids(), before, "{when}");
    }
    eprintln!("a full clean took {full:?}; kills: {log:#?}");
    let o = sb.run(&["clean", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), keep, "the next run did not finish the job");
}

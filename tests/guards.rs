//! The guards of issue 3 against real processes and the real kernel, each
//! test in its own IPC namespace: the lock, daemon liveness, `semprep exec`,
//! the time budget, and bad input around them.

mod common;
use common::*;
use semprep::sysv;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// Spawns, retrying ETXTBSY: a program just copied (named_copy) can still be
/// open for writing in a child that another test thread forked meanwhile.
fn spawn(cmd: &mut Command) -> Child {
    for _ in 0..200 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r.unwrap(),
        }
    }
    panic!("{cmd:?}: text file busy for 2 s")
}

/// A `sleep 60` under another name (its comm), e.g. one that looks like
/// dockerd; killed and reaped on drop.
fn named_sleeper(dir: &Path, name: &str) -> Proc {
    let program = named_copy(dir, "sleep", name);
    let p = Proc(spawn(Command::new(program).arg("60")));
    // spawn() may return a moment before exec has renamed the child.
    wait_until("the copy to run under its name", || {
        comm(p.pid()).as_deref() == Some(name)
    });
    p
}

/// A child whose stdout and stderr go to files, so that no full pipe can
/// stall it while the test waits on another one.
struct Bg {
    proc: Proc,
    out: PathBuf,
    err: PathBuf,
}

impl Bg {
    fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Bg {
        let (out, err) = (
            dir.join(format!("{name}.out")),
            dir.join(format!("{name}.err")),
        );
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        Bg {
            proc: Proc(spawn(&mut cmd)),
            out,
            err,
        }
    }

    fn pid(&self) -> i32 {
        self.proc.pid()
    }

    /// Waits (at most 30 s) and returns the status, stdout and stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.proc.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "pid {} still running after 30 s",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        (status, read(&self.out), read(&self.err))
    }
}

/// Runs semprep with stderr in a file that JOURNAL_STREAM names, as systemd
/// does, so each line carries its priority: <3> error, <4> warning, <6> info.
fn run_journal(sb: &Sandbox, args: &[&str]) -> (i32, String) {
    let path = sb.dir.join("journal");
    let file = File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let o = sb
        .semprep()
        .args(args)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(file)
        .output()
        .unwrap();
    (code(&o), std::fs::read_to_string(&path).unwrap())
}

fn comm(pid: i32) -> Option<String> {
    semprep::process::comm(pid)
}

fn ppid(pid: i32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("PPid:")).unwrap();
    line[5..].trim().parse().unwrap()
}

/// Whether process `pid` has `path` open.
fn has_open(pid: i32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
        d.flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
    })
}

/// Whether nobody holds semprep's lock (a record lock) on `path`: F_GETLK
/// looks without taking it.
fn lock_is_free(path: &Path) -> bool {
    let f = File::open(path).unwrap();
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETLK(&mut probe)).unwrap();
    probe.l_type == libc::F_UNLCK as i16
}

/// Lines logged as warnings or errors.
fn complaints(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.contains("semprep: error:") || l.contains("semprep: warning:"))
        .collect()
}

fn gone(ids: &[i32]) -> bool {
    let now = semids();
    ids.iter().all(|id| !now.contains(id))
}

fn sorted(mut ids: Vec<i32>) -> Vec<i32> {
    ids.sort();
    ids
}

/// A cookie with a blocked waiter and one with a live owner: busy, kept.
fn busy_cookies() -> (Vec<i32>, Vec<Proc>) {
    let ids = fixture(&["cookie", "--count", "2"]);
    let waiter = Proc::fixture(&["waiter", &ids[0].to_string()], false);
    wait_until("the waiter to block", || {
        sysv::get_zcnt(ids[0]).ok() == Some(1)
    });
    let owner = Proc::fixture(&["hold", &ids[1].to_string()], true);
    (ids, vec![waiter, owner])
}

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

// ------------------------------------------------------------------- lock

#[test]
fn four_concurrent_runs_remove_each_cookie_exactly_once() {
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    let cookies: BTreeSet<i32> = fixture(&["cookie", "--count", "5000"])
        .into_iter()
        .collect();
    assert_eq!(cookies.len(), 5000);
    let foreign = sorted(fixture(&["foreign", "--count", "200"]));

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
    assert_eq!(semids(), foreign);
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_leaves_no_lock() {
    const TARGET: usize = 20_000;
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    let (busy, _busy_procs) = busy_cookies();
    let mut keep = fixture(&["foreign", "--count", "200"]);
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

#[test]
fn unsafe_lock_paths_are_refused_and_left_untouched() {
    let sb = Sandbox::new();
    let cookies = fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let precious = |name: &str| {
        let p = sb.dir.join(name);
        std::fs::write(&p, "precious\n").unwrap();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        p
    };
    let stamp = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (std::fs::read(p).unwrap(), m.modified().unwrap(), m.uid())
    };

    let target = precious("target");
    let link = sb.dir.join("link.lock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let nowhere = sb.dir.join("created-through-a-link");
    let dangling = sb.dir.join("dangling.lock");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    let dir = sb.dir.join("dir.lock");
    std::fs::create_dir(&dir).unwrap();
    let nobody = precious("nobody.lock");
    std::os::unix::fs::chown(&nobody, Some(65534), Some(65534)).unwrap();
    let hard = precious("hard.lock");
    std::fs::hard_link(&hard, sb.dir.join("hard-2")).unwrap();
    let fifo = sb.dir.join("fifo.lock");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let untouched = [&target, &nobody, &hard].map(|p| (p.clone(), stamp(p)));

    let marker = sb.dir.join("program-ran");
    let cases: [(&Path, &str); 6] = [
        (&link, "is a symbolic link"),
        (&dangling, "is a symbolic link"),
        (&dir, "is a directory"),
        (&nobody, "owned by uid 65534"),
        (&hard, "2 hard links"),
        (&fifo, "not a regular file"),
    ];
    for (path, why) in cases {
        for cmd in [
            &["run", "--min-age", "0"][..],
            &["clean", "--min-age", "0"],
            &[
                "exec",
                "--min-age",
                "0",
                "--",
                "touch",
                marker.to_str().unwrap(),
            ],
        ] {
            let o = sb
                .semprep()
                .args(cmd)
                .env("SEMPREP_LOCK_FILE", path)
                .output()
                .unwrap();
            let what = format!("{cmd:?} with lock file {}", path.display());
            assert_eq!(code(&o), 2, "{what}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(&path.display().to_string()), "{what}: {err}");
            assert!(err.contains(why), "{what}: {why:?} missing from {err}");
            assert_eq!(sysvipc(), ipc, "{what}: semaphores changed");
            assert!(!marker.exists(), "{what}: the program ran");
            assert!(!nowhere.exists(), "{what}: created a file through a link");
            for (p, before) in &untouched {
                assert_eq!(&stamp(p), before, "{what}: {} changed", p.display());
            }
        }
    }

    // A missing parent directory is created; the lock file is 0600.
    let fresh = sb.dir.join("new/dir/semprep.lock");
    let o = sb
        .semprep()
        .args(["clean", "--min-age", "0"])
        .env("SEMPREP_LOCK_FILE", &fresh)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = std::fs::symlink_metadata(&fresh).unwrap();
    assert!(m.is_file());
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert!(gone(&cookies));
}

#[test]
fn the_time_budget_bounds_the_lock_wait() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();
    let _holder = Proc::fixture(&["fcntl-hold", sb.lock_path().to_str().unwrap()], true);
    let timed = |args: &[&str]| {
        let t = Instant::now();
        let o = sb.run(args);
        (o, t.elapsed())
    };

    // The hook gives up when its budget runs out, not after the lock wait,
    // says so, and lets the daemon start.
    let (o, took) = timed(&[
        "run",
        "--min-age",
        "0",
        "--lock-timeout",
        "60s",
        "--timeout",
        "2s",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "did not wait: {took:?}"
    );
    let err = stderr(&o);
    let lines = complaints(&err);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--timeout") && l.contains("lock")),
        "{err}"
    );
    assert_eq!(sysvipc(), ipc);

    // The lock wait ends first: still busy, still 0 in hook mode.
    let (o, took) = timed(&["run", "--min-age", "0", "--lock-timeout", "300ms"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        stderr(&o).contains("semprep: error: lock file"),
        "{}",
        stderr(&o)
    );

    // An operator's clean, and a strict hook, report the refusal.
    for args in [
        &[
            "clean",
            "--min-age",
            "0",
            "--lock-timeout",
            "60s",
            "--timeout",
            "1s",
        ][..],
        &["clean", "--min-age", "0", "--lock-timeout", "300ms"],
        &[
            "run",
            "--strict",
            "--min-age",
            "0",
            "--lock-timeout",
            "60s",
            "--timeout",
            "1s",
        ],
    ] {
        let (o, took) = timed(args);
        assert_eq!(code(&o), 4, "{args:?}: {}", stderr(&o));
        assert!(took < Duration::from_secs(6), "{args:?} took {took:?}");
        assert!(
            stderr(&o).contains("semprep: error: lock file"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(sysvipc(), ipc);
}

// ------------------------------------------------------------------- exec

#[test]
fn exec_becomes_the_program_and_hands_it_the_lock() {
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    let prepared = fixture(&["cookie", "--count", "3"]);
    let mut c = sb.semprep();
    c.args(["exec", "--min-age", "0", "--", "sleep", "30"]);
    let daemon = Bg::spawn(c, &sb.dir, "exec");
    let pid = daemon.pid();
    wait_until("semprep to become sleep", || {
        comm(pid).as_deref() == Some("sleep")
    });
    // No wrapper: the child we spawned is sleep itself, running sleep's binary.
    assert_eq!(ppid(pid), std::process::id() as i32);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize(which("sleep")).unwrap()
    );
    assert_eq!(
        std::fs::read(format!("/proc/{pid}/cmdline")).unwrap(),
        b"sleep\x0030\x00"
    );
    assert!(gone(&prepared), "exec did not prepare first");
    assert!(has_open(pid, &lock), "sleep does not hold the lock file");

    // Every other semprep sees the lock, names its holder, changes nothing.
    let cookies = fixture(&["cookie", "--count", "5"]);
    let ipc = sysvipc();
    let t = Instant::now();
    let o = sb.run(&["clean", "--min-age", "0", "--lock-timeout", "1s"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(t.elapsed() >= Duration::from_millis(900), "did not wait");
    let holder = format!("pid {pid}, sleep");
    assert!(stderr(&o).contains(&holder), "{}", stderr(&o));
    assert_eq!(sysvipc(), ipc);

    // Its signals are its own: SIGTERM ends sleep itself.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (status, _, err) = daemon.finish();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{err}");
    assert!(err.contains("removed 3 residual"), "{err}");

    // The lock went with the program.
    assert!(lock_is_free(&lock));
    let o = sb.run(&["clean", "--min-age", "0", "--lock-timeout", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(gone(&cookies));
}

#[test]
fn exec_fails_like_a_shell_and_its_status_is_the_programs() {
    let sb = Sandbox::new();
    let o = sb.run(&["exec", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));

    let plain = sb.dir.join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let missing = sb.dir.join("no-such-daemon");
    let cases = [
        (missing.to_str().unwrap(), 127),
        ("no-such-daemon-in-path", 127),
        (plain.to_str().unwrap(), 126),
        (sb.dir.to_str().unwrap(), 126),
    ];
    for (program, want) in cases {
        let cookies = fixture(&["cookie", "--count", "2"]);
        let o = sb.run(&["exec", "--min-age", "0", "--", program, "arg"]);
        assert_eq!(code(&o), want, "{program}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("semprep: error: cannot run {program}")),
            "{program}: {err}"
        );
        assert!(gone(&cookies), "{program}: not prepared first");
        assert!(lock_is_free(&sb.lock_path()));
    }
}

#[test]
fn exec_with_the_lock_busy_starts_the_program_unless_strict() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "2"]);
    let ipc = sysvipc();
    let _holder = Proc::fixture(&["fcntl-hold", sb.lock_path().to_str().unwrap()], true);
    for wait in [
        &["--lock-timeout", "200ms"][..],
        &["--lock-timeout", "60s", "--timeout", "1s"],
    ] {
        let t = Instant::now();
        let o = sb
            .semprep()
            .args(["exec", "--min-age", "0"])
            .args(wait)
            .args(["--", "sh", "-c", "exit 5"])
            .output()
            .unwrap();
        assert_eq!(code(&o), 5, "{wait:?}: {}", stderr(&o));
        assert!(t.elapsed() < Duration::from_secs(6), "{wait:?}");
        let err = stderr(&o);
        assert!(err.contains("semprep: error: lock file"), "{err}");
        assert!(err.contains("letting the daemon start anyway"), "{err}");
        assert_eq!(sysvipc(), ipc);
    }
    // --strict: the refusal stands and the program does not run.
    let marker = sb.dir.join("program-ran");
    let o = sb
        .semprep()
        .args([
            "exec",
            "--strict",
            "--min-age",
            "0",
            "--lock-timeout",
            "200ms",
        ])
        .args(["--", "touch", marker.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(!marker.exists(), "--strict still ran the program");
    assert_eq!(sysvipc(), ipc);
}

// --------------------------------------------------------------- liveness

#[test]
fn a_live_dockerd_refuses_and_force_removes_only_residual_cookies() {
    let sb = Sandbox::new();
    let dockerd = named_sleeper(&sb.dir, "dockerd");
    let pidfile = sb.dir.join("docker.pid");
    std::fs::write(&pidfile, format!("{}\n", dockerd.pid())).unwrap();
    let pf = pidfile.to_str().unwrap();
    let residual = fixture(&["cookie", "--count", "4"]);
    let (busy, _busy_procs) = busy_cookies();
    let mut keep = fixture(&["foreign", "--count", "3"]);
    keep.extend(&busy);
    let keep = sorted(keep);
    let ipc = sysvipc();

    for cmd in ["run", "clean"] {
        let args = [cmd, "--daemon", "docker", "--pidfile", pf, "--min-age", "0"];
        let o = sb.run(&args);
        assert_eq!(code(&o), 4, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("dockerd"), "{err}");
        assert!(err.contains(&format!("pid {}", dockerd.pid())), "{err}");
        assert_eq!(sysvipc(), ipc, "{args:?} changed something");
    }

    // exec logs the refusal and starts its program anyway (it would not
    // stop the daemon that runs), still removing nothing.
    let o = sb.run(&[
        "exec",
        "--daemon",
        "docker",
        "--pidfile",
        pf,
        "--min-age",
        "0",
        "--",
        "sh",
        "-c",
        "exit 6",
    ]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("semprep: error: dockerd"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sysvipc(), ipc, "exec changed something");

    let o = sb.run(&[
        "clean",
        "--daemon",
        "docker",
        "--pidfile",
        pf,
        "--min-age",
        "0",
        "--force",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(gone(&residual));
    assert_eq!(semids(), keep);
}

#[test]
fn stale_docker_pidfiles_are_ignored_at_info_level() {
    let sb = Sandbox::new();
    let pidfile = sb.dir.join("docker.pid");
    let pf = pidfile.to_str().unwrap().to_owned();
    let dead = {
        let mut p = Proc(spawn(Command::new("sleep").arg("60")));
        let pid = p.pid();
        p.kill();
        pid
    };
    let other = Proc(spawn(Command::new("sleep").arg("60")));

    // (what the pidfile is, its content or None for a special file, words
    // the info line must contain)
    let (dead_pid, other_pid) = (format!("{dead}\n"), format!("{}\n", other.pid()));
    let not_running = format!("pid {dead} is not running");
    let cases: [(&str, Option<&str>, &str); 8] = [
        ("a dead pid", Some(&dead_pid), &not_running),
        (
            "a pid reused by sleep",
            Some(&other_pid),
            "is now sleep, not dockerd",
        ),
        ("empty", Some(""), "no pid in it"),
        ("garbage", Some("dockerd\n"), "no pid in it"),
        ("pid 0", Some("0\n"), "no pid in it"),
        ("pid -1", Some("-1\n"), "no pid in it"),
        ("a directory", None, "cannot read it: it is a directory"),
        ("a FIFO nobody writes to", None, "not a regular file"),
    ];
    for (what, content, words) in cases {
        let _ = std::fs::remove_file(&pidfile);
        let _ = std::fs::remove_dir(&pidfile);
        match content {
            Some(text) => std::fs::write(&pidfile, text).unwrap(),
            None if what.contains("FIFO") => {
                nix::unistd::mkfifo(&pidfile, nix::sys::stat::Mode::S_IRWXU).unwrap()
            }
            None => std::fs::create_dir(&pidfile).unwrap(),
        }
        let cookies = fixture(&["cookie", "--count", "2"]);
        let args = [
            "run",
            "--daemon",
            "docker",
            "--pidfile",
            &pf,
            "--min-age",
            "0",
            "--timeout",
            "3s",
        ];
        let (rc, err) = run_journal(&sb, &args);
        assert_eq!(rc, 0, "{what}: {err}");
        assert!(gone(&cookies), "{what}: cookies kept: {err}");
        let note = err
            .lines()
            .find(|l| l.contains("ignoring"))
            .unwrap_or_else(|| panic!("{what}: no note in {err}"));
        assert!(note.starts_with("<6>semprep: ignoring"), "{what}: {note}");
        assert!(note.contains(&pf), "{what}: {note}");
        assert!(
            note.contains(words),
            "{what}: {words:?} missing from {note}"
        );
        assert!(
            !err.contains("<3>") && !err.contains("<4>"),
            "{what}: {err}"
        );
    }

    // No pidfile at all: nothing to say.
    let _ = std::fs::remove_file(&pidfile);
    let cookies = fixture(&["cookie"]);
    let (rc, err) = run_journal(
        &sb,
        &[
            "run",
            "--daemon",
            "docker",
            "--pidfile",
            &pf,
            "--min-age",
            "0",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    assert!(gone(&cookies));
    assert!(!err.contains("ignoring"), "{err}");
}

#[test]
fn isulad_is_alive_while_its_pidfile_lock_is_held() {
    let sb = Sandbox::new();
    let pidfile = sb.dir.join("isulad.pid");
    let pf = pidfile.to_str().unwrap();
    let args = [
        "run",
        "--daemon",
        "isulad",
        "--pidfile",
        pf,
        "--min-age",
        "0",
    ];
    let cookies = fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();

    let mut isulad = Proc::fixture(&["fcntl-hold", pf], true);
    let o = sb.run(&args);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("isulad"), "{err}");
    assert!(err.contains(&format!("pid {}", isulad.pid())), "{err}");
    assert_eq!(sysvipc(), ipc);
    // F_GETLK only looks: the holder still has its lock.
    assert!(std::fs::read_to_string(&pidfile).unwrap().trim() == isulad.pid().to_string());

    isulad.kill();
    let (rc, err) = run_journal(&sb, &args);
    assert_eq!(rc, 0, "{err}");
    assert!(gone(&cookies));
    assert!(
        err.lines()
            .any(|l| l.starts_with("<6>semprep: ignoring stale pidfile")
                && l.contains("nobody holds its lock")),
        "{err}"
    );
}

#[test]
fn a_process_named_containerd_means_containerd_is_alive() {
    let sb = Sandbox::new();
    assert_eq!(
        semprep::process::find_by_comm("containerd"),
        Vec::<i32>::new(),
        "a real containerd runs on this host: this test cannot tell ours from it"
    );
    let args = ["run", "--daemon", "containerd", "--min-age", "0"];
    let cookies = fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();

    let mut containerd = named_sleeper(&sb.dir, "containerd");
    let o = sb.run(&args);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("containerd"), "{err}");
    assert!(err.contains(&format!("pid {}", containerd.pid())), "{err}");
    assert_eq!(sysvipc(), ipc);

    containerd.kill();
    let o = sb.run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(gone(&cookies));
}

// -------------------------------------------------------------- bad input

#[test]
fn bad_guard_options_exit_2_naming_the_option() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "2"]);
    let ipc = sysvipc();
    let marker = sb.dir.join("program-ran");
    let m = marker.to_str().unwrap();
    // (arguments, environment, words the message must contain)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            vec!["run", "--daemon", "bogus"],
            vec![],
            vec!["--daemon", "bogus", "docker"],
        ),
        (vec!["clean", "--pidfile", ""], vec![], vec!["--pidfile"]),
        (
            vec!["run", "--lock-timeout", "x"],
            vec![],
            vec!["--lock-timeout", "'x'"],
        ),
        (
            vec!["run", "--timeout", "-1"],
            vec![],
            vec!["--timeout", "'-1'"],
        ),
        (
            vec!["run"],
            vec![("SEMPREP_DAEMON", "bogus")],
            vec!["--daemon", "bogus"],
        ),
        (
            vec!["run"],
            vec![("SEMPREP_TIMEOUT", "soon")],
            vec!["--timeout", "soon"],
        ),
        (
            vec!["exec", "touch", m],
            vec![],
            vec!["touch", "-- <PROGRAM>"],
        ),
        (vec!["exec", "--"], vec![], vec!["<PROGRAM>"]),
        (vec!["exec"], vec![], vec!["<PROGRAM>"]),
        (
            vec!["exec", "--daemon", "bogus", "--", "touch", m],
            vec![],
            vec!["--daemon"],
        ),
        (
            vec!["exec", "--timeout", "x", "--", "touch", m],
            vec![],
            vec!["--timeout"],
        ),
    ];
    for (args, env, words) in cases {
        let o = sb
            .semprep()
            .args(&args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{args:?} {env:?}: {}", stderr(&o));
        let err = stderr(&o);
        for w in words {
            assert!(
                err.contains(w),
                "{args:?} {env:?}: {w:?} missing from {err}"
            );
        }
        assert_eq!(sysvipc(), ipc, "{args:?} {env:?}");
        assert!(!marker.exists(), "{args:?} {env:?}: the program ran");
    }
}

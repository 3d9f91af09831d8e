//! Hosts that are not what semprep would like them to be: it runs in a
//! child pid namespace, another tool writes kernel.sem meanwhile, the time
//! budget runs out mid-way, the limits are odd, /proc/sys is read-only or
//! never answers. Each test in its own IPC namespace.

mod common;
use common::*;
use semprep::{apply, plan, snapshot, sysv};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// semprep (with `sb`'s settings) inside `wrapper`, e.g. `unshare --pid`.
fn wrapped(sb: &Sandbox, wrapper: &[&str], args: &[&str]) -> Output {
    let inner = sb.semprep();
    let mut c = Command::new(wrapper[0]);
    c.args(&wrapper[1..]).arg(SEMPREP).args(args);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.output().unwrap()
}

const CHILD_PID_NS: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc"];

fn fields(sem: &str) -> [u32; 4] {
    let v: Vec<u32> = sem.split_whitespace().map(|f| f.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

fn covers(a: [u32; 4], b: [u32; 4]) -> bool {
    a.iter().zip(b).all(|(x, y)| *x >= y)
}

// ------------------------------------------------------ pid namespaces

/// In a container that shares the host's IPC namespace but not its pids,
/// GETPID reads 0 for every host process: the owner may be alive, so the
/// cookie stays (busy, owner-unseen). From the host's pid namespace
/// nothing changes. A pid the child namespace can see is judged as usual.
#[test]
fn an_owner_outside_our_pid_namespace_keeps_its_cookie() {
    let sb = Sandbox::new();
    let owned = fixture(&["cookie"])[0];
    let owner = Proc::fixture(&["hold", &owned.to_string()], true);
    let orphan = fixture(&["cookie", "--state", "ops"])[0]; // its host pid is dead
    assert_eq!(sysv::get_pid(owned).unwrap(), owner.pid());

    let status = wrapped(&sb, CHILD_PID_NS, &["status", "--min-age", "0"]);
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let text = stdout(&status);
    let unseen = "owner-unseen (semprep runs in a child pid namespace: the last-op pid is not \
                  visible; run it in the host's pid namespace)";
    for id in [owned, orphan] {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no row for {id}:\n{text}"));
        assert!(row.contains("busy") && row.contains(unseen), "{row}");
    }
    for args in [
        &["clean", "--min-age", "0"][..],
        &["run", "--min-age", "0", "--force"],
    ] {
        let o = wrapped(&sb, CHILD_PID_NS, args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(semids(), vec![owned, orphan], "{args:?} removed a cookie");
    }

    // A cookie whose owner lived and died inside the child namespace is
    // seen there, so it is residual as usual.
    let script = "\"$1\" cookie --state ops >/dev/null && shift && exec \"$@\"";
    let mut inside = vec!["unshare", "--pid", "--fork", "--mount-proc"];
    inside.extend(["sh", "-c", script, "sh", FIXTURE]);
    let o = wrapped(&sb, &inside, &["clean", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("removed 1 residual"), "{}", stderr(&o));
    assert_eq!(semids(), vec![owned, orphan]);

    // From the host's pid namespace: the live owner keeps its cookie, the
    // dead one's goes, as before.
    let text = stdout(&sb.run(&["status", "--min-age", "0"]));
    assert!(!text.contains("owner-unseen"), "{text}");
    assert!(
        text.contains(&format!("owner-alive (pid {}, semfixture)", owner.pid())),
        "{text}"
    );
    let o = sb.run(&["clean", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), vec![owned]);
}

// ------------------------------------------------ a concurrent writer

fn unix_now() -> i64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    t.unwrap().as_secs() as i64
}

/// Other writers' kernel.sem, each against semprep's snapshot "250 32000 32
/// 128" and its target "250 32000 32 256".
const WRITERS: [&str; 6] = [
    "300 32000 40 32000", // above the target everywhere: nothing to write
    "250 32000 32 200",   // SEMMNI between the snapshot and the target
    "500 64000 64 128",   // other fields raised, SEMMNI untouched
    "250 32000 32 256",   // exactly the target
    "251 31999 33 300",   // SEMMNS lowered, the rest raised
    "250 32000 32 20020",
];

/// Between semprep's snapshot and its raise, another tool (sysctl, tuned,
/// an operator) writes kernel.sem. semprep re-reads right before writing
/// and never writes any field below what it finds.
#[test]
fn a_raise_never_lowers_what_another_writer_set() {
    let sb = Sandbox::new();
    fixture(&["unrelated", "--count", "128"]);
    let rules = plan::Params {
        policy: plan::Policy::Raise,
        min_age: 0,
        reserve: 32,
        max_semmni: None,
        semmni: None,
    };
    let ctx = apply::Context {
        min_age: 0,
        now: &unix_now,
        deadline: None,
        sem_path: std::path::Path::new("/proc/sys/kernel/sem"),
        persist: None,
    };
    for round in 0..4 {
        for other in WRITERS {
            sb.limits("250 32000 32 128");
            let snap = snapshot::read(snapshot::ReadOptions::default()).unwrap();
            let p = plan::plan(&snap, &rules, unix_now()).unwrap();
            let target = p.raise.expect("a raise is planned");
            assert_eq!(target.to_string(), "250 32000 32 256");
            sb.limits(other);
            let done = apply::apply(&snap, &p, &ctx).unwrap();
            let now = fields(&kernel_sem());
            let what = format!("round {round}, other writer {other:?}: now {now:?}");
            assert_eq!(done.raise_error, None, "{what}");
            assert!(covers(now, fields(other)), "{what}: a field was lowered");
            assert!(
                covers(now, [250, 32000, 32, 256]),
                "{what}: below the target"
            );
            let wrote = done.raised.is_some();
            assert_eq!(
                wrote,
                !covers(fields(other), [250, 32000, 32, 256]),
                "{what}: wrote only if something had to rise"
            );
            assert_eq!(done.raised_by_other.is_some(), !wrote, "{what}");
        }
    }
}

fn sets_in_use() -> u64 {
    sysv::sem_info().unwrap().sets
}

/// Runs `cmd` (semprep, removing `cookies` of the sets in use) and freezes
/// it with SIGSTOP once its removals have begun. Returns the child and the
/// sets in use while it is frozen: fewer than at the start, and more than
/// the sets it leaves alone when the removals were caught in the middle.
fn freeze_mid_removal(cmd: &mut Command) -> (Proc, u64) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let start = sets_in_use();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sets_in_use() == start {
        assert!(Instant::now() < deadline, "semprep never started removing");
        std::hint::spin_loop();
    }
    kill(Pid::from_raw(p.pid()), Signal::SIGSTOP).unwrap();
    // Stopped means every thread of it is: wait until /proc says so. A
    // zombie has finished before the signal (the freeze came too late on a
    // busy machine): the callers see no removal left and retry.
    wait_until("semprep to stop", || {
        std::fs::read_to_string(format!("/proc/{}/stat", p.pid())).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with(['T', 'Z'])
        })
    });
    (p, sets_in_use())
}

fn resume_and_wait(mut p: Proc) -> (i32, String) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::io::Read;
    kill(Pid::from_raw(p.pid()), Signal::SIGCONT).unwrap();
    let mut err = String::new();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = p.0.wait().unwrap();
    (status.code().unwrap_or(-1), err)
}

/// The same race through the binary, with a real snapshot-to-raise gap:
/// semprep is frozen in the middle of its removals (after its snapshot,
/// before its raise) while another writer writes kernel.sem. Many tries.
#[test]
fn a_concurrent_writer_during_a_run_is_never_lowered() {
    let sb = Sandbox::new();
    let (cookies, unrelated) = (2000u64, 100u64);
    let mut caught = 0;
    // Against the snapshot "250 32000 32 2100" and the target "250 32000
    // 32 4200", as WRITERS against theirs.
    let writers = [
        "300 32000 40 32000",
        "250 32000 32 3000",
        "500 64000 64 2100",
        "250 32000 32 4200",
        "251 31999 33 5000",
        "250 32000 32 20020",
    ];
    for (i, other) in writers.iter().cycle().take(18).enumerate() {
        // SEMMNI full; removing every cookie leaves 2000 free of the 2050
        // reserve: the plan raises SEMMNI to 4200.
        sb.limits(&format!("250 32000 32 {}", cookies + unrelated));
        fixture(&["unrelated", "--count", &unrelated.to_string()]);
        fixture(&["cookie", "--count", &cookies.to_string()]);
        let mut cmd = sb.semprep();
        cmd.args(["run", "--min-age", "0", "--reserve", "2050"]);
        let (p, frozen) = freeze_mid_removal(&mut cmd);
        sb.limits(other);
        let (rc, err) = resume_and_wait(p);
        let now = fields(&kernel_sem());
        let what = format!("try {i}, other writer {other:?}: now {now:?}: {err}");
        assert_eq!(rc, 0, "{what}");
        if frozen > unrelated {
            // Caught mid-removal, so before the raise: the write came first.
            caught += 1;
            assert!(covers(now, fields(other)), "{what}: a field was lowered");
            assert!(covers(now, [250, 32000, 32, 4200]), "{what}");
        }
        // Otherwise the freeze came too late: semprep may have raised and
        // exited before the other write, which then stands (last writer).
        for id in semids() {
            sysv::remove(id).unwrap();
        }
    }
    assert!(
        caught >= 9,
        "only {caught} of 18 tries froze semprep mid-removal"
    );
}

// --------------------------------------------------- the time budget

/// The budget runs out during the removals (semprep is frozen mid-way, as
/// on a stalled host, and resumed past the point where removals stop):
/// the raise the policy allows still happens, decided from the real usage,
/// and the messages say what happened instead of blaming the kernel's
/// maximum. No timing is asserted: a try in which the freeze missed the
/// removals is retried.
#[test]
fn a_budget_that_runs_out_mid_removal_still_raises() {
    let sb = Sandbox::new();
    let marker = sb.dir.join("program-ran");
    let m = marker.to_str().unwrap();
    let (cookies, unrelated) = (10_000u64, 100u64);
    // (arguments, exit code, raised?, words the log must contain)
    type Case<'a> = (Vec<&'a str>, i32, bool, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec!["run"], 0, true, vec!["warning: the time budget of 1s"]),
        (
            vec!["run", "--strict"],
            1,
            true,
            vec!["error: the time budget of 1s"],
        ),
        (
            vec!["exec"],
            0,
            true,
            vec!["warning: the time budget of 1s"],
        ),
        (
            vec!["run", "--policy", "clean"],
            3,
            false,
            vec!["headroom still short", "policy clean does not raise"],
        ),
    ];
    for (sub, want_rc, raised, words) in cases {
        let mut done = false;
        for attempt in 0..4 {
            let _ = std::fs::remove_file(&marker);
            for id in semids() {
                sysv::remove(id).unwrap();
            }
            // SEMMNI full; the plan removes every cookie and leaves exactly
            // the reserve free, so it plans no raise.
            sb.limits(&format!("32000 1024000000 500 {}", cookies + unrelated));
            fixture(&["unrelated", "--count", &unrelated.to_string()]);
            fixture(&["cookie", "--count", &cookies.to_string()]);
            let mut cmd = sb.semprep();
            cmd.args(&sub)
                .args(["--min-age", "0", "--reserve", "10000", "--timeout", "1s"]);
            if sub[0] == "exec" {
                cmd.args(["--", "touch", m]);
            }
            let t0 = Instant::now();
            let (p, frozen) = freeze_mid_removal(&mut cmd);
            // Resume once the budget is over (semprep's clock started a
            // little after t0): the next removal sees its deadline passed.
            let over = Duration::from_millis(1050);
            std::thread::sleep(over.saturating_sub(t0.elapsed()));
            let (rc, err) = resume_and_wait(p);
            let left = sets_in_use();
            if frozen <= unrelated || left <= unrelated || err.contains("ran out while") {
                // The freeze missed the removals, semprep started so late
                // that it resumed before its removal deadline and finished,
                // or the watchdog acted before the orderly path (a stall
                // longer than its grace): not the case under test.
                eprintln!("attempt {attempt} of {sub:?} inconclusive: frozen at {frozen}: {err}");
                continue;
            }
            let what = format!("{sub:?}: {err}");
            assert_eq!(rc, want_rc, "{what}");
            let removed = cookies + unrelated - left;
            assert!(
                err.contains(&format!(
                    "ran out after removing {removed} of the {cookies} residual cookies planned"
                )),
                "{what}"
            );
            for w in &words {
                assert!(err.contains(w), "{what}: {w:?} missing");
            }
            assert!(!err.contains("kernel's maximum"), "{what}");
            let semmni = fields(&kernel_sem())[3] as u64;
            if raised {
                assert!(err.contains("raised kernel.sem from"), "{what}");
                assert!(semmni >= left + 10_000, "{what}: SEMMNI {semmni}");
            } else {
                assert_eq!(semmni, cookies + unrelated, "{what}");
            }
            assert_eq!(marker.exists(), sub[0] == "exec", "{what}: program");
            done = true;
            break;
        }
        assert!(done, "{sub:?}: no attempt caught semprep mid-removal");
    }
}

/// A budget too small to read the state is bad input, like `--timeout 0`.
#[test]
fn too_small_budgets_and_impossible_reserves_are_bad_input() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 64");
    fixture(&["cookie", "--count", "60"]);
    let (ipc, sem) = (sysvipc(), kernel_sem());
    let marker = sb.dir.join("program-ran");
    let m = marker.to_str().unwrap();
    // (arguments, environment, words the message must contain)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let mut cases: Vec<Case> = Vec::new();
    for t in ["0", "0s", "99ms", "1ms"] {
        for sub in ["run", "clean", "raise", "status"] {
            cases.push((
                vec![sub, "--timeout", t],
                vec![],
                vec!["--timeout", "100ms"],
            ));
        }
        cases.push((
            vec!["exec", "--timeout", t, "--", "touch", m],
            vec![],
            vec!["--timeout", "100ms", "1 year"],
        ));
    }
    cases.push((
        vec!["run"],
        vec![("SEMPREP_TIMEOUT", "0")],
        vec!["--timeout", "100ms"],
    ));
    cases.push((
        vec!["status"],
        vec![("SEMPREP_TIMEOUT", "50ms")],
        vec!["--timeout"],
    ));
    for sub in ["run", "clean", "raise", "status"] {
        cases.push((
            vec![sub, "--reserve", "40000"],
            vec![],
            vec![
                "--reserve 40000",
                "maximum SEMMNI of 32768",
                "from 0 to 32768",
            ],
        ));
    }
    cases.push((
        vec!["run", "--dry-run"],
        vec![("SEMPREP_RESERVE", "32769")],
        vec!["--reserve 32769"],
    ));
    cases.push((
        vec!["exec", "--reserve", "40000", "--", "touch", m],
        vec![],
        vec!["--reserve 40000"],
    ));
    for (args, env, words) in cases {
        let o = sb
            .semprep()
            .args(&args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?} {env:?}: {err}");
        for w in words {
            assert!(
                err.contains(w),
                "{args:?} {env:?}: {w:?} missing from {err}"
            );
        }
        assert_eq!(
            (sysvipc(), kernel_sem()),
            (ipc.clone(), sem.clone()),
            "{args:?}"
        );
        assert!(!marker.exists(), "{args:?}: the program ran");
    }
    // The floor itself, and the reserve at the kernel's maximum, are fine.
    let o = sb.run(&["status", "--reserve", "32768"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

// ------------------------------------------------------- odd limits

fn probe() -> bool {
    Command::new(FIXTURE)
        .arg("probe")
        .status()
        .unwrap()
        .success()
}

/// SEMMSL 0 fails libdm's semget, SEMOPM 0 its semop, whatever SEMMNI
/// says: headroom is short. auto and raise fix it; clean and report exit 3
/// naming the field.
#[test]
fn semmsl_or_semopm_zero_is_short() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "2"]);
    for (sem, field) in [
        ("0 32000 32 128", "SEMMSL, the 1st field, is 0"),
        ("250 32000 0 128", "SEMOPM, the 3rd field, is 0"),
    ] {
        for args in [
            &["clean"][..],
            &["run", "--policy", "clean"],
            &["run", "--policy", "report"],
            &["run", "--policy", "clean", "--dry-run"],
        ] {
            sb.limits(sem);
            assert!(!probe(), "{sem}: the probe must fail");
            let o = sb.run(args);
            let err = stderr(&o);
            assert_eq!(code(&o), 3, "{sem} {args:?}: {err}");
            assert!(err.contains(field), "{sem} {args:?}: {err}");
            assert!(err.contains("/proc/sys/kernel/sem"), "{err}");
            assert!(!err.contains("ENOSPC"), "{sem} {args:?}: {err}");
            assert_eq!(fields(&kernel_sem()), fields(sem), "{args:?}");
        }
        for args in [&["run"][..], &["raise"], &["run", "--policy", "raise"]] {
            sb.limits(sem);
            let o = sb.run(args);
            assert_eq!(code(&o), 0, "{sem} {args:?}: {}", stderr(&o));
            assert_eq!(fields(&kernel_sem()), [250, 32000, 32, 128], "{args:?}");
            assert!(probe(), "{sem} {args:?}: the probe still fails");
        }
    }
}

// ------------------------------------------------- /proc/sys itself

/// `status` is bounded like a run: a /proc/sys/kernel/sem that never
/// answers (a FIFO bind-mounted over it, in a private mount namespace)
/// ends it within its --timeout, with an error naming the file. `run`
/// says the same and lets the daemon start.
#[test]
fn a_kernel_sem_that_never_answers_is_bounded() {
    let sb = Sandbox::new();
    let fifo = sb.dir.join("sem-fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    for (args, want) in [
        (&["status", "--timeout", "300ms"][..], 1),
        (&["status", "--json", "--timeout", "300ms"], 1),
        (&["run", "--timeout", "300ms"], 0),
        (&["run", "--strict", "--timeout", "300ms"], 1),
    ] {
        let mut c = sb.semprep_with_kernel_sem(&fifo, false);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Not a speed assertion: only a guard so that a hang fails the
        // test instead of blocking the suite.
        let child = c.spawn().unwrap();
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let Ok(o) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("{args:?}: still hanging after 60 s");
        };
        let o = o.unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), want, "{args:?}: {err}");
        assert!(
            err.contains("(--timeout) ran out while reading /proc/sys/kernel/sem"),
            "{args:?}: {err}"
        );
        if args.contains(&"--json") {
            // The one document, with the watchdog's error in it.
            let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert_eq!(doc["exit_code"], want, "{args:?}");
            let msg = doc["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("/proc/sys/kernel/sem"), "{args:?}: {msg}");
        } else {
            assert_eq!(stdout(&o), "", "{args:?}");
        }
    }
}

//! Hosts that are not what semprep would like them to be: it runs in a
//! child pid namespace, the settings or the limits are odd, /proc/sys
//! never answers. Each test in its own IPC namespace.

mod common;
use common::*;
use semprep::sysv;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

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

// --------------------------------------------------- bad settings

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
    let script = "mount --bind \"$1\" /proc/sys/kernel/sem && shift && exec \"$@\"";
    for (args, want) in [
        (&["status", "--timeout", "300ms"][..], 1),
        (&["status", "--json", "--timeout", "300ms"], 1),
        (&["run", "--timeout", "300ms"], 0),
        (&["run", "--strict", "--timeout", "300ms"], 1),
    ] {
        let mut c = Command::new("unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&fifo)
        .arg(SEMPREP)
        .args(args)
        .env("SEMPREP_LOCK_FILE", sb.lock_path())
        .env("SEMPREP_DAEMON", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
        assert_eq!(stdout(&o), "", "{args:?}");
    }
}

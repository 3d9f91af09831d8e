//! `semprep exec`: it prepares, then becomes the program and hands it the
//! lock, against real processes, each test in its own IPC namespace.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

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

//! Daemon liveness: a running daemon (a real process under its name, or
//! holding its pidfile's lock) stops semprep; a stale pidfile does not.
//! Each test in its own IPC namespace.

mod common;
use common::*;
use std::process::Command;

#[test]
fn a_live_dockerd_refuses_and_force_removes_only_residual_cookies() {
    let sb = Sandbox::new();
    let dockerd = named_sleeper(&sb.dir, "dockerd");
    let pidfile = sb.dir.join("docker.pid");
    std::fs::write(&pidfile, format!("{}\n", dockerd.pid())).unwrap();
    let pf = pidfile.to_str().unwrap();
    let residual = fixture(&["cookie", "--count", "4"]);
    let (busy, _busy_procs) = busy_cookies();
    let mut keep = fixture(&["unrelated", "--count", "3"]);
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

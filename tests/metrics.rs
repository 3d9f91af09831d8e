//! `--format`, `--output` and `--metrics-file` on the real kernel, each test
//! in its own IPC namespace. The exposition's validity and values are
//! checked with promtool and node_exporter in tests/sh/80-fleet.sh.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn output_writes_the_report_atomically_with_mode_0644() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "2"]);
    let file = sb.dir.join("semprep.prom");
    let o = sb.run(&["status", "--format", "prometheus", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("semprep_dm_cookies{class=\"residual\"} 2\n"));
    let o = sb
        .semprep()
        .args([
            "status",
            "--format",
            "prometheus",
            "--min-age",
            "0",
            "--output",
        ])
        .arg(&file)
        .env("SEMPREP_FORMAT", "text") // the command line wins
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "the report went to stdout as well");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("semprep_dm_cookies{class=\"residual\"} 2\n"),
        "{text}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    // --format json is --json's document; text is the status table.
    let o = sb.run(&["status", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["command"], "status");
    let o = sb.run(&["status", "--format", "text"]);
    assert!(stdout(&o).starts_with("kernel.sem: "), "{}", stdout(&o));
    // Nothing but the file is left in the directory.
    let names: Vec<_> = std::fs::read_dir(&sb.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["semprep.prom"]);
}

#[test]
fn bad_output_or_format_is_refused_with_exit_2_and_nothing_written() {
    let sb = Sandbox::new();
    let dir = sb.dir.join("d");
    std::fs::create_dir(&dir).unwrap();
    let link = sb.dir.join("link.prom");
    std::os::unix::fs::symlink(sb.dir.join("target.prom"), &link).unwrap();
    let fifo = sb.dir.join("fifo.prom");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let missing = sb.dir.join("missing/semprep.prom");
    let cases: [(&[&str], &str); 6] = [
        (&["--output", missing.to_str().unwrap()], "create it first"),
        (&["--output", dir.to_str().unwrap()], "is a directory"),
        (&["--output", link.to_str().unwrap()], "symbolic link"),
        (&["--output", fifo.to_str().unwrap()], "not a regular file"),
        (&["--format", "xml"], "--format"),
        (&["--stuck-after", "soon"], "--stuck-after"),
    ];
    for (args, why) in cases {
        for cmd in ["status", "run"] {
            let mut all = vec![cmd];
            all.extend_from_slice(args);
            let o = sb.run(&all);
            assert_eq!(code(&o), 2, "{all:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(why), "{all:?}: {}", stderr(&o));
        }
    }
    for cmd in ["status", "run"] {
        let o = sb.run(&[cmd, "--format", "npd"]);
        assert_eq!(code(&o), 2, "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--format npd is check's only"),
            "{}",
            stderr(&o)
        );
    }
    let o = sb.run(&["run", "--metrics-file", dir.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("--metrics-file"), "{}", stderr(&o));
    assert!(!sb.dir.join("target.prom").exists(), "followed the link");
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn the_hook_writes_its_outcome_and_a_failure_to_does_not_change_the_exit_code() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "3"]);
    let file = sb.dir.join("hook.prom");
    let o = sb
        .semprep()
        .args(["run", "--min-age", "0"])
        .env("SEMPREP_METRICS_FILE", &file)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    for want in [
        "semprep_last_run_exit_code{daemon=\"none\"} 0\n",
        "semprep_last_run_timed_out{daemon=\"none\"} 0\n",
        "semprep_last_run_cookies_removed{daemon=\"none\"} 3\n",
        "semprep_last_run_sets_skipped{daemon=\"none\"} 0\n",
        "semprep_last_run_semmni_raised{daemon=\"none\"} 0\n",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    // Headroom short (exit 3) under --policy clean: the file says so.
    sb.limits("250 32000 32 10");
    let o = sb.run(&[
        "run",
        "--policy",
        "clean",
        "--metrics-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("semprep_last_run_exit_code{daemon=\"none\"} 3\n"),
        "{text}"
    );
    assert!(text.contains("semprep_last_run_semaphore_sets_limit{daemon=\"none\"} 10\n"));
    // A file that cannot be written (a full file system, in a private
    // mount namespace): logged, and the run's own exit code stands.
    sb.limits("250 32000 32 1000");
    let full = sb.dir.join("full");
    std::fs::create_dir(&full).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=8k,mode=0755 tmpfs {d} && head -c 8192 /dev/zero >{d}/fill; \
         exec \"$0\" run --metrics-file {d}/hook.prom",
        d = full.display()
    );
    let o = sb.semprep_in_private_mounts(&script).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write the run's metrics"),
        "{}",
        stderr(&o)
    );
    // run --format prometheus prints the same families on stdout.
    let o = sb.run(&[
        "run",
        "--format",
        "prometheus",
        "--daemon",
        "containerd",
        "--pidfile",
        "/nonexistent",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("semprep_last_run_exit_code{daemon=\"containerd\"} 0\n"),
        "{}",
        stdout(&o)
    );
}

/// `--output` and `--metrics-file` in a directory another user owns (the
/// textfile collector's, usually `prometheus`'s): links planted at the
/// target redirect nothing, a sticky world-writable directory is refused,
/// and a plain write leaves no temporary file. The planted temporary names
/// are covered in src/safe_write_tests.rs, which chooses them.
#[test]
fn output_and_metrics_file_in_another_users_directory_touch_nothing_else() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "2"]);
    let victim = sb.dir.join("victim");
    std::fs::write(&victim, "root's file\n").unwrap();
    let dir = sb.dir.join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let nobody = nix::unistd::Uid::from_raw(65534);
    nix::unistd::chown(&dir, Some(nobody), None).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("sym.prom")).unwrap();
    std::fs::hard_link(&victim, dir.join("hard.prom")).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    for name in ["sym.prom", "hard.prom"] {
        let runs: [&[&str]; 2] = [
            &["status", "--format", "prometheus", "--output", &path(name)],
            &["run", "--metrics-file", &path(name)],
        ];
        for args in runs {
            let o = sb.run(args);
            assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        }
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file\n");
    let o = sb.run(&[
        "status",
        "--format",
        "prometheus",
        "--min-age",
        "0",
        "--output",
        &path("ok.prom"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = sb.run(&[
        "run",
        "--min-age",
        "0",
        "--metrics-file",
        &path("hook.prom"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report = std::fs::read_to_string(dir.join("ok.prom")).unwrap();
    assert!(
        report.contains("semprep_dm_cookies{class=\"residual\"} 2\n"),
        "{report}"
    );
    let hook = std::fs::read_to_string(dir.join("hook.prom")).unwrap();
    assert!(hook.contains("semprep_last_run_cookies_removed"), "{hook}");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["hard.prom", "hook.prom", "ok.prom", "sym.prom"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file\n");

    // A sticky world-writable directory (like /tmp): anyone may plant names.
    let open = sb.dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let target = open.join("semprep.prom");
    let o = sb.run(&[
        "status",
        "--format",
        "prometheus",
        "--output",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(std::fs::read_dir(&open).unwrap().next().is_none());
}

/// The series of `daemon` in a hook file: family → value.
fn series_of(text: &str, daemon: &str) -> std::collections::BTreeMap<String, String> {
    let label = format!("{{daemon=\"{daemon}\"}} ");
    text.lines()
        .filter_map(|l| l.split_once(&label))
        .map(|(fam, v)| (fam.to_owned(), v.to_owned()))
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A run the time budget's watchdog ends (a /proc/sys/kernel/sem that never
/// answers: a FIFO bind-mounted over it) records that in --metrics-file:
/// timed out, the exit code it exits with (for exec the one run would
/// have), the time; what it changed is unknown, so those series of its
/// daemon are left out, never kept from the run before. The other daemons'
/// series stay, the file is replaced atomically (mode 0644, no temporary
/// file left), and --json still prints one document. Before the fix the
/// file kept the previous run's "all is well".
#[test]
fn the_watchdog_records_its_outcome_in_the_metrics_file() {
    let sb = Sandbox::new();
    let fifo = sb.dir.join("sem-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let file = sb.dir.join("hook.prom");
    let f = file.to_str().unwrap();
    let marker = sb.dir.join("program-ran");
    let m = marker.to_str().unwrap();
    // containerd's last start went through; it must stay in the file.
    let o = sb.run(&["run", "--daemon", "containerd", "--metrics-file", f]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let containerd = series_of(&std::fs::read_to_string(&file).unwrap(), "containerd");
    assert_eq!(containerd.len(), 7, "{containerd:?}");
    // (arguments, exit code of the process, exit code recorded)
    let cases: [(&[&str], i32, &str); 4] = [
        (&["run"], 0, "0"),
        (&["run", "--strict"], 1, "1"),
        (&["run", "--json"], 0, "0"),
        // exec starts its program anyway; the file has the code run
        // would have exited with.
        (
            &["exec", "--", "sh", "-c", "touch \"$0\"; exit 5", m],
            5,
            "0",
        ),
    ];
    for (args, exit, recorded) in cases {
        // docker's last start removed 2 cookies, in time.
        fixture(&["cookie", "--count", "2"]);
        let o = sb.run(&[
            "run",
            "--daemon",
            "docker",
            "--pidfile",
            "/nonexistent",
            "--min-age",
            "0",
            "--metrics-file",
            f,
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let before = series_of(&std::fs::read_to_string(&file).unwrap(), "docker");
        assert_eq!(before["semprep_last_run_cookies_removed"], "2");
        assert_eq!(before["semprep_last_run_timed_out"], "0");

        let started = unix_now();
        let (cmd, rest) = args.split_first().unwrap();
        let mut c = sb.semprep_with_kernel_sem(&fifo, false);
        c.arg(cmd)
            .args(["--daemon", "docker", "--pidfile", "/nonexistent"])
            .args(["--timeout", "300ms", "--metrics-file", f])
            .args(rest);
        let (status, out, err) = Bg::spawn(c, &sb.dir, "watchdog").finish();
        let what = format!("{args:?}: {err}");
        assert_eq!(status.code(), Some(exit), "{what}");
        assert!(
            err.contains("(--timeout) ran out while reading /proc/sys/kernel/sem"),
            "{what}"
        );
        if args.contains(&"--json") {
            // Exactly one document: from_str refuses anything after it.
            let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(doc["exit_code"], 0, "{what}");
        } else {
            assert_eq!(out, "", "{what}");
        }
        // The writer is a process of its own, which may finish just after
        // semprep exits or execs.
        let mut text = String::new();
        wait_until("the watchdog's outcome in the file", || {
            text = std::fs::read_to_string(&file).unwrap();
            series_of(&text, "docker").get("semprep_last_run_timed_out") == Some(&"1".into())
        });
        let docker = series_of(&text, "docker");
        assert_eq!(
            docker["semprep_last_run_exit_code"], recorded,
            "{what}\n{text}"
        );
        let ended: i64 = docker["semprep_last_run_timestamp_seconds"]
            .parse()
            .unwrap();
        assert!(ended >= started && ended <= unix_now(), "{what}\n{text}");
        for unknown in [
            "semprep_last_run_cookies_removed",
            "semprep_last_run_sets_skipped",
            "semprep_last_run_semmni_raised",
            "semprep_last_run_semaphore_sets_limit",
        ] {
            assert!(!docker.contains_key(unknown), "{what}: {unknown}\n{text}");
        }
        assert_eq!(series_of(&text, "containerd"), containerd, "{what}\n{text}");
        assert_eq!(text.matches("# TYPE ").count(), 7, "{what}\n{text}");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "{what}");
        let temp = std::fs::read_dir(&sb.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with(".semprep-tmp-"));
        assert_eq!(temp, None, "{what}");
    }
    assert!(marker.exists(), "exec did not start its program");
}

/// A dry run is no daemon start: `run --dry-run --metrics-file` (and exec)
/// leaves the real run's outcome in the file as it was, byte for byte, and
/// says so. Before the fix it replaced it with its own, without the lock.
#[test]
fn a_dry_run_leaves_the_last_real_outcome_in_the_metrics_file() {
    let sb = Sandbox::new();
    let file = sb.dir.join("hook.prom");
    let f = file.to_str().unwrap();
    fixture(&["cookie", "--count", "3"]);
    let o = sb.run(&["run", "--min-age", "0", "--metrics-file", f]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let real = std::fs::read(&file).unwrap();
    assert!(
        String::from_utf8_lossy(&real)
            .contains("semprep_last_run_cookies_removed{daemon=\"none\"} 3\n")
    );
    // Headroom short, no raise allowed: the dry run's verdict (exit 3)
    // stays its own.
    sb.limits("250 32000 32 10");
    let runs: [&[&str]; 3] = [
        &["run", "--dry-run", "--policy", "clean", "--metrics-file", f],
        &[
            "run",
            "-n",
            "--json",
            "--policy",
            "clean",
            "--metrics-file",
            f,
        ],
        &[
            "exec",
            "--dry-run",
            "--policy",
            "clean",
            "--metrics-file",
            f,
            "--",
            "true",
        ],
    ];
    for args in runs {
        let o = sb.run(args);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--dry-run: ")
                && stderr(&o).contains("keeps the last real run's outcome"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            real,
            "{args:?} rewrote the file"
        );
    }
    // SEMPREP_DRY_RUN from a settings file, too.
    let o = sb
        .semprep()
        .args(["run", "--policy", "clean", "--metrics-file", f])
        .env("SEMPREP_DRY_RUN", "yes")
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), real);
}

/// The hook file's owner (the textfile collector's user) swaps it for a
/// FIFO while a run waits for the lock, after the command line was
/// checked: the run must neither block on it nor follow it. It logs the
/// refusal and exits as it would have.
#[test]
fn a_fifo_planted_at_the_metrics_file_mid_run_does_not_block_the_start() {
    let sb = Sandbox::new();
    let dir = sb.dir.join("textfile");
    std::fs::create_dir(&dir).unwrap();
    nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let file = dir.join("hook.prom");
    std::fs::write(&file, "").unwrap();
    let lock = sb.lock_path();
    let mut holder = Proc::fixture(&["fcntl-hold", lock.to_str().unwrap()], true);
    let mut c = sb.semprep();
    c.args(["run", "--lock-timeout", "20s", "--metrics-file"])
        .arg(&file);
    let run = Bg::spawn(c, &sb.dir, "run");
    wait_until("the run to wait for the lock", || {
        has_open(run.pid(), &lock)
    });
    std::fs::remove_file(&file).unwrap();
    nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    holder.kill();
    let (status, _, err) = run.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("cannot write the run's metrics") && err.contains("is not a regular file"),
        "{err}"
    );
}

//! What semprep prints, against the real kernel, each test in its own IPC
//! namespace: every `--json` run prints exactly one complete document, with
//! the error and the exit code in it, whichever way the run ends; a failed
//! write to stdout is a failure; skipped sets are logged once per reason.

mod common;
use common::*;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// The one JSON document on stdout: exactly one, complete, newline-ended.
fn one_doc(out: &[u8], what: &str) -> Value {
    let text = std::str::from_utf8(out).unwrap_or_else(|e| panic!("{what}: stdout: {e}"));
    assert!(
        text.ends_with('\n'),
        "{what}: no complete document: {:.300}",
        text
    );
    let mut docs = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let doc = docs
        .next()
        .unwrap_or_else(|| panic!("{what}: no JSON document on stdout"))
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:.300}"));
    assert!(docs.next().is_none(), "{what}: more than one document");
    assert_eq!(doc["schema"], 2, "{what}");
    doc
}

/// Checks an error document: `exit_code` is the process's, `error` carries
/// the error's own code and a message with `words`.
fn error_doc(out: &[u8], exit: i32, error_code: i32, words: &str, what: &str) -> Value {
    let doc = one_doc(out, what);
    assert_eq!(doc["exit_code"], exit, "{what}: {doc}");
    assert_eq!(doc["error"]["code"], error_code, "{what}: {doc}");
    let message = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(words),
        "{what}: {words:?} not in {message:?}"
    );
    doc
}

/// A command that may hang, with stdout and stderr in files; killed after
/// 30 s. Returns the status, stdout and stderr.
fn bounded(mut cmd: Command, dir: &Path, name: &str) -> (ExitStatus, Vec<u8>, String) {
    let (out, err) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    let mut p = Proc(cmd.spawn().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name}: still running after 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status,
        std::fs::read(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    )
}

/// `args` with `options` right after the subcommand (before any `--`).
fn after_command<'a>(args: &[&'a str], options: &[&'a str]) -> Vec<&'a str> {
    let (command, rest) = args.split_at(1);
    [command, options, rest].concat()
}

/// Holds the sandbox's lock file with both a flock and a POSIX record lock,
/// so that it is busy whichever kind semprep takes.
fn hold_lock(sb: &Sandbox) -> [Proc; 2] {
    let path = sb.lock_path();
    let path = path.to_str().unwrap();
    [
        Proc::fixture(&["flock-hold", path], true),
        Proc::fixture(&["fcntl-hold", path], true),
    ]
}

// ----------------------------------------------- one document, every path

#[test]
fn json_reports_a_busy_lock_and_a_spent_budget() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();
    let _holders = hold_lock(&sb);
    // (arguments, exit code, words of the message)
    let cases: [(&[&str], i32, &str); 6] = [
        (&["run", "--lock-timeout", "200ms"], 0, "lock file"),
        (
            &["run", "--strict", "--lock-timeout", "200ms"],
            4,
            "lock file",
        ),
        (&["clean", "--lock-timeout", "200ms"], 4, "lock file"),
        // The time budget runs out during the lock wait.
        (
            &["run", "--lock-timeout", "60s", "--timeout", "1s"],
            0,
            "--timeout",
        ),
        (
            &[
                "run",
                "--strict",
                "--lock-timeout",
                "60s",
                "--timeout",
                "1s",
            ],
            4,
            "--timeout",
        ),
        (
            &["clean", "--lock-timeout", "60s", "--timeout", "1s"],
            4,
            "--timeout",
        ),
    ];
    for (args, exit, words) in cases {
        let o = sb
            .semprep()
            .args(args)
            .args(["--json", "--min-age", "0"])
            .output()
            .unwrap();
        let what = format!("{args:?}: {}", stderr(&o));
        assert_eq!(code(&o), exit, "{what}");
        let doc = error_doc(&o.stdout, exit, 4, words, &what);
        assert_eq!(doc["command"], args[0], "{what}");
        assert_eq!(
            doc["policy"],
            if args[0] == "run" { "auto" } else { "clean" }
        );
        // The lock comes before the snapshot: nothing of it is known.
        for part in ["limits", "sets", "plan", "usage", "result"] {
            assert_eq!(doc[part], Value::Null, "{what}: {part}");
        }
        assert_eq!(sysvipc(), ipc, "{what}");
    }
}

/// The watchdog is the backstop for a step that hangs in the kernel: a FIFO
/// on /proc/sys/kernel/sem hangs the snapshot's read until it fires.
#[test]
fn json_reports_the_watchdog_ending_the_run() {
    let sb = Sandbox::new();
    let fifo = sb.dir.join("sem-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let marker = sb.dir.join("program-ran");
    let m = marker.to_str().unwrap();
    // (arguments, exit code of the process, exit_code in the document)
    let cases: [(&[&str], i32, i32); 4] = [
        (&["run"], 0, 0),
        (&["run", "--strict"], 1, 1),
        (&["clean"], 1, 1),
        // exec starts its program anyway, after the document.
        (&["exec", "--", "sh", "-c", "touch \"$0\"; exit 5", m], 5, 0),
    ];
    for (args, exit, doc_exit) in cases {
        let all = after_command(args, &["--json", "--timeout", "1s"]);
        let mut c = sb.semprep_with_kernel_sem(&fifo, false);
        c.args(&all);
        let t = Instant::now();
        let (status, out, err) = bounded(c, &sb.dir, "watchdog");
        let what = format!("{args:?}: {err}");
        assert_eq!(status.code(), Some(exit), "{what}");
        assert!(t.elapsed() >= Duration::from_secs(1), "{what}: too early");
        let doc = error_doc(&out, doc_exit, 1, "time budget of 1s", &what);
        assert_eq!(doc["command"], args[0], "{what}");
        assert_eq!(doc["limits"], Value::Null, "{what}");
    }
    assert!(marker.exists(), "exec did not start its program");
}

#[test]
fn json_reports_bad_input_found_after_parsing() {
    let sb = Sandbox::new();
    let ids = fixture(&["cookie", "--count", "2"]);
    let ipc = sysvipc();

    // A non-root run that would change state.
    for args in [&["run"][..], &["clean"], &["raise", "--semmni", "999"]] {
        let o = sb.run_as_nobody(&[args, &["--json"]].concat());
        let what = format!("{args:?} as nobody: {}", stderr(&o));
        assert_eq!(code(&o), 2, "{what}");
        error_doc(&o.stdout, 2, 2, "needs root", &what);
    }

    // A /proc/sys/kernel/sem that is not four numbers.
    let fake = sb.dir.join("sem");
    std::fs::write(&fake, "250 32000 x 128\n").unwrap();
    for args in [&["run"][..], &["status"], &["clean", "-n"]] {
        let mut all = args.to_vec();
        all.push("--json");
        let o = sb
            .semprep_with_kernel_sem(&fake, false)
            .args(&all)
            .output()
            .unwrap();
        let what = format!("{args:?} with a malformed kernel.sem: {}", stderr(&o));
        assert_eq!(code(&o), 2, "{what}");
        let doc = error_doc(&o.stdout, 2, 2, "malformed /proc/sys/kernel/sem", &what);
        assert_eq!(doc["limits"], Value::Null, "{what}");
    }

    // An unsafe lock path.
    let link = sb.dir.join("link.lock");
    std::os::unix::fs::symlink(sb.dir.join("elsewhere"), &link).unwrap();
    for cmd in ["run", "clean"] {
        let o = sb
            .semprep()
            .args([cmd, "--json", "--min-age", "0"])
            .env("SEMPREP_LOCK_FILE", &link)
            .output()
            .unwrap();
        let what = format!("{cmd} with a symlinked lock file: {}", stderr(&o));
        assert_eq!(code(&o), 2, "{what}");
        error_doc(&o.stdout, 2, 2, "is a symbolic link", &what);
    }

    // A target the kernel cannot take, found once the snapshot is read: the
    // document has the limits, no plan.
    let o = sb.run(&["raise", "--json", "--semmni", "40000"]);
    let what = format!("raise --semmni 40000: {}", stderr(&o));
    assert_eq!(code(&o), 2, "{what}");
    let doc = error_doc(&o.stdout, 2, 2, "40000", &what);
    assert!(doc["limits"]["semmni"].is_u64(), "{what}: {doc}");
    assert_eq!(doc["plan"], Value::Null, "{what}");
    assert_eq!(doc["sets"], Value::Null, "{what}");

    assert_eq!(sysvipc(), ipc);
    assert_eq!(semids(), ids);
}

#[test]
fn json_reports_usage_errors_that_clap_finds() {
    // (arguments, environment, words of the message)
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (&["run", "--json", "--bogus"], None, "--bogus"),
        (&["status", "--json", "--min-age", "x"], None, "--min-age"),
        (&["run", "--timeout", "x"], Some("yes"), "--timeout"),
        (&["--json", "--policy", "never"], None, "--policy"),
    ];
    for (args, env, words) in cases {
        let mut c = semprep_without_sandbox();
        c.args(args);
        if let Some(v) = env {
            c.env("SEMPREP_JSON", v);
        }
        let o = c.output().unwrap();
        let what = format!("{args:?} SEMPREP_JSON={env:?}: {}", stderr(&o));
        assert_eq!(code(&o), 2, "{what}");
        // clap's own message stays on stderr.
        assert!(stderr(&o).contains(words), "{what}");
        let doc = error_doc(&o.stdout, 2, 2, words, &what);
        let command = if args[0] == "status" { "status" } else { "run" };
        assert_eq!(doc["command"], command, "{what}");
        assert_eq!(doc["policy"], Value::Null, "{what}");
    }
    // Without --json, stdout stays empty; SEMPREP_JSON=no is not --json.
    for env in [None, Some("no")] {
        let mut c = semprep_without_sandbox();
        c.args(["run", "--bogus"]);
        if let Some(v) = env {
            c.env("SEMPREP_JSON", v);
        }
        let o = c.output().unwrap();
        assert_eq!(code(&o), 2);
        assert_eq!(stdout(&o), "", "{env:?}");
    }
}

#[test]
fn json_reports_a_live_daemon_and_short_headroom() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 40");
    let cookies = fixture(&["cookie", "--count", "4"]);
    // A live dockerd: a `sleep` under that name, and its pidfile.
    let dockerd = named_sleeper(&sb.dir, "dockerd");
    let pidfile = sb.dir.join("docker.pid");
    std::fs::write(&pidfile, format!("{}\n", dockerd.pid())).unwrap();
    let pf = pidfile.to_str().unwrap();
    let ipc = sysvipc();
    let live = ["--daemon", "docker", "--pidfile", pf, "--min-age", "0"];
    for (cmd, exit) in [("run", 4), ("clean", 4), ("exec", 6)] {
        let mut c = sb.semprep();
        c.arg(cmd).args(live).arg("--json");
        if cmd == "exec" {
            c.args(["--", "sh", "-c", "exit 6"]);
        }
        let o = c.output().unwrap();
        let what = format!("{cmd} under a live dockerd: {}", stderr(&o));
        assert_eq!(code(&o), exit, "{what}");
        // exec: the document has semprep's code; then the program ran.
        let doc = error_doc(&o.stdout, 4, 4, "dockerd", &what);
        assert_eq!(doc["sets"].as_array().map(Vec::len), Some(4), "{what}");
        assert_eq!(doc["plan"]["remove"].as_array().map(Vec::len), Some(4));
        assert_eq!(doc["result"], Value::Null, "{what}");
        assert_eq!(sysvipc(), ipc, "{what}");
    }

    // Headroom short: 4 cookies, 36 unrelated sets of SEMMNI 40.
    fixture(&["unrelated", "--count", "36"]);
    for args in [
        &["run", "--policy", "clean"][..],
        &["clean"],
        &["clean", "--dry-run"],
    ] {
        let o = sb.run(&[args, &["--json", "--min-age", "0"]].concat());
        let what = format!("{args:?} with headroom short: {}", stderr(&o));
        assert_eq!(code(&o), 3, "{what}");
        let doc = error_doc(&o.stdout, 3, 3, "headroom still short", &what);
        assert_eq!(doc["limits"]["semmni"], 40, "{what}");
        assert_eq!(doc["plan"]["verdict"], "short", "{what}");
    }
    assert!(cookies.iter().all(|id| !semids().contains(id)));

    // All is well: the same document, with no error.
    let o = sb.run(&["status", "--json"]);
    let doc = one_doc(&o.stdout, "status");
    assert_eq!(
        (doc["exit_code"].clone(), doc["error"].clone()),
        (0.into(), Value::Null)
    );
}

// ------------------------------------------------------------ the reader

/// The budget bounds the work, not the reader: a reader that waits longer
/// than --timeout before reading a 7 MB document still gets all of it.
#[test]
fn a_slow_reader_gets_the_whole_document() {
    let sb = Sandbox::new();
    sb.limits("32000 1024000000 500 32000");
    let n = 30_000;
    assert_eq!(fixture(&["cookie", "--count", &n.to_string()]).len(), n);
    // Young cookies: nothing is removed, every set is in the document.
    for args in [
        &["run", "--json", "--min-age", "1h", "--timeout", "1s"][..],
        &["status", "--json"],
    ] {
        let mut child = Proc(
            sb.semprep()
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_secs(3));
        let mut out = Vec::new();
        use std::io::Read;
        child
            .0
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        let status = child.0.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}");
        let doc = one_doc(&out, &format!("{args:?}"));
        assert_eq!(doc["sets"].as_array().map(Vec::len), Some(n), "{args:?}");
        assert!(out.len() > 5_000_000, "{args:?}: only {} bytes", out.len());
    }
}

/// A report that cannot be written is semprep's failure (the hook policy
/// applies in run and exec); a reader that closes the pipe early is not.
#[test]
fn stdout_write_failures_fail_and_a_closed_pipe_does_not() {
    let sb = Sandbox::new();
    let full = || File::options().write(true).open("/dev/full").unwrap();
    let marker = sb.dir.join("program-ran");
    let m = marker.to_str().unwrap();
    // (arguments, exit code, whether the hook policy let it pass)
    let cases: [(&[&str], i32, bool); 10] = [
        (&["status", "--json"], 1, false),
        (&["status"], 1, false),
        (&["clean", "--json", "--min-age", "0"], 1, false),
        (&["clean", "--dry-run", "--min-age", "0"], 1, false),
        (&["raise", "--json"], 1, false),
        (&["run", "--json", "--min-age", "0"], 0, true),
        (&["run", "--dry-run", "--min-age", "0"], 0, true),
        (&["run", "--json", "--strict", "--min-age", "0"], 1, false),
        (
            &[
                "exec",
                "--json",
                "--min-age",
                "0",
                "--",
                "sh",
                "-c",
                "exit 5",
            ],
            5,
            true,
        ),
        (&["exec", "--json", "--strict", "--", "touch", m], 1, false),
    ];
    for (args, exit, passed) in cases {
        fixture(&["cookie", "--count", "2"]);
        let o = sb.semprep().args(args).stdout(full()).output().unwrap();
        let err = stderr(&o);
        let what = format!("{args:?} >/dev/full: {err}");
        assert_eq!(code(&o), exit, "{what}");
        assert!(
            err.contains("semprep: error: cannot write the report to stdout: No space left"),
            "{what}"
        );
        assert_eq!(
            err.contains("letting the daemon start anyway"),
            passed,
            "{what}"
        );
    }
    assert!(!marker.exists(), "exec --strict ran its program");

    // `semprep status | head -1`: quiet, and a success.
    fixture(&["cookie", "--count", "3000"]);
    for args in [&["status"][..], &["status", "--json"]] {
        let mut child = sb
            .semprep()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 100];
        use std::io::Read;
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

// ---------------------------------------------------------------- logging

/// Runs that do not share a lock (each its own lock file) race on the same
/// cookies, as `dmsetup udevcomplete_all` or a second installation would:
/// the sets one removes are gone before the others' removals.
/// `--output` on a full file system: a failure that names the file once,
/// and the old report stays whole.
#[test]
fn an_output_file_that_cannot_be_written_is_named_once_and_kept() {
    let sb = Sandbox::new();
    let dir = sb.dir.join("full");
    std::fs::create_dir(&dir).unwrap();
    let report = dir.join("report");
    let script = format!(
        "mount -t tmpfs -o size=8k,mode=0755 tmpfs {d} && echo old >{r} && \
         {{ head -c 8192 /dev/zero >{d}/fill; \"$0\" status --output {r}; rc=$?; cat {r}; \
         exit $rc; }}",
        d = dir.display(),
        r = report.display()
    );
    let o = sb.semprep_in_private_mounts(&script).output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains(&format!(
            "semprep: error: cannot write the report to --output: {}: ",
            report.display()
        )) && err.contains("No space left on device"),
        "{err}"
    );
    let path = report.display().to_string();
    assert_eq!(
        err.matches(&path).count(),
        1,
        "the file named more than once: {err}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "old\n", "{err}");
}

#[test]
fn skipped_sets_are_logged_once_per_reason() {
    const COOKIES: usize = 20_000;
    const RUNS: usize = 6;
    let sb = Sandbox::new();
    sb.limits("32000 1024000000 500 32000");
    let mut raced = 0;
    for round in 0..5 {
        let cookies = fixture(&["cookie", "--count", &COOKIES.to_string()]);
        assert_eq!(cookies.len(), COOKIES);
        let runs: Vec<(bool, Proc, PathBuf, PathBuf)> = (0..RUNS)
            .map(|i| {
                let verbose = i % 2 == 1;
                let (out, err) = (
                    sb.dir.join(format!("run{i}.out")),
                    sb.dir.join(format!("run{i}.err")),
                );
                let mut c = sb.semprep();
                c.args(["run", "--json", "--min-age", "0"])
                    .env("SEMPREP_LOCK_FILE", sb.dir.join(format!("run{i}.lock")))
                    .stdout(File::create(&out).unwrap())
                    .stderr(File::create(&err).unwrap());
                if verbose {
                    c.arg("--verbose");
                }
                (verbose, Proc(c.spawn().unwrap()), out, err)
            })
            .collect();
        let mut removed = Vec::new();
        for (i, (verbose, mut p, out, err)) in runs.into_iter().enumerate() {
            let status = p.0.wait().unwrap();
            let err = std::fs::read_to_string(err).unwrap();
            let what = format!("round {round}, run {i}");
            assert_eq!(status.code(), Some(0), "{what}: {err}");
            let doc = one_doc(&std::fs::read(out).unwrap(), &what);
            let skipped = doc["result"]["skipped"].as_array().unwrap();
            let gone = skipped
                .iter()
                .filter(|s| s["why"] == "gone before removal")
                .count();
            assert_eq!(gone, skipped.len(), "{what}: {skipped:?}");
            removed.extend(
                doc["result"]["removed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap()),
            );
            raced += usize::from(gone > 0);
            eprintln!("round {round}, run {i}: {gone} gone before removal");

            let info: Vec<&str> = err
                .lines()
                .filter(|l| l.starts_with("semprep: skipped "))
                .collect();
            let want = match gone {
                0 => vec![],
                1 => vec![
                    "semprep: skipped 1 set: gone before removal (removed by another \
                           process since they were read)"
                        .to_owned(),
                ],
                n => vec![format!(
                    "semprep: skipped {n} sets: gone before removal (removed by another \
                     process since they were read)"
                )],
            };
            assert_eq!(info, want, "{what}");
            let per_set = err
                .lines()
                .filter(|l| l.starts_with("semprep: debug: kept semid "))
                .count();
            assert_eq!(per_set, if verbose { gone } else { 0 }, "{what}");
            assert!(
                !err.contains("semprep: kept"),
                "{what}: per-set line at info"
            );
        }
        assert_eq!(
            removed.len(),
            COOKIES,
            "round {round}: not each cookie once"
        );
        removed.sort();
        removed.dedup();
        assert_eq!(
            removed.len(),
            COOKIES,
            "round {round}: a cookie removed twice"
        );
        assert_eq!(semids(), Vec::<i32>::new(), "round {round}");
        if raced > 0 {
            return;
        }
    }
    panic!("CANNOT RUN: in 5 rounds no run found a set gone before its removal");
}

//! The command line: help, exit codes, bad input (exit 2, nothing changed),
//! and the SEMPREP_* environment.

mod common;
use common::*;

#[test]
fn help_for_every_subcommand() {
    let o = unprivileged(&["--help"]);
    assert_eq!(code(&o), 0);
    let top = stdout(&o);
    for word in [
        "run",
        "status",
        "clean",
        "raise",
        "exec",
        "Exit codes",
        "SEMMNI",
    ] {
        assert!(top.contains(word), "{word} missing from --help:\n{top}");
    }
    for (sub, words) in [
        (
            "run",
            &[
                "--dry-run",
                "--min-age",
                "--policy",
                "--persist",
                "SEMPREP_MIN_AGE",
                "--strict",
            ][..],
        ),
        ("status", &["--json", "--min-age", "--reserve"]),
        (
            "clean",
            &["--dry-run", "--daemon", "--force", "--lock-timeout"],
        ),
        ("raise", &["--semmni", "--max-semmni", "--persist"]),
        ("exec", &["PROGRAM", "--timeout", "--daemon"]),
    ] {
        let o = unprivileged(&[sub, "--help"]);
        assert_eq!(code(&o), 0, "{sub} --help");
        let text = stdout(&o);
        for w in words {
            assert!(text.contains(w), "{w} missing from `{sub} --help`:\n{text}");
        }
    }
    let o = unprivileged(&["--version"]);
    assert!(stdout(&o).starts_with("semprep "), "{}", stdout(&o));
}

/// Bad input exits 2, names the option (or variable) and what is allowed,
/// and changes nothing.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 64");
    fixture(&["unrelated", "--count", "60"]);
    fixture(&["cookie", "--count", "4"]);
    let (ipc, sem) = (sysvipc(), kernel_sem());
    // (arguments, environment, words the message must contain)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &["--policy", "bogus"],
            &[],
            &["--policy", "bogus", "auto", "clean", "raise", "report"],
        ),
        (&["--min-age", "soon"], &[], &["--min-age", "soon", "90s"]),
        (&["--min-age", "-5m"], &[], &["--min-age"]),
        (&["--reserve", "-1"], &[], &["--reserve"]),
        (&["--reserve", "lots"], &[], &["--reserve", "lots"]),
        (&["--max-semmni", "0"], &[], &["--max-semmni"]),
        (
            &["--max-semmni", "99999999"],
            &[],
            &["--max-semmni", "16777216"],
        ),
        (&["raise", "--semmni", "x"], &[], &["--semmni"]),
        (&["status", "--persist"], &[], &["--persist"]),
        (&["status", "--dry-run"], &[], &["--dry-run"]),
        (&["raise", "--min-age", "0"], &[], &["--min-age"]),
        (&["raise", "--force"], &[], &["--force"]),
        (&["clean", "--policy", "auto"], &[], &["--policy"]),
        (&["clean", "--semmni", "100"], &[], &["--semmni"]),
        (&["bogus"], &[], &["bogus"]),
        (&["run", "-v", "-q"], &[], &["--quiet"]),
        (&[], &[("SEMPREP_POLICY", "bogus")], &["--policy", "bogus"]),
        (&[], &[("SEMPREP_MIN_AGE", "abc")], &["--min-age", "abc"]),
        (&[], &[("SEMPREP_RESERVE", "-3")], &["--reserve"]),
        (
            &[],
            &[("SEMPREP_DRY_RUN", "maybe")],
            &["--dry-run", "maybe"],
        ),
        (
            &["clean"],
            &[("SEMPREP_LOCK_TIMEOUT", "1 hour")],
            &["--lock-timeout"],
        ),
        (
            &["raise"],
            &[("SEMPREP_MAX_SEMMNI", "-1")],
            &["--max-semmni"],
        ),
    ];
    for (args, env, words) in cases {
        let o = sb
            .semprep()
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{args:?} {env:?}: {}", stderr(&o));
        let err = stderr(&o);
        for w in *words {
            assert!(
                err.contains(w),
                "{args:?} {env:?}: {w:?} missing from: {err}"
            );
        }
        assert_eq!(
            (sysvipc(), kernel_sem()),
            (ipc.clone(), sem.clone()),
            "{args:?} {env:?}"
        );
    }
}

#[test]
fn command_line_beats_environment() {
    let sb = Sandbox::new();
    let ids = fixture(&["cookie", "--count", "3"]);
    // The environment says: report only. The command line says: clean.
    let o = sb
        .semprep()
        .args(["--policy", "clean", "--min-age", "0"])
        .env("SEMPREP_POLICY", "report")
        .env("SEMPREP_MIN_AGE", "1h")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(ids.iter().all(|id| !semids().contains(id)), "cookies left");

    // And the environment alone is honoured.
    let ids = fixture(&["cookie", "--count", "2"]);
    let o = sb
        .semprep()
        .env("SEMPREP_MIN_AGE", "0")
        .env("SEMPREP_DRY_RUN", "yes")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), ids, "SEMPREP_DRY_RUN=yes changed something");
    assert!(stdout(&o).contains("would remove"), "{}", stdout(&o));
}

#[test]
fn quiet_when_all_is_well_and_json_when_asked() {
    let sb = Sandbox::new();
    let o = sb.run(&[]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        (stdout(&o), stderr(&o)),
        (String::new(), String::new()),
        "nothing to do must be silent"
    );
    let o = sb.run(&["-v"]);
    assert!(
        stderr(&o).contains("semprep: debug: nothing to do"),
        "{}",
        stderr(&o)
    );

    fixture(&["cookie", "--count", "2"]);
    let o = sb.run(&["run", "--json", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["schema"], 2);
    assert_eq!(doc["command"], "run");
    assert_eq!(doc["result"]["removed"].as_array().unwrap().len(), 2);
    assert_eq!(doc["sets"][0]["class"], "residual");
    assert_eq!(doc["exit_code"], 0);
}

#[test]
fn journal_priority_prefixes_only_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let sb = Sandbox::new();
    fixture(&["cookie"]);
    // JOURNAL_STREAM names stderr's device and inode, as systemd sets it.
    let err_path = sb.dir.join("stderr");
    let file = std::fs::File::create(&err_path).unwrap();
    let meta = file.metadata().unwrap();
    let o = sb
        .semprep()
        .args(["--min-age", "0"])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(file)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(err.starts_with("<6>semprep: removed 1 residual"), "{err}");

    // A JOURNAL_STREAM that names another file: no prefixes.
    fixture(&["cookie"]);
    let o = sb
        .semprep()
        .args(["--min-age", "0"])
        .env("JOURNAL_STREAM", "1:1")
        .output()
        .unwrap();
    assert!(
        stderr(&o).starts_with("semprep: removed 1 residual"),
        "{}",
        stderr(&o)
    );
}

/// A bare word is a mistyped command, not an argument of `run` (which
/// takes none): clap names the nearest command, exit 2.
#[test]
fn mistyped_command_gets_a_suggestion() {
    for (typo, meant) in [
        ("stauts", "status"),
        ("statsu", "status"),
        ("clen", "clean"),
        ("rasie", "raise"),
        ("exce", "exec"),
        ("runn", "run"),
    ] {
        let o = unprivileged(&[typo, "--json"]);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{typo}: {err}");
        // `clen` is near both `clean` and `complete`: clap names both.
        let tip = err.lines().find(|l| l.contains("similar subcommand"));
        assert!(
            tip.is_some_and(|t| t.contains(&format!("'{meant}'"))),
            "{typo}: no suggestion of {meant}: {err}"
        );
        assert!(!err.contains("semprep run [OPTIONS]"), "{typo}: {err}");
        // Under --json, stdout has the one document, carrying the error.
        let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(doc["exit_code"], 2, "{typo}");
        let msg = doc["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(&format!("'{typo}'")), "{typo}: {msg}");
    }
    // Far from every command: still named as an unknown command.
    let o = unprivileged(&["frobnicate"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        stderr(&o)
    );
    // Options without a command still mean `semprep run`.
    let o = unprivileged(&["--no-such-option"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("Usage: semprep run"), "{}", stderr(&o));
}

/// `semprep --help` (and -h, and `semprep help`) says what `semprep` alone
/// does and lists the options it takes, which are run's.
#[test]
fn top_level_help_shows_what_semprep_alone_does() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let o = unprivileged(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let text = stdout(&o);
        for word in [
            "semprep run",
            "--dry-run",
            "--json",
            "--policy",
            "--min-age",
            "--daemon",
            "--strict",
            "Exit codes",
            "status",
        ] {
            assert!(text.contains(word), "{word} missing from {args:?}:\n{text}");
        }
    }
    let long = stdout(&unprivileged(&["--help"]));
    assert!(long.contains("SEMPREP_DRY_RUN"), "{long}");
    // Run's own help is unchanged: its options once, no command list.
    let run = stdout(&unprivileged(&["run", "--help"]));
    assert_eq!(run.matches("--dry-run").count(), 1, "{run}");
    assert!(!run.contains("Commands:"), "{run}");
}

/// What a first run with one leaked cookie reads: counts agree with their
/// nouns, one set of 128 is not "0%", and a dry run says what the real run
/// would come to (never "fixed" when nothing changed).
#[test]
fn wording_a_new_user_reads() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 128");
    let o = sb.run(&["-n"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o)
            .trim_end()
            .ends_with(": ready: nothing to change"),
        "{}",
        stdout(&o)
    );

    fixture(&["cookie"]);
    let o = sb.run(&["status", "--min-age", "0"]);
    assert_eq!(
        stdout(&o).lines().last().unwrap_or_default(),
        "semaphore sets 1/128 (<1%): 1 dm cookie (1 residual, 0 busy); semaphores 1/32000"
    );
    let o = sb.run(&["-n", "--min-age", "0"]);
    assert!(
        stdout(&o)
            .trim_end()
            .ends_with(": ready already; would still make the changes above"),
        "{}",
        stdout(&o)
    );
    let o = sb.run(&["--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(
            "semprep: removed 1 residual dm cookie (0 busy kept, 0 look-alike sets left alone); \
             semaphore sets in use 1 -> 0 of SEMMNI 128"
        ),
        "{}",
        stderr(&o)
    );

    // Short before, enough once the 20 residual cookies are gone.
    sb.limits("250 32000 32 60");
    fixture(&["cookie", "--count", "20"]);
    fixture(&["unrelated", "--count", "20"]);
    let o = sb.run(&["-n", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o)
            .trim_end()
            .ends_with(": would fix: enough headroom after the changes above"),
        "{}",
        stdout(&o)
    );
    // `clean` leaves 20 unrelated sets of 51: 31 free, one short of the reserve.
    sb.limits("250 32000 32 51");
    let o = sb.run(&["clean", "-n", "--min-age", "0"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stdout(&o)
            .trim_end()
            .ends_with(": still short: the daemon's start would fail"),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains(
            "`semprep clean` never raises the limit; run `semprep raise` or `semprep run`"
        ) && !err.contains("policy clean"),
        "{err}"
    );
}

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

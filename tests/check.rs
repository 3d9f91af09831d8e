//! `semprep check` on the real kernel, each state in its own IPC
//! namespace: the exit code, the first line and its perfdata parsed back
//! (the monitoring-plugins guidelines), and `--format npd`.

mod common;
use common::*;
use std::collections::BTreeMap;

/// A first line parsed back: state, summary, perfdata label → the five
/// fields (value with its unit, warn, crit, min, max).
#[derive(Debug)]
struct Line {
    state: String,
    summary: String,
    perf: BTreeMap<String, Vec<String>>,
}

fn parse(out: &str) -> Line {
    assert_eq!(out.lines().count(), 1, "more than one line: {out:?}");
    let line = out.trim_end_matches('\n');
    let rest = line
        .strip_prefix("SEMPREP ")
        .unwrap_or_else(|| panic!("no SEMPREP prefix: {line}"));
    let (state, rest) = rest.split_once(" - ").unwrap();
    // As Nagios and Icinga read it: the perfdata starts at the first `|`.
    let (summary, perf) = rest.split_once('|').unwrap_or((rest, ""));
    let (summary, perf) = (summary.trim_end(), perf.trim_start());
    let mut parsed = BTreeMap::new();
    for item in perf.split_whitespace() {
        // 'label'=value[UOM];warn;crit;min;max
        let (label, fields) = item.split_once('=').unwrap();
        let label = label
            .strip_prefix('\'')
            .and_then(|l| l.strip_suffix('\''))
            .unwrap_or_else(|| panic!("label not quoted: {item}"));
        let fields: Vec<String> = fields.split(';').map(str::to_owned).collect();
        assert_eq!(fields.len(), 5, "{item}");
        assert!(fields[0].parse::<u64>().is_ok(), "value: {item}");
        for f in &fields[1..] {
            assert!(f.is_empty() || f.parse::<u64>().is_ok(), "field: {item}");
        }
        parsed.insert(label.to_owned(), fields);
    }
    Line {
        state: state.to_owned(),
        summary: summary.to_owned(),
        perf: parsed,
    }
}

fn check(sb: &Sandbox, args: &[&str]) -> (i32, Line) {
    let mut all = vec!["check", "--min-age", "0", "--stuck-after", "0"];
    all.extend_from_slice(args);
    let o = sb.run(&all);
    (code(&o), parse(&stdout(&o)))
}

fn npd(sb: &Sandbox, args: &[&str]) -> (i32, String) {
    let mut all = vec![
        "check",
        "--format",
        "npd",
        "--min-age",
        "0",
        "--stuck-after",
        "0",
    ];
    all.extend_from_slice(args);
    let o = sb.run(&all);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let line = out.trim_end().to_owned();
    assert!(line.chars().count() <= 80, "longer than 80: {line}");
    (code(&o), line)
}

fn perf(l: &Line, label: &str) -> Vec<String> {
    l.perf
        .get(label)
        .unwrap_or_else(|| panic!("no {label}: {l:?}"))
        .clone()
}

#[test]
fn ok_then_warning_by_residual_cookies() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 1000");
    let (c, l) = check(&sb, &[]);
    assert_eq!((c, l.state.as_str()), (0, "OK"), "{l:?}");
    assert_eq!(perf(&l, "sets_in_use"), ["0", "800", "950", "0", "1000"]);
    assert_eq!(perf(&l, "residual"), ["0", "0", "", "0", ""]);
    assert_eq!(
        npd(&sb, &[]),
        (
            0,
            "OK: 0/1000 sets in use, 0 dm cookies (0 residual, 0 busy, 0 stuck)".into()
        )
    );
    fixture(&["cookie", "--count", "3"]);
    let (c, l) = check(&sb, &[]);
    assert_eq!((c, l.state.as_str()), (1, "WARNING"), "{l:?}");
    assert!(l.summary.contains("3 residual dm cookies"), "{l:?}");
    assert_eq!(perf(&l, "residual")[0], "3");
    assert_eq!(perf(&l, "sets_in_use")[0], "3");
    assert_eq!(npd(&sb, &["--only", "residual"]).0, 1);
    // The one aspect NPD's headroom rule asks about is fine.
    assert_eq!(npd(&sb, &["--only", "headroom"]).0, 0);
}

#[test]
fn warning_and_critical_by_usage_thresholds() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 200");
    fixture(&["unrelated", "--count", "161"]); // 80.5% of 200
    let (c, l) = check(&sb, &["--reserve", "0"]);
    assert_eq!((c, l.state.as_str()), (1, "WARNING"), "{l:?}");
    assert!(l.summary.contains("above --warning 80%"), "{l:?}");
    assert_eq!(perf(&l, "sets_in_use"), ["161", "160", "190", "0", "200"]);
    let (c, l) = check(
        &sb,
        &["--reserve", "0", "--warning", "50", "--critical", "80"],
    );
    assert_eq!((c, l.state.as_str()), (2, "CRITICAL"), "{l:?}");
    assert!(l.summary.contains("above --critical 80%"), "{l:?}");
    assert_eq!(npd(&sb, &["--reserve", "0", "--only", "usage"]).0, 1);
}

#[test]
fn critical_by_short_headroom() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 40");
    fixture(&["unrelated", "--count", "10"]); // 30 free, reserve 32
    let (c, l) = check(&sb, &["--only", "headroom"]);
    assert_eq!((c, l.state.as_str()), (2, "CRITICAL"), "{l:?}");
    assert!(l.summary.contains("headroom short: 30 free sets"), "{l:?}");
    let (c, line) = npd(&sb, &["--only", "headroom"]);
    assert_eq!(c, 1);
    assert!(line.starts_with("CRITICAL: headroom short"), "{line}");
}

#[test]
fn critical_by_a_stuck_cookie() {
    let sb = Sandbox::new();
    let id = fixture(&["cookie", "--state", "ops", "--ops", "1"])[0];
    let _w = Proc::fixture(&["udev-wait", &id.to_string()], false);
    wait_until("the waiter to block", || {
        semprep::sysv::get_zcnt(id).ok() == Some(1)
    });
    let (c, l) = check(&sb, &[]);
    assert_eq!((c, l.state.as_str()), (2, "CRITICAL"), "{l:?}");
    assert!(l.summary.contains("1 stuck dm cookie"), "{l:?}");
    assert_eq!(perf(&l, "stuck"), ["1", "", "0", "0", ""]);
    // Younger than --stuck-after: busy, and OK.
    let o = sb.run(&["check", "--stuck-after", "1h"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert_eq!(npd(&sb, &["--only", "stuck"]).0, 1);
}

#[test]
fn unknown_on_bad_input_and_on_what_it_cannot_see() {
    let sb = Sandbox::new();
    for bad in [
        &["--warning", "90", "--critical", "80"][..],
        &["--warning", "101"],
        &["--only", "everything"],
        // Quoted back in the summary: a `|` there would start the perfdata.
        &["--only", "stuck|usage"],
        &["--stuck-after", "soon"],
        &["--format", "xml"],
        &["--format", "prometheus"],
    ] {
        let mut args = vec!["check"];
        args.extend_from_slice(bad);
        let o = sb.run(&args);
        assert_eq!(code(&o), 3, "{bad:?}: {}", stderr(&o));
        let l = parse(&stdout(&o));
        assert_eq!(l.state, "UNKNOWN", "{bad:?}");
        assert!(l.summary.starts_with("bad usage: "), "{l:?}");
    }
    let o = sb.run(&[
        "check",
        "--format",
        "npd",
        "--warning",
        "90",
        "--critical",
        "80",
    ]);
    assert_eq!(code(&o), 2, "npd's unknown");
    // Not root: root's cookies cannot be read, so residual and stuck are
    // UNKNOWN, never OK; headroom alone is still judged.
    fixture(&["cookie"]);
    let o = sb.run_as_nobody(&["check"]);
    assert_eq!(code(&o), 3, "{}", stdout(&o));
    let l = parse(&stdout(&o));
    assert!(
        l.summary.contains("cannot read 1 dm cookie (not root)"),
        "{l:?}"
    );
    assert!(
        !l.perf.contains_key("residual"),
        "an unseen count was given: {l:?}"
    );
    assert_eq!(
        code(&sb.run_as_nobody(&["check", "--only", "headroom,usage"])),
        0
    );
}

//! Table-driven tests of the check's judgement: pure, no kernel.

use super::*;
use crate::limits::Limits;
use crate::snapshot::{Detail, Owner, PidNamespace, SemSet};
use crate::sysv::SetStat;

const NOW: i64 = 1_000_000;

fn cookie(semid: i32, zcnt: i32, owner: Owner) -> SemSet {
    SemSet {
        semid,
        stat: SetStat {
            key: 0x0D4D_1000 + semid,
            nsems: 1,
            mode: 0o600,
            uid: 0,
            cuid: 0,
            otime: 0,
            ctime: NOW - 3600,
        },
        detail: Ok(Detail {
            value: None,
            zcnt,
            ncnt: 0,
            owner,
        }),
    }
}

fn residual(semid: i32) -> SemSet {
    cookie(semid, 0, Owner::Gone { pid: 4242 })
}
fn busy(semid: i32) -> SemSet {
    let alive = Owner::Alive {
        pid: 7,
        comm: "lvcreate".into(),
    };
    with_otime(cookie(semid, 0, alive), NOW)
}
fn stuck(semid: i32) -> SemSet {
    let waiter = Owner::Alive {
        pid: 9,
        comm: "dockerd".into(),
    };
    cookie(semid, 1, waiter)
}
fn unreadable(semid: i32) -> SemSet {
    let mut s = residual(semid);
    s.detail = Err(crate::snapshot::NotRead::Denied("needs root".into()));
    s
}
fn with_otime(mut s: SemSet, otime: i64) -> SemSet {
    s.stat.otime = otime;
    s
}

/// sets in use `used` of SEMMNI 1000, with these dm sets among them.
fn verdict(used: u64, sets: Vec<SemSet>, rules: &Rules) -> Verdict {
    let snap = Snapshot {
        limits: Limits {
            semmsl: 250,
            semmns: 32_000,
            semopm: 32,
            semmni: 1000,
        },
        kernel_max_semmni: 32768,
        sets_in_use: used,
        sems_in_use: used,
        privileged: sets.iter().all(|s| s.detail.is_ok()),
        sets,
        pid_namespace: PidNamespace::Initial,
    };
    let p = Params {
        policy: Policy::Report,
        min_age: 300,
        reserve: rules.reserve,
        max_semmni: None,
        semmni: None,
    };
    let mut plan = plan::plan(&snap, &p, NOW).unwrap();
    plan::mark_stuck(&mut plan, &snap, 600, NOW);
    judge(&snap, &plan, rules)
}

fn rules(only: &[Aspect]) -> Rules {
    Rules {
        warning: 80,
        critical: 95,
        only: only.to_vec(),
        reserve: 32,
    }
}

/// (name, sets in use, dm sets, aspects, state, summary contains)
type Case = (
    &'static str,
    u64,
    Vec<SemSet>,
    &'static [Aspect],
    State,
    &'static str,
);

#[test]
fn each_state_from_its_cause() {
    use Aspect::*;
    use State::*;
    let cases: Vec<Case> = vec![
        (
            "empty",
            0,
            vec![],
            &[],
            Ok,
            "0/1000 sets in use, 0 dm cookies",
        ),
        (
            "busy only",
            10,
            vec![busy(1)],
            &[],
            Ok,
            "(0 residual, 1 busy, 0 stuck)",
        ),
        (
            "residual",
            10,
            vec![residual(1)],
            &[],
            Warning,
            "1 residual dm cookie",
        ),
        ("at 80% exactly", 800, vec![], &[], Ok, "800/1000"),
        (
            "past --warning",
            801,
            vec![],
            &[],
            Warning,
            "above --warning 80%",
        ),
        (
            "past --critical",
            951,
            vec![],
            &[],
            Critical,
            "above --critical 95%",
        ),
        (
            "headroom short",
            980,
            vec![],
            &[],
            Critical,
            "headroom short: 20 free sets",
        ),
        (
            "stuck",
            10,
            vec![stuck(1)],
            &[],
            Critical,
            "1 stuck dm cookie",
        ),
        (
            "stuck and residual: both said, worst wins",
            10,
            vec![stuck(1), residual(2)],
            &[],
            Critical,
            "1 stuck dm cookie (semprep complete --stuck); 1 residual",
        ),
        (
            "a waiter not yet stuck",
            10,
            vec![with_otime(stuck(1), NOW - 10)],
            &[],
            Ok,
            "1 busy",
        ),
        (
            "not root, cookies unseen",
            10,
            vec![unreadable(1)],
            &[],
            Unknown,
            "cannot read 1 dm cookie",
        ),
        (
            "not root, headroom only",
            10,
            vec![unreadable(1)],
            &[Headroom],
            Ok,
            "10/1000",
        ),
        (
            "not root, usage wins over unknown",
            990,
            vec![unreadable(1)],
            &[],
            Critical,
            "headroom short",
        ),
        (
            "--only residual ignores stuck",
            10,
            vec![stuck(1)],
            &[Residual],
            Ok,
            "1 stuck",
        ),
        (
            "--only stuck ignores residual",
            10,
            vec![residual(1)],
            &[Stuck],
            Ok,
            "1 residual",
        ),
        (
            "--only usage ignores short headroom",
            980,
            vec![],
            &[Usage],
            Critical,
            "above --critical",
        ),
        (
            "--only headroom ignores usage",
            951,
            vec![],
            &[Headroom],
            Ok,
            "951/1000",
        ),
    ];
    for (name, used, sets, only, state, summary) in cases {
        let v = verdict(used, sets, &rules(only));
        assert_eq!(v.state, state, "{name}: {v:?}");
        assert!(v.summary.contains(summary), "{name}: {:?}", v.summary);
    }
}

#[test]
fn the_first_line_and_perfdata_follow_the_plugin_guidelines() {
    let v = verdict(801, vec![residual(1), busy(2), stuck(3)], &rules(&[]));
    let line = v.plugin_line();
    assert!(line.starts_with("SEMPREP CRITICAL - "), "{line}");
    let (_, perf) = line.split_once(" | ").unwrap();
    let want = "'sets_in_use'=801;800;950;0;1000 'semaphores_in_use'=801;;;0;32000 \
                'residual'=1;0;;0; 'busy'=1;;;0; 'stuck'=1;;0;0;";
    assert_eq!(perf, want);
    // Unseen counts are left out, never claimed 0; no thresholds for
    // aspects not judged.
    let v = verdict(10, vec![unreadable(1)], &rules(&[Aspect::Headroom]));
    assert_eq!(
        v.perfdata,
        "'sets_in_use'=10;;;0;1000 'semaphores_in_use'=10;;;0;32000"
    );
}

#[test]
fn exit_codes_and_npd_lines() {
    use State::*;
    let codes = [
        (Ok, 0, 0),
        (Warning, 1, 1),
        (Critical, 2, 1),
        (Unknown, 3, 2),
    ];
    for (s, plugin, npd) in codes {
        assert_eq!((s.plugin_code(), s.npd_code()), (plugin, npd), "{s:?}");
    }
    let long = Verdict {
        state: Critical,
        summary: "é".repeat(200),
        perfdata: String::new(),
    };
    let line = long.npd_line();
    assert_eq!(line.chars().count(), NPD_MAX);
    assert!(line.ends_with("..."));
    let v = verdict(10, vec![stuck(1)], &rules(&[Aspect::Stuck]));
    assert_eq!(
        v.npd_line(),
        "CRITICAL: 1 stuck dm cookie (semprep complete --stuck)"
    );
}

#[test]
fn thresholds_must_be_ordered() {
    let args = |w: u64, c: u64| {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "semprep",
            "check",
            "--warning",
            &w.to_string(),
            "--critical",
            &c.to_string(),
        ])
        .unwrap();
        match cli.command {
            crate::cli::Command::Check(a) => a,
            _ => unreachable!(),
        }
    };
    assert!(super::rules(&args(80, 95)).is_ok());
    assert!(super::rules(&args(0, 100)).is_ok());
    for (w, c) in [(95, 95), (96, 95), (100, 0)] {
        let e = super::rules(&args(w, c)).unwrap_err();
        assert!(e.contains("must be below --critical"), "{e}");
    }
}

//! Table-driven tests of classification and planning: pure, no kernel.

use super::*;
use crate::error::Code;
use crate::limits::Limits;
use crate::snapshot::{Detail, Owner, PidNamespace, SemSet, Snapshot};
use crate::sysv::SetStat;

const NOW: i64 = 1_000_000;
const KEY: i32 = 0x0D4D_1234;

fn cookie(semid: i32) -> SemSet {
    SemSet {
        semid,
        stat: SetStat {
            key: KEY + semid,
            nsems: 1,
            mode: 0o600,
            uid: 0,
            cuid: 0,
            otime: 0,
            ctime: NOW - 3600,
        },
        detail: Ok(Detail {
            value: None,
            zcnt: 0,
            ncnt: 0,
            owner: Owner::Gone { pid: 4242 },
        }),
    }
}

fn with(mut s: SemSet, f: impl FnOnce(&mut SemSet)) -> SemSet {
    f(&mut s);
    s
}

fn detail(s: &mut SemSet) -> &mut Detail {
    s.detail.as_mut().unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn classifies_every_shape_and_reason() {
    let alive = Owner::Alive {
        pid: 7,
        comm: "lvcreate".into(),
    };
    // (name, set, (class, reasons))
    type Case = (
        &'static str,
        SemSet,
        (&'static str, &'static [&'static str]),
    );
    let cases: Vec<Case> = vec![
        ("dead owner", cookie(1), ("residual", &[])),
        (
            "no owner pid",
            with(cookie(1), |s| detail(s).owner = Owner::Unknown),
            ("residual", &[]),
        ),
        (
            "other prefix",
            with(cookie(1), |s| s.stat.key = 0x0D4E_0001),
            ("lookalike", &["key prefix 0x0d4e"]),
        ),
        (
            "base 0",
            with(cookie(0), |s| s.stat.key = 0x0D4D_0000),
            ("lookalike", &["key base 0"]),
        ),
        (
            "nsems 2",
            with(cookie(1), |s| s.stat.nsems = 2),
            ("lookalike", &["nsems 2"]),
        ),
        (
            "mode 0666",
            with(cookie(1), |s| s.stat.mode = 0o666),
            ("lookalike", &["mode 0666"]),
        ),
        (
            "non-root owner and creator",
            with(cookie(1), |s| (s.stat.uid, s.stat.cuid) = (1000, 1000)),
            ("lookalike", &["owner uid 1000", "creator uid 1000"]),
        ),
        (
            "chowned to root by a non-root creator",
            with(cookie(1), |s| s.stat.cuid = 1000),
            ("lookalike", &["creator uid 1000"]),
        ),
        (
            "waiter for zero",
            with(cookie(1), |s| detail(s).zcnt = 1),
            ("busy", &["waiters (1 for zero, 0 for increase)"]),
        ),
        (
            "waiter for increase",
            with(cookie(1), |s| detail(s).ncnt = 2),
            ("busy", &["waiters (0 for zero, 2 for increase)"]),
        ),
        (
            "owner alive",
            with(cookie(1), |s| detail(s).owner = alive.clone()),
            ("busy", &["owner-alive (pid 7, lvcreate)"]),
        ),
        (
            "young by ctime",
            with(cookie(1), |s| s.stat.ctime = NOW - 10),
            ("busy", &["young (10s)"]),
        ),
        (
            "young by otime though created long ago",
            with(cookie(1), |s| s.stat.otime = NOW - 299),
            ("busy", &["young (299s)"]),
        ),
        (
            "every busy reason at once",
            with(cookie(1), |s| {
                s.stat.otime = NOW;
                let d = detail(s);
                (d.zcnt, d.owner) = (1, alive.clone());
            }),
            (
                "busy",
                &[
                    "waiters (1 for zero, 0 for increase)",
                    "owner-alive (pid 7, lvcreate)",
                    "young (0s)",
                ],
            ),
        ),
        (
            "unreadable",
            with(cookie(1), |s| {
                s.detail = Err(NotRead::Denied("needs root".into()))
            }),
            ("busy", &["unreadable (needs root)"]),
        ),
        (
            "clock behind the set's times",
            with(cookie(1), |s| s.stat.ctime = NOW + 50),
            ("busy", &["young (0s)"]),
        ),
    ];
    for (name, set, (class, reasons)) in cases {
        let got = classify(&set, 300, PidNamespace::Initial, NOW);
        let said: Vec<String> = got
            .reasons(&set, age(&set, NOW))
            .map(|r| r.to_string())
            .collect();
        assert_eq!((got.name(), said), (class, strings(reasons)), "{name}");
    }
}

/// GETPID reads 0 both for "no last-op process" and for one outside the
/// reader's pid namespace: only the initial pid namespace sees every pid.
#[test]
fn an_unseen_owner_is_busy_outside_the_initial_pid_namespace() {
    use PidNamespace::*;
    const CHILD: &str = "owner-unseen (semprep runs in a child pid namespace: the last-op pid is not \
                 visible; run it in the host's pid namespace)";
    const UNKNOWN: &str = "owner-unseen (/proc/self/ns/pid is unreadable, so the last-op pid may be one \
                   semprep cannot see; run it in the host's pid namespace with /proc mounted)";
    let unseen = || with(cookie(1), |s| detail(s).owner = Owner::Unknown);
    let alive = Owner::Alive {
        pid: 7,
        comm: "dockerd".into(),
    };
    // (name, set, reader's pid namespace, (class, reasons))
    type Case = (
        &'static str,
        SemSet,
        PidNamespace,
        (&'static str, &'static [&'static str]),
    );
    let cases: Vec<Case> = vec![
        ("pid 0 on the host", unseen(), Initial, ("residual", &[])),
        ("pid 0 in a child", unseen(), Child, ("busy", &[CHILD])),
        (
            "pid 0, cannot tell",
            unseen(),
            Unknown,
            ("busy", &[UNKNOWN]),
        ),
        ("a gone pid in a child", cookie(1), Child, ("residual", &[])),
        (
            "a live pid in a child",
            with(cookie(1), |s| detail(s).owner = alive.clone()),
            Child,
            ("busy", &["owner-alive (pid 7, dockerd)"]),
        ),
        (
            "pid 0 in a child, with a waiter and young",
            with(unseen(), |s| {
                s.stat.otime = NOW - 5;
                detail(s).zcnt = 1;
            }),
            Child,
            (
                "busy",
                &["waiters (1 for zero, 0 for increase)", CHILD, "young (5s)"],
            ),
        ),
        (
            "a look-alike stays a look-alike",
            with(unseen(), |s| s.stat.nsems = 2),
            Child,
            ("lookalike", &["nsems 2"]),
        ),
        (
            "unreadable stays unreadable",
            with(cookie(1), |s| {
                s.detail = Err(NotRead::Denied("needs root".into()))
            }),
            Child,
            ("busy", &["unreadable (needs root)"]),
        ),
    ];
    for (name, set, pid_ns, (class, reasons)) in cases {
        let got = classify(&set, 300, pid_ns, NOW);
        let said: Vec<String> = got
            .reasons(&set, age(&set, NOW))
            .map(|r| r.to_string())
            .collect();
        assert_eq!((got.name(), said), (class, strings(reasons)), "{name}");
    }
    // The plan follows: nothing is removed from a child pid namespace
    // when every owner reads 0.
    let mut s = snap(
        (250, 32000, 32, 128),
        128,
        (1..=100)
            .map(|i| with(cookie(i), |s| detail(s).owner = Owner::Unknown))
            .collect(),
    );
    assert_eq!(
        plan(&s, &params(Policy::Auto), NOW).unwrap().remove.len(),
        100
    );
    s.pid_namespace = Child;
    let p = plan(&s, &params(Policy::Auto), NOW).unwrap();
    assert_eq!((p.remove.len(), p.counts().busy), (0, 100));
}

/// With the details left to the re-check (`ReadOptions::defer_details`),
/// shape and age decide what they can; an old cookie is a candidate, never
/// residual on a guess, whatever the pid namespace (GETPID is read by the
/// re-check, which applies every rule).
#[test]
fn deferred_details_make_candidates_not_residual_cookies() {
    use PidNamespace::*;
    let deferred = |s: &mut SemSet| s.detail = Err(NotRead::Deferred);
    // (name, set, reader's pid namespace, (class, reasons))
    type Case = (
        &'static str,
        SemSet,
        PidNamespace,
        (&'static str, &'static [&'static str]),
    );
    let cases: Vec<Case> = vec![
        (
            "old",
            with(cookie(1), deferred),
            Initial,
            ("candidate", &[]),
        ),
        (
            "old, in a child pid namespace",
            with(cookie(1), deferred),
            Child,
            ("candidate", &[]),
        ),
        (
            "old, /proc/self/ns/pid unreadable",
            with(cookie(1), deferred),
            Unknown,
            ("candidate", &[]),
        ),
        (
            "young",
            with(cookie(1), |s| {
                deferred(s);
                s.stat.otime = NOW - 12;
            }),
            Initial,
            ("busy", &["young (12s)"]),
        ),
        (
            "a look-alike",
            with(cookie(1), |s| {
                deferred(s);
                s.stat.mode = 0o644;
            }),
            Initial,
            ("lookalike", &["mode 0644"]),
        ),
    ];
    for (name, set, pid_ns, (class, reasons)) in cases {
        let got = classify(&set, 300, pid_ns, NOW);
        let said: Vec<String> = got
            .reasons(&set, age(&set, NOW))
            .map(|r| r.to_string())
            .collect();
        assert_eq!((got.name(), said), (class, strings(reasons)), "{name}");
    }

    // The plan removes candidates (each re-checked first) where the policy
    // removes, and predicts the headroom as if every removal happened.
    let mut sets: Vec<SemSet> = (1..=100).map(|i| with(cookie(i), deferred)).collect();
    sets.push(with(cookie(101), |s| {
        deferred(s);
        s.stat.ctime = NOW;
    }));
    let s = snap((250, 32000, 32, 128), 128, sets);
    let p = plan(&s, &params(Policy::Auto), NOW).unwrap();
    let n = p.counts();
    assert_eq!((n.residual, n.candidate, n.busy), (0, 100, 1));
    assert_eq!(p.remove, (1..=100).collect::<Vec<i32>>());
    assert_eq!((p.raise, p.verdict), (None, Verdict::Fixed));
    for policy in [Policy::Raise, Policy::Report] {
        assert!(plan(&s, &params(policy), NOW).unwrap().remove.is_empty());
    }
}

#[test]
fn age_boundary_uses_the_later_of_otime_and_ctime() {
    // (otime, ctime, min_age, residual?)
    let cases = [
        (0, NOW - 300, 300, true),
        (0, NOW - 299, 300, false),
        (NOW - 300, NOW - 9999, 300, true),
        (NOW - 299, NOW - 9999, 300, false),
        (NOW - 9999, NOW - 299, 300, false),
        (0, NOW, 0, true),
    ];
    for (otime, ctime, min_age, residual) in cases {
        let s = with(cookie(1), |s| (s.stat.otime, s.stat.ctime) = (otime, ctime));
        assert_eq!(
            classify(&s, min_age, PidNamespace::Initial, NOW) == Class::Residual,
            residual,
            "otime {otime} ctime {ctime} min_age {min_age}"
        );
    }
}

fn snap(limits: (u32, u32, u32, u32), sets_in_use: u64, sets: Vec<SemSet>) -> Snapshot {
    Snapshot {
        limits: Limits {
            semmsl: limits.0,
            semmns: limits.1,
            semopm: limits.2,
            semmni: limits.3,
        },
        kernel_max_semmni: 32768,
        sets_in_use,
        sems_in_use: sets_in_use,
        sets,
        privileged: true,
        pid_namespace: PidNamespace::Initial,
    }
}

fn params(policy: Policy) -> Params {
    Params {
        policy,
        min_age: 300,
        reserve: 32,
        max_semmni: None,
        semmni: None,
    }
}

fn residuals(n: i32) -> Vec<SemSet> {
    (1..=n).map(cookie).collect()
}

#[test]
fn plans_each_policy() {
    use Verdict::*;
    // 128 sets of SEMMNI 128: 100 residual cookies, 28 unrelated sets.
    let full = || snap((250, 32000, 32, 128), 128, residuals(100));
    // (name, snapshot, policy, removes, new SEMMNI, verdict)
    type Case = (&'static str, Snapshot, Policy, usize, Option<u32>, Verdict);
    let cases: Vec<Case> = vec![
        (
            "auto cleans and is fixed",
            full(),
            Policy::Auto,
            100,
            None,
            Fixed,
        ),
        ("clean cleans", full(), Policy::Clean, 100, None, Fixed),
        (
            "raise only raises",
            full(),
            Policy::Raise,
            0,
            Some(256),
            Fixed,
        ),
        (
            "report changes nothing",
            full(),
            Policy::Report,
            0,
            None,
            Short,
        ),
        (
            "auto raises when cleaning is not enough",
            snap((250, 32000, 32, 128), 128, residuals(10)),
            Policy::Auto,
            10,
            Some(256),
            Fixed,
        ),
        (
            "clean with no residual stays short",
            snap((250, 32000, 32, 128), 128, vec![]),
            Policy::Clean,
            0,
            None,
            Short,
        ),
        (
            "auto removes residual even with headroom",
            snap((250, 32000, 32, 32000), 200, residuals(5)),
            Policy::Auto,
            5,
            None,
            Ready,
        ),
        (
            "nothing to do",
            snap((250, 32000, 32, 32000), 3, vec![]),
            Policy::Auto,
            0,
            None,
            Ready,
        ),
        (
            "raise to at least in-use + reserve",
            snap((250, 32000, 32, 100), 1000, vec![]),
            Policy::Auto,
            0,
            Some(1032),
            Fixed,
        ),
        (
            "capped by the kernel: still short",
            snap((250, 1 << 30, 32, 32768), 32768, vec![]),
            Policy::Auto,
            0,
            None,
            Short,
        ),
        (
            "capped below twice, still enough",
            snap((250, 32000, 32, 30000), 29990, vec![]),
            Policy::Auto,
            0,
            Some(32768),
            Fixed,
        ),
    ];
    for (name, s, policy, removes, semmni, verdict) in cases {
        let p = plan(&s, &params(policy), NOW).unwrap();
        assert_eq!(p.remove.len(), removes, "{name}: removals");
        assert_eq!(p.raise.map(|l| l.semmni), semmni, "{name}: raise");
        assert_eq!(p.verdict, verdict, "{name}: verdict");
        if let Some(l) = p.raise {
            assert_eq!(
                (l.semmsl, l.semopm),
                (250, 32),
                "{name}: SEMMSL, SEMOPM kept"
            );
        }
    }
}

#[test]
fn raise_arithmetic_caps_and_semmns() {
    // (limits, sets, sems, max_semmni, explicit, want limits or error)
    type Case = (
        (u32, u32, u32, u32),
        u64,
        u64,
        Option<u32>,
        Option<u32>,
        Result<(u32, u32), &'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            (250, 32000, 32, 128),
            128,
            128,
            None,
            None,
            Ok((256, 32000)),
        ),
        (
            (250, 32000, 32, 128),
            128,
            128,
            Some(200),
            None,
            Ok((200, 32000)),
        ),
        (
            (250, 32000, 32, 128),
            128,
            128,
            Some(100),
            None,
            Ok((128, 32000)),
        ),
        (
            (250, 32000, 32, 128),
            128,
            128,
            Some(99999),
            None,
            Ok((256, 32000)),
        ),
        // Semaphores short: SEMMNS doubles (or reaches in-use + reserve).
        (
            (250, 1000, 32, 32000),
            10,
            990,
            None,
            None,
            Ok((32000, 2000)),
        ),
        (
            (250, 1000, 32, 32000),
            10,
            5000,
            None,
            None,
            Ok((32000, 5032)),
        ),
        (
            (250, 2_000_000_000, 32, 32000),
            10,
            1_999_999_999,
            None,
            None,
            Ok((32000, i32::MAX as u32)),
        ),
        // Explicit targets.
        (
            (250, 32000, 32, 128),
            100,
            100,
            None,
            Some(4096),
            Ok((4096, 32000)),
        ),
        (
            (250, 32000, 32, 8192),
            100,
            100,
            None,
            Some(4096),
            Ok((8192, 32000)),
        ),
        (
            (250, 32000, 32, 128),
            100,
            100,
            None,
            Some(40000),
            Err("above the kernel's maximum"),
        ),
        (
            (250, 32000, 32, 128),
            100,
            100,
            None,
            Some(99),
            Err("below the 100 semaphore sets in use"),
        ),
    ];
    for (i, (limits, sets, sems, max_semmni, explicit, want)) in cases.into_iter().enumerate() {
        let mut s = snap(limits, sets, vec![]);
        s.sems_in_use = sems;
        let mut p = params(Policy::Raise);
        (p.max_semmni, p.semmni) = (max_semmni, explicit);
        match (plan(&s, &p, NOW), want) {
            (Ok(got), Ok((semmni, semmns))) => {
                let l = got.raise.unwrap_or(s.limits);
                assert_eq!((l.semmni, l.semmns), (semmni, semmns), "case {i}");
            }
            (Err(e), Err(msg)) => {
                assert!(e.message.contains(msg), "case {i}: {e}");
                assert_eq!(e.code, Code::Usage, "case {i}: {e}");
            }
            (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn headroom_counts_free_sets_and_semaphores() {
    let l = Limits {
        semmsl: 250,
        semmns: 100,
        semopm: 32,
        semmni: 50,
    };
    let cases = [
        (18, 68, false),
        (19, 10, true),
        (0, 69, true),
        (60, 0, true), // more in use than the limit (lowered): no underflow
    ];
    for (sets, sems, short) in cases {
        assert_eq!(headroom(&l, sets, sems, 32).short, short, "{sets} {sems}");
    }
}

/// libdm needs one semaphore per set and one operation per semop: SEMMSL or
/// SEMOPM 0 fails every cookie, whatever SEMMNI says. Short, raised to the
/// kernel's historic defaults under auto and raise, short under clean and
/// report.
#[test]
fn semmsl_or_semopm_zero_is_short() {
    use Verdict::*;
    // (name, limits, policy, limits after the plan, verdict)
    type Case = (
        &'static str,
        (u32, u32, u32, u32),
        Policy,
        (u32, u32, u32, u32),
        Verdict,
    );
    let cases: Vec<Case> = vec![
        (
            "SEMMSL 0, auto",
            (0, 32000, 32, 128),
            Policy::Auto,
            (250, 32000, 32, 128),
            Fixed,
        ),
        (
            "SEMOPM 0, auto",
            (250, 32000, 0, 128),
            Policy::Auto,
            (250, 32000, 32, 128),
            Fixed,
        ),
        (
            "both 0, raise",
            (0, 32000, 0, 128),
            Policy::Raise,
            (250, 32000, 32, 128),
            Fixed,
        ),
        (
            "SEMMSL 0, clean",
            (0, 32000, 32, 128),
            Policy::Clean,
            (0, 32000, 32, 128),
            Short,
        ),
        (
            "SEMOPM 0, report",
            (250, 32000, 0, 128),
            Policy::Report,
            (250, 32000, 0, 128),
            Short,
        ),
        (
            "SEMMSL 1 is enough",
            (1, 32000, 1, 128),
            Policy::Auto,
            (1, 32000, 1, 128),
            Ready,
        ),
        (
            "SEMMSL 0 and sets short: both raised",
            (0, 32000, 32, 20),
            Policy::Auto,
            (250, 32000, 32, 42),
            Fixed,
        ),
    ];
    for (name, limits, policy, want, verdict) in cases {
        let s = snap(limits, 10, vec![]);
        let p = plan(&s, &params(policy), NOW).unwrap();
        let l = p.raise.unwrap_or(s.limits);
        assert_eq!(
            (l.semmsl, l.semmns, l.semopm, l.semmni),
            want,
            "{name}: limits"
        );
        assert_eq!(p.verdict, verdict, "{name}: verdict");
        assert_eq!(p.before.short, verdict != Ready, "{name}: short before");
        assert_eq!(
            (p.before.semmsl_short, p.before.semopm_short),
            (limits.0 == 0, limits.2 == 0),
            "{name}: which field"
        );
    }
}

/// No SEMMNI can leave more sets free than the kernel's maximum.
#[test]
fn a_reserve_above_the_kernels_maximum_is_bad_input() {
    // (kernel maximum, reserve, error)
    let cases = [
        (32768, 32768, None),
        (
            32768,
            32769,
            Some("--reserve 32769 is above the kernel's maximum SEMMNI of 32768"),
        ),
        (32768, 40000, Some("use a reserve from 0 to 32768")),
        (1 << 24, 40000, None),
        (1 << 24, (1 << 24) + 1, Some("maximum SEMMNI of 16777216")),
    ];
    for (max, reserve, want) in cases {
        let mut s = snap((250, 32000, 32, 128), 10, vec![]);
        s.kernel_max_semmni = max;
        for policy in [Policy::Auto, Policy::Clean, Policy::Raise, Policy::Report] {
            let p = Params {
                reserve,
                ..params(policy)
            };
            match (plan(&s, &p, NOW), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => {
                    assert!(e.message.contains(w), "{max} {reserve}: {e}");
                    assert_eq!(e.code, Code::Usage, "{max} {reserve}: {e}");
                }
                (got, _) => panic!("{max} {reserve} {policy:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}

/// The rule `apply` uses when the budget ends the removals early: the raise
/// is decided from the real usage, not the plan's.
#[test]
fn the_raise_rule_decides_from_any_usage() {
    let rule = RaiseRule {
        reserve: 32,
        cap: 32768,
        semmni: None,
    };
    let l = Limits {
        semmsl: 250,
        semmns: 32000,
        semopm: 32,
        semmni: 128,
    };
    // (sets, sems in use, new SEMMNI or none)
    let cases = [
        (10, 10, None),
        (96, 96, None),
        (97, 97, Some(256)),
        (500, 500, Some(532)),
    ];
    for (sets, sems, want) in cases {
        assert_eq!(
            rule.raise(&l, sets, sems).map(|l| l.semmni),
            want,
            "{sets} {sems}"
        );
    }
    // The plan carries the rule exactly when its policy may raise.
    let s = snap((250, 32000, 32, 128), 128, residuals(100));
    for (policy, has) in [
        (Policy::Auto, true),
        (Policy::Raise, true),
        (Policy::Clean, false),
        (Policy::Report, false),
    ] {
        let p = plan(&s, &params(policy), NOW).unwrap();
        assert_eq!(p.rule.is_some(), has, "{policy:?}");
    }
    // Auto with 100 residual cookies plans no raise; if only 10 were
    // removed before the budget ran out, the rule raises.
    let p = plan(&s, &params(Policy::Auto), NOW).unwrap();
    assert_eq!(p.raise, None);
    let raised = p.rule.unwrap().raise(&s.limits, 118, 118).unwrap();
    assert_eq!(raised.semmni, 256);
}

/// A stuck cookie: waiters for zero, idle at least --stuck-after. Anything
/// else keeps the class classify gave it; a stuck cookie is never removed.
#[test]
fn stuck_cookies_have_waiters_for_zero_and_are_idle_past_stuck_after() {
    let waiter = Owner::Alive {
        pid: 9,
        comm: "dockerd".into(),
    };
    // A libdm waiter: it did the last semop itself (its -1), then waits.
    let waited = |idle: i64| {
        with(cookie(1), |s| {
            (s.stat.otime, s.stat.ctime) = (NOW - idle, NOW - 9999);
            let d = detail(s);
            (d.zcnt, d.owner) = (1, waiter.clone());
        })
    };
    // (name, set, stuck_after, stuck?)
    let cases: Vec<(&str, SemSet, u64, bool)> = vec![
        ("waiter idle past stuck-after", waited(601), 600, true),
        ("waiter idle exactly stuck-after", waited(600), 600, true),
        ("waiter idle 1s short", waited(599), 600, false),
        ("stuck-after 0: any waiter", waited(0), 0, true),
        (
            "waiter for increase only",
            with(waited(3600), |s| (detail(s).zcnt, detail(s).ncnt) = (0, 1)),
            600,
            false,
        ),
        (
            "no waiter, live owner",
            with(waited(3600), |s| detail(s).zcnt = 0),
            600,
            false,
        ),
        ("residual cookie", cookie(1), 0, false),
        (
            "look-alike with a waiter",
            with(waited(3600), |s| s.stat.nsems = 2),
            600,
            false,
        ),
        (
            "unreadable",
            with(waited(3600), |s| {
                s.detail = Err(crate::snapshot::NotRead::Denied("needs root".into()))
            }),
            600,
            false,
        ),
        (
            "changed recently (ctime) though not operated",
            with(waited(3600), |s| s.stat.ctime = NOW - 10),
            600,
            false,
        ),
    ];
    for (name, set, stuck_after, want) in cases {
        let class = classify(&set, 300, PidNamespace::Initial, NOW);
        let got = stuck(&set, &class, stuck_after, NOW);
        assert_eq!(got.is_some(), want, "{name}: {got:?}");
        if let Some(stuck) = got {
            // It keeps every busy reason and says why it is stuck.
            let (busy, said) = (
                class.reasons_text(&set, age(&set, NOW)),
                stuck.reasons_text(&set, age(&set, NOW)),
            );
            assert!(said.starts_with(&busy), "{name}: {said}");
            assert!(said.contains(", stuck (idle "), "{name}: {said}");
        }
    }
    // In a plan: counted as stuck, not busy, and never removed.
    let s = snap(
        (250, 32000, 32, 128),
        3,
        vec![waited(3600), cookie(2), waited(10)],
    );
    let mut p = plan(&s, &params(Policy::Auto), NOW).unwrap();
    mark_stuck(&mut p, &s, 600, NOW);
    assert_eq!(
        (p.counts().stuck, p.counts().busy, p.counts().residual),
        (1, 1, 1)
    );
    assert_eq!(p.remove, vec![2]);
}

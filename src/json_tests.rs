//! The `--json` document: what every document holds whatever the run knew,
//! and golden files that pin the bytes of documents for fixed states.

use super::*;
use crate::error::Code;
use crate::limits::Limits;
use crate::plan::Policy;
use crate::plan::{Class, Reason};
use crate::snapshot::{Detail, Owner};
use crate::sysv::SetStat;
use serde_json::{Value, json};

const NOW: i64 = 1_000_000;
/// The schema's keys, as `JsonDoc` documents them.
const KEYS: [&str; 14] = [
    "command",
    "error",
    "exit_code",
    "kernel_max_semmni",
    "limits",
    "min_age_secs",
    "plan",
    "policy",
    "privileged",
    "reserve",
    "result",
    "schema",
    "sets",
    "usage",
];

fn set(semid: i32, detail: Result<Detail, String>) -> SemSet {
    SemSet {
        semid,
        stat: SetStat {
            key: 0x0D4D_0100 + semid,
            nsems: 1,
            mode: 0o600,
            uid: 0,
            cuid: 0,
            otime: NOW - 7200,
            ctime: NOW - 7300,
        },
        detail,
    }
}

fn snapshot() -> Snapshot {
    let owner = Owner::Alive {
        pid: 7,
        comm: "lvcreate \"x\"".into(),
    };
    let detail = |value, zcnt, owner| {
        Ok(Detail {
            value,
            zcnt,
            ncnt: 0,
            owner,
        })
    };
    Snapshot {
        limits: Limits {
            semmsl: 250,
            semmns: 32000,
            semopm: 32,
            semmni: 128,
        },
        kernel_max_semmni: 32768,
        sets_in_use: 40,
        sems_in_use: 41,
        sets: vec![
            set(1, detail(Some(1), 0, Owner::Gone { pid: 42 })),
            set(2, detail(None, 1, owner)),
            set(3, detail(Some(0), 0, Owner::Unknown)),
            set(4, Err("unreadable (needs root)".into())),
        ],
        privileged: true,
        pid_namespace: crate::snapshot::PidNamespace::Initial,
    }
}

/// Parses the bytes and checks that serde_json prints the same `Value`
/// byte for byte: valid JSON, keys sorted at every level.
fn as_serde_prints_it(bytes: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(
        String::from_utf8(serde_json::to_vec(&v).unwrap()).unwrap(),
        String::from_utf8(bytes.to_vec()).unwrap()
    );
    v
}

#[test]
fn every_document_has_every_key_whatever_is_known() {
    let p = Params {
        policy: Policy::Auto,
        min_age: 300,
        reserve: 32,
        max_semmni: None,
        semmni: None,
    };
    let snap = snapshot();
    let plan = crate::plan::plan(&snap, &p, NOW).unwrap();
    let applied = Applied {
        removed: vec![1, 3],
        ..Applied::default()
    };
    let busy = Error::new(Code::Refused, "lock file /run/semprep.lock is \"held\"");
    let bad = Error::usage("SEMMNI 40000 is above the kernel's maximum");
    // (the document, what is known: snapshot, plan)
    let docs = [
        // clap rejected the command line: nothing is known.
        JsonDoc {
            error: Some(&bad),
            exit_code: 2,
            ..JsonDoc::default()
        },
        // The lock was busy: the parameters only.
        JsonDoc {
            command: Some("run"),
            params: Some(&p),
            error: Some(&busy),
            ..JsonDoc::default()
        },
        // The snapshot was read, the plan refused.
        JsonDoc {
            command: Some("raise"),
            params: Some(&p),
            snap: Some(&snap),
            error: Some(&bad),
            exit_code: 2,
            ..JsonDoc::default()
        },
        // Done.
        JsonDoc {
            command: Some("clean"),
            params: Some(&p),
            snap: Some(&snap),
            plan: Some(&plan),
            applied: Some(&applied),
            ..JsonDoc::default()
        },
    ];
    for doc in &docs {
        let v = as_serde_prints_it(&document(doc));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, KEYS);
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["exit_code"], doc.exit_code);
        assert_eq!(v["command"], json!(doc.command));
        match doc.error {
            Some(e) => assert_eq!(
                v["error"],
                json!({ "code": e.code as i32, "message": e.message })
            ),
            None => assert_eq!(v["error"], Value::Null),
        }
        assert_eq!(v["limits"].is_null(), doc.snap.is_none());
        assert_eq!(v["policy"].is_null(), doc.params.is_none());
        assert_eq!(v["sets"].is_null(), doc.plan.is_none());
        assert_eq!(v["plan"].is_null(), doc.plan.is_none());
    }
    let done = as_serde_prints_it(&document(&docs[3]));
    assert_eq!(done["sets"].as_array().unwrap().len(), 4);
    assert_eq!(done["sets"][1]["owner"]["comm"], "lvcreate \"x\"");
    assert_eq!(done["sets"][3]["unreadable"], "unreadable (needs root)");
    assert_eq!(done["result"]["removed"], json!([1, 3]));
}

/// What `emit_json` writes for `doc`: the document and a newline.
fn printed(doc: &JsonDoc) -> Vec<u8> {
    let mut bytes = Vec::new();
    doc.write_to(&mut bytes).unwrap();
    bytes
}

/// The document alone, without its newline.
fn document(doc: &JsonDoc) -> Vec<u8> {
    let mut bytes = printed(doc);
    assert_eq!(bytes.pop(), Some(b'\n'));
    bytes
}

/// A fixed state built by hand (no kernel, no classifier), covering every
/// class, every owner state, a value read or not, and an unreadable set.
fn fixed_state() -> (Params, Snapshot, Plan) {
    use crate::plan::{Entry, Headroom, Verdict};
    let p = Params {
        policy: Policy::Auto,
        min_age: 600,
        reserve: 32,
        max_semmni: None,
        semmni: None,
    };
    let cookie = |semid: i32, idle: i64, detail: Result<Detail, String>| SemSet {
        semid,
        stat: SetStat {
            key: 0x0D4D_0A00 | (semid & 0xff),
            nsems: 1,
            mode: 0o100600,
            uid: 0,
            cuid: 0,
            otime: NOW - idle,
            ctime: NOW - idle - 5,
        },
        detail,
    };
    let detail = |value, zcnt, ncnt, owner| {
        Ok(Detail {
            value,
            zcnt,
            ncnt,
            owner,
        })
    };
    let lookalike = SemSet {
        semid: 98_304,
        stat: SetStat {
            key: 0x0D4D_0000,
            nsems: 2,
            mode: 0o666,
            uid: 1000,
            cuid: 1001,
            otime: 0,
            ctime: NOW - 86_400,
        },
        detail: detail(Some(2), 0, 0, Owner::Unknown),
    };
    let alive = Owner::Alive {
        pid: 4711,
        comm: "lvcreate \"vg\"\té".into(),
    };
    let sets = vec![
        cookie(32_768, 7200, detail(Some(1), 0, 0, Owner::Gone { pid: 42 })),
        cookie(65_537, 30, detail(Some(0), 1, 2, alive)),
        cookie(3, 7200, detail(None, 0, 0, Owner::Unknown)),
        cookie(4, 9000, Err("needs root".into())),
        lookalike,
    ];
    use Reason::*;
    let reasons = |v: &[Reason]| v.iter().copied().collect();
    let classes = [
        Class::Residual,
        Class::Busy(reasons(&[Waiters, OwnerAlive, Young])),
        Class::Residual,
        Class::Busy(reasons(&[Unreadable])),
        Class::Lookalike(reasons(&[KeyBase, Nsems, Mode, OwnerUid, CreatorUid])),
    ];
    let snap = Snapshot {
        limits: Limits {
            semmsl: 250,
            semmns: 32_000,
            semopm: 32,
            semmni: 128,
        },
        kernel_max_semmni: 32_768,
        sets_in_use: 120,
        sems_in_use: 121,
        sets,
        privileged: true,
        pid_namespace: crate::snapshot::PidNamespace::Initial,
    };
    let entries = snap
        .sets
        .iter()
        .zip(classes)
        .map(|(s, class)| Entry {
            semid: s.semid,
            key: s.stat.key,
            age: crate::plan::age(s, NOW),
            class,
        })
        .collect();
    let room = |sets, sems, semmni: u64| Headroom {
        sets_in_use: sets,
        sems_in_use: sems,
        free_sets: semmni - sets,
        free_sems: 32_000 - sems,
        semmsl_short: false,
        semopm_short: false,
        short: semmni - sets < 32,
    };
    let plan = Plan {
        sets: entries,
        remove: vec![32_768, 3],
        raise: Some(Limits {
            semmni: 256,
            ..snap.limits
        }),
        before: room(120, 121, 128),
        after: room(118, 119, 256),
        verdict: Verdict::Fixed,
        rule: None,
    };
    (p, snap, plan)
}

/// Compares `doc` byte for byte with `tests/golden/NAME`; with
/// SEMPREP_GOLDEN=write, rewrites the file instead (then review the diff).
fn golden(name: &str, doc: &JsonDoc) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let got = printed(doc);
    if std::env::var_os("SEMPREP_GOLDEN").is_some_and(|v| v == "write") {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SEMPREP_GOLDEN=write creates it)", path.display()));
    assert!(
        got == want,
        "{} differs from the document printed now:\n{}\n(if the change is intended: \
         SEMPREP_GOLDEN=write cargo test --lib json, and review the diff)",
        path.display(),
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn documents_match_the_golden_files() {
    let (p, snap, plan) = fixed_state();
    golden(
        "status.json",
        &JsonDoc {
            command: Some("status"),
            params: Some(&p),
            snap: Some(&snap),
            plan: Some(&plan),
            ..JsonDoc::default()
        },
    );
    let done = Applied {
        removed: vec![32_768],
        skipped: vec![crate::apply::Skip {
            semid: 3,
            key: 0x0D4D_0A03,
            reason: crate::apply::SkipReason::Used,
            why: "used since it was read".into(),
        }],
        raised: plan.raise,
        persisted: Some("/etc/sysctl.d/90-semprep.conf".into()),
        raise_error: None,
        timed_out: false,
        raised_by_other: None,
    };
    golden(
        "run.json",
        &JsonDoc {
            command: Some("run"),
            params: Some(&p),
            snap: Some(&snap),
            plan: Some(&plan),
            applied: Some(&done),
            ..JsonDoc::default()
        },
    );
    let refused = Applied {
        raise_error: Some(
            "cannot raise the limits: writing \"250 32000 32 256\" to \
                           /proc/sys/kernel/sem: Read-only file system (os error 30)"
                .into(),
        ),
        ..Applied::default()
    };
    let short = Error::new(Code::Short, "headroom still short: 118 of SEMMNI 128…");
    golden(
        "raise-short.json",
        &JsonDoc {
            command: Some("raise"),
            params: Some(&p),
            snap: Some(&snap),
            plan: Some(&plan),
            applied: Some(&refused),
            error: Some(&short),
            exit_code: 3,
        },
    );
    let cut = Applied {
        removed: vec![32_768],
        timed_out: true,
        ..Applied::default()
    };
    let spent = Error::failure(
        "time budget (--timeout) ran out before every residual cookie was removed; \
         the next run removes the rest",
    );
    golden(
        "clean-timed-out.json",
        &JsonDoc {
            command: Some("clean"),
            params: Some(&p),
            snap: Some(&snap),
            plan: Some(&plan),
            applied: Some(&cut),
            error: Some(&spent),
            exit_code: 1,
        },
    );
    let busy = Error::new(
        Code::Refused,
        "lock file /run/semprep.lock is held by pid 9",
    );
    golden(
        "run-lock-busy.json",
        &JsonDoc {
            command: Some("run"),
            params: Some(&p),
            error: Some(&busy),
            ..JsonDoc::default()
        },
    );
    let bad = Error::usage("unexpected argument '--bogus' found");
    golden(
        "usage-error.json",
        &JsonDoc {
            error: Some(&bad),
            exit_code: 2,
            ..JsonDoc::default()
        },
    );
}

//! The `--json` document (`"schema": 2`, `SCHEMA`): written straight into one buffer,
//! byte-identical to what serde_json prints for the equivalent `Value`
//! (sorted keys), because tens of thousands of sets make a `Value` per set
//! the whole cost of `--json`.

use crate::apply::Applied;
use crate::error::Error;
use crate::plan::{Class, Params, Plan};
use crate::report::emit_bytes;
use crate::snapshot::{Owner, SemSet, Snapshot};
use serde_json::{Value, json};

/// Appends `n` in decimal (what serde_json writes for an integer).
fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's own escaping; strings here are short and rare (reasons).
    let _ = serde_json::to_writer(&mut *out, s);
}

fn push_field(out: &mut Vec<u8>, name: &str, n: i64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    push_int(out, n);
}

/// One set, exactly as serde_json would print the equivalent `Value`
/// (keys sorted), but written straight into `out`: no map, no allocation
/// per set. Tens of thousands of sets make this the cost of `--json`.
fn push_set(out: &mut Vec<u8>, set: &SemSet, class: &Class, age: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let s = &set.stat;
    out.extend_from_slice(b"{\"class\":\"");
    out.extend_from_slice(class.name().as_bytes());
    out.push(b'"');
    push_field(out, "ctime", s.ctime);
    push_field(out, "cuid", i64::from(s.cuid));
    push_field(out, "idle_secs", age as i64);
    out.extend_from_slice(b",\"key\":\"0x");
    let key = s.key as u32;
    out.extend((0..8).rev().map(|i| HEX[(key >> (4 * i) & 0xf) as usize]));
    out.extend_from_slice(b"\",\"mode\":\"");
    let mode = s.mode & 0o7777;
    out.extend((0..4).rev().map(|i| b'0' + (mode >> (3 * i) & 7) as u8));
    out.push(b'"');
    let detail = set.detail.as_ref().ok();
    if let Some(d) = detail {
        push_field(out, "ncnt", i64::from(d.ncnt));
    }
    push_field(out, "nsems", s.nsems as i64);
    push_field(out, "otime", s.otime);
    if let Some(d) = detail {
        out.extend_from_slice(b",\"owner\":{");
        match &d.owner {
            Owner::Unknown => {}
            Owner::Gone { pid } => {
                out.extend_from_slice(b"\"pid\":");
                push_int(out, i64::from(*pid));
                out.push(b',');
            }
            Owner::Alive { pid, comm } => {
                out.extend_from_slice(b"\"comm\":");
                push_str(out, comm);
                out.extend_from_slice(b",\"pid\":");
                push_int(out, i64::from(*pid));
                out.push(b',');
            }
        }
        out.extend_from_slice(b"\"state\":\"");
        out.extend_from_slice(match d.owner {
            Owner::Unknown => b"unknown".as_slice(),
            Owner::Gone { .. } => b"gone",
            Owner::Alive { .. } => b"alive",
        });
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b",\"reasons\":[");
    for (i, r) in class.reasons().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, r);
    }
    out.push(b']');
    push_field(out, "semid", i64::from(set.semid));
    push_field(out, "uid", i64::from(s.uid));
    match (&set.detail, detail.and_then(|d| d.value)) {
        (Err(why), _) => {
            out.extend_from_slice(b",\"unreadable\":");
            push_str(out, why);
        }
        (Ok(_), Some(v)) => push_field(out, "value", i64::from(v)),
        (Ok(_), None) => {}
    }
    if let Some(d) = detail {
        push_field(out, "zcnt", i64::from(d.zcnt));
    }
    out.push(b'}');
}

/// The `"sets"` array. Large arrays are formatted on the cores in parallel
/// (a chunk each), then joined in order.
fn push_sets(out: &mut Vec<u8>, snap: &Snapshot, plan: &Plan) {
    let pairs: Vec<(&crate::plan::Entry, &SemSet)> = plan.sets.iter().zip(&snap.sets).collect();
    let chunk_json = |chunk: &[(&crate::plan::Entry, &SemSet)], buf: &mut Vec<u8>| {
        for (i, (e, s)) in chunk.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            push_set(buf, s, &e.class, e.age);
        }
    };
    // About 230 bytes per set.
    out.reserve(pairs.len() * 240 + 2);
    out.push(b'[');
    let threads = crate::parallel::threads_for(pairs.len(), crate::parallel::SETS_PER_THREAD);
    if threads <= 1 {
        chunk_json(&pairs, out);
    } else {
        let chunk = pairs.len().div_ceil(threads);
        let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = pairs
                .chunks(chunk)
                .skip(1)
                .map(|c| {
                    s.spawn(move || {
                        let mut buf = Vec::with_capacity(c.len() * 240);
                        chunk_json(c, &mut buf);
                        buf
                    })
                })
                .collect();
            chunk_json(&pairs[..chunk], out);
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for p in parts {
            out.push(b',');
            out.extend_from_slice(&p);
        }
    }
    out.push(b']');
}

fn push_value(out: &mut Vec<u8>, name: &str, v: &Value) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    let _ = serde_json::to_writer(&mut *out, v);
}

/// The `"schema"` of the `--json` document. 2: the class of a dm-prefixed
/// set that is not shaped like a cookie is `"lookalike"` (1: `"foreign"`).
pub const SCHEMA: i64 = 2;

/// The one JSON document of every run (`"schema"`: `SCHEMA`): the schema is here
/// and nowhere else. Every key is always present, in the order serde_json
/// prints a `Value` (sorted), and is `null` when the run ended before it was
/// known (bad input found before the snapshot was read knows no limits):
///
/// - `command`: `run`, `exec`, `status`, `clean` or `raise`; `null` when the
///   command line itself was not understood
/// - `error`: `null`, or `{"code": N, "message": "…"}`: what went wrong, with
///   the error's own exit code; `exit_code` is that code after the hook
///   policy (0 in `run`/`exec` for semprep's own faults unless `--strict`).
///   Added to schema 1 without a version change: consumers that ignore
///   unknown keys read the documents as before
/// - `exit_code`: semprep's exit code (`exec`: the code it had before
///   starting PROGRAM)
/// - `kernel_max_semmni`, `limits`, `privileged`, `usage`: from the snapshot
/// - `min_age_secs`, `policy`, `reserve`: the parameters
/// - `plan`, `sets`: the plan, and every dm-magic set with its class
/// - `result`: what was changed; `null` when nothing was applied
/// - `schema`: `SCHEMA`
#[derive(Default)]
pub struct JsonDoc<'a> {
    pub command: Option<&'a str>,
    pub params: Option<&'a Params>,
    pub snap: Option<&'a Snapshot>,
    /// Only shown with `snap`: the plan is about that snapshot.
    pub plan: Option<&'a Plan>,
    pub applied: Option<&'a Applied>,
    pub error: Option<&'a Error>,
    pub exit_code: i32,
}

impl JsonDoc<'_> {
    /// The document as bytes: the small parts through serde_json's `Value`
    /// (sorted keys), the sets written directly.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (snap, params) = (self.snap, self.params);
        let plan = self.plan.filter(|_| snap.is_some());
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"command\":");
        let _ = serde_json::to_writer(&mut out, &self.command);
        let error = self
            .error
            .map(|e| json!({ "code": e.code as i32, "message": e.message }));
        push_value(&mut out, "error", &json!(error));
        push_field(&mut out, "exit_code", i64::from(self.exit_code));
        let max = snap.map(|s| s.kernel_max_semmni);
        push_value(&mut out, "kernel_max_semmni", &json!(max));
        push_value(&mut out, "limits", &json!(snap.map(|s| s.limits)));
        let min_age = params.map(|p| p.min_age);
        push_value(&mut out, "min_age_secs", &json!(min_age));
        let plan_doc = plan.map(|plan| {
            json!({
                "remove": plan.remove,
                "raise": plan.raise,
                "before": plan.before,
                "after": plan.after,
                "verdict": plan.verdict,
            })
        });
        push_value(&mut out, "plan", &json!(plan_doc));
        push_value(&mut out, "policy", &json!(params.map(|p| p.policy)));
        push_value(&mut out, "privileged", &json!(snap.map(|s| s.privileged)));
        push_value(&mut out, "reserve", &json!(params.map(|p| p.reserve)));
        push_value(&mut out, "result", &json!(self.applied));
        push_field(&mut out, "schema", SCHEMA);
        out.extend_from_slice(b",\"sets\":");
        match (snap, plan) {
            (Some(snap), Some(plan)) => push_sets(&mut out, snap, plan),
            _ => out.extend_from_slice(b"null"),
        }
        let usage = snap.map(|s| json!({ "sets": s.sets_in_use, "semaphores": s.sems_in_use }));
        push_value(&mut out, "usage", &json!(usage));
        out.push(b'}');
        out
    }
}

impl std::fmt::Display for JsonDoc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every byte written above is UTF-8: ASCII or serde_json's output.
        let bytes = self.to_bytes();
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| std::fmt::Error)?)
    }
}

/// Writes the document and a newline to stdout as the run's one report
/// (`report::emit_bytes`), without first copying it into a `String`
/// (several MB for tens of thousands of sets).
pub fn emit_json(doc: &JsonDoc) -> std::io::Result<()> {
    let mut bytes = doc.to_bytes();
    bytes.push(b'\n');
    emit_bytes(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;
    use crate::limits::Limits;
    use crate::plan::Policy;
    use crate::snapshot::{Detail, Owner};
    use crate::sysv::SetStat;

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
            let v = as_serde_prints_it(&doc.to_bytes());
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
        let done = as_serde_prints_it(&docs[3].to_bytes());
        assert_eq!(done["sets"].as_array().unwrap().len(), 4);
        assert_eq!(done["sets"][1]["owner"]["comm"], "lvcreate \"x\"");
        assert_eq!(done["sets"][3]["unreadable"], "unreadable (needs root)");
        assert_eq!(done["result"]["removed"], json!([1, 3]));
    }
}

//! The `--json` document (`"schema": 1`): written straight into one buffer,
//! byte-identical to what serde_json prints for the equivalent `Value`
//! (sorted keys), because tens of thousands of sets make a `Value` per set
//! the whole cost of `--json`.

use crate::apply::Applied;
use crate::plan::{Class, Plan};
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
    let threads = crate::snapshot::threads_for(pairs.len(), 4096);
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

/// The one JSON document of every command (`"schema": 1`), with keys
/// sorted as serde_json prints a `Value`. Displayed, it is the document.
pub struct JsonDoc<'a> {
    command: &'a str,
    snap: &'a Snapshot,
    plan: &'a Plan,
    params: &'a crate::plan::Params,
    applied: Option<&'a Applied>,
    code: crate::error::Code,
}

impl JsonDoc<'_> {
    /// The document as bytes: the small parts through serde_json's `Value`
    /// (sorted keys), the sets written directly.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (snap, plan, params) = (self.snap, self.plan, self.params);
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"command\":");
        push_str(&mut out, self.command);
        push_field(&mut out, "exit_code", self.code as i64);
        push_field(
            &mut out,
            "kernel_max_semmni",
            i64::from(snap.kernel_max_semmni),
        );
        push_value(&mut out, "limits", &json!(snap.limits));
        push_field(&mut out, "min_age_secs", params.min_age as i64);
        let plan_doc = json!({
            "remove": plan.remove,
            "raise": plan.raise,
            "before": plan.before,
            "after": plan.after,
            "verdict": plan.verdict,
        });
        push_value(&mut out, "plan", &plan_doc);
        push_value(&mut out, "policy", &json!(params.policy));
        push_value(&mut out, "privileged", &json!(snap.privileged));
        push_field(&mut out, "reserve", params.reserve as i64);
        push_value(&mut out, "result", &json!(self.applied));
        push_field(&mut out, "schema", 1);
        out.extend_from_slice(b",\"sets\":");
        push_sets(&mut out, snap, plan);
        let usage = json!({ "sets": snap.sets_in_use, "semaphores": snap.sems_in_use });
        push_value(&mut out, "usage", &usage);
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

/// Writes the document and a newline to stdout, without first copying it
/// into a `String` (several MB for tens of thousands of sets).
pub fn emit_json(doc: &JsonDoc) {
    let mut bytes = doc.to_bytes();
    bytes.push(b'\n');
    emit_bytes(&bytes);
}

/// The one JSON document of every command (`"schema": 1`).
pub fn json_doc<'a>(
    command: &'a str,
    snap: &'a Snapshot,
    plan: &'a Plan,
    params: &'a crate::plan::Params,
    applied: Option<&'a Applied>,
    code: crate::error::Code,
) -> JsonDoc<'a> {
    JsonDoc {
        command,
        snap,
        plan,
        params,
        applied,
        code,
    }
}

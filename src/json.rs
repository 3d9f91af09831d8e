//! The `--json` document (`"schema"`: `SCHEMA`), defined once: the views below
//! borrow the snapshot, the plan and the result, serde's derive writes them,
//! and `emit_json` streams the document to stdout while it is serialised.
//! Nothing holds the whole document, so its memory does not grow with the
//! number of sets. Keys are declared in sorted order (the order of the
//! documents semprep printed before); consumers parse JSON, and the golden
//! files in tests/golden pin the bytes.

use crate::apply::{Applied, Skip};
use crate::error::Error;
use crate::limits::Limits;
use crate::plan::{Entry, Headroom, Params, Plan, Policy, Said, Verdict};
use crate::snapshot::{Owner, SemSet, Snapshot};
use serde::{Serialize, Serializer};
use std::io::{self, Write};

/// The `"schema"` of the `--json` document. 2: the class of a dm-prefixed
/// set that is not shaped like a cookie is `"lookalike"` (1: `"foreign"`).
pub const SCHEMA: u32 = 2;

/// The one JSON document of every run (`"schema"`: `SCHEMA`). Every key is always
/// present, and is `null` when the run ended before it was known (bad input
/// found before the snapshot was read knows no limits):
///
/// - `command`: `run`, `exec`, `status`, `clean` or `raise`; `null` when the
///   command line itself was not understood
/// - `error`: `null`, or `{"code": N, "message": "…"}`: what went wrong, with
///   the error's own exit code; `exit_code` is that code after the hook
///   policy (0 in `run`/`exec` for semprep's own faults unless `--strict`).
///   (added in schema 1, backward compatible)
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
    /// Writes the document and a newline into `w`, as it is serialised.
    pub fn write_to<W: Write>(&self, mut w: W) -> io::Result<()> {
        // An I/O error comes back as itself (EPIPE stays EPIPE).
        serde_json::to_writer(&mut w, &self.view())?;
        w.write_all(b"\n")
    }

    fn view(&self) -> Document<'_> {
        let (snap, params) = (self.snap, self.params);
        let plan = self.plan.zip(snap);
        Document {
            command: self.command,
            error: self.error.map(|e| ErrorView {
                code: e.code as i32,
                message: &e.message,
            }),
            exit_code: self.exit_code,
            kernel_max_semmni: snap.map(|s| s.kernel_max_semmni),
            limits: snap.map(|s| LimitsView::from(&s.limits)),
            min_age_secs: params.map(|p| p.min_age),
            plan: plan.map(|(plan, _)| PlanView {
                after: RoomView::from(&plan.after),
                before: RoomView::from(&plan.before),
                raise: plan.raise.as_ref().map(LimitsView::from),
                remove: &plan.remove,
                verdict: verdict_name(plan.verdict),
            }),
            policy: params.map(|p| policy_name(p.policy)),
            privileged: snap.map(|s| s.privileged),
            reserve: params.map(|p| p.reserve),
            result: self.applied.map(|a| ResultView {
                persisted: a.persisted.as_deref(),
                raise_error: a.raise_error.as_deref(),
                raised: a.raised.as_ref().map(LimitsView::from),
                raised_by_other: a.raised_by_other.as_ref().map(LimitsView::from),
                removed: &a.removed,
                skipped: Skips(&a.skipped),
                timed_out: a.timed_out,
            }),
            schema: SCHEMA,
            sets: plan.map(|(plan, snap)| Sets { plan, snap }),
            usage: snap.map(|s| Usage {
                semaphores: s.sems_in_use,
                sets: s.sets_in_use,
            }),
        }
    }
}

/// Writes the document and a newline to stdout as the run's one report
/// (`report::emit_with`), streamed through its buffer: a reader sees the
/// first sets while the last are being formatted.
pub fn emit_json(doc: &JsonDoc) -> io::Result<()> {
    crate::report::emit_with(|out| doc.write_to(out))
}

#[derive(Serialize)]
struct Document<'a> {
    command: Option<&'a str>,
    error: Option<ErrorView<'a>>,
    exit_code: i32,
    kernel_max_semmni: Option<u32>,
    limits: Option<LimitsView>,
    min_age_secs: Option<u64>,
    plan: Option<PlanView<'a>>,
    policy: Option<&'static str>,
    privileged: Option<bool>,
    reserve: Option<u64>,
    result: Option<ResultView<'a>>,
    schema: u32,
    sets: Option<Sets<'a>>,
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ErrorView<'a> {
    code: i32,
    message: &'a str,
}

/// `/proc/sys/kernel/sem`'s four fields.
#[derive(Serialize)]
struct LimitsView {
    semmni: u32,
    semmns: u32,
    semmsl: u32,
    semopm: u32,
}

impl From<&Limits> for LimitsView {
    fn from(l: &Limits) -> Self {
        LimitsView {
            semmni: l.semmni,
            semmns: l.semmns,
            semmsl: l.semmsl,
            semopm: l.semopm,
        }
    }
}

#[derive(Serialize)]
struct PlanView<'a> {
    after: RoomView,
    before: RoomView,
    raise: Option<LimitsView>,
    remove: &'a [i32],
    verdict: &'static str,
}

#[derive(Serialize)]
struct RoomView {
    free_sems: u64,
    free_sets: u64,
    semmsl_short: bool,
    semopm_short: bool,
    sems_in_use: u64,
    sets_in_use: u64,
    short: bool,
}

impl From<&Headroom> for RoomView {
    fn from(h: &Headroom) -> Self {
        RoomView {
            free_sems: h.free_sems,
            free_sets: h.free_sets,
            semmsl_short: h.semmsl_short,
            semopm_short: h.semopm_short,
            sems_in_use: h.sems_in_use,
            sets_in_use: h.sets_in_use,
            short: h.short,
        }
    }
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Auto => "auto",
        Policy::Clean => "clean",
        Policy::Raise => "raise",
        Policy::Report => "report",
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Ready => "ready",
        Verdict::Fixed => "fixed",
        Verdict::Short => "short",
    }
}

#[derive(Serialize)]
struct ResultView<'a> {
    persisted: Option<&'a str>,
    raise_error: Option<&'a str>,
    raised: Option<LimitsView>,
    raised_by_other: Option<LimitsView>,
    removed: &'a [i32],
    skipped: Skips<'a>,
    timed_out: bool,
}

/// `skipped`: each planned removal that did not happen, and why.
struct Skips<'a>(&'a [Skip]);

impl Serialize for Skips<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct SkipView<'a> {
            key: i32,
            semid: i32,
            why: &'a str,
        }
        s.collect_seq(self.0.iter().map(|k| SkipView {
            key: k.key,
            semid: k.semid,
            why: &k.why,
        }))
    }
}

#[derive(Serialize)]
struct Usage {
    semaphores: u64,
    sets: u64,
}

/// The `"sets"` array: every dm-magic set of the snapshot with its class,
/// each formatted as it is written.
struct Sets<'a> {
    plan: &'a Plan,
    snap: &'a Snapshot,
}

impl Serialize for Sets<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs = self.plan.sets.iter().zip(&self.snap.sets);
        s.collect_seq(pairs.map(|(entry, set)| SetView::new(entry, set)))
    }
}

/// One set. The details (`ncnt`, `owner`, `value`, `zcnt`) are left out
/// when they could not be read, and `unreadable` says why.
#[derive(Serialize)]
struct SetView<'a> {
    class: &'static str,
    ctime: i64,
    cuid: u32,
    idle_secs: u64,
    #[serde(serialize_with = "key_hex")]
    key: i32,
    #[serde(serialize_with = "mode_octal")]
    mode: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ncnt: Option<i32>,
    nsems: u64,
    otime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<OwnerView<'a>>,
    reasons: Reasons<'a>,
    semid: i32,
    uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zcnt: Option<i32>,
}

impl<'a> SetView<'a> {
    fn new(entry: &'a Entry, set: &'a SemSet) -> Self {
        let s = &set.stat;
        let detail = set.detail.as_ref().ok();
        SetView {
            class: entry.class.name(),
            ctime: s.ctime,
            cuid: s.cuid,
            idle_secs: entry.age,
            key: s.key,
            mode: s.mode,
            ncnt: detail.map(|d| d.ncnt),
            nsems: s.nsems,
            otime: s.otime,
            owner: detail.map(|d| OwnerView::from(&d.owner)),
            reasons: Reasons { entry, set },
            semid: set.semid,
            uid: s.uid,
            unreadable: set.detail.as_ref().err().map(String::as_str),
            value: detail.and_then(|d| d.value),
            zcnt: detail.map(|d| d.zcnt),
        }
    }
}

/// `reasons`: each reason in an operator's words, written as it is said.
struct Reasons<'a> {
    entry: &'a Entry,
    set: &'a SemSet,
}

impl Serialize for Reasons<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let said = self.entry.class.reasons(self.set, self.entry.age);
        s.collect_seq(said.map(Words))
    }
}

struct Words<'a>(Said<'a>);

impl Serialize for Words<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `0x0d4d0a2b`, as `ipcs` and `dmsetup udevcookies` print keys.
fn key_hex<S: Serializer>(key: &i32, s: S) -> Result<S::Ok, S::Error> {
    let mut text = *b"0x00000000";
    digits(&mut text[2..], *key as u32, 16);
    s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
}

/// The permission bits, `0600`.
fn mode_octal<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    let mut text = *b"0000";
    digits(&mut text, mode & 0o7777, 8);
    s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
}

/// Fills `out` with the last `out.len()` digits of `n` in `base`, zero-padded
/// (what `{:08x}` and `{:04o}` print, without the formatting machinery: two
/// of them per set).
fn digits(out: &mut [u8], mut n: u32, base: u32) {
    for d in out.iter_mut().rev() {
        *d = b"0123456789abcdef"[(n % base) as usize];
        n /= base;
    }
}

#[derive(Serialize)]
struct OwnerView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    state: &'static str,
}

impl<'a> From<&'a Owner> for OwnerView<'a> {
    fn from(o: &'a Owner) -> Self {
        let (state, pid, comm) = match o {
            Owner::Unknown => ("unknown", None, None),
            Owner::Gone { pid } => ("gone", Some(*pid), None),
            Owner::Alive { pid, comm } => ("alive", Some(*pid), Some(comm.as_str())),
        };
        OwnerView { comm, pid, state }
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;

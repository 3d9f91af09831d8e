//! Carries out a `Plan`: removes sets after re-checking each one, raises the
//! limits, and reports what actually happened.
//!
//! Every step is atomic in the kernel (one IPC_RMID, one write of all four
//! limits), so a kill at any point leaves a consistent state that the next
//! run finishes.

use crate::error::Error;
use crate::limits::{self, Limits};
use crate::parallel::REMOVALS_PER_THREAD;
use crate::plan::{Class, Plan, age, classify};
use crate::safe_write::{self, DirPolicy};
use crate::snapshot::{self, PidNamespace, SemSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skip {
    pub semid: i32,
    pub key: i32,
    /// What the re-check found, for grouping; `why` says it in detail.
    pub reason: SkipReason,
    pub why: String,
}

/// Why a planned removal was skipped, in the order the log lists them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// Removed by someone else since the snapshot (EINVAL/EIDRM, or no
    /// longer there on the re-read).
    #[default]
    Gone,
    KeyChanged,
    /// Operated on since the snapshot.
    Used,
    /// No longer residual: a waiter, a live owner, or young again.
    Busy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub removed: Vec<i32>,
    pub skipped: Vec<Skip>,
    /// The limits read back after semprep's raise.
    pub raised: Option<Limits>,
    /// `kernel.sem` as re-read right before a planned raise, when it already
    /// met the target in every field: another writer raised it since the
    /// snapshot, so semprep wrote nothing.
    pub raised_by_other: Option<Limits>,
    pub persisted: Option<String>,
    /// Why the planned raise did not happen.
    pub raise_error: Option<String>,
    /// Set when the time budget ran out before every planned removal was
    /// done; the raise the policy allows was then decided from the real
    /// usage instead of the plan's.
    pub timed_out: bool,
}

pub struct Context<'a> {
    pub min_age: u64,
    /// Shared by the removal threads, hence `Sync`.
    pub now: &'a (dyn Fn() -> i64 + Sync),
    /// When the removals stop: early enough that the raise still fits in
    /// the time budget (`Budget::removal_deadline`).
    pub deadline: Option<Instant>,
    pub sem_path: &'a Path,
    pub persist: Option<&'a Path>,
}

/// Why a planned removal must not happen now, or `None` if it may.
fn recheck(
    planned: &SemSet,
    now: &SemSet,
    min_age: u64,
    pid_ns: PidNamespace,
    at: i64,
) -> Option<(SkipReason, String)> {
    if now.stat.key != planned.stat.key {
        return Some((SkipReason::KeyChanged, "key changed".into()));
    }
    if (now.stat.otime, now.stat.ctime) != (planned.stat.otime, planned.stat.ctime) {
        return Some((SkipReason::Used, "used since it was read".into()));
    }
    match classify(now, min_age, pid_ns, at) {
        Class::Residual => None,
        other => Some((SkipReason::Busy, other.reasons_text(now, age(now, at)))),
    }
}

/// The planned sets to remove, in plan order. `plan::plan` makes
/// `plan.remove` a subsequence of `snap.sets` (both in kernel index order),
/// so one merge walk finds them; a plan made from another snapshot is
/// semprep's own fault.
fn planned_sets<'a>(snap: &'a snapshot::Snapshot, plan: &Plan) -> Result<Vec<&'a SemSet>, Error> {
    let mut sets = snap.sets.iter();
    plan.remove
        .iter()
        .map(|&semid| {
            sets.by_ref().find(|s| s.semid == semid).ok_or_else(|| {
                Error::failure(format!(
                    "semaphore set {semid} is in the plan but not in the snapshot, or out of \
                     its order"
                ))
            })
        })
        .collect()
}

/// What one worker did with its share of the removals.
#[derive(Default)]
struct Part {
    removed: Vec<i32>,
    skipped: Vec<Skip>,
    timed_out: bool,
    error: Option<Error>,
}

/// Re-checks and removes `sets` one by one: each set is re-read by semid
/// immediately before its own IPC_RMID. `stop` ends every worker early once
/// one has failed or run out of time.
fn remove_sets(sets: &[&SemSet], pid_ns: PidNamespace, ctx: &Context, stop: &AtomicBool) -> Part {
    let mut part = Part::default();
    let mut owners = snapshot::Owners::default();
    crate::budget::step("removing residual cookies (semctl IPC_RMID)");
    for planned in sets {
        let semid = planned.semid;
        if stop.load(Ordering::Relaxed) {
            return part;
        }
        if ctx.deadline.is_some_and(|d| Instant::now() >= d) {
            part.timed_out = true;
            stop.store(true, Ordering::Relaxed);
            return part;
        }
        let skip = |(reason, why): (SkipReason, String)| Skip {
            semid,
            key: planned.stat.key,
            reason,
            why,
        };
        let gone = || (SkipReason::Gone, "gone before removal".to_owned());
        let known = planned.detail.as_ref().ok().map(|d| &d.owner);
        let current = match snapshot::reread(semid, &mut owners, known) {
            Ok(c) => c,
            Err(e) => {
                part.error = Some(Error::failure(format!(
                    "re-reading semaphore set {semid}: {e}"
                )));
                stop.store(true, Ordering::Relaxed);
                return part;
            }
        };
        let Some(current) = current else {
            part.skipped.push(skip(gone()));
            continue;
        };
        if let Some(why) = recheck(planned, &current, ctx.min_age, pid_ns, (ctx.now)()) {
            part.skipped.push(skip(why));
            continue;
        }
        match crate::sysv::remove(semid) {
            Ok(()) => part.removed.push(semid),
            Err(e) if crate::sysv::vanished(&e) => part.skipped.push(skip(gone())),
            Err(e) => {
                part.error = Some(Error::failure(format!("semctl({semid}, IPC_RMID): {e}")));
                stop.store(true, Ordering::Relaxed);
                return part;
            }
        }
    }
    part
}

pub fn apply(snap: &snapshot::Snapshot, plan: &Plan, ctx: &Context) -> Result<Applied, Error> {
    let planned = planned_sets(snap, plan)?;
    let mut out = Applied::default();
    // The re-reads run in parallel on large plans; IPC_RMID serialises in
    // the kernel anyway, but one thread's re-reads overlap the other's
    // removals. Each set is still re-checked right before its own removal.
    let stop = AtomicBool::new(false);
    let parts = crate::parallel::map_ranges(planned.len(), REMOVALS_PER_THREAD, |r| {
        remove_sets(&planned[r], snap.pid_namespace, ctx, &stop)
    });
    for mut part in parts {
        if let Some(e) = part.error {
            return Err(e);
        }
        out.removed.append(&mut part.removed);
        out.skipped.append(&mut part.skipped);
        out.timed_out |= part.timed_out;
    }
    let target = if out.timed_out {
        // The plan's raise assumed every removal done. The cheap fix (one
        // write) must not be lost with the rest: decide it again from the
        // real state.
        match plan.rule.map(|rule| raise_now(ctx.sem_path, &rule)) {
            None => None,
            Some(Ok(target)) => target,
            Some(Err(e)) => {
                out.raise_error = Some(e.message);
                None
            }
        }
    } else {
        plan.raise
    };
    if let Some(target) = target {
        // A refused raise (read-only /proc/sys in a container, EINVAL above
        // IPCMNI) is an outcome, not a crash: the caller decides whether
        // the daemon can still start.
        crate::budget::step(format!("writing {}", ctx.sem_path.display()));
        match raise(ctx.sem_path, &target) {
            Ok(Raise::Wrote(read_back)) => {
                out.raised = Some(read_back);
                if let Some(file) = ctx.persist {
                    crate::budget::step(format!("writing {}", file.display()));
                    persist(file, &read_back)?;
                    out.persisted = Some(file.display().to_string());
                }
            }
            Ok(Raise::AlreadyMet(found)) => out.raised_by_other = Some(found),
            Err(e) => out.raise_error = Some(e.message),
        }
    }
    crate::budget::step("");
    Ok(out)
}

/// The raise `rule` calls for given the limits and usage right now (one
/// read of the file, one SEM_INFO), when the removals stopped early.
fn raise_now(path: &Path, rule: &crate::plan::RaiseRule) -> Result<Option<Limits>, Error> {
    crate::budget::step(format!("reading {}", path.display()));
    let limits = limits::read(path).map_err(|e| e.context("cannot decide the raise"))?;
    let (sets, sems) = snapshot::usage().map_err(|e| e.context("cannot decide the raise"))?;
    Ok(rule.raise(&limits, sets, sems))
}

enum Raise {
    /// semprep wrote; the limits read back.
    Wrote(Limits),
    /// The re-read limits already met the target: nothing written.
    AlreadyMet(Limits),
}

/// Raises to at least `target` without lowering anything: re-reads the
/// file right before writing (another tool such as sysctl or tuned may have
/// written since the snapshot), writes the field-by-field larger of the
/// two in one write, and reads back. A read-back at least the target in
/// every field is success: another writer may have raised further.
fn raise(path: &Path, target: &Limits) -> Result<Raise, Error> {
    let shown = path.display();
    let current = limits::read(path)
        .map_err(|e| e.context("cannot raise the limits: re-reading before the write"))?;
    let to = current.max(target);
    if to == current {
        return Ok(Raise::AlreadyMet(current));
    }
    limits::write(path, &to).map_err(|e| {
        let mut msg = format!("cannot raise the limits: writing \"{to}\" to {shown}: {e}");
        if e.raw_os_error() == Some(libc::EROFS) {
            msg.push_str(&format!(
                "; {shown} is on a read-only file system, as in a container: raise kernel.sem \
                 from the host, in this IPC namespace (`nsenter --target PID --ipc sysctl -w \
                 kernel.sem=\"{to}\"`, PID being a process of the container)"
            ));
        }
        Error::failure(msg)
    })?;
    let read_back = limits::read(path)?;
    if !read_back.covers(target) {
        return Err(Error::failure(format!(
            "the kernel kept {shown} = \"{read_back}\" after semprep wrote \"{to}\""
        )));
    }
    Ok(Raise::Wrote(read_back))
}

/// Writes `kernel.sem` to a sysctl.d file: atomically, and only where root
/// alone can write (`safe_write`). A kill leaves the old file or the new one.
pub(crate) fn persist(file: &Path, limits: &Limits) -> Result<(), Error> {
    let body = format!(
        "# Written by semprep --persist: the SysV semaphore limits it raised.\n\
         # Fields: SEMMSL SEMMNS SEMOPM SEMMNI (see /proc/sys/kernel/sem).\n\
         kernel.sem = {limits}\n"
    );
    safe_write::write_atomically(file, body.as_bytes(), 0o644, DirPolicy::RootOnly).map_err(named)
}

/// Refuses a persist file `persist` could not write (exit 2), changing
/// nothing: a run checks it before it removes or raises anything.
pub(crate) fn check_persist(file: &Path) -> Result<(), Error> {
    safe_write::check(file, DirPolicy::RootOnly).map_err(named)
}

fn named(e: Error) -> Error {
    Error::new(e.code, format!("--persist-file {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Verdict;
    use crate::snapshot::Snapshot;

    #[test]
    fn planned_sets_are_found_in_one_walk_or_the_plan_is_refused() {
        let limits = Limits {
            semmsl: 250,
            semmns: 32_000,
            semopm: 32,
            semmni: 128,
        };
        let set = |semid| SemSet {
            semid,
            stat: crate::sysv::SetStat {
                key: 0x0D4D_0000 + semid,
                nsems: 1,
                mode: 0o600,
                uid: 0,
                cuid: 0,
                otime: 0,
                ctime: 0,
            },
            detail: Err("not read".into()),
        };
        let snap = Snapshot {
            limits,
            kernel_max_semmni: 32_768,
            sets_in_use: 5,
            sems_in_use: 5,
            sets: [3, 8, 65_541, 12, 40].map(set).to_vec(),
            privileged: true,
            pid_namespace: PidNamespace::Initial,
        };
        let room = crate::plan::headroom(&limits, 5, 5, 0);
        let plan = |remove: &[i32]| Plan {
            sets: Vec::new(),
            remove: remove.to_vec(),
            raise: None,
            before: room,
            after: room,
            verdict: Verdict::Ready,
            rule: None,
        };
        let found = |remove: &[i32]| {
            planned_sets(&snap, &plan(remove)).map(|v| v.iter().map(|s| s.semid).collect())
        };
        for ok in [&[][..], &[8], &[3, 65_541, 40], &[3, 8, 65_541, 12, 40]] {
            assert_eq!(found(ok), Ok(ok.to_vec()));
        }
        // Not in the snapshot, or not in its order: never a guess.
        for bad in [&[7][..], &[3, 99], &[12, 8], &[8, 8]] {
            let e = found(bad).unwrap_err();
            assert_eq!(e.code, crate::error::Code::Failure, "{bad:?}");
            assert!(
                e.message.contains("is in the plan but not in the snapshot"),
                "{bad:?}"
            );
        }
    }
}

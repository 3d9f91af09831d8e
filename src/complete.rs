//! `semprep complete`: completes stuck cookies the way udev would.
//!
//! libdm's protocol (lvm2 libdm/libdm-common.c): a cookie is created with
//! value 1, each dm task adds 1, udev's rule runs `dmsetup udevcomplete`
//! once per event (`dm_udev_complete` → `_udev_notify_sem_dec`: one semop
//! of -1 with IPC_NOWAIT), and `dm_udev_wait` drops the creator's 1, waits
//! for zero, then destroys the set itself. A stuck cookie is one whose
//! completions never came: decrementing it to 0, one IPC_NOWAIT semop at a
//! time, is exactly what udev would have done, so the waiter's semop
//! returns 0 and libdm removes the cookie. Removing the set instead (what
//! `dmsetup udevcomplete_all` does for idle cookies, and `ipcrm`) wakes it
//! with EIDRM. docs/design.md §3 (classification).

use crate::cli::CompleteArgs;
use crate::error::{Code, Error};
use crate::plan::{self, Class, Params, Policy};
use crate::report::{emit, key_hex, plural};
use crate::snapshot::{self, Owners, ReadOptions, SemSet, Snapshot};
use log::{error, info};
use serde_json::json;

pub const AFTER_HELP: &str = "\
Decrements each cookie's semaphore to 0 without blocking, as udev's
`dmsetup udevcomplete` would: its waiters wake normally and libdm removes the
cookie itself. Only cookies that are stuck (waiters, idle past --stuck-after),
re-checked right before; --force completes a named cookie that is not stuck
(down to 1 while nobody waits: that 1 is its owner's, not udev's).
Examples: semprep complete --stuck --dry-run · semprep complete 98311";

/// One cookie to complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub semid: i32,
    pub key: i32,
}

/// Which cookies to complete, from the snapshot's plan (stuck cookies
/// marked). `Err` is bad input: a semid that is not a dm cookie, or not
/// stuck without `force`. Nothing is completed unless every one is valid.
pub fn targets(
    snap: &Snapshot,
    plan: &plan::Plan,
    semids: &[i32],
    stuck: bool,
    force: bool,
) -> Result<Vec<Target>, String> {
    let target = |e: &plan::Entry| Target {
        semid: e.semid,
        key: e.key,
    };
    if stuck {
        // --force is about named cookies; with --stuck (it may come from
        // SEMPREP_FORCE) it changes nothing: only stuck ones are completed.
        return Ok(plan
            .sets
            .iter()
            .filter(|e| matches!(e.class, Class::Stuck(_)))
            .map(target)
            .collect());
    }
    let mut out = Vec::new();
    for &semid in semids {
        let Some(e) = plan.sets.iter().find(|e| e.semid == semid) else {
            return Err(format!(
                "semid {semid} is not a dm cookie (no semaphore set with that semid has the \
                 dm key prefix 0x0d4d): see `semprep status`"
            ));
        };
        let set = snap.sets.iter().find(|s| s.semid == semid);
        let why = |c: &Class| set.map_or(String::new(), |s| c.reasons_text(s, e.age));
        match &e.class {
            c @ Class::Lookalike(_) => {
                return Err(format!(
                    "semid {semid} (key {}) is a look-alike, not a dm cookie ({}): semprep \
                     never touches it",
                    key_hex(e.key),
                    why(c)
                ));
            }
            Class::Stuck(_) => {}
            other if !force => {
                return Err(format!(
                    "semid {semid} (key {}) is {}, not stuck ({}): complete it only if you \
                     know its udev event is lost, with --force",
                    key_hex(e.key),
                    other.name(),
                    why(other)
                ));
            }
            _ => {}
        }
        if !out.iter().any(|t: &Target| t.semid == semid) {
            out.push(target(e));
        }
    }
    Ok(out)
}

/// What happened to one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub semid: i32,
    pub key: i32,
    /// The value before; the value it is decremented to (`floor`); the
    /// decrements made (dry run: would make).
    pub value: i32,
    pub to: i32,
    pub decrements: i32,
    /// Why it was left alone, when it was.
    pub skipped: Option<String>,
}

/// The re-check's verdict on one target (pure): `Ok(floor)`, the value
/// udev's completions would bring it down to, or `Err(why)` it is left
/// alone. `forced`: a cookie named with --force, completed even when it is
/// not stuck (never with --stuck, whatever SEMPREP_FORCE says: a cookie
/// that changed since the snapshot is not the one the operator saw).
///
/// The floor: while nobody waits, the value still holds the creator's own
/// 1, which its `dm_udev_wait` drops itself (IPC_NOWAIT) before it waits;
/// udev never takes it. Taking it makes that drop fail with EAGAIN, and
/// libdm then destroys the cookie and reports the device operation failed.
/// With a waiter (GETZCNT > 0) the creator's 1 is gone: down to 0.
pub(crate) fn verdict(
    set: &SemSet,
    class: &Class,
    stuck_after: u64,
    now: i64,
    forced: bool,
) -> Result<i32, String> {
    match plan::stuck(set, class, stuck_after, now) {
        Some(_) => {}
        None if matches!(class, Class::Lookalike(_)) => {
            return Err("no longer cookie-shaped".to_owned());
        }
        None if forced => {}
        None => {
            return Err(format!(
                "no longer stuck ({})",
                class.reasons_text(set, plan::age(set, now))
            ));
        }
    }
    let waited = matches!(&set.detail, Ok(d) if d.zcnt > 0);
    Ok(if waited { 0 } else { 1 })
}

/// Re-checks one target by semid, then decrements it to its floor
/// (`verdict`) with IPC_NOWAIT.
fn complete_one(
    t: &Target,
    a: &CompleteArgs,
    snap: &Snapshot,
    owners: &mut Owners,
) -> Result<Done, String> {
    let mut done = Done {
        semid: t.semid,
        key: t.key,
        value: 0,
        to: 0,
        decrements: 0,
        skipped: None,
    };
    let now = crate::run::now();
    let set = match snapshot::reread(t.semid, owners, None) {
        Ok(Some(set)) => set,
        Ok(None) => {
            done.skipped = Some("gone since it was read".into());
            return Ok(done);
        }
        Err(e) => return Err(format!("semctl({}, IPC_STAT): {e}", t.semid)),
    };
    if set.stat.key != t.key {
        done.skipped = Some("key changed: another set took the slot".into());
        return Ok(done);
    }
    let class = plan::classify(&set, a.age.min_age.as_secs(), snap.pid_namespace, now);
    let forced = a.force && !a.stuck;
    let floor = match verdict(&set, &class, a.age.stuck_after.as_secs(), now, forced) {
        Ok(floor) => floor,
        Err(why) => {
            done.skipped = Some(why);
            return Ok(done);
        }
    };
    let value =
        crate::sysv::get_val(t.semid).map_err(|e| format!("semctl({}, GETVAL): {e}", t.semid))?;
    done.value = value;
    done.to = floor;
    if value <= floor {
        done.skipped = Some(if floor == 0 {
            "its value is already 0: no completion is missing".to_owned()
        } else {
            format!(
                "its value {value} is at most its owner's own 1 (no waiter yet): no \
                 completion is missing"
            )
        });
        return Ok(done);
    }
    if a.change.dry_run {
        done.decrements = value - floor;
        return Ok(done);
    }
    // One IPC_NOWAIT decrement per missing completion, as udev's
    // `dmsetup udevcomplete` does; never more than the value read allows,
    // so a cookie that a new task raised meanwhile is not over-completed.
    for _ in 0..value - floor {
        match crate::sysv::semop(t.semid, -1, libc::IPC_NOWAIT as i16) {
            Ok(()) => done.decrements += 1,
            // Already 0 (the waiter or udev got there) or destroyed by the
            // woken waiter: done either way.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN) | Some(libc::EIDRM) | Some(libc::EINVAL)
                ) =>
            {
                break;
            }
            Err(e) => return Err(format!("semop({}, -1, IPC_NOWAIT): {e}", t.semid)),
        }
    }
    Ok(done)
}

fn text(done: &[Done], dry_run: bool) -> String {
    let mut out = String::new();
    if done.is_empty() {
        out.push_str("no stuck dm cookie: nothing to complete\n");
    }
    for d in done {
        let line = match (&d.skipped, dry_run) {
            (Some(why), _) => format!("left semid {} key {} alone: {why}", d.semid, key_hex(d.key)),
            (None, true) => format!(
                "would complete semid {} key {}: value {} to {} ({}, as udev would)",
                d.semid,
                key_hex(d.key),
                d.value,
                d.to,
                plural(d.decrements as usize, "decrement")
            ),
            (None, false) => format!(
                "completed semid {} key {}: value {} to {} ({}); {}",
                d.semid,
                key_hex(d.key),
                d.value,
                d.to,
                plural(d.decrements as usize, "decrement"),
                if d.to == 0 {
                    "its waiters wake and libdm removes it"
                } else {
                    "its owner's dm_udev_wait will return at once"
                }
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn document(done: &[Done], dry_run: bool, error: Option<&Error>, code: i32) -> String {
    let cookies: Vec<_> = done
        .iter()
        .map(|d| {
            json!({
                "semid": d.semid,
                "key": key_hex(d.key),
                "value": d.value,
                "to": d.to,
                "decrements": d.decrements,
                "skipped": d.skipped,
            })
        })
        .collect();
    let doc = json!({
        "schema": 1,
        "command": "complete",
        "dry_run": dry_run,
        "cookies": cookies,
        "error": error.map(|e| json!({"code": e.code as i32, "message": e.message})),
        "exit_code": code,
    });
    format!("{doc}\n")
}

/// Runs `semprep complete`; returns the exit code.
pub fn main(a: &CompleteArgs) -> i32 {
    let mut done = Vec::new();
    let result = run(a, &mut done);
    let (code, err) = match result {
        Ok(()) => (0, None),
        Err(e) => {
            error!("{e}");
            (e.code as i32, Some(e))
        }
    };
    let json = a.output.json;
    let report = if json {
        document(&done, a.change.dry_run, err.as_ref(), code)
    } else if err.is_none() || !done.is_empty() {
        text(&done, a.change.dry_run)
    } else {
        String::new()
    };
    if report.is_empty() {
        return code;
    }
    match emit(&report) {
        Ok(()) => code,
        Err(e) => {
            error!("cannot write the report: {e}");
            if code == 0 {
                Code::Failure as i32
            } else {
                code
            }
        }
    }
}

fn run(a: &CompleteArgs, done: &mut Vec<Done>) -> Result<(), Error> {
    if crate::report::sink().format == crate::cli::Format::Prometheus {
        return Err(Error::usage(
            "--format prometheus: complete reports as text or json; the metrics are \
             `semprep status --format prometheus`'s",
        ));
    }
    if !a.change.dry_run && !nix::unistd::geteuid().is_root() {
        return Err(Error::usage(
            "semprep complete changes kernel state and needs root: run it as root, or look \
             first with `semprep complete --dry-run` or `semprep status`",
        ));
    }
    let budget = crate::budget::Budget::start(a.change.timeout, || {
        let msg = format!("time budget (--timeout) ran out{}", crate::budget::during());
        error!("{msg}");
        std::process::exit(Code::Failure as i32)
    });
    // The lock only where a race could take too much: a forced cookie
    // nobody waits on is decremented to 1, and two runs at once could take
    // its creator's 1. A stuck one goes to 0, which IPC_NOWAIT never passes
    // whoever else decrements it (udev, another complete), and no run or
    // clean removes a cookie with waiters. Not taking it there matters:
    // under `semprep exec` the daemon holds the lock for its life, and the
    // stuck waiter is that daemon (moby#27900), so waiting for the lock
    // would keep it stuck. docs/design.md §3.
    let forced = a.force && !a.stuck;
    let _lock = if a.change.dry_run || !forced {
        None
    } else {
        let wait = a.change.lock_timeout.min(budget.remaining());
        Some(crate::lock::acquire(&a.change.lock_file, wait)?)
    };
    let snap = snapshot::read(ReadOptions {
        values: true,
        defer_details: false,
    })?;
    let p = Params {
        policy: Policy::Report,
        min_age: a.age.min_age.as_secs(),
        reserve: 0,
        max_semmni: None,
        semmni: None,
    };
    let now = crate::run::now();
    let mut plan = plan::plan(&snap, &p, now)?;
    plan::mark_stuck(&mut plan, &snap, a.age.stuck_after.as_secs(), now);
    let targets = targets(&snap, &plan, &a.semids, a.stuck, a.force).map_err(Error::usage)?;
    let mut owners = Owners::default();
    for t in &targets {
        let d = complete_one(t, a, &snap, &mut owners).map_err(Error::failure)?;
        if d.skipped.is_none() && !a.change.dry_run {
            info!(
                "completed semid {} key {} ({})",
                d.semid,
                key_hex(d.key),
                plural(d.decrements as usize, "decrement")
            );
        }
        done.push(d);
    }
    budget.disarm();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Detail, Owner, PidNamespace};
    use crate::sysv::SetStat;

    const NOW: i64 = 1_000_000;

    fn cookie(zcnt: i32, idle: i64) -> SemSet {
        SemSet {
            semid: 7,
            stat: SetStat {
                key: 0x0D4D_1234,
                nsems: 1,
                mode: 0o600,
                uid: 0,
                cuid: 0,
                otime: NOW - idle,
                ctime: NOW - 7200,
            },
            detail: Ok(Detail {
                value: None,
                zcnt,
                ncnt: 0,
                owner: Owner::Gone { pid: 4242 },
            }),
        }
    }

    fn verdict_of(set: &SemSet, forced: bool) -> Result<i32, String> {
        let class = plan::classify(set, 300, PidNamespace::Initial, NOW);
        verdict(set, &class, 600, NOW, forced)
    }

    #[test]
    fn the_recheck_completes_stuck_cookies_and_forced_ones_to_their_floor() {
        let stuck = cookie(1, 3600);
        let young_waited = cookie(1, 10);
        let idle = cookie(0, 3600);
        let young = cookie(0, 10);
        let mut nsems2 = cookie(1, 3600);
        nsems2.stat.nsems = 2;
        // (set, forced, verdict): the floor, or a word of why it is kept.
        let table: [(&SemSet, bool, Result<i32, &str>); 10] = [
            (&stuck, false, Ok(0)),
            (&stuck, true, Ok(0)),
            // Not stuck (any more): kept, unless named with --force; with
            // --stuck, SEMPREP_FORCE does not make `forced`.
            (&young_waited, false, Err("no longer stuck")),
            (&young_waited, true, Ok(0)),
            (&idle, false, Err("no longer stuck")),
            (&young, false, Err("no longer stuck")),
            // Nobody waits: the creator's 1 is not udev's to take.
            (&idle, true, Ok(1)),
            (&young, true, Ok(1)),
            (&nsems2, false, Err("cookie-shaped")),
            (&nsems2, true, Err("cookie-shaped")),
        ];
        for (set, forced, want) in table {
            let got = verdict_of(set, forced);
            match (&got, want) {
                (Ok(a), Ok(b)) if *a == b => {}
                (Err(why), Err(word)) if why.contains(word) => {}
                _ => panic!("{set:?} forced {forced}: got {got:?}, want {want:?}"),
            }
        }
        // Unreadable details prove no waiter: the creator's 1 stays.
        let mut unread = cookie(1, 3600);
        unread.detail = Err(crate::snapshot::NotRead::Denied("EACCES".into()));
        assert_eq!(verdict_of(&unread, true), Ok(1));
    }
}

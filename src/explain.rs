//! The sentences an operator reads: what semprep did, and when the daemon
//! cannot start, why and what to do. Words an operator knows: ipcs, SEMMNI,
//! /proc/sys/kernel/sem.

use crate::apply::{Applied, Skip, SkipReason};
use crate::limits::Limits;
use crate::plan::{DEFAULT_SEMMSL, DEFAULT_SEMOPM, Headroom, LIBDM_MIN, Params, Plan, Policy};
use crate::report::{key_hex, plural};
use crate::snapshot::Snapshot;
use log::{debug, info};
use std::collections::BTreeMap;

/// Why the limits were not raised, as the command or policy the operator
/// chose and the caps have it.
pub fn not_raised(snap: &Snapshot, p: &Params, command: &str) -> String {
    why_not_raised(command, p.policy, p.semmni_cap(snap))
}

/// `not_raised` without the snapshot: the pure wording, table-tested.
fn why_not_raised(command: &str, policy: Policy, cap: u32) -> String {
    match policy {
        Policy::Clean if command == "clean" => {
            "`semprep clean` never raises the limit; run `semprep raise` or `semprep run`".into()
        }
        Policy::Clean => "policy clean does not raise the limit".into(),
        Policy::Report => "policy report does not raise the limit".into(),
        Policy::Auto | Policy::Raise => {
            format!("SEMMNI cannot go above {cap} (the kernel's maximum, or --max-semmni)")
        }
    }
}

/// Why headroom is short in `room` under `limits` for a daemon that needs
/// `reserve` free sets and semaphores, and what to do about it. `cookies`
/// says what became of the cookies (`cookies_fate`); `why` what kept
/// semprep from fixing it: a refused write, the time budget, or else the
/// command, the policy or the cap (`not_raised`).
pub fn short(limits: &Limits, room: &Headroom, reserve: u64, cookies: &str, why: &str) -> String {
    let mut what = Vec::new();
    if room.free_sets < reserve {
        what.push(format!(
            "{} of SEMMNI {} semaphore sets are in use ({} free, the daemon needs {})",
            room.sets_in_use, limits.semmni, room.free_sets, reserve
        ));
    }
    if room.free_sems < reserve {
        what.push(format!(
            "{} of SEMMNS {} semaphores are in use ({} free, the daemon needs {})",
            room.sems_in_use, limits.semmns, room.free_sems, reserve
        ));
    }
    if room.semmsl_short {
        what.push(format!(
            "SEMMSL, the 1st field, is {}: libdm's semget of a cookie (1 semaphore) fails with \
             EINVAL",
            limits.semmsl
        ));
    }
    if room.semopm_short {
        what.push(format!(
            "SEMOPM, the 3rd field, is {}: every libdm semop fails with E2BIG",
            limits.semopm
        ));
    }
    let mut fix = Vec::new();
    // semget fails with ENOSPC when either count runs out: name the field
    // that did, in the echo too (raising SEMMNI frees no semaphore).
    let (sets_short, sems_short) = (room.free_sets < reserve, room.free_sems < reserve);
    if sets_short || sems_short {
        let (fields, semmns, semmni) = match (sets_short, sems_short) {
            (true, false) => (
                "SEMMNI, the 4th field",
                limits.semmns.to_string(),
                "N".into(),
            ),
            (false, true) => (
                "SEMMNS, the 2nd field",
                "N".into(),
                limits.semmni.to_string(),
            ),
            _ => (
                "SEMMNS and SEMMNI, the 2nd and 4th fields",
                "N".into(),
                "M".into(),
            ),
        };
        fix.push(format!(
            "The daemon's next semget will fail with ENOSPC (\"devicemapper: Can't set \
             cookie\"). Fix: raise {fields} of /proc/sys/kernel/sem (`semprep raise`, or `echo \
             \"{} {semmns} {} {semmni}\" > /proc/sys/kernel/sem`), or remove sets listed by \
             `ipcs -s` that you know are dead",
            limits.semmsl, limits.semopm,
        ));
    }
    if room.semmsl_short || room.semopm_short {
        fix.push(format!(
            "The daemon's device-mapper calls will fail until SEMMSL and SEMOPM are at least \
             {min}. Fix: `semprep raise`, or `echo \"{} {} {} {}\" > /proc/sys/kernel/sem`",
            limits.semmsl.max(DEFAULT_SEMMSL),
            limits.semmns,
            limits.semopm.max(DEFAULT_SEMOPM),
            limits.semmni,
            min = LIBDM_MIN,
        ));
    }
    format!(
        "headroom still short: {}; {cookies}; {why}. {}",
        what.join("; "),
        fix.join(". "),
    )
}

/// What became of the cookies, for `short`: planned (`applied` is `None`,
/// a plan only, as with `--dry-run`), or done (a candidate's class is known
/// only once it was re-checked).
pub fn cookies_fate(plan: &Plan, applied: Option<&Applied>) -> String {
    match applied {
        None => format!(
            "{} removable, {} busy kept",
            plural(plan.remove.len(), "residual cookie"),
            plan.counts().busy + plan.counts().stuck
        ),
        Some(a) => format!(
            "{} removed, {} busy kept",
            plural(a.removed.len(), "residual cookie"),
            busy_kept(plan, a)
        ),
    }
}

/// The time budget ended the removals early: how far they got.
pub fn ran_out(plan: &Plan, applied: &Applied, total: std::time::Duration) -> String {
    format!(
        "the time budget of {total:?} (--timeout) ran out after removing {} of the {} \
         residual cookies planned; the next run removes the rest",
        applied.removed.len(),
        plan.remove.len()
    )
}

/// A raise another writer had already made.
pub fn raised_by_other(snap: &Snapshot, applied: &Applied, found: &Limits) -> String {
    format!(
        "kernel.sem is already \"{found}\", at least the \"{}\" semprep meant to raise \"{}\" \
         to: another writer raised it meanwhile, so semprep wrote nothing",
        applied.target.unwrap_or(*found),
        snap.limits
    )
}

/// The busy cookies left in place: those the plan found busy, and the
/// planned removals the re-check found busy or in use (with deferred
/// details, the only place a waiter or a live owner shows).
fn busy_kept(plan: &Plan, applied: &Applied) -> usize {
    let rechecked = applied
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::Busy | SkipReason::Used))
        .count();
    // Stuck cookies are kept too (run and clean never touch them).
    plan.counts().busy + plan.counts().stuck + rechecked
}

/// One info line per reason planned removals were skipped, with the count:
/// concurrent runs can skip tens of thousands of sets, one line each would
/// flood the journal. Each set is a debug line (`kept semid …`).
pub fn skipped_lines(skipped: &[Skip]) -> Vec<String> {
    let mut counts = BTreeMap::new();
    for s in skipped {
        *counts.entry(s.reason).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .map(|(reason, n)| {
            let why = match reason {
                SkipReason::Gone => {
                    "gone before removal (removed by another process since they were read)"
                }
                SkipReason::KeyChanged => "key changed since they were read",
                SkipReason::Used => {
                    "used since they were read (a device-mapper user is active again)"
                }
                SkipReason::Busy => {
                    "busy when re-checked (a waiter, a live owner, or operated on recently)"
                }
            };
            format!("skipped {n} {}: {why}", if n == 1 { "set" } else { "sets" })
        })
        .collect()
}

/// A few info lines on what the run changed; nothing when it changed
/// nothing (quiet when all is well).
pub fn log_applied(snap: &Snapshot, plan: &Plan, applied: &Applied) {
    for s in &applied.skipped {
        debug!(
            "kept semid {} key {}: {} (re-checked just before removal)",
            s.semid,
            key_hex(s.key),
            s.why
        );
    }
    for line in skipped_lines(&applied.skipped) {
        info!("{line}");
    }
    if !applied.removed.is_empty() {
        let sets_now = applied.usage.map_or_else(
            || {
                snap.sets_in_use
                    .saturating_sub(applied.removed.len() as u64)
            },
            |(sets, _)| sets,
        );
        info!(
            "removed {} ({} busy kept, {} left alone); \
             semaphore sets in use {} -> {} of SEMMNI {}",
            plural(applied.removed.len(), "residual dm cookie"),
            busy_kept(plan, applied),
            plural(plan.counts().lookalike, "look-alike set"),
            snap.sets_in_use,
            sets_now,
            snap.limits.semmni
        );
    }
    if let Some(l) = applied.raised {
        info!(
            "raised kernel.sem from \"{}\" to \"{l}\" (SEMMNI {} -> {})",
            snap.limits, snap.limits.semmni, l.semmni
        );
    }
    if let Some(f) = &applied.persisted {
        info!(
            "wrote kernel.sem = {} to {f} for the next boot",
            applied.raised.unwrap_or(snap.limits)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_headroom_names_each_short_field_and_its_fix() {
        let lim = |semmsl, semmns, semopm, semmni| Limits {
            semmsl,
            semmns,
            semopm,
            semmni,
        };
        let room = |l: &Limits, sets, sems| crate::plan::headroom(l, sets, sems, 10);
        let sets = lim(250, 32000, 32, 128);
        let sems = lim(250, 130, 32, 32000);
        let fields = lim(0, 32000, 0, 32000);
        // (limits, sets in use, semaphores in use, what the message must say)
        let cases: [(&Limits, u64, u64, &[&str]); 4] = [
            (
                &sets,
                125,
                125,
                &[
                    "headroom still short: 125 of SEMMNI 128 semaphore sets are in use (3 free, \
                     the daemon needs 10); 2 residual cookies removed, 1 busy kept; policy clean \
                     does not raise the limit. The daemon's next semget will fail with ENOSPC",
                    "`echo \"250 32000 32 N\" > /proc/sys/kernel/sem`",
                ],
            ),
            (
                &sems,
                5,
                125,
                &[
                    "125 of SEMMNS 130 semaphores are in use (5 free, the daemon needs 10)",
                    "Fix: raise SEMMNS, the 2nd field of /proc/sys/kernel/sem (`semprep raise`, \
                     or `echo \"250 N 32 32000\" > /proc/sys/kernel/sem`)",
                ],
            ),
            (
                &lim(250, 130, 32, 128),
                125,
                125,
                &[
                    "sets are in use (3 free, the daemon needs 10); 125 of SEMMNS 130 semaphores \
                     are in use (5 free",
                    "raise SEMMNS and SEMMNI, the 2nd and 4th fields of /proc/sys/kernel/sem \
                     (`semprep raise`, or `echo \"250 N 32 M\" >",
                ],
            ),
            (
                &fields,
                5,
                5,
                &[
                    "short: SEMMSL, the 1st field, is 0: libdm's semget of a cookie",
                    "; SEMOPM, the 3rd field, is 0: every libdm semop fails with E2BIG; 2 \
                     residual cookies removed",
                    "until SEMMSL and SEMOPM are at least 1. Fix: `semprep raise`, or `echo \
                     \"250 32000 32 32000\" > /proc/sys/kernel/sem`",
                ],
            ),
        ];
        for (limits, in_use, sems_in_use, want) in cases {
            let msg = short(
                limits,
                &room(limits, in_use, sems_in_use),
                10,
                "2 residual cookies removed, 1 busy kept",
                "policy clean does not raise the limit",
            );
            for w in want {
                assert!(msg.contains(w), "{msg:?}\nlacks {w:?}");
            }
            // A field that is not short is neither blamed nor to be raised.
            if in_use < 100 {
                assert!(!msg.contains("SEMMNI"), "{msg:?}");
            }
            if sems_in_use < 100 {
                assert!(!msg.contains("SEMMNS"), "{msg:?}");
            }
        }
    }

    #[test]
    fn skipped_sets_make_one_line_per_reason() {
        let skip = |semid, reason, why: &str| Skip {
            semid,
            key: 0x0D4D_0001 + semid,
            reason,
            why: why.into(),
        };
        let mut skipped = vec![
            skip(1, SkipReason::Busy, "young (3s)"),
            skip(2, SkipReason::Used, "used since it was read"),
            skip(5, SkipReason::Busy, "waiters (1 for zero, 0 for increase)"),
        ];
        skipped.extend((10..17_506).map(|id| skip(id, SkipReason::Gone, "gone before removal")));
        assert_eq!(
            skipped_lines(&skipped),
            [
                "skipped 17496 sets: gone before removal (removed by another process since \
                 they were read)",
                "skipped 1 set: used since they were read (a device-mapper user is active again)",
                "skipped 2 sets: busy when re-checked (a waiter, a live owner, or operated on \
                 recently)",
            ]
        );
        assert_eq!(skipped_lines(&[]), Vec::<String>::new());
    }

    #[test]
    fn why_not_raised_names_what_the_operator_chose() {
        // (command, policy, SEMMNI cap, must contain, must not contain)
        let cases = [
            (
                "clean",
                Policy::Clean,
                32_768,
                "`semprep clean` never raises the limit; run `semprep raise` or `semprep run`",
                "policy",
            ),
            (
                "run",
                Policy::Clean,
                32_768,
                "policy clean does not raise the limit",
                "semprep clean",
            ),
            (
                "exec",
                Policy::Clean,
                32_768,
                "policy clean does not raise the limit",
                "semprep clean",
            ),
            (
                "run",
                Policy::Report,
                32_768,
                "policy report does not raise the limit",
                "semprep clean",
            ),
            (
                "run",
                Policy::Auto,
                256,
                "SEMMNI cannot go above 256 (the kernel's maximum, or --max-semmni)",
                "policy",
            ),
            (
                "raise",
                Policy::Raise,
                32_768,
                "SEMMNI cannot go above 32768",
                "policy",
            ),
        ];
        for (command, policy, cap, want, not) in cases {
            let got = why_not_raised(command, policy, cap);
            assert!(got.contains(want), "{command} {policy:?}: {got}");
            assert!(!got.contains(not), "{command} {policy:?}: {got}");
        }
    }
}

//! The sentences an operator reads: what semprep did, and when the daemon
//! cannot start, why and what to do. Words an operator knows: ipcs, SEMMNI,
//! /proc/sys/kernel/sem.

use crate::apply::Applied;
use crate::plan::{Headroom, Params, Plan, Policy};
use crate::report::{key_hex, plural};
use crate::snapshot::Snapshot;
use log::info;

/// Why headroom is still short after the plan, and what to do about it.
/// `command` is the subcommand the operator ran.
pub fn short(snap: &Snapshot, plan: &Plan, room: &Headroom, p: &Params, command: &str) -> String {
    let limits = plan.raise.unwrap_or(snap.limits);
    let mut what = Vec::new();
    if room.free_sets < p.reserve {
        what.push(format!(
            "{} of SEMMNI {} semaphore sets are in use ({} free, the daemon needs {})",
            room.sets_in_use, limits.semmni, room.free_sets, p.reserve
        ));
    }
    if room.free_sems < p.reserve {
        what.push(format!(
            "{} of SEMMNS {} semaphores are in use ({} free, the daemon needs {})",
            room.sems_in_use, limits.semmns, room.free_sems, p.reserve
        ));
    }
    let cap = p
        .max_semmni
        .unwrap_or(snap.kernel_max_semmni)
        .min(snap.kernel_max_semmni);
    let why = not_raised(command, p.policy, cap);
    format!(
        "headroom still short: {}; {} removable, {} busy kept; {why}. \
         The daemon's next semget will fail with ENOSPC (\"devicemapper: Can't set cookie\"). \
         Fix: raise SEMMNI, the 4th field of /proc/sys/kernel/sem (`semprep raise`, or \
         `echo \"{} {} {} N\" > /proc/sys/kernel/sem`), or remove sets listed by `ipcs -s` \
         that you know are dead",
        what.join("; "),
        plural(plan.remove.len(), "residual cookie"),
        plan.count("busy"),
        limits.semmsl,
        limits.semmns,
        limits.semopm,
    )
}

/// Why the plan does not raise SEMMNI far enough: the command or policy the
/// operator chose, or the cap.
fn not_raised(command: &str, policy: Policy, cap: u32) -> String {
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

/// One or two info lines on what the run changed; nothing when it changed
/// nothing (quiet when all is well).
pub fn log_applied(snap: &Snapshot, plan: &Plan, applied: &Applied) {
    for s in &applied.skipped {
        info!(
            "kept semid {} key {}: {} (re-checked just before removal)",
            s.semid,
            key_hex(s.key),
            s.why
        );
    }
    if !applied.removed.is_empty() {
        info!(
            "removed {} ({} busy kept, {} left alone); \
             semaphore sets in use {} -> {} of SEMMNI {}",
            plural(applied.removed.len(), "residual dm cookie"),
            plan.count("busy"),
            plural(plan.count("foreign"), "look-alike set"),
            snap.sets_in_use,
            snap.sets_in_use
                .saturating_sub(applied.removed.len() as u64),
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
            let got = not_raised(command, policy, cap);
            assert!(got.contains(want), "{command} {policy:?}: {got}");
            assert!(!got.contains(not), "{command} {policy:?}: {got}");
        }
    }
}

//! Classification and planning: pure functions of (snapshot, policy, now).

use crate::limits::Limits;
use crate::snapshot::{Owner, SemSet, Snapshot};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Remove residual cookies, then raise the limit if headroom is short.
    Auto,
    /// Only remove residual cookies.
    Clean,
    /// Only raise the limit.
    Raise,
    /// Change nothing.
    Report,
}

impl Policy {
    fn removes(self) -> bool {
        matches!(self, Policy::Auto | Policy::Clean)
    }
    fn raises(self) -> bool {
        matches!(self, Policy::Auto | Policy::Raise)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub policy: Policy,
    /// Seconds since the last semop or change before a cookie may be residual.
    pub min_age: u64,
    /// Free sets and free semaphores the daemon needs.
    pub reserve: u64,
    /// Operator's cap on SEMMNI (the kernel's cap applies anyway).
    pub max_semmni: Option<u32>,
    /// An explicit SEMMNI target (`raise --semmni`).
    pub semmni: Option<u32>,
}

/// What a dm-magic set is, with every reason that applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Not shaped exactly like a libdm cookie: never touched.
    Foreign(Vec<String>),
    /// A cookie that is provably dead.
    Residual,
    /// A cookie that may still be in use.
    Busy(Vec<String>),
}

impl Class {
    pub fn name(&self) -> &'static str {
        match self {
            Class::Foreign(_) => "foreign",
            Class::Residual => "residual",
            Class::Busy(_) => "busy",
        }
    }
    pub fn reasons(&self) -> &[String] {
        match self {
            Class::Foreign(r) | Class::Busy(r) => r,
            Class::Residual => &[],
        }
    }
}

/// Seconds since the set was last operated on or changed.
pub fn age(set: &SemSet, now: i64) -> u64 {
    let last = set.stat.otime.max(set.stat.ctime);
    now.saturating_sub(last).max(0) as u64
}

/// Classifies a set whose key carries the dm magic (docs/design.md §3).
pub fn classify(set: &SemSet, min_age: u64, now: i64) -> Class {
    let s = &set.stat;
    let mut foreign = Vec::new();
    if !crate::snapshot::has_cookie_magic(s.key) {
        foreign.push(format!("key prefix 0x{:04x}", s.key as u32 >> 16));
    } else if s.key as u32 & 0xffff == 0 {
        foreign.push("key base 0".to_owned());
    }
    if s.nsems != 1 {
        foreign.push(format!("nsems {}", s.nsems));
    }
    if s.mode & 0o7777 != 0o600 {
        foreign.push(format!("mode {:04o}", s.mode & 0o7777));
    }
    if s.uid != 0 {
        foreign.push(format!("owner uid {}", s.uid));
    }
    if s.cuid != 0 {
        foreign.push(format!("creator uid {}", s.cuid));
    }
    if !foreign.is_empty() {
        return Class::Foreign(foreign);
    }

    let mut busy = Vec::new();
    match &set.detail {
        Err(why) => busy.push(format!("unreadable ({why})")),
        Ok(d) => {
            if d.zcnt > 0 || d.ncnt > 0 {
                busy.push(format!(
                    "waiters ({} for zero, {} for increase)",
                    d.zcnt, d.ncnt
                ));
            }
            if let Owner::Alive { pid, comm } = &d.owner {
                busy.push(format!("owner-alive (pid {pid}, {comm})"));
            }
        }
    }
    let age = age(set, now);
    if age < min_age {
        busy.push(format!("young ({age}s)"));
    }
    if busy.is_empty() {
        Class::Residual
    } else {
        Class::Busy(busy)
    }
}

/// Free sets and semaphores, and whether that is enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headroom {
    pub sets_in_use: u64,
    pub sems_in_use: u64,
    pub free_sets: u64,
    pub free_sems: u64,
    pub short: bool,
}

pub fn headroom(limits: &Limits, sets: u64, sems: u64, reserve: u64) -> Headroom {
    let free_sets = u64::from(limits.semmni).saturating_sub(sets);
    let free_sems = u64::from(limits.semmns).saturating_sub(sems);
    Headroom {
        sets_in_use: sets,
        sems_in_use: sems,
        free_sets,
        free_sems,
        short: free_sets < reserve || free_sems < reserve,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Headroom was enough already.
    Ready,
    /// Headroom was short and the plan fixes it.
    Fixed,
    /// Headroom stays short after the plan.
    Short,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub semid: i32,
    pub key: i32,
    pub age: u64,
    pub class: Class,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Every dm-magic set, classified.
    pub sets: Vec<Entry>,
    /// Semids to remove, in kernel index order.
    pub remove: Vec<i32>,
    /// New limits to write, when they differ from the current ones.
    pub raise: Option<Limits>,
    pub before: Headroom,
    pub after: Headroom,
    pub verdict: Verdict,
}

impl Plan {
    pub fn count(&self, class: &str) -> usize {
        self.sets.iter().filter(|e| e.class.name() == class).count()
    }
}

/// The SEMMNI the plan aims for: the explicit target, or when sets are short
/// at least `needed`, by default twice the current value, within the caps.
fn semmni_target(cur: u32, needed: u64, cap: u32, explicit: Option<u32>) -> u32 {
    match explicit {
        Some(n) => n.max(cur),
        None if u64::from(cur) >= needed => cur,
        None => {
            let want = needed.max(u64::from(cur) * 2);
            want.min(u64::from(cap)).max(u64::from(cur)) as u32
        }
    }
}

/// The kernel stores SEMMNS in a C int.
fn semmns_target(cur: u32, needed: u64) -> u32 {
    if u64::from(cur) >= needed {
        return cur;
    }
    needed.max(u64::from(cur) * 2).min(i32::MAX as u64) as u32
}

/// Plans what to remove and raise. `Err` is a usage error: an explicit
/// SEMMNI target the kernel or the current usage cannot accept.
pub fn plan(snap: &Snapshot, p: &Params, now: i64) -> Result<Plan, String> {
    let cap = p
        .max_semmni
        .unwrap_or(snap.kernel_max_semmni)
        .min(snap.kernel_max_semmni);
    if let Some(n) = p.semmni {
        if n > snap.kernel_max_semmni {
            return Err(format!(
                "--semmni {n} is above the kernel's maximum of {} (IPCMNI)",
                snap.kernel_max_semmni
            ));
        }
        if u64::from(n) < snap.sets_in_use {
            return Err(format!(
                "--semmni {n} is below the {} semaphore sets in use",
                snap.sets_in_use
            ));
        }
    }

    let sets: Vec<Entry> = snap
        .sets
        .iter()
        .map(|s| Entry {
            semid: s.semid,
            key: s.stat.key,
            age: age(s, now),
            class: classify(s, p.min_age, now),
        })
        .collect();
    let remove: Vec<i32> = if p.policy.removes() {
        sets.iter()
            .filter(|e| e.class == Class::Residual)
            .map(|e| e.semid)
            .collect()
    } else {
        Vec::new()
    };

    let before = headroom(&snap.limits, snap.sets_in_use, snap.sems_in_use, p.reserve);
    // Every removed cookie is one set holding one semaphore.
    let gone = remove.len() as u64;
    let sets_after = snap.sets_in_use.saturating_sub(gone);
    let sems_after = snap.sems_in_use.saturating_sub(gone);
    let cleaned = headroom(&snap.limits, sets_after, sems_after, p.reserve);

    let mut limits = snap.limits;
    if p.policy.raises() && (cleaned.short || p.semmni.is_some()) {
        let l = &snap.limits;
        limits.semmni = semmni_target(l.semmni, sets_after + p.reserve, cap, p.semmni);
        limits.semmns = semmns_target(l.semmns, sems_after + p.reserve);
    }
    let raise = (limits != snap.limits).then_some(limits);
    let after = headroom(&limits, sets_after, sems_after, p.reserve);
    let verdict = match (before.short, after.short) {
        (_, true) => Verdict::Short,
        (true, false) => Verdict::Fixed,
        (false, false) => Verdict::Ready,
    };
    Ok(Plan {
        sets,
        remove,
        raise,
        before,
        after,
        verdict,
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

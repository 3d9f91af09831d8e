//! Classification and planning: pure functions of (snapshot, policy, now).

use crate::error::Error;
use crate::limits::Limits;
use crate::snapshot::{NotRead, Owner, PidNamespace, SemSet, Snapshot};
use std::fmt;

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
    pub(crate) fn removes(self) -> bool {
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

impl Params {
    /// The highest SEMMNI a raise may write: --max-semmni, but never above
    /// the kernel's maximum.
    pub(crate) fn semmni_cap(&self, snap: &Snapshot) -> u32 {
        self.max_semmni
            .unwrap_or(snap.kernel_max_semmni)
            .min(snap.kernel_max_semmni)
    }
}

/// What a dm-magic set is, with every reason that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A look-alike: the dm key prefix, but not shaped exactly like a libdm
    /// cookie. Never touched.
    Lookalike(Reasons),
    /// A cookie that is provably dead.
    Residual,
    /// A cookie old enough to be residual whose waiters and owner were not
    /// read (`ReadOptions::defer_details`): residual if the re-check right
    /// before its removal confirms it, which reads them (docs/design.md §3).
    Candidate,
    /// A cookie that may still be in use.
    Busy(Reasons),
    /// A cookie with waiters whose udev completion will never come (idle
    /// past --stuck-after): busy for `run` and `clean`, which never touch
    /// it; `semprep complete` releases its waiters.
    Stuck(Reasons),
}

impl Class {
    /// The class in the `--json` document (`"class"`).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Class::Lookalike(_) => "lookalike",
            Class::Residual => "residual",
            Class::Candidate => "candidate",
            Class::Busy(_) => "busy",
            Class::Stuck(_) => "stuck",
        }
    }
    /// The class in text for operators (`status`'s CLASS column).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Class::Lookalike(_) => "look-alike",
            other => other.name(),
        }
    }
    /// The reasons, in an operator's words, with the facts of `set` (the
    /// set this class was found for, idle for `age` seconds).
    pub fn reasons<'a>(&self, set: &'a SemSet, age: u64) -> impl Iterator<Item = Said<'a>> {
        let reasons = match self {
            Class::Lookalike(r) | Class::Busy(r) | Class::Stuck(r) => *r,
            Class::Residual | Class::Candidate => Reasons::default(),
        };
        reasons.iter().map(move |reason| Said { reason, set, age })
    }
    /// `reasons`, joined by ", ".
    pub fn reasons_text(&self, set: &SemSet, age: u64) -> String {
        let words: Vec<String> = self.reasons(set, age).map(|r| r.to_string()).collect();
        words.join(", ")
    }
}

/// Why a set is not a residual cookie. Only the kind is kept: the words
/// come from the set itself (`Said`), so a plan holds no string per set
/// (at 30,000 busy cookies, strings were 4 MB of `status --json`'s peak
/// memory: BENCHMARKS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    // Look-alike: not shaped like a libdm cookie.
    KeyPrefix,
    KeyBase,
    Nsems,
    Mode,
    OwnerUid,
    CreatorUid,
    // Busy: a cookie that may be in use.
    Unreadable,
    Waiters,
    OwnerAlive,
    /// GETPID 0 from a child pid namespace.
    OwnerUnseen,
    /// GETPID 0 and /proc/self/ns/pid unreadable.
    OwnerUnseenNoProc,
    Young,
    /// Waiters idle past --stuck-after.
    Stuck,
}

impl Reason {
    /// In the order reasons are listed.
    const ALL: [Reason; 13] = [
        Reason::KeyPrefix,
        Reason::KeyBase,
        Reason::Nsems,
        Reason::Mode,
        Reason::OwnerUid,
        Reason::CreatorUid,
        Reason::Unreadable,
        Reason::Waiters,
        Reason::OwnerAlive,
        Reason::OwnerUnseen,
        Reason::OwnerUnseenNoProc,
        Reason::Young,
        Reason::Stuck,
    ];
}

/// A set of `Reason`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reasons(u16);

impl Reasons {
    fn add(&mut self, r: Reason) {
        self.0 |= 1 << r as u16;
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// In the order they are listed.
    fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL
            .into_iter()
            .filter(move |&r| self.0 & 1 << r as u16 != 0)
    }
}

impl FromIterator<Reason> for Reasons {
    fn from_iter<I: IntoIterator<Item = Reason>>(iter: I) -> Self {
        let mut reasons = Reasons::default();
        iter.into_iter().for_each(|r| reasons.add(r));
        reasons
    }
}

/// A reason in an operator's words: `waiters (1 for zero, 0 for
/// increase)`, `owner-alive (pid 7, lvcreate)`, `young (12s)`.
pub struct Said<'a> {
    reason: Reason,
    set: &'a SemSet,
    age: u64,
}

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.set.stat;
        let detail = self.set.detail.as_ref();
        match (self.reason, detail) {
            (Reason::KeyPrefix, _) => write!(f, "key prefix 0x{:04x}", s.key as u32 >> 16),
            (Reason::KeyBase, _) => f.write_str("key base 0"),
            (Reason::Nsems, _) => write!(f, "nsems {}", s.nsems),
            (Reason::Mode, _) => write!(f, "mode {:04o}", s.mode & 0o7777),
            (Reason::OwnerUid, _) => write!(f, "owner uid {}", s.uid),
            (Reason::CreatorUid, _) => write!(f, "creator uid {}", s.cuid),
            (Reason::Unreadable, Err(NotRead::Denied(why))) => write!(f, "unreadable ({why})"),
            (Reason::Waiters, Ok(d)) => {
                write!(f, "waiters ({} for zero, {} for increase)", d.zcnt, d.ncnt)
            }
            (Reason::OwnerAlive, Ok(d)) => match &d.owner {
                Owner::Alive { pid, comm } => write!(f, "owner-alive (pid {pid}, {comm})"),
                _ => f.write_str("owner-alive"),
            },
            (Reason::OwnerUnseen, _) => f.write_str(
                "owner-unseen (semprep runs in a child pid namespace: the last-op pid is not \
                 visible; run it in the host's pid namespace)",
            ),
            (Reason::OwnerUnseenNoProc, _) => f.write_str(
                "owner-unseen (/proc/self/ns/pid is unreadable, so the last-op pid may be one \
                 semprep cannot see; run it in the host's pid namespace with /proc mounted)",
            ),
            (Reason::Young, _) => write!(f, "young ({}s)", self.age),
            (Reason::Stuck, _) => write!(
                f,
                "stuck (idle {}: udev will not complete it; `semprep complete {}` wakes the \
                 waiters)",
                crate::report::human_age(self.age),
                self.set.semid
            ),
            // Only for a set other than the one classified: the bare word.
            (Reason::Unreadable, _) => f.write_str("unreadable"),
            (Reason::Waiters, Err(_)) => f.write_str("waiters"),
            (Reason::OwnerAlive, Err(_)) => f.write_str("owner-alive"),
        }
    }
}

/// Seconds since the set was last operated on or changed.
pub(crate) fn age(set: &SemSet, now: i64) -> u64 {
    let last = set.stat.otime.max(set.stat.ctime);
    now.saturating_sub(last).max(0) as u64
}

/// Why a GETPID of 0 proves nothing when semprep is not in the host's pid
/// namespace, or `None` when it does (the owner is gone, or never was).
fn owner_unseen(pid_ns: PidNamespace) -> Option<Reason> {
    match pid_ns {
        PidNamespace::Initial => None,
        PidNamespace::Child => Some(Reason::OwnerUnseen),
        PidNamespace::Unknown => Some(Reason::OwnerUnseenNoProc),
    }
}

/// Classifies a set whose key carries the dm magic (docs/design.md §3).
/// `pid_ns` is the reader's pid namespace: outside the initial one a
/// GETPID of 0 may hide a live owner.
pub(crate) fn classify(set: &SemSet, min_age: u64, pid_ns: PidNamespace, now: i64) -> Class {
    let s = &set.stat;
    let mut lookalike = Reasons::default();
    if !crate::snapshot::has_cookie_magic(s.key) {
        lookalike.add(Reason::KeyPrefix);
    } else if s.key as u32 & 0xffff == 0 {
        lookalike.add(Reason::KeyBase);
    }
    if s.nsems != 1 {
        lookalike.add(Reason::Nsems);
    }
    if s.mode & 0o7777 != 0o600 {
        lookalike.add(Reason::Mode);
    }
    if s.uid != 0 {
        lookalike.add(Reason::OwnerUid);
    }
    if s.cuid != 0 {
        lookalike.add(Reason::CreatorUid);
    }
    if !lookalike.is_empty() {
        return Class::Lookalike(lookalike);
    }

    let mut busy = Reasons::default();
    match &set.detail {
        Err(NotRead::Denied(_)) => busy.add(Reason::Unreadable),
        // Waiters and owner are read by the re-check, which decides.
        Err(NotRead::Deferred) => {}
        Ok(d) => {
            if d.zcnt > 0 || d.ncnt > 0 {
                busy.add(Reason::Waiters);
            }
            match d.owner {
                Owner::Alive { .. } => busy.add(Reason::OwnerAlive),
                Owner::Unknown => {
                    if let Some(r) = owner_unseen(pid_ns) {
                        busy.add(r);
                    }
                }
                Owner::Gone { .. } => {}
            }
        }
    }
    if age(set, now) < min_age {
        busy.add(Reason::Young);
    }
    match (busy.is_empty(), &set.detail) {
        (false, _) => Class::Busy(busy),
        (true, Err(NotRead::Deferred)) => Class::Candidate,
        (true, _) => Class::Residual,
    }
}

/// The default `--stuck-after`: udev gives up on an event after 180 s, so a
/// waiter idle this long past it will never be woken by udev.
pub(crate) const DEFAULT_STUCK_AFTER: u64 = 600;

/// A busy cookie with waiters for zero, idle at least `stuck_after`
/// seconds, is stuck: libdm's `dm_udev_wait` blocks until udev completes
/// the cookie, and udev gave up long ago (docs/design.md §3). `None` when
/// the class stays as it is.
pub(crate) fn stuck(set: &SemSet, class: &Class, stuck_after: u64, now: i64) -> Option<Class> {
    let (Class::Busy(reasons), Ok(d)) = (class, &set.detail) else {
        return None;
    };
    if d.zcnt <= 0 || age(set, now) < stuck_after {
        return None;
    }
    let mut reasons = *reasons;
    reasons.add(Reason::Stuck);
    Some(Class::Stuck(reasons))
}

/// Marks the plan's stuck cookies (`stuck`). Stuck cookies are never in
/// `plan.remove`: only residual ones are.
pub(crate) fn mark_stuck(plan: &mut Plan, snap: &Snapshot, stuck_after: u64, now: i64) {
    for (entry, set) in plan.sets.iter_mut().zip(&snap.sets) {
        debug_assert_eq!(entry.semid, set.semid);
        if let Some(class) = stuck(set, &entry.class, stuck_after, now) {
            entry.class = class;
        }
    }
}

/// libdm asks for one semaphore per set (a cookie) and one operation per
/// semop: a SEMMSL or SEMOPM below this makes every cookie fail (semget
/// with EINVAL, semop with E2BIG).
pub(crate) const LIBDM_MIN: u32 = 1;
/// What a raise sets a SEMMSL below `LIBDM_MIN` to: the kernel's historic
/// default (SEMMSL in include/uapi/linux/sem.h).
pub(crate) const DEFAULT_SEMMSL: u32 = 250;
/// What a raise sets a SEMOPM below `LIBDM_MIN` to: the kernel's historic
/// default (SEMOPM in include/uapi/linux/sem.h).
pub(crate) const DEFAULT_SEMOPM: u32 = 32;

/// Free sets and semaphores, the per-set and per-call limits libdm needs,
/// and whether that is enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headroom {
    pub sets_in_use: u64,
    pub sems_in_use: u64,
    pub free_sets: u64,
    pub free_sems: u64,
    /// SEMMSL is below what one cookie needs.
    pub semmsl_short: bool,
    /// SEMOPM is below what one semop needs.
    pub semopm_short: bool,
    pub short: bool,
}

pub(crate) fn headroom(limits: &Limits, sets: u64, sems: u64, reserve: u64) -> Headroom {
    let free_sets = u64::from(limits.semmni).saturating_sub(sets);
    let free_sems = u64::from(limits.semmns).saturating_sub(sems);
    let semmsl_short = limits.semmsl < LIBDM_MIN;
    let semopm_short = limits.semopm < LIBDM_MIN;
    Headroom {
        sets_in_use: sets,
        sems_in_use: sems,
        free_sets,
        free_sems,
        semmsl_short,
        semopm_short,
        short: free_sets < reserve || free_sems < reserve || semmsl_short || semopm_short,
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
    /// Semids to remove (the residual cookies and the candidates), in
    /// kernel index order. Each is re-checked right before its removal.
    pub remove: Vec<i32>,
    /// New limits to write, when they differ from the current ones.
    pub raise: Option<Limits>,
    pub before: Headroom,
    pub after: Headroom,
    pub verdict: Verdict,
    /// How to raise, when the policy allows it. `raise` is its prediction,
    /// for `--dry-run` and the reports; `apply` decides the raise with it
    /// from the usage the removals really left (docs/design.md §4).
    pub rule: Option<RaiseRule>,
}

/// How many of a plan's sets are in each class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub residual: usize,
    pub candidate: usize,
    pub busy: usize,
    pub lookalike: usize,
    pub stuck: usize,
}

impl Plan {
    pub(crate) fn counts(&self) -> Counts {
        let mut n = Counts::default();
        for e in &self.sets {
            match e.class {
                Class::Residual => n.residual += 1,
                Class::Candidate => n.candidate += 1,
                Class::Busy(_) => n.busy += 1,
                Class::Lookalike(_) => n.lookalike += 1,
                Class::Stuck(_) => n.stuck += 1,
            }
        }
        n
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

/// What a raise aims for, given the usage it must serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaiseRule {
    pub reserve: u64,
    /// SEMMNI never goes above this (the kernel's maximum, or --max-semmni).
    pub cap: u32,
    /// An explicit SEMMNI target (`raise --semmni`).
    pub semmni: Option<u32>,
}

impl RaiseRule {
    /// The limits to write so that `sets` and `sems` in use leave the
    /// reserve free, or `None` when `limits` already do (and no explicit
    /// target asks for more). Fields only ever rise.
    pub(crate) fn raise(&self, limits: &Limits, sets: u64, sems: u64) -> Option<Limits> {
        if !headroom(limits, sets, sems, self.reserve).short && self.semmni.is_none() {
            return None;
        }
        let mut to = *limits;
        to.semmni = semmni_target(limits.semmni, sets + self.reserve, self.cap, self.semmni);
        to.semmns = semmns_target(limits.semmns, sems + self.reserve);
        if to.semmsl < LIBDM_MIN {
            to.semmsl = DEFAULT_SEMMSL;
        }
        if to.semopm < LIBDM_MIN {
            to.semopm = DEFAULT_SEMOPM;
        }
        (to != *limits).then_some(to)
    }
}

/// Plans what to remove and raise. `Err` is bad input (exit 2): an explicit
/// SEMMNI target the kernel or the current usage cannot accept, or a
/// reserve no SEMMNI can leave free.
pub fn plan(snap: &Snapshot, p: &Params, now: i64) -> Result<Plan, Error> {
    let cap = p.semmni_cap(snap);
    if p.reserve > u64::from(snap.kernel_max_semmni) {
        return Err(Error::usage(format!(
            "--reserve {} is above the kernel's maximum SEMMNI of {} (IPCMNI): no kernel.sem \
             can leave that many semaphore sets free; use a reserve from 0 to {}",
            p.reserve, snap.kernel_max_semmni, snap.kernel_max_semmni
        )));
    }
    if let Some(n) = p.semmni {
        if n > snap.kernel_max_semmni {
            return Err(Error::usage(format!(
                "--semmni {n} is above the kernel's maximum of {} (IPCMNI)",
                snap.kernel_max_semmni
            )));
        }
        if u64::from(n) < snap.sets_in_use {
            return Err(Error::usage(format!(
                "--semmni {n} is below the {} semaphore sets in use",
                snap.sets_in_use
            )));
        }
    }

    let sets: Vec<Entry> = snap
        .sets
        .iter()
        .map(|s| Entry {
            semid: s.semid,
            key: s.stat.key,
            age: age(s, now),
            class: classify(s, p.min_age, snap.pid_namespace, now),
        })
        .collect();
    let remove: Vec<i32> = if p.policy.removes() {
        sets.iter()
            .filter(|e| matches!(e.class, Class::Residual | Class::Candidate))
            .map(|e| e.semid)
            .collect()
    } else {
        Vec::new()
    };

    let before = headroom(&snap.limits, snap.sets_in_use, snap.sems_in_use, p.reserve);
    // The prediction: every planned removal done (a candidate's too), and
    // every removed cookie is one set holding one semaphore. apply decides
    // the real raise from the usage the removals left.
    let gone = remove.len() as u64;
    let sets_after = snap.sets_in_use.saturating_sub(gone);
    let sems_after = snap.sems_in_use.saturating_sub(gone);
    let rule = p.policy.raises().then_some(RaiseRule {
        reserve: p.reserve,
        cap,
        semmni: p.semmni,
    });
    let raise = rule.and_then(|r| r.raise(&snap.limits, sets_after, sems_after));
    let limits = raise.unwrap_or(snap.limits);
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
        rule,
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

//! One consistent-enough read of the kernel's semaphore state. Nothing else
//! in semprep reads kernel state: the plan is computed from a `Snapshot`, and
//! `apply` re-reads single sets through `reread` below.

use crate::error::Error;
use crate::limits::{self, Limits};
use crate::parallel;
use crate::sysv::{self, SetStat, vanished};
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// The top 16 bits of every libdm cookie key (`DM_COOKIE_MAGIC`).
pub const DM_COOKIE_MAGIC: u32 = 0x0D4D;

pub fn has_cookie_magic(key: i32) -> bool {
    (key as u32) >> 16 == DM_COOKIE_MAGIC
}

/// Who did the last semop or SETVAL on a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// GETPID is 0: nobody, or a pid outside our pid namespace (which of
    /// the two only the initial pid namespace can tell: `PidNamespace`).
    Unknown,
    /// That pid no longer exists.
    Gone {
        pid: i32,
    },
    Alive {
        pid: i32,
        comm: String,
    },
}

/// The pid namespace semprep reads from. GETPID reads 0 when the last-op
/// process is not visible from the reader's pid namespace, so a 0 means
/// "nobody" only in the initial (host's) pid namespace, which sees every
/// process (docs/design.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidNamespace {
    /// The host's: every process is visible.
    Initial,
    /// A child (a container without the host's pid namespace).
    Child,
    /// `/proc/self/ns/pid` could not be read: treated like a child.
    Unknown,
}

/// The inode of the initial pid namespace (`PROC_PID_INIT_INO` in the
/// kernel's include/linux/proc_ns.h): the same on every boot and kernel.
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// Which pid namespace a `/proc/self/ns/pid` link target (`pid:[N]`) names.
pub(crate) fn parse_pid_namespace(link: &str) -> PidNamespace {
    let inode = link
        .strip_prefix("pid:[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|n| n.parse::<u64>().ok());
    match inode {
        Some(PROC_PID_INIT_INO) => PidNamespace::Initial,
        Some(_) => PidNamespace::Child,
        None => PidNamespace::Unknown,
    }
}

/// The reader's pid namespace; unreadable means "not initial" (safe side).
fn pid_namespace() -> PidNamespace {
    match std::fs::read_link("/proc/self/ns/pid") {
        Ok(target) => parse_pid_namespace(&target.to_string_lossy()),
        Err(_) => PidNamespace::Unknown,
    }
}

/// The per-semaphore facts, read only for sets whose key has the dm magic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detail {
    /// GETVAL; only read when a report shows it.
    pub value: Option<i32>,
    pub zcnt: i32,
    pub ncnt: i32,
    pub owner: Owner,
}

/// A semaphore set whose key carries the dm magic: a cookie or a look-alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemSet {
    pub semid: i32,
    pub stat: SetStat,
    /// `Err` holds why the details could not be read (e.g. not root).
    pub detail: Result<Detail, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub limits: Limits,
    pub kernel_max_semmni: u32,
    pub sets_in_use: u64,
    pub sems_in_use: u64,
    /// Sets with the dm magic in their key, in kernel index order.
    pub sets: Vec<SemSet>,
    /// Whether we may read every set's details (root, or CAP_IPC_OWNER).
    pub privileged: bool,
    /// Where GETPID's answers come from: a 0 is conclusive only in the
    /// initial pid namespace.
    pub pid_namespace: PidNamespace,
}

/// What to read besides what classification needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    pub values: bool,
}

/// Pid liveness cache: one cookie-leaking process often leaves many sets,
/// so each pid costs one `kill(pid, 0)` (and one read of its comm when
/// alive) per run, not one per set.
#[derive(Default)]
pub struct Owners(HashMap<i32, Owner>);

impl Owners {
    fn get(&mut self, pid: i32) -> Owner {
        if pid <= 0 {
            return Owner::Unknown;
        }
        self.0
            .entry(pid)
            .or_insert_with(|| {
                if crate::process::alive(pid) {
                    let comm = crate::process::comm(pid).unwrap_or_else(|| "?".into());
                    Owner::Alive { pid, comm }
                } else {
                    Owner::Gone { pid }
                }
            })
            .clone()
    }
}

fn read_detail(
    semid: i32,
    opts: ReadOptions,
    owners: &mut Owners,
    known: Option<&Owner>,
) -> io::Result<Detail> {
    let value = if opts.values {
        Some(sysv::get_val(semid)?)
    } else {
        None
    };
    let zcnt = sysv::get_zcnt(semid)?;
    let ncnt = sysv::get_ncnt(semid)?;
    let pid = sysv::get_pid(semid)?;
    let owner = match known {
        // What this run already learned about the same pid (the snapshot's
        // liveness cache, shared with the re-check).
        Some(o @ (Owner::Gone { pid: p } | Owner::Alive { pid: p, .. })) if *p == pid => o.clone(),
        _ => owners.get(pid),
    };
    Ok(Detail {
        value,
        zcnt,
        ncnt,
        owner,
    })
}

/// SEM_STAT over `indices`, reading the details of every dm-magic set.
fn scan(
    indices: std::ops::Range<i32>,
    opts: ReadOptions,
    privileged: bool,
) -> Result<Vec<SemSet>, Error> {
    let mut sets = Vec::new();
    let mut owners = Owners::default();
    for index in indices {
        let (semid, stat) = match sysv::sem_stat(index, !privileged) {
            Ok(found) => found,
            Err(e) if vanished(&e) => continue, // an empty slot
            Err(e) => return Err(Error::failure(format!("semctl({index}, SEM_STAT): {e}"))),
        };
        if !has_cookie_magic(stat.key) {
            continue;
        }
        let detail = match read_detail(semid, opts, &mut owners, None) {
            Ok(d) => Ok(d),
            Err(e) if vanished(&e) => continue, // removed since SEM_STAT
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(UNREADABLE.into()),
            Err(e) => return Err(Error::failure(format!("semctl({semid}, GET*): {e}"))),
        };
        sets.push(SemSet {
            semid,
            stat,
            detail,
        });
    }
    Ok(sets)
}

/// Why a set's details could not be read: its waiters and last-op pid need
/// read permission on the set, which root has for root's cookies and
/// CAP_IPC_OWNER for every set.
const UNREADABLE: &str = "needs root or CAP_IPC_OWNER";

/// CAP_IPC_OWNER's bit in the capability sets (linux/capability.h).
const CAP_IPC_OWNER: u32 = 15;

/// Whether we may read every set's details: root, or CAP_IPC_OWNER in the
/// effective set (a monitoring user given only that, as with systemd's
/// `AmbientCapabilities=CAP_IPC_OWNER`). nix has no capability calls, and
/// one line of /proc/self/status is not worth a crate.
fn may_read_every_set() -> bool {
    nix::unistd::geteuid().is_root()
        || std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| effective_caps(&s))
            .is_some_and(|caps| caps & 1 << CAP_IPC_OWNER != 0)
}

/// The `CapEff:` mask of a /proc/PID/status text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Reads limits, usage and every dm-magic set. Large index ranges are split
/// over the cores: every read here is read-only, and threads share the
/// caller's IPC namespace.
pub fn read(opts: ReadOptions) -> Result<Snapshot, Error> {
    use crate::budget::step;
    step(format!("reading {}", limits::SEM_PATH));
    let limits = limits::read(Path::new(limits::SEM_PATH))?;
    step("reading /proc/cmdline");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    step("reading /proc/self/ns/pid");
    let pid_namespace = pid_namespace();
    let privileged = may_read_every_set();
    step("reading the semaphore sets (semctl SEM_INFO, SEM_STAT)");
    let info = sysv::sem_info().map_err(|e| Error::failure(format!("semctl(SEM_INFO): {e}")))?;

    // SEM_INFO's highest index is 0 both when index 0 is used and when
    // nothing is: with no set in use there is nothing to scan.
    let end = if info.sets == 0 {
        0
    } else {
        info.max_index + 1
    };
    let parts = parallel::map_ranges(end as usize, parallel::INDICES_PER_THREAD, |r| {
        scan(r.start as i32..r.end as i32, opts, privileged)
    });
    let mut sets = Vec::new();
    for part in parts {
        let mut part = part?;
        if sets.is_empty() {
            sets = part;
        } else {
            sets.append(&mut part);
        }
    }
    step("");
    Ok(Snapshot {
        limits,
        kernel_max_semmni: limits::kernel_max_semmni(&cmdline),
        sets_in_use: info.sets,
        sems_in_use: info.sems,
        sets,
        privileged,
        pid_namespace,
    })
}

/// Re-reads one set by semid, right before it is removed. `Ok(None)` means
/// it is gone (removed, or its slot reused under a new semid). `known` is
/// what the snapshot found out about the owner: when the last-op pid is
/// still the same, its liveness is not asked again (pid liveness cache);
/// other pids go through `owners`.
pub(crate) fn reread(
    semid: i32,
    owners: &mut Owners,
    known: Option<&Owner>,
) -> io::Result<Option<SemSet>> {
    let mut read = || -> io::Result<SemSet> {
        let stat = sysv::ipc_stat(semid)?;
        let detail = read_detail(semid, ReadOptions::default(), owners, known)?;
        Ok(SemSet {
            semid,
            stat,
            detail: Ok(detail),
        })
    };
    match read() {
        Ok(set) => Ok(Some(set)),
        Err(e) if vanished(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets and semaphores in use now (one SEM_INFO), to verify the result.
pub(crate) fn usage() -> Result<(u64, u64), Error> {
    let info = sysv::sem_info().map_err(|e| Error::failure(format!("semctl(SEM_INFO): {e}")))?;
    Ok((info.sets, info.sems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_capabilities() {
        let cases = [
            (
                "Name:\tx\nCapInh:\t0000000000008000\nCapEff:\t0000000000000000\n",
                Some(0),
            ),
            (
                "CapPrm:\t0\nCapEff:\t0000000000008000\nCapBnd:\t1\n",
                Some(1 << 15),
            ),
            ("CapEff:\t000001ffffffffff", Some(0x1ff_ffff_ffff)),
            ("CapEff:\tzz\n", None),
            ("Name:\tx\n", None),
            ("", None),
        ];
        for (status, want) in cases {
            assert_eq!(effective_caps(status), want, "{status:?}");
        }
    }

    #[test]
    fn recognises_the_initial_pid_namespace_by_its_inode() {
        let cases = [
            ("pid:[4026531836]", PidNamespace::Initial),
            ("pid:[4026532410]", PidNamespace::Child),
            ("pid:[4026531836", PidNamespace::Unknown),
            ("ipc:[4026531836]", PidNamespace::Unknown),
            ("pid:[]", PidNamespace::Unknown),
            ("", PidNamespace::Unknown),
        ];
        for (link, want) in cases {
            assert_eq!(parse_pid_namespace(link), want, "{link:?}");
        }
    }
}

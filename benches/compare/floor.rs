//! The six-call floor: the least any tool can spend clearing cookies with
//! the checks semprep's safety rules call for (docs/design.md §3, §11), on
//! semprep's own threads, and nothing else.
//!
//! A SEM_STAT of every slot (the scan), then per cookie, right before its
//! IPC_RMID: IPC_STAT (same set, times unchanged), GETZCNT and GETNCNT (no
//! waiter) and GETPID (the last-op pid). No lock, no classification beyond
//! those comparisons, no liveness check (semprep's costs one `kill` per
//! distinct pid), no plan, no report, no raise. `semprep clean` against
//! this row is what semprep's own code costs; this row against dmsetup's,
//! which makes two calls per cookie, is what the checks cost on the machine
//! at hand.

use semprep::parallel::{self, INDICES_PER_THREAD, REMOVALS_PER_CHUNK, REMOVALS_PER_THREAD};
use semprep::snapshot::has_cookie_magic;
use semprep::sysv::{self, SetStat};

/// The argument that makes the benchmark's own binary run the floor as the
/// timed tool: a process of its own, spawned and waited for like the
/// others.
pub const ARG: &str = "--six-call-floor";

/// Runs the floor in the current IPC namespace; exits non-zero on an
/// unexpected error, like the tools beside it.
pub fn main() -> ! {
    let fail = |what: &str, e: std::io::Error| -> ! {
        eprintln!("six-call floor: {what}: {e}");
        std::process::exit(1)
    };
    let info = sysv::sem_info().unwrap_or_else(|e| fail("SEM_INFO", e));
    let n = if info.sets == 0 {
        0
    } else {
        info.max_index as usize + 1
    };
    // The scan, split as semprep splits it: one contiguous part per thread.
    let part = n.div_ceil(parallel::threads_for(n, INDICES_PER_THREAD));
    let cookies: Vec<(i32, SetStat)> = parallel::map_chunks(
        n,
        INDICES_PER_THREAD,
        part,
        || (),
        |_, r| {
            r.filter_map(|index| match sysv::sem_stat(index as i32, false) {
                Ok((semid, stat)) if has_cookie_magic(stat.key) => Some((semid, stat)),
                Ok(_) => None,
                Err(e) if sysv::vanished(&e) => None,
                Err(e) => fail("SEM_STAT", e),
            })
            .collect::<Vec<_>>()
        },
    )
    .into_iter()
    .flatten()
    .collect();
    // The removals, in semprep's chunks: each set re-read right before its
    // own IPC_RMID.
    parallel::map_chunks(
        cookies.len(),
        REMOVALS_PER_THREAD,
        REMOVALS_PER_CHUNK,
        || (),
        |_, r| {
            for (semid, planned) in &cookies[r] {
                let semid = *semid;
                let kept = match sysv::ipc_stat(semid) {
                    Ok(now) => {
                        (now.key, now.otime, now.ctime)
                            != (planned.key, planned.otime, planned.ctime)
                            || sysv::get_zcnt(semid).is_ok_and(|z| z != 0)
                            || sysv::get_ncnt(semid).is_ok_and(|z| z != 0)
                            || sysv::get_pid(semid).is_err()
                    }
                    Err(_) => true,
                };
                if !kept
                    && let Err(e) = sysv::remove(semid)
                    && !sysv::vanished(&e)
                {
                    fail("IPC_RMID", e)
                }
            }
        },
    );
    // semprep's one SEM_INFO after the removals.
    sysv::sem_info().unwrap_or_else(|e| fail("SEM_INFO", e));
    std::process::exit(0)
}

//! Thin, safe wrappers around the SysV semaphore syscalls.
//!
//! This is the only module with `unsafe` code. Every wrapper turns the C
//! convention (-1 and `errno`) into `io::Result`, and every struct handed to
//! the kernel is zero-initialised and owned by the caller for the duration of
//! the call.

use std::io;

/// A `semid_ds` reduced to the fields semprep reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetStat {
    pub key: i32,
    pub nsems: u64,
    pub mode: u32,
    pub uid: u32,
    pub cuid: u32,
    pub otime: i64,
    pub ctime: i64,
}

/// What `SEM_INFO` returns that semprep uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemInfo {
    /// Highest index in use in the kernel's array (0 when empty).
    pub max_index: i32,
    /// Sets in use (`seminfo.semusz`).
    pub sets: u64,
    /// Semaphores in use (`seminfo.semaem`).
    pub sems: u64,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(target_env = "musl")]
fn perm_key(p: &libc::ipc_perm) -> i32 {
    p.__ipc_perm_key
}
#[cfg(not(target_env = "musl"))]
fn perm_key(p: &libc::ipc_perm) -> i32 {
    p.__key
}

fn to_stat(ds: &libc::semid_ds) -> SetStat {
    SetStat {
        key: perm_key(&ds.sem_perm),
        #[allow(clippy::unnecessary_cast)] // c_ulong on glibc, c_ushort elsewhere
        nsems: ds.sem_nsems as u64,
        mode: u32::from(ds.sem_perm.mode),
        uid: ds.sem_perm.uid,
        cuid: ds.sem_perm.cuid,
        otime: ds.sem_otime,
        ctime: ds.sem_ctime,
    }
}

/// `semctl(0, 0, SEM_INFO)`: usage counters and the highest used index.
pub fn sem_info() -> io::Result<SemInfo> {
    // SAFETY: seminfo is plain old data; zeroed is a valid value, and the
    // kernel writes at most size_of::<seminfo>() bytes into it.
    let mut info: libc::seminfo = unsafe { std::mem::zeroed() };
    // SAFETY: SEM_INFO takes a `struct seminfo *` as its fourth argument.
    let max_index = check(unsafe { libc::semctl(0, 0, libc::SEM_INFO, &mut info) })?;
    Ok(SemInfo {
        max_index,
        sets: info.semusz.max(0) as u64,
        sems: info.semaem.max(0) as u64,
    })
}

/// Whether a semctl failed because the set is not there: an empty slot
/// (EINVAL), or a set removed meanwhile (EIDRM, or EINVAL for a semid whose
/// slot is empty or reused).
pub fn vanished(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM))
}

/// `semctl(index, 0, SEM_STAT[_ANY])`: the set at a kernel array index.
/// Returns its semid; `EINVAL` means the slot is empty.
pub fn sem_stat(index: i32, any: bool) -> io::Result<(i32, SetStat)> {
    let cmd = if any {
        libc::SEM_STAT_ANY
    } else {
        libc::SEM_STAT
    };
    // SAFETY: semid_ds is plain old data; zeroed is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: SEM_STAT(_ANY) takes a `struct semid_ds *` and writes into it.
    let semid = check(unsafe { libc::semctl(index, 0, cmd, &mut ds) })?;
    Ok((semid, to_stat(&ds)))
}

/// `semctl(semid, 0, IPC_STAT)`: the set with this exact semid.
pub fn ipc_stat(semid: i32) -> io::Result<SetStat> {
    // SAFETY: as in sem_stat.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT takes a `struct semid_ds *` and writes into it.
    check(unsafe { libc::semctl(semid, 0, libc::IPC_STAT, &mut ds) })?;
    Ok(to_stat(&ds))
}

fn get(semid: i32, cmd: libc::c_int) -> io::Result<i32> {
    // SAFETY: GETVAL, GETPID, GETNCNT and GETZCNT take no fourth argument.
    check(unsafe { libc::semctl(semid, 0, cmd) })
}

/// Value of semaphore 0.
pub fn get_val(semid: i32) -> io::Result<i32> {
    get(semid, libc::GETVAL)
}
/// Pid of the last semop or SETVAL on semaphore 0 (0 if none or invisible).
pub fn get_pid(semid: i32) -> io::Result<i32> {
    get(semid, libc::GETPID)
}
/// Tasks waiting for semaphore 0 to increase.
pub fn get_ncnt(semid: i32) -> io::Result<i32> {
    get(semid, libc::GETNCNT)
}
/// Tasks waiting for semaphore 0 to become zero.
pub fn get_zcnt(semid: i32) -> io::Result<i32> {
    get(semid, libc::GETZCNT)
}

/// `semctl(semid, 0, IPC_RMID)`. A stale semid fails with EINVAL or EIDRM
/// instead of removing whatever set now lives in that slot.
pub fn remove(semid: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no fourth argument.
    check(unsafe { libc::semctl(semid, 0, libc::IPC_RMID) }).map(|_| ())
}

/// `semget(key, nsems, flags)`. Used by tests, benchmarks and the probe.
pub fn semget(key: i32, nsems: i32, flags: i32) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::semget(key, nsems, flags) })
}

/// `semctl(semid, 0, SETVAL, value)`.
pub fn set_val(semid: i32, value: i32) -> io::Result<()> {
    // SAFETY: SETVAL takes `union semun`, whose `int val` member is passed
    // as a plain int in the variadic slot on every Linux ABI.
    check(unsafe { libc::semctl(semid, 0, libc::SETVAL, value as libc::c_int) }).map(|_| ())
}

/// One `semop` on semaphore 0; blocks unless `flags` has IPC_NOWAIT.
/// `op == 0` waits for zero, as libdm's `dm_udev_wait` does.
pub fn semop(semid: i32, op: i16, flags: i16) -> io::Result<()> {
    let mut buf = libc::sembuf {
        sem_num: 0,
        sem_op: op,
        sem_flg: flags,
    };
    // SAFETY: one valid sembuf, nsops = 1.
    check(unsafe { libc::semop(semid, &mut buf, 1) }).map(|_| ())
}

/// Bytes written to the socket `fd` that its reader has not yet consumed
/// (`SIOCOUTQ`, the same request number as `TIOCOUTQ`). On a unix stream
/// socket it falls to 0 once the peer has read everything.
pub fn unread_output(fd: std::os::fd::BorrowedFd) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int through the pointer, which is valid
    // for the duration of the call; `fd` is a live descriptor we borrow.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn unread_output_falls_to_zero_once_the_peer_reads() {
        let (mut writer, mut reader) = UnixStream::pair().unwrap();
        assert_eq!(unread_output(writer.as_fd()).unwrap(), 0);
        writer
            .write_all(b"semprep: error: headroom still short\n")
            .unwrap();
        assert!(unread_output(writer.as_fd()).unwrap() > 0);
        let mut buf = [0u8; 64];
        let n = reader.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"semprep: error: headroom still short\n");
        assert_eq!(unread_output(writer.as_fd()).unwrap(), 0);
    }
}

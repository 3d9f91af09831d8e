//! The lock that serialises every state-changing semprep run, and that
//! `semprep exec` hands to the daemon for its whole life (docs/design.md).
//!
//! It is a POSIX record lock (`fcntl(F_SETLK)`, a write lock on the whole
//! file), not a pidfile and not a `flock`:
//! - it belongs to one process: kept across `execve` (the descriptor's
//!   FD_CLOEXEC cleared), never inherited by `fork`. A `flock` is shared by
//!   every process that inherits the descriptor, and Go daemons pass it on
//!   to children that outlive them (dockerd → containerd → shims), so the
//!   lock outlived the daemon it was meant to track;
//! - the kernel drops it when the holder dies, so no stale lock is left;
//! - `F_GETLK` names the holder's pid, so nothing is written into the file.
//!
//! A record lock is also dropped when its process closes *any* descriptor of
//! the file, so the file is opened exactly once while the lock is held.
//!
//! Where the file may live, and which files semprep may use as its lock, is
//! `dir` and `file`: an unprivileged user must never be able to hold, block
//! or redirect the lock, and semprep never writes into a file.

pub(crate) mod dir;
mod file;

use crate::error::Error;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Owns the locked file; dropping it (closing the file) releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

/// A write lock on the whole file (l_start 0, l_len 0 from SEEK_SET).
fn whole_file(l_type: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: l_type as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// One non-blocking attempt: Ok(false) when another process holds a lock.
fn try_lock(file: &File) -> nix::Result<bool> {
    match fcntl(file, FcntlArg::F_SETLK(&whole_file(libc::F_WRLCK))) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Who holds the lock, as the kernel reports it (F_GETLK): no file content
/// to trust, and no second open that would drop a lock of ours.
fn holder(file: &File) -> String {
    let mut probe = whole_file(libc::F_WRLCK);
    match fcntl(file, FcntlArg::F_GETLK(&mut probe)) {
        Ok(_) if probe.l_type == libc::F_UNLCK as libc::c_short => {
            "held by a process that released it just now".into()
        }
        Ok(_) if probe.l_pid > 0 => format!("held by {}", crate::process::describe(probe.l_pid)),
        // The kernel reports 0 for a holder outside our pid namespace.
        Ok(_) if probe.l_pid == 0 => "held by a process outside semprep's pid namespace".into(),
        Ok(_) => "held by an open file description lock (no pid)".into(),
        Err(e) => format!("held by another process (F_GETLK: {e})"),
    }
}

/// `300ms`, `2.0s`: a wait cut short by the time budget is not a round number.
fn shown(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{}ms", wait.as_millis())
    } else {
        format!("{:.1}s", wait.as_secs_f64())
    }
}

/// Takes the lock, waiting at most `wait`. F_SETLKW has no timeout, so the
/// wait polls F_SETLK with a growing pause. An unsafe or unusable path is
/// bad input (exit 2); a lock someone else held for the whole wait is a
/// refusal (exit 4).
pub fn acquire(path: &Path, wait: Duration) -> Result<LockGuard, Error> {
    let deadline = Instant::now() + wait;
    let dir = dir::secure(path).map_err(Error::usage)?;
    let path = dir.join(file::name(path).map_err(Error::usage)?);
    // Each round opens the file at the path afresh: another semprep may
    // have replaced a file that others could open (see `file`) meanwhile.
    for _ in 0..100 {
        let file = file::open(&path).map_err(Error::usage)?;
        let mut pause = Duration::from_millis(5);
        loop {
            let taken = try_lock(&file)
                .map_err(|e| Error::usage(format!("fcntl(F_SETLK) on {}: {e}", path.display())))?;
            if taken {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::refused(format!(
                    "lock file {} is {} (waited {})",
                    path.display(),
                    holder(&file),
                    shown(wait)
                )));
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        // Locked: but only the file still at the path is the lock.
        if file::is_at(&file, &path) {
            return Ok(LockGuard { file, path });
        }
        // Dropping `file` releases the lock on the replaced file.
    }
    Err(Error::refused(format!(
        "lock file {} was replaced 100 times while semprep tried to lock it",
        path.display()
    )))
}

impl LockGuard {
    /// Lets the descriptor survive `execve`, so the exec'd program's process
    /// keeps the record lock. Its children inherit the descriptor, not the
    /// lock.
    pub fn inherit_across_exec(&self) -> Result<(), Error> {
        use nix::fcntl::FdFlag;
        fcntl(&self.file, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| {
            Error::failure(format!("fcntl(F_SETFD) on {}: {e}", self.path.display()))
        })?;
        Ok(())
    }

    /// Whether `other` names the lock file (stat only: opening and closing
    /// it would drop the lock).
    pub fn is_named_by(&self, other: &Path) -> bool {
        match (self.file.metadata(), std::fs::metadata(other)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }

    /// The lock file, its directory resolved (no symbolic links).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

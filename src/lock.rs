//! The lock that serialises every state-changing semprep run, and that
//! `semprep exec` hands to the daemon for its whole life.
//!
//! It is a `flock` on an open file, not a pidfile: the kernel drops it when
//! the last descriptor closes, so a holder killed at any point never leaves a
//! stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Owns the locked file; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

#[derive(Debug)]
pub enum LockError {
    /// The path is unsafe or unusable: bad input (exit 2).
    BadPath(String),
    /// Someone else held the lock for the whole wait (exit 4).
    Busy(String),
}

/// Opens the lock file without following symlinks and refuses anything but
/// a regular root-owned file with one link: semprep writes its pid into it,
/// and must never truncate a file that an attacker pointed it at.
fn open(path: &Path) -> Result<File, LockError> {
    let bad = |why: String| LockError::BadPath(format!("lock file {}: {why}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(format!("cannot create its directory: {e}")))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => bad("is a symbolic link; expected a regular file".into()),
            Some(libc::EISDIR) => bad("is a directory; expected a regular file".into()),
            _ => bad(format!("cannot open it: {e}")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot stat it: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.uid() != 0 {
        return Err(bad(format!(
            "is owned by uid {}; expected root",
            meta.uid()
        )));
    }
    if meta.nlink() != 1 {
        return Err(bad(format!("has {} hard links; expected 1", meta.nlink())));
    }
    Ok(file)
}

/// Who holds the lock, from the pid the holder wrote into the file. Read
/// through the descriptor already checked by `open`, not the path again.
fn holder(file: &File) -> String {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    let pid = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|&p| crate::process::alive(p));
    match pid {
        Some(p) => format!("held by {}", crate::process::describe(p)),
        None => "held by another process".into(),
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

/// Takes the lock, waiting at most `wait`.
pub fn acquire(path: &Path, wait: Duration) -> Result<LockGuard, LockError> {
    let file = open(path)?;
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(5);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Busy(format!(
                    "lock file {} is {} (waited {})",
                    path.display(),
                    holder(&file),
                    shown(wait)
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(LockError::BadPath(format!("flock {}: {e}", path.display())));
            }
        }
    }
    // Informational only (the flock is the lock): lets a waiter name us.
    // Fixed width, so no ftruncate (a journal commit on disk filesystems)
    // is needed when the file already has this length.
    let content = format!("{:<10}\n", std::process::id());
    if file.metadata().map(|m| m.len()).ok() != Some(content.len() as u64) {
        let _ = file.set_len(0);
    }
    let _ = (&file).write_all(content.as_bytes());
    Ok(LockGuard {
        file,
        path: path.to_owned(),
    })
}

impl LockGuard {
    /// Lets the lock survive `execve`, so the exec'd daemon holds it.
    pub fn inherit_across_exec(&self) -> std::io::Result<()> {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        fcntl(&self.file, FcntlArg::F_SETFD(FdFlag::empty()))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}

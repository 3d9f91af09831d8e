//! Which file semprep locks. It never writes into, truncates or replaces a
//! file that holds anything (a configuration file given by mistake stays
//! intact): the lock file is empty when semprep created it, or holds the pid
//! an older semprep wrote. Its directory is root's alone (`dir`), so only
//! root can have put a file there; one that other users could open (mode
//! bits for group or others, or another owner) is replaced by a fresh 0600
//! one, because a user who opened it could hold or block the lock.
//!
//! Replacing must not break mutual exclusion when several runs start at
//! once: two runs that both saw the old file must not each install and lock
//! a file of their own. So the fresh file is locked first, then swapped in
//! with `renameat2(RENAME_EXCHANGE)`, and the swap is undone when what came
//! out is not the file this run saw (another run replaced it first). A file
//! semprep created (0600, root) is never replaced; and a run locks only the
//! file that is still at the path after it took the lock (`is_at`).

use log::{debug, warn};
use nix::errno::Errno;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest content an older semprep wrote: its pid, padded.
const MAX_PID_TEXT: u64 = 32;

pub(super) fn name(lock: &Path) -> Result<&OsStr, String> {
    lock.file_name().ok_or_else(|| {
        format!(
            "lock file {}: names a directory, not a file; pass a file path such as \
             /run/semprep.lock",
            lock.display()
        )
    })
}

/// Creates `path` (0600), never through a symbolic link, never an existing
/// file: `Ok(None)` when it exists.
fn create(path: &Path) -> Result<Option<File>, std::io::Error> {
    let made = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match made {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
        r => r.map(Some),
    }
}

fn same(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Whether the locked `file` is still the one at `path`: a run that locked a
/// file another run has just replaced must start again.
pub(super) fn is_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => same(&a, &b),
        _ => false,
    }
}

/// Refuses what is not a plain file of its own: a link (symbolic or hard)
/// could point semprep at another file, and a FIFO or device is no file.
fn refuse_kind(m: &Metadata) -> Result<(), String> {
    let t = m.file_type();
    if t.is_symlink() {
        return Err("is a symbolic link; expected a regular file".into());
    }
    if t.is_dir() {
        return Err("is a directory; expected a regular file".into());
    }
    if !t.is_file() {
        return Err("is not a regular file (a FIFO, socket or device)".into());
    }
    if m.nlink() != 1 {
        return Err(format!(
            "has {} hard links; expected 1: another name could point at a file that \
             is not semprep's",
            m.nlink()
        ));
    }
    Ok(())
}

/// Refuses a file holding anything but an older semprep's pid: it is some
/// other program's file, and locking or replacing it is not semprep's call.
fn refuse_content(file: &File, m: &Metadata) -> Result<(), String> {
    let mut buf = [0u8; MAX_PID_TEXT as usize];
    let n = if m.len() <= MAX_PID_TEXT {
        file.read_at(&mut buf, 0)
            .map_err(|e| format!("cannot read it: {e}"))?
    } else {
        0
    };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("?").trim();
    let pid_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if m.len() == 0 || (m.len() == n as u64 && pid_only) {
        return Ok(());
    }
    Err(format!(
        "holds {} bytes that semprep did not write (it is owned by uid {}, mode {:04o}): it \
         is another program's file, and semprep never writes into, truncates or replaces \
         a file it did not create; pass a --lock-file of semprep's own, such as the default \
         /run/semprep.lock",
        m.len(),
        m.uid(),
        m.mode() & 0o7777
    ))
}

/// Who else could open it: mode bits for group or others, or an owner
/// other than root.
fn open_to_others(m: &Metadata) -> bool {
    m.uid() != 0 || m.mode() & 0o077 != 0
}

/// Opens the lock file at `path` (its directory already checked): creates
/// it, uses it, or replaces it (then it comes back already locked).
pub(super) fn open(path: &Path) -> Result<File, String> {
    let bad = |why: String| format!("lock file {}: {why}", path.display());
    // Each retry follows a change made by another run between two steps.
    for _ in 0..100 {
        let seen = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match create(path).map_err(|e| bad(format!("cannot create it: {e}")))? {
                    Some(f) => return Ok(f),
                    None => continue,
                }
            }
            Err(e) => return Err(bad(format!("cannot stat it: {e}"))),
            Ok(m) => m,
        };
        refuse_kind(&seen).map_err(bad)?;
        super::dir::refuse_interface(path).map_err(bad)?;
        // Read and write (F_WRLCK needs write access), no O_CREAT, no
        // O_TRUNC: opening changes nothing.
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let file = match opened {
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(bad(format!("cannot open it: {e}"))),
            Ok(f) => f,
        };
        let m = file
            .metadata()
            .map_err(|e| bad(format!("cannot stat it: {e}")))?;
        if !same(&m, &seen) {
            continue;
        }
        refuse_kind(&m).map_err(bad)?;
        refuse_content(&file, &m).map_err(bad)?;
        if !open_to_others(&m) {
            return Ok(file);
        }
        if let Some(fresh) = replace(path, &m).map_err(bad)? {
            return Ok(fresh);
        }
    }
    Err(bad("kept changing while semprep opened it".into()))
}

/// Swaps a fresh, already locked 0600 file in for `old`, the file others
/// could open. `Ok(None)`: another run changed the path first; start again.
fn replace(path: &Path, old: &Metadata) -> Result<Option<File>, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let spare = dir.join(format!(".{name}.{}-{nanos}", std::process::id()));
    let Some(fresh) = create(&spare).map_err(|e| {
        format!(
            "others can open it (owner uid {}, mode {:04o}), and semprep cannot create \
             {} to replace it: {e}",
            old.uid(),
            old.mode() & 0o7777,
            spare.display()
        )
    })?
    else {
        return Ok(None);
    };
    let cleanup = |why: String| {
        let _ = std::fs::remove_file(&spare);
        why
    };
    // Nobody else knows the spare file yet: this lock cannot be busy.
    match super::try_lock(&fresh) {
        Ok(true) => {}
        Ok(false) => return Err(cleanup(format!("{} is locked", spare.display()))),
        Err(e) => {
            return Err(cleanup(format!(
                "fcntl(F_SETLK) on {}: {e}",
                spare.display()
            )));
        }
    }
    match exchange(&spare, path) {
        Ok(()) => {}
        // The path vanished (removed by hand): start again.
        Err(Errno::ENOENT) => {
            cleanup(String::new());
            return Ok(None);
        }
        Err(e) => {
            return Err(cleanup(format!(
                "others can open it (owner uid {}, mode {:04o}), so semprep replaces it with \
                 a fresh 0600 file, but cannot swap the two atomically here \
                 (renameat2 RENAME_EXCHANGE: {e}); remove it (rm {}) and start again",
                old.uid(),
                old.mode() & 0o7777,
                path.display()
            )));
        }
    }
    let out = std::fs::symlink_metadata(&spare);
    if out.as_ref().is_ok_and(|m| same(m, old)) {
        let _ = std::fs::remove_file(&spare);
        warn!(
            "replaced lock file {} (owner uid {}, mode {:04o}: other users could open it, \
             and hold or block the lock) with a fresh one only root can open",
            path.display(),
            old.uid(),
            old.mode() & 0o7777
        );
        return Ok(Some(fresh));
    }
    // Another run replaced it first, and may hold what came out: put it back.
    match exchange(&spare, path) {
        Ok(()) => {
            debug!(
                "another run replaced {} first: swapped back",
                path.display()
            );
            let _ = std::fs::remove_file(&spare);
            Ok(None)
        }
        // The other run's file stays at the spare name, not deleted.
        Err(e) => Err(format!(
            "cannot swap back {} after another semprep replaced it first (renameat2: {e});              its file is now {}",
            path.display(),
            spare.display()
        )),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> nix::Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
}

/// nix wraps renameat2 for glibc only: elsewhere, a file that others could
/// open is refused (exit 2) instead of replaced.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> nix::Result<()> {
    Err(Errno::ENOSYS)
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;

//! The directory rule: the lock file's directory and every directory above
//! it must be root's alone (owned by root, not writable by group or others,
//! sticky or not), as OpenSSH's StrictModes demands of a key's path. Anyone
//! else who can write one of them can create, replace or rename the lock
//! file: hold it (every run then fails open and cleans nothing) or plant a
//! file semprep must refuse (every daemon start then fails with exit 2).

use nix::sys::statfs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Kernel interface file systems: their "files" are switches (a write to
/// /proc/sys/kernel/sem sets SEMMSL), never a place for a lock.
pub(crate) const INTERFACES: [(statfs::FsType, &str); 11] = [
    (statfs::PROC_SUPER_MAGIC, "proc"),
    (statfs::SYSFS_MAGIC, "sysfs"),
    (statfs::CGROUP_SUPER_MAGIC, "cgroup"),
    (statfs::CGROUP2_SUPER_MAGIC, "cgroup2"),
    (statfs::DEBUGFS_MAGIC, "debugfs"),
    (statfs::TRACEFS_MAGIC, "tracefs"),
    (statfs::SECURITYFS_MAGIC, "securityfs"),
    (statfs::BPF_FS_MAGIC, "bpf"),
    (statfs::SELINUX_MAGIC, "selinuxfs"),
    (statfs::SMACK_MAGIC, "smackfs"),
    (statfs::DEVPTS_SUPER_MAGIC, "devpts"),
];

const FIX: &str = "use a directory only root can write, such as /run \
                   (the default lock file is /run/semprep.lock)";

/// Refuses a path on a kernel interface file system (statfs follows the
/// path, so a file bind-mounted from /proc is caught too).
pub(super) fn refuse_interface(path: &Path) -> Result<(), String> {
    let fs = statfs::statfs(path).map_err(|e| format!("statfs: {e}"))?;
    match INTERFACES.iter().find(|(t, _)| *t == fs.filesystem_type()) {
        Some((_, name)) => Err(format!(
            "is on {name}, a kernel interface file system (like /proc and /sys): its files \
             are kernel settings, never a lock; {FIX}"
        )),
        None => Ok(()),
    }
}

/// Owners semprep trusts: root. In a user namespace (an unprivileged
/// benchmark), directories of users outside it, shown as the overflow uid,
/// also count: root there cannot tell the host's root from them, and its
/// semaphores are the namespace's own.
pub(crate) fn trusted(uid: u32) -> bool {
    uid == 0 || (!initial_user_namespace() && Some(uid) == overflow_uid())
}

fn initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(true)
}

fn overflow_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Checks `dir` (canonical: no symbolic links, no `..`) and every directory
/// above it.
fn check_chain(dir: &Path) -> Result<(), String> {
    for d in dir.ancestors() {
        let m = std::fs::symlink_metadata(d)
            .map_err(|e| format!("cannot stat directory {}: {e}", d.display()))?;
        if !trusted(m.uid()) {
            return Err(format!(
                "directory {} is owned by uid {}, not root: that user could replace the \
                 lock file; {FIX}",
                d.display(),
                m.uid()
            ));
        }
        if m.mode() & 0o022 != 0 {
            return Err(format!(
                "directory {} is writable by group or others (mode {:04o}): another user \
                 could create or replace the lock file; {FIX}",
                d.display(),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// Checks the lock file's directory, creating it (mode 0755) if it is
/// missing and everything above it passes; returns it resolved, so that
/// every later step names a path that only root can change.
pub(super) fn secure(lock: &Path) -> Result<PathBuf, String> {
    let bad = |why: String| format!("lock file {}: {why}", lock.display());
    let dir = match lock.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // The nearest directory that exists is checked before anything is made.
    let mut existing = None;
    for a in dir.ancestors() {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        match std::fs::canonicalize(a) {
            Ok(c) => {
                existing = Some((a, c));
                break;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(bad(format!("cannot resolve {}: {e}", a.display()))),
        }
    }
    let (found, resolved) =
        existing.ok_or_else(|| bad("no part of its directory exists".into()))?;
    if !resolved.is_dir() {
        return Err(bad(format!("{} is not a directory", found.display())));
    }
    check_chain(&resolved).map_err(bad)?;
    if found == dir {
        refuse_interface(&resolved).map_err(bad)?;
        return Ok(resolved);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| {
            bad(format!(
                "cannot create its directory {}: {e}",
                dir.display()
            ))
        })?;
    let created = std::fs::canonicalize(dir)
        .map_err(|e| bad(format!("cannot resolve {}: {e}", dir.display())))?;
    // A default ACL or an odd umask could have made the new ones writable.
    check_chain(&created).map_err(bad)?;
    refuse_interface(&created).map_err(bad)?;
    Ok(created)
}

//! Every file semprep writes goes through `write_atomically`: semprep runs
//! as root, and each write is a chance for another user on the host to make
//! root write where they choose (a link planted under the name root is about
//! to open). docs/design.md §8 (kill safety) and §6 (path safety, the same
//! rule for the lock's directory).
//!
//! How a file is written:
//! - Its directory is opened one component at a time from `/`, each with
//!   `O_DIRECTORY|O_NOFOLLOW`, and each directory's owner and mode are
//!   checked on the opened descriptor (`DirPolicy`); every later step is
//!   relative to that descriptor, so a directory swapped for a link mid-run
//!   cannot redirect anything.
//! - The target, when it exists, must be a regular file with one link: a
//!   symbolic link, a hard link, a directory, a FIFO or a device is refused
//!   (exit 2), never replaced.
//! - The new file is created without a name (`O_TMPFILE`) with its final
//!   mode, written, fsynced, then linked under a random name of a pattern
//!   semprep recognises (`.semprep-tmp-PID-RANDOM`) and renamed over the
//!   target; the directory is then fsynced. Where the file system has no
//!   `O_TMPFILE`, the file is created under such a name with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`. A name that exists (whatever it is) is
//!   never opened: another random name is tried.
//! - A killed write leaves at most one such name; the next write into the
//!   same directory removes it (`clean_leftovers`: only that pattern, only
//!   regular files of semprep's user with one link, only when the process
//!   of that pid is gone, never following a link).
//! - A file semprep rewrites from what it held (`update_atomically`: the
//!   hook's `--metrics-file`, which keeps other daemons' series) is read
//!   through the opened directory without following a link or blocking,
//!   and its updaters take turns under a `flock` on that directory.

use crate::error::Error;
use log::{debug, info};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, fsync, linkat, unlinkat};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Who may own the directories on the way to a file semprep writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirPolicy {
    /// Root's own outputs (`--persist`): every directory from `/` down is
    /// owned by root and writable by nobody else, sticky or not. Missing
    /// directories are created (0755).
    RootOnly,
    /// An output for another service's directory (node_exporter's textfile
    /// directory): every directory from `/` down is owned by root or by one
    /// other user (the service's), and none is writable by group or others.
    /// That user can already write there, so semprep's file is theirs to
    /// delete; all they cannot do is make root write elsewhere. The
    /// directory must exist.
    ServiceDir,
}

/// The start of every temporary name: hidden, and matching neither
/// sysctl.d's `*.conf` nor the textfile collector's `*.prom`.
pub const TEMP_PREFIX: &str = ".semprep-tmp-";

/// One directory on the way, as opened.
struct Seen {
    path: PathBuf,
    uid: u32,
    mode: u32,
}

fn usage(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("{}: {why}", path.display()))
}

/// "PATH is a symbolic link: …"
fn usage_is(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("{} {why}", path.display()))
}

fn failure(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::failure(format!("{}: {why}", path.display()))
}

fn fix(policy: DirPolicy) -> &'static str {
    match policy {
        DirPolicy::RootOnly => {
            "write it in a directory only root can write (owned by root, not writable by \
             group or others, and so every directory above it)"
        }
        DirPolicy::ServiceDir => {
            "the directory and every directory above it must be owned by root or by the one \
             service user, and not writable by group or others (chmod go-w DIR)"
        }
    }
}

/// Checks the directories on the way to a file (pure, for the tests):
/// `chain` runs from `/` down to the file's directory.
fn judge(chain: &[Seen], policy: DirPolicy, trusted: impl Fn(u32) -> bool) -> Result<(), String> {
    let mut service: Option<&Seen> = None;
    for d in chain {
        if !trusted(d.uid) {
            match (policy, service) {
                (DirPolicy::RootOnly, _) => {
                    return Err(format!(
                        "directory {} is owned by uid {}, not root: that user could replace \
                         the file or point it elsewhere",
                        d.path.display(),
                        d.uid
                    ));
                }
                (DirPolicy::ServiceDir, Some(s)) if s.uid != d.uid => {
                    return Err(format!(
                        "directory {} is owned by uid {} and directory {} by uid {}: \
                         semprep accepts one owner besides root",
                        s.path.display(),
                        s.uid,
                        d.path.display(),
                        d.uid
                    ));
                }
                (DirPolicy::ServiceDir, _) => service = Some(d),
            }
        }
        if d.mode & 0o022 != 0 {
            return Err(format!(
                "directory {} is writable by group or others (mode {:04o}): another user \
                 could plant links there",
                d.path.display(),
                d.mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// The file's directory, split into the part that exists (resolved: no
/// symbolic links, no `..`) and the names still to be created.
fn resolve(dir: &Path) -> Result<(PathBuf, Vec<OsString>), String> {
    for a in dir.ancestors() {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        match std::fs::canonicalize(a) {
            Ok(found) => {
                let rest = dir.strip_prefix(a).unwrap_or(Path::new(""));
                let mut missing = Vec::new();
                for c in rest.components() {
                    match c {
                        Component::Normal(n) => missing.push(n.to_owned()),
                        Component::CurDir => {}
                        _ => {
                            return Err(format!(
                                "{} does not exist, so `..` after it cannot be resolved",
                                a.display()
                            ));
                        }
                    }
                }
                return Ok((found, missing));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot resolve {}: {e}", a.display())),
        }
    }
    Err("no part of its directory exists".into())
}

fn open_dir(at: impl AsFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn seen(path: PathBuf, st: &FileStat) -> Seen {
    Seen {
        path,
        uid: st.st_uid,
        mode: st.st_mode,
    }
}

/// Opens the file's directory component by component (`create`: making
/// the missing ones, 0755). `Ok(None)`: some are missing and `create` is
/// false (they would be created).
fn open_chain(
    target: &Path,
    dir: &Path,
    policy: DirPolicy,
    create: bool,
) -> Result<Option<OwnedFd>, Error> {
    let (found, missing) = resolve(dir).map_err(|e| usage(target, e))?;
    if !found.is_dir() {
        return Err(usage(
            target,
            format!("{} is not a directory", found.display()),
        ));
    }
    if !missing.is_empty() && policy == DirPolicy::ServiceDir {
        return Err(usage(
            target,
            format!(
                "directory {} does not exist: it belongs to the service that reads the file; \
                 create it with the owner that service expects",
                dir.display()
            ),
        ));
    }
    let open_err = |p: &Path, e: Errno| match e {
        Errno::ELOOP | Errno::ENOTDIR => usage(
            target,
            format!(
                "{} changed into something other than a directory while semprep opened it",
                p.display()
            ),
        ),
        e => failure(
            target,
            format!("cannot open directory {}: {e}", p.display()),
        ),
    };
    let root = Path::new("/");
    let mut fd = open_dir(AT_FDCWD, root.as_os_str()).map_err(|e| open_err(root, e))?;
    let stat = |fd: &OwnedFd, p: &Path| {
        fstat(fd).map_err(|e| failure(target, format!("cannot stat {}: {e}", p.display())))
    };
    let mut path = root.to_path_buf();
    let mut chain = vec![seen(path.clone(), &stat(&fd, &path)?)];
    let names = found.components().filter_map(|c| match c {
        Component::Normal(n) => Some((n.to_owned(), false)),
        _ => None,
    });
    for (name, make) in names.chain(missing.into_iter().map(|n| (n, true))) {
        path.push(&name);
        if make {
            // Checked before anything is made below it.
            judge(&chain, policy, crate::lock::dir::trusted)
                .map_err(|e| usage(target, format!("{e}; {}", fix(policy))))?;
            refuse_interface(target, &fd)?;
            if !create {
                return Ok(None);
            }
            match mkdirat(&fd, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(failure(
                        target,
                        format!("cannot create directory {}: {e}", path.display()),
                    ));
                }
            }
        }
        fd = open_dir(&fd, &name).map_err(|e| open_err(&path, e))?;
        chain.push(seen(path.clone(), &stat(&fd, &path)?));
    }
    judge(&chain, policy, crate::lock::dir::trusted)
        .map_err(|e| usage(target, format!("{e}; {}", fix(policy))))?;
    refuse_interface(target, &fd)?;
    Ok(Some(fd))
}

/// A file on /proc or /sys is a kernel switch, never an output.
fn refuse_interface(target: &Path, dir: &OwnedFd) -> Result<(), Error> {
    let fs = nix::sys::statfs::fstatfs(dir)
        .map_err(|e| failure(target, format!("statfs of its directory: {e}")))?;
    match crate::lock::dir::INTERFACES
        .iter()
        .find(|(t, _)| *t == fs.filesystem_type())
    {
        Some((_, name)) => Err(usage_is(
            target,
            format!(
                "is on {name}, a kernel interface file system (like /proc and /sys), whose \
                 files are kernel settings; write it on a real file system"
            ),
        )),
        None => Ok(()),
    }
}

/// The file's directory and its name in it.
fn split(target: &Path) -> Result<(&Path, &OsStr), Error> {
    let name = target
        .file_name()
        .filter(|_| !target.as_os_str().as_encoded_bytes().ends_with(b"/"))
        .ok_or_else(|| usage(target, "names a directory, not a file"))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Refuses a target that semprep must not replace: anything but a regular
/// file with one link. A missing target is fine.
fn refuse_target(target: &Path, dir: &OwnedFd, name: &OsStr) -> Result<(), Error> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        // Bad input, not a fault: refused before any change (exit 2).
        Err(Errno::ENAMETOOLONG) => Err(usage_is(
            target,
            format!(
                "has a file name of {} bytes, longer than its file system allows \
                 (usually 255); give a shorter name",
                name.len()
            ),
        )),
        Err(e) => Err(failure(target, format!("cannot stat it: {e}"))),
        Ok(st) => refusal(target, &st).map_or(Ok(()), Err),
    }
}

/// Why a file semprep found at the target's name must not be replaced (nor
/// read): anything but a regular file with one link.
fn refusal(target: &Path, st: &FileStat) -> Option<Error> {
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let shown = target.display();
    let why = if kind == SFlag::S_IFLNK {
        format!(
            "is a symbolic link: semprep replaces only a regular file, never what a link \
             points at; remove the link (rm {shown}) if the file belongs there"
        )
    } else if kind == SFlag::S_IFDIR {
        "is a directory; give the path of a file".into()
    } else if kind != SFlag::S_IFREG {
        "is not a regular file (a FIFO, socket or device); give the path of a regular file".into()
    } else if st.st_nlink != 1 {
        format!(
            "has {} hard links: another name shares the file, and semprep does not guess \
             which is meant; remove this name (rm {shown}) if the file belongs there",
            st.st_nlink
        )
    } else {
        return None;
    };
    Some(usage_is(target, why))
}

/// Checks that `target` could be written under `policy`, changing nothing:
/// for a run to refuse bad input (exit 2) before it changes anything else.
pub fn check(target: &Path, policy: DirPolicy) -> Result<(), Error> {
    let (dir, name) = split(target)?;
    match open_chain(target, dir, policy, false)? {
        Some(fd) => refuse_target(target, &fd, name),
        None => Ok(()),
    }
}

/// Writes `contents` to `target` with `mode` (exactly: the umask does not
/// narrow it), replacing it atomically: a kill at any point leaves the old
/// file or the new one, and at most a temporary name the next write
/// removes. Bad targets and directories are usage errors (exit 2), I/O
/// errors failures (exit 1).
pub fn write_atomically(
    target: &Path,
    contents: &[u8],
    mode: u32,
    policy: DirPolicy,
) -> Result<(), Error> {
    write_with(
        target,
        contents,
        mode,
        policy,
        How {
            tmpfile: true,
            name: &mut random_name,
            written: &mut || {},
        },
    )
}

/// The steps the tests steer: whether to try `O_TMPFILE`, where temporary
/// names come from, and a look at the directory once the contents are
/// written and synced, before the file has its final name.
pub(crate) struct How<'a> {
    pub tmpfile: bool,
    pub name: &'a mut dyn FnMut() -> String,
    pub written: &'a mut dyn FnMut(),
}

pub(crate) fn write_with(
    target: &Path,
    contents: &[u8],
    mode: u32,
    policy: DirPolicy,
    how: How,
) -> Result<(), Error> {
    let (dir, name) = open_target(target, policy)?;
    replace(target, &dir, name, contents, mode, true, how)
}

/// The target's directory, opened and checked under `policy` (created where
/// the policy allows), and the target's name in it, refused if it names
/// anything but a regular file with one link.
fn open_target(target: &Path, policy: DirPolicy) -> Result<(OwnedFd, &OsStr), Error> {
    let (dir, name) = split(target)?;
    let dir = open_chain(target, dir, policy, true)?
        .ok_or_else(|| failure(target, "its directory vanished while semprep created it"))?;
    refuse_target(target, &dir, name)?;
    Ok((dir, name))
}

/// Puts `contents` in place of `name` in the opened directory `dir`;
/// `durable`: fsync the file and the directory, so that a crash of the
/// machine leaves the new contents, not only a reader the old or the new.
fn replace(
    target: &Path,
    dir: &OwnedFd,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    durable: bool,
    how: How,
) -> Result<(), Error> {
    clean_leftovers(target, dir);
    let mode = Mode::from_bits_truncate(mode & 0o777);
    let tmp = create(target, dir, mode, contents, durable, how)?;
    // Checked again right before the rename: a rename replaces a link
    // itself, never what it points at, but what is refused stays refused.
    refuse_target(target, dir, name)?;
    // In root's directories nobody else can touch the temporary name. In a
    // service's, its owner could swap it for a file of theirs just before
    // the rename, which then puts their content at the target: what they
    // could write there anyway. Nothing outside the directory is touched.
    if let Err(e) = renameat(dir, tmp.name.as_str(), dir, name) {
        let why = format!("renaming {} over it: {e}", tmp.name);
        return Err(failure(target, why));
    }
    tmp.kept();
    if !durable {
        return Ok(());
    }
    match fsync(dir) {
        Ok(()) | Err(Errno::EINVAL) => Ok(()),
        Err(e) => Err(failure(target, format!("fsync of its directory: {e}"))),
    }
}

/// How long `update_atomically` waits for another updater of the same
/// directory: each holds the directory's lock for one small write.
const UPDATE_WAIT: Duration = Duration::from_secs(1);

/// The most of the old file `update_atomically` reads. semprep's own files
/// are a few KiB; a file that holds more was not written by semprep, and
/// reading it whole (a planted sparse file of terabytes) would never end.
pub const UPDATE_READ_MAX: u64 = 1 << 20;

/// Replaces `target` with `make(old)`, where `old` is what the file held
/// (empty when there was none), atomically like `write_atomically`, and
/// without losing a concurrent update: every updater holds an exclusive
/// `flock` on the opened directory from the read to the rename (a second
/// semprep writing another daemon's series into the same file waits for
/// it, at most `UPDATE_WAIT`).
///
/// The old file is read through the opened directory, never by its path:
/// without following a link, without blocking (a FIFO planted at the name
/// is refused, never waited on), only when it is a regular file with one
/// link, and at most `UPDATE_READ_MAX` bytes. `durable`: as `replace` says.
pub fn update_atomically(
    target: &Path,
    mode: u32,
    policy: DirPolicy,
    durable: bool,
    make: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<(), Error> {
    let (dir, name) = open_target(target, policy)?;
    let _locked = lock_directory(target, &dir)?;
    let old = read_old(target, &dir, name)?;
    let contents = make(&old);
    let how = How {
        tmpfile: true,
        name: &mut random_name,
        written: &mut || {},
    };
    replace(target, &dir, name, &contents, mode, durable, how)
}

/// An exclusive `flock` on the opened directory, held while the returned
/// descriptor (a duplicate of `dir`'s) lives. A file system without
/// `flock` (some network ones) gets the update unserialised, as before.
fn lock_directory(target: &Path, dir: &OwnedFd) -> Result<Option<File>, Error> {
    let file = File::from(
        dir.try_clone()
            .map_err(|e| failure(target, format!("dup of its directory: {e}")))?,
    );
    let deadline = Instant::now() + UPDATE_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(failure(
                    target,
                    format!(
                        "another process held the lock (flock) on its directory for {}s: \
                         `lslocks` names it",
                        UPDATE_WAIT.as_secs()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                debug!("{}: no flock on its directory ({e})", target.display());
                return Ok(None);
            }
        }
    }
}

/// What the file at `name` holds, read as `update_atomically` says; empty
/// when there is none.
fn read_old(target: &Path, dir: &OwnedFd, name: &OsStr) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        // A link (ELOOP) or something that cannot be opened for reading (a
        // socket: ENXIO): what it is, as refuse_target says it.
        Err(e) => {
            refuse_target(target, dir, name)?;
            return Err(failure(target, format!("cannot open it to read: {e}")));
        }
    };
    let st = fstat(&fd).map_err(|e| failure(target, format!("cannot stat it: {e}")))?;
    if let Some(e) = refusal(target, &st) {
        return Err(e);
    }
    let mut old = Vec::new();
    File::from(fd)
        .take(UPDATE_READ_MAX)
        .read_to_end(&mut old)
        .map_err(|e| failure(target, format!("reading: {e}")))?;
    Ok(old)
}

/// A temporary name in the directory: removed when dropped (an error on
/// the way), unless `kept`.
struct Temp<'a> {
    dir: &'a OwnedFd,
    name: String,
    keep: bool,
}

impl Temp<'_> {
    /// Renamed into place: nothing left to remove.
    fn kept(mut self) {
        self.keep = true;
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = unlinkat(self.dir, self.name.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

fn fill(
    target: &Path,
    file: OwnedFd,
    mode: Mode,
    contents: &[u8],
    durable: bool,
) -> Result<(), Error> {
    // The umask may have narrowed the mode given at creation: set it
    // exactly, before any content is in the file.
    fchmod(&file, mode).map_err(|e| failure(target, format!("fchmod: {e}")))?;
    let mut f = File::from(file);
    f.write_all(contents)
        .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
        .map_err(|e| failure(target, format!("writing: {e}")))
}

/// Tries for a free temporary name this many times: each is random, so a
/// taken one means someone planted it.
const NAME_TRIES: usize = 100;

fn create<'a>(
    target: &Path,
    dir: &'a OwnedFd,
    mode: Mode,
    contents: &[u8],
    durable: bool,
    how: How,
) -> Result<Temp<'a>, Error> {
    if how.tmpfile {
        let flags = OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        match openat(dir, ".", flags, mode) {
            Ok(file) => {
                let probe = file.try_clone().map_err(|e| failure(target, e))?;
                fill(target, file, mode, contents, durable)?;
                (how.written)();
                return link(target, dir, &probe, how.name);
            }
            // The file system has no O_TMPFILE (EOPNOTSUPP; EISDIR or
            // EINVAL from kernels or libcs that do not know the flag).
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
                debug!(
                    "{}: no O_TMPFILE here: a named temporary file",
                    target.display()
                );
            }
            Err(e) => return Err(failure(target, format!("creating a temporary file: {e}"))),
        }
    }
    let flags =
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    for _ in 0..NAME_TRIES {
        let name = (how.name)();
        match openat(dir, name.as_str(), flags, mode) {
            Ok(file) => {
                let tmp = Temp {
                    dir,
                    name,
                    keep: false,
                };
                fill(target, file, mode, contents, durable)?;
                (how.written)();
                return Ok(tmp);
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => {
                return Err(failure(
                    target,
                    format!("creating temporary file {name}: {e}"),
                ));
            }
        }
    }
    Err(taken(target))
}

fn taken(target: &Path) -> Error {
    failure(
        target,
        format!("{NAME_TRIES} random temporary names were all taken in its directory"),
    )
}

/// Gives the written `O_TMPFILE` file a temporary name, for the rename.
fn link<'a>(
    target: &Path,
    dir: &'a OwnedFd,
    file: &OwnedFd,
    next: &mut dyn FnMut() -> String,
) -> Result<Temp<'a>, Error> {
    let by_proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    for _ in 0..NAME_TRIES {
        let name = next();
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH before Linux 6.10 (since,
        // the opener may link); the /proc form needs no capability.
        let linked = linkat(file, "", dir, name.as_str(), AtFlags::AT_EMPTY_PATH).or_else(|e| {
            if matches!(e, Errno::EPERM | Errno::ENOENT | Errno::EINVAL) {
                linkat(
                    AT_FDCWD,
                    by_proc.as_str(),
                    dir,
                    name.as_str(),
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
            } else {
                Err(e)
            }
        });
        match linked {
            Ok(()) => {
                return Ok(Temp {
                    dir,
                    name,
                    keep: false,
                });
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(failure(target, format!("linking {name}: {e}"))),
        }
    }
    Err(taken(target))
}

/// `.semprep-tmp-PID-RANDOM`: the pid says whether its writer still runs.
pub(crate) fn temp_name(pid: u32, random: u64) -> String {
    format!("{TEMP_PREFIX}{pid}-{random:016x}")
}

/// The writer's pid, when `name` is one of semprep's temporary names.
pub(crate) fn temp_pid(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(TEMP_PREFIX)?.split_once('-')?;
    let hex = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (hex && digits).then(|| pid.parse().ok()).flatten()
}

/// A fresh random name: std's `RandomState` is seeded from the kernel's
/// random source, and each call draws new keys.
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    temp_name(std::process::id(), h.finish())
}

/// Removes what killed writes left in `dir`: semprep's temporary names
/// whose process is gone, when they are regular files of semprep's user
/// with one link. Unlinking never follows a link, so whatever else is
/// there (another user's, or planted) stays untouched.
fn clean_leftovers(target: &Path, dir: &OwnedFd) {
    let Some(listing) = dir.try_clone().ok().and_then(|fd| Dir::from_fd(fd).ok()) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    let own_pid = std::process::id();
    for entry in listing.into_iter().flatten() {
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        let Some(pid) = temp_pid(name) else {
            continue;
        };
        if pid == own_pid || crate::process::alive(pid as i32) {
            continue;
        }
        let Ok(st) = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        if regular && st.st_uid == me && st.st_nlink == 1 {
            match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
                Ok(()) => info!(
                    "removed {name} next to {}: a temporary file left by a semprep run \
                     (pid {pid}) that was killed while writing",
                    target.display()
                ),
                Err(e) => debug!("cannot remove leftover {name}: {e}"),
            }
        }
    }
}

#[cfg(test)]
#[path = "safe_write_tests.rs"]
mod tests;

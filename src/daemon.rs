//! Is the daemon we prepare for already running? Removing a cookie under a
//! live daemon could wake one of its device-mapper waiters too early, so a
//! live daemon makes semprep refuse destructive actions (unless --force).

use crate::error::Error;
use crate::process;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Daemon {
    Docker,
    Containerd,
    Isulad,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive {
        pid: i32,
        what: String,
    },
    /// Not running; the note says why a pidfile was ignored, if there was one.
    NotAlive {
        note: Option<String>,
    },
}

impl Daemon {
    pub fn default_pidfile(self) -> Option<&'static str> {
        match self {
            Daemon::Docker => Some("/var/run/docker.pid"),
            Daemon::Isulad => Some("/var/run/isulad.pid"),
            Daemon::Containerd | Daemon::None => None,
        }
    }
    /// The daemon's process name, as in /proc/PID/comm.
    fn comm(self) -> &'static str {
        match self {
            Daemon::Docker => "dockerd",
            Daemon::Containerd => "containerd",
            Daemon::Isulad => "isulad",
            Daemon::None => "",
        }
    }
}

pub fn check(daemon: Daemon, pidfile: Option<&Path>) -> Liveness {
    let file = pidfile
        .map(Path::to_path_buf)
        .or_else(|| daemon.default_pidfile().map(PathBuf::from));
    match (daemon, file) {
        (Daemon::None, _) => Liveness::NotAlive { note: None },
        // iSulad holds a write lock on its pidfile for its whole life.
        (Daemon::Isulad, Some(f)) => by_fcntl_lock(&f),
        (_, Some(f)) => by_pidfile(&f, daemon.comm()),
        (_, None) => match process::find_by_comm(daemon.comm()).first() {
            Some(&pid) => Liveness::Alive {
                pid,
                what: format!("{} (pid {pid}, found by its name)", daemon.comm()),
            },
            None => Liveness::NotAlive { note: None },
        },
    }
}

fn not_alive(note: String) -> Liveness {
    Liveness::NotAlive { note: Some(note) }
}

/// Opens a pidfile for reading; `None` when there is none. Non-blocking, so
/// that a FIFO in its place cannot hang the daemon's start, and only a
/// regular file counts (a device such as /dev/zero would never end). The
/// error is why the pidfile is ignored: the liveness check never fails.
fn open_pidfile(path: &Path) -> Result<Option<File>, Error> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::failure(format!("cannot open it: {e}"))),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(Some(file)),
        Ok(m) if m.is_dir() => Err(Error::failure("cannot read it: it is a directory")),
        Ok(_) => Err(Error::failure("cannot read it: it is not a regular file")),
        Err(e) => Err(Error::failure(format!("cannot stat it: {e}"))),
    }
}

/// dockerd writes its pid but does not lock the file: trust the pid only if
/// that process exists and has the daemon's name.
fn by_pidfile(path: &Path, comm: &str) -> Liveness {
    let shown = path.display();
    let file = match open_pidfile(path) {
        Ok(Some(f)) => f,
        Ok(None) => return Liveness::NotAlive { note: None },
        Err(why) => return not_alive(format!("ignoring pidfile {shown}: {why}")),
    };
    // A pid is a few bytes: never read more than a page of whatever it is.
    let mut text = String::new();
    if let Err(e) = file.take(4096).read_to_string(&mut text) {
        return not_alive(format!("ignoring pidfile {shown}: cannot read it: {e}"));
    }
    let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 0) else {
        let start: String = text.trim().chars().take(40).collect();
        return not_alive(format!(
            "ignoring pidfile {shown}: no pid in it ({start:?})"
        ));
    };
    if !process::alive(pid) {
        return not_alive(format!(
            "ignoring stale pidfile {shown}: pid {pid} is not running"
        ));
    }
    match process::comm(pid) {
        Some(c) if c == comm => Liveness::Alive {
            pid,
            what: format!("{comm} (pid {pid}, from {shown})"),
        },
        Some(c) => not_alive(format!(
            "ignoring stale pidfile {shown}: pid {pid} is now {c}, not {comm}"
        )),
        None => not_alive(format!(
            "ignoring pidfile {shown}: pid {pid} has no readable name"
        )),
    }
}

/// Tests for a write lock with F_GETLK, which reports a conflicting lock
/// without taking it (traditional and OFD locks alike).
fn by_fcntl_lock(path: &Path) -> Liveness {
    use nix::fcntl::{FcntlArg, fcntl};
    let shown = path.display();
    let file = match open_pidfile(path) {
        Ok(Some(f)) => f,
        Ok(None) => return Liveness::NotAlive { note: None },
        Err(why) => return not_alive(format!("ignoring pidfile {shown}: {why}")),
    };
    // l_start 0 and l_len 0 from SEEK_SET: the whole file.
    let mut lock = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    if let Err(e) = fcntl(file.as_fd(), FcntlArg::F_GETLK(&mut lock)) {
        return not_alive(format!("ignoring pidfile {shown}: F_GETLK failed: {e}"));
    }
    if lock.l_type == libc::F_UNLCK as i16 {
        return not_alive(format!(
            "ignoring stale pidfile {shown}: nobody holds its lock"
        ));
    }
    // An OFD lock reports l_pid -1; the pidfile's content names the holder.
    let pid = if lock.l_pid > 0 {
        lock.l_pid
    } else {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    Liveness::Alive {
        pid,
        what: format!("isulad (pid {pid}, holding the lock on {shown})"),
    }
}

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

/// A pid is a few bytes: never read more than a page of whatever a pidfile
/// holds.
const MAX_PIDFILE: u64 = 4096;

/// The pid in an open pidfile, or why there is none: the one read of a
/// pidfile, bounded (`MAX_PIDFILE`), from the file already opened and
/// checked by `open_pidfile`.
fn read_pid(file: &File) -> Result<i32, Error> {
    let mut text = String::new();
    file.take(MAX_PIDFILE)
        .read_to_string(&mut text)
        .map_err(|e| Error::failure(format!("cannot read it: {e}")))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            let start: String = text.trim().chars().take(40).collect();
            Error::failure(format!("no pid in it ({start:?})"))
        })
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
    let pid = match read_pid(&file) {
        Ok(pid) => pid,
        Err(why) => return not_alive(format!("ignoring pidfile {shown}: {why}")),
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
        read_pid(&file).unwrap_or(0)
    };
    Liveness::Alive {
        pid,
        what: format!("isulad (pid {pid}, holding the lock on {shown})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_pidfile_is_read_once_and_never_past_a_page() {
        let path = std::env::temp_dir().join(format!("semprep-pidfile-{}", std::process::id()));
        let padded = format!("{}42", " ".repeat(MAX_PIDFILE as usize));
        // (content, the pid or part of why not)
        let cases = [
            ("4242\n", Ok(4242)),
            (" 17 ", Ok(17)),
            ("", Err("no pid in it")),
            ("0\n", Err("no pid in it (\"0\")")),
            ("-5", Err("no pid in it")),
            ("dockerd", Err("no pid in it (\"dockerd\")")),
            // The pid past the first page is never read.
            (padded.as_str(), Err("no pid in it (\"\")")),
        ];
        for (content, want) in cases {
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(content.as_bytes()))
                .unwrap();
            let file = open_pidfile(&path).unwrap().unwrap();
            match (read_pid(&file), want) {
                (Ok(pid), Ok(w)) => assert_eq!(pid, w, "{content:?}"),
                (Err(e), Err(w)) => assert!(e.message.contains(w), "{content:?}: {e}"),
                (got, want) => panic!("{content:?}: got {got:?}, want {want:?}"),
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
}

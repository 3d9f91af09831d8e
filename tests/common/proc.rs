//! Processes the tests start and watch: spawned despite ETXTBSY, running
//! under another name, in the background with their output in files, and
//! what they hold open or locked.

use super::*;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Spawns, retrying ETXTBSY: a program just copied (named_copy) can still be
/// open for writing in a child that another test thread forked meanwhile.
pub fn spawn(cmd: &mut Command) -> Child {
    for _ in 0..200 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r.unwrap(),
        }
    }
    panic!("{cmd:?}: text file busy for 2 s")
}

/// A `sleep 60` under another name (its comm), e.g. one that looks like
/// dockerd; killed and reaped on drop.
pub fn named_sleeper(dir: &Path, name: &str) -> Proc {
    let program = named_copy(dir, "sleep", name);
    let p = Proc(spawn(Command::new(program).arg("60")));
    // spawn() may return a moment before exec has renamed the child.
    wait_until("the copy to run under its name", || {
        comm(p.pid()).as_deref() == Some(name)
    });
    p
}

/// A child whose stdout and stderr go to files, so that no full pipe can
/// stall it while the test waits on another one.
pub struct Bg {
    pub proc: Proc,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Bg {
    pub fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Bg {
        let (out, err) = (
            dir.join(format!("{name}.out")),
            dir.join(format!("{name}.err")),
        );
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        Bg {
            proc: Proc(spawn(&mut cmd)),
            out,
            err,
        }
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid()
    }

    /// Waits (at most 30 s) and returns the status, stdout and stderr.
    pub fn finish(mut self) -> (ExitStatus, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.proc.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "pid {} still running after 30 s",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        (status, read(&self.out), read(&self.err))
    }
}

pub fn comm(pid: i32) -> Option<String> {
    semprep::process::comm(pid)
}

pub fn ppid(pid: i32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("PPid:")).unwrap();
    line[5..].trim().parse().unwrap()
}

/// Whether process `pid` has `path` open.
pub fn has_open(pid: i32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
        d.flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
    })
}

/// Whether nobody holds semprep's lock (a record lock) on `path`: F_GETLK
/// looks without taking it.
pub fn lock_is_free(path: &Path) -> bool {
    let f = File::open(path).unwrap();
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETLK(&mut probe)).unwrap();
    probe.l_type == libc::F_UNLCK as i16
}

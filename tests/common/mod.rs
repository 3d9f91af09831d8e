//! Shared helpers for the tests: a private IPC namespace per test (and a
//! kernel.sem of the test's choosing), the semfixture and semprep binaries,
//! semprep without a sandbox for what needs no root, and child processes
//! that are always killed and reaped. More in proc.rs (processes started and
//! watched), sets.rs (semaphore sets) and journal.rs (what semprep logged).
#![allow(dead_code, unused_imports)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const SEMPREP: &str = env!("CARGO_BIN_EXE_semprep");
pub const FIXTURE: &str = env!("CARGO_BIN_EXE_semfixture");

/// A private IPC namespace for the calling test thread, and a scratch
/// directory. Every process the test spawns inherits the namespace, so the
/// host's semaphores are never touched and tests run in parallel.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        // A test that cannot run says so loudly: it fails, naming the cause.
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWIPC) {
            panic!(
                "CANNOT RUN: unshare(CLONE_NEWIPC) failed ({e}); kernel tests need root \
                 (run tests/run.sh as root, as CI does)"
            );
        }
        static N: AtomicU32 = AtomicU32::new(0);
        // Not under /tmp: semprep refuses a lock file below a directory
        // that others can write, and tests put theirs here.
        let dir = Path::new("/run").join(format!(
            "semprep-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    /// Writes all four fields of this namespace's /proc/sys/kernel/sem.
    pub fn limits(&self, sem: &str) {
        std::fs::write("/proc/sys/kernel/sem", sem).unwrap();
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("semprep.lock")
    }

    /// semprep with this sandbox's lock and persist files, no daemon check
    /// (the host's pidfiles are not ours), and no inherited SEMPREP_*.
    pub fn semprep(&self) -> Command {
        self.with_settings(Command::new(SEMPREP))
    }

    /// semprep (with this sandbox's settings; add its arguments) in a
    /// private mount namespace that shares this IPC namespace, where `over`
    /// is bind-mounted on /proc/sys/kernel/sem, read-only when `read_only`:
    /// a kernel.sem that is malformed, never answers, or cannot be written.
    /// (`over` may be /proc/sys/kernel/sem itself.)
    pub fn semprep_with_kernel_sem(&self, over: &Path, read_only: bool) -> Command {
        let script = "mount --bind \"$1\" /proc/sys/kernel/sem && \
                      { [ \"$2\" = rw ] || mount -o remount,bind,ro /proc/sys/kernel/sem; } && \
                      shift 2 && exec \"$@\"";
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c", script])
            .arg("sh")
            .arg(over)
            .arg(if read_only { "ro" } else { "rw" })
            .arg(SEMPREP);
        self.with_settings(c)
    }

    /// `sh -c script` in a private mount namespace that shares this IPC
    /// namespace, `$0` being semprep, with this sandbox's settings: for a
    /// test that mounts something only semprep sees (a full tmpfs).
    pub fn semprep_in_private_mounts(&self, script: &str) -> Command {
        let mut c = Command::new(which("unshare"));
        c.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            SEMPREP,
        ]);
        self.with_settings(c)
    }

    /// `c`, which runs semprep, with this sandbox's settings.
    fn with_settings(&self, mut c: Command) -> Command {
        for (k, _) in std::env::vars() {
            if k.starts_with("SEMPREP_") || k == "JOURNAL_STREAM" {
                c.env_remove(k);
            }
        }
        c.env("SEMPREP_LOCK_FILE", self.lock_path())
            .env("SEMPREP_PERSIST_FILE", self.dir.join("90-semprep.conf"))
            .env("SEMPREP_DAEMON", "none");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.semprep().args(args).output().unwrap()
    }

    /// semprep as `nobody` (uid and gid 65534, no root, no capability):
    /// what a user without privilege sees and may do.
    pub fn run_as_nobody(&self, args: &[&str]) -> Output {
        use std::os::unix::process::CommandExt;
        self.semprep()
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// semprep without a sandbox, for what needs no root (parsing, help): no
/// inherited SEMPREP_* or JOURNAL_STREAM, so the host's settings do not
/// leak in. Anything that may touch semaphores or files uses a Sandbox.
pub fn semprep_without_sandbox() -> Command {
    let mut c = Command::new(SEMPREP);
    for (k, _) in std::env::vars() {
        if k.starts_with("SEMPREP_") || k == "JOURNAL_STREAM" {
            c.env_remove(k);
        }
    }
    c
}

/// Runs semprep without a sandbox (see semprep_without_sandbox).
pub fn unprivileged(args: &[&str]) -> Output {
    semprep_without_sandbox().args(args).output().unwrap()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs semfixture; returns the semids it printed.
pub fn fixture(args: &[&str]) -> Vec<i32> {
    let o = Command::new(FIXTURE).args(args).output().unwrap();
    assert!(o.status.success(), "semfixture {args:?}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The semids in /proc/sysvipc/sem, sorted.
pub fn semids() -> Vec<i32> {
    let mut ids: Vec<i32> = sysvipc()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    ids.sort();
    ids
}

pub fn sysvipc() -> String {
    std::fs::read_to_string("/proc/sysvipc/sem").unwrap()
}

pub fn kernel_sem() -> String {
    std::fs::read_to_string("/proc/sys/kernel/sem").unwrap()
}

/// A child process that is killed and reaped when dropped, so it never
/// lingers as a live (or zombie) owner in a later check.
pub struct Proc(pub Child);

impl Proc {
    /// Spawns semfixture and waits for its "ready" line when `ready`.
    pub fn fixture(args: &[&str], ready: bool) -> Proc {
        let child = Command::new(FIXTURE)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut p = Proc(child);
        if ready {
            use std::io::BufRead;
            let mut line = String::new();
            let out = p.0.stdout.as_mut().unwrap();
            std::io::BufReader::new(out).read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready", "semfixture {args:?}");
        }
        p
    }

    /// A semfixture blocked in a wait-for-zero on set `semid`: returns once
    /// the kernel counts it (GETZCNT), so the set is busy from then on.
    pub fn waiter(semid: i32) -> Proc {
        let p = Proc::fixture(&["waiter", &semid.to_string()], false);
        wait_until("the waiter to block", || {
            semprep::sysv::get_zcnt(semid).ok() == Some(1)
        });
        p
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls until `cond` holds (at most 10 s): for waiters to block, etc.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// A copy of a program under another name, so its comm is that name
/// (e.g. a `sleep` that looks like dockerd).
pub fn named_copy(dir: &Path, program: &str, name: &str) -> PathBuf {
    let src = which(program);
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    dst
}

pub fn which(program: &str) -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not found in PATH"))
}

mod journal;
mod proc;
mod sets;
pub use journal::*;
pub use proc::*;
pub use sets::*;

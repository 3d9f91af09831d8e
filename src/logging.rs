//! One line per event on stderr. Under systemd, when stderr is the journal
//! (JOURNAL_STREAM names its device and inode, see sd-daemon(3)), each line
//! starts with the sd-daemon priority prefix and carries no timestamp.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::os::unix::fs::MetadataExt;

struct Logger {
    journal: bool,
}

/// Whether JOURNAL_STREAM matches stderr's device and inode.
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

fn prefix(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::Error => ("<3>", "error: "),
        Level::Warn => ("<4>", "warning: "),
        Level::Info => ("<6>", ""),
        Level::Debug | Level::Trace => ("<7>", "debug: "),
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let (prio, word) = prefix(r.level());
        let prio = if self.journal { prio } else { "" };
        // One write per line so concurrent writers never interleave a line.
        let line = format!("{prio}semprep: {word}{}\n", r.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
    fn flush(&self) {}
}

/// Before exiting, waits (at most 100 ms) until journald has read every line
/// written to the stream. journald names the unit a line came from by the
/// writer's cgroup, looked up when it reads the line: a process that has
/// already exited (an `ExecStartPre=` failing fast) can lose that, and
/// `systemctl status docker` then misses semprep's explanation. Nothing to
/// wait for when stderr is not the journal or every line was read.
pub fn drain() {
    if !JOURNAL.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let stderr = std::io::stderr();
    let fd = std::os::fd::AsFd::as_fd(&stderr);
    for _ in 0..100 {
        match crate::sysv::unread_output(fd) {
            Ok(n) if n > 0 => std::thread::sleep(std::time::Duration::from_millis(1)),
            _ => return,
        }
    }
}

/// Whether `init` found stderr to be the journal.
static JOURNAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn init(verbose: bool, quiet: bool) {
    let level = match (verbose, quiet) {
        (true, _) => LevelFilter::Debug,
        (_, true) => LevelFilter::Warn,
        _ => LevelFilter::Info,
    };
    let journal = stderr_is_journal();
    JOURNAL.store(journal, std::sync::atomic::Ordering::Relaxed);
    let logger: &'static Logger = Box::leak(Box::new(Logger { journal }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

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

pub fn init(verbose: bool, quiet: bool) {
    let level = match (verbose, quiet) {
        (true, _) => LevelFilter::Debug,
        (_, true) => LevelFilter::Warn,
        _ => LevelFilter::Info,
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        journal: stderr_is_journal(),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

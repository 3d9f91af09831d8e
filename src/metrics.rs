//! Prometheus text exposition (format 0.0.4): the status report
//! (`status --format prometheus`) and a hook run's outcome
//! (`--metrics-file`). Names, labels and meanings are the contract in
//! deploy/README.md, which the alerting rules under deploy/ rely on: every
//! series is present on every report (a class with no cookie is 0), so no
//! alert depends on a series appearing.

use crate::apply::Applied;
use crate::plan::Plan;
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The status report: limits, usage, cookies by class, the headroom
/// verdict, the oldest residual cookie, the build, and when it was read.
pub fn status(snap: &Snapshot, plan: &Plan, now: i64) -> String {
    let l = &snap.limits;
    let mut out = String::with_capacity(2048);
    let g = |out: &mut String, name, help, v: u64| gauge(out, name, help, v);
    g(
        &mut out,
        "semprep_semaphore_sets_in_use",
        "SysV semaphore sets in use.",
        snap.sets_in_use,
    );
    g(
        &mut out,
        "semprep_semaphore_sets_limit",
        "SEMMNI: the most semaphore sets (4th field of kernel.sem).",
        l.semmni.into(),
    );
    g(
        &mut out,
        "semprep_semaphores_in_use",
        "Semaphores in use, all sets together.",
        snap.sems_in_use,
    );
    g(
        &mut out,
        "semprep_semaphores_limit",
        "SEMMNS: the most semaphores (2nd field of kernel.sem).",
        l.semmns.into(),
    );
    g(
        &mut out,
        "semprep_semaphores_per_set_limit",
        "SEMMSL: the most semaphores per set (1st field of kernel.sem).",
        l.semmsl.into(),
    );
    g(
        &mut out,
        "semprep_semaphore_operations_per_call_limit",
        "SEMOPM: the most operations per semop call (3rd field of kernel.sem).",
        l.semopm.into(),
    );
    family(
        &mut out,
        "semprep_dm_cookies",
        "Device-mapper udev cookies (and look-alike sets) by class.",
    );
    let n = plan.counts();
    let classes = [
        ("residual", n.residual),
        ("busy", n.busy),
        ("stuck", n.stuck),
        ("lookalike", n.lookalike),
    ];
    for (class, count) in classes {
        let _ = writeln!(out, "semprep_dm_cookies{{class=\"{class}\"}} {count}");
    }
    g(
        &mut out,
        "semprep_details_readable",
        "1 when semprep could read every dm cookie's waiters and last-op pid (root or \
         CAP_IPC_OWNER); 0 when it could not, and then counted root's cookies as busy, \
         so residual and stuck show 0 whatever they are.",
        details_readable(snap).into(),
    );
    g(
        &mut out,
        "semprep_headroom_short",
        "1 when the daemon's next start would fail as things stand, else 0.",
        plan.before.short.into(),
    );
    let oldest = plan
        .sets
        .iter()
        .filter(|e| e.class == crate::plan::Class::Residual)
        .map(|e| e.age)
        .max()
        .unwrap_or(0);
    g(
        &mut out,
        "semprep_oldest_residual_cookie_age_seconds",
        "Idle time of the oldest residual cookie; 0 when there is none.",
        oldest,
    );
    family(
        &mut out,
        "semprep_build_info",
        "semprep's version; always 1.",
    );
    let _ = writeln!(
        out,
        "semprep_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    gauge(
        &mut out,
        "semprep_report_timestamp_seconds",
        "Unix time at which semprep read the state this report shows.",
        now,
    );
    out
}

/// Whether the report's cookie classes are the whole truth: semprep may read
/// every set's details, and the kernel refused none.
fn details_readable(snap: &Snapshot) -> bool {
    use crate::snapshot::NotRead;
    snap.privileged
        && !snap
            .sets
            .iter()
            .any(|s| matches!(s.detail, Err(NotRead::Denied(_))))
}

/// What a hook run came to, for `semprep_last_run_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The run's `--daemon`, the `daemon` label.
    pub daemon: &'static str,
    /// Unix time at which the run ended.
    pub ended: i64,
    /// For `exec`, the code `run` would have exited with.
    pub exit_code: i32,
    /// The time budget ran out: the orderly path stopped removing, or the
    /// watchdog ended the run.
    pub timed_out: bool,
    /// What the run changed; `None` when that is not known (the watchdog
    /// ended it mid-step), and the series is then left out.
    pub removed: Option<u64>,
    pub skipped: Option<u64>,
    pub raised: Option<bool>,
    /// SEMMNI after the run, when the run read it.
    pub semmni: Option<u32>,
}

impl Outcome {
    /// A run that ended on the orderly path.
    pub fn new(
        daemon: &'static str,
        ended: i64,
        exit_code: i32,
        snap: Option<&Snapshot>,
        applied: Option<&Applied>,
    ) -> Outcome {
        let raised = applied.and_then(|a| a.raised);
        Outcome {
            daemon,
            ended,
            exit_code,
            timed_out: applied.is_some_and(|a| a.timed_out),
            removed: Some(applied.map_or(0, |a| a.removed.len() as u64)),
            skipped: Some(applied.map_or(0, |a| a.skipped.len() as u64)),
            semmni: raised.or(snap.map(|s| s.limits)).map(|l| l.semmni),
            raised: Some(raised.is_some()),
        }
    }

    /// A run the time budget's watchdog ended: a step hung, and what the
    /// run had changed by then stays with the hung thread.
    pub fn expired(daemon: &'static str, ended: i64, exit_code: i32) -> Outcome {
        Outcome {
            daemon,
            ended,
            exit_code,
            timed_out: true,
            removed: None,
            skipped: None,
            raised: None,
            semmni: None,
        }
    }
}

/// The hook's families, in the order they are written, with their help.
const LAST_RUN: [(&str, &str); 7] = [
    (
        "semprep_last_run_timestamp_seconds",
        "Unix time at which the last run ended.",
    ),
    (
        "semprep_last_run_exit_code",
        "The last run's exit code (for exec, the code run would have exited with).",
    ),
    (
        "semprep_last_run_timed_out",
        "1 when the last run's time budget (--timeout) ran out: it stopped removing, or a \
         step hung and the watchdog ended the run (its other figures are then left out); \
         else 0.",
    ),
    (
        "semprep_last_run_cookies_removed",
        "Residual cookies the last run removed.",
    ),
    (
        "semprep_last_run_sets_skipped",
        "Sets the last run meant to remove but skipped (they changed or vanished).",
    ),
    (
        "semprep_last_run_semmni_raised",
        "1 when the last run raised SEMMNI, else 0.",
    ),
    (
        "semprep_last_run_semaphore_sets_limit",
        "SEMMNI after the last run.",
    ),
];

/// family → daemon → value, as written in a hook file.
type Series = BTreeMap<&'static str, BTreeMap<String, String>>;

/// The series of a hook file that semprep wrote: only `semprep_last_run_*`
/// families, one `daemon` label of lowercase letters, a numeric value.
/// Anything else in the file is dropped.
fn parse_last_run(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once("{daemon=\"") else {
            continue;
        };
        let Some((fam, _)) = LAST_RUN.iter().find(|(f, _)| *f == name) else {
            continue;
        };
        let Some((daemon, value)) = rest.split_once("\"} ") else {
            continue;
        };
        let daemon_ok = !daemon.is_empty() && daemon.bytes().all(|b| b.is_ascii_lowercase());
        if daemon_ok && value.trim().parse::<f64>().is_ok() {
            series
                .entry(fam)
                .or_default()
                .insert(daemon.to_owned(), value.trim().to_owned());
        }
    }
    series
}

/// The hook file: `previous` (the file as it was) with this daemon's
/// series replaced by `o`, every other daemon's kept.
pub fn last_run(previous: &str, o: &Outcome) -> String {
    let mut series = parse_last_run(previous);
    let values = [
        Some(o.ended.to_string()),
        Some(o.exit_code.to_string()),
        Some(u8::from(o.timed_out).to_string()),
        o.removed.map(|n| n.to_string()),
        o.skipped.map(|n| n.to_string()),
        o.raised.map(|r| u8::from(r).to_string()),
        o.semmni.map(|n| n.to_string()),
    ];
    for ((fam, _), v) in LAST_RUN.iter().zip(values) {
        let per_daemon = series.entry(fam).or_default();
        match v {
            Some(v) => per_daemon.insert(o.daemon.to_owned(), v),
            // Not known this time (the run never read kernel.sem, or the
            // watchdog ended it): no stale value of this daemon's stays
            // either.
            None => per_daemon.remove(o.daemon),
        };
    }
    let mut out = String::new();
    for (fam, help) in LAST_RUN {
        let Some(per_daemon) = series.get(fam).filter(|m| !m.is_empty()) else {
            continue;
        };
        family(&mut out, fam, help);
        for (daemon, v) in per_daemon {
            let _ = writeln!(out, "{fam}{{daemon=\"{daemon}\"}} {v}");
        }
    }
    out
}

/// The `daemon` label of a run's `--daemon`.
pub fn daemon_label(d: crate::daemon::Daemon) -> &'static str {
    use crate::daemon::Daemon;
    match d {
        Daemon::Docker => "docker",
        Daemon::Containerd => "containerd",
        Daemon::Isulad => "isulad",
        Daemon::None => "none",
    }
}

/// After a hook run (`run`, `exec`) with `--metrics-file`: writes its
/// outcome; a failure is logged and changes nothing else.
pub(crate) fn after_hook(
    path: &Path,
    daemon: crate::daemon::Daemon,
    code: i32,
    found: &crate::finish::Found,
) {
    let o = Outcome::new(
        daemon_label(daemon),
        crate::run::now(),
        code,
        found.snap.as_ref(),
        found.applied.as_ref(),
    );
    if let Err(e) = write_last_run(path, &o, true) {
        log::warn!("{}", cannot_write(path, &e));
    }
}

fn cannot_write(path: &Path, why: impl std::fmt::Display) -> String {
    format!(
        "cannot write the run's metrics to {} (--metrics-file): {why}; the run's outcome stands",
        path.display()
    )
}

/// Writes the hook's outcome into `path`, keeping the other daemons'
/// series (read from the file as it is, under the directory's lock:
/// `safe_write::update_atomically`). Failing to is logged by the caller and
/// never changes the exit code (issue 10: the hook never fails a start for
/// its metrics). `durable`: fsynced (the orderly path); the watchdog's
/// writer skips the fsyncs, which on a busy disk take longer than the
/// watchdog waits: a reader still sees the old file or the new one.
pub fn write_last_run(path: &Path, o: &Outcome, durable: bool) -> io::Result<()> {
    use crate::safe_write::{DirPolicy, update_atomically};
    update_atomically(path, 0o644, DirPolicy::ServiceDir, durable, |old| {
        // Not UTF-8 (not semprep's): its lines are dropped with the rest.
        last_run(&String::from_utf8_lossy(old), o).into_bytes()
    })
    .map_err(|e| io::Error::other(e.to_string()))
}

/// The first argument of the process through which the time budget's
/// watchdog writes its run's outcome (`after_watchdog`): internal, never a
/// command users run, so it is not in the command line's definition (and
/// so not in --help, the man page or the completions).
pub const WATCHDOG_OUTCOME: &str = "__watchdog-outcome";

/// How long the watchdog waits for that process before it exits or execs
/// the program: from spawn to exit it takes a few milliseconds
/// (docs/design.md §8 has the measurement).
const WATCHDOG_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// The time budget's watchdog ended the run with `code`: records that in
/// `path`, without ever holding up the exit or exec for more than
/// `WATCHDOG_WAIT`.
///
/// The writer runs in a process of its own (`semprep __watchdog-outcome`,
/// `watchdog_outcome`), not a thread: whatever the write touches (the
/// directories from `/` down, the old file, the new one) may sit on a file
/// system that hangs, and a thread stuck there in an
/// uninterruptible sleep would keep this process from exiting, or from
/// exec'ing the daemon (execve waits for every other thread to die). A
/// child that hangs hangs alone; one that is merely slow still writes the
/// outcome after the daemon started. Its stdout is /dev/null: the run's
/// one report is this process's.
pub(crate) fn after_watchdog(path: &Path, daemon: crate::daemon::Daemon, code: i32) {
    use std::process::{Command, Stdio};
    let start = std::time::Instant::now();
    let spawned = Command::new("/proc/self/exe")
        .arg(WATCHDOG_OUTCOME)
        .arg(path)
        .arg(daemon_label(daemon))
        .arg(code.to_string())
        .arg(crate::run::now().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            log::warn!(
                "{}",
                cannot_write(path, format!("cannot start its writer: {e}"))
            );
            return;
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return,
            Ok(Some(status)) => {
                let mut why = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut err, &mut why);
                }
                let why = why.trim();
                let why = if why.is_empty() {
                    status.to_string()
                } else {
                    why.to_owned()
                };
                log::warn!("{}", cannot_write(path, why));
                return;
            }
            Ok(None) if start.elapsed() < WATCHDOG_WAIT => {
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            Ok(None) => {
                // Slow (a loaded machine) or hung (its file system): either
                // way not the start's business. A failure it meets later
                // goes unreported; the timeout itself was logged already.
                log::info!(
                    "the run's outcome is still being written to {} (--metrics-file) by pid {} \
                     after {}ms; not waiting for it",
                    path.display(),
                    child.id(),
                    WATCHDOG_WAIT.as_millis()
                );
                return;
            }
            Err(e) => {
                log::warn!(
                    "{}",
                    cannot_write(path, format!("waiting for its writer: {e}"))
                );
                return;
            }
        }
    }
}

/// `semprep __watchdog-outcome FILE DAEMON CODE ENDED`, the writer that
/// `after_watchdog` starts: `None` for any other command line. Exit 0 when
/// written; 1 with the reason alone on stderr, which the watchdog logs as
/// its own warning; 2 for arguments the watchdog never passes.
pub fn watchdog_outcome(args: &[std::ffi::OsString]) -> Option<i32> {
    if args.get(1)? != WATCHDOG_OUTCOME {
        return None;
    }
    let text = |i: usize| args.get(i).and_then(|a| a.to_str());
    use crate::daemon::Daemon;
    let daemon = [
        Daemon::Docker,
        Daemon::Containerd,
        Daemon::Isulad,
        Daemon::None,
    ]
    .map(daemon_label)
    .into_iter()
    .find(|d| text(3) == Some(*d));
    let parsed = match (args.get(2), daemon, text(4), text(5), args.len()) {
        (Some(file), Some(daemon), Some(code), Some(ended), 6) => {
            match (code.parse(), ended.parse()) {
                (Ok(code), Ok(ended)) => Some((Path::new(file), daemon, code, ended)),
                _ => None,
            }
        }
        _ => None,
    };
    let Some((file, daemon, code, ended)) = parsed else {
        let usage =
            format!("usage: semprep {WATCHDOG_OUTCOME} FILE DAEMON CODE ENDED (internal)\n");
        let _ = io::Write::write_all(&mut io::stderr(), usage.as_bytes());
        return Some(2);
    };
    let o = Outcome::expired(daemon, ended, code);
    Some(match write_last_run(file, &o, false) {
        Ok(()) => 0,
        Err(e) => {
            let _ = io::Write::write_all(&mut io::stderr(), format!("{e}\n").as_bytes());
            1
        }
    })
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new
/// one, never a part, with mode 0644 (the collector reads it as its own
/// user), through the one safe-write helper: a directory owned by root or
/// the collector's user and writable by nobody else (`ServiceDir`).
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use crate::safe_write::{DirPolicy, write_atomically};
    write_atomically(path, bytes, 0o644, DirPolicy::ServiceDir)
        .map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(daemon: &'static str, code: i32) -> Outcome {
        Outcome {
            daemon,
            ended: 1_700_000_000,
            exit_code: code,
            timed_out: false,
            removed: Some(3),
            skipped: Some(1),
            semmni: Some(256),
            raised: Some(true),
        }
    }

    #[test]
    fn the_hook_file_keeps_other_daemons_and_replaces_its_own() {
        let docker = last_run("", &outcome("docker", 0));
        assert!(docker.contains("semprep_last_run_exit_code{daemon=\"docker\"} 0\n"));
        let both = last_run(&docker, &outcome("containerd", 3));
        let again = last_run(&both, &outcome("docker", 4));
        for want in [
            "semprep_last_run_exit_code{daemon=\"containerd\"} 3\n",
            "semprep_last_run_exit_code{daemon=\"docker\"} 4\n",
            "semprep_last_run_semaphore_sets_limit{daemon=\"docker\"} 256\n",
            "semprep_last_run_semmni_raised{daemon=\"containerd\"} 1\n",
        ] {
            assert!(again.contains(want), "{want} missing from:\n{again}");
        }
        // One HELP and TYPE per family, whatever the daemons.
        assert_eq!(again.matches("# TYPE ").count(), LAST_RUN.len());
        assert_eq!(again.matches("{daemon=\"docker\"}").count(), LAST_RUN.len());
        // Only semprep_last_run_* survive a rewrite; garbage is dropped.
        let dirty = format!(
            "{again}semprep_build_info{{version=\"1\"}} 1\n\
             semprep_last_run_exit_code{{daemon=\"Evil\\\"\"}} 1\n\
             semprep_last_run_exit_code{{daemon=\"isulad\"}} notanumber\n"
        );
        assert_eq!(last_run(&dirty, &outcome("docker", 4)), again);
        // A run that never read kernel.sem reports no limit of its own.
        let mut unknown = outcome("docker", 1);
        unknown.semmni = None;
        let t = last_run(&again, &unknown);
        assert!(!t.contains("semprep_last_run_semaphore_sets_limit{daemon=\"docker\"}"));
        assert!(t.contains("semprep_last_run_semaphore_sets_limit{daemon=\"containerd\"} 256"));
    }

    /// The watchdog's outcome: timed out, its code and time; what it changed
    /// is unknown, so the daemon's earlier figures go, the others' stay.
    #[test]
    fn a_watchdog_outcome_leaves_out_what_it_does_not_know() {
        let both = last_run(&last_run("", &outcome("docker", 0)), &outcome("isulad", 0));
        assert!(both.contains("semprep_last_run_timed_out{daemon=\"docker\"} 0\n"));
        let t = last_run(&both, &Outcome::expired("docker", 1_700_000_100, 1));
        for want in [
            "semprep_last_run_timed_out{daemon=\"docker\"} 1\n",
            "semprep_last_run_exit_code{daemon=\"docker\"} 1\n",
            "semprep_last_run_timestamp_seconds{daemon=\"docker\"} 1700000100\n",
            "semprep_last_run_cookies_removed{daemon=\"isulad\"} 3\n",
        ] {
            assert!(t.contains(want), "{want} missing from:\n{t}");
        }
        assert_eq!(t.matches("{daemon=\"docker\"}").count(), 3, "{t}");
        assert_eq!(
            t.matches("{daemon=\"isulad\"}").count(),
            LAST_RUN.len(),
            "{t}"
        );
    }

    /// `semprep_details_readable`: 1 only when semprep may read every set's
    /// details and the kernel refused none.
    #[test]
    fn details_are_readable_only_when_none_was_refused() {
        use crate::snapshot::{Detail, NotRead, Owner, PidNamespace, SemSet};
        use crate::sysv::SetStat;
        let set = |detail| SemSet {
            semid: 1,
            stat: SetStat {
                key: 0x0D4D_0001,
                nsems: 1,
                mode: 0o600,
                uid: 0,
                cuid: 0,
                otime: 0,
                ctime: 0,
            },
            detail,
        };
        let read = || {
            Ok(Detail {
                value: None,
                zcnt: 0,
                ncnt: 0,
                owner: Owner::Unknown,
            })
        };
        let denied = || Err(NotRead::Denied("needs root or CAP_IPC_OWNER".into()));
        let cases = [
            (true, vec![], true),
            (true, vec![set(read()), set(Err(NotRead::Deferred))], true),
            (false, vec![], false),
            (false, vec![set(read())], false),
            // Root in a user namespace that does not own the IPC one.
            (true, vec![set(read()), set(denied())], false),
        ];
        for (privileged, sets, want) in cases {
            let snap = Snapshot {
                limits: crate::limits::Limits {
                    semmsl: 250,
                    semmns: 32_000,
                    semopm: 32,
                    semmni: 128,
                },
                kernel_max_semmni: 32_768,
                sets_in_use: sets.len() as u64,
                sems_in_use: sets.len() as u64,
                sets,
                privileged,
                pid_namespace: PidNamespace::Initial,
            };
            assert_eq!(
                details_readable(&snap),
                want,
                "{privileged} {:?}",
                snap.sets
            );
        }
    }

    /// Only `semprep __watchdog-outcome` with exactly what the watchdog
    /// passes is the writer; anything else is the CLI's or refused (2).
    #[test]
    fn the_watchdog_s_writer_takes_exactly_its_arguments() {
        let argv = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        for other in [&["semprep"][..], &["semprep", "status"], &["semprep", "-n"]] {
            assert_eq!(watchdog_outcome(&argv(other)), None, "{other:?}");
        }
        let w = WATCHDOG_OUTCOME;
        for bad in [
            &[w][..],
            &[w, "/run/x.prom", "dockerd", "0", "1"],
            &[w, "/run/x.prom", "docker", "zero", "1"],
            &[w, "/run/x.prom", "docker", "0", "1", "extra"],
        ] {
            let mut all = vec!["semprep"];
            all.extend_from_slice(bad);
            assert_eq!(watchdog_outcome(&argv(&all)), Some(2), "{all:?}");
        }
    }
}

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
    pub removed: u64,
    pub skipped: u64,
    /// SEMMNI after the run, when the run read it.
    pub semmni: Option<u32>,
    pub raised: bool,
}

impl Outcome {
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
            removed: applied.map_or(0, |a| a.removed.len() as u64),
            skipped: applied.map_or(0, |a| a.skipped.len() as u64),
            semmni: raised.or(snap.map(|s| s.limits)).map(|l| l.semmni),
            raised: raised.is_some(),
        }
    }
}

/// The hook's families, in the order they are written, with their help.
const LAST_RUN: [(&str, &str); 6] = [
    (
        "semprep_last_run_timestamp_seconds",
        "Unix time at which the last run ended.",
    ),
    (
        "semprep_last_run_exit_code",
        "The last run's exit code (for exec, the code run would have exited with).",
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
        o.ended.to_string(),
        o.exit_code.to_string(),
        o.removed.to_string(),
        o.skipped.to_string(),
        u8::from(o.raised).to_string(),
        o.semmni.map_or(String::new(), |n| n.to_string()),
    ];
    for ((fam, _), v) in LAST_RUN.iter().zip(values) {
        let per_daemon = series.entry(fam).or_default();
        if v.is_empty() {
            // Not known this time (the run never read kernel.sem): no
            // stale value of this daemon's stays either.
            per_daemon.remove(o.daemon);
        } else {
            per_daemon.insert(o.daemon.to_owned(), v);
        }
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
    if let Err(e) = write_last_run(path, &o) {
        log::warn!(
            "cannot write the run's metrics to {} (--metrics-file): {e}; the run's outcome \
             stands",
            path.display()
        );
    }
}

/// Writes the hook's outcome into `path`, keeping the other daemons'
/// series. Failing to is logged by the caller and never changes the exit
/// code (issue 10: the hook never fails a start for its metrics).
pub fn write_last_run(path: &Path, o: &Outcome) -> io::Result<()> {
    let previous = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        // Unreadable (not UTF-8, say): start afresh rather than not report.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
        Err(e) => return Err(e),
    };
    write_file_atomically(path, last_run(&previous, o).as_bytes())
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
            removed: 3,
            skipped: 1,
            semmni: Some(256),
            raised: true,
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
}

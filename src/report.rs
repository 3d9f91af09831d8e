//! Turning snapshots, plans and results into text for operators (JSON is
//! `json.rs`). Nothing here decides anything.

use crate::plan::{Plan, Verdict};
use crate::snapshot::Snapshot;
use std::fmt::Write;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first report: a run prints at most one on stdout, and the
/// time budget's watchdog thread, which may print an error document as the
/// process ends, must never add a second one (or cut the first).
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Writes the run's one report to stdout.
pub fn emit(text: &str) -> io::Result<()> {
    emit_bytes(text.as_bytes())
}

/// Writes the run's one report to stdout (see `emit_with`).
pub(crate) fn emit_bytes(bytes: &[u8]) -> io::Result<()> {
    emit_with(|out| io::Write::write_all(out, bytes))
}

/// Where the one report goes and in what format: process-wide like stdout
/// itself, set once from the command line (`--format`, `--output`).
#[derive(Clone, Debug)]
pub(crate) struct Sink {
    pub format: crate::cli::Format,
    /// `--output`: the file the report replaces, instead of stdout.
    pub output: Option<std::path::PathBuf>,
    /// The `daemon` label of a run's `semprep_last_run_*` series.
    pub daemon: &'static str,
}

static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

/// Sets where reports go, from the command line; only the first call
/// counts. `--format json` is `--json`, and an explicit --format wins over
/// --json (or SEMPREP_JSON from a settings file).
pub(crate) fn set_sink(command: &mut crate::cli::Command) {
    use crate::cli::{Command, Format};
    use crate::daemon::Daemon;
    let (out, daemon) = match command {
        Command::Run(a) => (&mut a.output, a.daemon.daemon),
        Command::Exec(a) => (&mut a.run.output, a.run.daemon.daemon),
        Command::Clean(a) => (&mut a.output, a.daemon.daemon),
        Command::Status(a) => (&mut a.output, Daemon::None),
        Command::Raise(a) => (&mut a.output, Daemon::None),
        Command::Complete(a) => (&mut a.output, Daemon::None),
        Command::Check(_) => return,
    };
    if let Some(f) = out.format {
        out.json = f == Format::Json;
    }
    let _ = SINK.set(Sink {
        format: out
            .format
            .unwrap_or(if out.json { Format::Json } else { Format::Text }),
        output: out.output.clone(),
        daemon: crate::metrics::daemon_label(daemon),
    });
}

pub(crate) fn sink() -> Sink {
    SINK.get().cloned().unwrap_or(Sink {
        format: crate::cli::Format::Text,
        output: None,
        daemon: "none",
    })
}

/// Writes the run's one report to stdout through `write`, or nothing if a
/// report was already written. A closed pipe (`semprep status | head`) is
/// not an error: the reader has what it wanted. Any other write error is
/// (`>/dev/full`).
pub(crate) fn emit_with(
    write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<()> {
    use std::io::Write;
    if REPORTED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    // --output: the whole report, then one atomic replacement of the file.
    if let Some(path) = SINK.get().and_then(|s| s.output.as_deref()) {
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        // Its errors name the file already.
        return crate::metrics::write_file_atomically(path, &bytes);
    }
    // Stdout, locked for the whole report, behind a buffer of 64 KiB: large
    // writes, and memory that does not grow with the report.
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

pub fn key_hex(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

/// `45s`, `12m`, `2h13m`, `3d4h`.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `3 residual dm cookies`, `1 residual dm cookie`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Rounded down, except that a little is `<1%`, never `0%`: 1 of 128 sets
/// in use is not an empty table. Rounding down keeps `100%` for full.
fn percent(used: u64, max: u32) -> String {
    match used.saturating_mul(100).checked_div(u64::from(max)) {
        None => "100%".to_owned(),
        Some(0) if used > 0 => "<1%".to_owned(),
        Some(p) => format!("{p}%"),
    }
}

/// `semaphore sets 128/128 (100%): 120 dm cookies (117 residual, 3 busy);
/// semaphores 128/32000`. A plan that left waiters and owners to the
/// re-check counts its candidates apart: whether they are residual is
/// known only at their removal.
pub fn summary(snap: &Snapshot, plan: &Plan) -> String {
    let crate::plan::Counts {
        residual,
        candidate,
        busy,
        lookalike,
        stuck,
    } = plan.counts();
    let mut s = format!(
        "semaphore sets {}/{} ({}): {} ({residual} residual, {busy} busy",
        snap.sets_in_use,
        snap.limits.semmni,
        percent(snap.sets_in_use, snap.limits.semmni),
        plural(residual + candidate + busy + stuck, "dm cookie"),
    );
    if stuck > 0 {
        let _ = write!(s, ", {stuck} stuck");
    }
    if candidate > 0 {
        let _ = write!(
            s,
            ", {candidate} old enough to remove if no waiter or live owner shows when \
             re-checked"
        );
    }
    s.push(')');
    if lookalike > 0 {
        let _ = write!(s, ", {}", plural(lookalike, "look-alike set"));
    }
    let _ = write!(
        s,
        "; semaphores {}/{}",
        snap.sems_in_use, snap.limits.semmns
    );
    s
}

/// The human `status` report: limits, one row per dm-magic set, summary.
pub fn status_text(snap: &Snapshot, plan: &Plan) -> String {
    let l = &snap.limits;
    let mut out = format!(
        "kernel.sem: SEMMSL {} SEMMNS {} SEMOPM {} SEMMNI {} (kernel maximum {})\n",
        l.semmsl, l.semmns, l.semopm, l.semmni, snap.kernel_max_semmni
    );
    if !plan.sets.is_empty() {
        let _ = writeln!(
            out,
            "{:>10}  {:<10}  {:>5}  {:>7}  {:<10}  REASONS",
            "SEMID", "KEY", "VALUE", "IDLE", "CLASS"
        );
    }
    for (entry, set) in plan.sets.iter().zip(&snap.sets) {
        let value = set
            .detail
            .as_ref()
            .ok()
            .and_then(|d| d.value)
            .map_or("-".to_owned(), |v| v.to_string());
        let _ = writeln!(
            out,
            "{:>10}  {:<10}  {:>5}  {:>7}  {:<10}  {}",
            entry.semid,
            key_hex(entry.key),
            value,
            human_age(entry.age),
            entry.class.label(),
            entry.class.reasons_text(set, entry.age)
        );
    }
    out.push_str(&summary(snap, plan));
    out.push('\n');
    if !snap.privileged && !snap.sets.is_empty() {
        out.push_str("note: neither root nor CAP_IPC_OWNER: waiters and owners of root's cookies cannot be read, so they show as busy; run as root (or give semprep CAP_IPC_OWNER) for the full picture\n");
    }
    out
}

/// What `--dry-run` prints: each removal, the raise, and the verdict.
pub fn plan_text(snap: &Snapshot, plan: &Plan) -> String {
    let mut out = String::new();
    let remove: std::collections::HashSet<i32> = plan.remove.iter().copied().collect();
    for entry in plan.sets.iter().filter(|e| remove.contains(&e.semid)) {
        let _ = writeln!(
            out,
            "would remove semid {} key {} (residual, idle {})",
            entry.semid,
            key_hex(entry.key),
            human_age(entry.age)
        );
    }
    if let Some(to) = plan.raise {
        let _ = writeln!(
            out,
            "would raise kernel.sem from \"{}\" to \"{to}\"",
            snap.limits
        );
    }
    let _ = writeln!(
        out,
        "{}; after the plan: {} free sets, {} free semaphores: {}",
        summary(snap, plan),
        plan.after.free_sets,
        plan.after.free_sems,
        dry_run_verdict(plan)
    );
    out
}

/// The end of the dry run's summary: what the real run would come to.
fn dry_run_verdict(plan: &Plan) -> &'static str {
    let changes = !plan.remove.is_empty() || plan.raise.is_some();
    match plan.verdict {
        Verdict::Ready if changes => "ready already; would still make the changes above",
        Verdict::Ready => "ready: nothing to change",
        Verdict::Fixed => "would fix: enough headroom after the changes above",
        Verdict::Short => "still short: the daemon's start would fail",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_keys_read_well() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h00m"),
            (7980, "2h13m"),
            (86_400, "1d0h"),
            (200_000, "2d7h"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_age(secs), want, "{secs}");
        }
        assert_eq!(key_hex(0x0D4D_0A2B), "0x0d4d0a2b");
        assert_eq!(key_hex(-1), "0xffffffff");
        assert_eq!(percent(128, 128), "100%");
        assert_eq!(percent(1, 0), "100%");
    }

    #[test]
    fn counts_agree_with_their_nouns() {
        let cases = [
            (0, "residual dm cookie", "0 residual dm cookies"),
            (1, "residual dm cookie", "1 residual dm cookie"),
            (2, "residual dm cookie", "2 residual dm cookies"),
            (1, "look-alike set", "1 look-alike set"),
            (120, "dm cookie", "120 dm cookies"),
        ];
        for (n, noun, want) in cases {
            assert_eq!(plural(n, noun), want);
        }
    }

    #[test]
    fn percentages_never_round_to_empty_or_full() {
        // (used, max, shown): a set in use is never "0%", a free one never "100%".
        let cases = [
            (0, 128, "0%"),
            (1, 128, "<1%"),
            (1, 32_000, "<1%"),
            (2, 128, "1%"),
            (64, 128, "50%"),
            (127, 128, "99%"),
            (31_999, 32_000, "99%"),
            (128, 128, "100%"),
            (130, 128, "101%"),
            (0, 0, "100%"),
        ];
        for (used, max, want) in cases {
            assert_eq!(percent(used, max), want, "{used}/{max}");
        }
    }

    fn plan(verdict: Verdict, remove: usize, raise: bool) -> Plan {
        let room = crate::plan::headroom(&LIMITS, 0, 0, 0);
        Plan {
            sets: Vec::new(),
            remove: (0..remove as i32).collect(),
            raise: raise.then_some(LIMITS),
            before: room,
            after: room,
            verdict,
            rule: None,
        }
    }

    const LIMITS: crate::limits::Limits = crate::limits::Limits {
        semmsl: 250,
        semmns: 32_000,
        semopm: 32,
        semmni: 128,
    };

    #[test]
    fn dry_run_verdict_says_what_the_run_would_do() {
        let cases = [
            (Verdict::Ready, 0, false, "ready: nothing to change"),
            (
                Verdict::Ready,
                2,
                false,
                "ready already; would still make the changes above",
            ),
            (
                Verdict::Ready,
                0,
                true,
                "ready already; would still make the changes above",
            ),
            (
                Verdict::Fixed,
                3,
                false,
                "would fix: enough headroom after the changes above",
            ),
            (
                Verdict::Fixed,
                0,
                true,
                "would fix: enough headroom after the changes above",
            ),
            (
                Verdict::Short,
                0,
                false,
                "still short: the daemon's start would fail",
            ),
            (
                Verdict::Short,
                5,
                true,
                "still short: the daemon's start would fail",
            ),
        ];
        for (verdict, remove, raise, want) in cases {
            assert_eq!(
                dry_run_verdict(&plan(verdict, remove, raise)),
                want,
                "{verdict:?}, {remove} removals, raise {raise}"
            );
        }
    }
}

//! `semprep check`: a monitoring plugin (the monitoring-plugins guidelines:
//! exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; the first line
//! `SEMPREP <STATE> - <summary> | <perfdata>`), or with `--format npd`
//! node-problem-detector's custom plugin convention (exit 0 OK, 1 problem,
//! 2 unknown; one line of at most 80 characters). The contract is
//! deploy/README.md's; `judge` is pure, the rest reads and prints.

use crate::cli::{Aspect, CheckArgs, Format};
use crate::plan::{self, Params, Plan, Policy};
use crate::snapshot::{ReadOptions, Snapshot};
use std::fmt::Write as _;

pub const AFTER_HELP: &str = "\
States: CRITICAL when headroom is short or a cookie is stuck, or sets in use
pass --critical; WARNING when residual cookies exist or sets in use pass
--warning; UNKNOWN (3) when the state cannot be read (or, without root, for
cookies it cannot see) and on bad input. --format npd: exit 0 OK, 1 problem,
2 unknown, one line of at most 80 characters.";

/// The longest line node-problem-detector keeps (`max_output_length`).
pub const NPD_MAX: usize = 80;

/// Ordered by how much it matters: the worst state of the aspects wins,
/// and UNKNOWN outranks OK (what could not be seen is never OK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok,
    Unknown,
    Warning,
    Critical,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Unknown => "UNKNOWN",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
        }
    }
    /// The monitoring plugin's exit code.
    pub fn plugin_code(self) -> i32 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }
    /// node-problem-detector's: a problem is WARNING or CRITICAL.
    pub fn npd_code(self) -> i32 {
        match self {
            State::Ok => 0,
            State::Warning | State::Critical => 1,
            State::Unknown => 2,
        }
    }
}

/// The check's thresholds and aspects, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub warning: u64,
    pub critical: u64,
    /// Empty: every aspect.
    pub only: Vec<Aspect>,
    /// `--reserve`, for the message when headroom is short.
    pub reserve: u64,
}

impl Rules {
    fn judges(&self, a: Aspect) -> bool {
        self.only.is_empty() || self.only.contains(&a)
    }
}

/// What the check says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub summary: String,
    pub perfdata: String,
}

impl Verdict {
    pub fn plugin_line(&self) -> String {
        // A `|` starts the perfdata for Nagios and Icinga, wherever it is,
        // and the first line is all they read: the summary (which may quote
        // an operator's bad input) carries neither.
        let summary: String = self
            .summary
            .chars()
            .map(|c| match c {
                '|' => '/',
                c if c.is_control() => ' ',
                c => c,
            })
            .collect();
        let mut s = format!("SEMPREP {} - {summary}", self.state.name());
        if !self.perfdata.is_empty() {
            let _ = write!(s, " | {}", self.perfdata);
        }
        s
    }
    /// At most `NPD_MAX` characters, cut on a character boundary.
    pub fn npd_line(&self) -> String {
        let line = format!("{}: {}", self.state.name(), self.summary);
        if line.chars().count() <= NPD_MAX {
            return line;
        }
        let mut cut: String = line.chars().take(NPD_MAX - 3).collect();
        cut.push_str("...");
        cut
    }
}

/// The most sets in use that do not pass `percent` of SEMMNI: a plugin
/// range `N` alerts above N, exactly where `judge` does.
fn threshold(semmni: u32, percent: u64) -> u64 {
    u64::from(semmni) * percent / 100
}

/// Judges the state: pure, from the snapshot and its plan (with stuck
/// cookies marked).
pub fn judge(snap: &Snapshot, plan: &Plan, rules: &Rules) -> Verdict {
    let l = &snap.limits;
    let crate::plan::Counts {
        residual,
        busy,
        stuck,
        ..
    } = plan.counts();
    let unseen = snap.sets.iter().filter(|s| s.detail.is_err()).count();
    let mut state = State::Ok;
    let mut problems: Vec<String> = Vec::new();
    let mut raise = |s: State, why: String, state: &mut State| {
        *state = (*state).max(s);
        problems.push(why);
    };
    let (warn_at, crit_at) = (
        threshold(l.semmni, rules.warning),
        threshold(l.semmni, rules.critical),
    );
    if rules.judges(Aspect::Headroom) && plan.before.short {
        let h = &plan.before;
        let why = if h.semmsl_short || h.semopm_short {
            format!(
                "headroom short: SEMMSL {} / SEMOPM {} below what one cookie needs",
                l.semmsl, l.semopm
            )
        } else {
            format!(
                "headroom short: {} free sets, {} free semaphores, reserve {}",
                h.free_sets, h.free_sems, rules.reserve
            )
        };
        raise(State::Critical, why, &mut state);
    }
    if rules.judges(Aspect::Stuck) && stuck > 0 {
        let why = format!(
            "{} (semprep complete --stuck)",
            crate::report::plural(stuck, "stuck dm cookie")
        );
        raise(State::Critical, why, &mut state);
    }
    if rules.judges(Aspect::Usage) {
        let sets = snap.sets_in_use;
        let pct = sets * 100 / u64::from(l.semmni.max(1));
        if sets * 100 > u64::from(l.semmni) * rules.critical {
            let why = format!(
                "{sets}/{} sets in use ({pct}%), above --critical {}%",
                l.semmni, rules.critical
            );
            raise(State::Critical, why, &mut state);
        } else if sets * 100 > u64::from(l.semmni) * rules.warning {
            let why = format!(
                "{sets}/{} sets in use ({pct}%), above --warning {}%",
                l.semmni, rules.warning
            );
            raise(State::Warning, why, &mut state);
        }
    }
    if rules.judges(Aspect::Residual) && residual > 0 {
        let why = format!(
            "{} (semprep clean)",
            crate::report::plural(residual, "residual dm cookie")
        );
        raise(State::Warning, why, &mut state);
    }
    let sees_cookies = rules.judges(Aspect::Stuck) || rules.judges(Aspect::Residual);
    if sees_cookies && unseen > 0 {
        let why = format!(
            "cannot read {} (not root): residual and stuck cookies unknown",
            crate::report::plural(unseen, "dm cookie")
        );
        raise(State::Unknown, why, &mut state);
    }
    let summary = if problems.is_empty() {
        format!(
            "{}/{} sets in use, {} ({residual} residual, {busy} busy, {stuck} stuck)",
            snap.sets_in_use,
            l.semmni,
            crate::report::plural(residual + busy + stuck, "dm cookie")
        )
    } else {
        problems.join("; ")
    };
    let usage = rules.judges(Aspect::Usage);
    let mut perf = format!(
        "'sets_in_use'={};{};{};0;{} 'semaphores_in_use'={};;;0;{}",
        snap.sets_in_use,
        if usage {
            warn_at.to_string()
        } else {
            String::new()
        },
        if usage {
            crit_at.to_string()
        } else {
            String::new()
        },
        l.semmni,
        snap.sems_in_use,
        l.semmns
    );
    // Counts it could not see are left out, never given as 0.
    if unseen == 0 {
        let _ = write!(
            perf,
            " 'residual'={residual};{};;0; 'busy'={busy};;;0; 'stuck'={stuck};;{};0;",
            if rules.judges(Aspect::Residual) {
                "0"
            } else {
                ""
            },
            if rules.judges(Aspect::Stuck) { "0" } else { "" },
        );
    }
    Verdict {
        state,
        summary,
        perfdata: perf,
    }
}

/// Validates what clap cannot: the thresholds' order.
pub fn rules(a: &CheckArgs) -> Result<Rules, String> {
    if a.warning >= a.critical {
        return Err(format!(
            "--warning {} must be below --critical {} (percentages of SEMMNI from 0 to 100)",
            a.warning, a.critical
        ));
    }
    let mut only = a.only.clone();
    only.sort();
    only.dedup();
    Ok(Rules {
        warning: a.warning,
        critical: a.critical,
        only,
        reserve: a.reserve.reserve,
    })
}

/// The plugin's two conventions: the monitoring plugin's (`text`), or
/// node-problem-detector's (`npd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckFormat {
    Text,
    Npd,
}

fn print(format: CheckFormat, v: &Verdict) -> i32 {
    let (line, code) = match format {
        CheckFormat::Text => (v.plugin_line(), v.state.plugin_code()),
        CheckFormat::Npd => (v.npd_line(), v.state.npd_code()),
    };
    match crate::report::emit(&format!("{line}\n")) {
        Ok(()) => code,
        Err(_) => unknown_code(format),
    }
}

fn unknown_code(format: CheckFormat) -> i32 {
    match format {
        CheckFormat::Text => State::Unknown.plugin_code(),
        CheckFormat::Npd => State::Unknown.npd_code(),
    }
}

fn unknown(why: String) -> Verdict {
    Verdict {
        state: State::Unknown,
        summary: why,
        perfdata: String::new(),
    }
}

/// A command line clap rejected: UNKNOWN, naming the problem. `--help` and
/// `--version` print and exit 0 as usual.
pub fn usage_error(args: &[std::ffi::OsString], e: clap::Error) -> i32 {
    if !e.use_stderr() {
        e.exit();
    }
    let npd = args.windows(2).any(|w| w[0] == "--format" && w[1] == "npd")
        || args.iter().any(|a| a == "--format=npd");
    let format = if npd {
        CheckFormat::Npd
    } else {
        CheckFormat::Text
    };
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let why = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let _ = e.print();
    print(format, &unknown(format!("bad usage: {why}")));
    unknown_code(format)
}

/// Runs the check; returns the exit code.
pub fn main(a: &CheckArgs) -> i32 {
    let format = match a.format {
        None | Some(Format::Text) => CheckFormat::Text,
        Some(Format::Npd) => CheckFormat::Npd,
        Some(other) => {
            let why = format!(
                "--format {}: check prints text (the plugin line) or npd",
                if other == Format::Json {
                    "json"
                } else {
                    "prometheus"
                }
            );
            log::error!("{why}");
            print(CheckFormat::Text, &unknown(format!("bad usage: {why}")));
            return unknown_code(CheckFormat::Text);
        }
    };
    let rules = match rules(a) {
        Ok(r) => r,
        Err(why) => {
            log::error!("{why}");
            print(format, &unknown(format!("bad usage: {why}")));
            return unknown_code(format);
        }
    };
    let timeout = a.timeout;
    // A hung /proc/sys/kernel/sem must not hang the monitoring system.
    let budget = crate::budget::Budget::start(timeout, move || {
        let why = format!(
            "time budget of {timeout:?} (--timeout) ran out{}",
            crate::budget::during()
        );
        std::process::exit(print(format, &unknown(why)));
    });
    let p = Params {
        policy: Policy::Report,
        min_age: a.age.min_age.as_secs(),
        reserve: a.reserve.reserve,
        max_semmni: None,
        semmni: None,
    };
    let verdict =
        read(&p, a.age.stuck_after.as_secs()).map(|(snap, plan)| judge(&snap, &plan, &rules));
    budget.disarm();
    match verdict {
        Ok(v) => print(format, &v),
        Err(why) => print(
            format,
            &unknown(format!("cannot read the semaphore state: {why}")),
        ),
    }
}

fn read(p: &Params, stuck_after: u64) -> Result<(Snapshot, Plan), String> {
    let snap = crate::snapshot::read(ReadOptions::default()).map_err(|e| e.to_string())?;
    let now = crate::run::now();
    let mut plan = plan::plan(&snap, p, now).map_err(|e| e.to_string())?;
    plan::mark_stuck(&mut plan, &snap, stuck_after, now);
    Ok((snap, plan))
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;

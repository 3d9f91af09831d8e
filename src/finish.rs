//! How a run ends: the hook policy turns its error into the exit code, and
//! stdout gets exactly one report (text, or the one `--json` document that
//! carries the error and the exit code), whichever way the run ended: bad
//! input, a busy lock, the time budget's watchdog, a failure, or success.

use crate::apply::Applied;
use crate::error::{Code, Error};
use crate::json::JsonDoc;
use crate::plan::{Params, Plan};
use crate::report;
use crate::snapshot::Snapshot;
use log::{error, info};
use std::ffi::OsString;

/// How a command ends: its name, its hook policy, and what it prints. Owned
/// and `Copy`, so the time budget's watchdog can keep one.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub command: &'static str,
    pub params: Params,
    pub json: bool,
    /// run and exec: semprep's own faults do not fail the daemon's start.
    pub hook: bool,
    pub strict: bool,
    /// What it prints without --json, once it has a plan.
    pub text: Text,
}

#[derive(Clone, Copy)]
pub(crate) enum Text {
    Status,
    Plan,
    /// `--policy report`: the summary line, logged.
    Summary,
    Nothing,
}

/// What a run found out, filled in as it goes, so that the report shows
/// every part known when the run ended, whichever way it ended.
#[derive(Default)]
pub(crate) struct Found {
    pub snap: Option<Snapshot>,
    pub plan: Option<Plan>,
    pub applied: Option<Applied>,
    /// Why a run that ended normally exits non-zero: a live daemon (4) or
    /// headroom still short (3). Already logged.
    pub verdict: Option<Error>,
}

/// Ends a run: logs its error, applies the hook policy, and writes the one
/// report (text, or the JSON document, which carries the error and the exit
/// code). Returns the exit code.
pub(crate) fn conclude(out: &Out, result: Result<Code, Error>, found: &Found) -> i32 {
    let failed;
    let (code, error) = match result {
        Ok(code) => (code as i32, found.verdict.as_ref()),
        Err(e) => {
            failed = e;
            (hook_policy(out, &failed), Some(&failed))
        }
    };
    match report(out, found, error, code) {
        Ok(()) => code,
        // Not writing what was asked for is semprep's own failure, unless a
        // worse outcome already decides the exit code.
        Err(e) => {
            let to = crate::report::sink()
                .output
                .map_or("stdout".into(), |_| "--output".to_owned());
            let e = Error::failure(format!("cannot write the report to {to}: {e}"));
            if code == 0 {
                hook_policy(out, &e)
            } else {
                error!("{e}");
                code
            }
        }
    }
}

/// Logs the error and maps it to the exit code (`Out::exit_code`).
fn hook_policy(out: &Out, e: &Error) -> i32 {
    if out.forgives(e) {
        error!("{e}; letting the daemon start anyway (--strict would fail instead)");
    } else {
        error!("{e}");
    }
    out.exit_code(e)
}

impl Out {
    /// The one place an error becomes an exit code: its own code, except
    /// where the hook policy forgives it (docs/design.md §5).
    pub(crate) fn exit_code(&self, e: &Error) -> i32 {
        if self.forgives(e) { 0 } else { e.code as i32 }
    }

    /// The hook policy: in run and exec only "certainly cannot start" and
    /// bad input fail, unless --strict; semprep's own faults and a busy
    /// lock let the daemon start.
    pub(crate) fn forgives(&self, e: &Error) -> bool {
        self.hook && !self.strict && matches!(e.code, Code::Failure | Code::Refused)
    }
}

/// Writes the run's report on stdout: with --json always the document;
/// otherwise the command's text, if it got as far as a plan.
fn report(out: &Out, found: &Found, error: Option<&Error>, code: i32) -> std::io::Result<()> {
    let (snap, plan) = (found.snap.as_ref(), found.plan.as_ref());
    if out.json {
        return crate::json::emit_json(&JsonDoc {
            command: Some(out.command),
            params: Some(&out.params),
            snap,
            plan,
            applied: found.applied.as_ref(),
            error,
            exit_code: code,
        });
    }
    let sink = crate::report::sink();
    if sink.format == crate::cli::Format::Prometheus {
        return prometheus(out, found, &sink, code);
    }
    let (Some(snap), Some(plan)) = (snap, plan) else {
        return Ok(());
    };
    match out.text {
        Text::Status => report::emit(&report::status_text(snap, plan)),
        Text::Plan => report::emit(&report::plan_text(snap, plan)),
        Text::Summary => {
            info!("{}", report::summary(snap, plan));
            Ok(())
        }
        Text::Nothing => Ok(()),
    }
}

/// `--format prometheus`: status prints the state; the other commands
/// their run's outcome (`semprep_last_run_*`). A status that could not read
/// the state prints nothing: an old report then goes stale, which an alert
/// sees, rather than a wrong one.
fn prometheus(
    out: &Out,
    found: &Found,
    sink: &crate::report::Sink,
    code: i32,
) -> std::io::Result<()> {
    let now = crate::run::now();
    let text = match (&out.text, &found.snap, &found.plan) {
        (Text::Status, Some(snap), Some(plan)) => crate::metrics::status(snap, plan, now),
        (Text::Status, ..) => return Ok(()),
        _ => {
            let o = crate::metrics::Outcome::new(
                sink.daemon,
                now,
                code,
                found.snap.as_ref(),
                found.applied.as_ref(),
            );
            crate::metrics::last_run("", &o)
        }
    };
    report::emit(&text)
}

/// A command line clap could not parse: clap's message on stderr and its
/// exit code (`--help` and `--version` print on stdout and exit 0). Under
/// --json or SEMPREP_JSON, stdout also gets the one JSON document, with
/// `exit_code` 2: a caller that asked for JSON reads stdout.
pub fn usage_error(args: &[OsString], e: clap::Error) -> i32 {
    if args.get(1).is_some_and(|a| a == "check") {
        return crate::check::usage_error(args, e);
    }
    if !e.use_stderr() {
        e.exit();
    }
    let code = e.exit_code();
    if json_requested(args) {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        let error = Error::usage(first.strip_prefix("error: ").unwrap_or(first));
        let command = args.get(1).and_then(|a| a.to_str()).filter(|name| {
            use clap::CommandFactory;
            crate::cli::Cli::command()
                .get_subcommands()
                .any(|c| c.get_name() == *name)
        });
        let doc = JsonDoc {
            command,
            error: Some(&error),
            exit_code: code,
            ..JsonDoc::default()
        };
        // Exit 2 either way; clap's message below says what was wrong.
        let _ = crate::json::emit_json(&doc);
    }
    let _ = e.print();
    code
}

/// Whether `--json` (before any `--`) or a true SEMPREP_JSON is in effect on
/// a command line that clap rejected.
fn json_requested(args: &[OsString]) -> bool {
    use clap::builder::{BoolishValueParser, TypedValueParser};
    let mut options = args.iter().skip(1).take_while(|a| *a != "--");
    if options.any(|a| a == "--json") {
        return true;
    }
    std::env::var_os("SEMPREP_JSON").is_some_and(|v| {
        let cmd = clap::Command::new("semprep");
        BoolishValueParser::new()
            .parse_ref(&cmd, None, &v)
            .is_ok_and(|b| b)
    })
}

/// The time budget's watchdog ran out, semprep's own failure: returns the
/// exit code the hook policy gives it and, under --json, writes the error
/// document. The main thread writes its report only after disarming the
/// budget, so none is on stdout yet (and `report::emit_bytes` would drop a
/// second). The snapshot stays with the main thread: the document has no
/// sets. The caller logs, and exits or starts the program.
pub(crate) fn expired(out: &Out, message: &str) -> i32 {
    let error = Error::failure(message);
    let exit_code = out.exit_code(&error);
    if !out.json {
        return exit_code;
    }
    let doc = JsonDoc {
        command: Some(out.command),
        params: Some(&out.params),
        error: Some(&error),
        exit_code,
        ..JsonDoc::default()
    };
    if let Err(e) = crate::json::emit_json(&doc) {
        error!("cannot write the report to stdout: {e}");
    }
    exit_code
}

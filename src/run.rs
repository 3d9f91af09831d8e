//! The commands: read → plan → apply → report, with the guards around them
//! (root, lock, daemon liveness, time budget) and the hook-mode exit policy.

use crate::apply::{self, Applied};
use crate::budget::Budget;
use crate::cli::{self, Command};
use crate::daemon::{self, Daemon, Liveness};
use crate::error::{Code, Error};
use crate::finish::{Found, Out, Text, conclude};
use crate::lock::{self, LockGuard};
use crate::plan::{self, Params, Plan, Policy, Verdict};
use crate::report;
use crate::snapshot::{self, ReadOptions, Snapshot};
use log::{debug, error, info, warn};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The state-changing commands, and what sets each apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Run,
    Exec,
    Clean,
    Raise,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Exec => "exec",
            Kind::Clean => "clean",
            Kind::Raise => "raise",
        }
    }

    /// run and exec are hooks: semprep's own faults must not fail the
    /// daemon's start (unless --strict).
    fn is_hook(self) -> bool {
        matches!(self, Kind::Run | Kind::Exec)
    }

    /// exec hands the lock on to its program, which keeps it for its life.
    fn hands_on_lock(self) -> bool {
        self == Kind::Exec
    }
}

/// A state-changing command, normalised from its subcommand's arguments by
/// its constructor.
struct Job {
    kind: Kind,
    /// --strict; true for the commands that are not hooks.
    strict: bool,
    params: Params,
    change: cli::ChangeArgs,
    /// `raise` removes nothing, so it checks no daemon (`Daemon::None`).
    daemon: cli::DaemonArgs,
    json: bool,
    persist: Option<PathBuf>,
    /// `--stuck-after`, in seconds: stuck cookies show as such.
    stuck_after: u64,
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn params(policy: Policy, min_age: Duration, reserve: u64) -> Params {
    Params {
        policy,
        min_age: min_age.as_secs(),
        reserve,
        max_semmni: None,
        semmni: None,
    }
}

impl Job {
    /// `run`, or `exec` (`kind`), which takes run's options.
    fn hook(kind: Kind, a: &cli::RunArgs) -> Job {
        Job {
            kind,
            strict: a.hook.strict,
            params: Params {
                max_semmni: a.raising.max_semmni,
                ..params(a.hook.policy, a.age.min_age, a.reserve.reserve)
            },
            change: a.change.clone(),
            daemon: a.daemon.clone(),
            json: a.output.json,
            persist: a.raising.persist_to(),
            stuck_after: a.age.stuck_after.as_secs(),
        }
    }

    fn clean(a: &cli::CleanArgs) -> Job {
        Job {
            kind: Kind::Clean,
            strict: true,
            params: params(Policy::Clean, a.age.min_age, a.reserve.reserve),
            change: a.change.clone(),
            daemon: a.daemon.clone(),
            json: a.output.json,
            persist: None,
            stuck_after: a.age.stuck_after.as_secs(),
        }
    }

    fn raise(a: &cli::RaiseArgs) -> Job {
        Job {
            kind: Kind::Raise,
            strict: true,
            params: Params {
                max_semmni: a.raising.max_semmni,
                semmni: a.semmni,
                ..params(Policy::Raise, Duration::ZERO, a.reserve.reserve)
            },
            change: a.change.clone(),
            daemon: cli::DaemonArgs {
                daemon: Daemon::None,
                pidfile: None,
                force: false,
            },
            json: a.output.json,
            persist: a.raising.persist_to(),
            stuck_after: plan::DEFAULT_STUCK_AFTER,
        }
    }

    fn out(&self) -> Out {
        let text = if self.change.dry_run {
            Text::Plan
        } else if self.params.policy == Policy::Report {
            Text::Summary
        } else {
            Text::Nothing
        };
        Out {
            command: self.kind.name(),
            params: self.params,
            json: self.json,
            hook: self.kind.is_hook(),
            strict: self.strict,
            text,
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn main(mut cli: cli::Cli) -> i32 {
    report::set_sink(&mut cli.command);
    if report::sink().format == cli::Format::Npd && !matches!(cli.command, Command::Check(_)) {
        error!(
            "--format npd is check's only (node-problem-detector); use text, json or prometheus"
        );
        return Code::Usage as i32;
    }
    let metrics_file = match &cli.command {
        Command::Run(a) => hook_metrics_file(a),
        Command::Exec(a) => hook_metrics_file(&a.run),
        _ => None,
    };
    let (job, program) = match cli.command {
        Command::Status(a) => return status(&a),
        Command::Check(a) => return crate::check::main(&a),
        Command::Complete(a) => return crate::complete::main(&a),
        Command::Run(a) => (Job::hook(Kind::Run, &a), None),
        Command::Exec(a) => (Job::hook(Kind::Exec, &a.run), Some(a.program)),
        Command::Clean(a) => (Job::clean(&a), None),
        Command::Raise(a) => (Job::raise(&a), None),
    };
    let budget = start_budget(&job, program.clone(), metrics_file.clone());
    let mut found = Found::default();
    let result = change(&job, &budget, &mut found);
    // The budget bounds the work, not the reader of the report: from here on
    // the watchdog must not act, so it can neither cut the report short (a
    // slow reader of a large document) nor print a second one.
    budget.disarm();
    let (result, lock) = match result {
        Ok((code, lock)) => (Ok(code), lock),
        Err(e) => (Err(e), None),
    };
    let ended = result.as_ref().ok().copied();
    let code = conclude(&job.out(), result, &found);
    if let Some(path) = metrics_file {
        crate::metrics::after_hook(&path, job.daemon.daemon, code, &found);
    }
    match program {
        None => code,
        // Headroom certainly short: the program would fail anyway.
        Some(_) if ended == Some(Code::Short) => code,
        // Ready, or a failure the hook policy lets pass, or a live daemon
        // (which exec does not stop): the program runs. Bad input, and any
        // failure under --strict, stop here.
        Some(program) if code == 0 || ended == Some(Code::Refused) => {
            crate::exec::exec(&program, lock.as_ref())
        }
        Some(_) => code,
    }
}

/// The `--metrics-file` a hook run writes its outcome to. A dry run writes
/// none: the file says what the daemon's last start did, and a dry run is
/// no start (docs/design.md §5).
fn hook_metrics_file(a: &cli::RunArgs) -> Option<PathBuf> {
    let path = a.metrics_file.clone()?;
    if a.change.dry_run {
        info!(
            "--dry-run: {} (--metrics-file) keeps the last real run's outcome",
            path.display()
        );
        return None;
    }
    Some(path)
}

/// The watchdog of a state-changing command: when the budget runs out, the
/// error document, the outcome in `--metrics-file`, then the exit code the
/// hook policy gives it (`exec`'s program starts instead where that is 0).
fn start_budget(
    job: &Job,
    program: Option<Vec<OsString>>,
    metrics_file: Option<PathBuf>,
) -> Budget {
    let timeout = job.change.timeout;
    let out = Out {
        text: Text::Nothing,
        ..job.out()
    };
    let daemon = job.daemon.daemon;
    Budget::start(timeout, move || {
        let msg = format!(
            "time budget of {timeout:?} (--timeout) ran out{}",
            crate::budget::during()
        );
        let code = crate::finish::expired(&out, &msg);
        match (&program, code) {
            (Some(_), 0) => warn!("{msg}; starting the program anyway"),
            (None, 0) => warn!("{msg}; letting the daemon start anyway"),
            _ => error!("{msg}"),
        }
        if let Some(path) = &metrics_file {
            crate::metrics::after_watchdog(path, daemon, code);
        }
        match program {
            Some(program) if code == 0 => std::process::exit(crate::exec::exec(&program, None)),
            _ => std::process::exit(code),
        }
    })
}

fn status(a: &cli::StatusArgs) -> i32 {
    let out = Out {
        command: "status",
        params: params(Policy::Report, a.age.min_age, a.reserve.reserve),
        json: a.output.json,
        hook: false,
        strict: true,
        text: Text::Status,
    };
    // Reading the state is bounded like a run: a /proc/sys/kernel/sem that
    // never answers must not hang a monitoring script. Printing is not: a
    // reader may page through the report at leisure.
    let timeout = a.timeout;
    let budget = Budget::start(timeout, move || {
        let msg = format!(
            "time budget of {timeout:?} (--timeout) ran out{}: it did not answer; \
             look at the file or the kernel (dmesg), or pass a larger --timeout",
            crate::budget::during()
        );
        let code = crate::finish::expired(&out, &msg);
        error!("{msg}");
        std::process::exit(code)
    });
    let mut found = Found::default();
    let result = read_status(&out.params, a.age.stuck_after.as_secs(), &mut found);
    budget.disarm();
    conclude(&out, result, &found)
}

fn read_status(p: &Params, stuck_after: u64, found: &mut Found) -> Result<Code, Error> {
    let snap = &*found.snap.insert(snapshot::read(ReadOptions {
        values: true,
        defer_details: false,
    })?);
    let at = now();
    let mut plan = plan::plan(snap, p, at)?;
    plan::mark_stuck(&mut plan, snap, stuck_after, at);
    found.plan = Some(plan);
    Ok(Code::Ready)
}

fn take_lock(job: &Job, budget: &Budget) -> Result<LockGuard, Error> {
    let wait = job.change.lock_timeout.min(budget.remaining());
    match lock::acquire(&job.change.lock_file, wait) {
        Ok(lock) => refuse_aliases(job, lock),
        Err(e) if e.code == Code::Refused && wait < job.change.lock_timeout => {
            Err(Error::refused(format!(
                "{e}: the time budget of {:?} (--timeout) ran out",
                budget.total()
            )))
        }
        Err(e) => Err(e),
    }
}

/// Refuses a pidfile or persist file that is the lock file: reading the
/// pidfile would close a descriptor of the lock file, which drops the lock,
/// and writing the persist file would rename another file over it.
fn refuse_aliases(job: &Job, lock: LockGuard) -> Result<LockGuard, Error> {
    let d = job.daemon.daemon;
    let pidfile = job.daemon.pidfile.clone().filter(|_| d != Daemon::None);
    let pidfile = pidfile.or_else(|| d.default_pidfile().map(PathBuf::from));
    for (option, path) in [
        ("--pidfile", pidfile),
        ("--persist-file", job.persist.clone()),
    ] {
        if let Some(p) = path.filter(|p| lock.is_named_by(p)) {
            return Err(Error::usage(format!(
                "{option} {} is the lock file {}: semprep would lose its lock; give the lock \
                 a file of its own (--lock-file, default /run/semprep.lock)",
                p.display(),
                lock.path().display()
            )));
        }
    }
    Ok(lock)
}

/// Refuses destructive actions under a live daemon, unless --force.
fn guard_daemon(job: &Job, plan: &Plan) -> Result<(), Error> {
    if plan.remove.is_empty() {
        return Ok(());
    }
    match daemon::check(job.daemon.daemon, job.daemon.pidfile.as_deref()) {
        Liveness::NotAlive { note } => {
            if let Some(n) = note {
                info!("{n}");
            }
            Ok(())
        }
        Liveness::Alive { what, .. } if job.daemon.force => {
            warn!("{what} is running; removing the residual cookies anyway (--force)");
            Ok(())
        }
        Liveness::Alive { what, .. } => Err(Error::refused(format!(
            "{what} is running: semprep removes no cookie under a live daemon; stop it \
             first, or pass --force to remove only the residual cookies (up to {}, each \
             re-checked right before its removal)",
            plan.remove.len()
        ))),
    }
}

/// The state-changing commands. Returns the exit code and the lock, which
/// `exec` hands on to its program; what it learns goes into `found`.
fn change(
    job: &Job,
    budget: &Budget,
    found: &mut Found,
) -> Result<(Code, Option<LockGuard>), Error> {
    let read_only = job.change.dry_run || job.params.policy == Policy::Report;
    let name = job.kind.name();
    if !read_only && !nix::unistd::geteuid().is_root() {
        return Err(Error::usage(format!(
            "semprep {name} changes kernel state and needs root: run it as root, or look first \
             with `semprep {name} --dry-run` or `semprep status`"
        )));
    }
    // A persist file semprep must not write is bad input: refused before
    // anything changes, not after the raise.
    if let Some(file) = &job.persist {
        apply::check_persist(file)?;
    }
    let lock = if read_only {
        None
    } else {
        Some(take_lock(job, budget)?)
    };
    if let Some(l) = lock.as_ref().filter(|_| job.kind.hands_on_lock()) {
        l.inherit_across_exec()?;
    }
    // A command that prints no per-set detail leaves waiters and owners to
    // the re-check before each removal, which reads them anyway; one that
    // removes nothing has no re-check, so it reads them here.
    let shows_sets = job.json || !matches!(job.out().text, Text::Nothing);
    let opts = ReadOptions {
        values: job.json || job.change.dry_run,
        defer_details: !shows_sets && job.params.policy.removes(),
    };
    let snap = &*found.snap.insert(snapshot::read(opts)?);
    let at = now();
    let mut plan = plan::plan(snap, &job.params, at)?;
    plan::mark_stuck(&mut plan, snap, job.stuck_after, at);
    let plan = &*found.plan.insert(plan);
    debug!("{}", report::summary(snap, plan));
    let refused = guard_daemon(job, plan);
    if read_only {
        let verdict = match refused {
            Err(e) => {
                warn!("{e}");
                Some(e)
            }
            Ok(()) => verdict_error(snap, plan, job),
        };
        let code = verdict.as_ref().map_or(Code::Ready, |e| e.code);
        found.verdict = verdict;
        return Ok((code, lock));
    }
    // A live daemon is not semprep's fault: the refusal (4) stands in hook
    // mode too, unlike a busy lock. `exec` still starts its program.
    if let Err(e) = refused {
        error!("{e}");
        let code = e.code;
        found.verdict = Some(e);
        return Ok((code, lock));
    }
    let ctx = apply::Context {
        min_age: job.params.min_age,
        now: &now,
        deadline: Some(budget.removal_deadline()),
        sem_path: Path::new(crate::limits::SEM_PATH),
        persist: job.persist.as_deref(),
    };
    let applied = apply::apply(snap, plan, &ctx)?;
    let applied = &*found.applied.insert(applied);
    let code = outcome(job, snap, plan, applied, budget, &mut found.verdict)?;
    Ok((code, lock))
}

/// The plan's verdict as an error (exit 3) when headroom stays short,
/// logged with its explanation.
fn verdict_error(snap: &Snapshot, plan: &Plan, job: &Job) -> Option<Error> {
    if plan.verdict != Verdict::Short {
        return None;
    }
    let limits = plan.raise.unwrap_or(snap.limits);
    let msg = crate::explain::short(
        &limits,
        &plan.after,
        job.params.reserve,
        &crate::explain::cookies_fate(plan, None),
        &crate::explain::not_raised(snap, &job.params, job.kind.name()),
    );
    error!("{msg}");
    Some(Error::new(Code::Short, msg))
}

/// Logs what was done and works out the exit code from the kernel's
/// usage after the changes; `verdict` gets the error that exit 3 stands for.
fn outcome(
    job: &Job,
    snap: &Snapshot,
    plan: &Plan,
    applied: &Applied,
    budget: &Budget,
    verdict: &mut Option<Error>,
) -> Result<Code, Error> {
    crate::explain::log_applied(snap, plan, applied);
    if let Some(found) = &applied.raised_by_other {
        info!("{}", crate::explain::raised_by_other(snap, applied, found));
    }
    let limits = applied
        .raised
        .or(applied.raised_by_other)
        .unwrap_or(snap.limits);
    let (sets, sems) = match applied.usage {
        Some(usage) => usage,
        None => snapshot::usage()?,
    };
    let now_room = plan::headroom(&limits, sets, sems, job.params.reserve);
    let ran_out = applied
        .timed_out
        .then(|| crate::explain::ran_out(plan, applied, budget.total()));
    if now_room.short {
        // Name what actually stood in the way: a refused write, the time
        // budget, or else the policy or the cap.
        let not_raised = || crate::explain::not_raised(snap, &job.params, job.kind.name());
        let why = match (&applied.raise_error, &ran_out) {
            (Some(e), Some(r)) => format!("{r}; {e}"),
            (Some(e), None) => e.clone(),
            (None, Some(r)) => format!("{r}; {}", not_raised()),
            (None, None) => not_raised(),
        };
        let msg = crate::explain::short(
            &limits,
            &now_room,
            job.params.reserve,
            &crate::explain::cookies_fate(plan, Some(applied)),
            &why,
        );
        error!("{msg}");
        *verdict = Some(Error::new(Code::Short, msg));
        return Ok(Code::Short);
    }
    if let Some(msg) = ran_out {
        // Where the hook policy would forgive the failure, the run goes on
        // to its verdict with a warning.
        let e = Error::failure(msg);
        if !job.out().forgives(&e) {
            return Err(e);
        }
        warn!("{e}");
    }
    if let Some(e) = &applied.raise_error {
        // Headroom is enough without the raise (only `raise --semmni` or a
        // concurrent change gets here): the operator asked for it, though.
        return Err(Error::failure(e.clone()));
    }
    if let Some(n) = job.params.semmni.filter(|&n| n <= snap.limits.semmni) {
        // Asked for explicitly, so say why nothing changed: raise never lowers.
        info!(
            "SEMMNI is already {}, at least the {n} asked for; semprep raise never lowers it",
            snap.limits.semmni
        );
    }
    if plan.remove.is_empty() && plan.raise.is_none() {
        debug!("nothing to do: {}", report::summary(snap, plan));
    }
    Ok(Code::Ready)
}

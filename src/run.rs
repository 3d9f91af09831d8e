//! The commands: read → plan → apply → report, with the guards around them
//! (root, lock, daemon liveness, time budget) and the hook-mode exit policy.

use crate::apply::{self, Applied};
use crate::budget::Budget;
use crate::cli::{self, Command};
use crate::daemon::{self, Daemon, Liveness};
use crate::error::{Code, Error};
use crate::lock::{self, LockError, LockGuard};
use crate::plan::{self, Params, Plan, Policy, Verdict};
use crate::report;
use crate::snapshot::{self, ReadOptions, Snapshot};
use log::{debug, error, info, warn};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A state-changing command, normalised from its subcommand's arguments.
struct Job {
    name: &'static str,
    /// run and exec are hooks: they must not fail the daemon's start for
    /// semprep's own faults.
    hook: bool,
    strict: bool,
    params: Params,
    guard: cli::Guard,
    /// `raise` removes nothing, so it checks no daemon (`Daemon::None`).
    daemon: cli::DaemonArgs,
    json: bool,
    persist: Option<PathBuf>,
}

fn now() -> i64 {
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

fn job_from_run(name: &'static str, a: &cli::RunArgs) -> Job {
    let mut p = params(a.hook.policy, a.classify.min_age, a.reserve.reserve);
    p.max_semmni = a.raising.max_semmni;
    Job {
        name,
        hook: true,
        strict: a.hook.strict,
        params: p,
        guard: a.guard.clone(),
        daemon: a.daemon.clone(),
        json: a.output.json,
        persist: a.raising.persist.then(|| a.raising.persist_file.clone()),
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn main(cli: cli::Cli) -> i32 {
    let (job, exec) = match cli.command {
        Command::Status(a) => return finish(status(&a), false, false),
        Command::Run(a) => (job_from_run("run", &a), None),
        Command::Exec(a) => (job_from_run("exec", &a.run), Some(a.program)),
        Command::Clean(a) => {
            let job = Job {
                name: "clean",
                hook: false,
                strict: true,
                params: params(Policy::Clean, a.classify.min_age, a.reserve.reserve),
                guard: a.guard,
                daemon: a.daemon,
                json: a.output.json,
                persist: None,
            };
            (job, None)
        }
        Command::Raise(a) => {
            let mut p = params(Policy::Raise, Duration::ZERO, a.reserve.reserve);
            p.max_semmni = a.raising.max_semmni;
            p.semmni = a.semmni;
            let job = Job {
                name: "raise",
                hook: false,
                strict: true,
                params: p,
                guard: a.guard,
                daemon: cli::DaemonArgs {
                    daemon: Daemon::None,
                    pidfile: None,
                    force: false,
                },
                json: a.output.json,
                persist: a.raising.persist.then_some(a.raising.persist_file),
            };
            (job, None)
        }
    };
    let (hook, strict) = (job.hook, job.strict);
    let budget = start_budget(&job, exec.clone());
    let result = change(&job, &budget);
    budget.disarm();
    match exec {
        None => finish(result.map(|(code, _lock)| code), hook, strict),
        Some(program) => match result {
            Ok((Code::Short, _)) => Code::Short as i32,
            Ok((_, lock)) => crate::exec::exec(&program, lock.as_ref()),
            // The hook policy decides: bad input, and any failure under
            // --strict, stop here instead of starting the program.
            Err(e) => match finish(Err(e), hook, strict) {
                0 => crate::exec::exec(&program, None),
                code => code,
            },
        },
    }
}

/// Logs the error and maps it to the exit code, applying the hook policy:
/// in run and exec only "certainly cannot start" and bad input fail.
fn finish(result: Result<Code, Error>, hook: bool, strict: bool) -> i32 {
    match result {
        Ok(code) => code as i32,
        Err(e) if hook && !strict && matches!(e.code, Code::Failure | Code::Refused) => {
            error!("{e}; letting the daemon start anyway (--strict would fail instead)");
            0
        }
        Err(e) => {
            error!("{e}");
            e.code as i32
        }
    }
}

fn start_budget(job: &Job, exec: Option<Vec<OsString>>) -> Budget {
    let (hook, strict, timeout) = (job.hook, job.strict, job.guard.timeout);
    Budget::start(timeout, move || {
        let msg = format!("time budget of {timeout:?} (--timeout) ran out");
        match exec {
            Some(program) if !strict => {
                warn!("{msg}; starting the program anyway");
                std::process::exit(crate::exec::exec(&program, None));
            }
            _ if hook && !strict => {
                warn!("{msg}; letting the daemon start anyway");
                std::process::exit(0)
            }
            _ => {
                error!("{msg}");
                std::process::exit(Code::Failure as i32)
            }
        }
    })
}

fn status(a: &cli::StatusArgs) -> Result<Code, Error> {
    let snap = snapshot::read(ReadOptions { values: true })?;
    let p = params(Policy::Report, a.classify.min_age, a.reserve.reserve);
    let plan = plan::plan(&snap, &p, now()).map_err(Error::usage)?;
    if a.output.json {
        let doc = crate::json::json_doc("status", &snap, &plan, &p, None, Code::Ready);
        crate::json::emit_json(&doc);
    } else {
        report::emit(&report::status_text(&snap, &plan));
    }
    Ok(Code::Ready)
}

fn lock(job: &Job, budget: &Budget) -> Result<LockGuard, Error> {
    let wait = job.guard.lock_timeout.min(budget.remaining());
    match lock::acquire(&job.guard.lock_file, wait) {
        Ok(guard) => refuse_aliases(job, guard),
        Err(LockError::BadPath(m)) => Err(Error::usage(m)),
        Err(LockError::Busy(m)) if wait < job.guard.lock_timeout => Err(Error::new(
            Code::Refused,
            format!(
                "{m}: the time budget of {:?} (--timeout) ran out",
                budget.total()
            ),
        )),
        Err(LockError::Busy(m)) => Err(Error::new(Code::Refused, m)),
    }
}

/// Refuses a pidfile or persist file that is the lock file: reading the
/// pidfile would close a descriptor of the lock file, which drops the lock,
/// and writing the persist file would rename another file over it.
fn refuse_aliases(job: &Job, guard: LockGuard) -> Result<LockGuard, Error> {
    let d = job.daemon.daemon;
    let pidfile = job.daemon.pidfile.clone().filter(|_| d != Daemon::None);
    let pidfile = pidfile.or_else(|| d.default_pidfile().map(PathBuf::from));
    for (option, path) in [
        ("--pidfile", pidfile),
        ("--persist-file", job.persist.clone()),
    ] {
        if let Some(p) = path.filter(|p| guard.is_named_by(p)) {
            return Err(Error::usage(format!(
                "{option} {} is the lock file {}: semprep would lose its lock; give the lock \
                 a file of its own (--lock-file, default /run/semprep.lock)",
                p.display(),
                guard.path().display()
            )));
        }
    }
    Ok(guard)
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
        Liveness::Alive { what, .. } => Err(Error::new(
            Code::Refused,
            format!(
                "{what} is running: semprep removes no cookie under a live daemon; stop it \
                 first, or pass --force to remove only the {} residual cookies",
                plan.remove.len()
            ),
        )),
    }
}

/// The state-changing commands. Returns the exit code and the lock, which
/// `exec` hands on to its program.
fn change(job: &Job, budget: &Budget) -> Result<(Code, Option<LockGuard>), Error> {
    let read_only = job.guard.dry_run || job.params.policy == Policy::Report;
    if !read_only && !nix::unistd::geteuid().is_root() {
        return Err(Error::usage(format!(
            "semprep {} changes kernel state and needs root: run it as root, or look first \
             with `semprep {} --dry-run` or `semprep status`",
            job.name, job.name
        )));
    }
    let guard = if read_only {
        None
    } else {
        Some(lock(job, budget)?)
    };
    if let Some(g) = guard.as_ref().filter(|_| job.name == "exec") {
        g.inherit_across_exec().map_err(|e| {
            Error::failure(format!("fcntl(F_SETFD) on {}: {e}", g.path().display()))
        })?;
    }
    let opts = ReadOptions {
        values: job.json || job.guard.dry_run,
    };
    let snap = snapshot::read(opts)?;
    let plan = plan::plan(&snap, &job.params, now()).map_err(Error::usage)?;
    debug!("{}", report::summary(&snap, &plan));
    let refused = guard_daemon(job, &plan);
    if read_only {
        let code = match &refused {
            Err(e) => e.code,
            Ok(()) => verdict_code(&snap, &plan, job),
        };
        if let Err(e) = refused {
            warn!("{e}");
        }
        output(job, &snap, &plan, None, code);
        return Ok((code, guard));
    }
    // A live daemon is not semprep's fault: the refusal (4) stands in hook
    // mode too, unlike a busy lock. `exec` still starts its program.
    if let Err(e) = refused {
        error!("{e}");
        return Ok((e.code, guard));
    }
    let ctx = apply::Context {
        min_age: job.params.min_age,
        now: &now,
        deadline: Some(budget.deadline()),
        sem_path: Path::new(crate::limits::SEM_PATH),
        persist: job.persist.as_deref(),
    };
    let applied = apply::apply(&snap, &plan, &ctx).map_err(Error::failure)?;
    let code = outcome(job, &snap, &plan, &applied)?;
    output(job, &snap, &plan, Some(&applied), code);
    Ok((code, guard))
}

fn output(job: &Job, snap: &Snapshot, plan: &Plan, applied: Option<&Applied>, code: Code) {
    if job.json {
        let doc = crate::json::json_doc(job.name, snap, plan, &job.params, applied, code);
        crate::json::emit_json(&doc);
    } else if job.guard.dry_run {
        report::emit(&report::plan_text(snap, plan));
    } else if job.params.policy == Policy::Report {
        info!("{}", report::summary(snap, plan));
    }
}

/// The exit code for a plan's verdict, logging the explanation when short.
fn verdict_code(snap: &Snapshot, plan: &Plan, job: &Job) -> Code {
    if plan.verdict != Verdict::Short {
        return Code::Ready;
    }
    error!(
        "{}",
        crate::explain::short(snap, plan, &plan.after, &job.params)
    );
    Code::Short
}

/// Logs what was done and works out the exit code from the kernel's
/// usage after the changes.
fn outcome(job: &Job, snap: &Snapshot, plan: &Plan, applied: &Applied) -> Result<Code, Error> {
    crate::explain::log_applied(snap, plan, applied);
    if applied.timed_out {
        let msg = "time budget (--timeout) ran out before every residual cookie was removed; \
                   the next run removes the rest";
        if job.hook && !job.strict {
            warn!("{msg}");
        } else {
            return Err(Error::failure(msg));
        }
    }
    let limits = applied.raised.unwrap_or(snap.limits);
    let (sets, sems) = snapshot::usage().map_err(Error::failure)?;
    let now_room = plan::headroom(&limits, sets, sems, job.params.reserve);
    if now_room.short {
        let mut msg = crate::explain::short(snap, plan, &now_room, &job.params);
        if let Some(e) = &applied.raise_error {
            msg = format!("{e}; {msg}");
        }
        error!("{msg}");
        return Ok(Code::Short);
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

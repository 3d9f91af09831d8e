//! The command line. Every option also reads a `SEMPREP_*` environment
//! variable, so drop-ins and /etc/default/semprep can set it; the command
//! line wins.

use crate::daemon::Daemon;
use crate::plan::Policy;
use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

const AFTER_HELP: &str = "\
Exit codes: 0 ready (nothing to do, or fixed) · 1 semprep's own failure
(0 in run and exec unless --strict) · 2 bad usage or input · 3 headroom still
short · 4 refused (daemon alive, or lock busy).

With no command, semprep runs `semprep run`.";

#[derive(Parser, Debug)]
#[command(
    name = "semprep",
    version,
    about = "Clear leaked device-mapper udev cookies (SysV semaphores) before a container daemon starts",
    long_about = "Clear leaked device-mapper udev cookies (SysV semaphores) before a container \
daemon starts.\n\nA dockerd, iSulad, containerd or LVM killed in the middle of a device-mapper \
operation leaves a semaphore set keyed 0x0d4dXXXX behind. Once the sets in use reach SEMMNI \
(the 4th field of /proc/sys/kernel/sem), the daemon fails with \"devicemapper: Can't set \
cookie\". semprep removes the cookies that are provably dead, never anything else, and raises \
SEMMNI when headroom is still short.",
    after_help = AFTER_HELP,
    override_usage = "semprep [COMMAND] [OPTIONS]\n       semprep exec [OPTIONS] -- PROGRAM [ARGS]..."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Prepare for the daemon start: remove residual cookies, raise SEMMNI if still short (default)
    Run(RunArgs),
    /// Show limits, usage and every dm cookie with its class; changes nothing, needs no root
    Status(StatusArgs),
    /// Remove residual cookies only; never raises
    Clean(CleanArgs),
    /// Raise SEMMNI (and SEMMNS) only; never removes
    Raise(RaiseArgs),
    /// Prepare like `run`, then replace semprep with PROGRAM, which keeps the lock for its life
    #[command(after_help = "Example: semprep exec --daemon docker -- /usr/bin/dockerd -H fd://")]
    Exec(ExecArgs),
    /// Monitoring plugin (Nagios, Icinga, node-problem-detector): OK, WARNING, CRITICAL or UNKNOWN
    #[command(after_help = crate::check::AFTER_HELP)]
    Check(CheckArgs),
    /// Complete stuck cookies the way udev would, so their waiters wake
    #[command(after_help = crate::complete::AFTER_HELP)]
    Complete(CompleteArgs),
}

/// What a report is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people
    Text,
    /// The `--json` document
    Json,
    /// Prometheus text exposition (for node_exporter's textfile collector)
    Prometheus,
    /// check only: node-problem-detector's custom plugin line (at most 80 characters, exit 0-2)
    Npd,
}

/// What every command prints and logs.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print one JSON document on stdout instead of text
    #[arg(long, env = "SEMPREP_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
    /// Write the report in this format [default: text; --json means json; check: text or npd]
    #[arg(long, env = "SEMPREP_FORMAT", value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Write the report to FILE, atomically (mode 0644), instead of stdout
    #[arg(long, env = "SEMPREP_OUTPUT", value_name = "FILE", value_parser = parse_output_file)]
    pub output: Option<PathBuf>,
    /// Also log debug lines
    #[arg(short, long, env = "SEMPREP_VERBOSE", value_parser = BoolishValueParser::new(), conflicts_with = "quiet")]
    pub verbose: bool,
    /// Log only warnings and errors
    #[arg(short, long, env = "SEMPREP_QUIET", value_parser = BoolishValueParser::new())]
    pub quiet: bool,
}

/// The age below which a cookie counts as busy.
#[derive(Args, Debug, Clone)]
pub struct AgeArgs {
    /// A cookie untouched for less than this is busy, not residual (0, 90s, 5m, 1h)
    #[arg(long, env = "SEMPREP_MIN_AGE", default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub min_age: Duration,
    /// A cookie with waiters idle at least this long is stuck (udev gives up after 180s)
    #[arg(long, env = "SEMPREP_STUCK_AFTER", default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub stuck_after: Duration,
}

/// The headroom the daemon needs.
#[derive(Args, Debug, Clone)]
pub struct ReserveArgs {
    /// Free semaphore sets (and semaphores) the daemon needs (at most the kernel's maximum SEMMNI)
    #[arg(long, env = "SEMPREP_RESERVE", default_value_t = 32, value_parser = |t: &str| parse_count(t, 0, 1 << 31), allow_hyphen_values = true, value_name = "N")]
    pub reserve: u64,
}

/// Every state-changing command's: the dry run, the lock, the time budget.
#[derive(Args, Debug, Clone)]
pub struct ChangeArgs {
    /// Print the plan and change nothing
    #[arg(short = 'n', long, env = "SEMPREP_DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,
    /// Lock file held while changing state (and by `exec`'s program)
    #[arg(
        long,
        env = "SEMPREP_LOCK_FILE",
        default_value = "/run/semprep.lock",
        value_name = "PATH"
    )]
    pub lock_file: PathBuf,
    /// How long to wait for the lock
    #[arg(long, env = "SEMPREP_LOCK_TIMEOUT", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub lock_timeout: Duration,
    /// Time budget for the whole run, any wait for the lock included (at least 100ms)
    #[arg(long, env = "SEMPREP_TIMEOUT", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true, value_name = "DURATION")]
    pub timeout: Duration,
}

/// The daemon whose liveness stops removals.
#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    /// The daemon that must not be running while cookies are removed
    #[arg(long, env = "SEMPREP_DAEMON", value_enum, default_value_t = Daemon::Docker)]
    pub daemon: Daemon,
    /// The daemon's pidfile [default: /var/run/docker.pid, /var/run/isulad.pid]
    #[arg(long, env = "SEMPREP_PIDFILE", value_name = "PATH", value_parser = parse_path)]
    pub pidfile: Option<PathBuf>,
    /// Override the safety refusal: run, exec, clean remove residual cookies while the daemon runs; complete completes cookies that are not stuck
    #[arg(long, env = "SEMPREP_FORCE", value_parser = BoolishValueParser::new())]
    pub force: bool,
}

/// How far a raise may go, and whether it is kept for the next boot.
#[derive(Args, Debug, Clone)]
pub struct RaisingArgs {
    /// Never raise SEMMNI above this [default: the kernel's maximum]
    #[arg(long, env = "SEMPREP_MAX_SEMMNI", value_name = "N", value_parser = parse_semmni, allow_hyphen_values = true)]
    pub max_semmni: Option<u32>,
    /// Also write the raised limits to --persist-file for the next boot
    #[arg(long, env = "SEMPREP_PERSIST", value_parser = BoolishValueParser::new())]
    pub persist: bool,
    /// sysctl.d file written by --persist, in a directory only root can write
    #[arg(long, env = "SEMPREP_PERSIST_FILE", default_value = "/etc/sysctl.d/90-semprep.conf", value_name = "PATH", value_parser = parse_path)]
    pub persist_file: PathBuf,
}

/// The hooks' (run, exec): what semprep may change, and what fails the start.
#[derive(Args, Debug, Clone)]
pub struct HookArgs {
    /// What semprep may change
    #[arg(long, env = "SEMPREP_POLICY", value_enum, default_value_t = Policy::Auto)]
    pub policy: Policy,
    /// Fail on semprep's own faults (1) and a busy lock (4) instead of letting the daemon start
    #[arg(long, env = "SEMPREP_STRICT", value_parser = BoolishValueParser::new())]
    pub strict: bool,
}

impl RaisingArgs {
    /// The file --persist writes, if it is given.
    pub(crate) fn persist_to(&self) -> Option<PathBuf> {
        self.persist.then(|| self.persist_file.clone())
    }
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub hook: HookArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub reserve: ReserveArgs,
    #[command(flatten)]
    pub raising: RaisingArgs,
    /// Also write this run's outcome there, for node_exporter (Prometheus text, atomically; a dry run writes none)
    #[arg(long, env = "SEMPREP_METRICS_FILE", value_name = "FILE", value_parser = parse_output_file)]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// Time budget for the whole run, any wait for the lock included (at least 100ms)
    #[arg(long, env = "SEMPREP_TIMEOUT", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub reserve: ReserveArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct CleanArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub reserve: ReserveArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RaiseArgs {
    /// Raise SEMMNI to exactly N (at most the kernel's maximum, at least the sets in use)
    #[arg(long, env = "SEMPREP_SEMMNI", value_name = "N", value_parser = parse_semmni, allow_hyphen_values = true)]
    pub semmni: Option<u32>,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub reserve: ReserveArgs,
    #[command(flatten)]
    pub raising: RaisingArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// The program to run after preparing, with its arguments (after `--`)
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub program: Vec<OsString>,
}

/// What `check` judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Aspect {
    /// Headroom short: the daemon's next start would fail (CRITICAL)
    Headroom,
    /// Sets in use past --warning or --critical percent of SEMMNI
    Usage,
    /// A stuck cookie (CRITICAL)
    Stuck,
    /// Residual cookies (WARNING)
    Residual,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// WARNING when sets in use pass this percentage of SEMMNI (0-100)
    #[arg(short, long, env = "SEMPREP_WARNING", default_value_t = 80, value_parser = |t: &str| parse_count(t, 0, 100), allow_hyphen_values = true, value_name = "PERCENT")]
    pub warning: u64,
    /// CRITICAL when sets in use pass this percentage of SEMMNI (0-100, above --warning)
    #[arg(short, long, env = "SEMPREP_CRITICAL", default_value_t = 95, value_parser = |t: &str| parse_count(t, 0, 100), allow_hyphen_values = true, value_name = "PERCENT")]
    pub critical: u64,
    /// Judge only these aspects (comma-separated) [default: all]
    #[arg(
        long,
        env = "SEMPREP_ONLY",
        value_enum,
        value_delimiter = ',',
        value_name = "ASPECTS"
    )]
    pub only: Vec<Aspect>,
    /// Write the report in this format [default: text; --json means json; check: text or npd]
    #[arg(long, env = "SEMPREP_FORMAT", value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Time budget for the whole run, any wait for the lock included (at least 100ms)
    #[arg(long, env = "SEMPREP_TIMEOUT", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub reserve: ReserveArgs,
}

#[derive(Args, Debug, Clone)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["semids", "stuck"]))]
pub struct CompleteArgs {
    /// The cookies to complete, by semid (as `semprep status` shows them)
    #[arg(value_name = "SEMID", value_parser = |t: &str| parse_count(t, 0, i32::MAX as u64).map(|n| n as i32))]
    pub semids: Vec<i32>,
    /// Complete every stuck cookie
    #[arg(long)]
    pub stuck: bool,
    // The same option as run's --force, so it reads SEMPREP_FORCE too; the
    // settings file is read by the units, which never run `complete`.
    /// Override the safety refusal: run, exec, clean remove residual cookies while the daemon runs; complete completes cookies that are not stuck
    #[arg(long, env = "SEMPREP_FORCE", value_parser = BoolishValueParser::new())]
    pub force: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A file a report is written to: its directory must exist; the file, when
/// it exists, must be a regular file (never a symbolic link, a directory or
/// a device), since it is replaced by a rename.
pub(crate) fn parse_output_file(text: &str) -> Result<PathBuf, String> {
    let path = parse_path(text)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) => {
            return Err(format!(
                "its directory {}: {e}; create it first",
                dir.display()
            ));
        }
    }
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{e}")),
        Ok(m) if m.file_type().is_symlink() => Err(
            "is a symbolic link: semprep writes a regular file there and never follows a link"
                .into(),
        ),
        Ok(m) if m.is_dir() => {
            Err("is a directory: name the file to write, e.g. DIR/semprep.prom".into())
        }
        Ok(m) if !m.is_file() => Err("is not a regular file (a device, FIFO or socket)".into()),
        // The directory rules every write follows (docs/design.md §6).
        Ok(_) | Err(_) => crate::safe_write::check(&path, crate::safe_write::DirPolicy::ServiceDir)
            .map(|()| path.clone())
            .map_err(|e| e.to_string()),
    }
}

impl Command {
    /// The command's output options: every command but `check`, whose
    /// output is the monitoring plugin's.
    pub fn output(&self) -> Option<&OutputArgs> {
        Some(match self {
            Command::Run(a) => &a.output,
            Command::Exec(a) => &a.run.output,
            Command::Status(a) => &a.output,
            Command::Clean(a) => &a.output,
            Command::Raise(a) => &a.output,
            Command::Complete(a) => &a.output,
            Command::Check(_) => return None,
        })
    }
}

/// Parses `0`, `90s`, `5m`, `1h`, `500ms`; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let allowed =
        "expected a whole number with an optional unit ms, s, m or h, e.g. 0, 90s, 5m, 1h";
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| allowed.to_owned())?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(allowed.to_owned()),
    };
    ms.filter(|ms| *ms <= 365 * 86_400_000)
        .map(Duration::from_millis)
        .ok_or_else(|| "too long: at most a year".to_owned())
}

/// The shortest `--timeout`: enough to read the state (kernel.sem, one
/// SEM_STAT pass over 32768 sets) and act; less could never do anything.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// A duration of at least `MIN_TIMEOUT`.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < MIN_TIMEOUT {
        return Err(format!(
            "too short: expected a duration from {}ms to 1 year (e.g. 500ms, 10s, 1m); \
             semprep needs at least that to read the state",
            MIN_TIMEOUT.as_millis()
        ));
    }
    Ok(d)
}

/// A whole number in `min..=max`.
pub(crate) fn parse_count(text: &str, min: u64, max: u64) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("expected a whole number from {min} to {max}"))
}

/// SEMMNI can never exceed IPCMNI with ipcmni_extend (2^24).
fn parse_semmni(text: &str) -> Result<u32, String> {
    parse_count(text, 1, 1 << 24).map(|n| n as u32)
}

fn parse_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        Err("expected a path, got an empty string".into())
    } else {
        Ok(PathBuf::from(text))
    }
}

/// `semprep [OPTIONS]` means `semprep run [OPTIONS]`: insert `run` unless a
/// subcommand or a top-level flag (help, version) comes first. A first word
/// that is not an option is left for clap: `run` takes no positionals, so
/// it can only be a mistyped command, and clap names the nearest one.
pub(crate) fn with_default_command(mut args: Vec<OsString>) -> Vec<OsString> {
    let first = args.get(1).map(|a| a.to_string_lossy());
    let top_level = ["-h", "--help", "-V", "--version"];
    if !first.is_some_and(|f| !f.starts_with('-') || top_level.contains(&&*f)) {
        args.insert(1.min(args.len()), "run".into());
    }
    args
}

/// Parses the command line (`std::env::args_os()`). A clap error (a usage
/// error, or help and version, which clap reports as errors too) comes back
/// with the arguments as clap saw them, for `finish::usage_error`.
pub fn parse(args: Vec<OsString>) -> Result<Cli, (Vec<OsString>, clap::Error)> {
    let args = with_default_command(args);
    // Rendering run's options takes about three times the instructions of
    // a whole run (callgrind), so only the top level's help pays for it:
    // once `run` is inserted, -h, --help or help at argument 1 asks for it.
    let help = args
        .get(1)
        .is_some_and(|a| ["-h", "--help", "help"].iter().any(|h| a == h));
    let cmd = if help { command() } else { Cli::command() };
    match cmd.try_get_matches_from(&args) {
        Ok(mut matches) => Cli::from_arg_matches_mut(&mut matches).map_err(|e| (args, e)),
        Err(e) => Err((args, e)),
    }
}

/// The whole command line as clap sees it, for help, man pages and shell
/// completions: `Cli` with run's options in the top-level help, since
/// `semprep` alone is `semprep run` and takes them.
pub(crate) fn command() -> clap::Command {
    let top = Cli::command();
    let heading = *top.get_styles().get_header();
    let section = |options: clap::builder::StyledStr, rest: &str| {
        let head = "Options of `semprep run`, which `semprep` alone runs:";
        let mut s = clap::builder::StyledStr::new();
        let _ = write!(s, "{heading}{head}{heading:#}\n{options}\n{rest}");
        s
    };
    let run = || {
        RunArgs::augment_args(clap::Command::new("semprep run"))
            .disable_help_flag(true)
            .help_template("{options}")
    };
    top.after_help(section(run().render_help(), AFTER_HELP))
        .after_long_help(section(run().render_long_help(), AFTER_HELP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn durations() {
        let ok = [
            ("0", 0),
            ("90", 90_000),
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("500ms", 500),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "",
            "-1",
            "5x",
            "m",
            "1.5m",
            "5 m",
            "99999999999999999999",
            "9000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timeouts_leave_time_to_read_the_state() {
        for (text, ms) in [("100ms", 100), ("1s", 1000), ("10s", 10_000)] {
            assert_eq!(parse_timeout(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        for bad in ["0", "0s", "99ms", "1ms", "x", "9000h"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_timeout("0")
                .unwrap_err()
                .contains("from 100ms to 1 year")
        );
    }

    #[test]
    fn bare_invocation_means_run() {
        let argv = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let cases: [(&[&str], &[&str]); 8] = [
            (&["semprep"], &["semprep", "run"]),
            (&["semprep", "-n"], &["semprep", "run", "-n"]),
            (&["semprep", "status"], &["semprep", "status"]),
            (&["semprep", "--help"], &["semprep", "--help"]),
            // A bare word is a (mistyped) command for clap to name.
            (&["semprep", "stauts"], &["semprep", "stauts"]),
            (&["semprep", "help", "run"], &["semprep", "help", "run"]),
            (&["semprep", "--", "x"], &["semprep", "run", "--", "x"]),
            (
                &["semprep", "--daemon", "none"],
                &["semprep", "run", "--daemon", "none"],
            ),
        ];
        for (given, want) in cases {
            assert_eq!(with_default_command(argv(given)), argv(want));
        }
    }
}

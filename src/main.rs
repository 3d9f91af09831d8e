use semprep::cli::{self, Command, Format};

fn main() {
    // clap's usage errors exit 2 (with a JSON document under --json;
    // `check` says UNKNOWN and exits 3); --help and --version exit 0.
    let mut cli = match cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err((args, e)) if args.get(1).is_some_and(|a| a == "check") => {
            std::process::exit(semprep::check::usage_error(&args, e))
        }
        Err((args, e)) => std::process::exit(semprep::finish::usage_error(&args, e)),
    };
    let (out, daemon) = match &mut cli.command {
        Command::Run(a) => (&mut a.output, a.daemon.daemon),
        Command::Exec(a) => (&mut a.run.output, a.run.daemon.daemon),
        Command::Status(a) => (&mut a.output, semprep::daemon::Daemon::None),
        Command::Clean(a) => (&mut a.output, a.daemon.daemon),
        Command::Raise(a) => (&mut a.output, semprep::daemon::Daemon::None),
        Command::Complete(a) => (&mut a.output, semprep::daemon::Daemon::None),
        Command::Check(_) => {
            // A plugin's stdout is its result; its stderr only what failed.
            semprep::logging::init(false, true);
            let code = semprep::run::main(cli);
            semprep::logging::drain();
            std::process::exit(code);
        }
    };
    // `--format json` is `--json`: one document, the same everywhere. An
    // explicit --format wins over --json (or SEMPREP_JSON from a settings
    // file).
    if let Some(f) = out.format {
        out.json = f == Format::Json;
    }
    semprep::report::set_sink(semprep::report::Sink {
        format: out
            .format
            .unwrap_or(if out.json { Format::Json } else { Format::Text }),
        output: out.output.clone(),
        daemon: semprep::metrics::daemon_label(daemon),
    });
    semprep::logging::init(out.verbose, out.quiet);
    let code = semprep::run::main(cli);
    semprep::logging::drain();
    std::process::exit(code);
}

use semprep::cli;

fn main() {
    // The time budget's watchdog writes its run's outcome through a process
    // of its own (metrics::after_watchdog): not a command of the CLI.
    if let Some(code) = semprep::watchdog_outcome(&std::env::args_os().collect::<Vec<_>>()) {
        std::process::exit(code);
    }
    // clap's usage errors exit 2 (with a JSON document under --json;
    // `check` says UNKNOWN and exits 3); --help and --version exit 0.
    let cli = match cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err((args, e)) => std::process::exit(semprep::finish::usage_error(&args, e)),
    };
    // A monitoring plugin's stdout is its result; its stderr only what failed.
    let (verbose, quiet) = cli
        .command
        .output()
        .map_or((false, true), |o| (o.verbose, o.quiet));
    semprep::logging::init(verbose, quiet);
    let code = semprep::run::main(cli);
    semprep::logging::drain();
    std::process::exit(code);
}

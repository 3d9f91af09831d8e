use semprep::cli;

fn main() {
    // clap's usage errors exit 2 (with a JSON document under --json);
    // --help and --version exit 0.
    let cli = match cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err((args, e)) => std::process::exit(semprep::finish::usage_error(&args, e)),
    };
    let out = cli.command.output();
    semprep::logging::init(out.verbose, out.quiet);
    let code = semprep::run::main(cli);
    semprep::logging::drain();
    std::process::exit(code);
}

use semprep::cli::{self, Command};

fn main() {
    // clap's usage errors exit 2 (with a JSON document under --json);
    // --help and --version exit 0.
    let cli = match cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err((args, e)) => std::process::exit(semprep::finish::usage_error(&args, e)),
    };
    let out = match &cli.command {
        Command::Run(a) => &a.output,
        Command::Exec(a) => &a.run.output,
        Command::Status(a) => &a.output,
        Command::Clean(a) => &a.output,
        Command::Raise(a) => &a.output,
    };
    semprep::logging::init(out.verbose, out.quiet);
    let code = semprep::run::main(cli);
    semprep::logging::drain();
    std::process::exit(code);
}

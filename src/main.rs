use clap::Parser;
use semprep::cli::{Cli, Command, with_default_command};

fn main() {
    let args = with_default_command(std::env::args_os().collect());
    // clap's usage errors exit 2 (with a JSON document under --json);
    // --help and --version exit 0.
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => std::process::exit(semprep::finish::usage_error(&args, e)),
    };
    let out = match &cli.command {
        Command::Run(a) => &a.output,
        Command::Exec(a) => &a.run.output,
        Command::Status(a) => &a.output,
        Command::Clean(a) => &a.output,
        Command::Raise(a) => &a.output,
    };
    semprep::logging::init(out.verbose, out.quiet);
    std::process::exit(semprep::run::main(cli));
}

use semprep::cli::{self, Command};

fn main() {
    // clap prints usage errors itself and exits 2; --help and --version exit 0.
    let cli = cli::parse(std::env::args_os().collect());
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

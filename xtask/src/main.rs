//! semprep's build tasks, the `cargo xtask` way: `cargo xtask dist` builds
//! everything semprep ships into `target/dist/` (see packaging/README.md).
//!
//! The man page and the completions are generated from `semprep::cli::Cli`,
//! the same clap definition as `semprep --help`, so they cannot drift from
//! it. The .deb is assembled here and packed with dpkg-deb; the .rpm is built
//! by rpmbuild from `packaging/rpm/semprep.spec` and a source tarball that
//! carries the vendored crates, so a build host without network can rebuild
//! it.

mod completions;
mod deb;
mod licenses;
mod man;
mod rpm;
mod util;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "semprep's build tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build what semprep ships into target/dist/ (default: man, completions, deb, rpm)
    Dist {
        /// What to build; `rpm` also makes the source tarball
        #[arg(value_enum)]
        artifacts: Vec<Artifact>,
    },
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Artifact {
    /// semprep.8, from the clap definition and packaging/man/semprep.8.in
    Man,
    /// completions/ for bash, zsh and fish
    Completions,
    /// semprep_VERSION-REVISION_ARCH.deb (dpkg-deb)
    Deb,
    /// semprep-VERSION.tar.gz: the sources, the vendored crates and the spec
    Tarball,
    /// semprep-VERSION-RELEASE.ARCH.rpm (rpmbuild -ta on the tarball)
    Rpm,
}

/// Where things are: the workspace, its target directory, target/dist.
pub struct Ctx {
    pub root: PathBuf,
    pub target: PathBuf,
    pub dist: PathBuf,
    /// semprep's version, as `semprep --version` prints it.
    pub version: String,
}

impl Ctx {
    fn new() -> Ctx {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask/ lives in the workspace")
            .to_path_buf();
        // cargo resolves a relative CARGO_TARGET_DIR against the directory
        // it runs in, which is the one we run in.
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => std::env::current_dir()
                .expect("current directory")
                .join(dir),
            None => root.join("target"),
        };
        let dist = target.join("dist");
        Ctx {
            root,
            target,
            dist,
            version: man::version(),
        }
    }
}

fn main() -> ExitCode {
    let Task::Dist { mut artifacts } = Args::parse().task;
    if artifacts.is_empty() {
        artifacts = vec![
            Artifact::Man,
            Artifact::Completions,
            Artifact::Deb,
            Artifact::Rpm,
        ];
    }
    let ctx = Ctx::new();
    for artifact in artifacts {
        let built = match artifact {
            Artifact::Man => man::write(&ctx),
            Artifact::Completions => completions::write(&ctx),
            Artifact::Deb => deb::build(&ctx),
            Artifact::Tarball => rpm::tarball(&ctx),
            Artifact::Rpm => rpm::build(&ctx),
        };
        match built {
            Ok(paths) => {
                for p in paths {
                    println!("built {}", p.display());
                }
            }
            Err(e) => {
                eprintln!("cargo xtask dist: error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

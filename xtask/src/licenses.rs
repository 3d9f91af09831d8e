//! The licenses a package must declare: semprep's own (LICENSE-MIT,
//! LICENSE-APACHE) and those of the crates linked into /usr/sbin/semprep.

use crate::Ctx;
use crate::util::{self, Result};
use std::process::Command;

/// semprep's license, as Cargo.toml, the .deb's copyright and the spec's
/// License: say it.
pub const SPDX: &str = "MIT OR Apache-2.0";

/// "name version: license" for each crate linked into the semprep binary
/// (normal dependencies; proc-macros run only at build time), sorted.
pub fn linked_crates(ctx: &Ctx) -> Result<Vec<String>> {
    let tree = util::output(
        Command::new("cargo")
            .args([
                "tree",
                "--locked",
                "-p",
                "semprep",
                "-e",
                "normal,no-proc-macro",
            ])
            .args(["--prefix", "none", "--format", "{p}|{l}"])
            .current_dir(&ctx.root),
    )?;
    let mut crates: Vec<String> = tree
        .lines()
        .filter_map(|line| {
            let (package, license) = line.split_once('|')?;
            let mut words = package.split_whitespace();
            let (name, version) = (words.next()?, words.next()?);
            (name != "semprep").then(|| format!("{name} {version}: {}", license.trim()))
        })
        .collect();
    crates.sort();
    crates.dedup();
    if crates.is_empty() {
        return Err("cargo tree listed no crate linked into semprep".into());
    }
    Ok(crates)
}

/// THIRD-PARTY: the text both packages carry next to the license files.
pub fn third_party(ctx: &Ctx) -> Result<String> {
    let mut text = String::from(
        "The semprep binary links these Rust crates statically; each is\n\
         available under the license shown (SPDX expressions). Their sources\n\
         are in the source tarball's vendor/ directory, or on crates.io.\n\n",
    );
    for c in linked_crates(ctx)? {
        text.push_str(&c);
        text.push('\n');
    }
    Ok(text)
}

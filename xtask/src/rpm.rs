//! The RPM: a source tarball that builds without network (the tree git
//! knows, with packaging/rpm/semprep.spec, plus the vendored crates), then
//! `rpmbuild -ta` on it, exactly what a RHEL or openEuler build host does.

use crate::util::{self, Result};
use crate::{Ctx, licenses};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SPEC: &str = "packaging/rpm/semprep.spec";

pub fn tarball(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    Ok(vec![make_tarball(ctx)?])
}

pub fn build(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    util::need("rpmbuild", "rpm")?;
    let tarball = make_tarball(ctx)?;
    let topdir = ctx.dist.join("rpm/topdir");
    util::clean(&topdir)?;
    let mut rpmbuild = Command::new("rpmbuild");
    rpmbuild
        .arg("-ta")
        .arg(&tarball)
        .arg("--define")
        .arg(format!("_topdir {}", topdir.display()))
        // The Packager tag, set by whoever builds (not in the spec).
        .arg("--define")
        .arg(format!("packager {}", crate::deb::MAINTAINER))
        // The spec's own cargo commands say where to build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    if !rpm_provides(&["cargo", "rust", "gcc"]) {
        // A Debian host: the toolchain is there, but not in an RPM database.
        eprintln!(
            "note: cargo, rust and gcc are not RPM packages here: rpmbuild --nodeps (BuildRequires unchecked)"
        );
        rpmbuild.arg("--nodeps");
    }
    util::run(&mut rpmbuild)?;
    let mut built = Vec::new();
    let rpms = topdir.join("RPMS");
    for dir in read_dir(&rpms)? {
        for rpm in read_dir(&dir)? {
            let dest = ctx.dist.join(rpm.file_name().expect("a file in RPMS/ARCH"));
            fs::copy(&rpm, &dest)
                .map_err(|e| format!("copy {} to {}: {e}", rpm.display(), dest.display()))?;
            built.push(dest);
        }
    }
    if built.is_empty() {
        return Err(format!("rpmbuild left no package in {}", rpms.display()));
    }
    built.push(tarball);
    Ok(built)
}

fn rpm_provides(capabilities: &[&str]) -> bool {
    Command::new("rpm")
        .args(["-q", "--quiet", "--whatprovides"])
        .args(capabilities)
        .status()
        .is_ok_and(|s| s.success())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    Ok(paths)
}

/// target/dist/semprep-VERSION.tar.gz, reproducible: sorted, owned by root,
/// every mtime the last commit's, gzip without a timestamp.
fn make_tarball(ctx: &Ctx) -> Result<PathBuf> {
    for (tool, package) in [("git", "git"), ("tar", "tar"), ("gzip", "gzip")] {
        util::need(tool, package)?;
    }
    let spec = util::read(&ctx.root.join(SPEC))?;
    let spec_version = spec
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(str::trim)
        .ok_or(format!("{SPEC} has no Version: line"))?;
    if spec_version != ctx.version {
        return Err(format!(
            "{SPEC} says Version: {spec_version}, Cargo.toml says {}: make them equal (and add a %changelog entry)",
            ctx.version
        ));
    }
    let name = format!("semprep-{}", ctx.version);
    let stage = ctx.dist.join("rpm/tarball");
    util::clean(&stage)?;
    let top = stage.join(&name);

    // The files git knows, tracked or new (not ignored), as they are now.
    let list = util::output(
        Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(&ctx.root),
    )
    .map_err(|e| format!("{e}: the tarball holds the files of a git checkout"))?;
    for path in list.split('\0').filter(|p| !p.is_empty()) {
        let from = ctx.root.join(path);
        if !from.is_file() {
            continue; // deleted, not yet committed
        }
        let to = top.join(path);
        util::mkdir(to.parent().expect("a path inside the tree"))?;
        fs::copy(&from, &to)
            .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    }
    // rpmbuild -ta finds packaging/rpm/semprep.spec itself (it wants exactly
    // one *.spec in the tarball).
    util::write(&top.join("THIRD-PARTY"), licenses::third_party(ctx)?, 0o644)?;
    // Every crate of the workspace (semprep's and xtask's, for all targets),
    // and a cargo configuration that takes them from vendor/.
    util::run(
        Command::new("cargo")
            .args(["vendor", "--locked", "--versioned-dirs", "--quiet"])
            .arg(top.join("vendor"))
            .current_dir(&ctx.root)
            .stdout(std::process::Stdio::null()),
    )?;
    let config = top.join(".cargo/config.toml");
    let mut text = fs::read_to_string(&config).unwrap_or_default();
    text.push_str(
        "\n# Added by `cargo xtask dist tarball`: build from the vendored crates,\n\
         # without network.\n\
         [source.crates-io]\n\
         replace-with = \"vendored-sources\"\n\n\
         [source.vendored-sources]\n\
         directory = \"vendor\"\n",
    );
    util::write(&config, text, 0o644)?;

    let epoch = util::source_date_epoch(&ctx.root)?;
    let tarball = ctx.dist.join(format!("{name}.tar.gz"));
    util::run(
        Command::new("tar")
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
            .args(["--format=gnu", "--use-compress-program=gzip -9n"])
            .arg(format!("--mtime=@{epoch}"))
            .arg("-C")
            .arg(&stage)
            .arg("-cf")
            .arg(&tarball)
            .arg(&name),
    )?;
    Ok(tarball)
}

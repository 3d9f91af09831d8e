//! target/dist/semprep_VERSION-REVISION_ARCH.deb, assembled here and packed
//! by dpkg-deb (no debian/ source package: the tree is small and this keeps
//! the layout in one readable place). The layout, the hooked units and the
//! maintainer scripts' choices are explained in packaging/README.md.

use crate::util::{self, Result};
use crate::{Ctx, completions, licenses, man};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian revision: the packaging of one upstream version, counted.
const REVISION: u32 = 1;
/// Who answers for the packages: the .deb's Maintainer, the RPM's Packager.
pub const MAINTAINER: &str =
    "semprep maintainers <maintainers@users.noreply.r-seed-0f38ea36.example>";

const DESCRIPTION: &str = "\
clear leaked device-mapper udev cookies before container daemons start
 When dockerd (devicemapper graph driver), iSulad, containerd's devmapper
 snapshotter or LVM is killed in the middle of a device-mapper operation,
 libdevmapper leaves its udev cookie behind: a SysV semaphore set keyed
 0x0d4dXXXX. Once the sets in use reach SEMMNI, the next daemon start fails
 with \"devicemapper: Can't set cookie dm_task_set_cookie failed\".
 .
 semprep runs before docker.service and isulad.service start (systemd
 drop-ins in this package), removes the cookies that are provably dead,
 never anything else, and raises SEMMNI when headroom is still short.
 Wrappers in /usr/libexec/semprep do the same for OpenRC and SysV init.";

/// One file of the package: its path in the installed system, its mode,
/// its bytes.
struct File {
    path: String,
    mode: u32,
    bytes: Vec<u8>,
}

fn file(path: &str, mode: u32, bytes: impl Into<Vec<u8>>) -> File {
    File {
        path: path.to_owned(),
        mode,
        bytes: bytes.into(),
    }
}

pub fn build(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    for (tool, package) in [
        ("dpkg-deb", "dpkg"),
        ("dpkg-shlibdeps", "dpkg-dev"),
        ("gzip", "gzip"),
    ] {
        util::need(tool, package)?;
    }
    util::run(
        Command::new("cargo")
            .args(["build", "--release", "--locked", "--bin", "semprep"])
            .env("CARGO_TARGET_DIR", &ctx.target)
            .current_dir(&ctx.root),
    )?;
    let epoch = util::source_date_epoch(&ctx.root)?;
    let arch = util::output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let version = format!("{}-{REVISION}", ctx.version);

    let work = ctx.dist.join("deb");
    util::clean(&work)?;
    let stage = work.join("debian").join("semprep");
    let files = files(ctx, &version, epoch)?;
    let mut installed_kib = 0;
    let mut md5sums = String::new();
    for f in &files {
        util::write(&stage.join(&f.path), &f.bytes, f.mode)?;
        installed_kib += f.bytes.len().div_ceil(1024);
    }
    // md5sums lists every file but the conffiles, as dh_md5sums does.
    let sums = util::output(
        Command::new("md5sum")
            .args(
                files
                    .iter()
                    .filter(|f| !f.path.starts_with("etc/"))
                    .map(|f| &f.path),
            )
            .current_dir(&stage),
    )?;
    md5sums.push_str(&sums);

    let depends = shlibdeps(&work, &stage.join("usr/sbin/semprep"))?;
    let mut control = String::new();
    writeln!(control, "Package: semprep").unwrap();
    writeln!(control, "Version: {version}").unwrap();
    writeln!(control, "Architecture: {arch}").unwrap();
    writeln!(control, "Maintainer: {MAINTAINER}").unwrap();
    writeln!(control, "Installed-Size: {installed_kib}").unwrap();
    writeln!(control, "Depends: {depends}").unwrap();
    writeln!(control, "Enhances: docker.io, containerd").unwrap();
    writeln!(control, "Section: admin").unwrap();
    writeln!(control, "Priority: optional").unwrap();
    writeln!(control, "Description: {DESCRIPTION}").unwrap();
    let debian = stage.join("DEBIAN");
    util::write(&debian.join("control"), control, 0o644)?;
    let conffiles: String = files
        .iter()
        .filter(|f| f.path.starts_with("etc/"))
        .map(|f| format!("/{}\n", f.path))
        .collect();
    util::write(&debian.join("conffiles"), conffiles, 0o644)?;
    util::write(&debian.join("md5sums"), md5sums, 0o644)?;
    for script in ["postinst", "prerm", "postrm"] {
        let text = util::read(&ctx.root.join("packaging/deb").join(script))?;
        util::write(&debian.join(script), text, 0o755)?;
    }

    let deb = ctx.dist.join(format!("semprep_{version}_{arch}.deb"));
    util::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb)
            // dpkg-deb dates the archive and clamps the files' mtimes to it.
            .env("SOURCE_DATE_EPOCH", epoch.to_string()),
    )?;
    Ok(vec![deb])
}

/// Every file of the .deb. The drop-ins and hooks are the source tree's,
/// with install.sh's /usr/local paths turned into the package's.
fn files(ctx: &Ctx, version: &str, epoch: u64) -> Result<Vec<File>> {
    let src = |p: &str| util::read(&ctx.root.join(p));
    let binary = ctx.target.join("release/semprep");
    let binary = fs::read(&binary).map_err(|e| format!("read {}: {e}", binary.display()))?;
    let mut files = vec![
        file("usr/sbin/semprep", 0o755, binary),
        file("etc/default/semprep", 0o644, src("config/semprep.conf")?),
    ];
    // Hooked by default: docker and isulad (each drop-in is inert where its
    // unit does not exist); containerd's is shipped for the administrator to
    // enable (packaging/README.md says why).
    for unit in ["docker", "isulad"] {
        let dropin = src(&format!("systemd/{unit}.service.d/10-semprep.conf"))?;
        files.push(file(
            &format!("usr/lib/systemd/system/{unit}.service.d/10-semprep.conf"),
            0o644,
            util::package_paths(&dropin),
        ));
    }
    // The metrics timer and its service: shipped, not enabled (README,
    // "Monitoring").
    for unit in ["semprep-metrics.service", "semprep-metrics.timer"] {
        files.push(file(
            &format!("usr/lib/systemd/system/{unit}"),
            0o644,
            util::package_paths(&src(&format!("systemd/{unit}"))?),
        ));
    }
    files.push(file(
        "usr/share/semprep/containerd.service.d/10-semprep.conf",
        0o644,
        util::package_paths(&src("systemd/containerd.service.d/10-semprep.conf")?),
    ));
    files.push(file(
        "usr/libexec/semprep/semprep-hook",
        0o755,
        util::package_paths(&src("hooks/semprep-hook.sh")?),
    ));
    let exec = util::package_paths(&src("hooks/semprep-exec.sh")?);
    for daemon in ["dockerd", "containerd", "isulad"] {
        files.push(file(
            &format!("usr/libexec/semprep/semprep-{daemon}"),
            0o755,
            exec.clone(),
        ));
    }
    let date = util::date(epoch, "%Y-%m-%d")?;
    files.push(file(
        "usr/share/man/man8/semprep.8.gz",
        0o644,
        gzip(man::render(&date).as_bytes())?,
    ));
    for (shell, name) in completions::SHELLS {
        let dir = match shell {
            clap_complete::Shell::Bash => "usr/share/bash-completion/completions",
            // Debian's zsh looks here for packaged completions.
            clap_complete::Shell::Zsh => "usr/share/zsh/vendor-completions",
            _ => "usr/share/fish/vendor_completions.d",
        };
        files.push(file(
            &format!("{dir}/{name}"),
            0o644,
            completions::render(shell),
        ));
    }
    files.push(file(
        "usr/share/doc/semprep/copyright",
        0o644,
        copyright(ctx)?,
    ));
    let changelog = format!(
        "semprep ({version}) unstable; urgency=medium\n\n  \
         * semprep {}, packaged by `cargo xtask dist deb`.\n\n \
         -- {MAINTAINER}  {}\n",
        ctx.version,
        util::date(epoch, "%a, %d %b %Y %H:%M:%S +0000")?
    );
    files.push(file(
        "usr/share/doc/semprep/changelog.Debian.gz",
        0o644,
        gzip(changelog.as_bytes())?,
    ));
    Ok(files)
}

/// debian/copyright in the machine-readable format: semprep's license with
/// the MIT text (Apache-2.0 is in /usr/share/common-licenses), and the
/// statically linked crates in the header's comment.
fn copyright(ctx: &Ctx) -> Result<String> {
    let mit = util::read(&ctx.root.join("LICENSE-MIT"))?;
    let holder = mit
        .lines()
        .find_map(|l| l.strip_prefix("Copyright (c) "))
        .ok_or("LICENSE-MIT has no 'Copyright (c) ' line")?
        .to_owned();
    let mut text = String::from(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: semprep\n\
         Comment: /usr/sbin/semprep links these Rust crates statically; each is\n \
         available under the license shown (SPDX expressions), all of which\n \
         permit distribution under the MIT license:\n .\n",
    );
    for c in licenses::linked_crates(ctx)? {
        writeln!(text, "   {c}").unwrap();
    }
    writeln!(text, "\nFiles: *\nCopyright: {holder}").unwrap();
    // DEP-5 spells the SPDX "OR" in lower case.
    writeln!(
        text,
        "License: {}\n",
        licenses::SPDX.replace(" OR ", " or ")
    )
    .unwrap();
    text.push_str("License: MIT\n");
    let body = mit
        .lines()
        .skip_while(|l| !l.starts_with("Permission is hereby granted"));
    for line in body {
        if line.trim().is_empty() {
            text.push_str(" .\n");
        } else {
            writeln!(text, " {line}").unwrap();
        }
    }
    text.push_str(
        "\nLicense: Apache-2.0\n \
         On Debian systems, the full text of the Apache License, Version 2.0,\n \
         is in /usr/share/common-licenses/Apache-2.0.\n",
    );
    Ok(text)
}

/// `gzip -9n`: no name and no timestamp in the header, so equal input
/// gives equal bytes.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("gzip")
        .arg("-9n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("gzip: {e}"))?;
    writer
        .join()
        .expect("the writer thread does not panic")
        .map_err(|e| format!("gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip failed ({})", out.status));
    }
    Ok(out.stdout)
}

/// The library dependencies, as dpkg-shlibdeps finds them in the binary.
/// It wants a debian/control next to the staged package.
fn shlibdeps(work: &Path, binary: &Path) -> Result<String> {
    util::write(
        &work.join("debian/control"),
        "Source: semprep\n\nPackage: semprep\nArchitecture: any\n",
        0o644,
    )?;
    let out = util::output(
        Command::new("dpkg-shlibdeps")
            .args(["-O", "-e"])
            .arg(binary)
            .current_dir(work),
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .ok_or_else(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {out}"))
}

//! Small helpers: running tools, writing files, the build date.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

pub type Result<T> = std::result::Result<T, String>;

/// Runs `cmd`, echoing it; an error names the command and its status.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", show(cmd)))
    }
}

/// Runs `cmd` and returns its stdout; stderr goes to ours.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", show(cmd), out.status));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{} printed non-UTF-8", show(cmd)))
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// An error naming the missing tool and the Debian package that has it.
pub fn need(tool: &str, package: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(format!(
            "{tool} is not installed (Debian: apt-get install {package})"
        ))
    }
}

/// Writes `contents` to `path` with `mode`, creating the parents (0755).
pub fn write(path: &Path, contents: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        mkdir(dir)?;
    }
    fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// `mkdir -p` with mode 0755 for every directory it creates.
pub fn mkdir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        mkdir(parent)?;
    }
    fs::create_dir(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))
}

pub fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// Removes `dir` and everything in it, if it exists.
pub fn clean(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The time the build is about, for reproducible dates and mtimes:
/// SOURCE_DATE_EPOCH if set, else the last commit's date, else (an unpacked
/// source tarball, whose mtimes are that date) Cargo.toml's mtime.
pub fn source_date_epoch(root: &Path) -> Result<u64> {
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH '{s}' is not a number of seconds"));
    }
    let git = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root)
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = git
        && out.status.success()
        && let Ok(n) = String::from_utf8_lossy(&out.stdout).trim().parse()
    {
        return Ok(n);
    }
    let manifest = root.join("Cargo.toml");
    let mtime = fs::metadata(&manifest)
        .and_then(|m| m.modified())
        .map_err(|e| format!("stat {}: {e}", manifest.display()))?;
    Ok(mtime
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{} is dated before 1970", manifest.display()))?
        .as_secs())
}

/// `date -u -d @EPOCH +FORMAT`.
pub fn date(epoch: u64, format: &str) -> Result<String> {
    Ok(output(
        Command::new("date")
            .arg("-u")
            .arg(format!("--date=@{epoch}"))
            .arg(format!("+{format}")),
    )?
    .trim()
    .to_owned())
}

/// The files from the source tree that name install.sh's default paths,
/// rewritten for a package: /usr/sbin/semprep and /usr/libexec/semprep.
/// packaging/rpm/semprep.spec does the same with sed; tests/sh/70-packages.sh
/// checks that both packages end up with the same bytes.
pub fn package_paths(text: &str) -> String {
    text.replace("/usr/local/sbin/semprep", "/usr/sbin/semprep")
        .replace("/usr/local/libexec/semprep", "/usr/libexec/semprep")
}

//! What semprep logged, and at which priority.

use super::*;
use std::fs::File;
use std::os::unix::fs::MetadataExt;

/// Runs semprep with stderr in a file that JOURNAL_STREAM names, as systemd
/// does, so each line carries its priority: <3> error, <4> warning, <6> info.
pub fn run_journal(sb: &Sandbox, args: &[&str]) -> (i32, String) {
    let path = sb.dir.join("journal");
    let file = File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let o = sb
        .semprep()
        .args(args)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(file)
        .output()
        .unwrap();
    (code(&o), std::fs::read_to_string(&path).unwrap())
}

/// Lines logged as warnings or errors.
pub fn complaints(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.contains("semprep: error:") || l.contains("semprep: warning:"))
        .collect()
}

//! `semprep exec`: replace semprep with the daemon, in the same pid, so no
//! wrapper stays behind and the daemon's signals and exit status are its own.

use crate::lock::LockGuard;
use log::error;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;

/// Execs `program`; returns only on failure, with a shell's exit code:
/// 127 not found, 126 found but not executable.
pub fn exec(program: &[OsString], lock: Option<&LockGuard>) -> i32 {
    let Some((prog, args)) = program.split_first() else {
        error!("exec: no program given after --");
        return 2;
    };
    // The lock's descriptor was made to survive execve when it was taken:
    // the record lock stays with this process, which becomes the program,
    // and its children inherit the descriptor but never the lock. Keeping
    // the guard alive until here means the lock is never released between
    // preparation and exec.
    let _held = lock;
    let err = std::process::Command::new(prog).args(args).exec();
    let code = match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
        _ => 126,
    };
    error!("cannot run {}: {err}", prog.to_string_lossy());
    code
}

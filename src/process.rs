//! Facts about other processes, read from `/proc` and `kill(pid, 0)`.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Whether a process with this pid exists in our pid namespace. EPERM means
/// it exists but belongs to someone else: still alive.
pub(crate) fn alive(pid: i32) -> bool {
    pid > 0 && !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// The process's `comm` (its name, at most 15 bytes), if it can be read.
pub fn comm(pid: i32) -> Option<String> {
    let raw = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(raw.trim_end_matches('\n').to_owned())
}

/// Pids of the processes whose comm is exactly `name`.
pub fn find_by_comm(name: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| comm(pid).as_deref() == Some(name))
        .collect()
}

/// `"pid 123, dockerd"`, or `"pid 123"` when the name cannot be read.
pub(crate) fn describe(pid: i32) -> String {
    match comm(pid) {
        Some(c) => format!("pid {pid}, {c}"),
        None => format!("pid {pid}"),
    }
}

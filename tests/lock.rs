//! The lock (docs/design.md) against real processes, each test in its own
//! IPC namespace: a record lock that belongs to semprep and then to the
//! exec'd program alone, never to its children; lock paths that could turn
//! semprep against the host, refused and left untouched; and no other user
//! able to hold or block the lock.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

// ---------------------------------------------------------------- helpers

/// Spawns `cmd` with stdout piped and returns it with its first line.
fn spawn_line(mut cmd: Command) -> (Proc, String) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let mut line = String::new();
    BufReader::new(p.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (p, line.trim().to_owned())
}

/// A process that is not our child (a daemon's leftover): SIGKILLed on drop.
struct Orphan(i32);

impl Drop for Orphan {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The pid holding a record (POSIX) lock on `path`, from /proc/locks, as
/// `lslocks` shows it.
fn posix_lock_holder(path: &Path) -> Option<i32> {
    let m = std::fs::metadata(path).ok()?;
    let (major, minor) = (libc::major(m.dev()), libc::minor(m.dev()));
    let id = format!("{major:02x}:{minor:02x}:{}", m.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[1] == "POSIX" && f[5] == id)
        .and_then(|f| f[4].parse().ok())
}

/// Content, mtime, inode, owner and mode: everything semprep must not touch.
fn stamp(p: &Path) -> (Vec<u8>, SystemTime, u64, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (
        std::fs::read(p).unwrap(),
        m.modified().unwrap(),
        m.ino(),
        m.uid(),
        m.mode(),
    )
}

/// A file with `content`, `mode` and an old mtime, so a write would show.
fn file_with(path: &Path, content: &str, mode: u32) -> PathBuf {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    path.to_owned()
}

fn dir_with(path: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

/// The three state-changing ways to take the lock, exec'ing `touch marker`.
fn lock_takers(marker: &Path) -> [Vec<String>; 3] {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    [
        s(&["run", "--min-age", "0"]),
        s(&["clean", "--min-age", "0"]),
        s(&[
            "exec",
            "--min-age",
            "0",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ]),
    ]
}

/// An unprivileged user (nobody) trying every way to hold or block the lock
/// at `path`; returns it, still holding what it got, and what it got.
fn attacker(path: &Path) -> (Proc, String) {
    let mut c = Command::new(FIXTURE);
    c.args(["lock-attack", path.to_str().unwrap()]);
    let (p, line) = spawn_line(c);
    let got = line
        .strip_prefix("got: ")
        .unwrap_or_else(|| panic!("lock-attack printed {line:?}"))
        .to_owned();
    (p, got)
}

// ------------------------------------------- the lock is the program's alone

/// The reproduction: the exec'd program exits, leaving a child that
/// inherited the lock's descriptor. The next run takes the lock at once.
#[test]
fn a_leftover_child_holding_the_inherited_descriptor_does_not_hold_the_lock() {
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    let o = sb.run(&[
        "exec",
        "--",
        "sh",
        "-c",
        "sleep 60 >/dev/null 2>&1 & echo $!",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let child = Orphan(stdout(&o).trim().parse().unwrap());
    assert!(
        has_open(child.0, &lock),
        "the leftover child does not have the lock file open: nothing tested"
    );

    let cookies = fixture(&["cookie", "--count", "3"]);
    let o = sb.run(&["clean", "--min-age", "0", "--lock-timeout", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(gone(&cookies));
    assert!(
        has_open(child.0, &lock),
        "the child went away: nothing tested"
    );
}

/// While the program runs, it alone holds the lock: a refused run names it
/// (F_GETLK; the file stays empty), /proc/locks shows it, and a child of
/// it with the descriptor open does not count. Killed with SIGKILL (how
/// daemons crash), it leaves the lock free although the child lives on.
#[test]
fn the_exec_d_program_holds_the_lock_until_it_dies_and_its_child_never() {
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    let mut c = sb.semprep();
    c.args(["exec", "--", "sh", "-c"])
        .arg("sleep 60 >/dev/null 2>&1 & echo $!; exec sleep 60 >/dev/null");
    let (mut program, line) = spawn_line(c);
    let child = Orphan(line.parse().unwrap());
    let pid = program.pid();
    wait_until("the program to become sleep", || {
        semprep::process::comm(pid).as_deref() == Some("sleep")
    });
    assert!(has_open(child.0, &lock), "the child lacks the descriptor");

    let cookies = fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();
    let o = sb.run(&["clean", "--min-age", "0", "--lock-timeout", "200ms"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("is held by pid {pid}, sleep")),
        "the holder is not named: {err}"
    );
    assert_eq!(sysvipc(), ipc);
    assert_eq!(std::fs::metadata(&lock).unwrap().len(), 0, "semprep wrote");
    assert_eq!(posix_lock_holder(&lock), Some(pid), "/proc/locks");

    program.kill(); // SIGKILL
    assert!(
        has_open(child.0, &lock),
        "the child went away: nothing tested"
    );
    let o = sb.run(&["clean", "--min-age", "0", "--lock-timeout", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(gone(&cookies));
}

// -------------------------------------------- lock paths turned on the host

#[test]
fn a_lock_path_on_proc_is_refused_and_the_setting_left_unchanged() {
    let sb = Sandbox::new(); // a private IPC namespace: its own kernel.sem
    sb.limits("250 32000 32 128");
    let cookies = fixture(&["cookie", "--count", "2"]);
    let (sem, ipc) = (kernel_sem(), sysvipc());
    let marker = sb.dir.join("program-ran");
    for args in lock_takers(&marker) {
        let o = sb
            .semprep()
            .args(&args)
            .env("SEMPREP_LOCK_FILE", "/proc/sys/kernel/sem")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(
            err.contains("lock file /proc/sys/kernel/sem: is on proc"),
            "{args:?}: {err}"
        );
        assert_eq!(kernel_sem(), sem, "{args:?} wrote /proc/sys/kernel/sem");
        assert_eq!(sysvipc(), ipc, "{args:?}");
        assert!(!marker.exists(), "{args:?}: the program ran");
    }
    assert!(!gone(&cookies));
}

#[test]
fn a_file_with_content_is_refused_and_never_written() {
    let sb = Sandbox::new();
    let ipc = sysvipc();
    let marker = sb.dir.join("program-ran");
    // A configuration file given by mistake, readable by all or not, and
    // one that merely starts with digits.
    let files = [
        file_with(&sb.dir.join("a.conf"), "SEMPREP_MIN_AGE=5m\n", 0o644),
        file_with(&sb.dir.join("b.conf"), "secret\n", 0o600),
        file_with(&sb.dir.join("c.conf"), "42 # the answer\n", 0o600),
    ];
    for path in &files {
        let before = stamp(path);
        for args in lock_takers(&marker) {
            let o = sb
                .semprep()
                .args(&args)
                .env("SEMPREP_LOCK_FILE", path)
                .output()
                .unwrap();
            let err = stderr(&o);
            let what = format!("{args:?} with lock file {}", path.display());
            assert_eq!(code(&o), 2, "{what}: {err}");
            assert!(err.contains("that semprep did not write"), "{what}: {err}");
            assert_eq!(stamp(path), before, "{what}: the file changed");
            assert_eq!(sysvipc(), ipc, "{what}");
            assert!(!marker.exists(), "{what}: the program ran");
        }
    }
}

/// The upgrade: the lock file an older semprep left (its pid, padded) is
/// used as it is, never rewritten.
#[test]
fn an_older_semprep_s_lock_file_is_used_unchanged() {
    let sb = Sandbox::new();
    let lock = file_with(&sb.lock_path(), &format!("{:<10}\n", 4242), 0o600);
    let before = stamp(&lock);
    let cookies = fixture(&["cookie", "--count", "2"]);
    let o = sb.run(&["clean", "--min-age", "0", "--lock-timeout", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(gone(&cookies));
    assert_eq!(stamp(&lock), before, "the old lock file changed");
}

#[test]
fn a_lock_directory_others_can_write_is_refused() {
    let sb = Sandbox::new();
    let ipc = sysvipc();
    let marker = sb.dir.join("program-ran");
    let sticky = dir_with(&sb.dir.join("sticky"), 0o1777);
    let group = dir_with(&sb.dir.join("group"), 0o775);
    let theirs = dir_with(&sb.dir.join("theirs"), 0o755);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    // Safe itself, but below a directory anyone can rename it out of.
    let open = dir_with(&sb.dir.join("open"), 0o777);
    let below = dir_with(&open.join("below"), 0o755);
    // A link from a safe place into /tmp resolves to /tmp.
    let link = sb.dir.join("link");
    std::os::unix::fs::symlink("/tmp", &link).unwrap();
    let tmp_lock = PathBuf::from(format!("/tmp/semprep-lock-test-{}", std::process::id()));
    let cases = [
        (sticky.join("semprep.lock"), sticky.clone(), "mode 1777"),
        (tmp_lock.join("x.lock"), "/tmp".into(), "mode 1777"),
        (group.join("semprep.lock"), group.clone(), "mode 0775"),
        (
            theirs.join("semprep.lock"),
            theirs.clone(),
            "owned by uid 65534",
        ),
        (below.join("semprep.lock"), open.clone(), "mode 0777"),
        (
            below.join("new/dir/semprep.lock"),
            open.clone(),
            "mode 0777",
        ),
        (link.join("semprep.lock"), "/tmp".into(), "mode 1777"),
    ];
    for (path, dir, why) in &cases {
        for args in lock_takers(&marker) {
            let o = sb
                .semprep()
                .args(&args)
                .env("SEMPREP_LOCK_FILE", path)
                .output()
                .unwrap();
            let err = stderr(&o);
            let what = format!("{args:?} with lock file {}", path.display());
            assert_eq!(code(&o), 2, "{what}: {err}");
            assert!(
                err.contains(&format!("directory {} ", dir.display())) && err.contains(why),
                "{what}: {why:?} about {} missing from {err}",
                dir.display()
            );
            assert!(err.contains("such as /run"), "{what}: no fix named: {err}");
            assert!(!path.exists(), "{what}: the lock file was created");
            assert!(!below.join("new").exists(), "{what}: a directory was made");
            assert!(!tmp_lock.exists(), "{what}: a directory was made in /tmp");
            assert_eq!(sysvipc(), ipc, "{what}");
            assert!(!marker.exists(), "{what}: the program ran");
        }
    }
}

// ---------------------------------------------------------- other users

/// In a directory only root can write, the lock file semprep creates is
/// 0600: nobody can create, open, lock or flock anything there, and the file
/// is never replaced (same inode run after run).
#[test]
fn no_other_user_can_touch_semprep_s_own_lock_file() {
    let sb = Sandbox::new();
    let lock = sb.dir.join("run/semprep.lock");
    let run = || {
        sb.semprep()
            .args(["clean", "--min-age", "0", "--lock-timeout", "0"])
            .env("SEMPREP_LOCK_FILE", &lock)
            .output()
            .unwrap()
    };
    // Before semprep ever ran: the directory is not there yet.
    let o = run();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = std::fs::symlink_metadata(&lock).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777, m.len()), (0, 0o600, 0));
    let d = std::fs::symlink_metadata(lock.parent().unwrap()).unwrap();
    assert_eq!((d.uid(), d.mode() & 0o7777), (0, 0o755));

    let (_nobody, got) = attacker(&lock);
    assert_eq!(got, "nothing", "nobody got hold of the lock file");
    let cookies = fixture(&["cookie", "--count", "2"]);
    let o = run();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("semprep: warning"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("semprep: error"), "{}", stderr(&o));
    assert!(gone(&cookies));
    assert_eq!(std::fs::symlink_metadata(&lock).unwrap().ino(), m.ino());
}

/// A lock file that others could open (an admin's `touch` under umask 022,
/// or a chown) may already be open, locked and flocked by another user:
/// semprep swaps it for a fresh 0600 one and takes the lock at once.
#[test]
fn a_lock_file_others_could_open_is_replaced_and_the_lock_taken_at_once() {
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    for (owner, mode, want) in [
        (
            0,
            0o644,
            "opened it read-only, an fcntl read lock, a flock (shared)",
        ),
        (
            65534,
            0o600,
            "opened it read-only, an fcntl read lock, a flock (shared), \
             opened it read-write, an fcntl write lock",
        ),
    ] {
        file_with(&lock, "", mode);
        std::os::unix::fs::chown(&lock, Some(owner), Some(owner)).unwrap();
        let old = std::fs::metadata(&lock).unwrap().ino();
        let (_nobody, got) = attacker(&lock);
        assert_eq!(got, want, "owner {owner}, mode {mode:o}");

        let cookies = fixture(&["cookie", "--count", "2"]);
        let o = sb.run(&["clean", "--min-age", "0", "--lock-timeout", "0"]);
        let err = stderr(&o);
        assert_eq!(code(&o), 0, "owner {owner}, mode {mode:o}: {err}");
        assert!(gone(&cookies));
        assert!(
            err.contains("semprep: warning: replaced lock file"),
            "not said: {err}"
        );
        let m = std::fs::symlink_metadata(&lock).unwrap();
        assert_ne!(m.ino(), old, "not replaced");
        assert_eq!((m.uid(), m.mode() & 0o7777, m.len()), (0, 0o600, 0));
        let left: Vec<_> = std::fs::read_dir(&sb.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "spare files left behind");
        std::fs::remove_file(&lock).unwrap();
    }
}

/// Runs that start together on a lock file others could open all replace
/// it: still only one holds the lock at a time.
#[test]
fn concurrent_runs_replacing_the_lock_file_stay_mutually_exclusive() {
    let sb = Sandbox::new();
    let lock = sb.lock_path();
    for round in 0..5 {
        file_with(&lock, "", 0o644);
        let cookies: BTreeSet<i32> = fixture(&["cookie", "--count", "2000"])
            .into_iter()
            .collect();
        // Output to files: a run blocked on a full pipe would hold the lock.
        let out = |i: usize, ext: &str| sb.dir.join(format!("run{i}.{ext}"));
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let c = sb
                    .semprep()
                    .args(["run", "--min-age", "0", "--json"])
                    .stdout(File::create(out(i, "out")).unwrap())
                    .stderr(File::create(out(i, "err")).unwrap())
                    .spawn()
                    .unwrap();
                Proc(c)
            })
            .collect();
        let mut removed = Vec::new();
        let mut removers = 0;
        for (i, mut r) in runs.into_iter().enumerate() {
            let status = r.0.wait().unwrap();
            let read = |ext| std::fs::read_to_string(out(i, ext)).unwrap();
            let (json, err) = (read("out"), read("err"));
            let what = format!("round {round}, run {i}");
            assert_eq!(status.code(), Some(0), "{what}: {err}");
            let doc: serde_json::Value = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {err}"));
            assert_eq!(doc["result"]["skipped"], serde_json::json!([]), "{what}");
            let ids: Vec<i32> = doc["result"]["removed"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no result.removed: {err}"))
                .iter()
                .map(|v| v.as_i64().unwrap() as i32)
                .collect();
            removers += usize::from(!ids.is_empty());
            removed.extend(ids);
        }
        let unique: BTreeSet<i32> = removed.iter().copied().collect();
        assert_eq!(removed.len(), unique.len(), "round {round}: removed twice");
        assert!(unique == cookies, "round {round}: removed sets differ");
        assert_eq!(removers, 1, "round {round}: the runs interleaved");
        let m = std::fs::symlink_metadata(&lock).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600, "round {round}");
        std::fs::remove_file(&lock).unwrap();
    }
}

/// Reading a pidfile that is the lock file would close a descriptor of it
/// (dropping the lock), and the persist file is renamed into place: neither
/// may name the lock file, and neither is touched.
#[test]
fn a_pidfile_or_persist_file_that_is_the_lock_file_is_refused() {
    let sb = Sandbox::new();
    let sleeper = Proc(Command::new("sleep").arg("60").spawn().unwrap());
    let pidfile = file_with(
        &sb.dir.join("docker.pid"),
        &format!("{}\n", sleeper.pid()),
        0o600,
    );
    let persist = sb.dir.join("90-semprep.conf");
    let cookies = fixture(&["cookie", "--count", "2"]);
    let cases: [(&Path, &[&str], &str); 3] = [
        (&pidfile, &["--daemon", "docker", "--pidfile"], "--pidfile"),
        (&pidfile, &["--daemon", "isulad", "--pidfile"], "--pidfile"),
        (&persist, &["--persist", "--persist-file"], "--persist-file"),
    ];
    for (path, args, option) in cases {
        let before = std::fs::symlink_metadata(path).ok().map(|_| stamp(path));
        let o = sb
            .semprep()
            .args(["run", "--min-age", "0", "--lock-timeout", "0"])
            .args(args)
            .arg(path)
            .env("SEMPREP_LOCK_FILE", path)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{option}: {err}");
        assert!(
            err.contains(&format!("{option} {} is the lock file", path.display())),
            "{err}"
        );
        if let Some(before) = before {
            assert_eq!(stamp(path), before, "{option}: the file changed");
        }
        assert!(!gone(&cookies), "{option}: cookies removed");
    }
}

/// The upgrade: a daemon started by an older `semprep exec` holds a flock,
/// which a record lock does not see. The daemon liveness check still keeps
/// semprep from removing anything under it.
#[test]
fn an_older_semprep_s_flock_is_not_seen_and_the_liveness_check_protects() {
    let sb = Sandbox::new();
    let lock = file_with(&sb.lock_path(), &format!("{:<10}\n", 4242), 0o600);
    let mut dockerd = named_sleeper(&sb.dir, "dockerd");
    let pidfile = file_with(
        &sb.dir.join("docker.pid"),
        &format!("{}\n", dockerd.pid()),
        0o644,
    );
    let _old = Proc::fixture(&["flock-hold", lock.to_str().unwrap()], true);
    let cookies = fixture(&["cookie", "--count", "2"]);
    let ipc = sysvipc();
    let clean = |daemon: &str| {
        sb.semprep()
            .args(["clean", "--min-age", "0", "--lock-timeout", "0"])
            .args(["--daemon", daemon, "--pidfile"])
            .arg(&pidfile)
            .output()
            .unwrap()
    };
    let o = clean("docker");
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("dockerd (pid"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("lock file"), "{}", stderr(&o));
    assert_eq!(sysvipc(), ipc);

    dockerd.kill();
    let o = clean("docker");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(gone(&cookies));
}

// ------------------------------------------------- more lock paths refused

#[test]
fn unsafe_lock_paths_are_refused_and_left_untouched() {
    let sb = Sandbox::new();
    let cookies = fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let precious = |name: &str| {
        let p = sb.dir.join(name);
        std::fs::write(&p, "precious\n").unwrap();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        p
    };
    let stamp = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (std::fs::read(p).unwrap(), m.modified().unwrap(), m.uid())
    };

    let target = precious("target");
    let link = sb.dir.join("link.lock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let nowhere = sb.dir.join("created-through-a-link");
    let dangling = sb.dir.join("dangling.lock");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    let dir = sb.dir.join("dir.lock");
    std::fs::create_dir(&dir).unwrap();
    let nobody = precious("nobody.lock");
    std::os::unix::fs::chown(&nobody, Some(65534), Some(65534)).unwrap();
    let hard = precious("hard.lock");
    std::fs::hard_link(&hard, sb.dir.join("hard-2")).unwrap();
    let fifo = sb.dir.join("fifo.lock");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let untouched = [&target, &nobody, &hard].map(|p| (p.clone(), stamp(p)));

    let marker = sb.dir.join("program-ran");
    let cases: [(&Path, &str); 6] = [
        (&link, "is a symbolic link"),
        (&dangling, "is a symbolic link"),
        (&dir, "is a directory"),
        (&nobody, "owned by uid 65534"),
        (&hard, "2 hard links"),
        (&fifo, "not a regular file"),
    ];
    for (path, why) in cases {
        for cmd in [
            &["run", "--min-age", "0"][..],
            &["clean", "--min-age", "0"],
            &[
                "exec",
                "--min-age",
                "0",
                "--",
                "touch",
                marker.to_str().unwrap(),
            ],
        ] {
            let o = sb
                .semprep()
                .args(cmd)
                .env("SEMPREP_LOCK_FILE", path)
                .output()
                .unwrap();
            let what = format!("{cmd:?} with lock file {}", path.display());
            assert_eq!(code(&o), 2, "{what}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(&path.display().to_string()), "{what}: {err}");
            assert!(err.contains(why), "{what}: {why:?} missing from {err}");
            assert_eq!(sysvipc(), ipc, "{what}: semaphores changed");
            assert!(!marker.exists(), "{what}: the program ran");
            assert!(!nowhere.exists(), "{what}: created a file through a link");
            for (p, before) in &untouched {
                assert_eq!(&stamp(p), before, "{what}: {} changed", p.display());
            }
        }
    }

    // A missing parent directory is created; the lock file is 0600.
    let fresh = sb.dir.join("new/dir/semprep.lock");
    let o = sb
        .semprep()
        .args(["clean", "--min-age", "0"])
        .env("SEMPREP_LOCK_FILE", &fresh)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = std::fs::symlink_metadata(&fresh).unwrap();
    assert!(m.is_file());
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert!(gone(&cookies));
}

// --------------------------------------------------- waiting for the lock

#[test]
fn the_time_budget_bounds_the_lock_wait() {
    let sb = Sandbox::new();
    fixture(&["cookie", "--count", "3"]);
    let ipc = sysvipc();
    let _holder = Proc::fixture(&["fcntl-hold", sb.lock_path().to_str().unwrap()], true);
    let timed = |args: &[&str]| {
        let t = Instant::now();
        let o = sb.run(args);
        (o, t.elapsed())
    };

    // The hook gives up when its budget runs out, not after the lock wait,
    // says so, and lets the daemon start.
    let (o, took) = timed(&[
        "run",
        "--min-age",
        "0",
        "--lock-timeout",
        "60s",
        "--timeout",
        "2s",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "did not wait: {took:?}"
    );
    let err = stderr(&o);
    let lines = complaints(&err);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--timeout") && l.contains("lock")),
        "{err}"
    );
    assert_eq!(sysvipc(), ipc);

    // The lock wait ends first: still busy, still 0 in hook mode.
    let (o, took) = timed(&["run", "--min-age", "0", "--lock-timeout", "300ms"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        stderr(&o).contains("semprep: error: lock file"),
        "{}",
        stderr(&o)
    );

    // An operator's clean, and a strict hook, report the refusal.
    for args in [
        &[
            "clean",
            "--min-age",
            "0",
            "--lock-timeout",
            "60s",
            "--timeout",
            "1s",
        ][..],
        &["clean", "--min-age", "0", "--lock-timeout", "300ms"],
        &[
            "run",
            "--strict",
            "--min-age",
            "0",
            "--lock-timeout",
            "60s",
            "--timeout",
            "1s",
        ],
    ] {
        let (o, took) = timed(args);
        assert_eq!(code(&o), 4, "{args:?}: {}", stderr(&o));
        assert!(took < Duration::from_secs(6), "{args:?} took {took:?}");
        assert!(
            stderr(&o).contains("semprep: error: lock file"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(sysvipc(), ipc);
}

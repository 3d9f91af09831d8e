//! `--persist` against a local attacker and against kill -9, through the
//! binary: semprep runs as root, and the persist file must never become a
//! way for another user to make root write where they choose
//! (`src/safe_write.rs`; the helper's own tests cover the service
//! directories of later outputs).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
const PRECIOUS: &str = "root:$y$precious:19000:0:99999:7:::\n";
const START: &str = "250 32000 32 100";

/// A root file standing in for /etc/shadow.
fn victim(sb: &Sandbox) -> PathBuf {
    let v = sb.dir.join("shadow");
    std::fs::write(&v, PRECIOUS).unwrap();
    std::fs::set_permissions(&v, PermissionsExt::from_mode(0o640)).unwrap();
    v
}

fn intact(victim: &Path, what: &str) {
    assert_eq!(
        std::fs::read_to_string(victim).unwrap(),
        PRECIOUS,
        "{what}: the victim changed"
    );
}

/// A directory owned by `uid`, its group nobody's (65534).
fn dir(sb: &Sandbox, name: &str, uid: u32, mode: u32) -> PathBuf {
    let d = sb.dir.join(name);
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(uid), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&d, PermissionsExt::from_mode(mode)).unwrap();
    d
}

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// `ln -s TO AT` as nobody, as the attacker does it.
fn symlink_as_nobody(to: &Path, at: &Path) {
    let ok = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "ln",
            "-s",
        ])
        .args([to, at])
        .status()
        .unwrap_or_else(|e| panic!("CANNOT RUN: setpriv (util-linux): {e}"))
        .success();
    assert!(ok, "nobody could not plant {}", at.display());
}

/// The names a semprep run could use as its temporary file: the old fixed
/// one, and the pattern with pids near the next ones. (The random part
/// cannot be guessed: the helper's tests plant under the exact names.)
fn temp_names(target: &str) -> Vec<String> {
    let next = std::process::id();
    let mut v = vec![format!("{target}.semprep-tmp")];
    v.extend((1..6).map(|i| format!(".semprep-tmp-{}-{:016x}", next + i, 0u64)));
    v
}

fn raise(sb: &Sandbox, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["raise", "--semmni", "200", "--persist", "--persist-file"];
    let file = file.to_str().unwrap();
    args.push(file);
    args.extend(extra);
    sb.run(&args)
}

fn sem() -> Vec<String> {
    kernel_sem().split_whitespace().map(String::from).collect()
}

/// The attack from the report, and every variant: a directory owned by
/// nobody (no sticky bit, so fs.protected_symlinks does not help), a sticky
/// world-writable one like /tmp, a group-writable one; links to the victim
/// under every temporary name and under the target's name. semprep refuses
/// before it changes anything: exit 2, kernel.sem as it was, the victim and
/// the directory as they were. --dry-run exits 2 as well.
#[test]
fn persist_into_a_directory_others_can_write_is_refused_before_any_change() {
    let sb = Sandbox::new();
    let v = victim(&sb);
    let mut n = 0;
    for (whose, uid, mode) in [
        ("nobody's", NOBODY, 0o755),
        ("sticky world-writable", 0, 0o1777),
        ("group-writable", 0, 0o775),
    ] {
        for at_target in ["nothing", "a symbolic link", "a hard link"] {
            n += 1;
            let d = dir(&sb, &format!("d{n}"), uid, mode);
            let file = d.join("90-semprep.conf");
            for name in temp_names("90-semprep.conf") {
                symlink_as_nobody(&v, &d.join(name));
            }
            match at_target {
                "a symbolic link" => symlink_as_nobody(&v, &file),
                // By root: with fs.protected_hardlinks=1 nobody may not
                // link a file it cannot write; this is a host without it.
                "a hard link" => std::fs::hard_link(&v, &file).unwrap(),
                _ => {}
            }
            let before = listing(&d);
            let what = format!("{whose} directory, {at_target} at the target");
            for extra in [&["--dry-run"][..], &[]] {
                sb.limits(START);
                let o = raise(&sb, &file, extra);
                let err = stderr(&o);
                assert_eq!(code(&o), 2, "{what} {extra:?}: {err}");
                assert!(
                    err.contains(&format!("--persist-file {}", file.display()))
                        && (err.contains("writable by group or others")
                            || err.contains("owned by uid 65534")),
                    "{what}: {err}"
                );
                assert_eq!(sem(), START.split(' ').collect::<Vec<_>>(), "{what}");
                intact(&v, &what);
                assert_eq!(listing(&d), before, "{what}: the directory changed");
            }
        }
    }
}

/// In root's own directory: a link left under the old fixed temporary
/// name is neither followed nor removed (not semprep's); a symbolic or hard
/// link at the target itself is refused (exit 2) before any change.
#[test]
fn persist_in_roots_directory_replaces_only_a_regular_file() {
    let sb = Sandbox::new();
    let v = victim(&sb);
    let d = dir(&sb, "sysctl.d", 0, 0o755);
    let file = d.join("90-semprep.conf");
    let old_tmp = d.join("90-semprep.conf.semprep-tmp");
    std::os::unix::fs::symlink(&v, &old_tmp).unwrap();
    sb.limits(START);
    let o = raise(&sb, &file, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    intact(&v, "old temporary name");
    let m = std::fs::symlink_metadata(&file).unwrap();
    assert!(m.is_file() && m.mode() & 0o7777 == 0o644 && m.nlink() == 1);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("\nkernel.sem = 250 32000 32 200\n")
    );
    assert_eq!(
        listing(&d),
        BTreeSet::from([
            "90-semprep.conf".into(),
            "90-semprep.conf.semprep-tmp".into()
        ])
    );

    for (what, plant) in [
        (
            "a symbolic link",
            &(|v: &Path, f: &Path| std::os::unix::fs::symlink(v, f))
                as &dyn Fn(&Path, &Path) -> std::io::Result<()>,
        ),
        ("a hard link", &|v: &Path, f: &Path| {
            std::fs::hard_link(v, f)
        }),
    ] {
        std::fs::remove_file(&file).unwrap();
        plant(&v, &file).unwrap();
        sb.limits(START);
        let o = raise(&sb, &file, &[]);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{what}: {err}");
        assert!(
            err.contains(&format!("--persist-file {} ", file.display())),
            "{err}"
        );
        assert_eq!(sem(), START.split(' ').collect::<Vec<_>>(), "{what}");
        intact(&v, what);
    }
}

/// A file name longer than the file system allows is bad input: exit 2
/// before any change, like every other refused --persist-file (it was a
/// failure, exit 1, which the hook turns into 0 with nothing said to fix).
#[test]
fn persist_file_with_a_name_too_long_is_bad_input() {
    let sb = Sandbox::new();
    let d = dir(&sb, "sysctl.d", 0, 0o755);
    let file = d.join(format!("{}.conf", "a".repeat(300)));
    for extra in [&[][..], &["--dry-run"]] {
        sb.limits(START);
        let o = raise(&sb, &file, extra);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{extra:?}: {err}");
        assert!(err.contains("longer than its file system allows"), "{err}");
        assert_eq!(sem(), START.split(' ').collect::<Vec<_>>(), "{extra:?}");
        assert!(listing(&d).is_empty(), "{:?}", listing(&d));
    }
}

fn is_temp(name: &str) -> bool {
    name.starts_with(".semprep-tmp-")
}

/// kill -9 at random moments of `raise --persist`: whatever a killed run
/// leaves is the old file or the new one (never a partial one), plus at
/// most a temporary name of the recognised pattern, which the next run
/// removes. A leftover is also planted as a killed fallback write (no
/// O_TMPFILE) would leave it: the next run removes that too.
#[test]
fn a_killed_persist_leaves_nothing_the_next_run_does_not_remove() {
    let sb = Sandbox::new();
    let d = dir(&sb, "sysctl.d", 0, 0o755);
    let file = d.join("90-semprep.conf");
    let want = |semmni: u32| format!("\nkernel.sem = 250 32000 32 {semmni}\n");
    let written = |semmni: u32| -> bool {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains(&want(semmni)))
    };

    // The leftover of a run killed while writing a named temporary file.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let left = d.join(format!(".semprep-tmp-{dead_pid}-00000000deadbeef"));
    std::fs::write(&left, "# half a file\nkernel.sem = 250").unwrap();
    sb.limits(START);
    let t = Instant::now();
    let o = raise(&sb, &file, &[]);
    let full = t.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(written(200));
    assert_eq!(listing(&d), BTreeSet::from(["90-semprep.conf".into()]));
    assert!(
        stderr(&o).contains("killed while writing"),
        "{}",
        stderr(&o)
    );

    // Real kills, within the span of a whole run.
    let span = full.as_micros() as u64 * 5 / 4 + 1;
    let mut seed = u64::from(std::process::id()) | 1;
    let (mut killed, mut leftovers) = (0, 0);
    for round in 0..40u32 {
        let semmni = 300 + round;
        sb.limits(START);
        let mut c = sb.semprep();
        c.args([
            "raise",
            "--semmni",
            &semmni.to_string(),
            "--persist",
            "--persist-file",
        ])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut p = Proc(c.spawn().unwrap());
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % span));
        let _ = p.0.kill();
        let status = p.0.wait().unwrap();
        killed += usize::from(status.signal() == Some(libc::SIGKILL));
        let when = format!("round {round}, {status:?}");
        let names = listing(&d);
        let temps = names.iter().filter(|n| is_temp(n)).count();
        leftovers += temps;
        assert!(temps <= 1, "{when}: {names:?}");
        assert!(
            names.iter().all(|n| n == "90-semprep.conf" || is_temp(n)),
            "{when}: {names:?}"
        );
        // Old or new, never partial.
        assert!(
            written(semmni - 1) || written(semmni) || round == 0 && written(200),
            "{when}"
        );
        // The next run finishes the job and leaves nothing else.
        sb.limits(START);
        let o = sb.run(&[
            "raise",
            "--semmni",
            &semmni.to_string(),
            "--persist",
            "--persist-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 0, "{when}: {}", stderr(&o));
        assert!(written(semmni), "{when}");
        assert_eq!(
            listing(&d),
            BTreeSet::from(["90-semprep.conf".into()]),
            "{when}"
        );
    }
    eprintln!(
        "a full raise --persist took {full:?}; {killed} of 40 runs killed, {leftovers} \
         temporary names left by them (all removed by the next run)"
    );
}

/// A root whose unit drops CAP_DAC_READ_SEARCH (a hardened
/// CapabilityBoundingSet) still writes the persist file. Before Linux 6.10
/// linking the finished O_TMPFILE file by its descriptor (AT_EMPTY_PATH)
/// needs that capability, and semprep links it through /proc/self/fd
/// instead; since 6.10 the process that opened the file may link it, so on
/// such a kernel this passes without that fallback too.
#[test]
fn persist_without_cap_dac_read_search_still_writes() {
    let sb = Sandbox::new();
    let d = dir(&sb, "sysctl.d", 0, 0o755);
    let file = d.join("90-semprep.conf");
    sb.limits(START);
    let base = sb.semprep();
    let mut c = Command::new("setpriv");
    c.args(["--bounding-set=-dac_read_search", SEMPREP])
        .args(["raise", "--semmni", "200", "--persist", "--persist-file"])
        .arg(&file)
        .envs(base.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("CANNOT RUN: setpriv (util-linux): {e}"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("\nkernel.sem = 250 32000 32 200\n")
    );
    assert_eq!(listing(&d), BTreeSet::from(["90-semprep.conf".into()]));
}

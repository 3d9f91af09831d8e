//! The safe-write helper against a local attacker: directories owned by
//! nobody (uid 65534) or sticky and world-writable, with symbolic and hard
//! links planted under the target's name and under every temporary name
//! the write will try (the tests choose the names), pointing at a root
//! file whose content must never change. These run as root, like the rest
//! of the kernel tests.

use super::*;
use crate::error::Code;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::sync::atomic::{AtomicU32, Ordering};

const NOBODY: u32 = 65534;
const PRECIOUS: &str = "root:$y$precious:19000:0:99999:7:::\n";
const BODY: &[u8] = b"kernel.sem = 250 32000 32 200\n";

fn must_be_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "CANNOT RUN: the safe_write tests create files owned by other users and need \
         root (run tests/run.sh as root, as CI does)"
    );
}

/// A root-owned scratch directory under /run (root's alone, so the chain
/// above each test directory passes), with the attacker's target: a root
/// file standing in for /etc/shadow.
struct Scratch {
    base: PathBuf,
    victim: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        must_be_root();
        static N: AtomicU32 = AtomicU32::new(0);
        let base = PathBuf::from(format!(
            "/run/semprep-safe-write-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, PermissionsExt::from_mode(0o755)).unwrap();
        let victim = base.join("shadow");
        std::fs::write(&victim, PRECIOUS).unwrap();
        std::fs::set_permissions(&victim, PermissionsExt::from_mode(0o640)).unwrap();
        Scratch { base, victim }
    }

    /// A directory `name` with this owner and mode.
    fn dir(&self, name: &str, uid: u32, mode: u32) -> PathBuf {
        let d = self.base.join(name);
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::lchown(&d, Some(uid), None).unwrap();
        std::fs::set_permissions(&d, PermissionsExt::from_mode(mode)).unwrap();
        d
    }

    fn victim_intact(&self, what: &str) {
        let m = std::fs::symlink_metadata(&self.victim).unwrap();
        assert_eq!(
            std::fs::read_to_string(&self.victim).unwrap(),
            PRECIOUS,
            "{what}: the victim's content changed"
        );
        assert_eq!(
            m.mode() & 0o7777,
            0o640,
            "{what}: the victim's mode changed"
        );
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "{what}: the victim's owner changed"
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A symbolic link planted by `uid`.
fn plant_symlink(to: &Path, at: &Path, uid: u32) {
    symlink(to, at).unwrap();
    std::os::unix::fs::lchown(at, Some(uid), None).unwrap();
}

/// What an attacker plants, and where.
#[derive(Clone, Copy, Debug)]
enum Plant {
    Symlink,
    /// Made by root here: with fs.protected_hardlinks=1 (the default) the
    /// kernel would refuse nobody a link to a file it cannot write, so this
    /// stands for a host without that protection.
    Hardlink,
    SymlinkToDir,
    DanglingSymlink,
    Dir,
    Fifo,
}

impl Plant {
    fn at(self, s: &Scratch, path: &Path, uid: u32) {
        match self {
            Plant::Symlink => plant_symlink(&s.victim, path, uid),
            Plant::Hardlink => std::fs::hard_link(&s.victim, path).unwrap(),
            Plant::SymlinkToDir => plant_symlink(&s.base, path, uid),
            Plant::DanglingSymlink => plant_symlink(&s.base.join("created"), path, uid),
            Plant::Dir => {
                std::fs::create_dir(path).unwrap();
                std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
            }
            Plant::Fifo => {
                nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o666)).unwrap();
                std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
            }
        }
    }
}

/// Temporary names the test knows in advance: the write's name source.
fn names(tag: &str) -> impl FnMut() -> String + use<> {
    let mut n = 0u64;
    let pid = std::process::id();
    let tag = tag.len() as u64;
    move || {
        n += 1;
        temp_name(pid, tag << 32 | n)
    }
}

/// Plants symbolic and hard links to the victim under the first 20 names
/// `names` will yield, and the old fixed name `<file>.semprep-tmp`.
fn plant_temp_names(s: &Scratch, dir: &Path, uid: u32, tag: &str) {
    let mut next = names(tag);
    for i in 0..20 {
        let p = dir.join(next());
        if i % 2 == 0 {
            Plant::Symlink.at(s, &p, uid);
        } else {
            Plant::Hardlink.at(s, &p, uid);
        }
    }
    plant_symlink(&s.victim, &dir.join("target.conf.semprep-tmp"), uid);
}

fn write(target: &Path, policy: DirPolicy, tmpfile: bool, tag: &str) -> Result<(), Error> {
    let mut next = names(tag);
    write_with(
        target,
        BODY,
        0o644,
        policy,
        How {
            tmpfile,
            name: &mut next,
            written: &mut || {},
        },
    )
}

#[test]
fn the_directory_rule() {
    let d = |path: &str, uid: u32, mode: u32| Seen {
        path: PathBuf::from(path),
        uid,
        mode,
    };
    let root = |path: &str| d(path, 0, 0o40755);
    use DirPolicy::{RootOnly, ServiceDir};
    let cases: Vec<(DirPolicy, Vec<Seen>, Option<&str>)> = vec![
        (
            RootOnly,
            vec![root("/"), root("/etc"), root("/etc/sysctl.d")],
            None,
        ),
        (
            RootOnly,
            vec![root("/"), d("/srv", NOBODY, 0o40755), root("/srv/x")],
            Some("directory /srv is owned by uid 65534, not root"),
        ),
        (
            RootOnly,
            vec![root("/"), d("/tmp", 0, 0o41777)],
            Some("directory /tmp is writable by group or others (mode 1777)"),
        ),
        (
            RootOnly,
            vec![root("/"), d("/etc", 0, 0o40775)],
            Some("(mode 0775)"),
        ),
        // node_exporter's textfile directory owned by prometheus, and
        // Debian's layout: /var/lib/prometheus is prometheus', the
        // textfile directory below it root's.
        (
            ServiceDir,
            vec![root("/"), root("/var"), d("/var/lib/prom", 110, 0o40755)],
            None,
        ),
        (
            ServiceDir,
            vec![
                root("/"),
                d("/var/lib/prom", 110, 0o40755),
                root("/var/lib/prom/ne"),
            ],
            None,
        ),
        (
            ServiceDir,
            vec![root("/"), d("/a", 110, 0o40755), d("/a/b", 111, 0o40755)],
            Some("semprep accepts one owner besides root"),
        ),
        (
            ServiceDir,
            vec![root("/"), d("/a", 110, 0o40775)],
            Some("writable by group or others (mode 0775)"),
        ),
        (
            ServiceDir,
            vec![root("/"), d("/a", 110, 0o41777)],
            Some("(mode 1777)"),
        ),
        (
            ServiceDir,
            vec![root("/"), d("/tmp", 0, 0o41777)],
            Some("(mode 1777)"),
        ),
    ];
    for (policy, chain, want) in cases {
        let got = judge(&chain, policy, |u| u == 0);
        let shown: Vec<_> = chain.iter().map(|d| d.path.display().to_string()).collect();
        match (want, got) {
            (None, Ok(())) => {}
            (Some(w), Err(e)) => assert!(e.contains(w), "{policy:?} {shown:?}: {e}"),
            (w, g) => panic!("{policy:?} {shown:?}: want {w:?}, got {g:?}"),
        }
    }
}

#[test]
fn temporary_names_are_recognised_exactly() {
    assert_eq!(temp_pid(&temp_name(42, 0xdead_beef)), Some(42));
    assert_eq!(temp_pid(&random_name()), Some(std::process::id()));
    assert_ne!(random_name(), random_name());
    for not_ours in [
        "90-semprep.conf",
        "90-semprep.conf.semprep-tmp",
        ".semprep-tmp-",
        ".semprep-tmp-42",
        ".semprep-tmp--00000000deadbeef",
        ".semprep-tmp-4x-00000000deadbeef",
        ".semprep-tmp-42-00000000deadbee",
        ".semprep-tmp-42-00000000deadbeefX",
        ".semprep-tmp-42-00000000deadbeef.prom",
    ] {
        assert_eq!(temp_pid(not_ours), None, "{not_ours}");
    }
}

/// Every attack under the target's own name, in each kind of directory:
/// refused with exit 2, the victim unchanged, the directory as it was.
#[test]
fn links_and_odd_files_at_the_target_are_refused() {
    let s = Scratch::new();
    let plants = [
        Plant::Symlink,
        Plant::Hardlink,
        Plant::SymlinkToDir,
        Plant::DanglingSymlink,
        Plant::Dir,
        Plant::Fifo,
    ];
    let dirs = [("nobody's", NOBODY, 0o755), ("root's", 0, 0o755)];
    let mut n = 0;
    for (whose, uid, mode) in dirs {
        for policy in [DirPolicy::RootOnly, DirPolicy::ServiceDir] {
            for plant in plants {
                for tmpfile in [true, false] {
                    n += 1;
                    let dir = s.dir(&format!("d{n}"), uid, mode);
                    let target = dir.join("target.conf");
                    plant.at(&s, &target, uid);
                    let before = listing(&dir);
                    let what = format!("{plant:?} in {whose} directory, {policy:?}, {tmpfile}");
                    let e = write(&target, policy, tmpfile, &what)
                        .expect_err(&format!("{what}: written"));
                    assert_eq!(e.code, Code::Usage, "{what}: {e}");
                    s.victim_intact(&what);
                    assert_eq!(listing(&dir), before, "{what}: left something");
                    assert!(!s.base.join("created").exists(), "{what}");
                    let checked = check(&target, policy).expect_err(&what);
                    assert_eq!(checked.code, Code::Usage, "{what}: {checked}");
                }
            }
        }
    }
}

/// Links under every temporary name the write will try: a service
/// directory is written correctly past them, root's outputs are refused
/// in any directory another user can write; never a change to the victim,
/// never a name left behind.
#[test]
fn links_under_the_temporary_names_redirect_nothing() {
    let s = Scratch::new();
    use DirPolicy::{RootOnly, ServiceDir};
    // (whose directory, owner, mode, policy, written?)
    let cases = [
        ("nobody's", NOBODY, 0o755, ServiceDir, true),
        ("root's", 0, 0o755, ServiceDir, true),
        ("root's", 0, 0o755, RootOnly, true),
        ("nobody's", NOBODY, 0o755, RootOnly, false),
        ("sticky world-writable", 0, 0o1777, RootOnly, false),
        ("sticky world-writable", 0, 0o1777, ServiceDir, false),
        (
            "nobody's sticky world-writable",
            NOBODY,
            0o1777,
            ServiceDir,
            false,
        ),
        ("group-writable", NOBODY, 0o775, ServiceDir, false),
    ];
    let mut n = 0;
    for (whose, uid, mode, policy, written) in cases {
        for tmpfile in [true, false] {
            n += 1;
            let dir = s.dir(&format!("d{n}"), uid, mode);
            let what = format!("{whose} directory, {policy:?}, O_TMPFILE {tmpfile}");
            plant_temp_names(&s, &dir, uid, &what);
            let target = dir.join("target.conf");
            let before = listing(&dir);
            let got = write(&target, policy, tmpfile, &what);
            s.victim_intact(&what);
            if written {
                got.unwrap_or_else(|e| panic!("{what}: {e}"));
                let m = std::fs::symlink_metadata(&target).unwrap();
                assert_eq!(std::fs::read(&target).unwrap(), BODY, "{what}");
                assert_eq!(m.mode() & 0o7777, 0o644, "{what}");
                assert_eq!((m.uid(), m.nlink()), (0, 1), "{what}");
                let mut want = before.clone();
                want.insert("target.conf".into());
                assert_eq!(listing(&dir), want, "{what}: left something");
            } else {
                let e = got.expect_err(&format!("{what}: written"));
                assert_eq!(e.code, Code::Usage, "{what}: {e}");
                assert!(
                    e.message.contains("writable by group or others")
                        || e.message.contains("owned by uid 65534"),
                    "{what}: {e}"
                );
                assert_eq!(listing(&dir), before, "{what}: left something");
            }
        }
    }
}

/// With O_TMPFILE the file has no name until it is complete, so a kill
/// during the write and the fsync leaves nothing; without, it has one
/// name of the recognised pattern.
#[test]
fn while_the_contents_are_written_no_name_or_only_a_recognised_one_exists() {
    let s = Scratch::new();
    for tmpfile in [true, false] {
        let dir = s.dir(&format!("t{tmpfile}"), 0, 0o755);
        let target = dir.join("target.conf");
        let mut during = None;
        let mut look = || during = Some(listing(&dir));
        let mut next = names("x");
        write_with(
            &target,
            BODY,
            0o644,
            DirPolicy::RootOnly,
            How {
                tmpfile,
                name: &mut next,
                written: &mut look,
            },
        )
        .unwrap();
        let during = during.expect("the hook did not run");
        if tmpfile {
            assert!(during.is_empty(), "O_TMPFILE: {during:?}");
        } else {
            let names: Vec<_> = during.iter().collect();
            assert_eq!(names.len(), 1, "{names:?}");
            assert_eq!(temp_pid(names[0]), Some(std::process::id()), "{names:?}");
        }
        assert_eq!(listing(&dir), BTreeSet::from(["target.conf".to_owned()]));
    }
}

/// A write that fails after the file has its temporary name (here: the
/// target turned into a directory meanwhile) removes that name.
#[test]
fn a_failed_write_leaves_no_temporary_name() {
    let s = Scratch::new();
    for tmpfile in [true, false] {
        let dir = s.dir(&format!("t{tmpfile}"), 0, 0o755);
        let target = dir.join("target.conf");
        let mut turn = || std::fs::create_dir(&target).unwrap();
        let mut next = names("y");
        let e = write_with(
            &target,
            BODY,
            0o644,
            DirPolicy::RootOnly,
            How {
                tmpfile,
                name: &mut next,
                written: &mut turn,
            },
        )
        .expect_err("written over a directory");
        assert_eq!(e.code, Code::Usage, "{e}");
        assert_eq!(
            listing(&dir),
            BTreeSet::from(["target.conf".to_owned()]),
            "O_TMPFILE {tmpfile}"
        );
    }
}

/// A pid that no process has now: a child that has been reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// What a killed write leaves (a root file of the pattern, one link, its
/// process gone) is removed by the next write into the directory; anything
/// else of the pattern stays: a live writer's, another user's, a link.
#[test]
fn the_next_write_removes_what_a_killed_one_left_and_nothing_else() {
    let s = Scratch::new();
    let dir = s.dir("svc", NOBODY, 0o755);
    let dead = dead_pid();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let left = temp_name(dead, 1);
    std::fs::write(dir.join(&left), "half").unwrap();
    let keep = [
        (temp_name(sleeper.id(), 2), "a live writer's"),
        (temp_name(dead, 3), "nobody's"),
        (temp_name(dead, 4), "a symbolic link"),
        (temp_name(dead, 5), "a hard link"),
        (format!("{}.prom", temp_name(dead, 6)), "not the pattern"),
    ];
    std::fs::write(dir.join(&keep[0].0), "live").unwrap();
    std::fs::write(dir.join(&keep[1].0), "nobody's").unwrap();
    std::os::unix::fs::lchown(dir.join(&keep[1].0), Some(NOBODY), None).unwrap();
    Plant::Symlink.at(&s, &dir.join(&keep[2].0), NOBODY);
    Plant::Hardlink.at(&s, &dir.join(&keep[3].0), NOBODY);
    std::fs::write(dir.join(&keep[4].0), "x").unwrap();
    let target = dir.join("semprep.prom");
    write_atomically(&target, BODY, 0o644, DirPolicy::ServiceDir).unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    s.victim_intact("cleaning");
    let now = listing(&dir);
    assert!(
        !now.contains(&left),
        "the killed run's file stayed: {now:?}"
    );
    for (name, what) in &keep {
        assert!(now.contains(name), "{what} was removed: {now:?}");
    }
    assert_eq!(now.len(), keep.len() + 1, "{now:?}");
}

#[test]
fn missing_directories_root_creates_for_its_own_files_only() {
    let s = Scratch::new();
    let target = s.base.join("a/b/90-semprep.conf");
    check(&target, DirPolicy::RootOnly).unwrap();
    assert!(!s.base.join("a").exists(), "check created a directory");
    let e = check(&target, DirPolicy::ServiceDir).unwrap_err();
    assert_eq!(e.code, Code::Usage, "{e}");
    assert!(e.message.contains("does not exist"), "{e}");
    write_atomically(&target, BODY, 0o644, DirPolicy::RootOnly).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), BODY);
    let m = std::fs::metadata(s.base.join("a/b")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755);
    // Nothing is created below a directory another user can write.
    let open = s.dir("open", NOBODY, 0o755);
    let e = write_atomically(&open.join("c/f"), BODY, 0o644, DirPolicy::RootOnly).unwrap_err();
    assert_eq!(e.code, Code::Usage, "{e}");
    assert!(!open.join("c").exists());
}

#[test]
fn kernel_interface_files_and_directories_are_refused() {
    must_be_root();
    // (target, refusal for root's outputs, for a service's directory)
    for (target, root, service) in [
        (
            "/proc/sys/kernel/semprep.conf",
            "kernel interface",
            "kernel interface",
        ),
        (
            "/proc/sys/kernel/new/semprep.conf",
            "kernel interface",
            "does not exist",
        ),
        (
            "/sys/kernel/semprep.prom",
            "kernel interface",
            "kernel interface",
        ),
        ("/run/", "names a directory", "names a directory"),
    ] {
        for (policy, want) in [
            (DirPolicy::RootOnly, root),
            (DirPolicy::ServiceDir, service),
        ] {
            let path = Path::new(target);
            let e = write_atomically(path, BODY, 0o644, policy).unwrap_err();
            assert_eq!(e.code, Code::Usage, "{target}: {e}");
            assert!(e.message.contains(want), "{target}: {e}");
            let e = check(path, policy).unwrap_err();
            assert!(e.message.contains(want), "check {target}: {e}");
        }
    }
}

/// `update_atomically` reads the old file through the opened directory:
/// what the directory's owner plants at the name (a link to root's file, a
/// FIFO that would block an open forever, a hard link) is refused, never
/// read, followed or waited on, and the victim stays as it was. A huge old
/// file is read only up to `UPDATE_READ_MAX`.
#[test]
fn an_update_reads_only_a_regular_file_and_never_blocks() {
    let s = Scratch::new();
    let dir = s.dir("textfile", NOBODY, 0o755);
    let target = dir.join("hook.prom");
    for plant in [Plant::Symlink, Plant::Fifo, Plant::Hardlink, Plant::Dir] {
        plant.at(&s, &target, NOBODY);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = target.clone();
        std::thread::spawn(move || {
            let r = update_atomically(&t, 0o644, DirPolicy::ServiceDir, true, |old| {
                panic!("{plant:?}: read {} bytes", old.len())
            });
            let _ = tx.send(r);
        });
        // Not a speed assertion: a guard so that a blocked open fails the
        // test instead of hanging it (the thread is left behind).
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{plant:?}: the update blocked"));
        let e = r.unwrap_err();
        assert_eq!(e.code, Code::Usage, "{plant:?}: {e}");
        s.victim_intact(&format!("{plant:?}"));
        match plant {
            Plant::Dir => std::fs::remove_dir(&target).unwrap(),
            _ => std::fs::remove_file(&target).unwrap(),
        }
    }
    // A missing file is empty; the new one has its mode, whatever the old.
    update_atomically(&target, 0o644, DirPolicy::ServiceDir, true, |old| {
        assert!(old.is_empty());
        b"one\n".to_vec()
    })
    .unwrap();
    std::fs::set_permissions(&target, PermissionsExt::from_mode(0o600)).unwrap();
    update_atomically(&target, 0o644, DirPolicy::ServiceDir, false, |old| {
        assert_eq!(old, b"one\n");
        [old, b"two\n"].concat()
    })
    .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"one\ntwo\n");
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o644);
    // A sparse file of a terabyte: the first MiB is read, no more.
    std::fs::File::create(&target)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    update_atomically(&target, 0o644, DirPolicy::ServiceDir, true, |old| {
        assert_eq!(old.len() as u64, UPDATE_READ_MAX);
        b"small\n".to_vec()
    })
    .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"small\n");
    assert_eq!(listing(&dir), BTreeSet::from(["hook.prom".to_owned()]));
}

/// Concurrent updates of one file each keep what the others wrote: the
/// directory's flock serialises read, change and rename. Without it two
/// updaters read the same old file and the later rename drops the earlier
/// one's line (this test then loses lines, run after run).
#[test]
fn concurrent_updates_lose_nothing() {
    let s = Scratch::new();
    let dir = s.dir("textfile", NOBODY, 0o755);
    let target = dir.join("hook.prom");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let target = target.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    update_atomically(&target, 0o644, DirPolicy::ServiceDir, false, |old| {
                        let mut new = old.to_vec();
                        new.extend_from_slice(format!("{t}-{i}\n").as_bytes());
                        new
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(&target).unwrap();
    assert_eq!(text.lines().count(), 100, "lost updates:\n{text}");
    assert_eq!(listing(&dir), BTreeSet::from(["hook.prom".to_owned()]));
}

//! The file rules without the kernel's IPC: which contents are refused, and
//! the swap that replaces a file others could open, including the race
//! where another run replaced it first.

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("semprep-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        Scratch(d)
    }

    fn file(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn only_an_empty_file_or_an_older_semprep_s_pid_is_a_lock_file() {
    let s = Scratch::new("content");
    let cases = [
        ("", true),
        ("4242      \n", true), // what semprep 0.1 wrote
        ("1\n", true),
        ("4242", true),
        ("\n", false),
        ("abc\n", false),
        ("42 # the answer\n", false),
        ("-1\n", false),
        ("SEMMSL=250\n", false),
        (&"1".repeat(33), false),
        ("\u{fffd}\n", false),
    ];
    for (i, (content, ok)) in cases.iter().enumerate() {
        let p = s.file(&format!("f{i}"), content, 0o600);
        let f = File::open(&p).unwrap();
        let r = refuse_content(&f, &f.metadata().unwrap());
        assert_eq!(r.is_ok(), *ok, "{content:?}: {r:?}");
        if let Err(e) = r {
            assert!(e.contains("that semprep did not write"), "{e}");
        }
    }
}

#[test]
fn who_else_could_open_it() {
    let s = Scratch::new("others");
    for (mode, open) in [
        (0o600, false),
        (0o400, false),
        (0o640, true),
        (0o604, true),
        (0o644, true),
    ] {
        let p = s.file(&format!("m{mode:o}"), "", mode);
        let m = std::fs::metadata(&p).unwrap();
        // Owned by whoever runs the tests: root in CI.
        let want = open || m.uid() != 0;
        assert_eq!(open_to_others(&m), want, "mode {mode:o}, uid {}", m.uid());
    }
}

#[test]
fn a_file_others_could_open_is_swapped_for_a_fresh_locked_one() {
    let s = Scratch::new("swap");
    let path = s.file("semprep.lock", "", 0o644);
    let old = std::fs::metadata(&path).unwrap();
    let fresh = replace(&path, &old).unwrap().expect("replaced");
    let now = std::fs::symlink_metadata(&path).unwrap();
    assert!(
        same(&now, &fresh.metadata().unwrap()),
        "the fresh file is not at the path"
    );
    assert!(!same(&now, &old));
    assert_eq!(now.mode() & 0o7777, 0o600);
    assert_eq!(now.len(), 0);
    assert_eq!(
        s.names(),
        ["semprep.lock"],
        "the old file or the spare is left"
    );
    assert!(is_at(&fresh, &path));
}

#[test]
fn a_run_that_lost_the_race_puts_the_winner_s_file_back() {
    let s = Scratch::new("race");
    let path = s.file("semprep.lock", "", 0o644);
    let seen = std::fs::metadata(&path).unwrap();
    // Another run replaced the file this run saw, and may hold the new one.
    let winner = s.file("winner", "", 0o600);
    std::fs::rename(&winner, &path).unwrap();
    let theirs = std::fs::metadata(&path).unwrap();

    assert!(
        replace(&path, &seen).unwrap().is_none(),
        "replaced the winner's file"
    );
    let now = std::fs::symlink_metadata(&path).unwrap();
    assert!(
        same(&now, &theirs),
        "the winner's file is not back at the path"
    );
    assert_eq!(s.names(), ["semprep.lock"], "the spare is left");
}

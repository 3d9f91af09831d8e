//! `semprep complete` on the real kernel, each test in its own IPC
//! namespace: a waiter blocked the way libdm's dm_udev_wait blocks is woken
//! with success and removes its cookie itself; everything else is left
//! alone; `dmsetup udevcomplete_all` on the same state, in a twin
//! namespace, is the contrast (it wakes the waiter with EIDRM and removes
//! what semprep keeps).

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::Command;
use std::time::Duration;

/// A libdm waiter (semfixture udev-wait) on a cookie with one task pending
/// (value 2: the creator's 1 and the task's 1); returns once it blocks.
fn waited_cookie() -> (i32, Proc) {
    let id = fixture(&["cookie", "--state", "ops", "--ops", "1"])[0];
    let mut p = Proc::fixture(&["udev-wait", &id.to_string()], false);
    let mut line = String::new();
    BufReader::new(p.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "waiting");
    wait_until("the waiter to block", || {
        semprep::sysv::get_zcnt(id).ok() == Some(1)
    });
    (id, p)
}

/// The rest of what the waiter printed, once it has exited (or been killed).
fn waiter_says(mut p: Proc) -> (bool, String) {
    let mut rest = String::new();
    p.0.stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    let ok = p.0.wait().unwrap().success();
    (ok, rest.trim().to_owned())
}

struct State {
    stuck: (i32, Proc),
    young: (i32, Proc),
    idle: i32,
    lookalike: (i32, Proc),
}

/// An aged cookie with a waiter, a young one with a waiter, a cookie with
/// no waiter, and a look-alike (nsems 2) with a waiter, all made the same
/// way in whichever namespace calls it. "Aged" is 2 s old: the tests pass
/// --stuck-after 2s.
fn recipe() -> State {
    let stuck = waited_cookie();
    let idle = fixture(&["cookie"])[0];
    let look = fixture(&["lookalike", "nsems2"])[0];
    semprep::sysv::set_val(look, 1).unwrap();
    let look_waiter = Proc::fixture(&["waiter", &look.to_string()], false);
    wait_until("the look-alike's waiter to block", || {
        semprep::sysv::get_zcnt(look).ok() == Some(1)
    });
    std::thread::sleep(Duration::from_millis(2100));
    let young = waited_cookie();
    State {
        stuck,
        young,
        idle,
        lookalike: (look, look_waiter),
    }
}

fn value(id: i32) -> i32 {
    semprep::sysv::get_val(id).unwrap()
}

#[test]
fn complete_wakes_a_stuck_waiter_as_udev_would_and_touches_nothing_else() {
    let sb = Sandbox::new();
    let s = recipe();
    let before = sysvipc_rows();
    let values: Vec<i32> = [s.stuck.0, s.young.0, s.idle].map(value).to_vec();

    // Bad input first: nothing changes, exit 2, the message names the set.
    let bad: [(Vec<String>, &str); 4] = [
        (vec![s.young.0.to_string()], "not stuck"),
        (vec![s.idle.to_string()], "not stuck"),
        (vec![s.lookalike.0.to_string()], "look-alike"),
        (vec!["999999".into()], "is not a dm cookie"),
    ];
    for (args, why) in bad {
        let mut cmd = vec!["complete", "--stuck-after", "2s"];
        cmd.extend(args.iter().map(String::as_str));
        let o = sb.run(&cmd);
        assert_eq!(code(&o), 2, "{cmd:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{cmd:?}: {}", stderr(&o));
    }
    // --force still never completes a look-alike.
    let o = sb.run(&["complete", "--force", &s.lookalike.0.to_string()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // The dry run says what it would do and does nothing.
    let o = sb.run(&["complete", "--stuck", "--stuck-after", "2s", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("would complete semid {} ", s.stuck.0)),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        sysvipc_rows(),
        before,
        "bad input or --dry-run changed something"
    );
    assert_eq!([s.stuck.0, s.young.0, s.idle].map(value).to_vec(), values);

    let o = sb.run(&["complete", "--stuck", "--stuck-after", "2s", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let done: Vec<i64> = doc["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["semid"].as_i64().unwrap())
        .collect();
    assert_eq!(done, vec![i64::from(s.stuck.0)], "{doc}");
    assert_eq!(doc["cookies"][0]["decrements"], 1);

    // The waiter's semop returned 0, and it removed the cookie, as libdm
    // does after a normal completion.
    let (ok, said) = waiter_says(s.stuck.1);
    assert!(ok, "the waiter did not wake with success: {said}");
    assert_eq!(said, "woken: 0");
    wait_until("the waiter to remove its cookie", || {
        !semids().contains(&s.stuck.0)
    });
    // Untouched: the young cookie's waiter, the idle cookie, the look-alike.
    assert_eq!(value(s.young.0), values[1]);
    assert_eq!(semprep::sysv::get_zcnt(s.young.0).unwrap(), 1);
    assert_eq!(value(s.idle), values[2]);
    assert_eq!(semprep::sysv::get_zcnt(s.lookalike.0).unwrap(), 1);
    assert_eq!(semids().len(), 3);
    drop((s.young, s.lookalike));

    // The twin: the same state, and what users do today.
    let _b = Sandbox::new();
    let t = recipe();
    let o = Command::new(which("dmsetup"))
        .args(["udevcomplete_all", "-y"])
        .output()
        .unwrap();
    assert!(o.status.success(), "dmsetup: {}", stderr(&o));
    let (ok, said) = waiter_says(t.stuck.1);
    assert!(!ok, "udevcomplete_all woke the waiter normally: {said}");
    assert!(said.contains("Identifier removed"), "{said}");
    let (ok, said) = waiter_says(t.young.1);
    assert!(!ok && said.contains("Identifier removed"), "young: {said}");
    // It removed every cookie-keyed set, in-flight and look-alike alike.
    assert!(semids().is_empty(), "{}", sysvipc());
    drop(t.lookalike);
}

#[test]
fn complete_needs_root_unless_dry_run() {
    let sb = Sandbox::new();
    let (id, _w) = waited_cookie();
    let o = sb.run_as_nobody(&["complete", "--stuck", "--stuck-after", "0"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("needs root"), "{}", stderr(&o));
    assert_eq!(value(id), 1, "a refused complete changed the cookie");
    // Without root the dry run sees no waiter (root's cookie is mode
    // 0600): nothing is stuck, so nothing would be completed.
    let o = sb.run_as_nobody(&["complete", "--stuck", "--stuck-after", "0", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to complete"), "{}", stdout(&o));
}

/// Every row of /proc/sysvipc/sem without the times, which reads change.
fn sysvipc_rows() -> Vec<String> {
    sysvipc()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(9).collect::<Vec<_>>().join(" "))
        .collect()
}

/// `--force` on a cookie nobody waits on yet (value 1 + 3 tasks) takes the
/// 3 udev would have taken, never its creator's 1: the creator's own
/// dm_udev_wait (semfixture udev-wait: drop the 1 with IPC_NOWAIT, wait for
/// zero) then returns at once with success. A cookie already at its floor
/// (value 1 unwaited, or 0) is left alone, and the report says so instead
/// of "completed".
#[test]
fn forced_complete_leaves_the_creators_own_one_for_its_dm_udev_wait() {
    let sb = Sandbox::new();
    let id = fixture(&["cookie", "--state", "ops", "--ops", "3"])[0];
    assert_eq!(value(id), 4);
    let o = sb.run(&["complete", "--force", &id.to_string(), "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("value 4 to 1"), "{}", stdout(&o));
    assert_eq!(value(id), 4, "--dry-run changed the cookie");
    let o = sb.run(&["complete", "--force", &id.to_string(), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["cookies"][0]["decrements"], 3, "{doc}");
    assert_eq!(doc["cookies"][0]["to"], 1, "{doc}");
    assert_eq!(value(id), 1, "the creator's own 1 was taken");
    let p = Proc::fixture(&["udev-wait", &id.to_string()], false);
    let (ok, said) = waiter_says(p);
    assert!(ok, "the creator's dm_udev_wait failed: {said}");
    assert_eq!(said, "waiting\nwoken: 0");
    assert!(!semids().contains(&id), "{}", sysvipc());

    // At the floor already: nothing to decrement, and no "completed".
    for (state, left) in [("setval", 1), ("waited", 0)] {
        let id = fixture(&["cookie", "--state", state])[0];
        let o = sb.run(&["complete", "--force", &id.to_string()]);
        assert_eq!(code(&o), 0, "{state}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains(&format!("left semid {id} ")), "{state}: {out}");
        assert!(out.contains("no completion is missing"), "{state}: {out}");
        assert!(!stderr(&o).contains("completed"), "{state}: {}", stderr(&o));
        let o = sb.run(&["complete", "--force", &id.to_string(), "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert!(doc["cookies"][0]["skipped"].is_string(), "{state}: {doc}");
        assert_eq!(doc["cookies"][0]["decrements"], 0, "{state}: {doc}");
        assert_eq!(value(id), left, "{state}");
    }
}

/// Under `semprep exec` the daemon holds semprep's lock for its whole life,
/// and the stuck waiter is that daemon: `complete --stuck` (and a named
/// stuck cookie) must not wait for the lock, or it can never wake it. A
/// forced cookie still takes the lock (exit 4 while it is held): two forced
/// runs at once could take its creator's 1.
#[test]
fn completing_a_stuck_cookie_does_not_wait_for_the_daemons_lock() {
    let sb = Sandbox::new();
    let (id, waiter) = waited_cookie();
    let lock = sb.lock_path();
    let _holder = Proc::fixture(&["fcntl-hold", lock.to_str().unwrap()], true);
    std::thread::sleep(Duration::from_millis(2100));
    let forced = fixture(&["cookie", "--state", "ops", "--ops", "2"])[0];
    let o = sb.run(&[
        "complete",
        "--force",
        &forced.to_string(),
        "--lock-timeout",
        "200ms",
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_eq!(value(forced), 3, "a refused complete changed the cookie");

    let o = sb.run(&[
        "complete",
        "--stuck",
        "--stuck-after",
        "2s",
        "--lock-timeout",
        "200ms",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("completed semid {id} ")),
        "{}",
        stdout(&o)
    );
    let (ok, said) = waiter_says(waiter);
    assert!(ok, "the waiter did not wake with success: {said}");
    assert_eq!(said, "woken: 0");
}

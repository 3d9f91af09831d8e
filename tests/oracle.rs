//! Debian's dmsetup as the oracle: semprep must see exactly the cookies it
//! sees, and leave exactly what `udevcomplete_all` leaves, minus what
//! dmsetup wrongly removes (look-alikes, busy cookies).

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::Command;

fn dmsetup(args: &[&str]) -> String {
    let o = Command::new(which("dmsetup")).args(args).output().unwrap();
    assert!(o.status.success(), "dmsetup {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// (semid, key, value) of every row of `dmsetup udevcookies`.
fn dmsetup_cookies() -> BTreeSet<(i64, u32, i64)> {
    dmsetup(&["udevcookies"])
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let key = u32::from_str_radix(f[0].trim_start_matches("0x"), 16).unwrap();
            (f[1].parse().unwrap(), key, f[2].parse().unwrap())
        })
        .collect()
}

fn semprep_cookies(sb: &Sandbox) -> BTreeSet<(i64, u32, i64)> {
    let o = sb.run(&["status", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["schema"], 2);
    doc["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = s["key"].as_str().unwrap().trim_start_matches("0x");
            (
                s["semid"].as_i64().unwrap(),
                u32::from_str_radix(key, 16).unwrap(),
                s["value"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Creates the same mix in any fresh namespace (so the same semids):
/// returns (residual cookies, look-alikes, unrelated sets).
fn mix() -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    let mut cookies = Vec::new();
    let mut lookalikes = Vec::new();
    for state in ["created", "setval", "ops", "completed", "waited"] {
        cookies.extend(fixture(&["cookie", "--count", "4", "--state", state]));
    }
    for kind in ["base0", "nsems2", "mode0666", "nonroot"] {
        lookalikes.extend(fixture(&["lookalike", kind]));
    }
    let unrelated = fixture(&["unrelated", "--count", "6"]);
    (cookies, lookalikes, unrelated)
}

fn set(v: &[i32]) -> BTreeSet<i32> {
    v.iter().copied().collect()
}

#[test]
fn status_lists_exactly_what_dmsetup_lists() {
    let sb = Sandbox::new();
    let (cookies, _, _) = mix();
    let _waiter = Proc::fixture(&["waiter", &cookies[5].to_string()], false);
    let _owner = Proc::fixture(&["hold", &cookies[6].to_string()], true);
    let ours = semprep_cookies(&sb);
    assert_eq!(ours.len(), 24, "20 cookies and 4 prefixed look-alikes");
    assert_eq!(ours, dmsetup_cookies());
}

#[test]
fn clean_leaves_what_udevcomplete_all_leaves_but_the_look_alikes() {
    let a = Sandbox::new();
    let (cookies, lookalikes, unrelated) = mix();
    let o = a.run(&["clean", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let left_by_semprep = set(&semids());
    drop(a);

    let _b = Sandbox::new(); // the twin: same recipe, same semids
    let (cookies_b, lookalikes_b, unrelated_b) = mix();
    assert_eq!(
        (&cookies, &lookalikes, &unrelated),
        (&cookies_b, &lookalikes_b, &unrelated_b)
    );
    dmsetup(&["udevcomplete_all", "-y"]);
    let left_by_dmsetup = set(&semids());

    // Both removed every residual cookie and kept the unrelated sets...
    assert_eq!(left_by_dmsetup, set(&unrelated));
    // ...and the one difference is the look-alikes dmsetup wrongly removed.
    let difference: BTreeSet<i32> = left_by_semprep
        .difference(&left_by_dmsetup)
        .copied()
        .collect();
    assert_eq!(difference, set(&lookalikes));
    assert!(left_by_semprep.is_disjoint(&set(&cookies)));
}

#[test]
fn dmsetup_removes_busy_cookies_that_semprep_keeps() {
    let recipe = || {
        let ids = fixture(&["cookie", "--count", "4"]);
        let waiter = Proc::waiter(ids[0]);
        let owner = Proc::fixture(&["hold", &ids[1].to_string()], true);
        (ids, waiter, owner)
    };
    let a = Sandbox::new();
    let (ids, _w, _o) = recipe();
    assert_eq!(code(&a.run(&["clean", "--min-age", "0"])), 0);
    assert_eq!(
        semids(),
        ids[..2],
        "semprep kept the waited-on and the owned cookie"
    );
    drop(a);

    let _b = Sandbox::new();
    let (ids_b, mut waiter, _o) = recipe();
    dmsetup(&["udevcomplete_all", "-y"]);
    assert_eq!(semids(), Vec::<i32>::new(), "dmsetup removed all {ids_b:?}");
    // The waiter was woken by EIDRM: libdm would have gone on before udev
    // finished. semfixture reports the failed semop.
    let status = waiter.0.wait().unwrap();
    assert!(!status.success(), "the waiter was not woken by the removal");
}

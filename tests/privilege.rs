//! Which privilege semprep needs for what: reading every cookie's waiters
//! and owner needs CAP_IPC_OWNER (or root); changing anything needs root.

mod common;

use common::*;
use semprep::sysv;
use std::process::Command;

/// semprep as nobody with CAP_IPC_OWNER and nothing else (inheritable and
/// ambient, as systemd's `AmbientCapabilities=CAP_IPC_OWNER` gives it).
fn with_ipc_owner(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let base = sb.semprep();
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+ipc_owner",
        "--ambient-caps=+ipc_owner",
        SEMPREP,
    ])
    .args(args);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.output()
        .unwrap_or_else(|e| panic!("CANNOT RUN: setpriv (util-linux): {e}"))
}

#[test]
fn cap_ipc_owner_reads_every_set_but_changes_nothing() {
    let sb = Sandbox::new();
    let waited = fixture(&["cookie"])[0];
    let owned = fixture(&["cookie"])[0];
    let residual = fixture(&["cookie"])[0];
    let _waiter = Proc::fixture(&["waiter", &waited.to_string()], false);
    wait_until("the waiter to block", || {
        sysv::get_zcnt(waited).ok() == Some(1)
    });
    let owner = Proc::fixture(&["hold", &owned.to_string()], true);

    let o = with_ipc_owner(&sb, &["status", "--json", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["privileged"], true, "{doc}");
    let set = |id: i32| {
        doc["sets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["semid"] == id)
            .unwrap_or_else(|| panic!("semid {id} missing: {doc}"))
            .clone()
    };
    assert_eq!(set(waited)["zcnt"], 1, "{doc}");
    assert_eq!(set(owned)["owner"]["state"], "alive", "{doc}");
    assert_eq!(set(owned)["owner"]["pid"], owner.pid(), "{doc}");
    assert_eq!(set(residual)["class"], "residual", "{doc}");

    let text = stdout(&with_ipc_owner(&sb, &["status", "--min-age", "0"]));
    assert!(!text.contains("unreadable"), "{text}");
    assert!(!text.contains("note: neither root"), "{text}");

    let (ipc, sem) = (sysvipc(), kernel_sem());
    for args in [
        &["clean", "--min-age", "0"][..],
        &["raise", "--semmni", "999"],
        &["run", "--min-age", "0"],
    ] {
        let o = with_ipc_owner(&sb, args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("needs root"), "{}", stderr(&o));
        assert_eq!((sysvipc(), kernel_sem()), (ipc.clone(), sem.clone()));
    }
}

/// `status --format prometheus` says whether it could read the cookies'
/// details: without root or CAP_IPC_OWNER every root cookie counts as busy,
/// which an alert would read as "nothing to clean", so
/// `semprep_details_readable` is 0 then (also before any cookie exists:
/// the exporter is misconfigured either way), and 1 with root or
/// CAP_IPC_OWNER alone.
#[test]
fn prometheus_says_whether_the_cookie_details_were_readable() {
    let sb = Sandbox::new();
    let args = ["status", "--format", "prometheus", "--min-age", "0"];
    let as_nobody = |sb: &Sandbox| sb.run_as_nobody(&args);
    let gauge = |o: &std::process::Output, line: &str| {
        assert_eq!(code(o), 0, "{}", stderr(o));
        let text = stdout(o);
        assert!(text.contains(line), "{line} not in:\n{text}");
        assert!(
            text.contains("# HELP semprep_details_readable ")
                && text.contains("# TYPE semprep_details_readable gauge\n"),
            "{text}"
        );
    };
    // No cookie yet: nothing miscounted, but the exporter could not read one.
    gauge(&as_nobody(&sb), "semprep_details_readable 0\n");
    gauge(&sb.run(&args), "semprep_details_readable 1\n");
    fixture(&["cookie", "--count", "3"]);
    let o = as_nobody(&sb);
    gauge(&o, "semprep_details_readable 0\n");
    gauge(&o, "semprep_dm_cookies{class=\"busy\"} 3\n");
    gauge(&o, "semprep_dm_cookies{class=\"residual\"} 0\n");
    for o in [sb.run(&args), with_ipc_owner(&sb, &args)] {
        gauge(&o, "semprep_details_readable 1\n");
        gauge(&o, "semprep_dm_cookies{class=\"residual\"} 3\n");
        gauge(&o, "semprep_dm_cookies{class=\"busy\"} 0\n");
    }
}

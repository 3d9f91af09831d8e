//! Hosts that are not what semprep would like them to be: it runs in a
//! child pid namespace. Each test in its own IPC namespace.

mod common;
use common::*;
use semprep::sysv;
use std::process::{Command, Output};

/// semprep (with `sb`'s settings) inside `wrapper`, e.g. `unshare --pid`.
fn wrapped(sb: &Sandbox, wrapper: &[&str], args: &[&str]) -> Output {
    let inner = sb.semprep();
    let mut c = Command::new(wrapper[0]);
    c.args(&wrapper[1..]).arg(SEMPREP).args(args);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.output().unwrap()
}

const CHILD_PID_NS: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc"];

// ------------------------------------------------------ pid namespaces

/// In a container that shares the host's IPC namespace but not its pids,
/// GETPID reads 0 for every host process: the owner may be alive, so the
/// cookie stays (busy, owner-unseen). From the host's pid namespace
/// nothing changes. A pid the child namespace can see is judged as usual.
#[test]
fn an_owner_outside_our_pid_namespace_keeps_its_cookie() {
    let sb = Sandbox::new();
    let owned = fixture(&["cookie"])[0];
    let owner = Proc::fixture(&["hold", &owned.to_string()], true);
    let orphan = fixture(&["cookie", "--state", "ops"])[0]; // its host pid is dead
    assert_eq!(sysv::get_pid(owned).unwrap(), owner.pid());

    let status = wrapped(&sb, CHILD_PID_NS, &["status", "--min-age", "0"]);
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let text = stdout(&status);
    let unseen = "owner-unseen (semprep runs in a child pid namespace: the last-op pid is not \
                  visible; run it in the host's pid namespace)";
    for id in [owned, orphan] {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no row for {id}:\n{text}"));
        assert!(row.contains("busy") && row.contains(unseen), "{row}");
    }
    for args in [
        &["clean", "--min-age", "0"][..],
        &["run", "--min-age", "0", "--force"],
    ] {
        let o = wrapped(&sb, CHILD_PID_NS, args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(semids(), vec![owned, orphan], "{args:?} removed a cookie");
    }

    // A cookie whose owner lived and died inside the child namespace is
    // seen there, so it is residual as usual.
    let script = "\"$1\" cookie --state ops >/dev/null && shift && exec \"$@\"";
    let mut inside = vec!["unshare", "--pid", "--fork", "--mount-proc"];
    inside.extend(["sh", "-c", script, "sh", FIXTURE]);
    let o = wrapped(&sb, &inside, &["clean", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("removed 1 residual"), "{}", stderr(&o));
    assert_eq!(semids(), vec![owned, orphan]);

    // From the host's pid namespace: the live owner keeps its cookie, the
    // dead one's goes, as before.
    let text = stdout(&sb.run(&["status", "--min-age", "0"]));
    assert!(!text.contains("owner-unseen"), "{text}");
    assert!(
        text.contains(&format!("owner-alive (pid {}, semfixture)", owner.pid())),
        "{text}"
    );
    let o = sb.run(&["clean", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), vec![owned]);
}

//! semprep against the real kernel, each test in its own IPC namespace.

mod common;
use common::*;
use semprep::{apply, plan, snapshot, sysv};

#[test]
fn removes_every_residual_cookie_state() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 128");
    for state in ["created", "setval", "ops", "completed", "waited"] {
        fixture(&["cookie", "--count", "3", "--state", state]);
    }
    assert_eq!(semids().len(), 15);
    let o = sb.run(&["run", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), Vec::<i32>::new());
    assert!(
        stderr(&o).contains("removed 15 residual dm cookies"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn look_alikes_survive_every_mode_and_flag() {
    let sb = Sandbox::new();
    let mut keep = Vec::new();
    for kind in ["base0", "nsems2", "mode0666", "nonroot"] {
        keep.extend(fixture(&["lookalike", kind]));
    }
    keep.extend(fixture(&["unrelated", "--count", "4"])); // IPC_PRIVATE and 0x0d4e keys
    let residual = fixture(&["cookie", "--count", "2"]);
    for args in [
        &["run", "--min-age", "0", "--force"][..],
        &["clean", "--min-age", "0", "--force"],
        &[
            "run",
            "--min-age",
            "0",
            "--policy",
            "clean",
            "--reserve",
            "0",
        ],
    ] {
        let o = sb.run(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(semids(), keep, "{args:?}");
    }
    assert!(residual.iter().all(|id| !semids().contains(id)));
    // status names why each prefixed look-alike is one.
    let text = stdout(&sb.run(&["status"]));
    for why in ["key base 0", "nsems 2", "mode 0666", "owner uid 65534"] {
        assert!(text.contains(why), "{why} missing from:\n{text}");
    }
}

#[test]
fn cookies_with_a_waiter_or_a_live_owner_survive() {
    let sb = Sandbox::new();
    let waited = fixture(&["cookie"])[0];
    let owned = fixture(&["cookie"])[0];
    let residual = fixture(&["cookie"])[0];
    let _waiter = Proc::waiter(waited);
    let mut owner = Proc::fixture(&["hold", &owned.to_string()], true);

    let o = sb.run(&["clean", "--min-age", "0", "--force"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), vec![waited, owned]);
    let status = stdout(&sb.run(&["status", "--min-age", "0"]));
    assert!(status.contains("waiters (1 for zero"), "{status}");
    assert!(status.contains(&format!("owner-alive (pid {}, semfixture)", owner.pid())));
    assert!(!semids().contains(&residual));

    // Once the owner is dead (and reaped), its cookie is residual.
    owner.kill();
    let o = sb.run(&["clean", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), vec![waited]);
}

#[test]
fn young_cookies_survive_the_default_minimum_age() {
    let sb = Sandbox::new();
    let ids = fixture(&["cookie", "--count", "3", "--state", "ops"]);
    let o = sb.run(&["clean"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), ids);
    let status = stdout(&sb.run(&["status"]));
    assert_eq!(status.matches("young (").count(), 3, "{status}");
    // --min-age 90s: still young.
    assert_eq!(code(&sb.run(&["clean", "--min-age", "90s"])), 0);
    assert_eq!(semids(), ids);
}

#[test]
fn dry_run_changes_nothing_at_all() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 64");
    fixture(&["unrelated", "--count", "50"]);
    let cookies = fixture(&["cookie", "--count", "14"]);
    let (ipc, sem) = (sysvipc(), kernel_sem());
    // The exit code is the one the real run would have: clean cannot fix.
    for (args, want) in [
        (&["run", "--dry-run", "--min-age", "0"][..], 0),
        (&["-n", "--min-age", "0", "--policy", "raise"], 0),
        (&["clean", "-n", "--min-age", "0"], 3),
        (&["raise", "-n", "--semmni", "1000"], 0),
        (&["run", "-n", "--json", "--min-age", "0"], 0),
    ] {
        let o = sb.run(args);
        assert_eq!(code(&o), want, "{args:?}: {}", stderr(&o));
        assert_eq!(sysvipc(), ipc, "{args:?} changed /proc/sysvipc/sem");
        assert_eq!(kernel_sem(), sem, "{args:?} changed /proc/sys/kernel/sem");
    }
    assert!(!sb.lock_path().exists(), "a dry run took the lock");
    let o = sb.run(&["-n", "--min-age", "0", "--reserve", "40"]);
    let plan = stdout(&o);
    for id in &cookies {
        assert!(
            plan.contains(&format!("would remove semid {id} key 0x0d4d")),
            "{plan}"
        );
    }
    assert!(
        plan.contains("would raise kernel.sem from \"250 32000 32 64\" to \"250 32000 32 128\""),
        "{plan}"
    );
}

#[test]
fn unrelated_sets_filling_semmni_get_it_raised() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 100");
    fixture(&["unrelated", "--count", "100"]);
    let probe = || {
        std::process::Command::new(FIXTURE)
            .arg("probe")
            .status()
            .unwrap()
            .success()
    };
    assert!(!probe(), "the probe must fail while SEMMNI is full");
    let o = sb.run(&["run", "--persist"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        kernel_sem().split_whitespace().collect::<Vec<_>>(),
        ["250", "32000", "32", "200"]
    );
    assert!(stderr(&o).contains("SEMMNI 100 -> 200"), "{}", stderr(&o));
    assert!(probe(), "semget still fails after the raise");
    assert_eq!(semids().len(), 100);
    let persisted = std::fs::read_to_string(sb.dir.join("90-semprep.conf")).unwrap();
    assert!(
        persisted.contains("\nkernel.sem = 250 32000 32 200\n"),
        "{persisted}"
    );
}

#[test]
fn short_semaphores_raise_semmns() {
    let sb = Sandbox::new();
    sb.limits("250 110 32 32000");
    fixture(&["unrelated", "--count", "100"]);
    let o = sb.run(&["run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        kernel_sem().split_whitespace().collect::<Vec<_>>(),
        ["250", "220", "32", "32000"]
    );
}

#[test]
fn clean_cannot_fix_a_full_table_of_unrelated_sets() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 40");
    fixture(&["unrelated", "--count", "40"]);
    let (ipc, sem) = (sysvipc(), kernel_sem());
    for args in [&["run", "--policy", "clean"][..], &["clean"]] {
        let o = sb.run(args);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("SEMMNI") && err.contains("/proc/sys/kernel/sem"),
            "{err}"
        );
        // The cause the operator chose: the policy, or the command.
        let why = if args[0] == "clean" {
            "`semprep clean` never raises the limit"
        } else {
            "policy clean does not raise"
        };
        assert!(err.contains(why), "{err}");
        assert_eq!(
            (sysvipc(), kernel_sem()),
            (ipc.clone(), sem.clone()),
            "{args:?}"
        );
    }
}

#[test]
fn kernel_maximum_and_explicit_targets() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 32768");
    let sem = kernel_sem();
    for (args, want) in [
        (
            &["raise", "--semmni", "40000"][..],
            "above the kernel's maximum of 32768",
        ),
        (
            &["raise", "--semmni", "5"],
            "below the 10 semaphore sets in use",
        ),
    ] {
        fixture(&["unrelated", "--count", "10"]);
        let o = sb.run(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        assert_eq!(kernel_sem(), sem);
        for id in semids() {
            sysv::remove(id).unwrap();
        }
    }
    sb.limits("250 32000 32 128");
    let o = sb.run(&["raise", "--semmni", "4096"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        kernel_sem()
            .split_whitespace()
            .eq(["250", "32000", "32", "4096"])
    );
    // Never lowered, and said so since it was asked for.
    let o = sb.run(&["raise", "--semmni", "1000"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("SEMMNI is already 4096"),
        "{}",
        stderr(&o)
    );
    assert!(
        kernel_sem()
            .split_whitespace()
            .eq(["250", "32000", "32", "4096"])
    );
}

#[test]
fn non_root_may_look_but_not_change() {
    let sb = Sandbox::new();
    let ids = fixture(&["cookie", "--count", "2"]);
    let (ipc, sem) = (sysvipc(), kernel_sem());
    for args in [
        &["run", "--min-age", "0"][..],
        &["clean"],
        &["raise", "--semmni", "999"],
    ] {
        let o = sb.run_as_nobody(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("needs root"), "{}", stderr(&o));
        assert_eq!((sysvipc(), kernel_sem()), (ipc.clone(), sem.clone()));
    }
    let o = sb.run_as_nobody(&["status", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("unreadable (needs root or CAP_IPC_OWNER)") && text.contains("run as root"),
        "{text}"
    );
    for id in &ids {
        assert!(text.contains(&format!(" {id}  0x0d4d")), "{text}");
    }
    let o = sb.run_as_nobody(&["--dry-run", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("would remove"),
        "unreadable sets must not be planned"
    );
}

fn unix_now() -> i64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    t.unwrap().as_secs() as i64
}

/// `clean --min-age 0 --reserve 0`, for the library-level tests that step
/// between plan and apply.
fn clean_now() -> plan::Params {
    plan::Params {
        policy: plan::Policy::Clean,
        min_age: 0,
        reserve: 0,
        max_semmni: None,
        semmni: None,
    }
}

fn apply_ctx() -> apply::Context<'static> {
    apply::Context {
        min_age: 0,
        now: &unix_now,
        deadline: None,
        sem_path: std::path::Path::new("/proc/sys/kernel/sem"),
        persist: None,
    }
}

/// The snapshot's two ways of reading: every detail up front (status,
/// --dry-run, --json), or waiters and owners left to the re-check (what
/// prints no per-set detail). The re-check must keep every guarantee in both.
const BOTH_READS: [snapshot::ReadOptions; 2] = [
    snapshot::ReadOptions {
        values: false,
        defer_details: false,
    },
    snapshot::ReadOptions {
        values: false,
        defer_details: true,
    },
];

/// Between plan and apply: the set vanishes and its slot is reused, a waiter
/// arrives, or someone operates on it. Each is skipped, never an error.
#[test]
fn apply_rechecks_each_set_by_semid() {
    for opts in BOTH_READS {
        rechecks_each_set_by_semid(opts);
    }
}

fn rechecks_each_set_by_semid(opts: snapshot::ReadOptions) {
    let sb = Sandbox::new();
    let ids = fixture(&["cookie", "--count", "3"]);
    let snap = snapshot::read(opts).unwrap();
    let p = plan::plan(&snap, &clean_now(), unix_now()).unwrap();
    assert_eq!(p.remove, ids);

    // ids[0]: removed, and a newcomer takes its slot: same index, next
    // sequence number. The kernel allocates indices cyclically, so force the
    // reuse with sem_next_id (the checkpoint/restore sysctl).
    sysv::remove(ids[0]).unwrap();
    std::fs::write("/proc/sys/kernel/sem_next_id", (ids[0] + 32768).to_string()).unwrap();
    let newcomer = fixture(&["cookie"])[0];
    assert_eq!(newcomer, ids[0] + 32768, "the slot was not reused");
    // ids[1]: a waiter arrives. ids[2]: someone operates on it.
    let _waiter = Proc::waiter(ids[1]);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // otime has 1 s resolution
    sysv::semop(ids[2], 1, 0).unwrap();

    let done = apply::apply(&snap, &p, &apply_ctx()).unwrap();
    assert_eq!(done.removed, Vec::<i32>::new());
    let why: Vec<(i32, &str)> = done
        .skipped
        .iter()
        .map(|s| (s.semid, s.why.as_str()))
        .collect();
    assert_eq!(why[0], (ids[0], "gone before removal"));
    assert!(why[1].1.starts_with("waiters"), "{why:?}");
    assert_eq!(why[2], (ids[2], "used since it was read"));
    assert_eq!(semids(), vec![ids[1], ids[2], newcomer]);
    drop(sb);
}

/// Every candidate turns out busy at its removal: a live process had
/// operated on some before the scan (which, deferring the details, cannot
/// tell), a waiter arrives on others after it, and a live process operates
/// on the rest after it. The plan, knowing only shape and age, predicted
/// every removal and no raise; nothing is removed, and the raise is decided
/// from the usage the removals really left.
#[test]
fn candidates_found_busy_at_removal_are_kept_and_the_raise_follows_the_real_usage() {
    let sb = Sandbox::new();
    // 12 cookies in SEMMNI 16 with a reserve of 8: short now, and enough
    // (16 free) if all were removed. Kept, they need SEMMNI 32.
    sb.limits("250 32000 32 16");
    let ids = fixture(&["cookie", "--count", "12"]);
    let (owned, waited, used) = (&ids[0..4], &ids[4..8], &ids[8..12]);
    let hold = |sets: &[i32]| {
        let mut args = vec!["hold".to_owned()];
        args.extend(sets.iter().map(i32::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::fixture(&args, true)
    };
    let owner = hold(owned);
    let rules = plan::Params {
        policy: plan::Policy::Auto,
        min_age: 0,
        reserve: 8,
        max_semmni: None,
        semmni: None,
    };
    let snap = snapshot::read(BOTH_READS[1]).unwrap();
    let p = plan::plan(&snap, &rules, unix_now()).unwrap();
    assert!(p.sets.iter().all(|e| e.class == plan::Class::Candidate));
    assert_eq!(p.remove, ids);
    assert_eq!(
        p.raise, None,
        "the prediction: 16 free once all are removed"
    );
    assert_eq!(p.verdict, plan::Verdict::Fixed);

    let waiters: Vec<Proc> = waited.iter().map(|&id| Proc::waiter(id)).collect();
    let user = hold(used);
    let done = apply::apply(&snap, &p, &apply_ctx()).unwrap();
    assert_eq!(done.removed, Vec::<i32>::new());
    let why = |sets: &[i32]| -> Vec<String> {
        let mut v: Vec<(i32, String)> = done
            .skipped
            .iter()
            .filter(|s| sets.contains(&s.semid))
            .map(|s| (s.semid, s.why.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, w)| w).collect()
    };
    let alive = format!("owner-alive (pid {}, semfixture)", owner.pid());
    assert_eq!(why(owned), vec![alive; 4]);
    assert!(
        why(waited)
            .iter()
            .all(|w| w == "waiters (1 for zero, 0 for increase)"),
        "{:?}",
        done.skipped
    );
    // The live process's semop changed otime: used since the scan.
    assert_eq!(why(used), vec!["used since it was read"; 4]);
    assert_eq!(done.usage, Some((12, 12)));
    assert_eq!(
        done.raised.map(|l| l.to_string()).as_deref(),
        Some("250 32000 32 32"),
        "SEMMNI from the 12 sets really in use (20 needed, doubled 16)"
    );
    assert!(
        kernel_sem()
            .split_whitespace()
            .eq(["250", "32000", "32", "32"])
    );
    assert_eq!(semids(), ids);
    drop((user, owner, waiters));

    // The same through `semprep run`, whose snapshot defers the details
    // because it prints none: busy before it starts, kept, and the raise
    // made from what is really left. (Deciding from the prediction, it
    // would raise nothing and exit 3.)
    sb.limits("250 32000 32 16");
    let _owner = hold(&ids[0..6]);
    let _waiters: Vec<Proc> = ids[6..].iter().map(|&id| Proc::waiter(id)).collect();
    let o = sb.run(&["run", "--min-age", "0", "--reserve", "8"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains("skipped 12 sets: busy when re-checked"),
        "{err}"
    );
    assert!(
        err.contains("raised kernel.sem from \"250 32000 32 16\" to \"250 32000 32 32\""),
        "{err}"
    );
    assert_eq!(semids(), ids);
}

/// In a container /proc/sys is read-only: the raise is refused, and with
/// headroom short that means the daemon certainly cannot start (exit 3,
/// with both causes named), even in hook mode.
#[test]
fn read_only_proc_sys_means_short_not_a_crash() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 40");
    fixture(&["unrelated", "--count", "40"]);
    // This namespace's kernel.sem, bind-mounted read-only over itself.
    let o = sb
        .semprep_with_kernel_sem(std::path::Path::new("/proc/sys/kernel/sem"), true)
        .arg("run")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 3, "{err}");
    assert!(err.contains("cannot raise the limits"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(err.contains("headroom still short"), "{err}");
    // The cause is the read-only file system, and what to do is said: not
    // the kernel's maximum, which was never reached.
    assert!(
        err.contains("/proc/sys/kernel/sem is on a read-only file system")
            && err.contains("raise kernel.sem from the host"),
        "{err}"
    );
    assert!(!err.contains("kernel's maximum"), "{err}");
    assert_eq!(semids().len(), 40);
    assert!(
        kernel_sem()
            .split_whitespace()
            .eq(["250", "32000", "32", "40"])
    );
}

#[test]
fn status_summary_line() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 128");
    fixture(&["cookie", "--count", "117"]);
    let busy = fixture(&["cookie", "--count", "3"]);
    fixture(&["unrelated", "--count", "8"]);
    let _held: Vec<Proc> = busy
        .iter()
        .map(|id| Proc::fixture(&["hold", &id.to_string()], true))
        .collect();
    let o = sb.run(&["status", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_owned();
    assert_eq!(
        last,
        "semaphore sets 128/128 (100%): 120 dm cookies (117 residual, 3 busy); semaphores 128/32000"
    );
}

/// The same re-check at a scale where the snapshot and the removals run on
/// several threads: every changed set is skipped wherever it falls, every
/// other cookie is removed exactly once, look-alikes survive.
#[test]
fn parallel_read_and_removal_keep_every_guarantee() {
    for opts in BOTH_READS {
        parallel_keeps_every_guarantee(opts);
    }
}

fn parallel_keeps_every_guarantee(opts: snapshot::ReadOptions) {
    let sb = Sandbox::new();
    let ids = fixture(&["cookie", "--count", "12000"]);
    let lookalikes = fixture(&["lookalike", "nsems2", "--count", "50"]);
    let busy = ids[11_000];
    let _early_waiter = Proc::waiter(busy);

    let snap = snapshot::read(opts).unwrap();
    assert_eq!(
        snap.sets.len(),
        12_050,
        "the parallel snapshot lost or doubled sets"
    );
    let p = plan::plan(&snap, &clean_now(), unix_now()).unwrap();
    // Deferred details: the early waiter is a candidate until re-checked.
    let deferred = opts.defer_details;
    assert_eq!(p.remove.len(), if deferred { 12_000 } else { 11_999 });
    assert_eq!(p.remove.contains(&busy), deferred);

    // Changes between plan and apply, in both halves of the work.
    let (gone, waited, used) = ([10, 9_000], [20, 9_500], [30, 11_500]);
    for i in gone {
        sysv::remove(ids[i]).unwrap();
    }
    let _waiters: Vec<Proc> = waited.iter().map(|&i| Proc::waiter(ids[i])).collect();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // otime has 1 s resolution
    for i in used {
        sysv::semop(ids[i], 1, 0).unwrap();
    }

    let done = apply::apply(&snap, &p, &apply_ctx()).unwrap();
    let mut skipped: Vec<i32> = done.skipped.iter().map(|s| s.semid).collect();
    skipped.sort();
    let mut want: Vec<i32> = [gone, waited, used]
        .concat()
        .iter()
        .map(|&i| ids[i])
        .collect();
    if deferred {
        want.push(busy);
    }
    want.sort();
    assert_eq!(skipped, want);
    assert_eq!(done.removed.len(), 11_999 - 6);
    let mut removed = done.removed.clone();
    removed.sort();
    removed.dedup();
    assert_eq!(removed.len(), done.removed.len(), "a set was removed twice");
    let mut left: Vec<i32> = [waited, used].concat().iter().map(|&i| ids[i]).collect();
    left.push(busy);
    left.extend(&lookalikes);
    left.sort();
    assert_eq!(semids(), left);
    drop(sb);
}

/// A /proc/sys/kernel/sem semprep cannot understand is bad input: exit 2,
/// naming the file and the field, nothing changed, in every mode. (A file
/// bind-mounted over it in a private mount namespace stands in for a
/// kernel that prints something unexpected.)
#[test]
fn malformed_kernel_sem_is_refused() {
    let sb = Sandbox::new();
    let ids = fixture(&["cookie", "--count", "3"]);
    let fake = sb.dir.join("sem");
    for (content, want) in [
        ("250 32000 32\n", "expected 4 numbers"),
        ("250 32000 x 128\n", "SEMOPM is \"x\""),
        ("250 32000 32 99999999999\n", "SEMMNI is \"99999999999\""),
    ] {
        std::fs::write(&fake, content).unwrap();
        for args in [
            &["run", "--min-age", "0"][..],
            &["status"],
            &["clean", "-n"],
        ] {
            let o = sb
                .semprep_with_kernel_sem(&fake, false)
                .args(args)
                .output()
                .unwrap();
            let err = stderr(&o);
            assert_eq!(code(&o), 2, "{content:?} {args:?}: {err}");
            assert!(
                err.contains("malformed /proc/sys/kernel/sem") && err.contains(want),
                "{err}"
            );
            assert_eq!(semids(), ids, "{content:?} {args:?} changed the sets");
        }
    }
}

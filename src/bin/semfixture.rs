//! semfixture: creates the semaphore states semprep's tests and benchmarks
//! need, the way libdm does, in the caller's IPC namespace. Not installed;
//! never run it outside a private IPC namespace (`unshare --ipc`).
//!
//! Commands (one per line of output where it prints semids):
//!   cookie [--count N] [--state S] [--ops K]   libdm cookies; S is one of
//!       created (semget only), setval (value 1, never operated: what
//!       `dmsetup udevcreatecookie` leaves), ops (value 1+K), completed
//!       (udev's -1 done: value 1), waited (value 0)
//!   lookalike KIND [--count N]   prefix-keyed sets that are not cookies:
//!       base0, nsems2, mode0666, nonroot (created as uid 65534)
//!   unrelated [--count N]        sets without the dm prefix, nothing to
//!       do with device-mapper: IPC_PRIVATE and keys 0x0D4E…
//!   waiter SEMID                 block in a wait-for-zero semop
//!   udev-wait SEMID              libdm's dm_udev_wait: drop the creator's 1
//!       (IPC_NOWAIT), print "waiting", wait for zero, print "woken: 0" and
//!       remove the set as libdm does; or print "woken: ERROR", exit 1
//!   hold SEMID...                do a +1 semop on each, print "ready", sleep
//!       (a live owner of every one)
//!   probe                        need one set and one semop, as a daemon would
//!   count                        print the sets in use
//!   flock-hold PATH | fcntl-hold PATH   hold a lock, print "ready", sleep
//!   lock-attack PATH             as uid/gid 65534 (nobody), no groups: try
//!       to create PATH or a file beside it, open it, fcntl-lock and flock
//!       it; print "got: WHAT, ..." (or "got: nothing"), hold it all, sleep

use semprep::snapshot::DM_COOKIE_MAGIC;
use semprep::sysv;
use std::io::Write;

const CREATE: i32 = libc::IPC_CREAT | libc::IPC_EXCL;

struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Rng(t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn die(msg: String) -> ! {
    eprintln!("semfixture: {msg}");
    std::process::exit(1)
}

fn ok<T>(what: &str, r: std::io::Result<T>) -> T {
    r.unwrap_or_else(|e| die(format!("{what}: {e}")))
}

/// semget with a random key `prefix << 16 | base`, base != 0, retrying on
/// EEXIST as libdm does.
fn create(rng: &mut Rng, prefix: u32, nsems: i32, mode: i32) -> i32 {
    loop {
        let base = (rng.next() % 0xffff + 1) as u32;
        let key = (prefix << 16 | base) as i32;
        match sysv::semget(key, nsems, mode | CREATE) {
            Ok(id) => return id,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => die(format!("semget(0x{key:08x}): {e}")),
        }
    }
}

fn flag(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn number(args: &[String], name: &str, default: &str) -> i64 {
    let v = flag(args, name, default);
    v.parse()
        .unwrap_or_else(|_| die(format!("{name}: not a number: {v}")))
}

fn cookie(args: &[String], out: &mut impl Write) {
    let state = flag(args, "--state", "setval");
    let ops = number(args, "--ops", "1");
    let mut rng = Rng::new();
    for _ in 0..number(args, "--count", "1") {
        let id = create(&mut rng, DM_COOKIE_MAGIC, 1, 0o600);
        let op = |v: i16| ok("semop", sysv::semop(id, v, libc::IPC_NOWAIT as i16));
        match state.as_str() {
            "created" => {}
            "setval" => ok("SETVAL", sysv::set_val(id, 1)),
            "ops" => {
                ok("SETVAL", sysv::set_val(id, 1));
                (0..ops).for_each(|_| op(1));
            }
            "completed" | "waited" => {
                ok("SETVAL", sysv::set_val(id, 1));
                op(1); // the owner's task
                op(-1); // udev's `dmsetup udevcomplete`
                if state == "waited" {
                    op(-1); // dm_udev_wait drops the owner's 1 and waits for 0
                }
            }
            other => die(format!("unknown --state {other}")),
        }
        let _ = writeln!(out, "{id}");
    }
}

fn lookalike(args: &[String], out: &mut impl Write) {
    let kind = args.first().map(String::as_str).unwrap_or("");
    let mut rng = Rng::new();
    if kind == "nonroot" {
        let nobody = nix::unistd::Uid::from_raw(65534);
        ok(
            "setresuid",
            nix::unistd::setresuid(nobody, nobody, nobody).map_err(Into::into),
        );
    }
    for _ in 0..number(args, "--count", "1") {
        let id = match kind {
            "base0" => ok(
                "semget base 0",
                sysv::semget((DM_COOKIE_MAGIC << 16) as i32, 1, 0o600 | CREATE),
            ),
            "nsems2" => create(&mut rng, DM_COOKIE_MAGIC, 2, 0o600),
            "mode0666" => create(&mut rng, DM_COOKIE_MAGIC, 1, 0o666),
            "nonroot" => create(&mut rng, DM_COOKIE_MAGIC, 1, 0o600),
            other => die(format!("unknown look-alike {other:?}")),
        };
        let _ = writeln!(out, "{id}");
    }
}

fn unrelated(args: &[String], out: &mut impl Write) {
    let mut rng = Rng::new();
    for i in 0..number(args, "--count", "1") {
        let id = if i % 2 == 0 {
            ok("semget", sysv::semget(libc::IPC_PRIVATE, 1, 0o600))
        } else {
            create(&mut rng, 0x0D4E, 1, 0o600) // one off the dm prefix
        };
        let _ = writeln!(out, "{id}");
    }
}

fn sleep_forever(ready: &str) -> ! {
    println!("{ready}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// An unprivileged user's every way to hold or block semprep's lock.
fn lock_attack(path: &str) -> ! {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::unistd::{Gid, Uid};
    let (uid, gid) = (Uid::from_raw(65534), Gid::from_raw(65534));
    ok("setgroups", nix::unistd::setgroups(&[]).map_err(Into::into));
    ok(
        "setresgid",
        nix::unistd::setresgid(gid, gid, gid).map_err(Into::into),
    );
    ok(
        "setresuid",
        nix::unistd::setresuid(uid, uid, uid).map_err(Into::into),
    );
    let mut got = Vec::new();
    let mut keep = Vec::new(); // closing a descriptor would drop its locks
    let beside = format!("{path}.attack");
    for (what, p) in [
        ("created the lock file", path),
        ("created a file beside it", &beside),
    ] {
        if let Ok(f) = std::fs::File::create_new(p) {
            got.push(what.to_owned());
            keep.push(f);
        }
    }
    for write in [false, true] {
        let Ok(f) = std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open(path)
        else {
            continue;
        };
        let (mode, l_type) = match write {
            false => ("read-only", libc::F_RDLCK),
            true => ("read-write", libc::F_WRLCK),
        };
        got.push(format!("opened it {mode}"));
        let lock = libc::flock {
            l_type: l_type as i16,
            l_whence: libc::SEEK_SET as i16,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        if fcntl(&f, FcntlArg::F_SETLK(&lock)).is_ok() {
            got.push(format!(
                "an fcntl {} lock",
                if write { "write" } else { "read" }
            ));
        }
        let flocked = if write {
            f.try_lock()
        } else {
            f.try_lock_shared()
        };
        if flocked.is_ok() {
            got.push(format!(
                "a flock ({})",
                if write { "exclusive" } else { "shared" }
            ));
        }
        keep.push(f);
    }
    let got = if got.is_empty() {
        "nothing".to_owned()
    } else {
        got.join(", ")
    };
    sleep_forever(&format!("got: {got}"));
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, args) = argv
        .split_first()
        .unwrap_or_else(|| die("usage: see the source".into()));
    let semid = || -> i32 {
        let a = args.first().cloned().unwrap_or_default();
        a.parse()
            .unwrap_or_else(|_| die(format!("not a semid: {a:?}")))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cmd.as_str() {
        "cookie" => cookie(args, &mut out),
        "lookalike" => lookalike(args, &mut out),
        "unrelated" => unrelated(args, &mut out),
        "waiter" => {
            drop(out);
            ok("wait-for-zero semop", sysv::semop(semid(), 0, 0));
        }
        "udev-wait" => {
            drop(out);
            let id = semid();
            ok("semop -1", sysv::semop(id, -1, libc::IPC_NOWAIT as i16));
            println!("waiting");
            let _ = std::io::stdout().flush();
            match sysv::semop(id, 0, 0) {
                Ok(()) => {
                    ok("IPC_RMID", sysv::remove(id));
                    println!("woken: 0");
                }
                Err(e) => {
                    println!("woken: {e}");
                    std::process::exit(1);
                }
            }
        }
        "hold" => {
            drop(out);
            ok("semop +1", sysv::semop(semid(), 1, 0));
            for a in args.iter().skip(1) {
                let id = a
                    .parse()
                    .unwrap_or_else(|_| die(format!("not a semid: {a:?}")));
                ok("semop +1", sysv::semop(id, 1, 0));
            }
            sleep_forever("ready");
        }
        // What libdm does with a cookie: one semget, then a one-op semop
        // (fails with SEMMNI or SEMMNS full, SEMMSL 0 or SEMOPM 0).
        "probe" => match sysv::semget(libc::IPC_PRIVATE, 1, 0o600) {
            Ok(id) => {
                let op = sysv::semop(id, 1, libc::IPC_NOWAIT as i16);
                let _ = sysv::remove(id);
                match op {
                    Ok(()) => {
                        let _ = writeln!(out, "probe: semget and semop worked");
                    }
                    Err(e) => die(format!("probe: semop: {e}")),
                }
            }
            Err(e) => die(format!("probe: semget: {e}")),
        },
        "count" => {
            let info = ok("SEM_INFO", sysv::sem_info());
            let _ = writeln!(out, "{}", info.sets);
        }
        "flock-hold" | "fcntl-hold" => {
            use std::os::unix::fs::OpenOptionsExt;
            drop(out);
            let path = args
                .first()
                .unwrap_or_else(|| die("a path is needed".into()));
            let f = ok(
                "open",
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    // As semprep creates its lock file: one others could
                    // open, semprep would replace.
                    .mode(0o600)
                    .open(path),
            );
            if cmd == "flock-hold" {
                ok("flock", f.lock());
            } else {
                let lock = libc::flock {
                    l_type: libc::F_WRLCK as i16,
                    l_whence: libc::SEEK_SET as i16,
                    l_start: 0,
                    l_len: 0,
                    l_pid: 0,
                };
                let arg = nix::fcntl::FcntlArg::F_SETLKW(&lock);
                ok("fcntl", nix::fcntl::fcntl(&f, arg).map_err(Into::into));
                let _ = writeln!(&f, "{}", std::process::id());
            }
            sleep_forever("ready");
        }
        "lock-attack" => {
            drop(out);
            let path = args
                .first()
                .unwrap_or_else(|| die("a path is needed".into()));
            lock_attack(path);
        }
        other => die(format!("unknown command {other:?}")),
    }
}

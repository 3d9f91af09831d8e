//! The run's time budget. docker.service and isulad.service set
//! `TimeoutStartSec=0`, so systemd would wait forever for a hung
//! `ExecStartPre=`: semprep bounds itself instead.
//!
//! The orderly path checks `remaining()` between steps. A watchdog thread is
//! the backstop for a step that hangs in the kernel: shortly after the
//! deadline it runs the mode's expiry action (exit, or exec the daemon),
//! unless the main thread has disarmed it first. Each step is atomic in the
//! kernel, so stopping between any two leaves nothing half-done.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after the deadline the watchdog waits for the orderly path.
const GRACE: Duration = Duration::from_millis(300);

/// How long before the deadline the removals stop, at most: the raise the
/// policy allows (a read, a SEM_INFO, one write, a read-back: well under a
/// millisecond) and the report must still happen within the budget.
const RAISE_MARGIN: Duration = Duration::from_millis(50);

/// What the run is doing now, for the watchdog's message when a step hangs
/// (a `/proc/sys/kernel/sem` that never answers, say).
static STEP: Mutex<String> = Mutex::new(String::new());

/// Records what the run does next, for the watchdog's message.
pub fn step(what: impl Into<String>) {
    *STEP.lock().unwrap_or_else(|p| p.into_inner()) = what.into();
}

/// ` while reading /proc/sys/kernel/sem`: the step in progress, if any.
pub fn during() -> String {
    let step = STEP.lock().unwrap_or_else(|p| p.into_inner());
    if step.is_empty() {
        String::new()
    } else {
        format!(" while {step}")
    }
}

pub struct Budget {
    deadline: Instant,
    total: Duration,
    done: Arc<Mutex<bool>>,
}

impl Budget {
    /// Starts the clock; `on_expiry` runs on the watchdog thread and must
    /// not return (it exits or execs).
    pub fn start(total: Duration, on_expiry: impl FnOnce() + Send + 'static) -> Budget {
        let deadline = Instant::now() + total;
        let done = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&done);
        // A small stack: the watchdog only sleeps, logs and exits or execs,
        // and a default 2 MiB stack costs measurable start-up time.
        let spawned = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()) + GRACE);
                // Holding the flag while acting keeps `disarm` from racing us.
                let finished = flag.lock().unwrap_or_else(|p| p.into_inner());
                if !*finished {
                    on_expiry();
                }
            });
        if let Err(e) = spawned {
            // The orderly path still checks the deadline between steps.
            log::warn!("cannot start the time-budget watchdog thread: {e}");
        }
        Budget {
            deadline,
            total,
            done,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// When removals stop: a margin (a quarter of the budget at most)
    /// before the deadline, so that the raise still fits.
    pub fn removal_deadline(&self) -> Instant {
        self.deadline - RAISE_MARGIN.min(self.total / 4)
    }

    pub fn total(&self) -> Duration {
        self.total
    }

    /// The main thread is about to finish: the watchdog must not act.
    pub fn disarm(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

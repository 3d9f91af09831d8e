//! semprep: clear leaked device-mapper udev cookies (SysV semaphore sets)
//! before a container daemon starts, and raise SEMMNI when headroom is short.
//!
//! Data flows one way: `snapshot` reads the kernel, `plan` decides (pure),
//! `apply` changes the kernel, `report` and `explain` tell. `run` wires the
//! commands together with the guards (`lock`, `daemon`, `budget`); `finish`
//! ends every run with the hook policy and the one report on stdout.

// Every `unsafe` block is in `sysv`, each with a SAFETY comment: the
// compiler enforces it.
#![deny(unsafe_code)]

// The public surface is what `main`, semfixture, xtask, the benchmark and
// the tests use; everything else is the crate's own, so the compiler sees
// dead code.
pub mod apply;
mod budget;
mod check;
pub mod cli;
mod complete;
mod daemon;
pub mod error;
mod exec;
mod explain;
pub mod finish;
mod json;
mod limits;
mod lock;
pub mod logging;
mod metrics;
pub mod parallel;
pub mod plan;
pub mod process;
mod report;
pub mod run;
pub mod safe_write;
pub mod snapshot;
#[allow(unsafe_code)]
pub mod sysv;

/// `semprep __watchdog-outcome …`, the process through which the time
/// budget's watchdog writes its run's outcome: for `main`, before clap.
pub use metrics::watchdog_outcome;

//! semprep: clear leaked device-mapper udev cookies (SysV semaphore sets)
//! before a container daemon starts, and raise SEMMNI when headroom is short.
//!
//! Data flows one way: `snapshot` reads the kernel, `plan` decides (pure),
//! `apply` changes the kernel, `report` and `explain` tell. `run` wires the
//! commands together with the guards (`lock`, `daemon`, `budget`); `finish`
//! ends every run with the hook policy and the one report on stdout.

pub mod apply;
pub mod budget;
pub mod check;
pub mod cli;
pub mod complete;
pub mod daemon;
pub mod error;
pub mod exec;
pub mod explain;
pub mod finish;
pub mod json;
pub mod limits;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod process;
pub mod report;
pub mod run;
pub mod snapshot;
pub mod sysv;

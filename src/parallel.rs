//! Splitting large work over the cores: how many threads are worth it, and
//! the one spawn-and-join pattern that uses them. The per-thread sizes of
//! every parallel step are here, measured side by side.

use std::ops::Range;

/// Snapshot: below this many kernel indices per thread, a thread costs more
/// than it saves (spawning one is ~50 µs; a SEM_STAT ~0.3 µs, a cookie
/// ~1.2 µs).
pub(crate) const INDICES_PER_THREAD: usize = 4096;
/// Apply: below this many removals per thread a thread is not worth
/// starting (a re-read and an IPC_RMID per set).
pub(crate) const REMOVALS_PER_THREAD: usize = 2048;
/// The per-set reads scale with cores (they take only the set's own lock,
/// under RCU); more than a few threads only add start-up cost.
const MAX_THREADS: usize = 4;

/// Threads worth using for `n` items of which `per_thread` fill one.
pub(crate) fn threads_for(n: usize, per_thread: usize) -> usize {
    if n < 2 * per_thread {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    cores.min(MAX_THREADS).min(n / per_thread).max(1)
}

/// Runs `f` on consecutive ranges covering `0..n`, one per thread worth
/// using (`threads_for`), and returns the results in range order. The
/// calling thread takes the first range itself; with one range, no thread
/// is started at all.
///
/// A panicking worker panics the caller: the release build aborts on panic
/// (Cargo.toml), so no worker's panic is ever an outcome to report.
pub(crate) fn map_ranges<R: Send>(
    n: usize,
    per_thread: usize,
    f: impl Fn(Range<usize>) -> R + Sync,
) -> Vec<R> {
    let threads = threads_for(n, per_thread);
    if threads <= 1 {
        return vec![f(0..n)];
    }
    let step = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (step..n)
            .step_by(step)
            .map(|start| s.spawn(move || f(start..(start + step).min(n))))
            .collect();
        let mut out = Vec::with_capacity(threads);
        out.push(f(0..step));
        for h in handles {
            out.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_item_once_in_order() {
        for n in [0, 1, 5, 4095, 8192, 8193, 20_000, 100_003] {
            let ranges = map_ranges(n, 4096, |r| r);
            let flat: Vec<usize> = ranges.iter().cloned().flatten().collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>(), "n {n}");
            assert!(ranges.len() <= MAX_THREADS, "n {n}: {ranges:?}");
            if n < 2 * 4096 {
                assert_eq!(ranges, vec![(0..n)], "n {n}: one range, no thread");
            }
        }
    }
}

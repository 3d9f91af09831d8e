//! Splitting large work over the cores: how many threads are worth it, and
//! the one pattern that uses them (threads taking chunks in turn). The
//! per-thread and per-chunk sizes of every parallel step are here, side by
//! side.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Snapshot: below this many kernel indices per thread, a thread costs more
/// than it saves (spawning one is ~50 µs; a SEM_STAT ~0.3 µs, a cookie
/// ~1.2 µs).
pub const INDICES_PER_THREAD: usize = 4096;
/// Apply: below this many removals per thread a thread is not worth
/// starting (a re-read and an IPC_RMID per set).
pub const REMOVALS_PER_THREAD: usize = 2048;
/// The per-set reads scale with cores (they take only the set's own lock,
/// under RCU); more than a few threads only add start-up cost.
const MAX_THREADS: usize = 4;

/// Threads worth using for `n` items of which `per_thread` fill one.
pub fn threads_for(n: usize, per_thread: usize) -> usize {
    if n < 2 * per_thread {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    cores.min(MAX_THREADS).min(n / per_thread).max(1)
}

/// Apply: removals a thread takes at a time (about 0.5 ms of re-checks and
/// IPC_RMID).
pub const REMOVALS_PER_CHUNK: usize = 256;

/// Runs `f` over `0..n` in consecutive chunks of `chunk` items, on as many
/// threads as are worth using (`threads_for(n, per_thread)`), and returns
/// the results in chunk order. Each thread takes the next chunk when it has
/// finished one, so a thread the scheduler holds back (another process on
/// the core) delays one chunk, not a fixed share of the work. `state` makes
/// each thread's own state (a cache), handed to every `f` it runs. The
/// calling thread works too; with one thread worth using, none is started.
///
/// A panicking worker panics the caller: the release build aborts on panic
/// (Cargo.toml), so no worker's panic is ever an outcome to report.
pub fn map_chunks<S, R: Send>(
    n: usize,
    per_thread: usize,
    chunk: usize,
    state: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, Range<usize>) -> R + Sync,
) -> Vec<R> {
    let chunk = chunk.max(1);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut s = state();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let start = i.saturating_mul(chunk);
            if start >= n {
                return done;
            }
            done.push((i, f(&mut s, start..start.saturating_add(chunk).min(n))));
        }
    };
    let threads = threads_for(n, per_thread);
    let mut all = if threads <= 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut all = work();
            for h in handles {
                all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            all
        })
    };
    all.sort_unstable_by_key(|&(i, _)| i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_item_once_in_order() {
        for n in [0, 1, 5, 1023, 1024, 1025, 8192, 8193, 20_000, 100_003] {
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let chunks = map_chunks(
                n,
                4096,
                1024,
                || threads.lock().unwrap().insert(std::thread::current().id()),
                |_, r| r,
            );
            let flat: Vec<usize> = chunks.iter().cloned().flatten().collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>(), "n {n}");
            assert!(chunks.iter().all(|r| r.len() <= 1024), "n {n}");
            let threads = threads.lock().unwrap().len();
            assert!(threads <= MAX_THREADS, "n {n}: {threads} threads");
            if n < 2 * 4096 {
                assert_eq!(threads, 1, "n {n}: no thread started");
            }
        }
    }
}

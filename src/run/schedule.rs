//! How much runs at once. A diff unit's peak memory is estimated from its partitions' sizes;
//! units are admitted largest first while the estimates of the running ones fit the memory
//! budget, at most `--jobs` at a time; a unit that could never fit alone is split into
//! buckets that do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use anyhow::Result;

use crate::run::memory_limit::current_rss;

/// Peak memory of a diff unit ≈ BASE + PER_ROW × (rows of both partitions). Rows, not file
/// bytes: the frames in memory are the same whichever format the files are in, while a
/// Parquet file's size depends on how well its data compresses. Measured with
/// `scripts/bench` (see the README's "Memory and concurrency").
pub const DIFF_BASE_BYTES: u64 = 75 << 20;
/// 400: measured 273 reading Parquet partitions and 272 reading CSV (393 and 281 before
/// the diff paired rows instead of joining them); kept above, for rows wider than the
/// benchmark's.
pub const DIFF_BYTES_PER_ROW: f64 = 400.0;
/// Smallest budget a unit is given, whatever `--memory-limit` says: below it even tiny
/// units would be split without end.
const MIN_BUDGET: u64 = DIFF_BASE_BYTES + (1 << 20);

pub fn estimate_diff_bytes(rows: u64) -> u64 {
    DIFF_BASE_BYTES + (DIFF_BYTES_PER_ROW * rows as f64) as u64
}

/// Into how many buckets a unit must be split so that each fits `budget` (and, with
/// `max_part_rows`, has at most that many rows).
pub fn buckets_for(rows: u64, budget: u64, max_part_rows: Option<u64>) -> usize {
    let room = budget.max(MIN_BUDGET) - DIFF_BASE_BYTES;
    let need = DIFF_BYTES_PER_ROW * rows as f64;
    let by_rows = max_part_rows.map_or(1, |most| rows.div_ceil(most.max(1)));
    ((need / room as f64).ceil().max(1.0) as usize).max(by_rows as usize)
}

/// The process itself, before any unit: its code, polars' thread pool, the allocator's
/// arenas (an extract of the fixtures peaks at 42 MiB, measured).
pub const PROCESS_BYTES: u64 = 48 << 20;

/// One extract besides the rows it buffers: the decompressed chunks read ahead, the decoder,
/// the dump reader's window, the files' write buffers and a row group being encoded.
pub const EXTRACT_FIXED_BYTES: u64 = 24 << 20;

/// The most and the least an extract buffers of rows (of all its sources) before it writes
/// the largest source's rows as a row group.
pub const EXTRACT_BUFFER_BYTES: (u64, u64) = (64 << 20, 8 << 20);

/// How extraction fits a budget: how many backups at once, and the rows each may buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractShare {
    pub jobs: usize,
    pub buffer_bytes: u64,
}

/// `jobs` extracts at once with full buffers where the budget holds them; else fewer, and
/// at last one with smaller buffers.
pub fn extract_share(budget: u64, jobs: usize) -> ExtractShare {
    let (most, least) = EXTRACT_BUFFER_BYTES;
    let room = budget.saturating_sub(PROCESS_BYTES);
    let fits = room / (EXTRACT_FIXED_BYTES + most);
    if fits >= 1 {
        return ExtractShare {
            jobs: jobs.min(fits as usize).max(1),
            buffer_bytes: most,
        };
    }
    ExtractShare {
        jobs: 1,
        buffer_bytes: room.saturating_sub(EXTRACT_FIXED_BYTES).clamp(least, most),
    }
}

/// What a row of a split unit's output takes in memory while its buckets are merged (the
/// stored columns as polars holds them, and the merge's bookkeeping).
const MERGE_BYTES_PER_ROW: u64 = 256;

/// Rows per row group of a split unit's bucket files, and per batch their merge hands on:
/// the merge holds a group of every bucket at once, together at most an eighth of the
/// budget.
pub fn merge_batch_rows(budget: u64, buckets: usize) -> usize {
    let rows = budget / 8 / MERGE_BYTES_PER_ROW / buckets.max(1) as u64;
    rows.clamp(1 << 10, 1 << 16) as usize
}

/// Units with fewer rows than this (both partitions) keep their polars work on their
/// worker's thread (`diff::on_this_thread`), larger ones use polars' pool; and only after
/// larger units and extracts is freed memory given back (`release_free_memory`).
pub const SMALL_UNIT_ROWS: u64 = 250_000;

/// Gives the memory freed since the last call back to the system, so that the resident
/// memory the scheduler samples (and the cgroup charges) is what is in use, not what the
/// allocator keeps for later.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Tells the allocator to keep what it frees, up to an eighth of `budget`, instead of
/// unmapping large blocks and trimming the heap at once: a diff allocates and frees its
/// columns unit after unit, and on a VM every page given back and faulted in again costs
/// the host too (the large series' diff faulted 410,000 pages, 240,000 with this; system
/// time 1.0–2.5 s → 0.7 s). Memory kept is still given back by `release_free_memory` once
/// the process holds more than a quarter of the budget. At small budgets the eighth is
/// about glibc's own limits (32 MiB blocks, 64 MiB of heap top).
/// And one heap (arena) per worker, `jobs`, instead of one per thread (polars' pool, the
/// extracts' readers, the workers): what one thread frees, another reuses, instead of each
/// growing a heap of its own. The large series: peak 1.08 → 0.98 GB, page faults
/// 263,000 → 237,000, 12.56 → 12.35 s (medians of 5 interleaved).
pub fn keep_freed_memory(budget: u64, jobs: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let eighth = libc::c_int::try_from(budget / 8).unwrap_or(libc::c_int::MAX);
        let pad = eighth.min(64 << 20);
        let arenas = libc::c_int::try_from(jobs.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets the allocator's thresholds; it is safe at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, eighth);
            libc::mallopt(libc::M_TRIM_THRESHOLD, eighth);
            libc::mallopt(libc::M_TOP_PAD, pad);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// After a large unit or extract: freed memory is given back only once the process holds
/// more than a quarter of `budget`. Below that, keeping it for the next unit spares faulting
/// it in again (on the large series the run's system time fell from 5.6 to 2.5 s, for about
/// 100 MB more resident); above it, what the scheduler samples and what a cgroup charges
/// must be what is in use. Memory kept is at most a quarter of the budget, and the peaks the
/// scheduler observes include it, so the estimates of the units after it account for it.
pub fn release_free_memory_if_large(budget: u64) {
    if current_rss() > budget / 4 {
        release_free_memory();
    }
}

/// Peak resident memory of this process so far (VmHWM), in bytes; 0 where unknown.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// How often the resident memory is sampled while units run.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// Bounds of the correction learned from observed peaks. It only ever raises estimates: a
/// unit that used less than estimated says little about the next, larger one, and on a few
/// cores more concurrency buys little, while an underestimate can cost an OOM kill.
const CORRECTION_RANGE: (f64, f64) = (1.0, 4.0);

/// What the scheduler learned about one unit's memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// The unit's estimate, before any correction.
    pub estimate: u64,
    /// The highest resident memory of the process while the unit ran (it includes the units
    /// that ran beside it).
    pub peak: u64,
    /// The correction applied to estimates after this unit finished.
    pub correction: f64,
}

struct Running {
    id: usize,
    estimate: u64,
    /// What this unit added to `Admission::running_bytes` (its corrected estimate).
    admitted: u64,
    /// The most, in estimates, that ran at once while this unit ran (itself included).
    most_estimated: u64,
    peak: u64,
}

struct Admission<T> {
    /// Units not started, largest estimate last (popped first); equal estimates in the
    /// order they came.
    queue: Vec<(u64, T)>,
    running_bytes: u64,
    running: Vec<Running>,
    next_id: usize,
    /// Observed peak ÷ estimates, the largest seen so far; scales the estimates of the units
    /// admitted after it. None until a unit has finished.
    correction: Option<f64>,
    failed: bool,
    /// No more units will come.
    closed: bool,
    /// Memory held by work beside the queue's (extracts still running): kept out of the
    /// budget, and out of the peaks observed.
    reserved: u64,
}

impl<T> Admission<T> {
    fn corrected(&self, estimate: u64) -> u64 {
        (estimate as f64 * self.correction.unwrap_or(1.0)) as u64
    }

    /// What the queue's units use of the process's resident memory `rss`.
    fn own(&self, rss: u64) -> u64 {
        rss.saturating_sub(self.reserved)
    }

    /// The unit to start now, as its place in the queue: the largest, if it fits beside the
    /// running ones, or nothing runs and it could never fit. While memory is reserved, the
    /// largest that fits beside it and them, rather than none until the reserve ends.
    fn next_to_start(&self, budget: u64) -> Option<usize> {
        let room = budget.saturating_sub(self.reserved);
        let fits = |at: usize| self.running_bytes + self.corrected(self.queue[at].0) <= room;
        let largest = self.queue.len().checked_sub(1)?;
        if fits(largest) || (self.running.is_empty() && self.reserved == 0) {
            return Some(largest);
        }
        if self.reserved == 0 {
            return None;
        }
        (0..largest).rev().find(|&at| fits(at))
    }

    fn admit(&mut self, estimate: u64, rss: u64) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        let admitted = self.corrected(estimate);
        self.running_bytes += admitted;
        let peak = self.own(rss);
        self.running.push(Running {
            id,
            estimate,
            admitted,
            most_estimated: 0,
            peak,
        });
        let together: u64 = self.running.iter().map(|r| r.estimate).sum();
        for unit in &mut self.running {
            unit.most_estimated = unit.most_estimated.max(together);
        }
        id
    }

    fn release(&mut self, id: usize, rss: u64) -> Observed {
        let at = self
            .running
            .iter()
            .position(|r| r.id == id)
            .expect("running");
        let unit = self.running.swap_remove(at);
        self.running_bytes -= unit.admitted;
        let peak = unit.peak.max(self.own(rss));
        let ratio = peak as f64 / unit.most_estimated.max(1) as f64;
        let (low, high) = CORRECTION_RANGE;
        let correction = self
            .correction
            .map_or(ratio, |c| c.max(ratio))
            .clamp(low, high);
        self.correction = Some(correction);
        Observed {
            estimate: unit.estimate,
            peak,
            correction,
        }
    }
}

/// Units handed to `run_fed_within_budget` while it runs: pushed as they become ready, until
/// `close`.
pub struct WorkQueue<T> {
    state: Mutex<Admission<T>>,
    changed: Condvar,
}

impl<T> WorkQueue<T> {
    /// An empty queue; `reserved` bytes of the budget are held by other work until `close`
    /// or `unreserve`.
    pub fn new(reserved: u64) -> WorkQueue<T> {
        WorkQueue {
            state: Mutex::new(Admission {
                queue: Vec::new(),
                running_bytes: 0,
                running: Vec::new(),
                next_id: 0,
                correction: None,
                failed: false,
                closed: false,
                reserved,
            }),
            changed: Condvar::new(),
        }
    }

    /// Adds a unit with its memory `estimate`.
    pub fn push(&self, estimate: u64, item: T) {
        let mut s = self.state.lock().expect("not poisoned");
        let at = s.queue.partition_point(|(e, _)| *e < estimate);
        s.queue.insert(at, (estimate, item));
        self.changed.notify_all();
    }

    /// The other work is over: the whole budget is the queue's.
    pub fn unreserve(&self) {
        self.state.lock().expect("not poisoned").reserved = 0;
        self.changed.notify_all();
    }

    /// No more units will come: the workers stop once the queue is empty.
    pub fn close(&self) {
        let mut s = self.state.lock().expect("not poisoned");
        s.closed = true;
        s.reserved = 0;
        self.changed.notify_all();
    }

    /// Stops the workers after the units they are running (the feeding failed).
    pub fn fail(&self) {
        let mut s = self.state.lock().expect("not poisoned");
        s.failed = true;
        s.closed = true;
        self.changed.notify_all();
    }
}

/// Runs `work` on every item of `queue`, `(estimate, item)`, as they are pushed until it is
/// closed and empty, on up to `workers` threads, starting an item only while the estimates
/// of the running ones plus its own fit `budget` (or when nothing runs), and while memory is
/// reserved, beside it. Resident memory, as `rss` reads it (`current_rss` in a run), is
/// sampled while items run; each finished item's peak, against the estimates that ran
/// beside it, refines the estimates of the items admitted after it, and is passed to
/// `observe`. Plain threads rather than a rayon pool: polars runs its own rayon pool, and
/// calling into it from another pool's workers has deadlocked.
pub fn run_fed_within_budget<T, R, F, O, M>(
    queue: &WorkQueue<T>,
    budget: u64,
    workers: usize,
    rss: M,
    work: F,
    observe: O,
) -> Result<Vec<R>>
where
    T: Send,
    R: Send,
    F: Fn(T) -> Result<R> + Sync,
    O: Fn(&R, Observed) + Sync,
    M: Fn() -> u64 + Sync,
{
    let WorkQueue { state, changed } = queue;
    let results = Mutex::new(Vec::new());
    let first_error = Mutex::new(None);
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !finished.load(Ordering::Relaxed) {
                let rss = rss();
                let mut s = state.lock().expect("not poisoned");
                let own = s.own(rss);
                for unit in &mut s.running {
                    unit.peak = unit.peak.max(own);
                }
                drop(s);
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        let workers: Vec<_> = (0..workers.max(1))
            .map(|_| {
                scope.spawn(|| loop {
                    let (id, item) = {
                        let mut s = state.lock().expect("not poisoned");
                        let at = loop {
                            if s.failed || (s.closed && s.queue.is_empty()) {
                                return;
                            }
                            if let Some(at) = s.next_to_start(budget) {
                                break at;
                            }
                            s = changed.wait(s).expect("not poisoned");
                        };
                        let (estimate, item) = s.queue.remove(at);
                        (s.admit(estimate, rss()), item)
                    };
                    let outcome = work(item);
                    let mut s = state.lock().expect("not poisoned");
                    let observed = s.release(id, rss());
                    match outcome {
                        Ok(result) => {
                            observe(&result, observed);
                            results.lock().expect("not poisoned").push(result);
                        }
                        Err(e) => {
                            s.failed = true;
                            first_error.lock().expect("not poisoned").get_or_insert(e);
                        }
                    }
                    changed.notify_all();
                })
            })
            .collect();
        let panic = workers.into_iter().find_map(|worker| worker.join().err());
        finished.store(true, Ordering::Relaxed);
        if let Some(panic) = panic {
            std::panic::resume_unwind(panic);
        }
    });
    match first_error.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(results.into_inner().expect("not poisoned")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A closed queue of `items`, all known at the start.
    fn queue_of<T>(items: Vec<(u64, T)>) -> WorkQueue<T> {
        let queue = WorkQueue::new(0);
        for (estimate, item) in items {
            queue.push(estimate, item);
        }
        queue.close();
        queue
    }

    #[test]
    fn buckets_make_each_part_fit() {
        assert_eq!(buckets_for(100_000, 1 << 30, None), 1);
        assert_eq!(buckets_for(100_000, 1 << 30, Some(30_000)), 4);
        let rows = 40_000_000;
        let budget = 1u64 << 30;
        let k = buckets_for(rows, budget, None) as u64;
        assert!(estimate_diff_bytes(rows / k) <= budget);
        assert!(estimate_diff_bytes(rows / (k - 1)) > budget);
        // A budget below the floor splits as the floor does, rather than without end.
        assert_eq!(
            buckets_for(rows, 1, None),
            buckets_for(rows, MIN_BUDGET, None)
        );
    }

    #[test]
    fn extraction_fits_the_budget() {
        let mib = 1 << 20;
        let full = EXTRACT_BUFFER_BYTES.0;
        assert_eq!(
            extract_share(16 << 30, 2),
            ExtractShare {
                jobs: 2,
                buffer_bytes: full
            }
        );
        let one = PROCESS_BYTES + EXTRACT_FIXED_BYTES + full;
        assert_eq!(extract_share(one + 10 * mib, 4).jobs, 1);
        assert_eq!(extract_share(one + 10 * mib, 4).buffer_bytes, full);
        let small = extract_share(128 * mib, 4);
        assert_eq!(small.jobs, 1);
        assert_eq!(
            small.buffer_bytes,
            128 * mib - PROCESS_BYTES - EXTRACT_FIXED_BYTES
        );
        assert_eq!(extract_share(0, 4).buffer_bytes, EXTRACT_BUFFER_BYTES.1);
    }

    #[test]
    fn merge_batches_shrink_with_the_budget_and_the_buckets() {
        assert_eq!(merge_batch_rows(64 << 30, 2), 1 << 16);
        assert!(merge_batch_rows(256 << 20, 4) < 1 << 16);
        assert_eq!(merge_batch_rows(256 << 20, 10_000), 1 << 10);
    }

    #[test]
    fn running_estimates_never_exceed_the_budget() {
        let running = AtomicU64::new(0);
        let peak = AtomicU64::new(0);
        let items: Vec<(u64, u64)> = [60, 50, 40, 30, 20, 10, 10, 5]
            .iter()
            .map(|&e| (e, e))
            .collect();
        let done = run_fed_within_budget(
            &queue_of(items),
            70,
            4,
            || 0,
            |estimate| {
                let now = running.fetch_add(estimate, Ordering::SeqCst) + estimate;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                running.fetch_sub(estimate, Ordering::SeqCst);
                Ok(estimate)
            },
            |_, _| {},
        )
        .unwrap();
        assert_eq!(done.iter().sum::<u64>(), 225);
        assert!(
            peak.load(Ordering::SeqCst) <= 70,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
        // Something ran alongside something else: the budget was used, not serialised.
        assert!(peak.load(Ordering::SeqCst) > 60);
    }

    #[test]
    fn an_item_larger_than_the_budget_still_runs_alone_and_errors_stop_the_rest() {
        let done = run_fed_within_budget(
            &queue_of(vec![(500, 1), (10, 2)]),
            100,
            2,
            || 0,
            Ok,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(done.len(), 2);
        let failed = run_fed_within_budget(
            &queue_of(vec![(10, 1), (10, 2), (10, 3)]),
            100,
            1,
            || 0,
            |i| {
                anyhow::ensure!(i != 1, "unit {i} failed");
                Ok(i)
            },
            |_, _| {},
        );
        assert_eq!(failed.unwrap_err().to_string(), "unit 1 failed");
    }

    #[test]
    fn estimates_grow_when_more_memory_is_observed_than_estimated() {
        // Three units estimated at 100 against a budget of 250: two fit at once. The process
        // is seen using 1000 while the first two run, five times their estimates, so the
        // estimates are raised (by at most 4×) and the third runs alone.
        let running = AtomicU64::new(0);
        let most_at_once = Mutex::new(Vec::new());
        let observed = Mutex::new(Vec::new());
        let items: Vec<(u64, usize)> = (0..3).map(|i| (100, i)).collect();
        run_fed_within_budget(
            &queue_of(items),
            250,
            2,
            || 1000,
            |i| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most_at_once.lock().unwrap().push((i, now));
                std::thread::sleep(std::time::Duration::from_millis(50));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(i)
            },
            |&i, seen| observed.lock().unwrap().push((i, seen)),
        )
        .unwrap();
        let starts = most_at_once.into_inner().unwrap();
        assert_eq!(starts[1].1, 2, "the first two ran together: {starts:?}");
        assert_eq!(starts[2].1, 1, "the third ran alone: {starts:?}");
        let observed = observed.into_inner().unwrap();
        assert_eq!(observed.len(), 3);
        for (_, seen) in &observed {
            assert_eq!((seen.estimate, seen.peak), (100, 1000));
            assert_eq!(seen.correction, 4.0);
        }
    }

    #[test]
    fn fed_items_run_as_they_come_and_reserved_memory_holds_them_back() {
        // A budget of 100 of which 60 are reserved (extraction running): an item of 50
        // waits, though nothing runs, until the reservation ends; one of 30 runs at once.
        let queue = WorkQueue::new(60);
        let ran = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            let workers = scope.spawn(|| {
                run_fed_within_budget(
                    &queue,
                    100,
                    2,
                    || 0,
                    |item: u64| {
                        ran.lock().unwrap().push(item);
                        Ok(item)
                    },
                    |_, _| {},
                )
            });
            queue.push(50, 50);
            queue.push(30, 30);
            let waited = std::time::Instant::now();
            while ran.lock().unwrap().is_empty() {
                assert!(waited.elapsed().as_secs() < 10, "the small item never ran");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert_eq!(
                *ran.lock().unwrap(),
                vec![30],
                "the large item ran beside the reserve"
            );
            queue.unreserve();
            queue.push(10, 10);
            queue.close();
            let mut done = workers.join().unwrap().unwrap();
            done.sort();
            assert_eq!(done, vec![10, 30, 50]);
        });
    }

    #[test]
    fn a_failed_feeding_stops_the_workers() {
        let queue = WorkQueue::new(0);
        std::thread::scope(|scope| {
            let workers =
                scope.spawn(|| run_fed_within_budget(&queue, 100, 2, || 0, Ok, |_, _| {}));
            queue.push(1, 1u8);
            queue.fail();
            // Returns (rather than waiting for more items) with what it ran, if anything.
            assert!(workers.join().unwrap().unwrap().len() <= 1);
        });
    }

    #[test]
    fn estimates_are_never_lowered_by_observation() {
        let observed = Mutex::new(Vec::new());
        run_fed_within_budget(
            &queue_of(vec![(100, 0), (100, 1)]),
            1000,
            1,
            || 10,
            Ok,
            |_, seen| observed.lock().unwrap().push(seen.correction),
        )
        .unwrap();
        assert_eq!(observed.into_inner().unwrap(), vec![1.0, 1.0]);
    }
}

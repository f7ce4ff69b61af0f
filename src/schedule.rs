//! How much runs at once. A diff unit's peak memory is estimated from its partitions' sizes;
//! units are admitted largest first while the estimates of the running ones fit the memory
//! budget, at most `--jobs` at a time; a unit that could never fit alone is split into
//! buckets that do.

use std::sync::{Condvar, Mutex};

use anyhow::Result;

use crate::config::Config;

/// Peak memory of a diff unit ≈ BASE + FACTOR × (bytes of both partitions): measured with
/// polars' in-memory engine on 10 M + 10 M row partitions (FACTS in the README).
pub const DIFF_BASE_BYTES: u64 = 75 << 20;
pub const DIFF_FACTOR: f64 = 2.5;
/// Smallest budget a unit is given, whatever `--memory-limit` says: below it even tiny
/// units would be split without end.
const MIN_BUDGET: u64 = DIFF_BASE_BYTES + (1 << 20);

pub fn estimate_diff_bytes(partition_bytes: u64) -> u64 {
    DIFF_BASE_BYTES + (DIFF_FACTOR * partition_bytes as f64) as u64
}

/// Into how many buckets a unit must be split so that each fits `budget`.
pub fn buckets_for(partition_bytes: u64, budget: u64) -> usize {
    let room = budget.max(MIN_BUDGET) - DIFF_BASE_BYTES;
    let need = DIFF_FACTOR * partition_bytes as f64;
    (need / room as f64).ceil().max(1.0) as usize
}

/// The memory the run may use: `--memory-limit`, else 80% of what is available now (or of
/// what the cgroup still allows, when that is less).
pub fn memory_budget(config: &Config) -> u64 {
    if let Some(limit) = config.memory_limit {
        return limit;
    }
    let Ok(mut system) = sysinfo::System::new() else {
        return 1 << 30;
    };
    system.refresh_memory();
    let mut available = system.available_memory();
    if let Some(limits) = system.cgroup_limits() {
        available = available.min(limits.free_memory);
    }
    available / 10 * 8
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

struct Admission<T> {
    /// Units not started, largest estimate first.
    queue: Vec<(u64, T)>,
    running_bytes: u64,
    running: usize,
    failed: bool,
}

/// Runs `work` on every item, `(estimate, item)`, on up to `workers` threads, starting an
/// item only while the estimates of the running ones plus its own fit `budget` (or when
/// nothing runs). Plain threads rather than a rayon pool: polars runs its own rayon pool,
/// and calling into it from another pool's workers has deadlocked.
pub fn run_within_budget<T, R, F>(
    mut items: Vec<(u64, T)>,
    budget: u64,
    workers: usize,
    work: F,
) -> Result<Vec<R>>
where
    T: Send,
    R: Send,
    F: Fn(T) -> Result<R> + Sync,
{
    items.sort_by_key(|(estimate, _)| std::cmp::Reverse(*estimate));
    items.reverse(); // popped from the back: largest first
    let state = Mutex::new(Admission {
        queue: items,
        running_bytes: 0,
        running: 0,
        failed: false,
    });
    let changed = Condvar::new();
    let results = Mutex::new(Vec::new());
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let (estimate, item) = {
                    let mut s = state.lock().expect("not poisoned");
                    loop {
                        if s.failed || s.queue.is_empty() {
                            return;
                        }
                        let next = s.queue.last().expect("not empty").0;
                        if s.running == 0 || s.running_bytes + next <= budget {
                            break;
                        }
                        s = changed.wait(s).expect("not poisoned");
                    }
                    let (estimate, item) = s.queue.pop().expect("not empty");
                    s.running += 1;
                    s.running_bytes += estimate;
                    (estimate, item)
                };
                let outcome = work(item);
                let mut s = state.lock().expect("not poisoned");
                s.running -= 1;
                s.running_bytes -= estimate;
                match outcome {
                    Ok(result) => results.lock().expect("not poisoned").push(result),
                    Err(e) => {
                        s.failed = true;
                        first_error.lock().expect("not poisoned").get_or_insert(e);
                    }
                }
                changed.notify_all();
            });
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

    #[test]
    fn buckets_make_each_part_fit() {
        assert_eq!(buckets_for(10 << 20, 1 << 30), 1);
        let bytes = 4u64 << 30;
        let budget = 1u64 << 30;
        let k = buckets_for(bytes, budget) as u64;
        assert!(estimate_diff_bytes(bytes / k) <= budget);
        assert!(estimate_diff_bytes(bytes / (k - 1)) > budget);
        // A budget below the floor splits as the floor does, rather than without end.
        assert_eq!(buckets_for(bytes, 1), buckets_for(bytes, MIN_BUDGET));
    }

    #[test]
    fn running_estimates_never_exceed_the_budget() {
        let running = AtomicU64::new(0);
        let peak = AtomicU64::new(0);
        let items: Vec<(u64, u64)> = [60, 50, 40, 30, 20, 10, 10, 5]
            .iter()
            .map(|&e| (e, e))
            .collect();
        let done = run_within_budget(items, 70, 4, |estimate| {
            let now = running.fetch_add(estimate, Ordering::SeqCst) + estimate;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            running.fetch_sub(estimate, Ordering::SeqCst);
            Ok(estimate)
        })
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
        let done = run_within_budget(vec![(500, 1), (10, 2)], 100, 2, Ok).unwrap();
        assert_eq!(done.len(), 2);
        let failed = run_within_budget(vec![(10, 1), (10, 2), (10, 3)], 100, 1, |i| {
            anyhow::ensure!(i != 1, "unit {i} failed");
            Ok(i)
        });
        assert_eq!(failed.unwrap_err().to_string(), "unit 1 failed");
    }
}

//! Progress of a stage: a bar when stderr is a terminal, otherwise a log line at most every
//! few seconds, so logs of long runs show the run is alive without flooding.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    label: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    last_log: Mutex<Instant>,
    in_bytes: bool,
}

impl Progress {
    /// Progress measured in bytes (of compressed input).
    pub fn bytes(label: &'static str, total: u64) -> Progress {
        Progress::new(label, total, true)
    }

    /// Progress measured in units of work.
    pub fn units(label: &'static str, total: u64) -> Progress {
        Progress::new(label, total, false)
    }

    fn new(label: &'static str, total: u64, in_bytes: bool) -> Progress {
        let bar = (std::io::stderr().is_terminal() && tracing::enabled!(tracing::Level::INFO))
            .then(|| {
                let template = if in_bytes {
                    "{prefix:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                } else {
                    "{prefix:>8} [{bar:40}] {pos}/{len} eta {eta}"
                };
                let bar = ProgressBar::new(total).with_prefix(label);
                bar.set_style(
                    ProgressStyle::with_template(template)
                        .expect("the template is valid")
                        .progress_chars("=> "),
                );
                bar
            });
        Progress {
            label,
            bar,
            total,
            done: AtomicU64::new(0),
            last_log: Mutex::new(Instant::now()),
            in_bytes,
        }
    }

    pub fn advance(&self, amount: u64) {
        let done = self.done.fetch_add(amount, Ordering::Relaxed) + amount;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let mut last = self.last_log.lock().expect("not poisoned");
        if last.elapsed() >= LOG_EVERY && done < self.total {
            *last = Instant::now();
            let percent = 100.0 * done as f64 / self.total.max(1) as f64;
            if self.in_bytes {
                info!(
                    "{}: {percent:.0}% of {:.1} MB",
                    self.label,
                    self.total as f64 / 1e6
                );
            } else {
                info!(
                    "{}: {done}/{} units ({percent:.0}%)",
                    self.label, self.total
                );
            }
        }
    }

    /// Logs a line without tearing the bar.
    pub fn log(&self, message: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| info!("{message}")),
            None => info!("{message}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Lines of work items that finish in any order, released in the items' order: item `i`'s
/// line is logged once items `0..i` have finished, so the log reads the same every run.
#[derive(Default)]
pub struct InOrder {
    /// The first item not yet released, and the finished items after it.
    state: Mutex<(usize, std::collections::BTreeMap<usize, Option<String>>)>,
}

impl InOrder {
    /// Records item `index` as finished with its line (None: nothing to log), and returns
    /// the lines now due, in order.
    pub fn finished(&self, index: usize, line: Option<String>) -> Vec<String> {
        let mut state = self.state.lock().expect("not poisoned");
        let (next, waiting) = &mut *state;
        waiting.insert(index, line);
        let mut due = Vec::new();
        while let Some(line) = waiting.remove(next) {
            due.extend(line);
            *next += 1;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::InOrder;

    #[test]
    fn lines_come_out_in_item_order() {
        let order = InOrder::default();
        assert!(order.finished(2, Some("c".into())).is_empty());
        assert!(order.finished(1, None).is_empty());
        assert_eq!(order.finished(0, Some("a".into())), ["a", "c"]);
        assert_eq!(order.finished(3, Some("d".into())), ["d"]);
    }
}

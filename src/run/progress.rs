//! Progress of a stage: a bar when stderr is a terminal, otherwise a log line at most every
//! few seconds, so logs of long runs show the run is alive without flooding.
//!
//! On a terminal the bar is what shows: the per-backup lines ("extracted …", "diffed …")
//! appear above it only at `-v`, warnings and errors always, and `-q` keeps the bar while
//! dropping the rest (`-qq` drops the bar too). Every log line is written above the bar on
//! screen (`above_bar`, which the log writer calls), so the two never tear each other.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

const LOG_EVERY: Duration = Duration::from_secs(10);

/// The bar on screen, if any.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `write` (which writes to stderr) with the bar on screen, if any, lifted out of its
/// way: the text lands above the bar, which is drawn again below it.
pub fn above_bar(write: impl FnOnce()) {
    // A clone (the bar is shared), so that the lock is not held while writing.
    let shown = SHOWN.lock().map(|bar| bar.clone()).unwrap_or(None);
    match shown {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

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
        // Kept at -q (warnings only); errors only (-qq) drops it too.
        let bar = (std::io::stderr().is_terminal() && tracing::enabled!(tracing::Level::WARN))
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
                if let Ok(mut shown) = SHOWN.lock() {
                    *shown = Some(bar.clone());
                }
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

    /// Logs a per-item line: off a terminal always (at the info level), above the bar
    /// only at `-v`, so that on a terminal the bar is what shows.
    pub fn log(&self, line: ItemLine) {
        if self.bar.is_none() || tracing::enabled!(tracing::Level::DEBUG) {
            line.log();
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if let Ok(mut shown) = SHOWN.lock() {
                *shown = None;
            }
        }
    }
}

impl Drop for Progress {
    /// A stage that fails leaves no bar behind its error.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Logs a per-item line of work that runs while another stage's bar may be on screen:
/// as `Progress::log` does, off a terminal always, above a bar only at `-v`.
pub fn log_item(line: ItemLine) {
    let bar_shown = SHOWN.lock().map(|bar| bar.is_some()).unwrap_or(false);
    if !bar_shown || tracing::enabled!(tracing::Level::DEBUG) {
        line.log();
    }
}

/// `--log-format json` is on: per-item lines carry their numbers as fields too.
static JSON_FIELDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes per-item lines carry their numbers as fields (with `--log-format json`; text lines
/// stay their message alone).
pub fn log_fields(on: bool) {
    JSON_FIELDS.store(on, Ordering::Relaxed);
}

/// A per-item log line ("extracted …", "diffed …"): its message, and what it says as fields
/// a log system can filter on (JSON logs only). None: the field is left out.
#[derive(Debug, Clone, Default)]
pub struct ItemLine {
    pub message: String,
    /// What happened: `extracted`, `diffed`.
    pub event: &'static str,
    /// The backup's date (YYYYMMDD).
    pub date: String,
    /// The unit's source, for a line of one unit.
    pub source: Option<String>,
    pub rows: u64,
    /// Sources diffed, for a backup's line.
    pub sources: Option<usize>,
    pub added: Option<u64>,
    pub changed: Option<u64>,
    pub removed: Option<u64>,
    /// Bytes of SQL read, for an extract.
    pub sql_bytes: Option<u64>,
    pub seconds: Option<f64>,
}

/// Logs `line` at `level` (`info`, `debug`): its message, with its fields under JSON.
macro_rules! item_event {
    ($level:ident, $line:expr) => {{
        let line = $line;
        match JSON_FIELDS.load(Ordering::Relaxed) {
            false => tracing::$level!("{}", line.message),
            true => tracing::$level!(
                event = line.event,
                date = line.date.as_str(),
                source = line.source.as_deref(),
                rows = line.rows,
                sources = line.sources.map(|n| n as u64),
                added = line.added,
                changed = line.changed,
                removed = line.removed,
                sql_bytes = line.sql_bytes,
                seconds = line.seconds,
                "{}",
                line.message
            ),
        }
    }};
}

impl ItemLine {
    /// Logs the line at the info level.
    pub fn log(&self) {
        item_event!(info, self)
    }

    /// Logs the line at the debug level (`-v`).
    pub fn debug(&self) {
        item_event!(debug, self)
    }
}

/// Lines of work items that finish in any order, released in the items' order: item `i`'s
/// line is logged once items `0..i` have finished, so the log reads the same every run.
pub struct InOrder<T> {
    /// The first item not yet released, and the finished items after it.
    state: Mutex<(usize, std::collections::BTreeMap<usize, Option<T>>)>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            state: Mutex::new((0, std::collections::BTreeMap::new())),
        }
    }
}

impl<T> InOrder<T> {
    /// Records item `index` as finished with its line (None: nothing to log), and hands
    /// the lines now due to `emit`, in order. `emit` runs under the lock, so that two
    /// threads releasing lines at once cannot log them out of order.
    pub fn finished(&self, index: usize, line: Option<T>, mut emit: impl FnMut(T)) {
        let mut state = self.state.lock().expect("not poisoned");
        let (next, waiting) = &mut *state;
        waiting.insert(index, line);
        while let Some(line) = waiting.remove(next) {
            line.into_iter().for_each(&mut emit);
            *next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InOrder;

    #[test]
    fn lines_come_out_in_item_order() {
        let order = InOrder::<String>::default();
        let due = |index, line: Option<&str>| {
            let mut lines = Vec::new();
            order.finished(index, line.map(String::from), |l| lines.push(l));
            lines
        };
        assert!(due(2, Some("c")).is_empty());
        assert!(due(1, None).is_empty());
        assert_eq!(due(0, Some("a")), ["a", "c"]);
        assert_eq!(due(3, Some("d")), ["d"]);
    }
}

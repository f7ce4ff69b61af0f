//! Log setup: `-v`/`-q` choose the level, and `RUST_LOG`, when set, overrides them.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::run::progress::{above_bar, log_fields};

/// `verbosity` is the count of `-v` minus the count of `-q`.
pub fn init(verbosity: i8, format: LogFormat) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("migrate={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| AboveBar(Vec::new()))
        .with_target(false);
    log_fields(format == LogFormat::Json);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// One log line, written to stderr when the logger is done with it: above the progress bar
/// when one is on screen (`progress::above_bar`), so that the bar is not torn.
struct AboveBar(Vec<u8>);

impl Write for AboveBar {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for AboveBar {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        above_bar(|| {
            // Nothing to do when stderr is gone.
            let _ = std::io::stderr().lock().write_all(&self.0);
        });
    }
}

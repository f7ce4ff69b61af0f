//! Ctrl-C: the first one asks the run to stop between rows or units, keeping what is finished
//! (exit status 130); temporary files of the unit in progress are removed on the way out.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

pub const MESSAGE: &str = "interrupted";

/// The error a stage returns when it stopped because of Ctrl-C.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; finished work is kept and a rerun resumes")]
pub struct Interrupted;

/// Catches SIGINT and SIGTERM. A second signal while stopping ends the process at once.
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = result {
        tracing::warn!("cannot catch Ctrl-C: {e}");
    }
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Fails with `Interrupted` once Ctrl-C was pressed.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

//! `migrate` rebuilds the revision history ("issues") of a table from its daily SQL backups:
//! discover → extract → diff → emit. `pipeline::run` does it all from a `Config`.

pub mod asof;
pub mod atomic;
pub mod backfill;
pub mod cli;
pub mod config;
pub mod dates;
pub mod diff;
pub mod discover;
pub mod dry_run;
pub mod dump;
pub mod emit;
pub mod epiweek;
pub mod exit_codes;
pub mod interrupt;
pub mod lag;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod partition;
pub mod pipeline;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod replay;
pub mod schedule;
pub mod source;
pub mod spark;
pub mod state;
pub mod target;
pub mod verify;

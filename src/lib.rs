//! `migrate` rebuilds the revision history ("issues") of a table from its daily SQL backups:
//! discover → extract → diff → emit. `pipeline::run` does it all from a `Config`.

pub mod asof;
pub mod atomic;
pub mod backfill;
pub mod binary;
pub mod cli;
pub mod config;
pub mod dates;
pub mod diff;
pub mod discover;
pub mod dry_run;
pub mod dump;
pub mod emit;
pub mod epiweek;
pub mod events;
pub mod exit_codes;
pub mod file_read;
pub mod forecast;
pub mod history;
pub mod interrupt;
pub mod lag;
pub mod lag_view;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod partition;
pub mod pipeline;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod replay;
pub mod row_filter;
pub mod sample;
pub mod schedule;
pub mod source;
pub mod spark;
pub mod sql_size;
pub mod state;
pub mod target;
#[cfg(test)]
mod test_doubles;
pub mod text_table;
pub mod verify;

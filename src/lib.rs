//! `migrate` rebuilds the revision history ("issues") of a table from its daily SQL backups.
//!
//! The crate reads from the bottom up, and imports only point down:
//!
//! - [`values`]: dates, epiweeks, `issue` and `lag`, binary values, byte sizes;
//! - [`dump`]: the SQL dump reader (statements, `CREATE TABLE`, rows), self-contained;
//! - [`config`]: a run's settings, the columns' roles ([`config::layout`]) and the target
//!   table ([`config::target`]);
//! - [`workdir`]: atomic writes, the work folder's lock, the records of finished units;
//! - [`stages`]: discover → extract → diff → emit, each reading what the one before wrote;
//! - [`run`]: the conductor, which plans and schedules the stages' units ([`run::run`]);
//! - [`inspect`]: commands that only read: verify, asof, history, plot, the dry run;
//! - [`cli`]: the command line, validated once into a [`config::Config`];
//! - [`exit_codes`]: the exit statuses the binary promises.
//!
//! `ARCHITECTURE.md` at the repository's root is the map in prose.

pub mod cli;
pub mod config;
pub mod dump;
pub mod exit_codes;
pub mod inspect;
pub mod run;
pub mod stages;
pub mod values;
pub mod workdir;

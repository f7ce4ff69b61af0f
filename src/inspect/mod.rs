//! Commands that only read: a finished output (`verify`, `asof`, `history`, `plot`,
//! `sources`) or the plan of a run that has not happened (the dry run). None of them writes
//! issue rows.

pub mod asof;
pub mod dry_run;
pub mod events;
pub mod history;
pub mod lag_view;
pub mod output;
pub mod plot;
pub mod replay;
pub mod row_filter;
pub mod sources;
pub mod text_table;
pub mod verify;
pub mod verify_database;

//! Reading SQL dumps: a bounded window over the bytes, `sqlparser` for statement structure,
//! and a fast scanner for the rows.

mod buffer;
mod literals;
mod reader;
mod schema;
mod swar;
mod values;

pub use buffer::Position;
pub use reader::{DumpError, DumpReader, Event, MAX_STATEMENT_BYTES};
pub use schema::{
    parse_create_table, parse_insert_head, ColumnDef, ColumnKind, InsertHead, TableDef,
};
pub use values::{FieldKind, Row};

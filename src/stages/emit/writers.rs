//! Rows as CSV lines or INSERT statements, and the SQL files' session settings.

use std::io::Write;

use anyhow::{bail, Result};

use crate::config::layout::Layout;
use crate::config::OutputFormat;
use crate::dump::ColumnKind;
use crate::stages::emit::cells::Cell;
use crate::stages::emit::floats::write_float;
use crate::values::binary;

/// The session settings a SQL file starts with, as mariadb-dump's do, so that it loads
/// the same values whatever the client's defaults: the text is UTF-8 (utf8mb4), and a
/// table with `timestamp` columns has them in UTC, as the dump wrote them.
pub(super) fn write_sql_preamble(out: &mut dyn Write, layout: Option<&Layout>) -> Result<()> {
    writeln!(out, "/*!40101 SET NAMES utf8mb4 */;")?;
    if has_timestamps(layout) {
        writeln!(
            out,
            "/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n/*!40103 SET TIME_ZONE='+00:00' */;"
        )?;
    }
    Ok(())
}

/// What `write_sql_preamble` changed, set back.
pub(super) fn write_sql_epilogue(out: &mut dyn Write, layout: Option<&Layout>) -> Result<()> {
    if has_timestamps(layout) {
        writeln!(out, "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;")?;
    }
    Ok(())
}

pub(super) fn has_timestamps(layout: Option<&Layout>) -> bool {
    layout.is_some_and(|l| l.columns.iter().any(|c| c.kind == ColumnKind::Timestamp))
}

/// Rows written into a block before it is handed on.
const BLOCK_BYTES: usize = 64 << 10;

/// Writes rows as CSV with a header, or as INSERT statements of at most `chunk_rows` rows.
pub(super) struct RowWriter {
    format: OutputFormat,
    chunk_rows: usize,
    rows: usize,
    /// SQL only: what opens each statement, up to its first row's `(`.
    insert_head: String,
    /// SQL only: `ON DUPLICATE KEY UPDATE` of these columns ends each statement.
    on_duplicate: String,
    /// Rows' text, handed to `out` in blocks of about `BLOCK_BYTES`: a call into `out` per
    /// row cost as much as writing its doubles (measured).
    block: Vec<u8>,
}

impl RowWriter {
    pub(super) fn start(
        out: &mut dyn Write,
        format: OutputFormat,
        table: &str,
        header: Vec<&str>,
        chunk_rows: usize,
        update: &[&str],
    ) -> Result<RowWriter> {
        if format == OutputFormat::Csv {
            write_csv_line(out, header.iter().map(|h| Cell::Text(h)))?;
        }
        let on_duplicate = if update.is_empty() {
            String::new()
        } else {
            let sets: Vec<String> = update
                .iter()
                .map(|c| {
                    let c = quote_name(c);
                    format!("{c}=VALUES({c})")
                })
                .collect();
            format!("\nON DUPLICATE KEY UPDATE {}", sets.join(","))
        };
        let columns: Vec<String> = header.iter().map(|h| quote_name(h)).collect();
        let insert_head = format!(
            "INSERT INTO {} ({}) VALUES\n(",
            quote_name(table),
            columns.join(",")
        );
        Ok(RowWriter {
            format,
            insert_head,
            chunk_rows,
            rows: 0,
            on_duplicate,
            block: Vec::with_capacity(BLOCK_BYTES + 4096),
        })
    }

    pub(super) fn row<'c>(
        &mut self,
        out: &mut dyn Write,
        cells: impl Iterator<Item = Cell<'c>>,
    ) -> Result<()> {
        let block = &mut self.block;
        match self.format {
            OutputFormat::Csv => write_csv_line(block, cells)?,
            OutputFormat::Parquet => bail!("Parquet files are written whole, not row by row"),
            OutputFormat::Sql => {
                if self.rows.is_multiple_of(self.chunk_rows) {
                    if self.rows > 0 {
                        writeln!(block, "{};", self.on_duplicate)?;
                    }
                    block.extend_from_slice(self.insert_head.as_bytes());
                } else {
                    block.extend_from_slice(b",\n(");
                }
                write_sql_tuple(block, cells)?;
                block.push(b')');
            }
        }
        if block.len() >= BLOCK_BYTES {
            out.write_all(block)?;
            block.clear();
        }
        self.rows += 1;
        Ok(())
    }

    pub(super) fn finish(self, out: &mut dyn Write) -> Result<()> {
        out.write_all(&self.block)?;
        if self.format == OutputFormat::Sql && self.rows > 0 {
            writeln!(out, "{};", self.on_duplicate)?;
        }
        Ok(())
    }
}

pub(super) fn quote_name(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(super) fn write_csv_line<'a>(
    out: &mut (impl Write + ?Sized),
    cells: impl Iterator<Item = Cell<'a>>,
) -> Result<()> {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        match cell {
            Cell::Null => {}
            Cell::Text(text) => {
                let needs_quotes = text.is_empty()
                    || text.contains([',', '"', '\n', '\r'])
                    || text.starts_with(' ')
                    || text.ends_with(' ');
                if needs_quotes {
                    write!(out, "\"{}\"", text.replace('"', "\"\""))?;
                } else {
                    out.write_all(text.as_bytes())?;
                }
            }
            Cell::Integer(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Unsigned(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Float(v) => write_float(out, v)?,
            Cell::Decimal(v) => out.write_all(v.as_bytes())?,
            // Hex digits need no quotes, but no digits at all would read as NULL.
            Cell::Binary(b"") => out.write_all(b"\"\"")?,
            Cell::Binary(bytes) => binary::write_hex(out, bytes)?,
        }
    }
    out.write_all(b"\n")?;
    Ok(())
}

pub(super) fn write_sql_tuple<'a>(
    out: &mut (impl Write + ?Sized),
    cells: impl Iterator<Item = Cell<'a>>,
) -> Result<()> {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        match cell {
            Cell::Null => out.write_all(b"NULL")?,
            Cell::Text(text) => {
                out.write_all(b"'")?;
                write_sql_escaped(out, text.as_bytes())?;
                out.write_all(b"'")?;
            }
            Cell::Integer(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Unsigned(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes())?,
            Cell::Decimal(v) => out.write_all(v.as_bytes())?,
            Cell::Float(v) if !v.is_finite() => {
                bail!("the value {v} cannot be stored in a MariaDB DOUBLE column")
            }
            Cell::Float(v) => write_float(out, v)?,
            Cell::Binary(bytes) => binary::write_sql_literal(out, bytes)?,
        }
    }
    Ok(())
}

/// The escape of each byte in a single-quoted MariaDB literal (as mariadb-dump writes it),
/// or 0 for a byte written as it is. Every such byte is ASCII, so UTF-8 text is escaped
/// byte by byte.
const SQL_ESCAPES: [u8; 256] = {
    let mut escapes = [0u8; 256];
    escapes[b'\\' as usize] = b'\\';
    escapes[b'\'' as usize] = b'\'';
    escapes[b'"' as usize] = b'"';
    escapes[0] = b'0';
    escapes[b'\n' as usize] = b'n';
    escapes[b'\r' as usize] = b'r';
    escapes[0x1a] = b'Z';
    escapes
};

/// Writes text escaped for a single-quoted MariaDB literal: runs with nothing to escape
/// are written whole (most text is one such run).
pub(super) fn write_sql_escaped(out: &mut (impl Write + ?Sized), text: &[u8]) -> Result<()> {
    let mut start = 0;
    for (i, &byte) in text.iter().enumerate() {
        let escape = SQL_ESCAPES[byte as usize];
        if escape != 0 {
            out.write_all(&text[start..i])?;
            out.write_all(&[b'\\', escape])?;
            start = i + 1;
        }
    }
    out.write_all(&text[start..])?;
    Ok(())
}

//! Stage 2, extract: one backup streams through the dump reader into one CSV partition per
//! value of the partition column (per source), under `partitions/<date>/`.
//!
//! Partition CSV: a header, then one line per row with every column but the id. NULL is an
//! empty field and text is always quoted, so the empty string (`""`) stays apart from NULL;
//! numbers keep the dump's spelling.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::atomic::StagedDir;
use crate::config::Config;
use crate::discover::Backup;
use crate::dump::{ColumnKind, DumpError, DumpReader, Event, FieldKind, InsertHead, Row, TableDef};
use crate::interrupt;
use crate::layout::Layout;
use crate::source::{open_backup, OnRead};
use crate::state::ExtractInputs;

/// File in each partition folder that records what the folder holds.
pub const INFO_FILE: &str = "partitions.json";

/// What one extracted backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub date: String,
    /// What the partitions were made from: a rerun redoes them when this changes.
    pub inputs: ExtractInputs,
    /// The table as the dump's CREATE TABLE declares it.
    pub table: TableDef,
    /// Rows per partition value, by file stem.
    pub partitions: Vec<PartitionEntry>,
    pub rows: u64,
    /// Uncompressed bytes of SQL read.
    pub sql_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// The partition column's value (the source).
    pub value: String,
    /// File name without `.csv`: the value made safe for any file system.
    pub stem: String,
    pub rows: u64,
}

impl PartitionInfo {
    /// The record in `dir` if there is one, readable and made from `inputs`.
    pub fn load_valid(dir: &Path, inputs: &ExtractInputs) -> Option<PartitionInfo> {
        let text = std::fs::read_to_string(dir.join(INFO_FILE)).ok()?;
        let info: PartitionInfo = serde_json::from_str(&text).ok()?;
        (info.inputs == *inputs).then_some(info)
    }
}

/// Extracts `backup` into the folder `dest` (replaced whole when the extract is complete).
pub fn extract(
    backup: &Backup,
    inputs: &ExtractInputs,
    config: &Config,
    dest: &Path,
    on_read: OnRead,
) -> Result<PartitionInfo> {
    let staged = StagedDir::new(dest)?;
    let info = extract_into(backup, inputs, config, staged.path(), on_read)
        .with_context(|| format!("backup {}", backup.path.display()))?;
    staged.commit()?;
    Ok(info)
}

fn extract_into(
    backup: &Backup,
    inputs: &ExtractInputs,
    config: &Config,
    dir: &Path,
    on_read: OnRead,
) -> Result<PartitionInfo> {
    let mut reader = DumpReader::new(open_backup(&backup.path, on_read)?);
    let mut layout: Option<Layout> = None;
    let mut table_def: Option<TableDef> = None;
    let mut writers = PartitionWriters::new(dir);
    // For the INSERT being read: where each stored column is in its rows; None to skip.
    let mut columns_in_rows: Option<Vec<usize>> = None;
    let mut expected_width = 0;
    loop {
        let event = match reader.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e @ DumpError::Io { .. }) => bail!(
                "{e}: the file is damaged or incomplete (an interrupted copy?); copy the \
                 backup again, or move it out of the folder to migrate without it"
            ),
            Err(e) => return Err(anyhow!(e)),
        };
        // Errors are worded here and placed after the match, where the reader is free again.
        let outcome: Result<(), String> = match event {
            Event::CreateTable(table) if table.name == config.table => {
                match Layout::new(&table, config) {
                    Ok(checked) => {
                        layout = Some(checked);
                        table_def = Some(table);
                        Ok(())
                    }
                    Err(e) => Err(format!("{e:#}")),
                }
            }
            Event::CreateTable(_) => Ok(()),
            Event::Insert(head) if head.table == config.table => match &layout {
                _ if interrupt::requested() => Err(interrupt::MESSAGE.into()),
                None => Err(format!(
                    "INSERT INTO `{}` comes before its CREATE TABLE; a dump must create the \
                     table first",
                    config.table
                )),
                Some(layout) => column_map(layout, &head).map(|(map, width)| {
                    columns_in_rows = Some(map);
                    expected_width = width;
                }),
            },
            Event::Insert(_) => {
                columns_in_rows = None;
                Ok(())
            }
            Event::Row(row) => match (&columns_in_rows, &layout) {
                (Some(_), _) if row.len() != expected_width => Err(format!(
                    "a row of `{}` has {} values, but {} columns were expected",
                    config.table,
                    row.len(),
                    expected_width
                )),
                (Some(map), Some(layout)) => writers.write_row(layout, map, row),
                _ => Ok(()),
            },
        };
        if let Err(message) = outcome {
            interrupt::check()?;
            bail!("{}: {message}", reader.position());
        }
    }
    if reader.position().offset == 0 {
        bail!("the file holds no SQL at all (an empty dump): replace it with a complete backup or remove it");
    }
    let Some(table) = table_def else {
        bail!(
            "the dump has no CREATE TABLE for `{}`; pass --table with the table to migrate",
            config.table
        );
    };
    let sql_bytes = reader.position().offset;
    let partitions = writers.finish()?;
    let info = PartitionInfo {
        date: backup.stamp(),
        inputs: inputs.clone(),
        rows: partitions.iter().map(|p| p.rows).sum(),
        table,
        partitions,
        sql_bytes,
    };
    let json = serde_json::to_string_pretty(&info)?;
    std::fs::write(dir.join(INFO_FILE), json)?;
    Ok(info)
}

/// Where each stored column sits in the rows of an INSERT, and how many values a row has.
fn column_map(layout: &Layout, head: &InsertHead) -> Result<(Vec<usize>, usize), String> {
    let Some(columns) = &head.columns else {
        return Ok((layout.table_index.clone(), layout.table_width));
    };
    let map = layout
        .names()
        .map(|name| {
            columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| format!("INSERT INTO `{}` lists no column `{name}`", head.table))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((map, columns.len()))
}

struct PartitionWriter {
    entry: PartitionEntry,
    out: BufWriter<File>,
}

struct PartitionWriters {
    dir: PathBuf,
    writers: Vec<PartitionWriter>,
    by_value: HashMap<Vec<u8>, usize>,
    /// The writer of the previous row: rows of one source mostly come in runs.
    last: Option<(Vec<u8>, usize)>,
}

impl PartitionWriters {
    fn new(dir: &Path) -> Self {
        PartitionWriters {
            dir: dir.to_path_buf(),
            writers: Vec::new(),
            by_value: HashMap::new(),
            last: None,
        }
    }

    fn write_row(&mut self, layout: &Layout, map: &[usize], row: &Row) -> Result<(), String> {
        let (_, value) = row.get(map[layout.partition]);
        let index = match &self.last {
            Some((last, index)) if last == value => *index,
            _ => {
                let index = match self.by_value.get(value) {
                    Some(&index) => index,
                    None => {
                        let writer = self.open(layout, value)?;
                        self.writers.push(writer);
                        self.by_value.insert(value.to_vec(), self.writers.len() - 1);
                        self.writers.len() - 1
                    }
                };
                self.last = Some((value.to_vec(), index));
                index
            }
        };
        let writer = &mut self.writers[index];
        writer.entry.rows += 1;
        let out = &mut writer.out;
        for (i, column) in layout.columns.iter().enumerate() {
            if i > 0 {
                out.write_all(b",").map_err(io_error)?;
            }
            let (kind, bytes) = row.get(map[i]);
            write_field(out, column.kind, kind, bytes)
                .map_err(|e| format!("column `{}`: {e}", column.name))?;
        }
        out.write_all(b"\n").map_err(io_error)
    }

    fn open(&self, layout: &Layout, value: &[u8]) -> Result<PartitionWriter, String> {
        let value = std::str::from_utf8(value)
            .map_err(|_| "the partition column holds bytes that are not UTF-8".to_string())?;
        let stem = file_stem(value);
        let path = self.dir.join(format!("{stem}.csv"));
        let file =
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut out = BufWriter::with_capacity(256 << 10, file);
        let header: Vec<&str> = layout.names().collect();
        writeln!(out, "{}", header.join(",")).map_err(io_error)?;
        Ok(PartitionWriter {
            entry: PartitionEntry {
                value: value.to_string(),
                stem,
                rows: 0,
            },
            out,
        })
    }

    fn finish(self) -> Result<Vec<PartitionEntry>> {
        let mut entries = Vec::new();
        for mut writer in self.writers {
            writer.out.flush().context("cannot write a partition")?;
            entries.push(writer.entry);
        }
        entries.sort_by(|a, b| a.value.cmp(&b.value));
        Ok(entries)
    }
}

fn io_error(e: std::io::Error) -> String {
    format!("cannot write a partition: {e}")
}

/// Writes one field in partition CSV form, checking it fits the column's type.
pub(crate) fn write_field(
    out: &mut impl Write,
    column: ColumnKind,
    kind: FieldKind,
    bytes: &[u8],
) -> Result<(), String> {
    match (kind, column) {
        (FieldKind::Null, _) => Ok(()),
        (_, ColumnKind::Text) => {
            std::str::from_utf8(bytes).map_err(|_| {
                "the value is not valid UTF-8 (the dump's character set must be utf8/utf8mb4)"
                    .to_string()
            })?;
            write_quoted(out, bytes).map_err(io_error)
        }
        (_, ColumnKind::Integer | ColumnKind::Float) => {
            let valid = match column {
                ColumnKind::Integer => is_integer(bytes),
                _ => is_decimal(bytes),
            };
            if !valid {
                return Err(format!(
                    "{:?} is not a number",
                    String::from_utf8_lossy(bytes)
                ));
            }
            out.write_all(bytes).map_err(io_error)
        }
    }
}

/// Writes text as a CSV field: as it is when that reads back the same, which is most text
/// and spares the reader work; quoted when it is empty (an empty field is NULL), holds a
/// delimiter, quote or line break, or has spaces at its ends.
fn write_quoted(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let plain = match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            first != b' '
                && last != b' '
                && !bytes
                    .iter()
                    .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        }
        _ => false,
    };
    if plain {
        return out.write_all(bytes);
    }
    out.write_all(b"\"")?;
    let mut rest = bytes;
    while let Some(i) = memchr::memchr(b'"', rest) {
        out.write_all(&rest[..=i])?;
        out.write_all(b"\"")?;
        rest = &rest[i + 1..];
    }
    out.write_all(rest)?;
    out.write_all(b"\"")
}

fn is_integer(bytes: &[u8]) -> bool {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

fn is_decimal(bytes: &[u8]) -> bool {
    bytes.iter().any(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

/// A file name for a partition value: letters, digits, `-`, `_` and `.` stay, every other
/// byte becomes `%XX`, so distinct values never share a file.
pub fn file_stem(value: &str) -> String {
    if value.is_empty() {
        return "%".into();
    }
    let mut stem = String::with_capacity(value.len());
    for (i, b) in value.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            stem.push(b as char);
        } else {
            stem.push_str(&format!("%{b:02X}"));
        }
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe_and_distinct() {
        assert_eq!(file_stem("fb-survey"), "fb-survey");
        assert_eq!(file_stem("a/b c"), "a%2Fb%20c");
        assert_eq!(file_stem(".."), "%2E.");
        assert_eq!(file_stem(""), "%");
        assert_ne!(file_stem("a%2F"), file_stem("a/"));
    }

    #[test]
    fn fields_in_partition_form() {
        let field = |column, kind, bytes: &[u8]| {
            let mut out = Vec::new();
            write_field(&mut out, column, kind, bytes).map(|()| String::from_utf8(out).unwrap())
        };
        assert_eq!(
            field(ColumnKind::Text, FieldKind::Quoted, b"a\"b,c"),
            Ok("\"a\"\"b,c\"".into())
        );
        assert_eq!(
            field(ColumnKind::Text, FieldKind::Quoted, b""),
            Ok("\"\"".into())
        );
        assert_eq!(field(ColumnKind::Text, FieldKind::Null, b""), Ok("".into()));
        // Most text goes unquoted; what would not read back the same is quoted.
        assert_eq!(
            field(ColumnKind::Text, FieldKind::Quoted, b"01001"),
            Ok("01001".into())
        );
        assert_eq!(
            field(ColumnKind::Text, FieldKind::Quoted, b"NULL"),
            Ok("NULL".into())
        );
        for needs_quotes in [&b" a"[..], b"a ", b"a\nb", b"a\rb", b"a,b"] {
            let text = field(ColumnKind::Text, FieldKind::Quoted, needs_quotes).unwrap();
            assert!(text.starts_with('"') && text.ends_with('"'), "{text}");
        }
        assert_eq!(
            field(ColumnKind::Float, FieldKind::Bare, b"-1.5e-16"),
            Ok("-1.5e-16".into())
        );
        assert_eq!(
            field(ColumnKind::Float, FieldKind::Quoted, b"2.50"),
            Ok("2.50".into())
        );
        assert_eq!(
            field(ColumnKind::Integer, FieldKind::Bare, b"-12"),
            Ok("-12".into())
        );
        assert!(field(ColumnKind::Integer, FieldKind::Bare, b"1.5").is_err());
        assert!(field(ColumnKind::Float, FieldKind::Quoted, b"abc").is_err());
        assert!(field(ColumnKind::Text, FieldKind::Quoted, b"\xff").is_err());
    }
}

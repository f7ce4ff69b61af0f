//! Stage 2, extract: one backup streams through the dump reader into one partition file per
//! value of the partition column (per source), under `partitions/date=<date>/`: Parquet
//! (`parquet.rs`) or CSV (`csv.rs`). The folder names follow Hive's `key=value` style, so
//! Spark, DuckDB or pyarrow read the whole tree as one dataset with a `date` column; each
//! file holds every column but the id, so a file read alone is complete.

pub mod source;
pub mod sql_size;

mod csv;
mod dictionary;
pub mod fingerprint;
mod integer_dictionary;
mod numbers;
pub mod parquet;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::layout::Layout;
use crate::config::{Config, PartitionFormat};
use crate::dump::{DumpError, DumpReader, Event, InsertHead, Row, TableDef};
use crate::stages::discover::Backup;
use crate::stages::extract::source::{open_backup, OnRead};
use crate::workdir::atomic::StagedDir;
use crate::workdir::direct::DirectWriter;
use crate::workdir::interrupt;
use crate::workdir::state::ExtractInputs;

pub(crate) use self::csv::write_field;
use self::csv::CsvPartition;
use self::parquet::ParquetPartition;

/// File in each partition folder that records what the folder holds.
/// Its `_` prefix makes dataset readers (Spark, pyarrow) pass over it.
pub const INFO_FILE: &str = "_partitions.json";

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
    /// The columns' roles in this backup's table under `config`.
    pub fn layout(&self, config: &Config) -> Result<Layout> {
        Layout::new(&self.table, config.roles())
            .with_context(|| format!("the backup of {}", self.date))
    }

    /// The record in `dir` if there is one, readable and made from `inputs`.
    pub fn load_valid(dir: &Path, inputs: &ExtractInputs) -> Option<PartitionInfo> {
        let text = std::fs::read_to_string(dir.join(INFO_FILE)).ok()?;
        let info: PartitionInfo = serde_json::from_str(&text).ok()?;
        (info.inputs == *inputs).then_some(info)
    }
}

/// Extracts `backup` into a folder staged for `dest`; committing it (`StagedDir::commit`,
/// which the caller may leave to another thread) replaces `dest` whole.
/// `buffer_bytes`: the most its rows not yet written may take in memory.
pub fn extract(
    backup: &Backup,
    inputs: &ExtractInputs,
    config: &Config,
    dest: &Path,
    buffer_bytes: u64,
    on_read: OnRead,
) -> Result<(PartitionInfo, StagedDir)> {
    let staged = StagedDir::new(dest)?;
    let info = extract_into(backup, inputs, config, staged.path(), buffer_bytes, on_read)
        .with_context(|| format!("backup {}", backup.path.display()))?;
    // A backup still being copied would give partitions of half a file.
    let now = ExtractInputs::of(backup, config)?;
    if (now.size, now.modified_unix_ns) != (inputs.size, inputs.modified_unix_ns) {
        bail!(
            "backup {} changed while it was read (size {} → {} bytes, or its modification \
             time): a copy may still be running; wait until it is complete, then run again",
            backup.path.display(),
            inputs.size,
            now.size
        );
    }
    Ok((info, staged))
}

fn extract_into(
    backup: &Backup,
    inputs: &ExtractInputs,
    config: &Config,
    dir: &Path,
    buffer_bytes: u64,
    on_read: OnRead,
) -> Result<PartitionInfo> {
    let mut writers = PartitionWriters::new(Some(dir), config.partition_format, buffer_bytes);
    let read = read_rows(backup, config, &mut writers, on_read, &mut |_| false)?;
    let partitions = writers.finish()?;
    let info = PartitionInfo {
        date: backup.stamp(),
        inputs: inputs.clone(),
        rows: partitions.iter().map(|(p, _)| p.rows).sum(),
        table: read.table,
        partitions: partitions.into_iter().map(|(p, _)| p).collect(),
        sql_bytes: read.sql_bytes,
    };
    let json = serde_json::to_string_pretty(&info)?;
    let info_file = dir.join(INFO_FILE);
    std::fs::write(&info_file, json)
        .with_context(|| format!("cannot write {} in the work folder", info_file.display()))?;
    Ok(info)
}

/// The start of a backup read as extraction reads it, its partitions kept in memory: what
/// the dry run times.
pub struct Sample {
    pub table: TableDef,
    /// Uncompressed SQL read.
    pub sql_bytes: u64,
    /// True when the sample is the whole backup.
    pub whole: bool,
    /// The partitions as extraction would have written them, with their bytes.
    pub partitions: Vec<(PartitionEntry, Vec<u8>)>,
}

/// Reads `backup` as `extract` does, but into memory (nothing is written), until it ends or
/// `stop(SQL bytes read so far)` says so; `stop` is asked after rows, never before the
/// table's `CREATE TABLE`.
pub fn sample(
    backup: &Backup,
    config: &Config,
    buffer_bytes: u64,
    on_read: OnRead,
    stop: &mut dyn FnMut(u64) -> bool,
) -> Result<Sample> {
    let mut writers = PartitionWriters::new(None, config.partition_format, buffer_bytes);
    let read = read_rows(backup, config, &mut writers, on_read, stop)
        .with_context(|| format!("backup {}", backup.path.display()))?;
    let partitions = writers.finish()?;
    Ok(Sample {
        table: read.table,
        sql_bytes: read.sql_bytes,
        whole: read.whole,
        partitions: (partitions.into_iter())
            .map(|(entry, bytes)| (entry, bytes.unwrap_or_default()))
            .collect(),
    })
}

/// What `read_rows` read.
struct Read {
    table: TableDef,
    sql_bytes: u64,
    /// False when `stop` ended the reading before the end of the dump.
    whole: bool,
}

/// Streams the dump's rows of the table into `writers`, until the dump ends or `stop`.
fn read_rows(
    backup: &Backup,
    config: &Config,
    writers: &mut PartitionWriters,
    on_read: OnRead,
    stop: &mut dyn FnMut(u64) -> bool,
) -> Result<Read> {
    let mut reader = DumpReader::new(open_backup(&backup.path, on_read)?);
    let mut layout: Option<Layout> = None;
    let mut table_def: Option<TableDef> = None;
    // For the INSERT being read: where each stored column is in its rows; None to skip.
    let mut columns_in_rows: Option<Vec<usize>> = None;
    let mut expected_width = 0;
    let mut whole = true;
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
        let is_row = matches!(event, Event::Row(_));
        // Errors are worded here and placed after the match, where the reader is free again.
        let outcome: Result<(), String> = match event {
            Event::CreateTable(table) if table.name == config.table => {
                match Layout::new(&table, config.roles()) {
                    Ok(checked) => {
                        layout = Some(checked);
                        table_def = Some(table);
                        Ok(())
                    }
                    Err(e) => Err(format!("{e:#}")),
                }
            }
            Event::CreateTable(_) | Event::Statement(_) => Ok(()),
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
                (Some(map), Some(layout)) => writers.write_row(layout, map, &row),
                _ => Ok(()),
            },
        };
        if let Err(message) = outcome {
            interrupt::check()?;
            bail!("{}: {message}", reader.position());
        }
        if is_row && table_def.is_some() && stop(reader.offset()) {
            whole = false;
            break;
        }
    }
    if reader.offset() == 0 {
        bail!("the file holds no SQL at all (an empty dump): replace it with a complete backup or remove it");
    }
    let Some(table) = table_def else {
        bail!(
            "the dump has no CREATE TABLE for `{}`; pass --table with the table to migrate",
            config.table
        );
    };
    Ok(Read {
        table,
        sql_bytes: reader.offset(),
        whole,
    })
}

/// The table's `CREATE TABLE` in `backup`, read without going on to its rows.
pub fn read_table(backup: &Backup, config: &Config) -> Result<TableDef> {
    let context = || format!("backup {}", backup.path.display());
    let mut reader = DumpReader::new(open_backup(&backup.path, Box::new(|_| {}))?);
    while let Some(event) = reader
        .next_event()
        .map_err(|e| anyhow!(e))
        .with_context(context)?
    {
        match event {
            Event::CreateTable(table) if table.name == config.table => return Ok(table),
            Event::Insert(head) if head.table == config.table => break,
            _ => {}
        }
    }
    Err(anyhow!(
        "the dump has no CREATE TABLE for `{}` before its rows; pass --table with the table \
         to migrate",
        config.table
    ))
    .with_context(context)
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

/// What a partition file gathers before it writes (`DirectWriter`): a few hundred files may
/// be open at once.
const PARTITION_BUFFER_BYTES: usize = 256 << 10;

/// Where a partition file's bytes go: a file, past the page cache where it can
/// (`workdir::direct`), or a buffer in memory (the dry run's sample, which writes nothing).
pub(crate) enum Sink {
    File(DirectWriter<File>),
    Memory(MemoryFile),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(file) => file.write(buf),
            Sink::Memory(memory) => memory.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(file) => file.flush(),
            Sink::Memory(_) => Ok(()),
        }
    }
}

/// A file's bytes in memory, shared so that they can be taken after its writer is done.
#[derive(Clone, Default)]
pub(crate) struct MemoryFile(Arc<Mutex<Vec<u8>>>);

impl MemoryFile {
    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().expect("not poisoned"))
    }
}

/// One partition file being written: CSV or Parquet.
enum PartitionFile {
    Csv(CsvPartition),
    Parquet(Box<ParquetPartition>),
}

impl PartitionFile {
    fn create(
        sink: Sink,
        name: &str,
        layout: &Layout,
        format: PartitionFormat,
    ) -> Result<Self, String> {
        Ok(match format {
            PartitionFormat::Csv => PartitionFile::Csv(CsvPartition::create(sink, layout)?),
            PartitionFormat::Parquet => {
                PartitionFile::Parquet(Box::new(ParquetPartition::create(sink, name, layout)?))
            }
        })
    }

    fn write_row(&mut self, layout: &Layout, map: &[usize], row: &Row<'_>) -> Result<(), String> {
        match self {
            PartitionFile::Csv(file) => file.write_row(layout, map, row),
            PartitionFile::Parquet(file) => file.write_row(layout, map, row),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            PartitionFile::Csv(file) => file.finish(),
            PartitionFile::Parquet(file) => file.finish(),
        }
    }

    /// What its rows not yet written take in memory (a CSV file buffers a few KiB only).
    fn buffered(&self) -> usize {
        match self {
            PartitionFile::Csv(_) => 0,
            PartitionFile::Parquet(file) => file.buffered(),
        }
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            PartitionFile::Csv(_) => Ok(()),
            PartitionFile::Parquet(file) => file.flush(),
        }
    }
}

struct PartitionWriter {
    entry: PartitionEntry,
    file: PartitionFile,
    /// The file's bytes, when it is kept in memory.
    memory: Option<MemoryFile>,
}

/// Routes each row to the file of its partition value, opening files as values appear.
struct PartitionWriters {
    /// The folder of the files; None: in memory.
    dir: Option<PathBuf>,
    format: PartitionFormat,
    writers: Vec<PartitionWriter>,
    by_value: HashMap<Vec<u8>, usize>,
    /// The writer of the previous row: rows of one source mostly come in runs.
    last: Option<(Vec<u8>, usize)>,
    /// What the files' rows not yet written take in memory together, about, and the most
    /// they may: past it, the file with the most is written out.
    buffered: usize,
    buffer_limit: usize,
}

impl PartitionWriters {
    fn new(dir: Option<&Path>, format: PartitionFormat, buffer_limit: u64) -> Self {
        PartitionWriters {
            dir: dir.map(Path::to_path_buf),
            format,
            writers: Vec::new(),
            by_value: HashMap::new(),
            last: None,
            buffered: 0,
            buffer_limit: buffer_limit as usize,
        }
    }

    fn write_row(&mut self, layout: &Layout, map: &[usize], row: &Row<'_>) -> Result<(), String> {
        let (_, value) = row.get(map[layout.partition]);
        let index = match &self.last {
            Some((last, index)) if dictionary::same_bytes(last, value) => *index,
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
        let before = writer.file.buffered();
        writer.file.write_row(layout, map, row)?;
        self.buffered = self.buffered + writer.file.buffered() - before;
        if self.buffered > self.buffer_limit {
            self.write_largest()
                .map_err(|e| format!("cannot write a partition: {e}"))?;
        }
        Ok(())
    }

    /// Writes out the rows of the file that buffers the most.
    fn write_largest(&mut self) -> Result<()> {
        let Some(largest) = self.writers.iter_mut().max_by_key(|w| w.file.buffered()) else {
            return Ok(());
        };
        self.buffered -= largest.file.buffered();
        largest.file.flush()
    }

    fn open(&self, layout: &Layout, value: &[u8]) -> Result<PartitionWriter, String> {
        let value = std::str::from_utf8(value)
            .map_err(|_| "the partition column holds bytes that are not UTF-8".to_string())?;
        let stem = file_stem(value);
        let name = format!("{stem}.{}", self.format.extension());
        let (sink, memory) = match &self.dir {
            Some(dir) => {
                let path = dir.join(&name);
                let file = File::create(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                let out = DirectWriter::with_buffer(file, PARTITION_BUFFER_BYTES);
                (Sink::File(out), None)
            }
            None => {
                let memory = MemoryFile::default();
                (Sink::Memory(memory.clone()), Some(memory))
            }
        };
        Ok(PartitionWriter {
            file: PartitionFile::create(sink, &name, layout, self.format)?,
            entry: PartitionEntry {
                value: value.to_string(),
                stem,
                rows: 0,
            },
            memory,
        })
    }

    /// Finishes every file: their entries, sorted by value, with their bytes if in memory.
    fn finish(self) -> Result<Vec<(PartitionEntry, Option<Vec<u8>>)>> {
        let mut entries = Vec::new();
        for writer in self.writers {
            writer.file.finish().context("cannot write a partition")?;
            entries.push((writer.entry, writer.memory.map(|m| m.take())));
        }
        entries.sort_by(|a, b| a.0.value.cmp(&b.0.value));
        Ok(entries)
    }
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
}

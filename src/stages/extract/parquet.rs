//! Partitions as Parquet: every column but the id, typed (text as strings, which the writer
//! dictionary-encodes, integers and doubles parsed once here instead of at every read,
//! `bigint unsigned` as unsigned 64-bit integers, decimals as their canonical text,
//! binary columns as Parquet binary). Each row also gets its key's fingerprint
//! (`fingerprint.rs`), the diff's join column.
//! Rows are buffered per file in batches of a fixed size, each written as a row group, so
//! memory stays flat whatever the size of the dump.

use std::io::Write;

use anyhow::Result;
use polars::prelude::{
    ArrayRef, BinaryChunkedBuilder, ChunkedArray, ChunkedBuilder, CompatLevel, DataType, Field,
    Float64Type, Int64Type, PlSmallStr, PolarsNumericType, PrimitiveChunkedBuilder, Schema,
    SchemaExt, UInt64Type,
};
use polars_arrow::array::PrimitiveArray;
use polars_arrow::datatypes::ArrowSchemaRef;
use polars_arrow::record_batch::RecordBatchT;
use polars_io::parquet::write::{ParquetCompression, StatisticsOptions};
use polars_parquet::write::{
    row_group_iter, to_parquet_schema, Encoding, FileWriter, ParquetType, Version, WriteOptions,
};

use super::csv::{binary_for_number, number_for_binary};
use super::dictionary::DictionaryColumn;
use super::fingerprint::{self, KeyFingerprint};
use super::integer_dictionary;
use super::numbers::parse_unsigned;
use super::numbers::{parse_decimal, parse_integer};
use crate::config::layout::Layout;
use crate::dump::{ColumnKind, FieldKind, Row};
use crate::values::decimal::canonical_decimal;

use super::Sink;

/// Rows per row group at most: large enough for fast reads. Many sources at once, or a small
/// memory budget, write smaller ones (`PartitionWriters` writes the largest buffer when all
/// of them together reach the extract's share).
const BATCH_ROWS: usize = 1 << 16;

/// What a value takes in a builder of numbers or binary, about: 8 bytes for a number, a bit
/// of validity for a NULL. Text columns count their own (`DictionaryColumn::push`).
const NUMBER_BYTES: usize = 8;
const NULL_BYTES: usize = 1;

/// A binary value: a view of 16 bytes, and its bytes too when longer than the 12 a view
/// holds.
fn binary_bytes(bytes: &[u8]) -> usize {
    if bytes.len() > 12 {
        16 + bytes.len()
    } else {
        16
    }
}

/// The type of each stored column in a Parquet partition, and last the key's fingerprint.
pub fn file_schema(layout: &Layout) -> Schema {
    let mut schema = stored_schema(layout);
    schema.with_column(fingerprint::COLUMN.into(), DataType::UInt64);
    schema
}

/// The type of each stored column, as the partitions (and the Spark job's result) hold it.
pub fn stored_schema(layout: &Layout) -> Schema {
    let stored = layout.columns.iter().map(|column| {
        let dtype = match column.kind {
            ColumnKind::Integer => DataType::Int64,
            ColumnKind::Unsigned => DataType::UInt64,
            ColumnKind::Float => DataType::Float64,
            ColumnKind::Binary => DataType::Binary,
            // Text, the dates, and decimals as their canonical text.
            _ => DataType::String,
        };
        Field::new(column.name.as_str().into(), dtype)
    });
    stored.collect()
}

enum Builder {
    /// Text, the dates, and decimals (their canonical text, made in the buffer).
    Text(DictionaryColumn),
    Decimal(DictionaryColumn, u8, Vec<u8>),
    Integer(PrimitiveChunkedBuilder<Int64Type>),
    Float(PrimitiveChunkedBuilder<Float64Type>),
    Binary(BinaryChunkedBuilder),
    Unsigned(PrimitiveChunkedBuilder<UInt64Type>),
}

impl Builder {
    fn new(kind: ColumnKind, name: &str) -> Builder {
        let name = PlSmallStr::from(name);
        match kind {
            ColumnKind::Integer => Builder::Integer(PrimitiveChunkedBuilder::new(name, BATCH_ROWS)),
            ColumnKind::Float => Builder::Float(PrimitiveChunkedBuilder::new(name, BATCH_ROWS)),
            ColumnKind::Binary => Builder::Binary(BinaryChunkedBuilder::new(name, BATCH_ROWS)),
            ColumnKind::Unsigned => {
                Builder::Unsigned(PrimitiveChunkedBuilder::new(name, BATCH_ROWS))
            }
            ColumnKind::Decimal { scale } => {
                Builder::Decimal(DictionaryColumn::default(), scale, Vec::new())
            }
            ColumnKind::Text | ColumnKind::Date | ColumnKind::DateTime | ColumnKind::Timestamp => {
                Builder::Text(DictionaryColumn::default())
            }
        }
    }

    /// Appends one value, and returns what it takes in memory, about; a key column's
    /// value also goes into the row's `key`.
    /// `ascii`: the whole row is ASCII, so text needs no UTF-8 check.
    fn push(
        &mut self,
        kind: FieldKind,
        bytes: &[u8],
        ascii: bool,
        key: Option<&mut KeyFingerprint>,
    ) -> Result<usize, String> {
        if kind == FieldKind::Null {
            let mut buffered = NULL_BYTES;
            match self {
                Builder::Text(b) | Builder::Decimal(b, _, _) => buffered = b.push_null(),
                Builder::Integer(b) => b.append_null(),
                Builder::Float(b) => b.append_null(),
                Builder::Binary(b) => b.append_null(),
                Builder::Unsigned(b) => b.append_null(),
            }
            if let Some(key) = key {
                key.null();
            }
            return Ok(buffered);
        }
        let mut buffered = NUMBER_BYTES;
        let not_a_number = || format!("{:?} is not a number", String::from_utf8_lossy(bytes));
        match self {
            Builder::Binary(_) if kind == FieldKind::Bare => return Err(number_for_binary(bytes)),
            Builder::Binary(b) => {
                buffered = binary_bytes(bytes);
                b.append_value(bytes);
                if let Some(key) = key {
                    key.text(bytes);
                }
            }
            Builder::Integer(_)
            | Builder::Float(_)
            | Builder::Unsigned(_)
            | Builder::Decimal(..)
                if kind == FieldKind::Binary =>
            {
                return Err(binary_for_number(bytes))
            }
            Builder::Text(b) => {
                buffered = b.push(text(bytes, ascii)?);
                if let Some(key) = key {
                    key.text_hashed(b.last_hash());
                }
            }
            Builder::Integer(b) => {
                let value = parse_integer(bytes).ok_or_else(not_a_number)?;
                b.append_value(value);
                if let Some(key) = key {
                    key.integer(value);
                }
            }
            Builder::Float(b) => {
                let value = parse_decimal(bytes).ok_or_else(not_a_number)?;
                b.append_value(value);
                if let Some(key) = key {
                    key.float(value);
                }
            }
            Builder::Unsigned(b) => {
                let value = parse_unsigned(bytes).ok_or_else(not_an_unsigned(bytes))?;
                b.append_value(value);
                if let Some(key) = key {
                    key.unsigned(value);
                }
            }
            Builder::Decimal(b, scale, canonical) => {
                canonical_decimal(bytes, *scale, canonical)?;
                // SAFETY: the canonical text is made of ASCII digits, `-` and `.` only.
                buffered = b.push(unsafe { std::str::from_utf8_unchecked(canonical) });
                if let Some(key) = key {
                    key.text_hashed(b.last_hash());
                }
            }
        }
        Ok(buffered)
    }

    /// The column's rows as one array, and the encoding to write it with. Text is a
    /// dictionary already; doubles are written plain, as polars' writer did after estimating
    /// their distinct values (a HyperLogLog pass, a hash per value): measured values rarely
    /// repeat. Integers are dictionary-encoded when they repeat (`integer_dictionary.rs`).
    fn finish(self) -> (ArrayRef, Encoding) {
        fn array<T: polars::prelude::PolarsDataType>(
            column: polars::prelude::ChunkedArray<T>,
        ) -> ArrayRef {
            column.rechunk().chunks()[0].clone()
        }
        fn integers<T: PolarsNumericType>(column: ChunkedArray<T>) -> (ArrayRef, Encoding)
        where
            T::Native: std::hash::Hash + Eq + Into<i128>,
        {
            let rows = column.rechunk().downcast_iter().next().cloned();
            integer_dictionary::encode(rows.expect("a rechunked column has one chunk"))
        }
        match self {
            Builder::Text(mut b) | Builder::Decimal(mut b, _, _) => {
                (b.finish(), Encoding::RleDictionary)
            }
            Builder::Integer(b) => integers(b.finish()),
            Builder::Float(b) => (array(b.finish()), Encoding::Plain),
            Builder::Binary(b) => (array(b.finish()), Encoding::RleDictionary),
            Builder::Unsigned(b) => integers(b.finish()),
        }
    }
}

/// The message for a value of a `bigint unsigned` column that is no such number.
pub(super) fn not_an_unsigned(bytes: &[u8]) -> impl Fn() -> String + '_ {
    move || {
        format!(
            "{:?} is not an unsigned 64-bit integer (0 to 18446744073709551615)",
            String::from_utf8_lossy(bytes)
        )
    }
}

/// Text as a `str`: checked as UTF-8 unless the row it is in is all ASCII.
fn text(bytes: &[u8], ascii: bool) -> Result<&str, String> {
    if ascii {
        debug_assert!(bytes.is_ascii());
        // SAFETY: ASCII is valid UTF-8; `ascii` holds only when every byte of the row is.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|_| {
        "the value is not valid UTF-8 (the dump's character set must be utf8/utf8mb4)".to_string()
    })
}

pub(super) struct ParquetPartition {
    writer: FileWriter<Sink>,
    /// The file's Arrow schema (text as `Utf8View`: the dictionaries' pages are those of a
    /// string column, and readers see strings) and its Parquet columns.
    schema: ArrowSchemaRef,
    fields: Vec<ParquetType>,
    options: WriteOptions,
    builders: Vec<Builder>,
    key: KeyFingerprint,
    fingerprints: Vec<u64>,
    rows: usize,
    /// What the rows not yet written take in memory, about (`Builder::push`).
    buffered: usize,
    layout: Layout,
}

impl ParquetPartition {
    /// `name` is the file's, for errors.
    pub(super) fn create(sink: Sink, name: &str, layout: &Layout) -> Result<Self, String> {
        // Uncompressed, no statistics: the text is dictionary-encoded already and LZ4
        // shrank the rest (doubles, fingerprints) by a sixth for 2.7% of a run's CPU
        // (measured: 789 -> 939 MB of partitions, a run 1-4% faster); zstd and min/max
        // cost 18% of extraction's CPU. Nothing reads the statistics (the diff reads whole
        // files). One thread: extraction already keeps the cores busy.
        let options = WriteOptions {
            statistics: StatisticsOptions::empty(),
            compression: ParquetCompression::Uncompressed.into(),
            version: Version::V1,
            data_page_size: None,
        };
        let create = || -> Result<_> {
            let schema = file_schema(layout).to_arrow(CompatLevel::newest());
            let fields = to_parquet_schema(&schema)?.fields().to_vec();
            // No buffer in front: the sink gathers whole blocks itself.
            let writer = FileWriter::try_new(sink, schema.clone(), options)?;
            Ok((writer, schema.into(), fields))
        };
        let (writer, schema, fields) =
            create().map_err(|e| format!("cannot create {name}: {e}"))?;
        Ok(ParquetPartition {
            writer,
            schema,
            fields,
            options,
            builders: new_builders(layout),
            key: KeyFingerprint::default(),
            fingerprints: Vec::with_capacity(BATCH_ROWS),
            rows: 0,
            buffered: 0,
            layout: layout.clone(),
        })
    }

    pub(super) fn write_row(
        &mut self,
        layout: &Layout,
        map: &[usize],
        row: &Row<'_>,
    ) -> Result<(), String> {
        // One check of the row instead of one per text value: dumps are mostly ASCII.
        let ascii = row.is_ascii();
        for (i, (builder, column)) in self.builders.iter_mut().zip(&layout.columns).enumerate() {
            let (kind, bytes) = row.get(map[i]);
            let key = column.is_key.then_some(&mut self.key);
            self.buffered += builder
                .push(kind, bytes, ascii, key)
                .map_err(|e| format!("column `{}`: {e}", column.name))?;
        }
        self.fingerprints.push(self.key.finish());
        self.buffered += 8;
        self.rows += 1;
        if self.rows == BATCH_ROWS {
            self.flush()
                .map_err(|e| format!("cannot write a partition: {e}"))?;
        }
        Ok(())
    }

    /// What the rows not yet written take in memory, about.
    pub(super) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Writes the rows buffered as a row group.
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let builders = std::mem::replace(&mut self.builders, new_builders(&self.layout));
        let (mut arrays, mut encodings): (Vec<ArrayRef>, Vec<Vec<Encoding>>) = builders
            .into_iter()
            .map(|builder| {
                let (array, encoding) = builder.finish();
                (array, vec![encoding])
            })
            .unzip();
        let fingerprints =
            std::mem::replace(&mut self.fingerprints, Vec::with_capacity(BATCH_ROWS));
        // Fingerprints are all distinct, or nearly: plain.
        arrays.push(PrimitiveArray::from_vec(fingerprints).boxed());
        encodings.push(vec![Encoding::Plain]);
        let batch = RecordBatchT::try_new(self.rows, self.schema.clone(), arrays)?;
        let columns = row_group_iter(batch, encodings.into(), self.fields.clone(), self.options);
        self.writer.write(self.rows as u64, columns)?;
        self.rows = 0;
        self.buffered = 0;
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<()> {
        self.flush()?;
        // Writes the footer and flushes the buffer.
        self.writer.end(None)?;
        self.writer.into_inner().flush()?;
        Ok(())
    }
}

fn new_builders(layout: &Layout) -> Vec<Builder> {
    layout
        .columns
        .iter()
        .map(|c| Builder::new(c.kind, &c.name))
        .collect()
}

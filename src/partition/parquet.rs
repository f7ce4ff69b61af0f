//! Partitions as Parquet: every column but the id, typed (text as strings, which the writer
//! dictionary-encodes, integers and doubles parsed once here instead of at every read).
//! Rows are buffered per file in batches of a fixed size, each written as a row group, so
//! memory stays flat whatever the size of the dump.

use std::io::BufWriter;

use anyhow::Result;
use polars::io::parquet::write::BatchedWriter;
use polars::prelude::{
    ChunkedBuilder, Column, DataFrame, DataType, Field, Float64Type, Int64Type, IntoColumn,
    ParquetCompression, ParquetWriter, PlSmallStr, PrimitiveChunkedBuilder, Schema,
    StringChunkedBuilder,
};

use super::csv::{is_decimal, is_integer};
use crate::dump::{ColumnKind, FieldKind, Row};
use crate::layout::Layout;

use super::Sink;

/// Rows per row group: large enough for fast reads, small enough that the buffers of many
/// sources at once stay in tens of MB.
const BATCH_ROWS: usize = 1 << 16;

/// The type of each stored column in a Parquet partition.
pub fn file_schema(layout: &Layout) -> Schema {
    layout
        .columns
        .iter()
        .map(|column| {
            let dtype = match column.kind {
                ColumnKind::Integer => DataType::Int64,
                ColumnKind::Float => DataType::Float64,
                ColumnKind::Text => DataType::String,
            };
            Field::new(column.name.as_str().into(), dtype)
        })
        .collect()
}

enum Builder {
    Text(StringChunkedBuilder),
    Integer(PrimitiveChunkedBuilder<Int64Type>),
    Float(PrimitiveChunkedBuilder<Float64Type>),
}

impl Builder {
    fn new(kind: ColumnKind, name: &str) -> Builder {
        let name = PlSmallStr::from(name);
        match kind {
            ColumnKind::Text => Builder::Text(StringChunkedBuilder::new(name, BATCH_ROWS)),
            ColumnKind::Integer => Builder::Integer(PrimitiveChunkedBuilder::new(name, BATCH_ROWS)),
            ColumnKind::Float => Builder::Float(PrimitiveChunkedBuilder::new(name, BATCH_ROWS)),
        }
    }

    fn push(&mut self, kind: FieldKind, bytes: &[u8]) -> Result<(), String> {
        if kind == FieldKind::Null {
            match self {
                Builder::Text(b) => b.append_null(),
                Builder::Integer(b) => b.append_null(),
                Builder::Float(b) => b.append_null(),
            }
            return Ok(());
        }
        let not_a_number = || format!("{:?} is not a number", String::from_utf8_lossy(bytes));
        match self {
            Builder::Text(b) => b.append_value(std::str::from_utf8(bytes).map_err(|_| {
                "the value is not valid UTF-8 (the dump's character set must be utf8/utf8mb4)"
                    .to_string()
            })?),
            Builder::Integer(b) => {
                let text = std::str::from_utf8(bytes)
                    .ok()
                    .filter(|_| is_integer(bytes));
                let value = text.and_then(|t| t.parse::<i64>().ok());
                b.append_value(value.ok_or_else(not_a_number)?);
            }
            Builder::Float(b) => {
                let text = std::str::from_utf8(bytes)
                    .ok()
                    .filter(|_| is_decimal(bytes));
                let value = text.and_then(|t| t.parse::<f64>().ok());
                b.append_value(value.ok_or_else(not_a_number)?);
            }
        }
        Ok(())
    }

    fn finish(self) -> Column {
        match self {
            Builder::Text(b) => b.finish().into_column(),
            Builder::Integer(b) => b.finish().into_column(),
            Builder::Float(b) => b.finish().into_column(),
        }
    }
}

pub(super) struct ParquetPartition {
    writer: BatchedWriter<BufWriter<Sink>>,
    builders: Vec<Builder>,
    rows: usize,
    layout: Layout,
}

impl ParquetPartition {
    /// `name` is the file's, for errors.
    pub(super) fn create(sink: Sink, name: &str, layout: &Layout) -> Result<Self, String> {
        // Not parallel: extraction already keeps the cores busy, and its threads are not
        // polars'.
        let writer = ParquetWriter::new(BufWriter::with_capacity(256 << 10, sink))
            .with_compression(ParquetCompression::Zstd(None))
            .set_parallel(false)
            .batched(&file_schema(layout))
            .map_err(|e| format!("cannot create {name}: {e}"))?;
        Ok(ParquetPartition {
            writer,
            builders: new_builders(layout),
            rows: 0,
            layout: layout.clone(),
        })
    }

    pub(super) fn write_row(
        &mut self,
        layout: &Layout,
        map: &[usize],
        row: &Row,
    ) -> Result<(), String> {
        for (i, (builder, column)) in self.builders.iter_mut().zip(&layout.columns).enumerate() {
            let (kind, bytes) = row.get(map[i]);
            builder
                .push(kind, bytes)
                .map_err(|e| format!("column `{}`: {e}", column.name))?;
        }
        self.rows += 1;
        if self.rows == BATCH_ROWS {
            self.flush()
                .map_err(|e| format!("cannot write a partition: {e}"))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let builders = std::mem::replace(&mut self.builders, new_builders(&self.layout));
        let columns: Vec<Column> = builders.into_iter().map(Builder::finish).collect();
        let batch = DataFrame::new(self.rows, columns)?;
        self.writer.write_batch(&batch)?;
        self.rows = 0;
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<()> {
        if self.rows > 0 {
            self.flush()?;
        }
        // Writes the footer and flushes the buffer.
        self.writer.finish()?;
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

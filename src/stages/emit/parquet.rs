//! Parquet output files in row groups of a fixed size, of the oldest Arrow types.

use std::io::Write;

use anyhow::Result;
use polars::prelude::{CompatLevel, DataFrame, SchemaExt};
use polars_io::parquet::write::{get_encodings, ParquetCompression, StatisticsOptions};
use polars_parquet::write::{
    row_group_iter, to_parquet_schema, Encoding, FileWriter, ParquetType, Version, WriteOptions,
};

/// Rows per row group of a Parquet output file: fixed, so that a file is the same bytes
/// however its rows arrived (in one frame, or merged from a split unit's buckets).
pub const OUTPUT_GROUP_ROWS: usize = 1 << 16;

/// Writes frames (at least one) to a Parquet file in row groups of `OUTPUT_GROUP_ROWS` rows.
pub(super) fn write_parquet_chunks(
    out: &mut dyn Write,
    mut frames: impl Iterator<Item = Result<DataFrame>>,
) -> Result<()> {
    let first = frames.next().expect("at least one frame")?;
    let mut writer = ParquetRowGroups::start(out, &first)?;
    writer.write(first)?;
    for frame in frames {
        writer.write(frame?)?;
    }
    writer.finish()
}

/// Writes frames to a Parquet file in row groups of `OUTPUT_GROUP_ROWS` rows, its columns
/// of the oldest Arrow types polars writes (`large_string`, `large_binary`; not the
/// `string_view`/`binary_view` of its default): readers from before Arrow's view types
/// (pyarrow before 16, pandas 1.x, Spark 3) read them. Otherwise polars' defaults: zstd,
/// statistics, Parquet format version 1.
pub(super) struct ParquetRowGroups<W: Write> {
    writer: FileWriter<W>,
    fields: Vec<ParquetType>,
    encodings: Vec<Vec<Encoding>>,
    options: WriteOptions,
    pending: Option<DataFrame>,
}

impl<W: Write> ParquetRowGroups<W> {
    /// A writer for frames with the columns of `first`.
    pub(super) fn start(out: W, first: &DataFrame) -> Result<ParquetRowGroups<W>> {
        let schema = first.schema().to_arrow(CompatLevel::oldest());
        let options = WriteOptions {
            statistics: StatisticsOptions::default(),
            version: Version::V1,
            compression: ParquetCompression::default().into(),
            data_page_size: None,
        };
        let encodings = get_encodings(&schema).to_vec();
        let fields = to_parquet_schema(&schema)?.fields().to_vec();
        Ok(ParquetRowGroups {
            writer: FileWriter::try_new(out, schema, options)?,
            fields,
            encodings,
            options,
            pending: None,
        })
    }

    /// Writes one row group (a frame of one chunk).
    pub(super) fn write_group(&mut self, group: &DataFrame) -> Result<()> {
        for batch in group.iter_chunks(CompatLevel::oldest(), false) {
            let rows = batch.len() as u64;
            let columns = row_group_iter(
                batch,
                self.encodings.clone().into(),
                self.fields.clone(),
                self.options,
            );
            self.writer.write(rows, columns)?;
        }
        Ok(())
    }

    pub(super) fn write(&mut self, frame: DataFrame) -> Result<()> {
        let mut pending = match self.pending.take() {
            Some(mut pending) => {
                pending.vstack_mut_owned(frame)?;
                pending
            }
            None => frame,
        };
        while pending.height() >= OUTPUT_GROUP_ROWS {
            let (mut group, rest) = pending.split_at(OUTPUT_GROUP_ROWS as i64);
            group.rechunk_mut();
            self.write_group(&group)?;
            pending = rest;
        }
        self.pending = Some(pending);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<()> {
        if let Some(mut rest) = self.pending.take().filter(|p| p.height() > 0) {
            rest.rechunk_mut();
            self.write_group(&rest)?;
        }
        self.writer.end(None)?;
        Ok(())
    }
}

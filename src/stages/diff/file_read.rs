//! Reading Parquet and CSV files into frames with polars' eager readers. polars' lazy file
//! scans need its streaming engine, which brings an async and HTTP stack (a third of the
//! first build) that a tool reading local files does not use; so the files are read here
//! and the queries start from the frames. What a scan pushed down is done here too: only the
//! columns asked for are read, and a row predicate is applied piece by piece (a Parquet row
//! group, a few MiB of CSV), so that only the rows kept are ever held together.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use crate::workdir::direct::read_whole;

/// Which rows a read keeps: those where `expr` is true. `columns` are the ones `expr` reads,
/// so that a piece with no row to keep costs only those columns.
#[derive(Clone)]
pub struct RowPredicate {
    pub expr: Expr,
    pub columns: Vec<String>,
}

/// A change made to each piece as it is read (types, column choice), so that the whole file
/// is never held in both forms.
pub type PieceMap<'a> = &'a dyn Fn(DataFrame) -> PolarsResult<DataFrame>;

/// The `columns` of a Parquet file (None: all; no other column is read), the rows of `keep`,
/// each piece passed through `map`. Without `keep` and `map`, one read of the whole file.
pub fn read_parquet(
    path: &Path,
    columns: Option<&[String]>,
    keep: Option<&RowPredicate>,
    map: Option<PieceMap>,
) -> PolarsResult<DataFrame> {
    if keep.is_none() && map.is_none() {
        let bytes = read_whole(&mut File::open(path)?)?;
        return ParquetReader::new(Cursor::new(bytes))
            .with_columns(columns.map(<[String]>::to_vec))
            .finish();
    }
    let mut reader = ParquetReader::new(File::open(path)?);
    // A view of the file that holds one row group at a time.
    let mut one_group = (**reader.get_metadata()?).clone();
    let groups = std::mem::take(&mut one_group.row_groups);
    let read_group = |group: usize, columns: Option<&[String]>| -> PolarsResult<DataFrame> {
        let mut view = one_group.clone();
        view.num_rows = groups[group].num_rows();
        view.row_groups = vec![groups[group].clone()];
        let mut reader = ParquetReader::new(File::open(path)?);
        reader.set_metadata(Arc::new(view));
        reader
            .with_columns(columns.map(<[String]>::to_vec))
            .read_parallel(ParallelStrategy::Columns)
            .finish()
    };
    let mut pieces = Vec::new();
    for group in 0..groups.len() {
        let piece = match keep {
            None => read_group(group, columns)?,
            Some(keep) => {
                let mask = mask(read_group(group, Some(&keep.columns))?, &keep.expr)?;
                if mask.sum().unwrap_or(0) == 0 {
                    continue;
                }
                read_group(group, columns)?.filter(&mask)?
            }
        };
        pieces.push(match map {
            Some(map) => map(piece)?,
            None => piece,
        });
    }
    if pieces.is_empty() {
        // No row: the columns' types from the file, mapped as a piece would be.
        let empty = (reader.with_columns(columns.map(<[String]>::to_vec)))
            .with_slice(Some((0, 0)))
            .finish()?;
        return map.map_or(Ok(empty.clone()), |map| map(empty));
    }
    concat_pieces(pieces)
}

/// The row groups of a Parquet file, read one at a time: a file of any size is read in the
/// memory of its largest row group.
pub struct RowGroups {
    path: std::path::PathBuf,
    metadata: polars_io::parquet::read::FileMetadata,
    next: usize,
}

impl RowGroups {
    pub fn open(path: &Path) -> PolarsResult<RowGroups> {
        let metadata = (**ParquetReader::new(File::open(path)?).get_metadata()?).clone();
        Ok(RowGroups {
            path: path.to_path_buf(),
            metadata,
            next: 0,
        })
    }
}

impl Iterator for RowGroups {
    type Item = PolarsResult<DataFrame>;

    fn next(&mut self) -> Option<PolarsResult<DataFrame>> {
        let group = self.metadata.row_groups.get(self.next)?.clone();
        self.next += 1;
        let read = || {
            let mut view = self.metadata.clone();
            view.num_rows = group.num_rows();
            view.row_groups = vec![group];
            let mut reader = ParquetReader::new(File::open(&self.path)?);
            reader.set_metadata(Arc::new(view));
            let mut frame = reader.finish()?;
            frame.rechunk_mut();
            Ok(frame)
        };
        Some(read())
    }
}

/// How many bytes of CSV are parsed at a time when rows are filtered.
const CSV_PIECE_BYTES: usize = 32 << 20;

/// A CSV file with a header, read with `schema`, keeping the rows of `keep`: parsed a few MiB
/// at a time, cut between records (a line break outside quotes).
pub fn read_csv_where(
    path: &Path,
    schema: SchemaRef,
    keep: &RowPredicate,
) -> PolarsResult<DataFrame> {
    read_csv_in_pieces(path, schema, keep, CSV_PIECE_BYTES)
}

fn read_csv_in_pieces(
    path: &Path,
    schema: SchemaRef,
    keep: &RowPredicate,
    piece_bytes: usize,
) -> PolarsResult<DataFrame> {
    let mut file = File::open(path)?;
    let mut pieces = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let start = bytes.len();
        bytes.resize(start + piece_bytes, 0);
        let read = read_up_to(&mut file, &mut bytes[start..])?;
        bytes.truncate(start + read);
        let at_end = read == 0 || bytes.len() < start + piece_bytes;
        let cut = if at_end {
            bytes.len()
        } else {
            match last_record_end(&bytes) {
                Some(cut) => cut,
                None => continue, // a record longer than a piece: read on
            }
        };
        let rest = bytes.split_off(cut);
        if !bytes.is_empty() {
            let piece = CsvReadOptions::default()
                .with_has_header(first)
                .with_schema(Some(schema.clone()))
                .into_reader_with_file_handle(Cursor::new(std::mem::take(&mut bytes)))
                .finish()?;
            pieces.push(piece.lazy().filter(keep.expr.clone()).collect()?);
        }
        first = false;
        bytes = rest;
        if at_end {
            break;
        }
    }
    match pieces.is_empty() {
        true => Ok(DataFrame::empty_with_schema(&schema)),
        false => concat_pieces(pieces),
    }
}

/// True where `expr` holds on `frame` (NULL counts as false when filtering).
fn mask(frame: DataFrame, expr: &Expr) -> PolarsResult<BooleanChunked> {
    let masked = frame
        .lazy()
        .select([expr.clone().alias("__keep")])
        .collect()?;
    Ok(masked.column("__keep")?.bool()?.clone())
}

fn concat_pieces(pieces: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut pieces = pieces.into_iter();
    let mut frame = pieces.next().expect("at least one piece");
    for piece in pieces {
        frame.vstack_mut_owned(piece)?;
    }
    Ok(frame)
}

/// Fills `buf` unless the file ends first; how many bytes were read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Just past the last line break of `bytes` that ends a record: one outside quotes, as
/// `bytes` starts at a record's start (a quote inside quotes is doubled, so the parity of the
/// quotes seen tells).
fn last_record_end(bytes: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut end = None;
    for i in memchr::memchr2_iter(b'"', b'\n', bytes) {
        match bytes[i] {
            b'"' => quoted = !quoted,
            _ if !quoted => end = Some(i + 1),
            _ => {}
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_seventh() -> RowPredicate {
        RowPredicate {
            expr: (col("n") % lit(7i64)).eq(lit(3i64)),
            columns: vec!["n".to_string()],
        }
    }

    /// 0..100 as `n`, and `text` "t0".."t99", in row groups of 10 rows.
    fn numbers_file(dir: &Path) -> std::path::PathBuf {
        let n: Vec<i64> = (0..100).collect();
        let text: Vec<String> = n.iter().map(|i| format!("t{i}")).collect();
        let mut frame = df!("n" => n, "text" => text).unwrap();
        let path = dir.join("numbers.parquet");
        ParquetWriter::new(File::create(&path).unwrap())
            .with_row_group_size(Some(10))
            .finish(&mut frame)
            .unwrap();
        path
    }

    fn texts(frame: &DataFrame) -> Vec<String> {
        let column = frame.column("text").unwrap().str().unwrap();
        column.iter().map(|t| t.unwrap().to_string()).collect()
    }

    #[test]
    fn parquet_rows_are_kept_group_by_group_and_only_the_asked_columns_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = numbers_file(dir.path());
        let groups = ParquetReader::new(File::open(&path).unwrap())
            .get_metadata()
            .unwrap()
            .row_groups
            .len();
        assert_eq!(groups, 10, "the test needs several row groups");
        let text = ["text".to_string()];
        let frame = read_parquet(&path, Some(&text), Some(&every_seventh()), None).unwrap();
        let expected: Vec<String> = (0..100)
            .filter(|i| i % 7 == 3)
            .map(|i| format!("t{i}"))
            .collect();
        assert_eq!(frame.get_column_names(), ["text"]);
        assert_eq!(texts(&frame), expected);
    }

    #[test]
    fn each_parquet_piece_is_mapped_and_no_row_kept_still_gives_the_mapped_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = numbers_file(dir.path());
        let halve = |piece: DataFrame| {
            let n = col("n").cast(DataType::Float64) / lit(2.0);
            piece.lazy().select([n]).collect()
        };
        let frame = read_parquet(&path, None, None, Some(&halve)).unwrap();
        let n: Vec<f64> = frame
            .column("n")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(n, (0..100).map(|i| i as f64 / 2.0).collect::<Vec<_>>());
        let none = RowPredicate {
            expr: col("n").gt(lit(1000i64)),
            columns: vec!["n".to_string()],
        };
        let frame = read_parquet(&path, None, Some(&none), Some(&halve)).unwrap();
        assert_eq!(frame.height(), 0);
        assert_eq!(frame.column("n").unwrap().dtype(), &DataType::Float64);
    }

    #[test]
    fn csv_read_in_small_pieces_keeps_the_rows_a_whole_read_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("numbers.csv");
        let mut csv = String::from("n,text\n");
        let mut expected = Vec::new();
        for i in 0..100 {
            // Every third text holds a line break and a doubled quote, which a cut must not split.
            let text = match i % 3 {
                0 => format!("t{i}\n\"q\""),
                _ => format!("t{i}"),
            };
            csv.push_str(&format!("{i},\"{}\"\n", text.replace('"', "\"\"")));
            if i % 7 == 3 {
                expected.push(text);
            }
        }
        std::fs::write(&path, csv).unwrap();
        let schema: Schema = [
            Field::new("n".into(), DataType::Int64),
            Field::new("text".into(), DataType::String),
        ]
        .into_iter()
        .collect();
        for piece_bytes in [7, 100, CSV_PIECE_BYTES] {
            let frame = read_csv_in_pieces(
                &path,
                Arc::new(schema.clone()),
                &every_seventh(),
                piece_bytes,
            );
            assert_eq!(
                texts(&frame.unwrap()),
                expected,
                "pieces of {piece_bytes} bytes"
            );
        }
    }

    #[test]
    fn a_record_ends_only_at_a_line_break_outside_quotes() {
        assert_eq!(last_record_end(b"a,b\n1,2\n3"), Some(8));
        assert_eq!(last_record_end(b"a,b\n1,\"x\ny\""), Some(4));
        assert_eq!(last_record_end(b"1,\"x\"\"\ny\"\n2"), Some(10));
        assert_eq!(last_record_end(b"1,\"x\n"), None);
    }
}

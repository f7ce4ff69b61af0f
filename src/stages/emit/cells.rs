//! A frame's columns as typed cells, read straight from their arrays.

use anyhow::{bail, Result};
use polars::prelude::{
    BinaryType, ChunkFullNull, ChunkedArray, DataFrame, DataType, Float64Type, Int64Type,
    PlSmallStr, PolarsDataType, StaticArray, StringType, UInt64Type,
};

use crate::config::layout::Layout;
use crate::dump::ColumnKind;
use crate::stages::emit::floats::format_float;
use crate::values::binary;

/// One column's values, typed, in one array: a cell is read straight from it, where
/// `ChunkedArray::get` looked its chunk up for every cell written (3% of the diff stage's
/// instructions, measured).
pub(super) enum Cells {
    Text(Array<StringType>),
    Integer(Array<Int64Type>),
    Unsigned(Array<UInt64Type>),
    Float(Array<Float64Type>),
    /// A decimal column's canonical text.
    Decimal(Array<StringType>),
    Binary(Array<BinaryType>),
}

/// The arrow array of a polars type.
type Array<T> = <T as PolarsDataType>::Array;

/// The values of `column` in one array (the column is rechunked only if it is in pieces).
pub(super) fn one_array<T: PolarsDataType>(column: &ChunkedArray<T>) -> T::Array
where
    ChunkedArray<T>: ChunkFullNull,
    T::Array: Clone,
{
    match column.chunks().len() {
        1 => column.downcast_as_array().clone(),
        0 => ChunkedArray::<T>::full_null(PlSmallStr::EMPTY, 0)
            .rechunk()
            .downcast_as_array()
            .clone(),
        _ => column.rechunk().downcast_as_array().clone(),
    }
}

/// One field of an output row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cell<'a> {
    Null,
    Text(&'a str),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    /// Written bare, digit for digit.
    Decimal(&'a str),
    Binary(&'a [u8]),
}

impl Cells {
    /// The column `name` of `frame`; `layout` tells which text columns are decimals.
    pub(super) fn of(frame: &DataFrame, name: &str, layout: Option<&Layout>) -> Result<Cells> {
        let series = frame.column(name)?.as_materialized_series();
        let kind = layout.and_then(|l| l.columns.iter().find(|c| c.name == name));
        let is_decimal = kind.is_some_and(|c| matches!(c.kind, ColumnKind::Decimal { .. }));
        Ok(match series.dtype() {
            DataType::String if is_decimal => Cells::Decimal(one_array(series.str()?)),
            DataType::String => Cells::Text(one_array(series.str()?)),
            DataType::Int64 => Cells::Integer(one_array(series.i64()?)),
            DataType::UInt64 => Cells::Unsigned(one_array(series.u64()?)),
            DataType::Float64 => Cells::Float(one_array(series.f64()?)),
            DataType::Binary => Cells::Binary(one_array(series.binary()?)),
            other => bail!("column {name} has the unexpected type {other}"),
        })
    }

    #[inline]
    pub(super) fn get(&self, row: usize) -> Cell<'_> {
        let cell = match self {
            Cells::Text(c) => StaticArray::get(c, row).map(Cell::Text),
            Cells::Integer(c) => StaticArray::get(c, row).map(Cell::Integer),
            Cells::Unsigned(c) => StaticArray::get(c, row).map(Cell::Unsigned),
            Cells::Float(c) => StaticArray::get(c, row).map(Cell::Float),
            Cells::Decimal(c) => StaticArray::get(c, row).map(Cell::Decimal),
            Cells::Binary(c) => StaticArray::get(c, row).map(Cell::Binary),
        };
        cell.unwrap_or(Cell::Null)
    }
}

pub(super) fn cells_of(
    frame: &DataFrame,
    names: &[&str],
    layout: Option<&Layout>,
) -> Result<Vec<Cells>> {
    (names.iter())
        .map(|name| Cells::of(frame, name, layout))
        .collect()
}

pub(super) fn describe_cell(cell: Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Text(t) => format!("'{t}'"),
        Cell::Integer(v) => v.to_string(),
        Cell::Unsigned(v) => v.to_string(),
        Cell::Float(v) => format_float(v),
        Cell::Decimal(v) => v.to_string(),
        Cell::Binary(b) => format!("0x{}", binary::to_hex(b)),
    }
}

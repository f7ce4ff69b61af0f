//! A frame as aligned columns for a terminal: numbers right-aligned, text left-aligned,
//! NULL blank, doubles spelled as the SQL output spells them.

use std::io::Write;

use anyhow::Result;
use polars::prelude::{AnyValue, DataFrame, DataType};

use crate::stages::emit::format_float;

pub fn write_text_table(out: &mut dyn Write, frame: &DataFrame) -> Result<()> {
    let columns = frame.columns();
    let mut cells: Vec<Vec<String>> = Vec::with_capacity(columns.len());
    for column in columns {
        let mut texts = vec![column.name().to_string()];
        for row in 0..frame.height() {
            texts.push(match column.get(row)? {
                AnyValue::Null => String::new(),
                AnyValue::Float64(v) => format_float(v),
                AnyValue::String(s) => s.to_string(),
                AnyValue::StringOwned(s) => s.to_string(),
                other => other.to_string(),
            });
        }
        cells.push(texts);
    }
    let widths: Vec<usize> = (cells.iter())
        .map(|c| c.iter().map(|t| t.chars().count()).max().unwrap_or(0))
        .collect();
    let numeric: Vec<bool> = (columns.iter())
        .map(|c| {
            matches!(
                c.dtype(),
                DataType::Int64 | DataType::UInt64 | DataType::Float64
            )
        })
        .collect();
    for row in 0..=frame.height() {
        let mut line = String::new();
        for (i, column) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let (text, width) = (&column[row], widths[i]);
            if numeric[i] {
                line.push_str(&format!("{text:>width$}"));
            } else {
                line.push_str(&format!("{text:<width$}"));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn aligned_columns() {
        let frame = df!(
            "geo" => ["pa", "kansas"],
            "lag" => [1i64, 10],
            "value" => [Some(11.2), None],
        )
        .unwrap();
        let mut out = Vec::new();
        write_text_table(&mut out, &frame).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "geo     lag  value\n\
             pa        1   11.2\n\
             kansas   10\n"
        );
    }
}

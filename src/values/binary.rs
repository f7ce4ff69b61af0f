//! Binary column values (`binary`, `varbinary`, blobs, `bit`) in the formats that are text:
//! CSV (partitions and output) holds each value as hex digits, two uppercase digits a byte,
//! as MySQL's `HEX()` prints them (the empty value is `""`, NULL an empty field); SQL
//! output writes hex literals (`0x00FF`, `X''` when empty), which MariaDB and MySQL load as
//! the same bytes whatever the connection's character set. Parquet stores the bytes in a
//! binary column and needs none of this.

use std::io::{self, Write};

use anyhow::{anyhow, Result};
use polars::prelude::{
    BinaryChunkedBuilder, DataFrame, DataType, Field, IntoColumn, PlSmallStr, Schema,
};

const DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Writes `bytes` as uppercase hex digits.
pub fn write_hex(out: &mut (impl Write + ?Sized), bytes: &[u8]) -> io::Result<()> {
    let mut buffer = [0u8; 512];
    for chunk in bytes.chunks(buffer.len() / 2) {
        for (i, byte) in chunk.iter().enumerate() {
            buffer[2 * i] = DIGITS[usize::from(byte >> 4)];
            buffer[2 * i + 1] = DIGITS[usize::from(byte & 0xF)];
        }
        out.write_all(&buffer[..2 * chunk.len()])?;
    }
    Ok(())
}

/// Writes `bytes` as a SQL hex literal: `0x…`, or `X''` for no bytes (`0x` alone is not
/// a literal).
pub fn write_sql_literal(out: &mut (impl Write + ?Sized), bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return out.write_all(b"X''");
    }
    out.write_all(b"0x")?;
    write_hex(out, bytes)
}

/// `bytes` as hex, for messages.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut text = Vec::with_capacity(2 * bytes.len());
    write_hex(&mut text, bytes).expect("writing to memory");
    String::from_utf8(text).expect("hex digits are ASCII")
}

/// The schema a CSV file of `migrate`'s is read with: binary columns are hex text there
/// (polars' CSV reader has no binary type).
pub fn csv_schema(schema: &Schema) -> Schema {
    schema
        .iter()
        .map(|(name, dtype)| {
            let dtype = match dtype {
                DataType::Binary => DataType::String,
                other => other.clone(),
            };
            Field::new(name.clone(), dtype)
        })
        .collect()
}

/// Turns the hex text of the binary columns of `schema`, in a frame read with
/// [`csv_schema`], back into bytes; columns that already hold bytes (read from Parquet)
/// are left as they are.
pub fn decode_hex_columns(mut frame: DataFrame, schema: &Schema) -> Result<DataFrame> {
    let binary = schema
        .iter()
        .filter(|(_, dtype)| **dtype == DataType::Binary);
    let mut bytes = Vec::new();
    for (name, _) in binary {
        let column = frame.column(name)?;
        if column.dtype() != &DataType::String {
            continue;
        }
        let text = column.str()?;
        let mut builder = BinaryChunkedBuilder::new(PlSmallStr::from(name.as_str()), text.len());
        for value in text.iter() {
            let Some(value) = value else {
                builder.append_null();
                continue;
            };
            bytes.resize(value.len() / 2, 0);
            hex::decode_to_slice(value, &mut bytes).map_err(|e| {
                anyhow!("column `{name}` holds {value:?}, which is not hex digits ({e})")
            })?;
            builder.append_value(&bytes);
        }
        frame.with_column(builder.finish().into_column())?;
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        write_sql_literal(&mut out, bytes).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hex_as_mysql_prints_it() {
        assert_eq!(to_hex(&[0x00, 0xFF, 0x0A, 0xB1]), "00FF0AB1");
        assert_eq!(to_hex(b""), "");
        // Longer than one buffer.
        let long: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let text = to_hex(&long);
        assert_eq!(text.len(), 2000);
        assert_eq!(&text[510..518], "FF000102");
        assert_eq!(hex::decode(&text).unwrap(), long);
    }

    #[test]
    fn sql_literals() {
        assert_eq!(sql(&[0x00]), "0x00");
        assert_eq!(sql(b"\xff'\\"), "0xFF275C");
        assert_eq!(sql(b""), "X''");
    }

    #[test]
    fn hex_columns_decode_to_bytes() {
        let schema: Schema = [
            Field::new("b".into(), DataType::Binary),
            Field::new("t".into(), DataType::String),
        ]
        .into_iter()
        .collect();
        let frame = DataFrame::new(
            3,
            vec![
                polars::prelude::Column::new("b".into(), [Some("00FF"), Some(""), None]),
                polars::prelude::Column::new("t".into(), ["00FF", "x", "y"]),
            ],
        )
        .unwrap();
        let frame = decode_hex_columns(frame, &schema).unwrap();
        let b = frame.column("b").unwrap().binary().unwrap();
        let values: Vec<Option<&[u8]>> = b.iter().collect();
        assert_eq!(values, [Some(&[0x00, 0xFF][..]), Some(&[][..]), None]);
        assert_eq!(frame.column("t").unwrap().dtype(), &DataType::String);
        let bad = DataFrame::new(
            1,
            vec![
                polars::prelude::Column::new("b".into(), ["0G"]),
                polars::prelude::Column::new("t".into(), ["x"]),
            ],
        )
        .unwrap();
        let err = decode_hex_columns(bad, &schema).unwrap_err().to_string();
        assert!(
            err.contains("column `b`") && err.contains("\"0G\""),
            "{err}"
        );
    }
}

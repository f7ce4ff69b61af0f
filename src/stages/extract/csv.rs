//! Partitions as CSV: a header, then one line per row with every column but the id. NULL is
//! an empty field; text is quoted only when it must be, so the empty string (`""`) stays
//! apart from NULL; numbers keep the dump's spelling but decimals, which are written in
//! their canonical text (`100.10` at scale 2); binary values are hex digits.

use std::io::{BufWriter, Write};

use anyhow::{Context, Result};

use crate::config::layout::Layout;
use crate::dump::{ColumnKind, FieldKind, Row};

use super::numbers::{is_decimal, is_integer, parse_unsigned};
use super::Sink;
use crate::values::decimal::canonical_decimal;

pub(super) struct CsvPartition {
    out: BufWriter<Sink>,
}

impl CsvPartition {
    pub(super) fn create(sink: Sink, layout: &Layout) -> Result<Self, String> {
        let mut out = BufWriter::with_capacity(256 << 10, sink);
        let header: Vec<&str> = layout.names().collect();
        writeln!(out, "{}", header.join(",")).map_err(io_error)?;
        Ok(CsvPartition { out })
    }

    pub(super) fn write_row(
        &mut self,
        layout: &Layout,
        map: &[usize],
        row: &Row<'_>,
    ) -> Result<(), String> {
        let out = &mut self.out;
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

    pub(super) fn finish(mut self) -> Result<()> {
        self.out.flush().context("cannot write a partition")
    }
}

/// The message for a number in a binary column, which no dump writes (MySQL would store
/// its digits as text, a spelling the next backup may not share).
pub(super) fn number_for_binary(bytes: &[u8]) -> String {
    format!(
        "{:?} is a number where a binary value (a string or hex literal) belongs",
        String::from_utf8_lossy(bytes)
    )
}

/// The message for a binary literal in a numeric column, which no dump writes.
pub(super) fn binary_for_number(bytes: &[u8]) -> String {
    format!(
        "a binary literal (bytes 0x{}) where a number belongs",
        crate::values::binary::to_hex(bytes)
    )
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
        (FieldKind::Bare, ColumnKind::Binary) => Err(number_for_binary(bytes)),
        // Hex digits need no quotes, but no digits at all would read as NULL.
        (_, ColumnKind::Binary) if bytes.is_empty() => out.write_all(b"\"\"").map_err(io_error),
        (_, ColumnKind::Binary) => crate::values::binary::write_hex(out, bytes).map_err(io_error),
        (FieldKind::Binary, _) if !column.is_text() => Err(binary_for_number(bytes)),
        (_, ColumnKind::Text | ColumnKind::Date | ColumnKind::DateTime | ColumnKind::Timestamp) => {
            std::str::from_utf8(bytes).map_err(|_| {
                "the value is not valid UTF-8 (the dump's character set must be utf8/utf8mb4)"
                    .to_string()
            })?;
            write_quoted(out, bytes).map_err(io_error)
        }
        (_, ColumnKind::Decimal { scale }) => {
            let mut canonical = Vec::with_capacity(bytes.len() + usize::from(scale));
            canonical_decimal(bytes, scale, &mut canonical)?;
            out.write_all(&canonical).map_err(io_error)
        }
        (_, ColumnKind::Unsigned) => {
            parse_unsigned(bytes).ok_or_else(super::parquet::not_an_unsigned(bytes))?;
            out.write_all(bytes).map_err(io_error)
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn binary_fields_are_hex_whatever_their_spelling() {
        let field = |column, kind, bytes: &[u8]| {
            let mut out = Vec::new();
            write_field(&mut out, column, kind, bytes).map(|()| String::from_utf8(out).unwrap())
        };
        // MariaDB's `'\0\xff'` and MySQL's `_binary '\0\xff'` or `0x00FF` give one value.
        for kind in [FieldKind::Quoted, FieldKind::Binary] {
            assert_eq!(
                field(ColumnKind::Binary, kind, b"\0\xff"),
                Ok("00FF".into())
            );
        }
        assert_eq!(
            field(ColumnKind::Binary, FieldKind::Binary, b""),
            Ok("\"\"".into())
        );
        assert_eq!(
            field(ColumnKind::Binary, FieldKind::Null, b""),
            Ok("".into())
        );
        assert!(field(ColumnKind::Binary, FieldKind::Bare, b"12").is_err());
        // A binary literal in a text column is text when its bytes are UTF-8.
        assert_eq!(
            field(ColumnKind::Text, FieldKind::Binary, b"A,B"),
            Ok("\"A,B\"".into())
        );
        assert!(field(ColumnKind::Text, FieldKind::Binary, b"\xff").is_err());
        let err = field(ColumnKind::Integer, FieldKind::Binary, b"\x01").unwrap_err();
        assert!(err.contains("0x01"), "{err}");
    }

    #[test]
    fn unsigned_decimal_and_dated_fields() {
        let field = |column, kind, bytes: &[u8]| {
            let mut out = Vec::new();
            write_field(&mut out, column, kind, bytes).map(|()| String::from_utf8(out).unwrap())
        };
        let big = ColumnKind::Unsigned;
        assert_eq!(
            field(big, FieldKind::Bare, b"18446744073709551615"),
            Ok("18446744073709551615".into())
        );
        assert!(field(big, FieldKind::Bare, b"18446744073709551616").is_err());
        assert!(field(big, FieldKind::Bare, b"-1").is_err());
        let money = ColumnKind::Decimal { scale: 2 };
        assert_eq!(field(money, FieldKind::Bare, b"100.1"), Ok("100.10".into()));
        assert_eq!(field(money, FieldKind::Bare, b"-0.00"), Ok("0.00".into()));
        assert!(field(money, FieldKind::Bare, b"1.005").is_err());
        assert!(field(money, FieldKind::Binary, b"1").is_err());
        assert_eq!(
            field(
                ColumnKind::DateTime,
                FieldKind::Quoted,
                b"2020-01-02 03:04:05.678"
            ),
            Ok("2020-01-02 03:04:05.678".into())
        );
    }
}

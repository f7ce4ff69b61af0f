//! The fast row scanner against `sqlparser`'s full parser, the reference for MySQL syntax
//! and escapes: on every fixture dump (`mariadb-dump`'s, `fixtures/types` among them, and
//! the MySQL 8 ones), and on generated INSERTs full of awkward strings and binary literals.
//!
//! sqlparser reads text (`&str`), while dumps hold bytes that need not be UTF-8 (binary
//! values). So the oracle is given the dump with each byte as the character of the same
//! number (Latin-1), and its strings are turned back into bytes the same way: a
//! one-to-one mapping that changes no byte and no token.

use std::io::Read;

use migrate::dump::{DumpReader, Event, FieldKind};
use sqlparser::ast::{Expr, SetExpr, Statement, TableObject, UnaryOperator, Value};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

mod common;

type Rows = Vec<(String, Vec<(FieldKind, Vec<u8>)>)>;

/// Rows of every INSERT as the fast reader sees them, with their table.
fn fast_rows(sql: &[u8]) -> Rows {
    let mut reader = DumpReader::new(sql);
    let mut table = String::new();
    let mut rows = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        match event {
            Event::Insert(head) => table = head.table,
            Event::Row(row) => rows.push((
                table.clone(),
                row.iter().map(|(k, b)| (k, b.to_vec())).collect(),
            )),
            Event::CreateTable(_) | Event::Statement(_) => {}
        }
    }
    rows
}

/// Each byte as the character of the same number.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The bytes of a string made by [`latin1`].
fn bytes_of(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character"))
        .collect()
}

/// The bytes hex digits stand for, an odd count with a leading zero (as MySQL reads `0xF`).
fn hex_bytes(digits: &str) -> Vec<u8> {
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits.to_string()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).unwrap())
        .collect()
}

/// The bytes bit digits stand for: right-aligned in whole bytes (MySQL's `b'…'`).
fn bit_bytes(digits: &str) -> Vec<u8> {
    let padded = format!("{}{digits}", "0".repeat((8 - digits.len() % 8) % 8));
    (0..padded.len())
        .step_by(8)
        .map(|i| u8::from_str_radix(&padded[i..i + 8], 2).unwrap())
        .collect()
}

/// The same rows through sqlparser's AST. Statements sqlparser cannot parse and that carry
/// no data (`/*!40000 ALTER TABLE ... DISABLE KEYS */`) are left out first.
fn oracle_rows(sql: &[u8]) -> Rows {
    let sql = latin1(sql);
    let kept: String = sql
        .lines()
        .filter(|line| !line.starts_with("/*!40000 ALTER TABLE"))
        .map(|line| format!("{line}\n"))
        .collect();
    let statements = Parser::parse_sql(&MySqlDialect {}, &kept).expect("sqlparser parses the dump");
    let mut rows = Vec::new();
    for statement in statements {
        let Statement::Insert(insert) = statement else {
            continue;
        };
        let TableObject::TableName(name) = &insert.table else {
            panic!("unexpected INSERT target");
        };
        let table = name.0.last().unwrap().as_ident().unwrap().value.clone();
        let SetExpr::Values(values) = *insert.source.unwrap().body else {
            panic!("an INSERT without VALUES");
        };
        for row in values.rows {
            rows.push((table.clone(), row.content.iter().map(field).collect()));
        }
    }
    rows
}

fn field(expr: &Expr) -> (FieldKind, Vec<u8>) {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Null => (FieldKind::Null, Vec::new()),
            Value::Number(n, _) => (FieldKind::Bare, n.as_bytes().to_vec()),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                (FieldKind::Quoted, bytes_of(s))
            }
            Value::HexStringLiteral(digits) => (FieldKind::Binary, hex_bytes(digits)),
            Value::SingleQuotedByteStringLiteral(digits) => (FieldKind::Binary, bit_bytes(digits)),
            other => panic!("unexpected value {other:?}"),
        },
        // sqlparser's MySQL dialect reads `0b101` as a name (MySQL names may start with a
        // digit); MySQL reads a name of that shape as a bit literal.
        Expr::Identifier(ident)
            if ident.quote_style.is_none()
                && ident.value.strip_prefix("0b").is_some_and(|digits| {
                    !digits.is_empty() && digits.bytes().all(|b| b == b'0' || b == b'1')
                }) =>
        {
            (FieldKind::Binary, bit_bytes(&ident.value[2..]))
        }
        // A character set introducer: `_binary` makes a binary string, any other text.
        Expr::Prefixed { prefix, value } => {
            let (_, bytes) = field(value);
            let kind = if prefix.value.eq_ignore_ascii_case("_binary") {
                FieldKind::Binary
            } else {
                FieldKind::Quoted
            };
            (kind, bytes)
        }
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => {
            let (kind, text) = field(expr);
            assert_eq!(kind, FieldKind::Bare);
            (FieldKind::Bare, [b"-".as_slice(), &text].concat())
        }
        other => panic!("unexpected expression {other}"),
    }
}

fn gunzip(path: &std::path::Path) -> Vec<u8> {
    let mut sql = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut sql)
        .unwrap();
    sql
}

#[test]
fn fixture_dumps_read_the_same_as_sqlparser_reads_them() {
    let dumps = common::files_below(&common::fixture_backups(), "gz");
    assert!(dumps.len() >= 6);
    let mysql8 = common::files_below(&common::root().join("fixtures/mysql8/backups"), "sql");
    assert_eq!(mysql8.len(), 3);
    // Every column type, and a table without time columns.
    let types = common::files_below(&common::root().join("fixtures/types"), "gz");
    assert_eq!(types.len(), 8);
    for dump in dumps.into_iter().chain(mysql8).chain(types) {
        let sql = if dump.extension().is_some_and(|e| e == "gz") {
            gunzip(&dump)
        } else {
            std::fs::read(&dump).unwrap()
        };
        let fast = fast_rows(&sql);
        let oracle = oracle_rows(&sql);
        assert!(
            (fast.iter()).any(|(t, _)| ["covidcast", "readings", "prices"].contains(&t.as_str())),
            "{}",
            dump.display()
        );
        assert_eq!(fast.len(), oracle.len(), "{}", dump.display());
        for (i, (a, b)) in fast.iter().zip(&oracle).enumerate() {
            assert_eq!(a, b, "{} row {i}", dump.display());
        }
    }
}

/// A small deterministic generator (no dependency needed for this much randomness).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() as usize % items.len()]
    }
}

/// Writes a string literal as mariadb-dump does.
fn quote(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[test]
fn generated_awkward_rows_read_the_same_as_sqlparser_reads_them() {
    let pieces = [
        "a", "),(", "'", "\"", "\\", "\n", "\r\n", ";", ",", "(", ")", "NULL", "--", "/*", "*/",
        "é", "日本", " ", "\0", "\x1a", "`", "VALUES",
    ];
    let numbers = [
        "0",
        "1",
        "-1",
        "1.5",
        "-2.25e-16",
        "1e15",
        "123456789",
        "-0.000001",
    ];
    let mut rng = Lcg(42);
    let mut sql = String::from("CREATE TABLE t (a int, b text, c double);\n");
    for statement in 0..50 {
        let multi_line = statement % 2 == 0;
        sql.push_str("INSERT INTO `t` VALUES ");
        for row in 0..(1 + rng.next() % 40) {
            if row > 0 {
                sql.push_str(if multi_line { ",\n" } else { "," });
            }
            let text: String = (0..rng.next() % 6).map(|_| rng.pick(&pieces)).collect();
            let third = if rng.next().is_multiple_of(5) {
                "NULL".to_string()
            } else {
                rng.pick(&numbers).to_string()
            };
            sql.push_str(&format!(
                "({},{},{third})",
                rng.pick(&numbers),
                quote(&text)
            ));
        }
        sql.push_str(";\n");
    }
    let fast = fast_rows(sql.as_bytes());
    let oracle = oracle_rows(sql.as_bytes());
    assert!(fast.len() > 500);
    assert_eq!(fast, oracle);
}

/// Writes bytes as `mysqldump` does inside quotes: its escapes, every other byte raw.
fn quote_bytes(bytes: &[u8], quote: u8) -> Vec<u8> {
    let mut out = vec![quote];
    for &b in bytes {
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x1a => out.extend_from_slice(b"\\Z"),
            b'\\' | b'\'' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b => out.push(b),
        }
    }
    out.push(quote);
    out
}

fn hex_digits(bytes: &[u8], lower: bool) -> String {
    let text: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    if lower {
        text.to_lowercase()
    } else {
        text
    }
}

#[test]
fn generated_binary_literals_read_the_same_as_sqlparser_reads_them() {
    let mut rng = Lcg(7);
    let mut sql = Vec::new();
    sql.extend_from_slice(b"CREATE TABLE t (a int, b varbinary(64), c blob);\n");
    let mut forms = [0usize; 14];
    for statement in 0..40 {
        sql.extend_from_slice(b"INSERT INTO `t` VALUES ");
        for row in 0..(1 + rng.next() % 30) {
            if row > 0 {
                sql.extend_from_slice(if statement % 2 == 0 { b",\n" } else { b"," });
            }
            sql.extend_from_slice(format!("({row},").as_bytes());
            for column in 0..2 {
                if column > 0 {
                    sql.extend_from_slice(b",");
                }
                // Bytes of any value, a few of them mysqldump's escapes.
                let bytes: Vec<u8> = (0..rng.next() % 9)
                    .map(|_| match rng.next() % 4 {
                        0 => b"\0\n\r\\'\"\x1a"[rng.next() as usize % 7],
                        _ => rng.next() as u8,
                    })
                    .collect();
                let bits: String = (0..rng.next() % 20)
                    .map(|_| {
                        if rng.next().is_multiple_of(2) {
                            '0'
                        } else {
                            '1'
                        }
                    })
                    .collect();
                let lower = rng.next().is_multiple_of(2);
                let form = rng.next() as usize % forms.len();
                forms[form] += 1;
                let literal: Vec<u8> = match form {
                    0 => [b"_binary ".as_slice(), &quote_bytes(&bytes, b'\'')].concat(),
                    1 => [b"_binary".as_slice(), &quote_bytes(&bytes, b'\'')].concat(),
                    2 => [b"_BINARY\n ".as_slice(), &quote_bytes(&bytes, b'"')].concat(),
                    3 => [b"_utf8mb4".as_slice(), &quote_bytes(&bytes, b'\'')].concat(),
                    4 => quote_bytes(&bytes, b'\''),
                    5 if !bytes.is_empty() => {
                        // An odd count of digits when the first one is 0 can be dropped.
                        let digits = hex_digits(&bytes, lower);
                        let digits = match digits.strip_prefix('0') {
                            Some(rest) if rng.next().is_multiple_of(2) => rest.to_string(),
                            _ => digits,
                        };
                        format!("0x{digits}").into_bytes()
                    }
                    5 | 6 => format!(
                        "{}'{}'",
                        if lower { 'x' } else { 'X' },
                        hex_digits(&bytes, lower)
                    )
                    .into_bytes(),
                    7 => format!("{}'{bits}'", if lower { 'b' } else { 'B' }).into_bytes(),
                    8 if !bits.is_empty() => format!("0b{bits}").into_bytes(),
                    9 if !bytes.is_empty() => {
                        format!("_binary 0x{}", hex_digits(&bytes, lower)).into_bytes()
                    }
                    10 => format!("_binary X'{}'", hex_digits(&bytes, lower)).into_bytes(),
                    11 => format!("_latin1 X'{}'", hex_digits(&bytes, lower)).into_bytes(),
                    12 => b"NULL".to_vec(),
                    _ => b"''".to_vec(),
                };
                sql.extend_from_slice(&literal);
            }
            sql.extend_from_slice(b")");
        }
        sql.extend_from_slice(b";\n");
    }
    assert!(
        forms.iter().all(|&n| n > 20),
        "every form is drawn: {forms:?}"
    );
    assert!(
        std::str::from_utf8(&sql).is_err(),
        "bytes that are not UTF-8 are in the input"
    );
    let fast = fast_rows(&sql);
    let oracle = oracle_rows(&sql);
    assert!(fast.len() > 500);
    assert!(fast
        .iter()
        .any(|(_, row)| row.iter().any(|(kind, _)| *kind == FieldKind::Binary)));
    assert_eq!(fast, oracle);
}

//! The fast row scanner against `sqlparser`'s full parser, the reference for MySQL syntax
//! and escapes: on every fixture dump, and on generated INSERTs full of awkward strings.

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
            Event::CreateTable(_) => {}
        }
    }
    rows
}

/// The same rows through sqlparser's AST. Statements sqlparser cannot parse and that carry
/// no data (`/*!40000 ALTER TABLE ... DISABLE KEYS */`) are left out first.
fn oracle_rows(sql: &str) -> Rows {
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
                (FieldKind::Quoted, s.as_bytes().to_vec())
            }
            other => panic!("unexpected value {other:?}"),
        },
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
    for dump in dumps {
        let sql = gunzip(&dump);
        let fast = fast_rows(&sql);
        let oracle = oracle_rows(std::str::from_utf8(&sql).unwrap());
        assert!(
            fast.iter().any(|(t, _)| t == "covidcast"),
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
    let oracle = oracle_rows(&sql);
    assert!(fast.len() > 500);
    assert_eq!(fast, oracle);
}

//! Statement structure through `sqlparser`: a table's columns from its `CREATE TABLE`, and
//! the table and column list of an `INSERT ... VALUES` head. Both are rare and small, so the
//! full parser is affordable here.

use serde::{Deserialize, Serialize};
use sqlparser::ast::{ObjectName, Statement, TableObject};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// How a column's values are read, compared and written; the guide's table of column types
/// (docs/types.md) says the same for users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    /// Integer types (`tinyint` … `bigint`, signed, and unsigned but for `bigint unsigned`;
    /// `year`): 64-bit integers, compared by value.
    Integer,
    /// `bigint unsigned`: unsigned 64-bit integers (0 … 2^64−1), compared by value.
    Unsigned,
    /// `float` and `double`: 64-bit floats, compared by value (`1.50` = `1.5`).
    Float,
    /// `decimal(p, s)`: exact, held as its canonical text with `scale` digits after the
    /// point (`100.10` in a `decimal(20,2)`, which is also how `100.1` reads), so that equal
    /// text is equal value; written back bare, digit for digit.
    Decimal { scale: u8 },
    /// Everything else (strings, `enum`, `set`, `time`, `json`): compared exactly as text.
    Text,
    /// `date`: text `YYYY-MM-DD`, compared as text; can be the time column of `lag`.
    Date,
    /// `datetime`: text `YYYY-MM-DD hh:mm:ss[.fraction]`, compared as text; can be the time
    /// column of `lag` (by its day).
    DateTime,
    /// `timestamp`: as `DateTime`, in UTC as the dump writes it (under `TIME_ZONE='+00:00'`,
    /// which the SQL output sets too).
    Timestamp,
    /// Binary strings (`binary`, `varbinary`, the blobs, `bit`, spatial types): compared
    /// byte for byte, whatever literal spelled them; they need not be UTF-8.
    Binary,
}

impl ColumnKind {
    /// Kinds held as text (strings in frames, quoted literals in SQL).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            ColumnKind::Text | ColumnKind::Date | ColumnKind::DateTime | ColumnKind::Timestamp
        )
    }

    /// Kinds whose values begin with a day (`YYYY-MM-DD`): the time columns a lag can be
    /// counted from in days.
    pub fn is_dated(self) -> bool {
        matches!(
            self,
            ColumnKind::Date | ColumnKind::DateTime | ColumnKind::Timestamp
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub kind: ColumnKind,
}

/// A table as its `CREATE TABLE` statement declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
}

/// The head of an INSERT: which table, and the explicit column list if the dump wrote one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertHead {
    pub table: String,
    pub columns: Option<Vec<String>>,
}

fn parse_one(sql: &str) -> Result<Statement, String> {
    let mut statements = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| e.to_string())?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        n => Err(format!("expected one statement, found {n}")),
    }
}

fn last_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.clone())
        .unwrap_or_else(|| name.to_string())
}

/// Parses a `CREATE TABLE` statement (without its `;`).
pub fn parse_create_table(sql: &str) -> Result<TableDef, String> {
    match parse_one(sql)? {
        Statement::CreateTable(create) => Ok(TableDef {
            name: last_name(&create.name),
            columns: create
                .columns
                .iter()
                .map(|column| ColumnDef {
                    name: column.name.value.clone(),
                    kind: kind_of(&column.data_type.to_string()),
                })
                .collect(),
        }),
        other => Err(format!("not a CREATE TABLE statement: {other}")),
    }
}

/// Parses the head of an INSERT, everything before the `VALUES` keyword.
pub fn parse_insert_head(head: &str) -> Result<InsertHead, String> {
    // A dummy row makes the head a complete statement; its values are never looked at.
    match parse_one(&format!("{head} VALUES (NULL)"))? {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return Err("INSERT into a table function is not supported".into());
            };
            let columns = (!insert.columns.is_empty())
                .then(|| insert.columns.iter().map(last_name).collect());
            Ok(InsertHead {
                table: last_name(name),
                columns,
            })
        }
        other => Err(format!("not an INSERT statement: {other}")),
    }
}

/// Classifies a MySQL type as `CREATE TABLE` declares it (`bigint(20) unsigned`,
/// `decimal(30,10)`); unknown types compare as text, which is exact. The binary types are
/// those whose values `mysqldump` writes as `_binary '…'` or, with `--hex-blob`, as `0x…`.
fn kind_of(data_type: &str) -> ColumnKind {
    let lower = data_type.to_ascii_lowercase();
    let base = lower.split(['(', ' ']).next().unwrap_or("");
    let unsigned = lower.split([' ', ')']).any(|word| word == "unsigned");
    match base {
        "bigint" | "int8" if unsigned => ColumnKind::Unsigned,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "bool"
        | "boolean" | "int1" | "int2" | "int3" | "int4" | "int8" | "middleint" | "year" => {
            ColumnKind::Integer
        }
        "float" | "double" | "real" | "float4" | "float8" => ColumnKind::Float,
        "decimal" | "dec" | "numeric" | "fixed" => ColumnKind::Decimal {
            scale: decimal_scale(&lower),
        },
        "date" => ColumnKind::Date,
        "datetime" => ColumnKind::DateTime,
        "timestamp" => ColumnKind::Timestamp,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
        | "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => ColumnKind::Binary,
        _ => ColumnKind::Text,
    }
}

/// The scale of `decimal(p, s)`: `s`; 0 for `decimal(p)` and `decimal`, as MySQL reads them.
fn decimal_scale(lower: &str) -> u8 {
    let Some(arguments) = lower
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside)
    else {
        return 0;
    };
    (arguments.split(',').nth(1))
        .and_then(|scale| scale.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_as_mariadb_dump_writes_it() {
        let sql = "CREATE TABLE `covidcast` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
                   `source` varchar(32) NOT NULL,\n  `time_value` int(11) NOT NULL,\n  \
                   `value` double DEFAULT NULL,\n  `d` decimal(10,2) DEFAULT NULL,\n  \
                   `n` bigint(20) unsigned DEFAULT NULL,\n  \
                   `c` varchar(12) NOT NULL COMMENT 'a;b',\n  PRIMARY KEY (`id`),\n  \
                   UNIQUE KEY `k` (`source`,`time_value`)\n) ENGINE=InnoDB AUTO_INCREMENT=5 \
                   DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";
        let table = parse_create_table(sql).unwrap();
        assert_eq!(table.name, "covidcast");
        let kinds: Vec<_> = table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("id", ColumnKind::Integer),
                ("source", ColumnKind::Text),
                ("time_value", ColumnKind::Integer),
                ("value", ColumnKind::Float),
                ("d", ColumnKind::Decimal { scale: 2 }),
                ("n", ColumnKind::Unsigned),
                ("c", ColumnKind::Text),
            ]
        );
    }

    #[test]
    fn binary_columns_as_mysql_8_writes_them() {
        // As `SHOW CREATE TABLE` prints them in MySQL 8: binary defaults with an introducer
        // (here with a raw byte that the reader passes on as U+FFFD), a hex and a bit default.
        let sql = "CREATE TABLE `t` (\n  `id` bigint NOT NULL AUTO_INCREMENT,\n  \
                   `is_wip` binary(1) DEFAULT NULL,\n  \
                   `latest` binary(1) NOT NULL DEFAULT _binary '\\0',\n  \
                   `raw` varbinary(4) NOT NULL DEFAULT _binary '\u{fffd}',\n  \
                   `flag` bit(1) NOT NULL DEFAULT b'0',\n  `h` varbinary(2) DEFAULT 0x01,\n  \
                   `b` blob, `tb` tinyblob, `mb` mediumblob, `lb` longblob, `g` geometry,\n  \
                   `name` varchar(32) COLLATE utf8mb4_0900_ai_ci NOT NULL,\n  \
                   PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 \
                   COLLATE=utf8mb4_0900_ai_ci";
        let table = parse_create_table(sql).unwrap();
        let kinds: Vec<_> = table.columns.iter().map(|c| c.kind).collect();
        use ColumnKind::{Binary, Integer, Text};
        assert_eq!(
            kinds,
            [
                Integer, Binary, Binary, Binary, Binary, Binary, Binary, Binary, Binary, Binary,
                Binary, Text
            ]
        );
    }

    #[test]
    fn every_type_mariadb_dump_declares() {
        use ColumnKind::*;
        for (declared, kind) in [
            ("bigint(20) unsigned", Unsigned),
            ("BIGINT(20) UNSIGNED ZEROFILL", Unsigned),
            ("bigint(20)", Integer),
            ("int(10) unsigned", Integer),
            ("tinyint(3) unsigned", Integer),
            ("mediumint(8) unsigned", Integer),
            ("year(4)", Integer),
            ("YEAR", Integer),
            ("decimal(30,10)", Decimal { scale: 10 }),
            ("DECIMAL(20, 2)", Decimal { scale: 2 }),
            ("decimal(10,0)", Decimal { scale: 0 }),
            ("decimal(5)", Decimal { scale: 0 }),
            ("decimal", Decimal { scale: 0 }),
            ("numeric(65,30)", Decimal { scale: 30 }),
            ("decimal(12,4) unsigned", Decimal { scale: 4 }),
            ("float", Float),
            ("double", Float),
            ("date", Date),
            ("datetime(3)", DateTime),
            ("timestamp(6)", Timestamp),
            ("time(3)", Text),
            ("enum('x','y')", Text),
            ("set('a','b')", Text),
            ("json", Text),
            ("longtext", Text),
            ("bit(10)", Binary),
        ] {
            assert_eq!(kind_of(declared), kind, "{declared}");
        }
        // As sqlparser prints them back from a dump's CREATE TABLE.
        let table = parse_create_table(
            "CREATE TABLE `t` (`a` bigint(20) unsigned DEFAULT NULL, `b` decimal(30,10) \
             DEFAULT NULL, `c` year(4) DEFAULT NULL, `d` datetime(3) DEFAULT NULL, \
             `e` timestamp(6) NULL DEFAULT NULL, `f` set('a','b') DEFAULT NULL)",
        )
        .unwrap();
        let kinds: Vec<_> = table.columns.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                Unsigned,
                Decimal { scale: 10 },
                Integer,
                DateTime,
                Timestamp,
                Text
            ]
        );
    }

    #[test]
    fn insert_heads_with_and_without_columns() {
        assert_eq!(
            parse_insert_head("INSERT INTO `covidcast`").unwrap(),
            InsertHead {
                table: "covidcast".into(),
                columns: None
            }
        );
        assert_eq!(
            parse_insert_head("INSERT INTO `epidata`.`t` (`id`, `source`)").unwrap(),
            InsertHead {
                table: "t".into(),
                columns: Some(vec!["id".into(), "source".into()])
            }
        );
    }

    #[test]
    fn broken_statements_are_errors() {
        assert!(parse_create_table("CREATE TABLE t (").is_err());
        assert!(parse_create_table("DROP TABLE t").is_err());
    }
}

//! Which rows of the output a question needs (a signal, some geo values, a range of
//! `time_value`), applied while the output is read: on the raw fields of SQL files, before
//! any text is converted, and as a polars predicate on CSV and Parquet files.

use anyhow::{anyhow, Result};
use polars::prelude::{col, lit, DataType, Expr};

use crate::dump::{FieldKind, Row};
use crate::stages::diff::file_read::RowPredicate;
use crate::stages::diff::{bucket_of, BucketColumn};

/// Conditions that must all hold; no conditions: every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// A text column equals one of the values.
    OneOf { column: String, values: Vec<String> },
    /// An integer column lies in `low..=high`.
    Between { column: String, low: i64, high: i64 },
    /// A signed integer column falls in bucket `bucket` of `buckets` (`diff::bucket_of`).
    Bucket {
        column: String,
        bucket: usize,
        buckets: usize,
    },
}

impl Condition {
    fn column(&self) -> &str {
        match self {
            Condition::OneOf { column, .. }
            | Condition::Between { column, .. }
            | Condition::Bucket { column, .. } => column,
        }
    }
}

impl RowFilter {
    /// Rows whose text column `column` is one of `values` (no values: no condition).
    pub fn one_of(mut self, column: &str, values: &[String]) -> RowFilter {
        if !values.is_empty() {
            self.conditions.push(Condition::OneOf {
                column: column.to_string(),
                values: values.to_vec(),
            });
        }
        self
    }

    /// Rows whose integer column `column` lies in `low..=high`.
    pub fn between(mut self, column: &str, low: i64, high: i64) -> RowFilter {
        self.conditions.push(Condition::Between {
            column: column.to_string(),
            low,
            high,
        });
        self
    }

    /// Rows whose integer column `column` falls in bucket `bucket` of `buckets`, as a split
    /// diff unit's buckets are made (`diff::bucket_of`); no condition for one bucket.
    pub fn bucket(mut self, column: &str, bucket: usize, buckets: usize) -> RowFilter {
        if buckets > 1 {
            self.conditions.push(Condition::Bucket {
                column: column.to_string(),
                bucket,
                buckets,
            });
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The columns the conditions read.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().map(Condition::column)
    }

    /// The conditions as a predicate for reading a file, with the columns they read.
    pub fn predicate(&self) -> Option<RowPredicate> {
        let mut columns: Vec<String> = self.columns().map(String::from).collect();
        columns.sort();
        columns.dedup();
        self.expr().map(|expr| RowPredicate { expr, columns })
    }

    /// The conditions as a polars predicate (text compared as strings, so categorical
    /// columns match by their text); None when there are none.
    pub fn expr(&self) -> Option<Expr> {
        self.conditions
            .iter()
            .map(|condition| match condition {
                Condition::OneOf { column, values } => values
                    .iter()
                    .map(|v| {
                        col(column.as_str())
                            .cast(DataType::String)
                            .eq(lit(v.as_str()))
                    })
                    .fold(lit(false), |any, m| any.or(m)),
                Condition::Between { column, low, high } => col(column.as_str())
                    .gt_eq(lit(*low))
                    .and(col(column.as_str()).lt_eq(lit(*high))),
                Condition::Bucket {
                    column,
                    bucket,
                    buckets,
                } => {
                    let column = BucketColumn {
                        name: column.clone(),
                        unsigned: false,
                    };
                    bucket_of(&column, *buckets).eq(lit(*bucket as i64))
                }
            })
            .reduce(|all, c| all.and(c))
    }

    /// The conditions for rows of an INSERT whose columns are `columns`, in that order.
    pub fn on_fields(&self, columns: &[String]) -> Result<FieldFilter> {
        let position = |name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| anyhow!("an INSERT lacks the column {name}"))
        };
        let tests = self
            .conditions
            .iter()
            .map(|condition| {
                Ok(match condition {
                    Condition::OneOf { column, values } => FieldTest::OneOf {
                        at: position(column)?,
                        values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
                    },
                    Condition::Between { column, low, high } => FieldTest::Between {
                        at: position(column)?,
                        low: *low,
                        high: *high,
                    },
                    Condition::Bucket {
                        column,
                        bucket,
                        buckets,
                    } => FieldTest::Bucket {
                        at: position(column)?,
                        bucket: *bucket as i64,
                        buckets: *buckets as i64,
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(FieldFilter { tests })
    }
}

/// A `RowFilter` bound to the field positions of one INSERT.
#[derive(Debug, Clone, Default)]
pub struct FieldFilter {
    tests: Vec<FieldTest>,
}

#[derive(Debug, Clone)]
enum FieldTest {
    OneOf {
        at: usize,
        values: Vec<Vec<u8>>,
    },
    Between {
        at: usize,
        low: i64,
        high: i64,
    },
    Bucket {
        at: usize,
        bucket: i64,
        buckets: i64,
    },
}

impl FieldFilter {
    /// True when the row meets every condition; NULL meets none.
    pub fn matches(&self, row: &Row<'_>) -> bool {
        self.tests.iter().all(|test| match test {
            FieldTest::OneOf { at, values } => {
                let (kind, bytes) = row.get(*at);
                kind != FieldKind::Null && values.iter().any(|v| v == bytes)
            }
            FieldTest::Between { at, low, high } => {
                let (kind, bytes) = row.get(*at);
                kind != FieldKind::Null
                    && std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|text| text.parse::<i64>().ok())
                        .is_some_and(|v| (*low..=*high).contains(&v))
            }
            FieldTest::Bucket {
                at,
                bucket,
                buckets,
            } => {
                let (kind, bytes) = row.get(*at);
                let value = match kind {
                    FieldKind::Null => Some(0),
                    _ => std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|text| text.parse::<i64>().ok()),
                };
                value.is_some_and(|v| v.rem_euclid(*buckets) == *bucket)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{DumpReader, Event};

    /// The rows of an INSERT that `filter` keeps, as their first field.
    fn kept(sql: &str, filter: &RowFilter) -> Vec<String> {
        let mut reader = DumpReader::new(sql.as_bytes());
        let mut fields = FieldFilter::default();
        let mut kept = Vec::new();
        while let Some(event) = reader.next_event().unwrap() {
            match event {
                Event::Insert(head) => fields = filter.on_fields(&head.columns.unwrap()).unwrap(),
                Event::Row(row) if fields.matches(&row) => {
                    kept.push(String::from_utf8(row.get(0).1.to_vec()).unwrap())
                }
                _ => {}
            }
        }
        kept
    }

    #[test]
    fn text_values_and_integer_ranges_on_raw_fields() {
        let sql = "INSERT INTO `t` (`id`,`geo`,`time_value`) VALUES \
                   ('a','pa',20200601),('b','ny',20200602),('c','pa',20200610),\
                   ('d',NULL,20200601),('e','pa',NULL),('f','it\\'s',20200605);\n";
        let geo = |values: &[&str]| {
            RowFilter::default().one_of(
                "geo",
                &values.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(kept(sql, &RowFilter::default()).len(), 6);
        assert_eq!(kept(sql, &geo(&["pa"])), ["a", "c", "e"]);
        assert_eq!(kept(sql, &geo(&["it's", "ny"])), ["b", "f"]);
        let range = geo(&["pa"]).between("time_value", 20200601, 20200605);
        assert_eq!(kept(sql, &range), ["a"]);
        let days = RowFilter::default().between("time_value", 20200602, 20200610);
        assert_eq!(kept(sql, &days), ["b", "c", "f"]);
        assert!(geo(&["pa"])
            .between("lag", 0, 1)
            .on_fields(&["geo".into()])
            .is_err());
    }

    #[test]
    fn buckets_on_raw_fields_as_in_polars() {
        let sql = "INSERT INTO `t` (`id`,`time_value`) VALUES \
                   ('a',20200601),('b',20200602),('c',-7),('d',NULL),('e',20200603);\n";
        let bucket = |b| kept(sql, &RowFilter::default().bucket("time_value", b, 3));
        // 20200601 % 3 = 2, 20200602 % 3 = 0, -7 → 2, NULL → 0, 20200603 % 3 = 1.
        assert_eq!(bucket(0), ["b", "d"]);
        assert_eq!(bucket(1), ["e"]);
        assert_eq!(bucket(2), ["a", "c"]);
        assert!(RowFilter::default().bucket("time_value", 0, 1).is_empty());
        let frame = polars::df!("time_value" => [Some(20200601i64), Some(20200602), Some(-7), None, Some(20200603)])
            .unwrap();
        for b in 0..3 {
            let filter = RowFilter::default().bucket("time_value", b, 3);
            let kept = polars::prelude::IntoLazy::lazy(frame.clone())
                .filter(filter.expr().unwrap())
                .collect()
                .unwrap();
            assert_eq!(kept.height(), bucket(b).len(), "bucket {b}");
        }
    }

    #[test]
    fn no_values_is_no_condition() {
        let filter = RowFilter::default().one_of("geo", &[]);
        assert!(filter.is_empty());
        assert!(filter.expr().is_none());
    }
}

//! `migrate verify --database`: proves the live table rather than the files. For every
//! backup date D (or those of `--dates`), the API's as-of query — for each key the row of
//! greatest `issue` up to D — must serve exactly that backup's rows, source by source; for
//! the newest date, the latest query (`is_latest_issue`) must serve exactly the newest
//! backup. Weekly rows are compared at the last backup of each epiweek only: their `issue`
//! is an epiweek, so the table cannot tell backups within one epiweek apart.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use polars::prelude::*;
use tracing::info;

use crate::config::layout::Layout;
use crate::config::Config;
use crate::dump::ColumnKind;
use crate::inspect::replay::{compare, describe_keys};
use crate::inspect::verify::VerifyReport;
use crate::run::extracting::extract_pending;
use crate::run::loading::connect;
use crate::run::plan::Plan;
use crate::stages::diff::{read_partition, schema};
use crate::stages::load::database::{quote, show_create_table};
use crate::values::epiweek::{yyyymmdd, Epiweek};
use crate::workdir::lock::lock_work_folder;
use crate::workdir::state::Paths;

/// Example keys shown per kind of difference, date and source.
const SHOWN: usize = 3;

pub fn verify_database(config: &Config) -> Result<VerifyReport> {
    let url = config.database.as_ref().expect("called with --database");
    let paths = Paths::new(config);
    // Wrong input (no backups folder, no backups) before the work folder is created.
    crate::stages::discover::discover(&config.backups, &config.pattern)?;
    let _lock = lock_work_folder(&config.work)?;
    // Every backup is planned (and extracted): whether a weekly row is exact on a date
    // depends on the backup after it. `--dates` only chooses the dates checked.
    let every = Config {
        dates: None,
        ..config.clone()
    };
    let mut plan = Plan::new(&every, &paths)?;
    extract_pending(&mut plan, &every, &paths)?;
    let mut conn = connect(url)?;
    let table = config.target_table.clone();
    let shown = show_create_table(&mut conn, &table)?;
    let Some(shown) = shown else {
        bail!("{url}: the database has no table `{table}`");
    };
    // The June 2021 table records a removal as a row of its own, coded deleted: the API
    // serves it, but it is no row of the backup.
    let deleted_rows = shown.contains("`missing_value`");
    let dates: Vec<chrono::NaiveDate> = plan.extracts.iter().map(|u| u.backup.date).collect();
    let mut report = VerifyReport {
        backups: plan.extracts.len(),
        ..VerifyReport::default()
    };
    let mut sources = BTreeMap::new();
    for (index, unit) in plan.extracts.iter().enumerate() {
        let date = unit.backup.stamp();
        if let Some(selection) = &config.dates {
            if !selection.contains(unit.backup.date) {
                continue;
            }
        }
        let info = unit.done.as_ref().expect("extracted");
        let layout = info.layout(config)?;
        let newest = index + 1 == plan.extracts.len();
        // Weekly rows are exact only where no later backup shares the epiweek.
        let weeks_exact = dates
            .get(index + 1)
            .is_none_or(|next| Epiweek::containing(*next) != Epiweek::containing(unit.backup.date));
        for entry in &info.partitions {
            sources.insert(entry.stem.clone(), ());
            let backup = read_partition(Some(&paths.partition_file(&date, &entry.stem)), &layout)?;
            let day = yyyymmdd(unit.backup.date);
            let week = Epiweek::containing(unit.backup.date).yyyyww();
            let mut queries = vec![("as of", as_of_query(&layout, config, &table, deleted_rows))];
            if newest {
                queries.push((
                    "latest",
                    latest_query(&layout, config, &table, deleted_rows),
                ));
            }
            for (what, sql) in queries {
                let params: Vec<Value> = match what {
                    "as of" => vec![entry.value.clone().into(), week.into(), day.into()],
                    _ => vec![entry.value.clone().into()],
                };
                let live = fetch(&mut conn, &sql, params, &layout)?;
                let (live, expected) = if weeks_exact || what == "latest" {
                    (live, backup.clone())
                } else {
                    (daily_only(live)?, daily_only(backup.clone())?)
                };
                let differences = compare(&live, &expected, &layout)?;
                for (kind, keys) in [
                    ("missing from the table", &differences.missing),
                    ("served but not in the backup", &differences.extra),
                    ("served with other values", &differences.different),
                ] {
                    for key in describe_keys(keys, SHOWN)? {
                        report.problems.push(format!(
                            "{date} {} ({what} query): {key} {kind}",
                            entry.value
                        ));
                    }
                    report.not_listed += keys.height().saturating_sub(SHOWN);
                }
                info!(
                    "checked {date} {} ({what}): {} rows, {} mismatches",
                    entry.value,
                    expected.height(),
                    differences.count()
                );
            }
        }
    }
    report.sources = sources.len();
    Ok(report)
}

fn columns(layout: &Layout, alias: &str) -> String {
    let names: Vec<String> = layout
        .names()
        .map(|n| format!("{alias}{}", quote(n)))
        .collect();
    names.join(", ")
}

/// The API's as-of query for one source: per key, the row of greatest issue up to the date
/// (an epiweek for weekly rows). Parameters: the source, the epiweek, the date.
fn as_of_query(layout: &Layout, config: &Config, table: &str, deleted_rows: bool) -> String {
    let key: Vec<String> = layout.key_names().iter().map(|k| quote(k)).collect();
    let key = key.join(", ");
    format!(
        "SELECT {} FROM {t} AS c JOIN (SELECT {key}, MAX(`issue`) AS `issue` FROM {t} \
         WHERE {p} = ? AND `issue` <= IF(`time_type` = 'week', ?, ?) GROUP BY {key}) AS l \
         USING ({key}, `issue`){}",
        columns(layout, "c."),
        if deleted_rows {
            " WHERE NOT c.`missing_value` <=> 4"
        } else {
            ""
        },
        t = quote(table),
        p = quote(&config.partition_column),
    )
}

/// The API's default query for one source: the rows flagged latest.
fn latest_query(layout: &Layout, config: &Config, table: &str, deleted_rows: bool) -> String {
    format!(
        "SELECT {} FROM {} WHERE {} = ? AND `is_latest_issue` = 1{}",
        columns(layout, ""),
        quote(table),
        quote(&config.partition_column),
        if deleted_rows {
            " AND NOT `missing_value` <=> 4"
        } else {
            ""
        }
    )
}

/// Runs a query and reads its rows into a frame of the partitions' types, streamed row by
/// row from the server.
fn fetch(conn: &mut Conn, sql: &str, params: Vec<Value>, layout: &Layout) -> Result<DataFrame> {
    enum Values {
        Integer(Vec<Option<i64>>),
        Float(Vec<Option<f64>>),
        Text(Vec<Option<String>>),
        Binary(Vec<Option<Vec<u8>>>),
    }
    let mut columns: Vec<Values> = (layout.columns.iter())
        .map(|c| match c.kind {
            ColumnKind::Integer => Values::Integer(Vec::new()),
            ColumnKind::Float => Values::Float(Vec::new()),
            ColumnKind::Binary => Values::Binary(Vec::new()),
            _ => Values::Text(Vec::new()),
        })
        .collect();
    let result = conn.exec_iter(sql, params)?;
    for row in result {
        let row = row?;
        for (i, column) in columns.iter_mut().enumerate() {
            let value = row.as_ref(i).cloned().unwrap_or(Value::NULL);
            let bytes = match value {
                Value::NULL => None,
                Value::Bytes(bytes) => Some(bytes),
                Value::Int(v) => Some(v.to_string().into_bytes()),
                Value::UInt(v) => Some(v.to_string().into_bytes()),
                Value::Double(v) => Some(v.to_string().into_bytes()),
                Value::Float(v) => Some(v.to_string().into_bytes()),
                other => Some(other.as_sql(true).into_bytes()),
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            match column {
                Values::Integer(v) => v.push(
                    bytes
                        .map(|b| text(&b).parse())
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("column {}: {e}", layout.columns[i].name))?,
                ),
                Values::Float(v) => v.push(
                    bytes
                        .map(|b| text(&b).parse())
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("column {}: {e}", layout.columns[i].name))?,
                ),
                Values::Text(v) => v.push(bytes.map(|b| text(&b))),
                Values::Binary(v) => v.push(bytes),
            }
        }
    }
    let series: Vec<Column> = (layout.columns.iter().zip(columns))
        .map(|(c, values)| {
            let name = PlSmallStr::from(c.name.as_str());
            match values {
                Values::Integer(v) => Series::new(name, v).into_column(),
                Values::Float(v) => Series::new(name, v).into_column(),
                Values::Text(v) => Series::new(name, v).into_column(),
                Values::Binary(v) => Series::new(name, v).into_column(),
            }
        })
        .collect();
    let frame = DataFrame::new_infer_height(series)?;
    let casts: Vec<Expr> = schema(layout)
        .iter()
        .map(|(name, dtype)| col(name.clone()).cast(dtype.clone()))
        .collect();
    Ok(frame.lazy().with_columns(casts).collect()?)
}

fn daily_only(frame: DataFrame) -> Result<DataFrame> {
    Ok(frame
        .lazy()
        .filter(col("time_type").cast(DataType::String).neq(lit("week")))
        .collect()?)
}

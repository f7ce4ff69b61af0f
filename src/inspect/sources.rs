//! `migrate sources`: what an output holds, per source and signal: its issue rows, the
//! backups that issued them, and the first and last of those. The same reading names the
//! sources and signals that exist when `asof`, `history` or `plot` is asked for one that
//! does not.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Result};
use polars::prelude::*;

use crate::exit_codes::UsageError;
use crate::inspect::output::Output;
use crate::stages::extract::file_stem;

/// The columns of the `sources` table.
pub const COLUMNS: [&str; 6] = [
    "source",
    "signal",
    "issue_rows",
    "issues",
    "first_issue",
    "last_issue",
];

/// Per source (of `stems`) and signal: issue rows, backups with issue rows (`issues`), the
/// first and last of them (YYYYMMDD). Reads every issue file of those sources.
pub fn signals_of(output: &Output, stems: &BTreeSet<String>, scratch: &Path) -> Result<DataFrame> {
    let layout = &output.layout;
    let names: Vec<&str> = layout.names().collect();
    if !names.contains(&"signal") {
        bail!("the output's table has no `signal` column");
    }
    let source = names[layout.partition];
    let mut parts = Vec::new();
    for date in &output.dates {
        let backup: i64 = date.parse()?;
        for stem in stems {
            let (issues, _) = output.read(date, stem, scratch)?;
            if issues.height() == 0 {
                continue;
            }
            parts.push(issues.lazy().select([
                col(source).cast(DataType::String).alias("source"),
                col("signal").cast(DataType::String),
                lit(backup).alias("backup"),
            ]));
        }
    }
    if parts.is_empty() {
        let columns = COLUMNS.iter().map(|name| {
            let dtype = match *name {
                "source" | "signal" => DataType::String,
                _ => DataType::Int64,
            };
            Column::new_empty(PlSmallStr::from(*name), &dtype)
        });
        return Ok(DataFrame::new(0, columns.collect())?);
    }
    let all = concat(parts, Default::default())?;
    let table = all
        .group_by([col("source"), col("signal")])
        .agg([
            len().cast(DataType::Int64).alias("issue_rows"),
            col("backup")
                .n_unique()
                .cast(DataType::Int64)
                .alias("issues"),
            col("backup")
                .min()
                .cast(DataType::Int64)
                .alias("first_issue"),
            col("backup")
                .max()
                .cast(DataType::Int64)
                .alias("last_issue"),
        ])
        .sort(["source", "signal"], SortMultipleOptions::default())
        .collect()?;
    Ok(table)
}

/// The `sources` table of the output in `out`.
pub fn sources(out: &Path) -> Result<DataFrame> {
    let output = Output::open(out)?;
    let stems = output.stems(&output.dates, &[])?;
    let scratch = output.scratch()?;
    signals_of(&output, &stems, scratch.path())
}

/// Refuses sources the output does not hold (a `UsageError`), naming those it does.
pub fn check_sources(output: &Output, asked: &[String]) -> Result<()> {
    let held = output.stems(&output.dates, &[])?;
    let unknown: Vec<&str> = (asked.iter())
        .filter(|s| !held.contains(&file_stem(s)))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(UsageError(format!(
        "no source {} in the output in {}; it holds: {} (see `migrate sources --out {}`)",
        unknown.join(", "),
        output.config.out.display(),
        held.into_iter().collect::<Vec<_>>().join(", "),
        output.config.out.display(),
    ))
    .into())
}

/// Refuses signals that no source of `stems` has (a `UsageError`), naming those they have.
/// Reads every issue file of the sources: call it only once a query found nothing.
pub fn check_signals(
    output: &Output,
    stems: &BTreeSet<String>,
    asked: &[String],
    scratch: &Path,
) -> Result<()> {
    let table = signals_of(output, stems, scratch)?;
    let held: BTreeSet<String> = (table.column("signal")?.str()?.iter())
        .flatten()
        .map(str::to_string)
        .collect();
    let unknown: Vec<&str> = (asked.iter())
        .filter(|s| !held.contains(*s))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(UsageError(format!(
        "no signal {} in source {} of the output; the signals there: {}",
        unknown.join(", "),
        stems.iter().cloned().collect::<Vec<_>>().join(", "),
        held.into_iter().collect::<Vec<_>>().join(", "),
    ))
    .into())
}

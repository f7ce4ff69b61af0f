//! `migrate asof`: the table as it was on a date, rebuilt from the output alone: for each
//! key the latest issue row up to that date, minus keys removed by then.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{bail, Result};
use polars::prelude::{col, lit, DataFrame, DataType, Expr, IntoLazy};

use crate::cli::AsofArgs;
use crate::config::Config;
use crate::diff::{read_partition, sort_by_key, text_as_strings};
use crate::emit::write_table;
use crate::layout::Layout;
use crate::partition::file_stem;
use crate::replay::{apply, read_issues, read_removals};
use crate::state::{OutputTable, Paths};

/// A migration's output folder, opened for replaying.
pub struct Output {
    pub config: Config,
    pub paths: Paths,
    pub layout: Layout,
    /// Backup dates that have output, in order.
    pub dates: Vec<String>,
}

impl Output {
    pub fn open(out: &std::path::Path) -> Result<Output> {
        let mut config = Config::new(out.to_path_buf(), out.to_path_buf());
        let paths = Paths::new(&config);
        let saved = OutputTable::load(&paths)?;
        saved.apply_to(&mut config);
        let layout = Layout::new(&saved.table, &config)?;
        // Output folders are named by backup date.
        let dates = std::fs::read_dir(&paths.issues)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(Output {
            config,
            paths,
            layout,
            dates,
        })
    }

    /// The issue rows and removals of one source in the backup of `date`.
    pub fn read(
        &self,
        date: &str,
        stem: &str,
        scratch: &std::path::Path,
    ) -> Result<(DataFrame, DataFrame)> {
        let issues_file = self.paths.existing_issues_file(date, stem);
        let removals_file = self.paths.existing_removals_file(date, stem);
        Ok((
            read_issues(issues_file.as_deref(), &self.layout, scratch)?,
            read_removals(removals_file.as_deref(), &self.layout)?,
        ))
    }

    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.config.work)?;
        Ok(tempfile::Builder::new()
            .prefix(".tmp-replay-")
            .tempdir_in(&self.config.work)?)
    }
}

/// Writes the table as of `args.date`; returns the number of rows.
pub fn asof(args: &AsofArgs) -> Result<usize> {
    let output = Output::open(&args.out)?;
    let Output {
        config,
        paths,
        layout,
        ..
    } = &output;
    let date = args.date.format("%Y%m%d").to_string();
    let dates: Vec<String> = output
        .dates
        .iter()
        .filter(|d| **d <= date)
        .cloned()
        .collect();
    if dates.is_empty() {
        bail!(
            "the output in {} has no backup on or before {date}",
            args.out.display()
        );
    }
    if let Some(last) = dates.last().filter(|last| **last != date) {
        tracing::info!("no backup of {date}: the table as of {date} is the backup of {last}");
    }
    let wanted: Vec<String> = args.source.iter().map(|s| file_stem(s)).collect();
    let mut stems = BTreeSet::new();
    for d in &dates {
        for entry in std::fs::read_dir(paths.issues.join(d))?.flatten() {
            let path = entry.path();
            let stem = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if wanted.is_empty() || wanted.contains(&stem) {
                stems.insert(stem);
            }
        }
    }
    let scratch = output.scratch()?;
    let mut tables = Vec::new();
    for stem in &stems {
        let mut state = read_partition(None, layout)?;
        for d in &dates {
            let (issues, removals) = output.read(d, stem, scratch.path())?;
            state = apply(state, &issues, &removals, layout)?;
        }
        tables.push(state.lazy());
    }
    let mut table = match tables.len() {
        0 => read_partition(None, layout)?.lazy(),
        _ => polars::prelude::concat(tables, Default::default())?,
    };
    if !args.signal.is_empty() {
        let signal = layout.key_names().into_iter().find(|k| *k == "signal");
        let Some(signal) = signal else {
            bail!("--signal needs a `signal` column in the key");
        };
        let matches = args
            .signal
            .iter()
            .map(|s| col(signal).cast(DataType::String).eq(lit(s.as_str())))
            .fold(lit(false), |any, m: Expr| any.or(m));
        table = table.filter(matches);
    }
    let frame = text_as_strings(sort_by_key(table, layout).collect()?)?;
    let mut out: Box<dyn Write> = match &args.to {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    write_table(&mut out, &frame, layout, args.format, &config.target_table)?;
    out.flush()?;
    Ok(frame.height())
}

//! A migration's output folder opened for reading: its settings, its columns' roles and the
//! backup dates it holds. Every command that reads a finished output starts here.

use std::collections::BTreeSet;

use anyhow::{anyhow, Result};
use polars::prelude::DataFrame;

use crate::config::layout::Layout;
use crate::config::Config;
use crate::inspect::replay::{read_issues, read_issues_where, read_removals, read_removals_where};
use crate::inspect::row_filter::RowFilter;
use crate::stages::extract::file_stem;
use crate::workdir::state::{OutputTable, Paths};

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
        let layout = Layout::new(&saved.table, config.roles())?;
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

    /// `read`, keeping only the rows `filter` accepts.
    pub fn read_where(
        &self,
        date: &str,
        stem: &str,
        scratch: &std::path::Path,
        filter: &RowFilter,
    ) -> Result<(DataFrame, DataFrame)> {
        let issues_file = self.paths.existing_issues_file(date, stem);
        let removals_file = self.paths.existing_removals_file(date, stem);
        Ok((
            read_issues_where(issues_file.as_deref(), &self.layout, scratch, filter)?,
            read_removals_where(removals_file.as_deref(), &self.layout, filter)?,
        ))
    }

    /// How many issue rows of `source` have a negative lag, as summary.json counts them;
    /// None when it does not say (no summary, or one written before it counted them).
    pub fn negative_lag_rows(&self, source: &str) -> Result<Option<u64>> {
        let Ok(text) = std::fs::read_to_string(&self.paths.summary) else {
            return Ok(None);
        };
        let summary: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{} is damaged: {e}", self.paths.summary.display()))?;
        Ok(summary["sources"][source]["negative_lag_rows"].as_u64())
    }

    /// Rows of the source whose files are named `stem` that the run added (new keys) and
    /// changed, over all its backups, as summary.json counts them; None when it does not
    /// say. The source's table never holds more rows than were added.
    pub fn added_and_changed(&self, stem: &str) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(&self.paths.summary).ok()?;
        let summary: serde_json::Value = serde_json::from_str(&text).ok()?;
        let sources = summary["sources"].as_object()?;
        let (_, totals) = sources
            .iter()
            .find(|(source, _)| file_stem(source) == stem)?;
        Some((totals["added"].as_u64()?, totals["changed"].as_u64()?))
    }

    /// File stems of the sources with output in `dates`: those of `sources` (all when
    /// empty).
    pub fn stems(&self, dates: &[String], sources: &[String]) -> Result<BTreeSet<String>> {
        let wanted: Vec<String> = sources.iter().map(|s| file_stem(s)).collect();
        let mut stems = BTreeSet::new();
        for d in dates {
            for entry in std::fs::read_dir(self.paths.issues.join(d))?.flatten() {
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
        Ok(stems)
    }

    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.config.work)?;
        Ok(tempfile::Builder::new()
            .prefix(".tmp-replay-")
            .tempdir_in(&self.config.work)?)
    }
}

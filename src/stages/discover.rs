//! Stage 1: find the backups in a folder, date them from their names, order them, and find
//! the days between them that have no backup.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use regex::Regex;

use crate::config::DEFAULT_PATTERN;
use crate::exit_codes::UsageError;
use crate::values::dates::DateSelection;

pub use crate::values::backup::Backup;

/// Returns a `UsageError` (exit status 2) with a formatted message.
macro_rules! usage_error {
    ($($arg:tt)*) => {
        return Err(UsageError(format!($($arg)*)).into())
    };
}

/// Days without a backup between two backups that follow each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub after: NaiveDate,
    pub before: NaiveDate,
}

impl Gap {
    pub fn missing_days(&self) -> i64 {
        (self.before - self.after).num_days() - 1
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.after.succ_opt().expect("a day follows");
        let last = self.before.pred_opt().expect("a day precedes");
        if first == last {
            write!(f, "no backup for {first}")
        } else {
            write!(
                f,
                "no backups for {first} to {last} ({} days)",
                self.missing_days()
            )
        }
    }
}

/// The backups of a folder in date order, and the gaps between them.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub backups: Vec<Backup>,
    pub gaps: Vec<Gap>,
}

/// Lists the backups in `dir`. Every visible file must match `pattern` (whose `date` group,
/// or else first group, holds `YYYYMMDD`); two files with one date are an error. The
/// folder's problems (missing, empty, strangers, two backups of a date) are `UsageError`s:
/// wrong input, found before anything is written.
pub fn discover(dir: &Path, pattern: &Regex) -> Result<Discovery> {
    if !dir.is_dir() {
        let what = match dir.exists() {
            true => "is not a folder",
            false => "does not exist",
        };
        return Err(UsageError(format!(
            "the backups folder {} {what} (--backups DIR: the folder of daily backups)",
            dir.display()
        ))
        .into());
    }
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the backups folder {}", dir.display()))?;
    let mut backups = Vec::new();
    let mut strangers = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        match date_in_name(&name, pattern)? {
            Some(date) => backups.push(Backup {
                date,
                path: entry.path(),
            }),
            None => strangers.push(name),
        }
    }
    if !strangers.is_empty() {
        strangers.sort();
        usage_error!(
            "{} file(s) in {} do not look like backups: {}. Move them away, or pass \
             --pattern with a regular expression whose `date` group matches YYYYMMDD \
             (the default is '{}')",
            strangers.len(),
            dir.display(),
            strangers.join(", "),
            pattern.as_str()
        );
    }
    if backups.is_empty() {
        usage_error!(
            "no backups found in {}: {}",
            dir.display(),
            expected_names(pattern)
        );
    }
    backups.sort_by(|a, b| a.date.cmp(&b.date).then(a.path.cmp(&b.path)));
    for pair in backups.windows(2) {
        if pair[0].date == pair[1].date {
            usage_error!(
                "two backups have the date {}: {} and {}. Keep one of them",
                pair[0].stamp(),
                pair[0].path.display(),
                pair[1].path.display()
            );
        }
    }
    let gaps = backups
        .windows(2)
        .filter(|pair| (pair[1].date - pair[0].date).num_days() > 1)
        .map(|pair| Gap {
            after: pair[0].date,
            before: pair[1].date,
        })
        .collect();
    Ok(Discovery { backups, gaps })
}

impl Discovery {
    /// Only the backups of `dates`, and the gaps between them (`--dates`).
    pub fn select(self, dates: &DateSelection, dir: &Path) -> Result<Discovery> {
        let backups: Vec<Backup> = (self.backups.into_iter())
            .filter(|b| dates.contains(b.date))
            .collect();
        if backups.is_empty() {
            usage_error!(
                "no backup in {} has a date in --dates {dates}",
                dir.display()
            );
        }
        let gaps = (self.gaps.into_iter())
            .filter(|g| dates.contains(g.after) && dates.contains(g.before))
            .collect();
        Ok(Discovery { backups, gaps })
    }
}

/// What the backups' names should look like, for a folder that has none.
fn expected_names(pattern: &Regex) -> String {
    match pattern.as_str() == DEFAULT_PATTERN {
        true => format!(
            "expected files named like just_covidcast_YYYYMMDD_database.sql.gz (or .sql), \
             as --pattern '{DEFAULT_PATTERN}' matches; for other names pass --pattern with a \
             regular expression whose `date` group matches YYYYMMDD"
        ),
        false => format!(
            "no file name matches --pattern '{}' (its `date` group must match YYYYMMDD)",
            pattern.as_str()
        ),
    }
}

fn date_in_name(name: &str, pattern: &Regex) -> Result<Option<NaiveDate>> {
    let Some(captures) = pattern.captures(name) else {
        return Ok(None);
    };
    let Some(digits) = captures.name("date").or_else(|| captures.get(1)) else {
        usage_error!("--pattern '{}' has no `date` group", pattern.as_str());
    };
    match NaiveDate::parse_from_str(digits.as_str(), "%Y%m%d") {
        Ok(date) => Ok(Some(date)),
        Err(_) => usage_error!(
            "backup {name}: {:?} is not a date (YYYYMMDD); rename the file",
            digits.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_PATTERN;

    fn folder(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        dir
    }

    fn pattern() -> Regex {
        Regex::new(DEFAULT_PATTERN).unwrap()
    }

    #[test]
    fn orders_by_date_and_reports_gaps() {
        let dir = folder(&[
            "just_covidcast_20200603_database.sql.gz",
            "just_covidcast_20200601_database.sql.gz",
            "just_covidcast_20200602_database.sql",
            "just_covidcast_20200607_database.sql.gz",
            ".hidden",
        ]);
        let found = discover(dir.path(), &pattern()).unwrap();
        let stamps: Vec<_> = found.backups.iter().map(Backup::stamp).collect();
        assert_eq!(stamps, ["20200601", "20200602", "20200603", "20200607"]);
        assert_eq!(found.gaps.len(), 1);
        assert_eq!(found.gaps[0].missing_days(), 3);
        assert_eq!(
            found.gaps[0].to_string(),
            "no backups for 2020-06-04 to 2020-06-06 (3 days)"
        );
    }

    #[test]
    fn two_files_with_one_date_are_named() {
        let dir = folder(&[
            "just_covidcast_20200601_database.sql.gz",
            "just_covidcast_20200601_database.sql",
        ]);
        let err = discover(dir.path(), &pattern()).unwrap_err().to_string();
        assert!(err.contains("20200601_database.sql.gz"), "{err}");
        assert!(err.contains("20200601_database.sql and"), "{err}");
    }

    #[test]
    fn strangers_and_impossible_dates_are_errors() {
        let dir = folder(&["just_covidcast_20200601_database.sql.gz", "notes.txt"]);
        let err = discover(dir.path(), &pattern()).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("--pattern"),
            "{err}"
        );

        let dir = folder(&["just_covidcast_20201341_database.sql.gz"]);
        let err = discover(dir.path(), &pattern()).unwrap_err().to_string();
        assert!(err.contains("not a date"), "{err}");
    }

    #[test]
    fn a_custom_pattern_dates_other_names() {
        let dir = folder(&["dump-2020-06-01.sql", "dump-2020-06-02.sql"]);
        let custom = Regex::new(r"^dump-(\d{4})-(\d{2})-(\d{2})\.sql$").unwrap();
        // Only one group can hold the date; a pattern spreading it over three is refused.
        assert!(discover(dir.path(), &custom).is_err());
        let dir = folder(&["dump-20200601.sql", "dump-20200602.sql"]);
        let custom = Regex::new(r"^dump-(?P<date>\d{8})\.sql$").unwrap();
        assert_eq!(discover(dir.path(), &custom).unwrap().backups.len(), 2);
    }

    #[test]
    fn a_selection_keeps_its_dates_and_names_an_empty_one() {
        let dir = folder(&[
            "just_covidcast_20200601_database.sql.gz",
            "just_covidcast_20200603_database.sql.gz",
            "just_covidcast_20200604_database.sql.gz",
            "just_covidcast_20200607_database.sql.gz",
        ]);
        let found = discover(dir.path(), &pattern()).unwrap();
        let dates = DateSelection::parse("20200602..20200607").unwrap();
        let chosen = found.clone().select(&dates, dir.path()).unwrap();
        let stamps: Vec<_> = chosen.backups.iter().map(Backup::stamp).collect();
        assert_eq!(stamps, ["20200603", "20200604", "20200607"]);
        assert_eq!(
            chosen.gaps.len(),
            1,
            "the gap before the first is not its own"
        );
        let none = DateSelection::parse("20200701..").unwrap();
        let err = found.select(&none, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("no backup") && err.contains("20200701.."),
            "{err}"
        );
    }

    #[test]
    fn an_empty_or_missing_folder_is_a_usage_error_that_says_what_to_put_there() {
        let dir = folder(&[]);
        let err = discover(dir.path(), &pattern()).unwrap_err();
        assert!(err.is::<UsageError>());
        let text = err.to_string();
        assert!(
            text.contains("just_covidcast_YYYYMMDD_database.sql.gz") && text.contains("--pattern"),
            "{text}"
        );
        let err = discover(&dir.path().join("nowhere"), &pattern()).unwrap_err();
        assert!(err.is::<UsageError>());
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}

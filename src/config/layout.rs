//! Which columns of the table play which part: the partitions keep every column but the id,
//! the key identifies a measurement, the compared columns decide whether it changed, and
//! the time column (if any) is what `lag` counts from.

use crate::dump::{ColumnKind, TableDef};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The columns a run names by their role (`--id-column`, `--key`, `--ignore-columns`,
/// `--partition-column`, `--time-column`); `Config::roles` gives a run's.
#[derive(Debug, Clone, Copy)]
pub struct ColumnRoles<'a> {
    pub id: &'a str,
    pub key: &'a [String],
    pub ignore: &'a [String],
    pub partition: &'a str,
    pub time: &'a TimeColumn,
}

/// The column `lag` counts from, as `--time-column` names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeColumn {
    /// `time_value` when the table has it (with `time_type` when it is an integer column, as
    /// in Epidata's tables); a table without it has no lag.
    #[default]
    Auto,
    /// No lag (`--time-column none`).
    Off,
    /// This column: an integer `YYYYMMDD`/`YYYYWW` column read with `time_type`, or a
    /// `date`, `datetime` or `timestamp` column.
    Named(String),
}

impl TimeColumn {
    /// `--time-column` as given: `none` for no lag, else a column's name.
    pub fn parse(text: &str) -> TimeColumn {
        match text {
            "none" => TimeColumn::Off,
            name => TimeColumn::Named(name.to_string()),
        }
    }
}

/// How the issue rows' `issue` and `lag` are found, by stored-column index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// No time column: `issue` is the backup date (`YYYYMMDD`) and there is no `lag`.
    None,
    /// Epidata's pair: `time_value` holds `YYYYMMDD` for `time_type = 'day'` (lag in days,
    /// issue the backup date) and `YYYYWW` for `'week'` (lag in epiweeks, issue the
    /// epiweek of the backup).
    Typed { time_type: usize, time_value: usize },
    /// A `date`, `datetime` or `timestamp` column: lag in days from its day to the backup,
    /// issue the backup date.
    Dated(usize),
}

/// The column that tells an integer time column's unit (`day` or `week`).
pub const TIME_TYPE: &str = "time_type";
/// The time column `--time-column` defaults to.
pub const TIME_VALUE: &str = "time_value";

/// A column as stored in the partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredColumn {
    pub name: String,
    pub kind: ColumnKind,
    pub is_key: bool,
    pub is_compared: bool,
}

/// The roles of the table's columns, worked out once per dump from its `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Every column but the id, in table order: the partitions' and the output's columns.
    pub columns: Vec<StoredColumn>,
    /// Index in the table's columns of each stored column.
    pub table_index: Vec<usize>,
    /// Number of columns in the table, id included.
    pub table_width: usize,
    /// Stored-column index of the partition column.
    pub partition: usize,
    /// Where `issue` and `lag` come from.
    pub time: Time,
}

impl Layout {
    pub fn new(table: &TableDef, roles: ColumnRoles) -> Result<Layout> {
        let position = |name: &str| table.columns.iter().position(|c| c.name == name);
        let mut missing: Vec<&str> = roles
            .key
            .iter()
            .chain(roles.ignore)
            .map(String::as_str)
            .chain([roles.partition])
            .chain(match roles.time {
                TimeColumn::Named(name) => Some(name.as_str()),
                _ => None,
            })
            .filter(|name| position(name).is_none())
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            bail!(
                "table `{}` has no column(s) {}; its columns are {}",
                table.name,
                missing.join(", "),
                table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let mut columns = Vec::new();
        let mut table_index = Vec::new();
        for (index, column) in table.columns.iter().enumerate() {
            if column.name == roles.id {
                continue;
            }
            let is_key = roles.key.contains(&column.name);
            columns.push(StoredColumn {
                name: column.name.clone(),
                kind: column.kind,
                is_key,
                is_compared: !is_key && !roles.ignore.contains(&column.name),
            });
            table_index.push(index);
        }
        let stored = |name: &str| {
            columns
                .iter()
                .position(|c| c.name == name)
                .expect("checked above")
        };
        let time = time_of(&table.name, &columns, roles.time)?;
        Ok(Layout {
            partition: stored(roles.partition),
            time,
            table_width: table.columns.len(),
            columns,
            table_index,
        })
    }

    /// Whether issue rows have a `lag` (the table has a time column).
    pub fn has_lag(&self) -> bool {
        self.time != Time::None
    }

    /// The time column, if any.
    pub fn time_column(&self) -> Option<&str> {
        match self.time {
            Time::None => None,
            Time::Typed { time_value, .. } => Some(&self.columns[time_value].name),
            Time::Dated(index) => Some(&self.columns[index].name),
        }
    }

    /// What `lag` counts, in words (for the summary).
    pub fn lag_description(&self) -> String {
        match self.time {
            Time::None => "none: the table has no time column (see --time-column), so issue \
                           rows have an issue and no lag"
                .to_string(),
            Time::Typed {
                time_type,
                time_value,
            } => format!(
                "days (or epiweeks, by {}) from {}",
                self.columns[time_type].name, self.columns[time_value].name
            ),
            Time::Dated(index) => format!("days from {}", self.columns[index].name),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    pub fn key_names(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.is_key)
            .map(|c| c.name.as_str())
            .collect()
    }

    pub fn compared_names(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.is_compared)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// A layout of `(name, kind, is_key)` columns (the others compared) for unit tests: the
/// first column partitions, table index i + 1 (the id first).
#[cfg(test)]
pub fn test_layout(columns: &[(&str, ColumnKind, bool)], time: Time) -> Layout {
    Layout {
        columns: (columns.iter())
            .map(|&(name, kind, is_key)| StoredColumn {
                name: name.into(),
                kind,
                is_key,
                is_compared: !is_key,
            })
            .collect(),
        table_index: (1..=columns.len()).collect(),
        table_width: columns.len() + 1,
        partition: 0,
        time,
    }
}

/// The time column `choice` picks among the stored `columns` of the table `table`.
fn time_of(table: &str, columns: &[StoredColumn], choice: &TimeColumn) -> Result<Time> {
    let stored = |name: &str| columns.iter().position(|c| c.name == name);
    let (index, named) = match choice {
        TimeColumn::Off => return Ok(Time::None),
        TimeColumn::Auto => match stored(TIME_VALUE) {
            Some(index) => (index, false),
            None => return Ok(Time::None),
        },
        TimeColumn::Named(name) => match stored(name) {
            Some(index) => (index, true),
            None => bail!("`{name}` is the id column of `{table}`; --time-column needs another"),
        },
    };
    let column = &columns[index];
    let how = match named {
        true => format!("--time-column {}", column.name),
        false => format!("{} (the default --time-column)", column.name),
    };
    match column.kind {
        kind if kind.is_dated() => Ok(Time::Dated(index)),
        ColumnKind::Integer => match stored(TIME_TYPE) {
            Some(time_type) if columns[time_type].kind.is_text() => Ok(Time::Typed {
                time_type,
                time_value: index,
            }),
            _ => bail!(
                "{how} is an integer column of `{table}`, read as YYYYMMDD or YYYYWW by a \
                 text column {TIME_TYPE} ('day' or 'week'), which the table has not; pass \
                 --time-column with a date, datetime or timestamp column, or --time-column \
                 none for issue rows without a lag"
            ),
        },
        _ => bail!(
            "{how} is neither an integer column (YYYYMMDD or YYYYWW, with {TIME_TYPE}) nor a \
             date, datetime or timestamp column of `{table}`; pass --time-column with one, \
             or --time-column none for issue rows without a lag"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dump::parse_create_table;

    fn covidcast() -> TableDef {
        parse_create_table(
            "CREATE TABLE covidcast (id int, source varchar(32), `signal` varchar(64), \
             time_type varchar(12), geo_type varchar(12), time_value int, geo_value varchar(12), \
             value_updated_timestamp int, value double, stderr double)",
        )
        .unwrap()
    }

    #[test]
    fn roles_of_the_covidcast_columns() {
        let mut config = Config::new(".".into(), ".".into());
        config.ignore_columns = vec!["value_updated_timestamp".into()];
        let layout = Layout::new(&covidcast(), config.roles()).unwrap();
        assert_eq!(layout.names().next(), Some("source"));
        assert_eq!(layout.columns.len(), 9);
        assert_eq!(layout.key_names(), config.key);
        assert_eq!(layout.compared_names(), ["value", "stderr"]);
        assert_eq!(layout.table_index[0], 1);
        assert_eq!(layout.partition, 0);
        assert_eq!(
            layout.time,
            Time::Typed {
                time_type: 2,
                time_value: 4
            }
        );
        assert!(layout.has_lag());
    }

    fn prices() -> TableDef {
        parse_create_table(
            "CREATE TABLE prices (id int, store varchar(8), sku varchar(16), day date, \
             sold_at datetime(3), price decimal(20,2), units int)",
        )
        .unwrap()
    }

    fn prices_config(time: TimeColumn) -> Config {
        let mut config = Config::new(".".into(), ".".into());
        config.key = vec!["store".into(), "sku".into(), "day".into()];
        config.partition_column = "store".into();
        config.time_column = time;
        config
    }

    #[test]
    fn a_table_without_time_columns_has_no_lag() {
        let layout = Layout::new(&prices(), prices_config(TimeColumn::Auto).roles()).unwrap();
        assert_eq!(layout.time, Time::None);
        assert!(!layout.has_lag());
        assert!(layout.lag_description().starts_with("none"));
        let off = Layout::new(&covidcast(), prices_config(TimeColumn::Off).roles());
        assert!(off.is_err(), "the key's columns are not covidcast's");
        let mut config = Config::new(".".into(), ".".into());
        config.time_column = TimeColumn::Off;
        let layout = Layout::new(&covidcast(), config.roles()).unwrap();
        assert_eq!(layout.time, Time::None);
    }

    #[test]
    fn a_date_or_datetime_column_can_be_the_time_column() {
        let named = |name: &str| TimeColumn::Named(name.into());
        let layout = Layout::new(&prices(), prices_config(named("day")).roles()).unwrap();
        assert_eq!(layout.time, Time::Dated(2));
        assert_eq!(layout.time_column(), Some("day"));
        let layout = Layout::new(&prices(), prices_config(named("sold_at")).roles()).unwrap();
        assert_eq!(layout.time, Time::Dated(3));
        for (name, expected) in [
            ("units", "which the table has not"),
            ("price", "neither"),
            ("nope", "no column(s) nope"),
        ] {
            let err = Layout::new(&prices(), prices_config(named(name)).roles())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn unknown_columns_are_named() {
        let mut config = Config::new(".".into(), ".".into());
        config.key.push("county".into());
        let err = Layout::new(&covidcast(), config.roles())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column(s) county"), "{err}");
    }
}

//! Which columns of the table play which part: the partitions keep every column but the id,
//! the key identifies a measurement, the compared columns decide whether it changed.

use crate::dump::{ColumnKind, TableDef};
use anyhow::{bail, Result};

/// The columns a run names by their role (`--id-column`, `--key`, `--ignore-columns`,
/// `--partition-column`); `Config::roles` gives a run's.
#[derive(Debug, Clone, Copy)]
pub struct ColumnRoles<'a> {
    pub id: &'a str,
    pub key: &'a [String],
    pub ignore: &'a [String],
    pub partition: &'a str,
}

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
    /// Stored-column index of the partition column, `time_type` and `time_value`.
    pub partition: usize,
    pub time_type: usize,
    pub time_value: usize,
}

impl Layout {
    pub fn new(table: &TableDef, roles: ColumnRoles) -> Result<Layout> {
        let position = |name: &str| table.columns.iter().position(|c| c.name == name);
        let mut missing: Vec<&str> = roles
            .key
            .iter()
            .chain(roles.ignore)
            .map(String::as_str)
            .chain([roles.partition, "time_type", "time_value"])
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
        let layout = Layout {
            partition: stored(roles.partition),
            time_type: stored("time_type"),
            time_value: stored("time_value"),
            table_width: table.columns.len(),
            columns,
            table_index,
        };
        if layout.columns[layout.time_value].kind != ColumnKind::Integer {
            bail!(
                "column time_value of `{}` is not an integer column",
                table.name
            );
        }
        Ok(layout)
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
        assert_eq!(
            (layout.partition, layout.time_type, layout.time_value),
            (0, 2, 4)
        );
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

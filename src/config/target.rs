//! The table the emitted SQL loads into (`--target-ddl`), such as Delphi Epidata's
//! `covidcast`: its columns as its own `CREATE TABLE` declares them, and how `migrate` fills
//! each one. Checked against the dump before any work, so a mismatch never costs a run.

use sqlparser::ast::{ColumnOption, Expr, Statement, TableConstraint};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::config::layout::Layout;

/// Delphi's missingness code for a value that was deleted (`delphi_utils.Nans.DELETED`).
pub const MISSING_DELETED: i64 = 4;
/// Delphi's code for a value missing for another reason (`Nans.OTHER`), as its importer
/// sets it for a NULL without a code of its own.
pub const MISSING_OTHER: i64 = 5;
/// The prefix Delphi gives work-in-progress signals (its importer sets `is_wip` from it).
const WIP_PREFIX: &str = "wip_";

/// A column of the target table, as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    pub not_null: bool,
    /// It has a DEFAULT, is AUTO_INCREMENT or is computed: an INSERT may leave it out.
    pub fills_itself: bool,
}

/// The target table's `CREATE TABLE`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTable {
    pub name: String,
    pub columns: Vec<TargetColumn>,
    /// Column lists of the primary and unique keys.
    pub unique_keys: Vec<Vec<String>>,
    /// Column lists of every index, unique or not.
    pub indexes: Vec<Vec<String>>,
    /// The statement as sqlparser prints it: what the output depends on, for resume.
    pub canonical: String,
    /// What a load depends on: each column's name, type and nullness, and the unique keys,
    /// without table options (engine, character set, the next AUTO_INCREMENT value) or
    /// defaults, which `SHOW CREATE TABLE` spells its own way.
    pub definition: String,
}

/// Parses the `CREATE TABLE` statement of the target (what `SHOW CREATE TABLE` prints).
pub fn parse_target_ddl(sql: &str) -> Result<TargetTable, String> {
    let statements = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| e.to_string())?;
    let mut creates = statements.into_iter().filter_map(|s| match s {
        Statement::CreateTable(create) => Some(create),
        _ => None,
    });
    let (Some(create), None) = (creates.next(), creates.next()) else {
        return Err("expected exactly one CREATE TABLE statement".into());
    };
    let canonical = create.to_string();
    let mut definition: Vec<String> = (create.columns.iter())
        .map(|c| {
            let not_null = (c.options.iter()).any(|o| {
                matches!(
                    o.option,
                    ColumnOption::NotNull | ColumnOption::PrimaryKey(_)
                )
            });
            let null = if not_null { " NOT NULL" } else { "" };
            format!("{} {}{null}", c.name.value, c.data_type)
        })
        .collect();
    let mut unique_keys = Vec::new();
    let mut indexes = Vec::new();
    let mut columns = Vec::new();
    for column in &create.columns {
        let name = column.name.value.clone();
        let mut not_null = false;
        let mut fills_itself = false;
        for option in column.options.iter().map(|o| &o.option) {
            match option {
                ColumnOption::NotNull => not_null = true,
                ColumnOption::Default(_)
                | ColumnOption::Generated { .. }
                | ColumnOption::Identity(_) => fills_itself = true,
                ColumnOption::DialectSpecific(tokens) => {
                    fills_itself |= tokens.iter().any(is_auto_increment);
                }
                ColumnOption::PrimaryKey(_) => {
                    not_null = true;
                    unique_keys.push(vec![name.clone()]);
                }
                ColumnOption::Unique(_) => unique_keys.push(vec![name.clone()]),
                _ => {}
            }
        }
        columns.push(TargetColumn {
            name,
            not_null,
            fills_itself,
        });
    }
    for constraint in &create.constraints {
        let (names, unique) = match constraint {
            TableConstraint::PrimaryKey(key) => (index_names(&key.columns), true),
            TableConstraint::Unique(key) => (index_names(&key.columns), true),
            TableConstraint::Index(index) => (index_names(&index.columns), false),
            _ => continue,
        };
        if unique {
            unique_keys.push(names.clone());
        }
        indexes.push(names);
    }
    let mut keys: Vec<String> = unique_keys
        .iter()
        .map(|k| format!("UNIQUE ({})", k.join(",")))
        .collect();
    keys.sort();
    definition.extend(keys);
    Ok(TargetTable {
        definition: definition.join(", "),
        name: create
            .name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map_or_else(|| create.name.to_string(), |ident| ident.value.clone()),
        columns,
        unique_keys: unique_keys.clone(),
        indexes: indexes.into_iter().chain(unique_keys).collect(),
        canonical,
    })
}

fn is_auto_increment(token: &Token) -> bool {
    matches!(token, Token::Word(word) if word.value.eq_ignore_ascii_case("AUTO_INCREMENT"))
}

fn index_names(columns: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Where one column of an output row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The dump's column (index among the layout's stored columns).
    Stored(usize),
    Issue,
    Lag,
    /// 1: every row a file inserts is the latest issue of its key when it is loaded.
    LatestIssue,
    /// Whether the signal's name (the stored column at this index) starts with `wip_`, as
    /// Delphi's importer decides it.
    Wip(usize),
    /// Delphi's missingness code of a stored column: 0 when it has a value, 5 (other) when
    /// it is NULL, 4 (deleted) in the row that records a removal.
    Missing(usize),
}

/// How the output fills a target table: its columns in INSERT order, and what keeps
/// `is_latest_issue` right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlan {
    pub table: String,
    pub columns: Vec<(String, Fill)>,
    /// Stored columns the target declares NOT NULL: a NULL there is refused with a message
    /// rather than written into a file that would not load.
    pub not_null: Vec<bool>,
    /// Whether the table has `is_latest_issue`.
    pub maintains_latest: bool,
    /// Whether removals are rows of their own (the table has `missing_*` columns).
    pub removal_rows: bool,
    /// Stored columns that have a missingness code: NULL in a removal's row.
    pub coded: Vec<bool>,
    /// Key columns that, followed by `issue`, begin an index of the target: the rows a
    /// file inserted are found by these values and their issue (Epidata's `by_issue`).
    pub issue_prefix: Vec<String>,
}

impl TargetPlan {
    /// Matches the target against the dump's columns; every problem is named at once.
    pub fn new(target: &TargetTable, layout: &Layout) -> Result<TargetPlan, String> {
        let stored = |name: &str| layout.columns.iter().position(|c| c.name == name);
        let declared = |name: &str| target.columns.iter().any(|c| c.name == name);
        let mut problems = Vec::new();
        for column in &layout.columns {
            if !declared(&column.name) {
                problems.push(format!(
                    "the target table `{}` has no column `{}`, which the dump's table has: \
                     add the column to the target, or migrate into a table that has it",
                    target.name, column.name
                ));
            }
        }
        let needed = ["issue"]
            .into_iter()
            .chain(layout.has_lag().then_some("lag"));
        for needed in needed {
            if stored(needed).is_none() && !declared(needed) {
                problems.push(format!(
                    "the target table `{}` has no column `{needed}`, which every issue row \
                     fills",
                    target.name
                ));
            }
        }
        if !layout.has_lag() && stored("lag").is_none() && declared("lag") {
            problems.push(format!(
                "the target table `{}` has a column `lag`, which needs a time column to count \
                 from, and this table has none: pass --time-column (an integer time_value \
                 with time_type, as Epidata's, or a date column)",
                target.name
            ));
        }
        let mut columns = Vec::new();
        for column in &target.columns {
            let name = column.name.as_str();
            let fill = match stored(name) {
                Some(index) => Some(Fill::Stored(index)),
                None => match name {
                    "issue" => Some(Fill::Issue),
                    "lag" => Some(Fill::Lag),
                    "is_latest_issue" => Some(Fill::LatestIssue),
                    "is_wip" => stored("signal").map(Fill::Wip),
                    _ => name
                        .strip_prefix("missing_")
                        .and_then(stored)
                        .map(Fill::Missing),
                },
            };
            match fill {
                Some(fill) => columns.push((column.name.clone(), fill)),
                None if column.not_null && !column.fills_itself => problems.push(format!(
                    "the target table `{}` has the column `{name}`, which is NOT NULL without \
                     a default and which migrate cannot fill: give it a DEFAULT, or make it \
                     nullable",
                    target.name
                )),
                None => {}
            }
        }
        let mut with_issue: Vec<String> =
            layout.key_names().iter().map(|s| s.to_string()).collect();
        with_issue.push("issue".into());
        with_issue.sort();
        let keyed = target.unique_keys.iter().any(|key| {
            let mut key = key.clone();
            key.sort();
            key == with_issue
        });
        if !keyed {
            problems.push(format!(
                "the target table `{}` needs a unique key on ({}, issue), as Epidata's has: \
                 each key has one row per issue, and a weekly row revised twice in one \
                 epiweek must replace its earlier version",
                target.name,
                layout.key_names().join(", ")
            ));
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let not_null = layout
            .columns
            .iter()
            .map(|c| {
                target
                    .columns
                    .iter()
                    .any(|t| t.name == c.name && t.not_null)
            })
            .collect();
        let has = |fill: fn(&Fill) -> bool| columns.iter().any(|(_, f)| fill(f));
        let coded = (0..layout.columns.len())
            .map(|i| columns.iter().any(|(_, f)| *f == Fill::Missing(i)))
            .collect();
        Ok(TargetPlan {
            table: target.name.clone(),
            maintains_latest: has(|f| *f == Fill::LatestIssue),
            removal_rows: has(|f| matches!(f, Fill::Missing(_))),
            issue_prefix: issue_prefix(target, layout),
            not_null,
            coded,
            columns,
        })
    }

    /// The value of `is_wip` for a signal.
    pub fn is_wip(signal: &str) -> bool {
        signal
            .get(..WIP_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(WIP_PREFIX))
    }
}

/// The shortest run of key columns that an index of the target puts right before `issue`
/// (Epidata's `by_issue`: source, signal, time_type, geo_type): the fewer columns, the
/// fewer `(prefix, issue)` tuples a file lists, each a range of that index. All key
/// columns when no shorter index does (the unique key on the key and issue), which lists
/// every inserted row and is slow on large files.
fn issue_prefix(target: &TargetTable, layout: &Layout) -> Vec<String> {
    let key = layout.key_names();
    target
        .indexes
        .iter()
        .filter_map(|index| {
            let at = index.iter().position(|c| c == "issue")?;
            let prefix = &index[..at];
            prefix
                .iter()
                .all(|c| key.contains(&c.as_str()))
                .then(|| prefix.to_vec())
        })
        .filter(|prefix| !prefix.is_empty())
        .min_by_key(|prefix| prefix.len())
        .unwrap_or_else(|| key.iter().map(|s| s.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_ignores_how_the_server_spells_options_but_not_types() {
        let file = "CREATE TABLE t (id int NOT NULL AUTO_INCREMENT, v double DEFAULT NULL, \
                    s varchar(9) NOT NULL, PRIMARY KEY (id), UNIQUE KEY u (s)) \
                    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        let shown = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  `v` double,\n  \
                     `s` varchar(9) NOT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`s`)\n) \
                     ENGINE=InnoDB AUTO_INCREMENT=812 DEFAULT CHARSET=utf8mb4 \
                     COLLATE=utf8mb4_general_ci";
        let definition = |sql: &str| parse_target_ddl(sql).unwrap().definition;
        assert_eq!(definition(file), definition(shown));
        assert_ne!(
            definition(file),
            definition(&file.replace("v double", "v float"))
        );
        assert_ne!(
            definition(file),
            definition(&file.replace("UNIQUE KEY u (s)", "KEY u (s)"))
        );
    }

    #[test]
    fn reads_columns_defaults_and_keys() {
        let table = parse_target_ddl(
            "CREATE TABLE `t` (`id` bigint unsigned NOT NULL AUTO_INCREMENT, \
             `a` int NOT NULL, `b` int(1) DEFAULT 0, `c` double, \
             PRIMARY KEY (`id`), UNIQUE KEY `u` (`a`, `b`), KEY `k` (`b`, `c`)) \
             ENGINE=InnoDB",
        )
        .unwrap();
        assert_eq!(table.name, "t");
        let column = |n: &str| table.columns.iter().find(|c| c.name == n).unwrap().clone();
        assert!(column("id").not_null && column("id").fills_itself);
        assert!(column("a").not_null && !column("a").fills_itself);
        assert!(!column("b").not_null && column("b").fills_itself);
        assert!(!column("c").not_null && !column("c").fills_itself);
        assert_eq!(table.unique_keys, vec![vec!["id"], vec!["a", "b"]]);
        assert!(table
            .indexes
            .contains(&vec!["b".to_string(), "c".to_string()]));
    }

    #[test]
    fn refuses_anything_but_one_create_table() {
        assert!(parse_target_ddl("SELECT 1").is_err());
        assert!(parse_target_ddl("CREATE TABLE a (x int); CREATE TABLE b (y int)").is_err());
        assert!(parse_target_ddl("CREATE TABLE a (x int").is_err());
    }

    #[test]
    fn inserted_rows_are_found_through_the_by_issue_index() {
        let ddl = "CREATE TABLE covidcast (id int NOT NULL AUTO_INCREMENT, \
                   source varchar(32), `signal` varchar(64), time_type varchar(12), \
                   geo_type varchar(12), time_value int, geo_value varchar(12), \
                   value double, issue int, `lag` int, PRIMARY KEY (id), \
                   UNIQUE KEY u (source, `signal`, time_type, geo_type, time_value, \
                   geo_value, issue), \
                   KEY by_issue (source, `signal`, time_type, geo_type, issue, time_value, \
                   geo_value))";
        let dump = crate::dump::parse_create_table(
            "CREATE TABLE covidcast (id int, source varchar(32), `signal` varchar(64), \
             time_type varchar(12), geo_type varchar(12), time_value int, \
             geo_value varchar(12), value double)",
        )
        .unwrap();
        let config = crate::config::Config::new(".".into(), ".".into());
        let layout = Layout::new(&dump, config.roles()).unwrap();
        let with_index = parse_target_ddl(ddl).unwrap();
        let plan = TargetPlan::new(&with_index, &layout).unwrap();
        assert_eq!(
            plan.issue_prefix,
            ["source", "signal", "time_type", "geo_type"]
        );
        let without = parse_target_ddl(
            &ddl.replace("KEY by_issue", "KEY by_lag")
                .replace("geo_type, issue, time_value", "geo_type, `lag`, time_value"),
        )
        .unwrap();
        let plan = TargetPlan::new(&without, &layout).unwrap();
        assert_eq!(plan.issue_prefix, layout.key_names());
    }

    #[test]
    fn wip_signals() {
        assert!(TargetPlan::is_wip("wip_smoothed_cli"));
        assert!(TargetPlan::is_wip("WIP_x"));
        assert!(!TargetPlan::is_wip("smoothed_wip_cli"));
        assert!(!TargetPlan::is_wip("wip"));
    }
}

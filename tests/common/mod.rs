//! Helpers shared by the integration tests: running the binary, reading the CSV dialects
//! involved, and a private MariaDB server.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_backups() -> PathBuf {
    root().join("fixtures/backups")
}

pub fn expected(name: &str) -> PathBuf {
    root().join("fixtures/expected").join(name)
}

pub fn migrate() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("migrate").expect("the migrate binary is built")
}

/// A table read from CSV: the header and the rows, NULL as None.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// Rows with floats in the named columns rewritten to one canonical spelling, sorted,
    /// so that tables can be compared as multisets of values.
    pub fn normalized(&self, float_columns: &[&str]) -> Vec<Vec<Option<String>>> {
        let floats: Vec<bool> = self
            .header
            .iter()
            .map(|h| float_columns.contains(&h.as_str()))
            .collect();
        let mut rows: Vec<Vec<Option<String>>> = self
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&floats)
                    .map(|(cell, is_float)| match (cell, is_float) {
                        (Some(text), true) => Some(format!(
                            "{:?}",
                            text.parse::<f64>()
                                .unwrap_or_else(|_| panic!("{text:?} is not a number"))
                        )),
                        _ => cell.clone(),
                    })
                    .collect()
            })
            .collect();
        rows.sort();
        rows
    }

    /// Appends the rows of another table with the same header.
    pub fn extend(&mut self, other: Table) {
        assert_eq!(self.header, other.header, "tables with different headers");
        self.rows.extend(other.rows);
    }
}

/// Reads MariaDB's `SELECT ... INTO OUTFILE` format (fields terminated by `,`, optionally
/// enclosed by `"`, escaped by `\`, NULL as `\N`) with a header line.
pub fn read_outfile_csv(path: &Path) -> Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes, mut escaped_null) = (false, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next().expect("an escape at the end of the file");
                match next {
                    'N' if !quoted && field.is_empty() => escaped_null = true,
                    '0' => field.push('\0'),
                    'n' => field.push('\n'),
                    'r' => field.push('\r'),
                    't' => field.push('\t'),
                    'Z' => field.push('\x1a'),
                    'b' => field.push('\x08'),
                    other => field.push(other),
                }
            }
            '"' if !in_quotes && field.is_empty() && !quoted => {
                quoted = true;
                in_quotes = true;
            }
            '"' if in_quotes => in_quotes = false,
            ',' | '\n' if !in_quotes => {
                row.push(if escaped_null {
                    None
                } else {
                    Some(std::mem::take(&mut field))
                });
                field.clear();
                quoted = false;
                escaped_null = false;
                if c == '\n' {
                    lines.push(std::mem::take(&mut row));
                }
            }
            other => field.push(other),
        }
    }
    into_table(lines)
}

/// Reads the CSV `migrate` writes: RFC 4180 quoting, NULL as an empty unquoted field.
pub fn read_csv(path: &Path) -> Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if in_quotes => in_quotes = false,
            '"' if field.is_empty() && !quoted => {
                quoted = true;
                in_quotes = true;
            }
            ',' | '\n' if !in_quotes => {
                let value = std::mem::take(&mut field);
                row.push(if value.is_empty() && !quoted {
                    None
                } else {
                    Some(value)
                });
                quoted = false;
                if c == '\n' {
                    lines.push(std::mem::take(&mut row));
                }
            }
            other => field.push(other),
        }
    }
    into_table(lines)
}

fn into_table(mut lines: Vec<Vec<Option<String>>>) -> Table {
    assert!(!lines.is_empty(), "a CSV file without a header");
    let header = lines
        .remove(0)
        .into_iter()
        .map(|h| h.expect("a header cell"))
        .collect();
    Table {
        header,
        rows: lines,
    }
}

/// Every file with this extension below `dir`, sorted.
pub fn files_below(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Reads and concatenates every CSV file below `dir` (all with one header).
pub fn read_all_csv(dir: &Path) -> Table {
    let mut files = files_below(dir, "csv").into_iter();
    let mut table = read_csv(&files.next().expect("no CSV output"));
    for file in files {
        table.extend(read_csv(&file));
    }
    table
}

/// The float columns of the fixtures' table.
pub const FLOAT_COLUMNS: [&str; 3] = ["value", "stderr", "sample_size"];

/// A throw-away MariaDB server living in a temporary folder, stopped on drop.
pub struct MariaDb {
    dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl MariaDb {
    /// Starts a server with `scripts/mariadb-private`. Fails the test (never skips it) when
    /// MariaDB is not installed: `scripts/test` installs it.
    pub fn start() -> MariaDb {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(root().join("scripts/mariadb-private"))
            .arg("start")
            .arg(dir.path())
            .output()
            .expect("cannot run scripts/mariadb-private");
        assert!(
            output.status.success(),
            "cannot start a private MariaDB (run the tests with scripts/test, which installs \
             it): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let socket = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
        MariaDb { dir, socket }
    }

    /// The folder the server may read files from (`LOAD DATA INFILE`).
    pub fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    fn client(&self) -> Command {
        let mut command = Command::new("mariadb");
        command
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "--batch", "--skip-column-names"]);
        command
    }

    /// Runs SQL and returns what it printed; panics with the server's message on error.
    pub fn sql(&self, sql: &str) -> String {
        let output = self.client().args(["-e", sql]).output().unwrap();
        assert!(
            output.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs the SQL file in the database `db`.
    pub fn source(&self, db: &str, file: &Path) {
        let input = std::fs::File::open(file).unwrap();
        let output = self.client().arg(db).stdin(input).output().unwrap();
        assert!(
            output.status.success(),
            "loading {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/mariadb-private"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

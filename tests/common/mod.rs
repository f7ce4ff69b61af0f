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

/// Runs `scripts/gen-backups --out DIR` with `args`: a generated series in `out`.
#[allow(dead_code)]
pub fn gen_backups(out: &Path, args: &[&str]) {
    let status = std::process::Command::new(root().join("scripts/gen-backups"))
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/gen-backups {args:?} failed");
}

/// A command that runs what follows its arguments under GNU time, which writes to
/// `peak_file` the peak resident memory of that process alone (`peak_kib` reads it). Not
/// `wait4` on a child of the test: when a child execs, the kernel folds the high-water mark
/// of the process that started it into the child's figure, so a test binary holding
/// hundreds of MB at that moment (another test of it comparing outputs) showed in its
/// child's peak. GNU time forks the command from its own small process.
#[allow(dead_code)]
pub fn under_gnu_time(peak_file: &Path) -> Command {
    let mut command = Command::new("/usr/bin/time");
    command.arg("-f").arg("%M").arg("-o").arg(peak_file);
    command
}

/// The peak RSS in KiB that `under_gnu_time` wrote (its last line: a failed command's
/// status comes first).
#[allow(dead_code)]
pub fn peak_kib(peak_file: &Path) -> u64 {
    let text = std::fs::read_to_string(peak_file).unwrap();
    let last = text.lines().last().unwrap_or_default();
    last.trim()
        .parse()
        .unwrap_or_else(|_| panic!("GNU time wrote {text:?} to {}", peak_file.display()))
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

/// Every path below `dir` (folders included), skipping folders for which `skip` is true.
fn walk(dir: &Path, skip: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() && !skip(&path) {
                stack.push(path.clone());
            }
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Every file with this extension below `dir`, sorted.
pub fn files_below(dir: &Path, extension: &str) -> Vec<PathBuf> {
    walk(dir, &|_| false)
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == extension))
        .collect()
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

    /// Shuts the server down (its data stays): what a crash of the database looks like to
    /// a client.
    pub fn stop(&self) {
        let output = Command::new(root().join("scripts/mariadb-private"))
            .arg("stop")
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "cannot stop the private MariaDB");
    }

    /// Starts the stopped server again on the same data and socket.
    pub fn restart(&self) {
        let output = Command::new(root().join("scripts/mariadb-private"))
            .arg("start")
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cannot restart the private MariaDB"
        );
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

    /// Loads a migration's SQL output `out` into the database `db`: every issue file in
    /// date order (its tables must exist), and every removals CSV into `removals_table`.
    pub fn load_output(&self, db: &str, out: &Path, removals_table: &str) {
        for file in files_below(&out.join("issues"), "sql") {
            self.source(db, &file);
        }
        for (i, file) in files_below(&out.join("removals"), "csv").iter().enumerate() {
            let copy = self.files_dir().join(format!("removals-{i}.csv"));
            std::fs::copy(file, &copy).unwrap();
            self.sql(&format!(
                "LOAD DATA INFILE '{}' INTO TABLE {db}.{removals_table} FIELDS TERMINATED \
                 BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' IGNORE 1 LINES",
                copy.display()
            ));
        }
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

/// Writes a synthetic series of gzipped daily backups in mariadb-dump's layout: `days`
/// backups from 2020-06-01 (skipping the dates in `skip`), growing by one time_value a day,
/// with recent values revised, and a source that disappears on the last day.
pub fn write_series(dir: &Path, days: u32, geos: u32, skip: &[u32]) -> Vec<PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let sources = ["alpha", "beta", "gamma"];
    let signals = ["cli", "ili", "wcli", "smoothed_cli"];
    let mut files = Vec::new();
    for day in 0..days {
        if skip.contains(&day) {
            continue;
        }
        let date =
            chrono::NaiveDate::from_ymd_opt(2020, 6, 1).unwrap() + chrono::Days::new(day.into());
        let path = dir.join(format!(
            "just_covidcast_{}_database.sql.gz",
            date.format("%Y%m%d")
        ));
        let mut sql = String::from(
            "/*M!999999\\- enable the sandbox mode */ \n\
             CREATE TABLE `covidcast` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
             `source` varchar(32) NOT NULL,\n  `signal` varchar(64) NOT NULL,\n  \
             `time_type` varchar(12) NOT NULL,\n  `geo_type` varchar(12) NOT NULL,\n  \
             `time_value` int(11) NOT NULL,\n  `geo_value` varchar(12) NOT NULL,\n  \
             `value_updated_timestamp` int(11) NOT NULL,\n  `value` double DEFAULT NULL,\n  \
             `stderr` double DEFAULT NULL,\n  `sample_size` double DEFAULT NULL,\n  \
             `direction_updated_timestamp` int(11) NOT NULL,\n  `direction` int(11) DEFAULT NULL,\n  \
             PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n",
        );
        let mut id = 0u64;
        let mut in_statement = 0;
        for (s, source) in sources.iter().enumerate() {
            if s == 2 && day == days - 1 {
                continue; // the whole source is removed on the last day
            }
            for signal in signals {
                for geo in 0..geos {
                    for tv in 0..(20 + day) {
                        let time_value = 20200501 + tv;
                        let time_value = if time_value > 20200531 {
                            time_value + 69
                        } else {
                            time_value
                        };
                        // Values of the last 5 days are revised every other day.
                        let age = 20 + day - tv;
                        let version = if age <= 5 { day / 2 } else { 0 };
                        let seed = (s as u32 * 7919 + geo * 31 + tv * 17 + version * 101) % 997;
                        let value = if seed.is_multiple_of(37) {
                            "NULL".to_string()
                        } else {
                            format!("{}", seed as f64 / 8.0)
                        };
                        id += 1;
                        sql.push_str(if in_statement == 0 {
                            "INSERT INTO `covidcast` VALUES ("
                        } else {
                            ",\n("
                        });
                        sql.push_str(&format!(
                            "{id},'{source}','{signal}','day','county',{time_value},'{:05}',{},{value},{},{},{},NULL)",
                            geo * 3 + 1001,
                            1590000000 + version,
                            seed as f64 / 100.0,
                            seed * 3,
                            1590000000
                        ));
                        in_statement += 1;
                        if in_statement == 1000 {
                            sql.push_str(";\n");
                            in_statement = 0;
                        }
                    }
                }
            }
        }
        if in_statement > 0 {
            sql.push_str(";\n");
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(sql.as_bytes()).unwrap();
        std::fs::write(&path, encoder.finish().unwrap()).unwrap();
        files.push(path);
    }
    files
}

/// Every file below `dir` (but `.work`, the resumable state) with its bytes, by relative path.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let is_work = |p: &Path| p.file_name().is_some_and(|n| n == ".work");
    walk(dir, &is_work)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Paths of temporary files (`.tmp-*`) anywhere below `dir`, `.work` included.
pub fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir, &|_| false)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        })
        .collect()
}

/// Runs `migrate` on the fixture backups into `out`, quietly, with `extra` flags.
pub fn migrate_fixtures(out: &Path, extra: &[&str]) {
    migrate()
        .arg("--backups")
        .arg(fixture_backups())
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(extra)
        .assert()
        .success();
}

/// Asserts two output folders hold the same files with the same bytes (`.work` aside),
/// naming the first difference rather than printing the files.
pub fn assert_same_output(actual: &Path, expected: &Path, skip: &[&str]) {
    let keep = |tree: std::collections::BTreeMap<PathBuf, Vec<u8>>| {
        tree.into_iter()
            .filter(|(p, _)| !skip.iter().any(|s| p.starts_with(s)))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (actual, expected) = (keep(snapshot(actual)), keep(snapshot(expected)));
    let names =
        |t: &std::collections::BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&actual), names(&expected), "different files");
    for (path, bytes) in &expected {
        assert!(actual[path] == *bytes, "{} differs", path.display());
    }
}

/// `migrate --backups BACKUPS --out OUT EXTRA…` as a process, its log (stderr) captured and
/// `RUST_LOG` unset, so the flags alone decide what it logs.
pub fn migrate_process(backups: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("migrate"));
    command
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped());
    command
}

/// Runs a Python script with the test environment's Python (DuckDB, pyarrow, pyspark, made
/// by `scripts/test`), `path` as its argument, and returns what it printed; panics with its
/// errors if it fails.
pub fn run_python(script: &str, path: &Path) -> String {
    let python = std::env::var_os("MIGRATE_TEST_PYTHON").expect(
        "MIGRATE_TEST_PYTHON is not set: run the tests with scripts/test, which makes a \
         Python environment with DuckDB and pyarrow",
    );
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Columns of a table that the removals CSVs of the fixtures' output load into.
pub const REMOVALS_TABLE: &str = "source varchar(32), `signal` varchar(64), \
    time_type varchar(12), geo_type varchar(12), time_value int, geo_value varchar(12), \
    removed int";

/// A folder holding the first `n` fixture backups.
pub fn first_fixtures(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    files_below(&fixture_backups(), "gz")
        .into_iter()
        .take(n)
        .map(|f| {
            let copy = dir.join(f.file_name().unwrap());
            std::fs::copy(&f, &copy).unwrap();
            copy
        })
        .collect()
}

/// The flags of a migration of fixtures/types/readings, a table of every column type.
pub const READINGS: [&str; 6] = [
    "--table",
    "readings",
    "--pattern",
    r"^readings_(?P<date>\d{8})\.sql\.gz$",
    "--key",
    "source,time_type,time_value,item,serial,lot",
];

/// `gen_backups` arguments of the memory tests: 2 backups of 2 sources of 600,000 rows.
pub const TWO_SOURCES_OF_600K_ROWS: &[&str] = &[
    "--rows",
    "1200000",
    "--days",
    "2",
    "--sources",
    "2",
    "--seed",
    "7",
];

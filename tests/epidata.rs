//! Loading into Delphi Epidata's `covidcast` table (`--target-ddl`), both its October 2020
//! and its June 2021 definitions, in a real MariaDB: after each date's files are loaded,
//! the API's default query (`is_latest_issue`) serves exactly that backup, and its `as_of`
//! query serves every earlier backup. The expected rows are the backups themselves, loaded
//! into the same server from the dumps.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Epidata's table as of October 2020 (delphi-epidata `src/ddl/covidcast.sql`, 302fcaa8),
/// as the repository ships it for users.
const EPIDATA_2020: &str = include_str!("../ddl/covidcast-2020.sql");

/// Epidata's table as of June 2021 (763be776): a bigint id, a nullable value, and Delphi's
/// missingness codes.
fn epidata_2021() -> String {
    include_str!("../ddl/covidcast-2021.sql").to_string()
}
const DATA_COLUMNS: [&str; 12] = [
    "source",
    "signal",
    "time_type",
    "geo_type",
    "time_value",
    "geo_value",
    "value_updated_timestamp",
    "value",
    "stderr",
    "sample_size",
    "direction_updated_timestamp",
    "direction",
];
const KEY: &str = "source, `signal`, time_type, geo_type, time_value, geo_value";

fn quoted(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A private server with an `epidata.covidcast` table of one definition.
struct Epidata {
    db: MariaDb,
    /// Whether the table has the missingness codes (the 2021 definition).
    has_codes: bool,
    /// Backup dates loaded into databases of their own (`b<date>`).
    backups: Vec<String>,
}

impl Epidata {
    fn start(ddl: &str) -> Epidata {
        let db = MariaDb::start();
        db.sql("CREATE DATABASE epidata");
        db.sql(&format!("USE epidata; {ddl}"));
        Epidata {
            has_codes: ddl.contains("missing_value"),
            db,
            backups: Vec::new(),
        }
    }

    /// The table's definition as `SHOW CREATE TABLE` prints it, saved for `--target-ddl`.
    fn ddl_file(&self, dir: &Path) -> PathBuf {
        let shown = self.db.sql("SHOW CREATE TABLE epidata.covidcast");
        let (_, create) = shown.trim_end().split_once('\t').unwrap();
        let path = dir.join("covidcast.sql");
        std::fs::write(&path, create.replace("\\n", "\n")).unwrap();
        path
    }

    /// Loads the issue files of one date, in the order a shell glob lists them.
    fn load_date(&self, out: &Path, date: &str) {
        let files = files_below(&out.join("issues").join(date), "sql");
        assert!(!files.is_empty(), "no issue files for {date}");
        for file in files {
            self.db.source("epidata", &file);
        }
    }

    /// Loads a dump into a database of its own, `b<date>`.
    fn load_backup(&mut self, dump: &Path) {
        let date = date_of(dump);
        let plain = self.db.files_dir().join(format!("{date}.sql"));
        let bytes = std::fs::read(dump).unwrap();
        let text = if dump.extension().is_some_and(|e| e == "gz") {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
                .unwrap();
            text
        } else {
            bytes
        };
        std::fs::write(&plain, text).unwrap();
        self.db.sql(&format!("CREATE DATABASE b{date}"));
        self.db.source(&format!("b{date}"), &plain);
        self.backups.push(date);
    }

    /// Rows of `a` with no identical row (null-safe) in `b`, both given as SELECTs.
    fn unmatched(&self, a: &str, b: &str) -> String {
        let on: Vec<String> = DATA_COLUMNS
            .iter()
            .map(|c| format!("x.`{c}` <=> y.`{c}`"))
            .collect();
        self.db.sql(&format!(
            "SELECT x.* FROM ({a}) AS x WHERE NOT EXISTS (SELECT 1 FROM ({b}) AS y WHERE {})",
            on.join(" AND ")
        ))
    }

    fn count(&self, select: &str) -> u64 {
        let n = self
            .db
            .sql(&format!("SELECT COUNT(*) FROM ({select}) AS x"));
        n.trim().parse().unwrap()
    }

    fn not_deleted(&self, alias: &str) -> String {
        if self.has_codes {
            format!("AND {alias}missing_value <> 4")
        } else {
            String::new()
        }
    }

    /// The API's default query: every key's latest issue.
    fn latest(&self) -> String {
        format!(
            "SELECT {} FROM epidata.covidcast WHERE is_latest_issue IS TRUE {}",
            quoted(&DATA_COLUMNS),
            self.not_deleted("")
        )
    }

    /// The API's `as_of` query for daily rows: per key, the row of the greatest issue <= D.
    fn as_of(&self, date: &str) -> String {
        let columns: Vec<String> = DATA_COLUMNS.iter().map(|c| format!("t.`{c}`")).collect();
        format!(
            "SELECT {} FROM epidata.covidcast t JOIN (SELECT {KEY}, MAX(issue) AS max_issue \
             FROM epidata.covidcast WHERE time_type = 'day' AND issue <= {date} GROUP BY {KEY}) x \
             USING ({KEY}) WHERE t.issue = x.max_issue {}",
            columns.join(", "),
            self.not_deleted("t.")
        )
    }

    fn backup(&self, date: &str, daily_only: bool) -> String {
        format!(
            "SELECT {} FROM b{date}.covidcast {}",
            quoted(&DATA_COLUMNS),
            if daily_only {
                "WHERE time_type = 'day'"
            } else {
                ""
            }
        )
    }

    /// After loading the files of `date`: the latest rows are that backup, one per key.
    fn assert_latest_is(&self, date: &str) {
        let (latest, backup) = (self.latest(), self.backup(date, false));
        assert_eq!(
            self.unmatched(&backup, &latest),
            "",
            "{date}: rows not served"
        );
        assert_eq!(
            self.unmatched(&latest, &backup),
            "",
            "{date}: rows served in excess"
        );
        assert_eq!(
            self.count(&latest),
            self.count(&backup),
            "{date}: duplicates"
        );
        assert!(self.count(&backup) > 0);
        if self.has_codes {
            // With deletions recorded as rows, the latest row of every key is the one of
            // its greatest issue, exactly.
            let wrong = self.db.sql(&format!(
                "SELECT {KEY}, issue FROM epidata.covidcast c WHERE (is_latest_issue IS TRUE) <> \
                 (issue = (SELECT MAX(issue) FROM epidata.covidcast d WHERE \
                 (d.source, d.`signal`, d.time_type, d.geo_type, d.time_value, d.geo_value) = \
                 (c.source, c.`signal`, c.time_type, c.geo_type, c.time_value, c.geo_value)))"
            ));
            assert_eq!(wrong, "", "{date}: latest flags not on the greatest issue");
        }
    }

    /// At the end: `as_of` of every backup date serves that backup's daily rows. Without the
    /// missingness codes a removed key cannot be told apart, and its last row is served.
    fn assert_as_of_each_backup(&self) {
        for (i, date) in self.backups.iter().enumerate() {
            let (as_of, backup) = (self.as_of(date), self.backup(date, true));
            assert_eq!(
                self.unmatched(&backup, &as_of),
                "",
                "as of {date}: rows missing"
            );
            let extra = self.count(&format!(
                "SELECT x.* FROM ({as_of}) x WHERE NOT EXISTS (SELECT 1 FROM ({backup}) y \
                 WHERE (x.source, x.`signal`, x.time_type, x.geo_type, x.time_value, x.geo_value) \
                 = (y.source, y.`signal`, y.time_type, y.geo_type, y.time_value, y.geo_value))"
            ));
            let removed = if self.has_codes {
                0
            } else {
                let earlier: Vec<String> = self.backups[..i]
                    .iter()
                    .map(|d| format!("SELECT {KEY} FROM b{d}.covidcast WHERE time_type = 'day'"))
                    .chain([format!("SELECT {KEY} FROM b{date}.covidcast WHERE FALSE")])
                    .collect();
                self.count(&format!(
                    "SELECT * FROM ({}) u WHERE NOT EXISTS (SELECT 1 FROM b{date}.covidcast c \
                     WHERE (u.source, u.`signal`, u.time_type, u.geo_type, u.time_value, \
                     u.geo_value) = (c.source, c.`signal`, c.time_type, c.geo_type, \
                     c.time_value, c.geo_value))",
                    earlier.join(" UNION ")
                ))
            };
            assert_eq!(extra, removed, "as of {date}: rows served in excess");
        }
    }
}

fn date_of(dump: &Path) -> String {
    let name = dump.file_name().unwrap().to_string_lossy().into_owned();
    name.split('_').nth(2).unwrap().to_string()
}

fn run_migrate(backups: &Path, out: &Path, ddl: &Path) -> std::process::Output {
    migrate()
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .arg("--target-ddl")
        .arg(ddl)
        .arg("-q")
        .output()
        .unwrap()
}

fn migrate_ok(backups: &Path, out: &Path, ddl: &Path) {
    let output = run_migrate(backups, out, ddl);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Loads a migrated series date by date, checking the latest rows after each date.
fn load_in_order(epidata: &mut Epidata, out: &Path, backups: &[PathBuf]) {
    for dump in backups {
        epidata.load_backup(dump);
        let date = date_of(dump);
        epidata.load_date(out, &date);
        epidata.assert_latest_is(&date);
    }
}

#[test]
fn the_2021_table_serves_each_fixture_backup_date_after_date() {
    let mut epidata = Epidata::start(&epidata_2021());
    let dir = tempfile::tempdir().unwrap();
    let ddl = epidata.ddl_file(dir.path());
    let out = dir.path().join("out");
    migrate_ok(&fixture_backups(), &out, &ddl);
    load_in_order(&mut epidata, &out, &files_below(&fixture_backups(), "gz"));
    epidata.assert_as_of_each_backup();
    // A removal is an issue row of its own: NULL values, code 4 (deleted).
    let deleted = epidata.db.sql(
        "SELECT COUNT(*), SUM(value IS NULL AND stderr IS NULL AND sample_size IS NULL AND \
         missing_stderr = 4 AND missing_sample_size = 4) FROM epidata.covidcast \
         WHERE missing_value = 4",
    );
    let removals = read_outfile_csv(&expected("removals.csv")).rows.len();
    assert_eq!(deleted.trim(), format!("{removals}\t{removals}"));
    // migrate's own replay reads the deletion rows as what they are.
    migrate()
        .args(["verify", "-q", "--target-ddl"])
        .arg(&ddl)
        .arg("--backups")
        .arg(fixture_backups())
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn the_2020_table_serves_each_backup_and_refuses_a_null_value() {
    let mut epidata = Epidata::start(EPIDATA_2020);
    let dir = tempfile::tempdir().unwrap();
    let ddl = epidata.ddl_file(dir.path());
    // The first four fixture backups have no NULL value (the 2020 table has no room for
    // one) and a removal on the fourth.
    let backups = first_fixtures(&dir.path().join("backups"), 4);
    let out = dir.path().join("out");
    migrate_ok(&dir.path().join("backups"), &out, &ddl);
    load_in_order(&mut epidata, &out, &backups);
    epidata.assert_as_of_each_backup();
    let unserved = epidata.db.sql(
        "SELECT COUNT(DISTINCT source, `signal`, time_type, geo_type, time_value, geo_value) \
         FROM epidata.covidcast c WHERE NOT EXISTS (SELECT 1 FROM epidata.covidcast d WHERE \
         d.is_latest_issue IS TRUE AND (d.source, d.`signal`, d.time_type, d.geo_type, \
         d.time_value, d.geo_value) = (c.source, c.`signal`, c.time_type, c.geo_type, \
         c.time_value, c.geo_value))",
    );
    assert_eq!(
        unserved.trim(),
        "5",
        "the five removed keys have no latest row"
    );

    // The whole fixture series has a NULL value on 20200606: refused, naming it, with
    // the output of the dates before it kept.
    let output = run_migrate(&fixture_backups(), &out, &ddl);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("20200606")
            && stderr.contains("NULL in `value`")
            && stderr.contains("NOT NULL")
            && stderr.contains("'06037'"),
        "{stderr}"
    );
    assert!(out.join("issues/20200604").is_dir());
}

#[test]
fn loading_is_incremental_after_a_rerun_with_more_backups() {
    let mut epidata = Epidata::start(&epidata_2021());
    let dir = tempfile::tempdir().unwrap();
    let ddl = epidata.ddl_file(dir.path());
    let backups_dir = dir.path().join("backups");
    let out = dir.path().join("out");
    let first = first_fixtures(&backups_dir, 4);
    migrate_ok(&backups_dir, &out, &ddl);
    load_in_order(&mut epidata, &out, &first);
    let all = first_fixtures(&backups_dir, 6);
    migrate_ok(&backups_dir, &out, &ddl);
    load_in_order(&mut epidata, &out, &all[4..]);
    epidata.assert_as_of_each_backup();
}

/// source, signal, time_type, time_value, geo_value, value.
type SeriesRow = (
    &'static str,
    &'static str,
    &'static str,
    u32,
    &'static str,
    &'static str,
);

/// A series written here for what the fixtures lack: a key removed and back, a weekly row
/// revised by three backups of one epiweek, a value that turns NULL and back, a source
/// that appears late, and a work-in-progress signal.
#[test]
fn removed_keys_come_back_and_weekly_rows_end_as_the_last_revision() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let create = "CREATE TABLE `covidcast` (`id` int(11) NOT NULL AUTO_INCREMENT, \
        `source` varchar(32) NOT NULL, `signal` varchar(64) NOT NULL, \
        `time_type` varchar(12) NOT NULL, `geo_type` varchar(12) NOT NULL, \
        `time_value` int(11) NOT NULL, `geo_value` varchar(12) NOT NULL, \
        `value_updated_timestamp` int(11) NOT NULL, `value` double DEFAULT NULL, \
        `stderr` double DEFAULT NULL, `sample_size` double DEFAULT NULL, \
        `direction_updated_timestamp` int(11) NOT NULL, `direction` int(11) DEFAULT NULL, \
        PRIMARY KEY (`id`))";
    let series: [(&str, &[SeriesRow]); 4] = [
        (
            "20200601",
            &[
                ("a", "cli", "day", 20200530, "01001", "1.5"),
                ("a", "cli", "day", 20200531, "01001", "2"),
                ("a", "wip_cli", "day", 20200531, "01001", "7"),
                ("a", "wili", "week", 202022, "pa", "4"),
            ],
        ),
        (
            "20200602",
            &[
                ("a", "cli", "day", 20200531, "01001", "NULL"),
                ("a", "wip_cli", "day", 20200531, "01001", "7"),
                ("a", "wili", "week", 202022, "pa", "4.5"),
            ],
        ),
        (
            "20200603",
            &[
                ("a", "cli", "day", 20200530, "01001", "1.25"),
                ("a", "cli", "day", 20200531, "01001", "2"),
                ("a", "wili", "week", 202022, "pa", "5"),
                ("b", "cli", "day", 20200602, "42003", "3"),
            ],
        ),
        (
            "20200608",
            &[
                ("a", "cli", "day", 20200530, "01001", "1.25"),
                ("a", "cli", "day", 20200531, "01001", "2"),
                ("a", "wip_cli", "day", 20200531, "01001", "8"),
                ("a", "wili", "week", 202022, "pa", "5.5"),
                ("b", "cli", "day", 20200602, "42003", "3"),
            ],
        ),
    ];
    let mut dumps = Vec::new();
    for (date, rows) in series {
        let values: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, (source, signal, time_type, time_value, geo, value))| {
                let id = i + 1;
                let geo_type = if geo.len() == 2 { "state" } else { "county" };
                format!(
                    "({id},'{source}','{signal}','{time_type}','{geo_type}',{time_value},\
                     '{geo}',100,{value},NULL,NULL,100,NULL)"
                )
            })
            .collect();
        let path = backups.join(format!("just_covidcast_{date}_database.sql"));
        std::fs::write(
            &path,
            format!(
                "{create};\nINSERT INTO `covidcast` VALUES {};\n",
                values.join(",\n")
            ),
        )
        .unwrap();
        dumps.push(path);
    }
    for ddl in [
        epidata_2021(),
        EPIDATA_2020.replace("`value` double NOT NULL", "`value` double"),
    ] {
        let mut epidata = Epidata::start(&ddl);
        let work = tempfile::tempdir().unwrap();
        let ddl_file = epidata.ddl_file(work.path());
        let out = work.path().join("out");
        migrate_ok(&backups, &out, &ddl_file);
        load_in_order(&mut epidata, &out, &dumps);
        epidata.assert_as_of_each_backup();
        let weekly = epidata.db.sql(
            "SELECT issue, value, is_latest_issue + 0 FROM epidata.covidcast \
             WHERE time_type = 'week' ORDER BY issue",
        );
        assert_eq!(weekly, "202023\t5\t0\n202024\t5.5\t1\n", "{ddl}");
        let wip = epidata
            .db
            .sql("SELECT DISTINCT `signal`, is_wip + 0 FROM epidata.covidcast ORDER BY `signal`");
        assert_eq!(wip, "cli\t0\nwili\t0\nwip_cli\t1\n");
    }
}

#[test]
fn a_target_that_cannot_take_the_output_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            EPIDATA_2020.replace("  `direction` int(11),\n", ""),
            "has no column `direction`",
        ),
        (
            EPIDATA_2020.replace(
                "  PRIMARY KEY",
                "  `computed_by` varchar(10) NOT NULL,\n  PRIMARY KEY",
            ),
            "`computed_by`, which is NOT NULL without a default",
        ),
        (
            EPIDATA_2020.replace(",`issue`),", "),"),
            "needs a unique key on",
        ),
        ("CREATE TABLE x (".to_string(), "--target-ddl"),
    ];
    for (i, (ddl, message)) in cases.iter().enumerate() {
        let ddl_file = dir.path().join(format!("target-{i}.sql"));
        std::fs::write(&ddl_file, ddl).unwrap();
        let out = dir.path().join(format!("out-{i}"));
        let output = run_migrate(&fixture_backups(), &out, &ddl_file);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{message}: {stderr}");
        assert!(!out.exists(), "{message}: the output folder was created");
    }
}

//! `migrate load` and `verify --database` against a real private MariaDB holding Epidata's
//! June 2021 table (`ddl/covidcast-2021.sql`): the table after a load equals the table the
//! SQL files give when run one by one in date order (the reference), whatever stopped the
//! load on the way — SIGKILL inside a date, while its record is written, between dates, or
//! the server stopped — once it is run again; and every refusal leaves the table untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

const PASSWORD: &str = "s3cret";

/// A private server with the loader's user, a `epidata.covidcast` table of Epidata's 2021
/// definition, and the same table in `reference`, for the files loaded one by one.
struct Server {
    db: MariaDb,
}

impl Server {
    fn start() -> Server {
        Server::start_with("ddl/covidcast-2021.sql")
    }

    /// A server whose tables have the definition in the file `ddl`.
    fn start_with(ddl: &str) -> Server {
        let db = MariaDb::start();
        let ddl = std::fs::read_to_string(root().join(ddl)).unwrap();
        db.sql(&format!(
            "CREATE USER 'loader'@'localhost' IDENTIFIED BY '{PASSWORD}';
             GRANT ALL ON *.* TO 'loader'@'localhost';
             CREATE DATABASE epidata; USE epidata; {ddl}
             CREATE DATABASE reference; USE reference; {ddl}"
        ));
        Server { db }
    }

    fn url(&self, password: &str, database: &str) -> String {
        format!(
            "mysql://loader:{password}@localhost/{database}?socket={}",
            self.db.socket.display()
        )
    }

    fn good_url(&self) -> String {
        self.url(PASSWORD, "epidata")
    }

    /// Every row of a database's table, every column but the id, in a fixed order.
    fn rows(&self, database: &str) -> String {
        self.db.sql(&format!(
            "SELECT source, `signal`, time_type, geo_type, time_value, geo_value,
                    value_updated_timestamp, value, stderr, sample_size,
                    direction_updated_timestamp, direction, issue, lag, is_latest_issue, is_wip,
                    missing_value, missing_stderr, missing_sample_size
             FROM {database}.covidcast
             ORDER BY source, `signal`, time_type, geo_type, time_value, geo_value, issue"
        ))
    }

    /// The reference: the output's SQL files run one by one, in date order, as the README's
    /// loop did before `migrate load`.
    fn load_reference(&self, out: &Path) {
        for file in files_below(&out.join("issues"), "sql") {
            self.db.source("reference", &file);
        }
    }

    fn loaded_dates(&self) -> Vec<String> {
        self.db
            .sql("SELECT `date` FROM epidata.migrate_loaded_dates ORDER BY `date`")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn tables(&self) -> String {
        self.db.sql("SHOW TABLES FROM epidata")
    }
}

/// The migration for the server's table, its definition read with `--database`.
fn migrate_for(server: &Server, backups: &Path, out: &Path) {
    migrate()
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .args(["-q", "--database", &server.good_url()])
        .assert()
        .success();
}

/// `migrate load --out OUT`, without a database yet.
fn load_into(out: &Path) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("migrate"));
    command
        .args(["load", "--out"])
        .arg(out)
        .env_remove("RUST_LOG")
        .env_remove("MYSQL_PWD");
    command
}

fn load(server: &Server, out: &Path) -> Command {
    let mut command = load_into(out);
    command.args(["--database", &server.good_url()]);
    command
}

fn run(mut command: Command) -> (i32, String) {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// `migrate verify --database` of the server's table; its status and what it printed.
fn verify_database(server: &Server, backups: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("migrate"));
    command
        .arg("verify")
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .args(["--database", &server.good_url()])
        .args(extra);
    run(command)
}

fn dates() -> Vec<String> {
    let mut dates: Vec<String> = std::fs::read_dir(fixture_backups())
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name["just_covidcast_".len().."just_covidcast_".len() + 8].to_string()
        })
        .collect();
    dates.sort();
    dates
}

#[test]
fn a_load_equals_the_files_run_in_date_order_and_verify_proves_it() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_for(&server, &fixture_backups(), &out);
    server.load_reference(&out);

    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("7 date(s) loaded"), "{text}");
    assert_eq!(server.rows("epidata"), server.rows("reference"));
    assert!(!server.rows("epidata").is_empty());
    assert_eq!(server.loaded_dates(), dates());

    // A rerun has nothing left to do, and says so.
    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("0 date(s) loaded") && text.contains("7 already loaded"),
        "{text}"
    );

    // The live table answers the API's queries as each backup did ...
    let verify = |extra: &[&str]| verify_database(&server, &fixture_backups(), &out, extra);
    let (code, text) = verify(&[]);
    assert_eq!(code, 0, "{text}");
    // ... and a row changed behind its back is found, named by date and key.
    server.db.sql(
        "UPDATE epidata.covidcast SET value = value + 1 WHERE geo_value = '01003' \
         AND time_value = 20200530 AND is_latest_issue = '1'",
    );
    let (code, text) = verify(&["--dates", "20200608"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("20200608 fb-survey") && text.contains("01003"),
        "{text}"
    );
}

/// The October 2020 table has no row to record a removal: its as-of query still serves a
/// removed key's last row. verify --database says how often, and passes, while a key served
/// that was never removed is still a difference.
#[test]
fn verify_of_the_2020_table_tells_removed_keys_from_differences() {
    let server = Server::start_with("ddl/covidcast-2020.sql");
    let dir = tempfile::tempdir().unwrap();
    // The first four fixture backups: no NULL value (the 2020 table has no room for one),
    // and keys removed among them.
    let backups = dir.path().join("backups");
    first_fixtures(&backups, 4);
    let out = dir.path().join("out");
    migrate_for(&server, &backups, &out);
    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify_database(&server, &backups, &out, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("served a key after its removal") && text.contains("identical"),
        "{text}"
    );
    // A key that no backup ever held, served from an early issue on: a difference.
    server.db.sql(
        "INSERT INTO epidata.covidcast (source, `signal`, time_type, geo_type, time_value, \
         geo_value, value_updated_timestamp, value, stderr, sample_size, \
         direction_updated_timestamp, direction, issue, lag, is_latest_issue, is_wip) \
         VALUES ('fb-survey','smoothed_cli','day','county',20200530,'99999',1,1,1,1,1,NULL, \
         20200601,2,1,0)",
    );
    let (code, text) = verify_database(&server, &backups, &out, &["--dates", "20200603"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("20200603 fb-survey") && text.contains("99999"),
        "{text}"
    );
}

#[test]
fn refusals_exit_2_and_write_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_for(&server, &fixture_backups(), &out);
    let before = server.tables();

    let attempt = |url: String, extra: &[&str]| {
        let mut command = load_into(&out);
        command.args(["--database", &url]).args(extra);
        run(command)
    };
    let (code, text) = attempt(server.url("wrong", "epidata"), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("refused the user") && !text.contains("wrong"),
        "{text}"
    );
    let (code, text) = attempt(server.url(PASSWORD, "nowhere"), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no database \"nowhere\""), "{text}");
    let (code, text) = attempt(server.good_url(), &["--table", "nope"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no table `nope`"), "{text}");
    // The password may come from a file instead of the URL.
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let no_password = format!(
        "mysql://loader@localhost/epidata?socket={}",
        server.db.socket.display()
    );
    let (code, text) = attempt(no_password.clone(), &["--password-file", "/nonexistent/pw"]);
    assert_eq!(code, 2, "{text}");
    assert_eq!(
        server.tables(),
        before,
        "a refused load changed the database"
    );

    // A table whose definition changed since the run.
    server
        .db
        .sql("ALTER TABLE epidata.covidcast ADD COLUMN note varchar(10) DEFAULT NULL");
    let (code, text) = attempt(
        no_password.clone(),
        &["--password-file", file.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not the table"), "{text}");
    server
        .db
        .sql("ALTER TABLE epidata.covidcast DROP COLUMN note");

    // A table holding rows this tool did not load.
    server.db.sql(
        "INSERT INTO epidata.covidcast (source, `signal`, time_type, geo_type, time_value, \
         geo_value, value_updated_timestamp, value, direction_updated_timestamp, issue, lag, \
         is_latest_issue) VALUES ('x','y','day','state',20200101,'pa',1,1,1,20200101,0,'1')",
    );
    let (code, text) = attempt(server.good_url(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--allow-existing"), "{text}");
    assert_eq!(
        server
            .db
            .sql("SELECT COUNT(*) FROM epidata.covidcast")
            .trim(),
        "1"
    );
    // With the flag, and the password from the file, it loads.
    let (code, text) = attempt(
        no_password,
        &[
            "--password-file",
            file.to_str().unwrap(),
            "--allow-existing",
        ],
    );
    assert_eq!(code, 0, "{text}");

    // A date older than the newest loaded one: its latest flags would be wrong.
    server
        .db
        .sql("DELETE FROM epidata.migrate_loaded_dates WHERE `date` = '20200603'");
    let (code, text) = attempt(server.good_url(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("20200603 is older than 20200608"), "{text}");
}

/// `migrate load` with a fault injected at `point` of `date`: SIGKILL there.
fn killed_at(server: &Server, out: &Path, point: &str, date: &str) {
    let mut command = load(server, out);
    command.env("MIGRATE_LOAD_FAULT", format!("kill@{point}:{date}"));
    let status = command.stderr(Stdio::null()).status().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the load was not killed at {point}:{date}"
    );
}

#[test]
fn a_killed_load_resumes_to_the_same_table() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_for(&server, &fixture_backups(), &out);
    server.load_reference(&out);

    // Inside the second date's transaction, after its rows were sent: nothing of it stays.
    killed_at(&server, &out, "rows-sent", "20200602");
    assert_eq!(server.loaded_dates(), ["20200601"]);
    let issues = server
        .db
        .sql("SELECT COUNT(*) FROM epidata.covidcast WHERE issue = 20200602");
    assert_eq!(issues.trim(), "0", "a killed date left rows behind");
    // While the fourth date's record was written, before its commit.
    killed_at(&server, &out, "record-written", "20200604");
    assert_eq!(server.loaded_dates(), ["20200601", "20200602", "20200603"]);
    // Between dates, right after the sixth date's commit.
    killed_at(&server, &out, "committed", "20200607");
    assert_eq!(server.loaded_dates().len(), 6);

    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("1 date(s) loaded") && text.contains("6 already loaded"),
        "{text}"
    );
    assert_eq!(server.rows("epidata"), server.rows("reference"));
}

#[test]
fn a_server_stopped_inside_a_date_loses_that_date_only() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate_for(&server, &fixture_backups(), &out);
    server.load_reference(&out);

    let flag = dir.path().join("waiting");
    let mut command = load(&server, &out);
    command
        .env("MIGRATE_LOAD_FAULT", "wait@rows-sent:20200603")
        .env("MIGRATE_LOAD_FAULT_FILE", &flag)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    wait_for(&flag, &child);

    // A second load of the same table meanwhile is refused at once, naming the holder.
    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 75, "{text}");
    assert!(
        text.contains("another `migrate load`") && text.contains("loader@"),
        "{text}"
    );

    server.db.stop();
    std::fs::remove_file(&flag).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("loading the date 20200603 failed"), "{text}");

    server.db.restart();
    assert_eq!(server.loaded_dates(), ["20200601", "20200602"]);
    let third = server
        .db
        .sql("SELECT COUNT(*) FROM epidata.covidcast WHERE issue = 20200603");
    assert_eq!(third.trim(), "0", "a date cut short left rows behind");
    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 0, "{text}");
    assert_eq!(server.rows("epidata"), server.rows("reference"));
}

fn wait_for(flag: &Path, child: &Child) {
    for _ in 0..1200 {
        if flag.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "the load never reached its fault point (pid {})",
        child.id()
    );
}

#[test]
fn the_daily_case_loads_only_the_new_dates() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_backups())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out = dir.path().join("out");
    for file in &files[..4] {
        std::fs::copy(file, backups.join(file.file_name().unwrap())).unwrap();
    }
    migrate_for(&server, &backups, &out);
    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("4 date(s) loaded"), "{text}");

    for file in &files[4..] {
        std::fs::copy(file, backups.join(file.file_name().unwrap())).unwrap();
    }
    migrate_for(&server, &backups, &out);
    let (code, text) = run(load(&server, &out));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("3 date(s) loaded") && text.contains("4 already loaded"),
        "{text}"
    );
    server.load_reference(&out);
    assert_eq!(server.rows("epidata"), server.rows("reference"));
}

/// Every column type of `fixtures/types` (unsigned 64-bit, decimals, bit, enum, set, year,
/// time, datetime, timestamp, json, emoji text) loads through LOAD DATA as it does through
/// the SQL files, even from a session in another time zone.
#[test]
fn every_type_loads_as_the_sql_files_load_it() {
    let server = MariaDb::start();
    let types = root().join("fixtures/types/readings");
    let first = files_below(&types, "gz").remove(0);
    let mut dump = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&first).unwrap()),
        &mut dump,
    )
    .unwrap();
    let plain = server.files_dir().join("first.sql");
    std::fs::write(&plain, dump).unwrap();
    server.sql(&format!(
        "CREATE USER 'loader'@'localhost' IDENTIFIED BY '{PASSWORD}';
         GRANT ALL ON *.* TO 'loader'@'localhost'; CREATE DATABASE live"
    ));
    server.source("live", &plain);
    // The issues table: the backup's table, with issue and lag, unique on the key and issue.
    server.sql(
        "USE live; TRUNCATE readings; ALTER TABLE readings DROP INDEX k, \
         ADD COLUMN issue int NOT NULL, ADD COLUMN `lag` int NOT NULL, \
         ADD UNIQUE KEY ki (source, time_type, time_value, item, serial, lot, issue); \
         CREATE DATABASE reference; CREATE TABLE reference.readings LIKE live.readings",
    );
    let url = format!(
        "mysql://loader:{PASSWORD}@localhost/live?socket={}",
        server.socket.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    migrate()
        .arg("--backups")
        .arg(&types)
        .arg("--out")
        .arg(&out)
        .args(["-q", "--table", "readings", "--database", &url])
        .args(["--pattern", r"^readings_(?P<date>\d{8})\.sql\.gz$"])
        .args(["--key", "source,time_type,time_value,item,serial,lot"])
        .assert()
        .success();
    let mut command = load_into(&out);
    command
        .args(["--database", &url])
        .env("TZ", "America/New_York");
    let (code, text) = run(command);
    assert_eq!(code, 0, "{text}");
    for file in files_below(&out.join("issues"), "sql") {
        let text = std::fs::read_to_string(&file).unwrap();
        let copy = server.files_dir().join("issues.sql");
        std::fs::write(&copy, format!("SET time_zone = '-05:00';\n{text}")).unwrap();
        server.source("reference", &copy);
    }
    let columns = "source,time_type,time_value,item,serial,lot,big,sb,i,ui,ti,uti,umi,exact,\
                   money,whole,wide,f,d,flag,level,tags,y,t,day,dt,ts,j,note,issue,lag";
    let same: Vec<String> = columns
        .split(',')
        .map(|c| format!("a.`{c}` <=> b.`{c}`"))
        .collect();
    let unmatched = |a: &str, b: &str| {
        server.sql(&format!(
            "SELECT a.* FROM {a}.readings AS a WHERE NOT EXISTS \
             (SELECT 1 FROM {b}.readings AS b WHERE {})",
            same.join(" AND ")
        ))
    };
    let count = |db: &str| server.sql(&format!("SELECT COUNT(*) FROM {db}.readings"));
    assert_ne!(count("reference").trim(), "0");
    assert_eq!(count("live"), count("reference"));
    assert_eq!(
        unmatched("live", "reference"),
        "",
        "loaded rows the files do not give"
    );
    assert_eq!(
        unmatched("reference", "live"),
        "",
        "rows of the files not loaded"
    );
}

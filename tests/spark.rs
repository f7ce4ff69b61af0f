//! The diff on Apache Spark (scripts/spark/migrate_diff.py) and `migrate emit --from` its
//! result: the output of a local run byte for byte, on the fixtures and on a generated series
//! with every feature the diff must get right, with the partitions extracted by two
//! `extract --dates` processes sharing one work folder. The jobs run in local[2] mode in one
//! Spark session, started once for this file (Spark takes longer to start than the jobs
//! take); the last test also submits the job to a standalone cluster of two workers, started
//! and stopped by the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use migrate::config::layout::Layout;
use migrate::config::Config;
use migrate::dump::parse_create_table;
use migrate::stages::diff::spark::SparkResult;
use migrate::stages::diff::{diff, read_partition, DiffResult};
use migrate::stages::extract::{PartitionEntry, PartitionInfo};
use migrate::workdir::state::ExtractInputs;
use polars::prelude::*;

/// Options of the generated series: a gap on day 3, the last of 3 sources appearing on
/// day 2; gen-backups adds weekly rows, NULL flips, removals, keys that come back and a
/// signal removed whole.
const SERIES: [&str; 14] = [
    "--rows",
    "20000",
    "--days",
    "8",
    "--gap-day",
    "3",
    "--sources",
    "3",
    "--late-source",
    "2",
    "--seed",
    "7",
    "--jobs",
    "1",
];
/// The series is migrated with a column ignored, and written as CSV.
const SERIES_FLAGS: [&str; 4] = [
    "--ignore-columns",
    "value_updated_timestamp",
    "--format",
    "csv",
];

/// Everything the tests compare, made once: local runs, extracts, and every Spark job.
struct Prepared {
    base: PathBuf,
}

impl Prepared {
    fn path(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }
}

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Result<Prepared, String>> = OnceLock::new();
    let result = PREPARED.get_or_init(|| {
        std::panic::catch_unwind(prepare).map_err(|panic| {
            (panic.downcast_ref::<String>().cloned())
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match result {
        Ok(prepared) => prepared,
        Err(message) => panic!("preparing the Spark jobs failed: {message}"),
    }
}

fn prepare() -> Prepared {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spark");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let at = |relative: &str| base.join(relative);

    // The fixtures: a local run, and two "machines" extracting half the dates each into one
    // work folder at the same time.
    migrate_fixtures(&at("fixtures/local"), &[]);
    std::fs::write(at("epidata.sql"), EPIDATA_2021).unwrap();
    let ddl = at("epidata.sql");
    migrate_fixtures(
        &at("fixtures/local-epidata"),
        &["--target-ddl", ddl.to_str().unwrap()],
    );
    extract_on_two_machines(
        &fixture_backups(),
        &at("fixtures/spark"),
        None,
        &[],
        ["..20200603", "20200604.."],
    );

    // The generated series, its work folder elsewhere (shared storage).
    let backups = at("series/backups");
    gen_backups(&backups, &SERIES);
    run_quietly(&backups, &at("series/local"), &SERIES_FLAGS);
    extract_on_two_machines(
        &backups,
        &at("series/spark"),
        Some(&at("series/shared")),
        &SERIES_FLAGS,
        ["..20200605", "20200606.."],
    );

    // The series again, as it stood before its last three backups: an earlier emit, to be
    // brought up to date from a job over the new dates only (`--dates`).
    let early = at("series-early/backups");
    std::fs::create_dir_all(&early).unwrap();
    for file in std::fs::read_dir(&backups).unwrap() {
        let file = file.unwrap().path();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "just_covidcast_20200606" {
            // A hard link keeps the file's identity (size and time), as a shared copy would.
            std::fs::hard_link(&file, early.join(&name)).unwrap();
        }
    }
    extract(
        &early,
        &at("series-early/out"),
        &at("series-early/work"),
        &SERIES_FLAGS,
        None,
    );

    // A table of every column type (fixtures/types/readings).
    let readings = root().join("fixtures/types/readings");
    run_quietly(&readings, &at("types/local"), &READINGS);
    extract(
        &readings,
        &at("types/spark"),
        &at("types/spark/.work"),
        &READINGS,
        None,
    );

    write_edge_partitions(&at("edge/partitions"), false);
    write_edge_partitions(&at("edge-collisions/partitions"), true);
    write_duplicate_partitions(&at("duplicate/partitions"));

    let ignore = "value_updated_timestamp";
    let jobs = serde_json::json!([
        {"partitions": at("fixtures/spark/.work/partitions"), "result": at("fixtures/result")},
        {"partitions": at("series/shared/partitions"), "result": at("series/result"),
         "ignore_columns": ignore},
        {"partitions": at("series-early/work/partitions"), "result": at("series-early/result"),
         "ignore_columns": ignore},
        {"partitions": at("series/shared/partitions"), "result": at("series/result-late"),
         "ignore_columns": ignore, "dates": "20200606.."},
        {"partitions": at("edge/partitions"), "result": at("edge/result"),
         "ignore_columns": ignore},
        {"partitions": at("edge-collisions/partitions"), "result": at("edge-collisions/result"),
         "ignore_columns": ignore},
        {"partitions": at("duplicate/partitions"), "result": at("duplicate/result")},
        {"partitions": at("types/spark/.work/partitions"), "result": at("types/result"),
         "key": READINGS[5]},
    ]);
    let list = at("jobs.json");
    std::fs::write(&list, jobs.to_string()).unwrap();
    let python = std::env::var_os("MIGRATE_TEST_PYTHON").expect(
        "MIGRATE_TEST_PYTHON is not set: run the tests with scripts/test, which installs Java \
         and makes a Python environment with pyspark",
    );
    let output = Command::new(python)
        .arg(root().join("tests/spark_jobs.py"))
        .arg(&list)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Spark jobs failed (scripts/test installs Java 17 and pyspark):\n{}",
        &log[log.len().saturating_sub(6000)..]
    );
    Prepared { base }
}

fn run_quietly(backups: &Path, out: &Path, flags: &[&str]) {
    migrate()
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(flags)
        .assert()
        .success();
}

fn extract(backups: &Path, out: &Path, work: &Path, flags: &[&str], dates: Option<&str>) {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("migrate"));
    command
        .arg("extract")
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out)
        .arg("--work")
        .arg(work)
        .arg("-q")
        .args(flags);
    if let Some(dates) = dates {
        command.args(["--dates", dates]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

/// Two `extract --dates` processes at once, into one work folder (`work`, or OUT/.work).
fn extract_on_two_machines(
    backups: &Path,
    out: &Path,
    work: Option<&Path>,
    flags: &[&str],
    shares: [&str; 2],
) {
    let work = work.map_or(out.join(".work"), Path::to_path_buf);
    std::thread::scope(|scope| {
        for share in shares {
            let work = &work;
            scope.spawn(move || extract(backups, out, work, flags, Some(share)));
        }
    });
}

fn emit(result: &Path, backups: &Path, out: &Path, work: Option<&Path>, flags: &[&str]) {
    let mut command = migrate();
    command.arg("emit").arg("--from").arg(result);
    command.arg("--backups").arg(backups).arg("--out").arg(out);
    if let Some(work) = work {
        command.arg("--work").arg(work);
    }
    command.arg("-q").args(flags).assert().success();
}

fn verify(backups: &Path, out: &Path, work: Option<&Path>, flags: &[&str]) {
    let mut command = migrate();
    command.arg("verify").arg("--backups").arg(backups);
    command.arg("--out").arg(out);
    if let Some(work) = work {
        command.arg("--work").arg(work);
    }
    let output = command.args(flags).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(": identical"), "{text}");
}

fn status(result: &Path) -> String {
    let mut name = result.as_os_str().to_os_string();
    name.push(".status");
    std::fs::read_to_string(name).unwrap()
}

#[test]
fn the_fixtures_from_spark_are_a_local_run_byte_for_byte() {
    let p = prepared();
    assert_eq!(status(&p.path("fixtures/result")), "ok");
    let out = p.path("fixtures/spark");
    emit(
        &p.path("fixtures/result"),
        &fixture_backups(),
        &out,
        None,
        &[],
    );
    assert_same_output(&out, &p.path("fixtures/local"), &[]);
    assert_eq!(files_below(&out.join("issues"), "sql").len(), 21);
    verify(&fixture_backups(), &out, None, &[]);
    // For Epidata's table, whose files also write removals as rows of their own, with the
    // removed keys' last values.
    let epidata = p.path("fixtures/spark-epidata");
    let ddl = p.path("epidata.sql");
    let flags = ["--target-ddl", ddl.to_str().unwrap(), "--work"];
    let work = out.join(".work");
    let flags = [&flags[..], &[work.to_str().unwrap()]].concat();
    emit(
        &p.path("fixtures/result"),
        &fixture_backups(),
        &epidata,
        None,
        &flags,
    );
    assert_same_output(&epidata, &p.path("fixtures/local-epidata"), &[]);
    let sql = std::fs::read_to_string(epidata.join("issues/20200604/doctor-visits.sql")).unwrap();
    assert!(sql.contains("marked deleted"), "{sql}");
    // Units too large for the memory budget (forced by the hidden --max-part-rows) read the
    // result in buckets of time_value, merged in key order as the files are written.
    let target = vec!["--target-ddl", ddl.to_str().unwrap()];
    for (flags, local) in [
        (vec![], "fixtures/local"),
        (target, "fixtures/local-epidata"),
    ] {
        let split = p.path("fixtures/spark-split");
        let _ = std::fs::remove_dir_all(&split);
        let work = ["--work", work.to_str().unwrap(), "--max-part-rows", "3"];
        let flags = [&flags[..], &work[..]].concat();
        emit(
            &p.path("fixtures/result"),
            &fixture_backups(),
            &split,
            None,
            &flags,
        );
        assert_same_output(&split, &p.path(local), &[]);
    }
}

/// Epidata's `covidcast` table as of June 2021, as the repository ships it.
const EPIDATA_2021: &str = include_str!("../ddl/covidcast-2021.sql");

#[test]
fn a_series_with_every_feature_from_spark_is_a_local_run_byte_for_byte() {
    let p = prepared();
    let local = p.path("series/local");
    assert_series_has_every_feature(&local);
    assert_eq!(status(&p.path("series/result")), "ok");
    let (out, shared) = (p.path("series/spark"), p.path("series/shared"));
    let backups = p.path("series/backups");
    emit(
        &p.path("series/result"),
        &backups,
        &out,
        Some(&shared),
        &SERIES_FLAGS,
    );
    assert_same_output(&out, &local, &[]);
    verify(&backups, &out, Some(&shared), &SERIES_FLAGS);
}

#[test]
fn every_column_type_from_spark_is_a_local_run_byte_for_byte() {
    // `bigint unsigned` (read by Spark as decimal(20,0), written back as digits), decimals
    // as their canonical text, bit, dates, json: compared and written as a local run does.
    let p = prepared();
    assert_eq!(status(&p.path("types/result")), "ok");
    let out = p.path("types/spark");
    let readings = root().join("fixtures/types/readings");
    emit(&p.path("types/result"), &readings, &out, None, &READINGS);
    assert_same_output(&out, &p.path("types/local"), &[]);
    verify(&readings, &out, None, &READINGS);
}

#[test]
fn machines_extracting_dates_each_write_the_trees_of_one_machine() {
    let p = prepared();
    for (one, two) in [
        (
            "fixtures/local/.work/partitions",
            "fixtures/spark/.work/partitions",
        ),
        ("series/local/.work/partitions", "series/shared/partitions"),
    ] {
        let (one, two) = (snapshot(&p.path(one)), snapshot(&p.path(two)));
        assert!(one.len() >= 14, "{} files", one.len());
        let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&one), names(&two));
        for (path, bytes) in &one {
            assert!(two[path] == *bytes, "{} differs", path.display());
        }
    }
}

#[test]
fn new_backups_are_emitted_from_a_job_over_their_dates_only() {
    let p = prepared();
    assert_eq!(status(&p.path("series-early/result")), "ok");
    assert_eq!(status(&p.path("series/result-late")), "ok");
    // The output of the backups up to 20200605, from a job over all of them.
    let (out, work) = (p.path("series-early/out"), p.path("series-early/work"));
    emit(
        &p.path("series-early/result"),
        &p.path("series-early/backups"),
        &out,
        Some(&work),
        &SERIES_FLAGS,
    );
    // Then every backup: the new dates' partitions, and their diffs from a job that read
    // only them and the backup before them.
    let backups = p.path("series/backups");
    extract(&backups, &out, &work, &SERIES_FLAGS, Some("20200606.."));
    let late = p.path("series/result-late");
    let record = std::fs::read_dir(late.join("_job")).unwrap().flatten();
    let record = (record.map(|e| e.path()))
        .find(|f| f.extension().is_some_and(|e| e == "txt"))
        .unwrap();
    let record = std::fs::read_to_string(record).unwrap();
    assert!(!record.contains("\"date\": \"20200605\""), "{record}");
    emit(&late, &backups, &out, Some(&work), &SERIES_FLAGS);
    assert_same_output(&out, &p.path("series/local"), &[]);
}

#[test]
fn emit_refuses_a_result_that_is_not_of_these_partitions_or_flags() {
    let p = prepared();
    let run = |result: &Path, backups: &Path, work: &Path, flags: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let output = migrate()
            .arg("emit")
            .arg("--from")
            .arg(result)
            .arg("--backups")
            .arg(backups)
            .arg("--out")
            .arg(&out)
            .arg("--work")
            .arg(work)
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        assert!(!out.join("issues").exists(), "nothing is written");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let (backups, shared) = (p.path("series/backups"), p.path("series/shared"));
    let series = |result: &str, flags: &[&str]| run(&p.path(result), &backups, &shared, flags);
    let other_flags = series("series/result", &["--format", "csv"]);
    assert!(
        other_flags.contains("computed with --key")
            && other_flags.contains("--ignore-columns 'value_updated_timestamp'"),
        "{other_flags}"
    );
    let fewer_dates = series("series/result-late", &SERIES_FLAGS);
    assert!(
        fewer_dates.contains("has no diff of 20200601, 20200602, 20200603, 20200605"),
        "{fewer_dates}"
    );
    let nothing = series("series", &SERIES_FLAGS);
    assert!(nothing.contains("no finished result"), "{nothing}");
    // Copies of the fixtures (new files: other modification times), extracted again.
    let copies = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(fixture_backups()).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, copies.path().join(file.file_name().unwrap())).unwrap();
    }
    let work = copies.path().join("work");
    extract(copies.path(), &copies.path().join("out"), &work, &[], None);
    let result = p.path("fixtures/result");
    let extracted_again = run(&result, copies.path(), &work, &[]);
    assert!(
        extracted_again.contains(
            "the partitions of 20200601 or of the backup before it were \
             extracted again"
        ),
        "{extracted_again}"
    );
}

#[test]
fn a_duplicate_key_fails_the_job_naming_the_key_and_the_backup() {
    let message = status(&prepared().path("duplicate/result"));
    assert!(
        message.starts_with(
            "error: the key (source, signal, time_type, geo_type, time_value, \
             geo_value) = (alpha, cli, day, county, 20200530, g01) occurs more than once in the \
             backup of 20200601"
        ),
        "{message}"
    );
}

/// NaN = NaN, NULL = NULL, NaN ≠ NULL, 0.0 = -0.0, doubles exactly, an ignored column, text
/// keys exactly: the Spark job's rows against the local diff's, on partitions written here
/// (a dump cannot hold NaN); and the same rows from partitions where every key has one
/// fingerprint (the job checks the key columns, and diffs again by them).
#[test]
fn nan_null_and_zero_compare_as_the_local_diff_compares_them() {
    let p = prepared();
    for edge in ["edge", "edge-collisions"] {
        assert_eq!(status(&p.path(&format!("{edge}/result"))), "ok", "{edge}");
        compare_edge(p, &p.path(&format!("{edge}/result")));
    }
}

fn compare_edge(p: &Prepared, result: &Path) {
    let mut config = Config::new(".".into(), ".".into());
    config.ignore_columns = vec!["value_updated_timestamp".into()];
    let layout = Layout::new(&edge_table(), config.roles()).unwrap();
    let spark = SparkResult::open(result, &config).unwrap();
    let partition = |date: &str| p.path(&format!("edge/partitions/date={date}/alpha.parquet"));
    let old = read_partition(Some(&partition("20200601")), &layout).unwrap();
    let new = read_partition(Some(&partition("20200602")), &layout).unwrap();
    let local = [
        diff(None, old.clone(), &layout).unwrap(),
        diff(Some(old), new, &layout).unwrap(),
    ];
    for (i, (date, local)) in ["20200601", "20200602"].iter().zip(local).enumerate() {
        let rows = [EDGE_OLD.len(), EDGE_NEW.len()][i];
        let spark = spark
            .unit(date, i == 0, "alpha", rows, &layout, None)
            .unwrap();
        assert_same_diff(&spark, &local, date);
    }
    // And what that is, by hand: the rows whose compared columns changed, the new keys, the
    // keys gone (text keys exactly: 1001 is not 01001).
    let second = spark
        .unit("20200602", false, "alpha", 12, &layout, None)
        .unwrap();
    let geos = |frame: &DataFrame| -> Vec<String> {
        let column = frame.column("geo_value").unwrap().str().unwrap().clone();
        (0..column.len())
            .map(|i| column.get(i).unwrap().to_string())
            .collect()
    };
    assert_eq!(
        geos(&second.issues),
        ["01001", "g03", "g05", "g07", "g09", "g11", "g12", "g13"]
    );
    assert_eq!((second.added, second.changed), (3, 5));
    assert_eq!(geos(&second.removed), ["1001", "g06"]);
}

fn assert_same_diff(spark: &DiffResult, local: &DiffResult, date: &str) {
    assert_eq!(
        rendered(&spark.issues),
        rendered(&local.issues),
        "issues of {date}"
    );
    assert_eq!(
        rendered(&spark.removed),
        rendered(&local.removed),
        "removals of {date}"
    );
    assert_eq!(
        (spark.added, spark.changed, spark.rows),
        (local.added, local.changed, local.rows),
        "{date}"
    );
}

/// A frame's columns and cells as text, doubles in Rust's `{:?}` (NaN, -0.0 and 0.0 apart).
fn rendered(frame: &DataFrame) -> Vec<Vec<String>> {
    let mut rows = vec![frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()];
    for row in 0..frame.height() {
        rows.push(
            (frame.columns().iter())
                .map(|column| match column.get(row).unwrap() {
                    AnyValue::Float64(v) => format!("{v:?}"),
                    AnyValue::String(s) => format!("{s:?}"),
                    AnyValue::StringOwned(s) => format!("{s:?}"),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    rows
}

/// geo_value, value_updated_timestamp (ignored), value, stderr, direction.
type EdgeRow = (&'static str, i64, Option<f64>, Option<f64>, Option<i64>);

const EDGE_OLD: [EdgeRow; 11] = [
    ("g01", 1, Some(f64::NAN), Some(0.1), Some(1)),
    ("g02", 1, None, Some(0.1), Some(1)),
    ("g03", 1, Some(f64::NAN), Some(0.1), Some(1)),
    ("g04", 1, Some(0.0), Some(0.1), Some(1)),
    ("g05", 1, Some(1.5), None, Some(1)),
    ("g06", 1, Some(1.0), Some(0.1), Some(1)),
    ("g08", 1, Some(1.0), Some(0.1), Some(1)),
    ("g09", 1, Some(1.0), Some(0.1), None),
    ("1001", 1, Some(1.0), Some(0.1), Some(1)),
    ("g11", 1, Some(2.0), Some(0.1), Some(1)),
    ("g12", 1, Some(f64::NAN), Some(0.1), Some(1)),
];

const EDGE_NEW: [EdgeRow; 12] = [
    ("g01", 1, Some(f64::NAN), Some(0.1), Some(1)), // NaN = NaN
    ("g02", 1, None, Some(0.1), Some(1)),           // NULL = NULL
    ("g03", 1, None, Some(0.1), Some(1)),           // NaN ≠ NULL: changed
    ("g04", 1, Some(-0.0), Some(0.1), Some(1)),     // 0.0 = -0.0
    ("g05", 1, Some(1.5), Some(0.1), Some(1)),      // NULL → 0.1: changed
    ("g07", 1, Some(1.0), Some(0.1), Some(1)),      // new key
    ("g08", 2, Some(1.0), Some(0.1), Some(1)),      // only the ignored column moves
    ("g09", 1, Some(1.0), Some(0.1), Some(0)),      // integer NULL → 0: changed
    ("01001", 1, Some(1.0), Some(0.1), Some(1)),    // another key than 1001
    ("g11", 1, Some(2.0000000000000004), Some(0.1), Some(1)), // changed
    ("g12", 1, Some(0.0), Some(0.1), Some(1)),      // NaN → 0: changed
    ("g13", 1, Some(f64::NAN), None, None),         // new key
];

fn edge_table() -> migrate::dump::TableDef {
    parse_create_table(
        "CREATE TABLE covidcast (id int, source varchar(32), `signal` varchar(64), \
         time_type varchar(12), geo_type varchar(12), time_value int, geo_value varchar(12), \
         value_updated_timestamp int, value double, stderr double, direction int)",
    )
    .unwrap()
}

/// Writes a partitions tree as extraction lays it out: `date=D/alpha.parquet` and the
/// folder's record.
/// `fingerprint`: a `__key_fingerprint` column of one value for every key, as if all keys
/// collided, in place of a column migrate does not know.
fn write_partitions(root: &Path, dates: &[(&str, &[EdgeRow])], fingerprint: bool) {
    for (date, rows) in dates {
        let dir = root.join(format!("date={date}"));
        std::fs::create_dir_all(&dir).unwrap();
        let n = rows.len();
        let text = |name: &str, v: &str| Column::new(name.into(), vec![v; n]);
        let mut frame = DataFrame::new(
            n,
            vec![
                text("source", "alpha"),
                text("signal", "cli"),
                text("time_type", "day"),
                text("geo_type", "county"),
                Column::new("time_value".into(), vec![20200530i64; n]),
                Column::new(
                    "geo_value".into(),
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                ),
                Column::new(
                    "value_updated_timestamp".into(),
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                ),
                Column::new("value".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
                Column::new(
                    "stderr".into(),
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                ),
                Column::new(
                    "direction".into(),
                    rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                ),
                if fingerprint {
                    Column::new("__key_fingerprint".into(), vec![7u64; n])
                } else {
                    // A column migrate does not know (a later version may add some): both
                    // diffs must pass over it.
                    Column::new("key_hash".into(), vec![7i64; n])
                },
            ],
        )
        .unwrap();
        let file = std::fs::File::create(dir.join("alpha.parquet")).unwrap();
        ParquetWriter::new(file).finish(&mut frame).unwrap();
        let info = PartitionInfo {
            date: date.to_string(),
            inputs: ExtractInputs {
                file: format!("just_covidcast_{date}_database.sql.gz"),
                size: 1,
                modified_unix_ns: 1,
                table: "covidcast".into(),
                id_column: "id".into(),
                partition_column: "source".into(),
                file_format: "parquet".into(),
                format: 2,
            },
            table: edge_table(),
            partitions: vec![PartitionEntry {
                value: "alpha".into(),
                stem: "alpha".into(),
                rows: n as u64,
            }],
            rows: n as u64,
            sql_bytes: 1,
        };
        let json = serde_json::to_string_pretty(&info).unwrap();
        std::fs::write(dir.join("_partitions.json"), json).unwrap();
    }
}

fn write_edge_partitions(root: &Path, fingerprint: bool) {
    let dates: [(&str, &[EdgeRow]); 2] = [("20200601", &EDGE_OLD), ("20200602", &EDGE_NEW)];
    write_partitions(root, &dates, fingerprint);
}

fn write_duplicate_partitions(root: &Path) {
    let twice = [EDGE_OLD[0], EDGE_OLD[1], EDGE_OLD[0]];
    write_partitions(root, &[("20200601", &twice)], false);
}

/// The local output of the generated series holds what the Spark job must get right: a
/// gap, weekly issue rows, values turning NULL and back, removals, a key that comes back
/// after its removal, and a source that appears after the first backup.
fn assert_series_has_every_feature(out: &Path) {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["gaps"].as_array().unwrap().len(), 1, "{summary}");
    let dates: Vec<String> = (summary["backups"].as_array().unwrap().iter())
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let key_of = |table: &Table, row: &[Option<String>]| -> Vec<Option<String>> {
        let at = |name: &str| table.header.iter().position(|h| h == name).unwrap();
        migrate::config::DEFAULT_KEY
            .iter()
            .map(|k| row[at(k)].clone())
            .collect()
    };
    let mut last_value: BTreeMap<Vec<Option<String>>, Option<String>> = BTreeMap::new();
    let mut removed_keys = BTreeSet::new();
    let (mut weekly, mut flips, mut removals, mut returns) = (0, 0, 0, 0);
    let mut sources_by_date = Vec::new();
    for (i, date) in dates.iter().enumerate() {
        let day = out.join("issues").join(date);
        let mut sources = BTreeSet::new();
        for file in files_below(&day, "csv") {
            sources.insert(file.file_stem().unwrap().to_string_lossy().into_owned());
            let table = read_csv(&file);
            let value = table.header.iter().position(|h| h == "value").unwrap();
            let time_type = table.header.iter().position(|h| h == "time_type").unwrap();
            for row in &table.rows {
                let key = key_of(&table, row);
                if i > 0 && row[time_type].as_deref() == Some("week") {
                    weekly += 1;
                }
                if removed_keys.remove(&key) {
                    returns += 1;
                }
                let before = last_value.insert(key, row[value].clone());
                if let Some(before) = before {
                    flips += usize::from(before.is_none() != row[value].is_none());
                }
            }
        }
        for file in files_below(&out.join("removals").join(date), "csv") {
            let table = read_csv(&file);
            removals += table.rows.len();
            for row in &table.rows {
                removed_keys.insert(key_of(&table, row));
            }
        }
        sources_by_date.push(sources);
    }
    assert!(weekly > 0, "no weekly issue row after the first backup");
    assert!(flips > 0, "no value turning NULL or back");
    assert!(removals > 0, "no removal");
    assert!(returns > 0, "no key that comes back");
    let late: Vec<&String> = sources_by_date[1..]
        .iter()
        .flatten()
        .filter(|s| !sources_by_date[0].contains(*s))
        .collect();
    assert!(
        !late.is_empty(),
        "no source appearing late: {sources_by_date:?}"
    );
}

/// The job as deployed: submitted with `spark-submit` to a standalone cluster of one master
/// and two workers of one core each (separate JVMs, every address 127.0.0.1), so that the
/// executors run in other processes than the driver, the job's tasks are serialised to
/// them, they read the partitions by the paths the driver names and several processes
/// write the result. `migrate emit --from` that result is a local run byte for
/// byte.
#[test]
fn the_job_on_a_standalone_cluster_gives_a_local_run_byte_for_byte() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spark-cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The JVMs start while the local runs and jobs are made.
    let mut cluster = Cluster::start(&dir, 2);
    let p = prepared();
    let backups = p.path("series/backups");
    let (out, work) = (dir.join("out"), dir.join("work"));
    extract(&backups, &out, &work, &SERIES_FLAGS, None);
    cluster.wait_for_workers(2);
    let result = dir.join("result");
    cluster.submit(&[
        "--partitions",
        work.join("partitions").to_str().unwrap(),
        "--result",
        result.to_str().unwrap(),
        "--ignore-columns",
        "value_updated_timestamp",
    ]);
    // Each worker ran an executor of the job, in a process of its own.
    for worker in 1..=2 {
        let apps = std::fs::read_dir(dir.join(format!("worker-{worker}")))
            .map(|d| d.flatten().count())
            .unwrap_or(0);
        assert!(
            apps > 0,
            "worker {worker} ran no executor:\n{}",
            cluster.logs()
        );
    }
    emit(&result, &backups, &out, Some(&work), &SERIES_FLAGS);
    assert_same_output(&out, &p.path("series/local"), &[]);
    verify(&backups, &out, Some(&work), &SERIES_FLAGS);
}

/// A standalone Spark cluster on this machine, every address 127.0.0.1, its logs and work
/// folders in `dir`; its processes (each the leader of a process group of its own, with the
/// executors and Python workers it starts) are stopped when it is dropped, also when a test
/// fails.
struct Cluster {
    dir: PathBuf,
    spark_home: PathBuf,
    python: std::ffi::OsString,
    port: u16,
    webui: u16,
    processes: Vec<std::process::Child>,
}

impl Cluster {
    /// Starts a master and `workers` workers of one core and 1 GiB each, on free ports.
    /// Fails the test (never skips it) when Spark or Java is missing.
    fn start(dir: &Path, workers: usize) -> Cluster {
        let python = std::env::var_os("MIGRATE_TEST_PYTHON").expect(
            "MIGRATE_TEST_PYTHON is not set: run the tests with scripts/test, which installs \
             Java and makes a Python environment with pyspark",
        );
        let home = Command::new(&python)
            .args([
                "-c",
                "from pyspark.find_spark_home import _find_spark_home; print(_find_spark_home())",
            ])
            .output()
            .unwrap();
        assert!(
            home.status.success(),
            "no pyspark in MIGRATE_TEST_PYTHON (scripts/test installs it): {}",
            String::from_utf8_lossy(&home.stderr)
        );
        let spark_home = PathBuf::from(String::from_utf8(home.stdout).unwrap().trim());
        // The REST submission server listens on a fixed port (6066) unless turned off.
        let properties = dir.join("spark-defaults.conf");
        std::fs::write(&properties, "spark.master.rest.enabled false\n").unwrap();
        let [port, webui] = free_ports();
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            spark_home,
            python,
            port,
            webui,
            processes: Vec::new(),
        };
        let master = cluster.master_url();
        let (port, webui) = (port.to_string(), webui.to_string());
        cluster.spawn(
            "master",
            &[
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--webui-port",
                &webui,
                "--properties-file",
                properties.to_str().unwrap(),
            ],
        );
        for worker in 1..=workers {
            let work_dir = dir.join(format!("worker-{worker}"));
            cluster.spawn(
                &format!("worker-{worker}"),
                &[
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--webui-port",
                    "0",
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--work-dir",
                    work_dir.to_str().unwrap(),
                    "--properties-file",
                    properties.to_str().unwrap(),
                    &master,
                ],
            );
        }
        cluster
    }

    fn master_url(&self) -> String {
        format!("spark://127.0.0.1:{}", self.port)
    }

    /// The environment of every Spark process: loopback only, every file in `dir`.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.spark_home.join("bin").join(program));
        command
            .env("SPARK_HOME", &self.spark_home)
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .env("SPARK_LOG_DIR", self.dir.join("logs"))
            .env("SPARK_PID_DIR", self.dir.join("pids"))
            .env("SPARK_WORKER_DIR", self.dir.join("worker"))
            .env("PYSPARK_PYTHON", &self.python)
            .env("PYSPARK_DRIVER_PYTHON", &self.python)
            .stdin(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }

    /// Starts `spark-class ARGS`, its output in `dir/NAME.log`.
    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = (self.command("spark-class").args(args))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot run Spark's spark-class");
        self.processes.push(child);
    }

    /// Waits until `count` workers are alive in the master's JSON status, or fails with
    /// the logs after three minutes or when a process ends.
    fn wait_for_workers(&mut self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while self.alive_workers() < count {
            let ended =
                (self.processes.iter_mut()).any(|child| !matches!(child.try_wait(), Ok(None)));
            assert!(!ended, "a Spark process ended:\n{}", self.logs());
            assert!(
                Instant::now() < deadline,
                "{count} workers did not register with the master within 3 minutes:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The workers the master's web UI reports alive (0 while it does not answer).
    fn alive_workers(&self) -> usize {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.webui)) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = "GET /json/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut response = String::new();
        if stream.write_all(request.as_bytes()).is_err()
            || stream.read_to_string(&mut response).is_err()
        {
            return 0;
        }
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let Ok(status) = serde_json::from_str::<serde_json::Value>(body) else {
            return 0;
        };
        (status["workers"].as_array().into_iter().flatten())
            .filter(|w| w["state"] == "ALIVE")
            .count()
    }

    /// Runs scripts/spark/migrate_diff.py with `spark-submit --master spark://…` and ARGS,
    /// the driver bound to 127.0.0.1; fails with the logs when it fails or takes more than
    /// fifteen minutes.
    fn submit(&self, args: &[&str]) {
        let log = self.dir.join("submit.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut child = (self.command("spark-submit"))
            .args(["--master", &self.master_url()])
            .args(["--conf", "spark.driver.host=127.0.0.1"])
            .args(["--conf", "spark.driver.bindAddress=127.0.0.1"])
            .args(["--conf", "spark.ui.enabled=false"])
            .args(["--conf", "spark.executor.memory=1g"])
            // Small data: a few shuffle partitions, so a date's files hold several sources.
            .args(["--conf", "spark.sql.shuffle.partitions=4"])
            .arg(root().join("scripts/spark/migrate_diff.py"))
            .args(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("cannot run Spark's spark-submit");
        let deadline = Instant::now() + Duration::from_secs(900);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                stop_group(&mut child);
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            status.is_some_and(|s| s.success()),
            "spark-submit failed ({status:?}):\n{}",
            self.logs()
        );
    }

    /// The last lines of every log: the master's, the workers', the executors' and the
    /// driver's.
    fn logs(&self) -> String {
        let mut text = String::new();
        let mut files: Vec<PathBuf> = (std::fs::read_dir(&self.dir).unwrap().flatten())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        // The executors' logs: worker-N/APP/EXECUTOR/stderr.
        let below = |dir: &Path| -> Vec<PathBuf> {
            let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
            entries.map(|e| e.path()).collect()
        };
        for worker in below(&self.dir) {
            if worker
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("worker-"))
            {
                for executor in below(&worker).iter().flat_map(|app| below(app)) {
                    files.push(executor.join("stderr"));
                }
            }
        }
        for file in files {
            let Ok(log) = std::fs::read_to_string(&file) else {
                continue;
            };
            let lines: Vec<&str> = log.lines().collect();
            text += &format!("--- {}\n", file.display());
            text += &lines[lines.len().saturating_sub(40)..].join("\n");
            text.push('\n');
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.processes {
            stop_group(child);
        }
    }
}

/// Stops a process started as the leader of a process group, and the processes it started:
/// SIGTERM to the group (Spark's daemons stop their executors on it), SIGKILL after ten
/// seconds. A child not yet reaped keeps its id, so the group is still its own.
fn stop_group(child: &mut std::process::Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let group = -(child.id() as libc::pid_t);
    unsafe { libc::kill(group, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            // The leader is gone; anything left of its group goes too.
            unsafe { libc::kill(group, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(group, libc::SIGKILL) };
    let _ = child.wait();
}

/// Ports free on 127.0.0.1 now: bound to port 0 at once, so they differ, then released.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

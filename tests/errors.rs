//! Bad input ends in a clear error that names the file, the place and what to do, with exit
//! status 1 (2 for a wrong command line).

mod common;

use std::path::Path;

use common::*;
use predicates::prelude::*;

const CREATE: &str = "CREATE TABLE `covidcast` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
    `source` varchar(32) NOT NULL,\n  `signal` varchar(64) NOT NULL,\n  \
    `time_type` varchar(12) NOT NULL,\n  `geo_type` varchar(12) NOT NULL,\n  \
    `time_value` int(11) NOT NULL,\n  `geo_value` varchar(12) NOT NULL,\n  \
    `value` double DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n";

fn name(date: &str) -> String {
    format!("just_covidcast_{date}_database.sql")
}

fn write(dir: &Path, file: &str, content: &[u8]) {
    std::fs::write(dir.join(file), content).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn run(backups: &Path) -> assert_cmd::assert::Assert {
    let out = tempfile::tempdir().unwrap();
    migrate()
        .arg("--backups")
        .arg(backups)
        .arg("--out")
        .arg(out.path())
        .assert()
}

fn good_dump() -> String {
    format!(
        "{CREATE}INSERT INTO `covidcast` VALUES (1,'s','x','day','state',20200601,'pa',1.5),\n\
         (2,'s','x','day','state',20200601,'ny',NULL);\n"
    )
}

#[test]
fn a_truncated_gzip_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let whole = gzip(good_dump().repeat(50).as_bytes());
    let file = format!("{}.gz", name("20200601"));
    write(dir.path(), &file, &whole[..whole.len() * 2 / 3]);
    run(dir.path())
        .code(1)
        .stderr(predicate::str::contains(&file));
}

#[test]
fn a_file_named_gz_that_is_not_gzip_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("{}.gz", name("20200601"));
    write(dir.path(), &file, good_dump().as_bytes());
    run(dir.path())
        .code(1)
        .stderr(predicate::str::contains(&file));
}

#[test]
fn a_truncated_dump_says_where_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let dump = good_dump();
    write(
        dir.path(),
        &name("20200601"),
        &dump.as_bytes()[..dump.len() - 20],
    );
    run(dir.path())
        .code(1)
        .stderr(predicate::str::contains("truncated").and(predicate::str::contains("line 12")));
}

#[test]
fn a_dump_without_the_table_says_to_pass_table() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &name("20200601"),
        b"CREATE TABLE other (a int);\n",
    );
    run(dir.path()).code(1).stderr(
        predicate::str::contains("no CREATE TABLE for `covidcast`")
            .and(predicate::str::contains("--table")),
    );
}

#[test]
fn an_insert_before_its_create_table_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let dump = format!("INSERT INTO `covidcast` VALUES (1);\n{CREATE}");
    write(dir.path(), &name("20200601"), dump.as_bytes());
    run(dir.path()).code(1).stderr(
        predicate::str::contains("comes before its CREATE TABLE")
            .and(predicate::str::contains("line 1")),
    );
}

#[test]
fn a_row_with_too_few_or_too_many_values_is_placed() {
    for row in [
        "(3,'s','x','day','state',20200601,'nj')",
        "(3,'s','x','day','state',20200601,'nj',1,2)",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dump = format!("{}INSERT INTO `covidcast` VALUES\n{row};\n", good_dump());
        write(dir.path(), &name("20200601"), dump.as_bytes());
        run(dir.path()).code(1).stderr(
            predicate::str::contains("columns were expected")
                .and(predicate::str::contains("line 15")),
        );
    }
}

#[test]
fn a_duplicate_key_in_one_backup_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let dump = format!(
        "{}INSERT INTO `covidcast` VALUES (9,'s','x','day','state',20200601,'pa',2);\n",
        good_dump()
    );
    write(dir.path(), &name("20200601"), dump.as_bytes());
    run(dir.path()).code(1).stderr(
        predicate::str::contains("(s, x, day, state, 20200601, pa)")
            .and(predicate::str::contains("more than once")),
    );
}

/// In a later backup the duplicate is caught by the join's own check, then named.
#[test]
fn a_duplicate_key_in_a_later_backup_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &name("20200601"), good_dump().as_bytes());
    let dump = format!(
        "{}INSERT INTO `covidcast` VALUES (9,'s','x','day','state',20200601,'pa',2);\n",
        good_dump()
    );
    write(dir.path(), &name("20200602"), dump.as_bytes());
    run(dir.path()).code(1).stderr(
        predicate::str::contains("(s, x, day, state, 20200601, pa)")
            .and(predicate::str::contains("more than once"))
            .and(predicate::str::contains("20200602")),
    );
}

#[test]
fn two_backups_of_one_date_are_both_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &name("20200601"), good_dump().as_bytes());
    write(
        dir.path(),
        &format!("{}.gz", name("20200601")),
        &gzip(good_dump().as_bytes()),
    );
    // Wrong input, found before any work: exit 2.
    run(dir.path()).code(2).stderr(
        predicate::str::contains(name("20200601") + " and")
            .and(predicate::str::contains(name("20200601") + ".gz")),
    );
}

#[test]
fn a_text_where_a_number_belongs_is_placed() {
    let dir = tempfile::tempdir().unwrap();
    let dump = format!(
        "{CREATE}INSERT INTO `covidcast` VALUES (1,'s','x','day','state',20200601,'pa','high');\n"
    );
    write(dir.path(), &name("20200601"), dump.as_bytes());
    run(dir.path()).code(1).stderr(
        predicate::str::contains("column `value`").and(predicate::str::contains("not a number")),
    );
}

#[test]
fn a_wrong_command_line_exits_with_2() {
    migrate().arg("--backups").assert().code(2);
    migrate()
        .args(["--backups", ".", "--out", "x", "--key", "id"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--id-column"));
}

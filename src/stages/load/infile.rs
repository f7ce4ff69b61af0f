//! One issues file of migrate's SQL output, read back as `LOAD DATA` input: its INSERT rows
//! become tab-separated lines (the server parses them as it parses INSERT literals, several
//! times faster), and its other statements — the UPDATEs that keep `is_latest_issue` right —
//! are kept, to run after the rows as the file would.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::dump::{DumpReader, Event, FieldKind, InsertHead};
use crate::stages::load::database::quote;

/// The first INSERT's head of a file (its table and columns), or None when it inserts
/// nothing (a file of UPDATEs only).
pub fn insert_head(path: &Path) -> Result<Option<InsertHead>> {
    let mut reader = reader(path)?;
    while let Some(event) = next(&mut reader, path)? {
        if let Event::Insert(head) = event {
            return Ok(Some(head));
        }
    }
    Ok(None)
}

/// The `LOAD DATA` statement that reads `name` (the handler's file name) into `table`.
/// REPLACE: a row with the key and issue of one already in the table replaces it, as the
/// file's `ON DUPLICATE KEY UPDATE` does (a weekly row revised twice in one epiweek).
pub fn load_statement(name: &str, table: &str, columns: &[String]) -> String {
    let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!(
        "LOAD DATA LOCAL INFILE '{}' REPLACE INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        name.replace('\\', "\\\\").replace('\'', "''"),
        quote(table),
        columns.join(",")
    )
}

/// What streaming a file found besides its rows.
#[derive(Debug, Default)]
pub struct Streamed {
    pub rows: u64,
    /// The file's other statements, in order, to run after its rows.
    pub statements: Vec<String>,
}

/// Writes the INSERT rows of `path` to `out` as LOAD DATA lines and collects the other
/// statements. Every INSERT must name the same columns, and come before every other
/// statement (as migrate writes them), so running the statements after the rows keeps the
/// file's order.
pub fn stream_rows(path: &Path, out: &mut dyn Write) -> Result<Streamed> {
    let mut reader = reader(path)?;
    let mut streamed = Streamed::default();
    let mut columns: Option<Vec<String>> = None;
    let mut line = Vec::with_capacity(1024);
    while let Some(event) = next(&mut reader, path)? {
        match event {
            Event::Insert(head) => {
                if !streamed.statements.is_empty() {
                    bail!(
                        "{}: an INSERT follows another statement; this is not a file that \
                         migrate wrote",
                        path.display()
                    );
                }
                let names = head.columns.unwrap_or_default();
                match &columns {
                    Some(first) if *first != names => {
                        bail!("{}: its INSERTs name different columns", path.display())
                    }
                    _ => columns = Some(names),
                }
            }
            Event::Row(row) => {
                line.clear();
                for (i, (kind, bytes)) in row.iter().enumerate() {
                    if i > 0 {
                        line.push(b'\t');
                    }
                    write_field(&mut line, kind, bytes);
                }
                line.push(b'\n');
                out.write_all(&line)?;
                streamed.rows += 1;
            }
            Event::Statement(text) => streamed.statements.push(text),
            Event::CreateTable(_) => {}
        }
    }
    Ok(streamed)
}

/// One field as LOAD DATA reads it with `ESCAPED BY '\\'`: NULL as `\N`, bytes with the
/// separators and the escape character escaped; numbers as the file spelled them.
fn write_field(line: &mut Vec<u8>, kind: FieldKind, bytes: &[u8]) {
    match kind {
        FieldKind::Null => line.extend_from_slice(b"\\N"),
        FieldKind::Bare => line.extend_from_slice(bytes),
        FieldKind::Quoted | FieldKind::Binary => {
            for &b in bytes {
                match b {
                    b'\\' => line.extend_from_slice(b"\\\\"),
                    b'\t' => line.extend_from_slice(b"\\t"),
                    b'\n' => line.extend_from_slice(b"\\n"),
                    b'\r' => line.extend_from_slice(b"\\r"),
                    0 => line.extend_from_slice(b"\\0"),
                    b => line.push(b),
                }
            }
        }
    }
}

fn reader(path: &Path) -> Result<DumpReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(DumpReader::new(BufReader::with_capacity(1 << 20, file)).with_statements())
}

fn next<'r>(reader: &'r mut DumpReader<BufReader<File>>, path: &Path) -> Result<Option<Event<'r>>> {
    reader
        .next_event()
        .map_err(|e| anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_load_data_lines_and_updates_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sql");
        std::fs::write(
            &path,
            "INSERT INTO `t` (`a`,`b`,`c`) VALUES ('x\\ty\\\\z',NULL,1.5e-16),\n\
             ('it''s\\n',0x00ff,-3)\nON DUPLICATE KEY UPDATE `b`=VALUES(`b`);\n\
             INSERT INTO `t` (`a`,`b`,`c`) VALUES ('',NULL,2);\n\
             -- a comment\nUPDATE `t` SET `c` = 0\nWHERE `a` = 'q;r';\n",
        )
        .unwrap();
        let head = insert_head(&path).unwrap().unwrap();
        assert_eq!(head.columns.unwrap(), ["a", "b", "c"]);
        let mut out = Vec::new();
        let streamed = stream_rows(&path, &mut out).unwrap();
        assert_eq!(streamed.rows, 3);
        assert_eq!(
            out,
            b"x\\ty\\\\z\t\\N\t1.5e-16\nit's\\n\t\\0\xff\t-3\n\t\\N\t2\n".to_vec()
        );
        assert_eq!(
            streamed.statements,
            ["UPDATE `t` SET `c` = 0\nWHERE `a` = 'q;r'"]
        );
    }

    #[test]
    fn an_insert_after_an_update_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sql");
        std::fs::write(
            &path,
            "UPDATE t SET a = 1;\nINSERT INTO `t` (`a`) VALUES (1);\n",
        )
        .unwrap();
        let err = stream_rows(&path, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("follows another statement"), "{err}");
    }

    #[test]
    fn the_statement_names_its_columns_and_escapes_the_file_name() {
        let sql = load_statement("a'b", "covid`cast", &["x".into(), "is_latest_issue".into()]);
        assert!(sql.starts_with("LOAD DATA LOCAL INFILE 'a''b' REPLACE INTO TABLE `covid``cast`"));
        assert!(sql.ends_with("(`x`,`is_latest_issue`)"), "{sql}");
    }
}

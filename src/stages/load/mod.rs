//! Stage 5, load: the issue rows of one backup date into the live table, in one
//! transaction with the record of that date (`record.rs`). Each issues file of the SQL output
//! is streamed to the server as `LOAD DATA LOCAL INFILE` (`infile.rs`), then its UPDATEs run
//! as they are: the set-based statements that keep `is_latest_issue` right. After any crash
//! the table holds whole dates only: the server rolls back a transaction whose connection
//! is gone.

pub mod database;
pub mod infile;
pub mod record;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, LocalInfileHandler};

use self::infile::{insert_head, load_statement, stream_rows, Streamed};
use self::record::LoadedDate;

/// The issues files of one backup date, in name order.
#[derive(Debug, Clone)]
pub struct DateFiles {
    pub date: String,
    pub files: Vec<PathBuf>,
}

impl DateFiles {
    /// The SQL issues files in `dir` (the output's folder for `date`).
    pub fn list(dir: &Path, date: &str) -> Result<DateFiles> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        files.retain(|f| {
            f.extension().is_some_and(|e| e == "sql")
                && !f
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
        });
        files.sort();
        Ok(DateFiles {
            date: date.to_string(),
            files,
        })
    }

    /// How many files, their bytes and a checksum of their names and contents: what the
    /// record keeps, so that a rerun can tell the files it loaded from changed ones.
    pub fn fingerprint(&self) -> Result<LoadedDate> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut bytes = 0;
        for file in &self.files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
            let mut reader = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let mut buffer = vec![0; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut reader, &mut buffer)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                bytes += n as u64;
            }
        }
        Ok(LoadedDate {
            rows: 0,
            files: self.files.len() as u64,
            bytes,
            checksum: format!("{:032x}", hasher.digest128()),
        })
    }
}

/// The file a LOAD DATA statement asks for, and what streaming it found. The server names
/// the file it wants; only the one the loader is sending is ever opened.
#[derive(Default)]
struct Handoff {
    expected: Option<PathBuf>,
    streamed: Option<Result<Streamed>>,
}

/// A connection to the target, ready to stream files.
pub struct Loader {
    conn: Conn,
    handoff: Arc<Mutex<Handoff>>,
}

impl Loader {
    /// A loader on `conn`. The session speaks utf8mb4 and UTC, as the SQL files' own
    /// preamble sets for a client that runs them (`SET NAMES`, `SET TIME_ZONE` in
    /// version comments, which the reader skips): the dumps' TIMESTAMP values are UTC.
    pub fn new(mut conn: Conn) -> Result<Loader> {
        conn.query_drop("SET NAMES utf8mb4")?;
        conn.query_drop("SET time_zone = '+00:00'")?;
        let handoff = Arc::new(Mutex::new(Handoff::default()));
        let shared = handoff.clone();
        conn.set_local_infile_handler(Some(LocalInfileHandler::new(move |name, writer| {
            let mut handoff = shared.lock().expect("no panics while held");
            let expected = handoff.expected.take();
            let result = match expected {
                Some(path) if name == path.to_string_lossy().as_bytes() => {
                    let mut out = BufWriter::with_capacity(1 << 20, writer);
                    stream_rows(&path, &mut out).and_then(|s| Ok(out.flush().map(|()| s)?))
                }
                _ => Err(anyhow!(
                    "the server asked for the file {:?}, which is not the one being loaded",
                    String::from_utf8_lossy(name)
                )),
            };
            let failed = result.as_ref().err().map(|e| format!("{e:#}"));
            handoff.streamed = Some(result);
            match failed {
                Some(e) => Err(std::io::Error::other(e)),
                None => Ok(()),
            }
        })));
        Ok(Loader { conn, handoff })
    }

    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Loads the files of one date and records it, in one transaction; returns the rows
    /// loaded. On an error the transaction is rolled back: nothing of the date stays.
    pub fn load_date(
        &mut self,
        table: &str,
        date: &DateFiles,
        mut fingerprint: LoadedDate,
        on_file: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        self.conn.query_drop("START TRANSACTION")?;
        let loaded = self.load_files(table, date, on_file).and_then(|rows| {
            fault_point("rows-sent", &date.date);
            fingerprint.rows = rows;
            record::record(&mut self.conn, table, &date.date, &fingerprint)?;
            fault_point("record-written", &date.date);
            self.conn.query_drop("COMMIT")?;
            fault_point("committed", &date.date);
            Ok(rows)
        });
        if loaded.is_err() {
            // The connection may be gone (then the server rolls back by itself).
            let _ = self.conn.query_drop("ROLLBACK");
        }
        loaded.with_context(|| {
            format!(
                "loading the date {} failed; nothing of it stays in the table (its \
                 transaction was rolled back): run the same command again to load it",
                date.date
            )
        })
    }

    fn load_files(
        &mut self,
        table: &str,
        date: &DateFiles,
        on_file: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let mut rows = 0;
        for file in &date.files {
            let statements = match insert_head(file)? {
                Some(head) => {
                    if head.table != table {
                        bail!(
                            "{} inserts into `{}`, not into `{table}`: it was made for \
                             another table",
                            file.display(),
                            head.table
                        );
                    }
                    let streamed =
                        self.load_rows(file, table, &head.columns.unwrap_or_default())?;
                    rows += streamed.rows;
                    streamed.statements
                }
                None => stream_rows(file, &mut std::io::sink())?.statements,
            };
            for statement in statements {
                self.conn
                    .query_drop(&statement)
                    .with_context(|| format!("{}: a statement failed", file.display()))?;
            }
            on_file(std::fs::metadata(file).map_or(0, |m| m.len()));
        }
        Ok(rows)
    }

    /// Streams the rows of one file with LOAD DATA; every row must arrive without a warning
    /// (LOAD DATA LOCAL turns bad values into warnings where INSERT would fail).
    fn load_rows(&mut self, file: &Path, table: &str, columns: &[String]) -> Result<Streamed> {
        self.handoff.lock().expect("not poisoned").expected = Some(file.to_path_buf());
        let name = file.to_string_lossy();
        let sent = self.conn.query_drop(load_statement(&name, table, columns));
        let streamed = self.handoff.lock().expect("not poisoned").streamed.take();
        match (sent, streamed) {
            (_, Some(Err(e))) => Err(e.context(format!("cannot send {}", file.display()))),
            (Err(e), _) => Err(anyhow!(e).context(format!("loading {} failed", file.display()))),
            (Ok(()), None) => bail!("the server did not ask for {}", file.display()),
            (Ok(()), Some(Ok(streamed))) => {
                let warnings = self.conn.warnings();
                if warnings > 0 {
                    let shown: Vec<(String, u32, String)> =
                        self.conn.query("SHOW WARNINGS LIMIT 3")?;
                    let shown: Vec<String> = shown
                        .into_iter()
                        .map(|(_, code, text)| format!("{code}: {text}"))
                        .collect();
                    bail!(
                        "{}: the server warned {warnings} time(s) while loading it ({}); \
                         the table's columns do not take these values as they are",
                        file.display(),
                        shown.join("; ")
                    );
                }
                Ok(streamed)
            }
        }
    }
}

/// Fault injection for the tests of resumption: `MIGRATE_LOAD_FAULT=ACTION@POINT:DATE`
/// makes the loader, at that point of that date, kill itself with SIGKILL (`kill`) or wait
/// until the file `MIGRATE_LOAD_FAULT_FILE` is removed (`wait`; it is created first), so a
/// test can stop the server there. Unset, as in every real run, it costs one lookup.
fn fault_point(point: &str, date: &str) {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(fault) = FAULT.get_or_init(|| std::env::var("MIGRATE_LOAD_FAULT").ok()) else {
        return;
    };
    let Some((action, at)) = fault.split_once('@') else {
        return;
    };
    if at != format!("{point}:{date}") {
        return;
    }
    match action {
        // SAFETY: sends a signal to this process; no memory is touched.
        "kill" => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        },
        "wait" => {
            if let Some(file) = std::env::var_os("MIGRATE_LOAD_FAULT_FILE") {
                let file = PathBuf::from(file);
                let _ = std::fs::write(&file, b"waiting\n");
                while file.exists() {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        _ => {}
    }
}

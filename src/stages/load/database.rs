//! The target database: a connection, the target table's definition as the server shows
//! it, and the server-side lock that keeps two loads of one table apart.

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

pub use crate::values::database_url::DatabaseUrl;

/// Opens a connection to `url`.
pub fn connect(url: &DatabaseUrl) -> Result<Conn, ConnectError> {
    let mut opts = OptsBuilder::new()
        .user(Some(&url.user))
        .pass(url.password())
        .db_name(Some(&url.database))
        .ip_or_hostname(Some(&url.host))
        .tcp_port(url.port)
        .prefer_socket(false);
    if let Some(socket) = &url.socket {
        opts = opts.socket(Some(socket.to_string_lossy()));
    }
    Conn::new(opts).map_err(|e| ConnectError::of(e, url))
}

/// A connection that failed, sorted by what the user should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Wrong user, password or database: fix the command line (exit 2).
    #[error("{0}")]
    Refused(String),
    /// The server could not be reached or failed (exit 1).
    #[error("{0}")]
    Unreachable(String),
}

impl ConnectError {
    fn of(error: mysql::Error, url: &DatabaseUrl) -> ConnectError {
        match &error {
            mysql::Error::MySqlError(e) if matches!(e.code, 1044 | 1045 | 1698) => {
                ConnectError::Refused(format!(
                    "{url}: the server refused the user {:?} ({}): check the user and the \
                     password (in the URL, --password-file or MYSQL_PWD)",
                    url.user, e.message
                ))
            }
            mysql::Error::MySqlError(e) if e.code == 1049 => ConnectError::Refused(format!(
                "{url}: the server has no database {:?}: check the URL's database",
                url.database
            )),
            _ => ConnectError::Unreachable(format!("{url}: cannot connect: {error}")),
        }
    }
}

/// The table's `CREATE TABLE` as the server prints it; None when there is no such table.
pub fn show_create_table(conn: &mut Conn, table: &str) -> Result<Option<String>, mysql::Error> {
    match conn.query_first::<(String, String), _>(format!("SHOW CREATE TABLE {}", quote(table))) {
        Ok(row) => Ok(row.map(|(_, create)| create)),
        Err(mysql::Error::MySqlError(e)) if e.code == 1146 => Ok(None),
        Err(e) => Err(e),
    }
}

/// A name quoted for MySQL: backticks, doubled inside.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Another `migrate load` holds the table's lock: exit 75, try again later.
#[derive(Debug, thiserror::Error)]
#[error(
    "another `migrate load` is loading into {table} ({holder}); wait for it to finish, then \
     run this again"
)]
pub struct TableBusy {
    pub table: String,
    pub holder: String,
}

/// The server-side lock of one table (`GET_LOCK`), held as long as its connection lives:
/// it works across machines, and the server drops it when a killed loader's connection goes.
pub fn lock_table(conn: &mut Conn, database: &str, table: &str) -> anyhow::Result<()> {
    // GET_LOCK names are at most 64 characters: the table's name may be long, so hash it.
    let full = format!("{database}.{table}");
    let name = format!(
        "migrate-load-{:016x}",
        xxhash_rust::xxh3::xxh3_64(full.as_bytes())
    );
    let got: Option<Option<i64>> = conn.exec_first("SELECT GET_LOCK(?, 0)", (&name,))?;
    if got.flatten() == Some(1) {
        return Ok(());
    }
    let holder: Option<Option<u64>> = conn.exec_first("SELECT IS_USED_LOCK(?)", (&name,))?;
    let holder = match holder.flatten() {
        Some(id) => {
            let who: Option<(String, String, i64)> = conn.exec_first(
                "SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id,),
            )?;
            match who {
                Some((user, host, time)) => {
                    format!("connection {id} of {user}@{host}, for {time} s")
                }
                None => format!("connection {id}"),
            }
        }
        None => "a connection that has just let it go".into(),
    };
    Err(TableBusy {
        table: full,
        holder,
    }
    .into())
}

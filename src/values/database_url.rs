//! Where a target table lives: a `mysql://` URL and the password, which may come from the
//! URL, a file or `MYSQL_PWD`, and which is never printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the target table lives: `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, with
/// `?socket=PATH` for a Unix socket. The password is never printed (`Display` leaves it out).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    pub user: String,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    pub socket: Option<PathBuf>,
    pub database: String,
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mysql://{}@{}", self.user, self.host)?;
        if self.port != 3306 {
            write!(f, ":{}", self.port)?;
        }
        write!(f, "/{}", self.database)?;
        if let Some(socket) = &self.socket {
            write!(f, "?socket={}", socket.display())?;
        }
        Ok(())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl DatabaseUrl {
    /// Parses the URL form above; percent escapes are decoded in the user and password.
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let usage = || {
            format!(
                "--database {:?} is not a URL of the form \
                 mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?socket=PATH]",
                redact(url)
            )
        };
        let rest = (url.strip_prefix("mysql://"))
            .or_else(|| url.strip_prefix("mariadb://"))
            .ok_or_else(usage)?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = rest.split_once('/').ok_or_else(usage)?;
        let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(usage)?;
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(percent_decode(password)?)),
            None => (userinfo, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| format!("--database: the port {port:?} is not a number"))?,
            ),
            None => (hostport, 3306),
        };
        let mut socket = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("socket", path)) => socket = Some(PathBuf::from(percent_decode(path)?)),
                _ => {
                    return Err(format!(
                        "--database: unknown parameter {pair:?} (only socket=PATH)"
                    ))
                }
            }
        }
        if user.is_empty() || database.is_empty() || (host.is_empty() && socket.is_none()) {
            return Err(usage());
        }
        Ok(DatabaseUrl {
            user: percent_decode(user)?,
            password,
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host.into()
            },
            port,
            socket,
            database: percent_decode(database)?,
        })
    }

    /// The password from the first of: the URL, `password_file`, `MYSQL_PWD` (as the
    /// `mariadb` client reads it).
    pub fn with_password_from(mut self, password_file: Option<&Path>) -> Result<Self, String> {
        if self.password.is_none() {
            if let Some(path) = password_file {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read --password-file {}: {e}", path.display()))?;
                self.password = Some(text.trim_end_matches(['\n', '\r']).to_string());
            } else if let Ok(password) = std::env::var("MYSQL_PWD") {
                self.password = Some(password);
            }
        }
        Ok(self)
    }
}

impl DatabaseUrl {
    /// The password, when one was given.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("--database: a % in the URL is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "--database: the URL decodes to invalid UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print_without_the_password() {
        let url = DatabaseUrl::parse("mysql://epi:s%40cret@db.example:3307/epidata").unwrap();
        assert_eq!(
            (url.user.as_str(), url.host.as_str(), url.port),
            ("epi", "db.example", 3307)
        );
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(url.database, "epidata");
        assert_eq!(url.to_string(), "mysql://epi@db.example:3307/epidata");
        assert!(!format!("{url:?}").contains("cret"));

        let url = DatabaseUrl::parse("mysql://root@localhost/epidata?socket=/tmp/my.sock").unwrap();
        assert_eq!(url.socket.as_deref(), Some(Path::new("/tmp/my.sock")));
        assert_eq!(url.port, 3306);
        assert_eq!(url.password, None);
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        for bad in [
            "postgres://u@h/db",
            "mysql://h/db",
            "mysql://u@h",
            "mysql://u@h:port/db",
            "mysql://u@h/db?ssl=1",
            "mysql://u:p%zz@h/db",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
        }
        let err = DatabaseUrl::parse("mysql://u:hunter2@h").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_password_comes_from_the_url_first_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let url = DatabaseUrl::parse("mysql://u@h/db").unwrap();
        let url = url.with_password_from(Some(&file)).unwrap();
        assert_eq!(url.password.as_deref(), Some("from-file"));
        let url = DatabaseUrl::parse("mysql://u:in-url@h/db").unwrap();
        let url = url.with_password_from(Some(&file)).unwrap();
        assert_eq!(url.password.as_deref(), Some("in-url"));
    }
}

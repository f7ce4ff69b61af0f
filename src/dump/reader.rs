//! Streams a dump's statements: skips comments and statements we do not need, hands
//! `CREATE TABLE` and INSERT heads to `sqlparser`, and yields INSERT rows one tuple at a time,
//! so an INSERT of any length passes through a bounded window.

use std::io::Read;

use super::buffer::{Position, Window, WindowFull};
use super::schema::{parse_create_table, parse_insert_head, InsertHead, TableDef};
use super::values::{parse_tuple, Fields, Row, TupleError};

/// The longest statement head or single row the reader accepts.
pub const MAX_STATEMENT_BYTES: usize = 256 << 20;

/// What the reader found.
#[derive(Debug)]
pub enum Event<'a> {
    CreateTable(TableDef),
    /// An INSERT begins; its rows follow as `Row` events.
    Insert(InsertHead),
    Row(Row<'a>),
    /// Any other statement, without its `;`: only from a reader made `with_statements`.
    Statement(String),
}

/// An error at a place in the dump.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{position}: {message}")]
    Syntax { position: Position, message: String },
    #[error("{position}: {error}")]
    Io {
        position: Position,
        error: std::io::Error,
    },
}

impl DumpError {
    pub fn position(&self) -> Position {
        match self {
            DumpError::Syntax { position, .. } | DumpError::Io { position, .. } => *position,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BetweenStatements,
    /// Inside an INSERT's VALUES list, before a tuple.
    BeforeTuple,
    /// Inside an INSERT's VALUES list, after a tuple.
    AfterTuple,
}

pub struct DumpReader<R> {
    window: Window<R>,
    state: State,
    /// The last tuple's values, as places in the window.
    fields: Fields,
    /// The length of the last tuple parsed, which ends where the window's unread bytes start.
    tuple_len: usize,
    /// Whether statements other than INSERT and CREATE TABLE are handed out, not skipped.
    statements: bool,
}

/// Where a scan for the end of a statement (or of a comment) stopped.
enum Scan {
    /// Found: the index of the byte that ends it.
    At(usize),
    /// The buffered input ends first.
    NeedMore,
}

impl<R: Read> DumpReader<R> {
    pub fn new(reader: R) -> Self {
        Self::with_max_statement(reader, MAX_STATEMENT_BYTES)
    }

    pub fn with_max_statement(reader: R, max_statement: usize) -> Self {
        DumpReader {
            window: Window::new(reader, max_statement),
            state: State::BetweenStatements,
            fields: Fields::default(),
            tuple_len: 0,
            statements: false,
        }
    }

    /// Hands out every other statement as `Event::Statement` (migrate's own SQL output, whose
    /// UPDATEs `load` runs), instead of skipping it.
    pub fn with_statements(mut self) -> Self {
        self.statements = true;
        self
    }

    /// Position of the next unread byte: after a `Row` event, the end of that row.
    pub fn position(&self) -> Position {
        self.window.position(0)
    }

    /// The byte offset of `position`, without counting lines: cheap enough for every row.
    pub fn offset(&self) -> u64 {
        self.window.offset()
    }

    /// The next event, or None at the clean end of the dump.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, DumpError> {
        loop {
            match self.state {
                State::BetweenStatements => {
                    if !self.skip_between_statements()? {
                        return Ok(None);
                    }
                    if let Some(event) = self.read_statement()? {
                        return Ok(Some(event));
                    }
                }
                State::BeforeTuple => {
                    self.parse_next_tuple()?;
                    self.state = State::AfterTuple;
                    let tuple = self.window.consumed(self.tuple_len);
                    return Ok(Some(Event::Row(self.fields.row(tuple))));
                }
                State::AfterTuple => self.after_tuple()?,
            }
        }
    }

    fn syntax(&self, ahead: usize, message: impl Into<String>) -> DumpError {
        DumpError::Syntax {
            position: self.window.position(ahead),
            message: message.into(),
        }
    }

    fn fill(&mut self, what: &str) -> Result<bool, DumpError> {
        self.window.fill_more().map_err(|error| {
            if error.get_ref().is_some_and(|e| e.is::<WindowFull>()) {
                self.syntax(0, format!("{error} ({what}); is this file a SQL dump?"))
            } else {
                DumpError::Io {
                    position: self.window.position(self.window.bytes().len()),
                    error,
                }
            }
        })
    }

    fn truncated(&self, what: &str) -> DumpError {
        self.syntax(
            0,
            format!("the dump ends inside {what}: the file is truncated or not a complete dump"),
        )
    }

    /// Skips white space, comments and empty statements; false at the end of the input.
    fn skip_between_statements(&mut self) -> Result<bool, DumpError> {
        loop {
            let bytes = self.window.bytes();
            let mut pos = 0;
            while pos < bytes.len() && (bytes[pos].is_ascii_whitespace() || bytes[pos] == b';') {
                pos += 1;
            }
            if pos > 0 {
                self.window.consume(pos);
                continue;
            }
            if bytes.len() < 2 && !self.window.at_eof() {
                if !self.fill("between statements")? && self.window.bytes().is_empty() {
                    return Ok(false);
                }
                continue;
            }
            let bytes = self.window.bytes();
            if bytes.is_empty() {
                return Ok(false);
            }
            let comment_end = if bytes.starts_with(b"/*") {
                find(bytes, 2, b"*/").map(|i| i + 2)
            } else if bytes.starts_with(b"--") || bytes[0] == b'#' {
                memchr::memchr(b'\n', bytes).map(|i| i + 1)
            } else {
                return Ok(true);
            };
            match comment_end {
                Some(end) => self.window.consume(end),
                None if self.window.at_eof() => {
                    if bytes[0] == b'/' {
                        return Err(self.truncated("a /* comment */"));
                    }
                    let len = bytes.len();
                    self.window.consume(len);
                }
                None => {
                    self.fill("a comment")?;
                }
            }
        }
    }

    /// Reads one statement: an INSERT head switches to row mode and is returned, a
    /// `CREATE TABLE` is parsed and returned, anything else is skipped (None).
    fn read_statement(&mut self) -> Result<Option<Event<'static>>, DumpError> {
        let is_insert = loop {
            let bytes = self.window.bytes();
            let word_len = bytes
                .iter()
                .position(|b| !b.is_ascii_alphabetic())
                .unwrap_or(bytes.len());
            if word_len < bytes.len() || self.window.at_eof() {
                let word = &bytes[..word_len];
                break word.eq_ignore_ascii_case(b"INSERT")
                    || word.eq_ignore_ascii_case(b"REPLACE");
            }
            self.fill("a statement")?;
        };
        loop {
            let bytes = self.window.bytes();
            match scan_statement(bytes, is_insert) {
                Scan::At(end) => {
                    let event = if is_insert {
                        if bytes[end] == b';' {
                            return Err(self.syntax(0, "an INSERT without VALUES is not supported"));
                        }
                        let text = std::str::from_utf8(&bytes[..end]).map_err(|_| {
                            self.syntax(0, "an INSERT statement is not valid UTF-8")
                        })?;
                        let head = parse_insert_head(text.trim_end()).map_err(|e| {
                            self.syntax(0, format!("cannot parse the INSERT statement: {e}"))
                        })?;
                        // Consume the head and the VALUES keyword itself.
                        self.window.consume(end + b"VALUES".len());
                        self.state = State::BeforeTuple;
                        Some(Event::Insert(head))
                    } else {
                        // Only names and types are read from other statements; a binary
                        // DEFAULT may hold bytes that are not UTF-8 (MySQL 8 writes
                        // `DEFAULT _binary '…'` with the raw bytes).
                        let text = String::from_utf8_lossy(&bytes[..end]);
                        let event = create_table_event(&text).map_err(|e| {
                            self.syntax(0, format!("cannot parse CREATE TABLE: {e}"))
                        })?;
                        let event = match event {
                            None if self.statements => {
                                Some(Event::Statement(text.trim_end().to_string()))
                            }
                            event => event,
                        };
                        self.window.consume(end + 1);
                        event
                    };
                    return Ok(event);
                }
                Scan::NeedMore => {
                    if !self.fill("a statement")? {
                        return Err(self.truncated("a statement"));
                    }
                }
            }
        }
    }

    fn parse_next_tuple(&mut self) -> Result<(), DumpError> {
        loop {
            let bytes = self.window.bytes();
            let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
            match start {
                Some(start) if bytes[start] != b'(' => {
                    return Err(self.syntax(start, "expected '(' to start a row of values"));
                }
                Some(start) => match parse_tuple(&bytes[start..], &mut self.fields) {
                    Ok(used) => {
                        self.window.consume(start + used);
                        self.tuple_len = used;
                        return Ok(());
                    }
                    Err(TupleError::Invalid { at, what }) => {
                        return Err(self.syntax(start + at, what));
                    }
                    Err(TupleError::Incomplete) => {}
                },
                None => {}
            }
            if !self.fill("a row of values")? {
                return Err(self.truncated("a row of values"));
            }
        }
    }

    /// After a tuple: `,` means another tuple follows, `;` ends the INSERT.
    fn after_tuple(&mut self) -> Result<(), DumpError> {
        loop {
            let bytes = self.window.bytes();
            match bytes.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) if bytes[i] == b',' => {
                    self.window.consume(i + 1);
                    self.state = State::BeforeTuple;
                    return Ok(());
                }
                Some(i) if bytes[i] == b';' => {
                    self.window.consume(i + 1);
                    self.state = State::BetweenStatements;
                    return Ok(());
                }
                // A word cut by the end of the read bytes: read on before judging it
                // (found by fuzzing).
                Some(i) if bytes.len() < i + 3 && !self.window.at_eof() => {
                    self.fill("an INSERT")?;
                }
                // `ON DUPLICATE KEY UPDATE ...` ends the statement (migrate writes it).
                Some(i) if starts_keyword(bytes, i, b"ON") => {
                    match scan_statement(&bytes[i..], false) {
                        Scan::At(end) => {
                            self.window.consume(i + end + 1);
                            self.state = State::BetweenStatements;
                            return Ok(());
                        }
                        Scan::NeedMore => {
                            if !self.fill("an INSERT")? {
                                return Err(self.truncated("an INSERT statement (no closing ';')"));
                            }
                        }
                    }
                }
                Some(i) => {
                    return Err(self.syntax(i, "expected ',' or ';' after a row of values"));
                }
                None => {
                    if !self.fill("an INSERT")? {
                        return Err(self.truncated("an INSERT statement (no closing ';')"));
                    }
                }
            }
        }
    }
}

fn create_table_event(text: &str) -> Result<Option<Event<'static>>, String> {
    let mut words = text.split_ascii_whitespace();
    let is_create_table = words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("CREATE"))
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("TABLE"));
    if is_create_table {
        Ok(Some(Event::CreateTable(parse_create_table(text)?)))
    } else {
        Ok(None)
    }
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&haystack[from.min(haystack.len())..], needle).map(|i| i + from)
}

/// Finds the end of the statement at the start of `bytes`: its top-level `;`, or, for an
/// INSERT, the start of its `VALUES` keyword. Quotes, backticks and comments are skipped over.
fn scan_statement(bytes: &[u8], want_values: bool) -> Scan {
    let mut pos = 0;
    while pos < bytes.len() {
        match bytes[pos] {
            b';' => return Scan::At(pos),
            quote @ (b'\'' | b'"' | b'`') => match skip_quoted(bytes, pos, quote) {
                Some(end) => pos = end,
                None => return Scan::NeedMore,
            },
            b'/' if bytes.get(pos + 1) == Some(&b'*') => match find(bytes, pos + 2, b"*/") {
                Some(end) => pos = end + 2,
                None => return Scan::NeedMore,
            },
            b'V' | b'v' if want_values && starts_keyword(bytes, pos, b"VALUES") => {
                return match bytes.get(pos + 6) {
                    None => Scan::NeedMore,
                    Some(_) => Scan::At(pos),
                };
            }
            _ => pos += 1,
        }
    }
    Scan::NeedMore
}

/// Whether the keyword starts at `pos` as a whole word (the byte after it is checked too).
fn starts_keyword(bytes: &[u8], pos: usize, keyword: &[u8]) -> bool {
    let is_word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let before_ok = pos == 0 || !is_word(&bytes[pos - 1]);
    let end = pos + keyword.len();
    before_ok
        && bytes.len() >= end
        && bytes[pos..end].eq_ignore_ascii_case(keyword)
        && bytes.get(end).is_none_or(|b| !is_word(b))
}

/// The index just past the quoted text opening at `open`, or None if it ends first.
fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> Option<usize> {
    let mut pos = open + 1;
    loop {
        let found = if quote == b'`' {
            memchr::memchr(quote, &bytes[pos..])?
        } else {
            memchr::memchr2(quote, b'\\', &bytes[pos..])?
        };
        pos += found;
        if bytes[pos] == b'\\' {
            // The escaped byte may not have been read yet (found by fuzzing).
            pos += 2;
            if pos >= bytes.len() {
                return None;
            }
            continue;
        }
        match bytes.get(pos + 1) {
            None => return None,
            Some(&next) if next == quote => pos += 2,
            Some(_) => return Some(pos + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a whole dump given as text into a readable transcript of its events.
    fn events(dump: &str, max: usize) -> Result<Vec<String>, DumpError> {
        events_from(dump.as_bytes(), max)
    }

    /// Hands out a few bytes per read, so every token gets split across refills.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn events_from(input: impl Read, max: usize) -> Result<Vec<String>, DumpError> {
        let mut reader = DumpReader::with_max_statement(input, max);
        let mut out = Vec::new();
        while let Some(event) = reader.next_event()? {
            out.push(match event {
                Event::CreateTable(t) => {
                    let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
                    format!("create {} {}", t.name, names.join(","))
                }
                Event::Insert(head) => format!("insert {} {:?}", head.table, head.columns),
                Event::Statement(text) => format!("statement {text}"),
                Event::Row(row) => {
                    let fields: Vec<_> = row
                        .iter()
                        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                        .collect();
                    format!("row {}", fields.join("|"))
                }
            });
        }
        Ok(out)
    }

    const DUMP: &str = "/*M!999999\\- enable the sandbox mode */ \n\
        -- MariaDB dump 10.19\n\
        /*!40101 SET NAMES utf8mb4 */;\n\
        DROP TABLE IF EXISTS `t`;\n\
        CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `s` varchar(9) COMMENT 'x;y',\n  `v` double\n) ENGINE=InnoDB;\n\
        LOCK TABLES `t` WRITE;\n\
        /*!40000 ALTER TABLE `t` DISABLE KEYS */;\n\
        INSERT INTO `t` VALUES (1,'a;b',1.5),\n(2,'),(',NULL);\n\
        INSERT INTO `t` (`id`, `s`, `v`) VALUES (3,'it\\'s',-1e-16);\n\
        /*!40000 ALTER TABLE `t` ENABLE KEYS */;\n\
        UNLOCK TABLES;\n";

    #[test]
    fn reads_tables_inserts_and_rows() {
        let expected = vec![
            "create t id,s,v",
            "insert t None",
            "row 1|a;b|1.5",
            "row 2|),(|",
            "insert t Some([\"id\", \"s\", \"v\"])",
            "row 3|it's|-1e-16",
        ];
        assert_eq!(events(DUMP, MAX_STATEMENT_BYTES).unwrap(), expected);
    }

    #[test]
    fn reads_split_anywhere_give_the_same_events() {
        let small = events_from(Trickle(DUMP.as_bytes()), MAX_STATEMENT_BYTES).unwrap();
        assert_eq!(small, events(DUMP, MAX_STATEMENT_BYTES).unwrap());
    }

    #[test]
    fn truncation_is_an_error_with_a_position() {
        for cut in [
            DUMP.len() - 60,
            DUMP.find("(2,").unwrap() + 4,
            DUMP.len() - 120,
        ] {
            let err = events(&DUMP[..cut], MAX_STATEMENT_BYTES).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{cut}: {err}");
        }
    }

    #[test]
    fn on_duplicate_key_update_ends_an_insert() {
        let dump = "INSERT INTO `t` (`a`,`b`) VALUES (1,'x'),\n(2,';')\n\
                    ON DUPLICATE KEY UPDATE `b`=VALUES(`b`);\nINSERT INTO `t` VALUES (3,'y');";
        let rows: Vec<String> = events(dump, MAX_STATEMENT_BYTES)
            .unwrap()
            .into_iter()
            .filter(|e| e.starts_with("row"))
            .collect();
        assert_eq!(rows, ["row 1|x", "row 2|;", "row 3|y"]);
    }

    #[test]
    fn a_backslash_at_the_end_of_the_read_bytes_asks_for_more() {
        // Regression (fuzzing): a statement cut right after a backslash inside quotes.
        assert!(matches!(
            scan_statement(b"CREATE TABLE t (a int COMMENT 'x\\", false),
            Scan::NeedMore
        ));
        assert!(matches!(
            scan_statement(b"CREATE TABLE t (a int COMMENT 'x\\'y');", false),
            Scan::At(37)
        ));
        let err = events("CREATE TABLE t (a int COMMENT 'x\\", MAX_STATEMENT_BYTES).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn errors_do_not_depend_on_how_the_bytes_arrive() {
        // Regressions (fuzzing): words cut at the end of the read bytes.
        for dump in [
            " \nINSERT I  VALUES (1)\nON",
            "INSERT INTO t VALUES (1) O",
            "INSERT INTO t VALUES (1)\nONE;",
        ] {
            let whole = events(dump, MAX_STATEMENT_BYTES).unwrap_err();
            let pieces = events_from(Trickle(dump.as_bytes()), MAX_STATEMENT_BYTES).unwrap_err();
            assert_eq!(whole.to_string(), pieces.to_string(), "{dump:?}");
        }
    }

    #[test]
    fn garbage_between_rows_is_an_error() {
        let err = events("INSERT INTO t VALUES (1) (2);", MAX_STATEMENT_BYTES).unwrap_err();
        assert_eq!(err.position().offset, 25);
        assert!(err.to_string().contains("expected ',' or ';'"));
    }

    #[test]
    fn a_row_longer_than_the_limit_is_refused() {
        let long = format!("INSERT INTO t VALUES ('{}');", "x".repeat(5 << 20));
        let err = events(&long, 2 << 20).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn rows_of_any_count_stream_through() {
        let mut dump = String::from("INSERT INTO t VALUES ");
        for i in 0..200_000 {
            dump.push_str(&format!("({i},'row {i}'),"));
        }
        dump.pop();
        dump.push(';');
        let count = events(&dump, 2 << 20).unwrap().len();
        assert_eq!(count, 200_001);
    }
}

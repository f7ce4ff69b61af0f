//! The fast path: one `( ... )` tuple of an INSERT's VALUES list, scanned byte by byte with
//! MySQL's quoting and escapes. `sqlparser` would do the same ~40x slower; it stays the oracle
//! in the differential tests.

use super::literals::{self, Literal, Token};
use super::swar;

/// What a field was written as in the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// The keyword `NULL`.
    Null,
    /// A quoted string, unescaped (an introducer such as `_utf8mb4` before it is dropped).
    Quoted,
    /// A binary string, decoded to its bytes: a hex (`0x00FF`, `X'00FF'`) or bit (`0b1`,
    /// `b'1'`) literal, or a literal with the `_binary` introducer (`_binary '\0'`).
    Binary,
    /// An unquoted token: a number such as `-1.5e-3`.
    Bare,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    kind: FieldKind,
    start: usize,
    end: usize,
    /// The bytes are in `Fields::data` (unescaped or decoded), not in the tuple as written.
    copied: bool,
}

/// One row's fields, as places in the tuple's bytes: most values are read where the dump
/// spells them; only those whose bytes differ from their spelling (strings with escapes, hex
/// and bit literals) are copied, into one reused buffer. Copying every value cost more than
/// a tenth of extraction (many small `memcpy` calls).
#[derive(Debug, Default)]
pub struct Fields {
    data: Vec<u8>,
    fields: Vec<Field>,
}

impl Fields {
    /// The row these fields make of `input`, the tuple they were parsed from.
    pub fn row<'a>(&'a self, input: &'a [u8]) -> Row<'a> {
        Row {
            fields: self,
            input,
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.fields.clear();
    }

    /// A value whose bytes are the input's `start..end`, as written.
    #[inline]
    fn push_spelled(&mut self, kind: FieldKind, start: usize, end: usize) {
        self.fields.push(Field {
            kind,
            start,
            end,
            copied: false,
        });
    }

    /// A value whose bytes are `data[start..]`, written there by the caller.
    fn push_copied(&mut self, kind: FieldKind, start: usize) {
        self.fields.push(Field {
            kind,
            start,
            end: self.data.len(),
            copied: true,
        });
    }
}

/// One row of values: the fields of a tuple, and the tuple's bytes they point into.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    fields: &'a Fields,
    input: &'a [u8],
}

/// The values, not where they sit: a row reads the same however the bytes arrived.
impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values = self
            .iter()
            .map(|(kind, bytes)| (kind, String::from_utf8_lossy(bytes)));
        f.debug_list().entries(values).finish()
    }
}

impl<'a> Row<'a> {
    pub fn len(&self) -> usize {
        self.fields.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.fields.is_empty()
    }

    /// The kind and the (unescaped) bytes of field `i`.
    #[inline]
    pub fn get(&self, i: usize) -> (FieldKind, &'a [u8]) {
        let field = self.fields.fields[i];
        let bytes = if field.copied {
            &self.fields.data[field.start..field.end]
        } else {
            &self.input[field.start..field.end]
        };
        (field.kind, bytes)
    }

    /// True when every byte of every field is ASCII (so every field is valid UTF-8): the
    /// tuple as written is, and so are the copied values.
    pub fn is_ascii(&self) -> bool {
        swar::is_ascii(self.input) && swar::is_ascii(&self.fields.data)
    }

    pub fn iter(&self) -> impl Iterator<Item = (FieldKind, &'a [u8])> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum TupleError {
    /// The input ends inside the tuple: read more and try again.
    Incomplete,
    /// The tuple is malformed at this byte offset into the input.
    Invalid { at: usize, what: &'static str },
}

#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses the tuple at the start of `input` (which must begin with `(`) into `row`, and
/// returns how many bytes it spans, closing parenthesis included: `row.row(&input[..used])`
/// is the row.
pub fn parse_tuple(input: &[u8], row: &mut Fields) -> Result<usize, TupleError> {
    debug_assert_eq!(input.first(), Some(&b'('));
    row.clear();
    let mut pos = skip_space(input, 1)?;
    if input[pos] == b')' {
        return Ok(pos + 1);
    }
    loop {
        pos = match input[pos] {
            quote @ (b'\'' | b'"') => parse_quoted(input, pos, quote, FieldKind::Quoted, row)?,
            _ => parse_unquoted(input, pos, row)?,
        };
        // Dumps write no spaces between values: a comma and then the next value, mostly.
        if input.get(pos) == Some(&b',') && input.get(pos + 1).is_some_and(|&b| !is_space(b)) {
            pos += 1;
            continue;
        }
        pos = skip_space(input, pos)?;
        match input[pos] {
            b',' => pos = skip_space(input, pos + 1)?,
            b')' => return Ok(pos + 1),
            _ => {
                return Err(TupleError::Invalid {
                    at: pos,
                    what: "expected ',' or ')' after a value",
                })
            }
        }
    }
}

/// Index of the first non-space byte at or after `pos`; there must be one.
#[inline]
fn skip_space(input: &[u8], mut pos: usize) -> Result<usize, TupleError> {
    while pos < input.len() && is_space(input[pos]) {
        pos += 1;
    }
    if pos == input.len() {
        Err(TupleError::Incomplete)
    } else {
        Ok(pos)
    }
}

/// The string opening at `open` becomes a field of `kind`: read in place, or unescaped into
/// the row's data when it holds escapes. Returns the index just past its closing quote.
/// Inlined: most rows have several strings, and the call's saving and restoring of
/// registers were 7% of the scanner's instructions.
#[inline(always)]
fn parse_quoted(
    input: &[u8],
    open: usize,
    quote: u8,
    kind: FieldKind,
    row: &mut Fields,
) -> Result<usize, TupleError> {
    let start = open + 1;
    let found = find_quote_or_escape(input, start, quote).ok_or(TupleError::Incomplete)?;
    let next = *input.get(found + 1).ok_or(TupleError::Incomplete)?;
    if input[found] == quote && next != quote {
        row.push_spelled(kind, start, found);
        return Ok(found + 1);
    }
    let copied = row.data.len();
    row.data.extend_from_slice(&input[start..found]);
    let mut pos = found;
    loop {
        let next = *input.get(pos + 1).ok_or(TupleError::Incomplete)?;
        if input[pos] == b'\\' {
            row.data.extend_from_slice(unescape(next));
            pos += 2;
        } else if next == quote {
            // A doubled quote stands for one quote character.
            row.data.push(quote);
            pos += 2;
        } else {
            row.push_copied(kind, copied);
            return Ok(pos + 1);
        }
        let found = find_quote_or_escape(input, pos, quote).ok_or(TupleError::Incomplete)?;
        row.data.extend_from_slice(&input[pos..found]);
        pos = found;
    }
}

/// The index of the first `quote` or backslash at or after `from`: eight bytes a step over
/// short strings (most of a dump's), `memchr2` once a string runs long.
#[inline]
fn find_quote_or_escape(input: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut at = from;
    let short = input.len().min(from + 32);
    while at + 8 <= short {
        let word = swar::word_at(input, at);
        let mask = swar::equal_to(word, quote) | swar::equal_to(word, b'\\');
        if mask != 0 {
            return Some(at + swar::first(mask));
        }
        at += 8;
    }
    memchr::memchr2(quote, b'\\', &input[at..]).map(|i| at + i)
}

/// MySQL's backslash escapes; `\%` and `\_` keep their backslash, any other escaped byte
/// stands for itself.
#[inline]
fn unescape(escaped: u8) -> &'static [u8] {
    match escaped {
        b'0' => b"\0",
        b'b' => b"\x08",
        b'n' => b"\n",
        b'r' => b"\r",
        b't' => b"\t",
        b'Z' => b"\x1a",
        b'%' => b"\\%",
        b'_' => b"\\_",
        other => std::slice::from_ref(&BYTES[other as usize]),
    }
}

static BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = i as u8;
        i += 1;
    }
    table
};

/// The bytes an unquoted value ends at: its delimiters, and those it may not contain.
static BARE_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let stops = b",) \t\r\n('\"`;";
    let mut i = 0;
    while i < stops.len() {
        table[stops[i] as usize] = true;
        i += 1;
    }
    table
};

/// An unquoted value: `NULL`, a number, a hex or bit literal, or an introduced literal.
fn parse_unquoted(input: &[u8], start: usize, row: &mut Fields) -> Result<usize, TupleError> {
    let pos = token_end(input, start)?;
    let token = &input[start..pos];
    if is_plain_number(token) && matches!(input[pos], b',' | b')') {
        row.push_spelled(FieldKind::Bare, start, pos);
        return Ok(pos);
    }
    match literals::classify(token, input[pos]) {
        Token::Introducer => {
            let kind = if literals::is_binary_introducer(token) {
                FieldKind::Binary
            } else {
                FieldKind::Quoted
            };
            return parse_introduced(input, pos, kind, row);
        }
        Token::Literal(literal) => {
            let copied = row.data.len();
            let end = parse_binary_literal(input, start, pos, literal, row)?;
            row.push_copied(FieldKind::Binary, copied);
            return Ok(end);
        }
        Token::Other => {}
    }
    if matches!(input[pos], b'(' | b'\'' | b'"' | b'`' | b';') {
        return Err(TupleError::Invalid {
            at: pos,
            what: "unexpected character in an unquoted value",
        });
    }
    if token.is_empty() {
        return Err(TupleError::Invalid {
            at: start,
            what: "missing value",
        });
    }
    if token.eq_ignore_ascii_case(b"NULL") {
        row.push_spelled(FieldKind::Null, pos, pos);
    } else {
        row.push_spelled(FieldKind::Bare, start, pos);
    }
    Ok(pos)
}

/// True for a token that can only be a number, the common case of an unquoted value: it
/// starts with a digit or `-`, and not with the `0x` or `0b` of a literal. (What else it
/// holds is for the column's type to judge.)
#[inline]
fn is_plain_number(token: &[u8]) -> bool {
    match token {
        [b'0', b'x' | b'b', ..] => false,
        [first, ..] => first.is_ascii_digit() || *first == b'-',
        [] => false,
    }
}

/// The index of the byte that ends the unquoted token starting at `start`. Eight bytes a
/// step: every stop byte is below `+` or one of `,` `;` `` ` ``, and no byte of a number is.
#[inline]
fn token_end(input: &[u8], start: usize) -> Result<usize, TupleError> {
    let mut at = start;
    while at + 8 <= input.len() {
        let word = swar::word_at(input, at);
        let mask = swar::below(word, b'+')
            | swar::equal_to(word, b',')
            | swar::equal_to(word, b';')
            | swar::equal_to(word, b'`');
        if mask != 0 {
            let found = at + swar::first(mask);
            if BARE_STOP[input[found] as usize] {
                return Ok(found);
            }
            // A byte below `+` that ends nothing (`!`, `#`…): on byte by byte.
            at = found;
            break;
        }
        at += 8;
    }
    match input[at..].iter().position(|&b| BARE_STOP[b as usize]) {
        Some(length) => Ok(at + length),
        None => Err(TupleError::Incomplete),
    }
}

/// The literal after a character set introducer that ends at `after` (spaces may come
/// between), a field of `kind`: a quoted string, or a hex or bit literal.
fn parse_introduced(
    input: &[u8],
    after: usize,
    kind: FieldKind,
    row: &mut Fields,
) -> Result<usize, TupleError> {
    let start = skip_space(input, after)?;
    if let quote @ (b'\'' | b'"') = input[start] {
        return parse_quoted(input, start, quote, kind, row);
    }
    let pos = token_end(input, start)?;
    match literals::classify(&input[start..pos], input[pos]) {
        Token::Literal(literal) => {
            let copied = row.data.len();
            let end = parse_binary_literal(input, start, pos, literal, row)?;
            row.push_copied(kind, copied);
            Ok(end)
        }
        Token::Introducer | Token::Other => Err(TupleError::Invalid {
            at: start,
            what: "a character set introducer (such as _binary) must be followed by a \
                   quoted string or a hex or bit literal",
        }),
    }
}

/// A hex or bit literal whose leading token spans `start..pos` (`0x…`, `0b…`, or the `X`
/// or `b` before a quote): its bytes go to the row's data.
fn parse_binary_literal(
    input: &[u8],
    start: usize,
    pos: usize,
    literal: Literal,
    row: &mut Fields,
) -> Result<usize, TupleError> {
    let token = &input[start..pos];
    let invalid = |at: usize, what: &'static str| TupleError::Invalid { at, what };
    let bad_digit = |offset: usize| move |e: literals::BadDigit| invalid(offset + e.at, e.what);
    match literal {
        Literal::Hex | Literal::Bits => {
            let digits = &token[2..];
            if digits.is_empty() {
                return Err(invalid(pos, "a 0x or 0b literal needs at least one digit"));
            }
            if matches!(input[pos], b'(' | b'\'' | b'"' | b'`' | b';') {
                return Err(invalid(pos, "unexpected character in an unquoted value"));
            }
            let pushed = if literal == Literal::Hex {
                literals::push_hex(digits, &mut row.data)
            } else {
                literals::push_bits(digits, &mut row.data)
            };
            pushed.map_err(bad_digit(start + 2))?;
            Ok(pos)
        }
        Literal::QuotedHex | Literal::QuotedBits => {
            let is_hex = literal == Literal::QuotedHex;
            let is_digit: fn(&u8) -> bool = if is_hex {
                u8::is_ascii_hexdigit
            } else {
                |b| matches!(b, b'0' | b'1')
            };
            let open = pos + 1;
            let close = match literals::quoted_digits_end(input, open, is_digit) {
                Ok(Some(close)) => close,
                Ok(None) => return Err(TupleError::Incomplete),
                Err(at) if is_hex => {
                    return Err(invalid(
                        at,
                        "a hex literal holds only the digits 0-9 and A-F",
                    ))
                }
                Err(at) => return Err(invalid(at, "a bit literal holds only the digits 0 and 1")),
            };
            let digits = &input[open..close];
            if is_hex {
                if digits.len() % 2 == 1 {
                    return Err(invalid(
                        close,
                        "an X'…' literal needs an even number of digits",
                    ));
                }
                literals::push_hex(digits, &mut row.data).map_err(bad_digit(open))?;
            } else {
                literals::push_bits(digits, &mut row.data).map_err(bad_digit(open))?;
            }
            Ok(close + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Result<(usize, Vec<(FieldKind, String)>), TupleError> {
        let mut fields = Fields::default();
        let used = parse_tuple(input.as_bytes(), &mut fields)?;
        let fields = (fields.row(&input.as_bytes()[..used]).iter())
            .map(|(kind, bytes)| (kind, String::from_utf8_lossy(bytes).into_owned()))
            .collect();
        Ok((used, fields))
    }

    fn q(s: &str) -> (FieldKind, String) {
        (FieldKind::Quoted, s.to_string())
    }

    fn b(s: &str) -> (FieldKind, String) {
        (FieldKind::Bare, s.to_string())
    }

    #[test]
    fn numbers_strings_and_null() {
        let (used, fields) = parse("(1,'fb-survey',NULL,-2.5e-16,'01001')").unwrap();
        assert_eq!(used, 37);
        assert_eq!(
            fields,
            vec![
                b("1"),
                q("fb-survey"),
                (FieldKind::Null, String::new()),
                b("-2.5e-16"),
                q("01001")
            ]
        );
    }

    #[test]
    fn null_keyword_is_not_the_string_null() {
        let (_, fields) = parse("(NULL,'NULL',null)").unwrap();
        assert_eq!(fields[0].0, FieldKind::Null);
        assert_eq!(fields[1], q("NULL"));
        assert_eq!(fields[2].0, FieldKind::Null);
    }

    #[test]
    fn escapes_and_separators_inside_strings() {
        let (_, fields) =
            parse(r#"('it\'s','a\\b','x\ny','),(','q\"','n\0z','1\Z','d''q','\%\_')"#).unwrap();
        assert_eq!(
            fields,
            vec![
                q("it's"),
                q("a\\b"),
                q("x\ny"),
                q("),("),
                q("q\""),
                q("n\0z"),
                q("1\x1a"),
                q("d'q"),
                q("\\%\\_"),
            ]
        );
    }

    #[test]
    fn spaces_and_line_breaks_between_values() {
        let (used, fields) = parse("( 1 ,\r\n 'a' )rest").unwrap();
        assert_eq!(used, 13);
        assert_eq!(fields, vec![b("1"), q("a")]);
    }

    #[test]
    fn empty_tuple_and_empty_string() {
        assert_eq!(parse("()").unwrap(), (2, vec![]));
        assert_eq!(parse("('')").unwrap().1, vec![q("")]);
    }

    #[test]
    fn incomplete_input_asks_for_more() {
        for cut in ["(", "(1", "(1,", "('abc", "('abc'", "('a\\", "(1,'x')"] {
            let whole = cut.len() == 7;
            let result = parse(cut);
            if whole {
                assert!(result.is_ok());
            } else {
                assert_eq!(result.unwrap_err(), TupleError::Incomplete, "{cut:?}");
            }
        }
    }

    fn bin(bytes: &[u8]) -> (FieldKind, Vec<u8>) {
        (FieldKind::Binary, bytes.to_vec())
    }

    fn parse_bytes(input: &[u8]) -> Result<Vec<(FieldKind, Vec<u8>)>, TupleError> {
        let mut fields = Fields::default();
        let used = parse_tuple(input, &mut fields)?;
        assert_eq!(used, input.len(), "{:?}", String::from_utf8_lossy(input));
        let row = fields.row(input);
        Ok(row.iter().map(|(k, b)| (k, b.to_vec())).collect())
    }

    // Expected bytes as MariaDB 10.11's HEX() gives them for the same literals.
    const BINARY_FORMS: &[u8] = b"(_binary '\\0',_binary'\xff\\'',0x00FF,0xF,X'00ff',x'',\
        b'1000001',B'',0b000000001,_binary 0x41,_BINARY X'4142',_binary\n b'1',\
        _utf8mb4'\xc3\xa9',_latin1 0x41,_binary \"d\"\"q\")";

    #[test]
    fn binary_literals_and_introducers() {
        let fields = parse_bytes(BINARY_FORMS).unwrap();
        assert_eq!(
            fields,
            vec![
                bin(b"\0"),
                bin(b"\xff'"),
                bin(&[0x00, 0xFF]),
                bin(&[0x0F]),
                bin(&[0x00, 0xFF]),
                bin(b""),
                bin(b"A"),
                bin(b""),
                bin(&[0x00, 0x01]),
                bin(b"A"),
                bin(b"AB"),
                bin(&[0x01]),
                (FieldKind::Quoted, "é".as_bytes().to_vec()),
                (FieldKind::Quoted, b"A".to_vec()),
                bin(b"d\"q"),
            ]
        );
    }

    #[test]
    fn binary_literals_cut_anywhere_ask_for_more() {
        for cut in 1..BINARY_FORMS.len() {
            let mut row = Fields::default();
            assert_eq!(
                parse_tuple(&BINARY_FORMS[..cut], &mut row),
                Err(TupleError::Incomplete),
                "cut after {:?}",
                String::from_utf8_lossy(&BINARY_FORMS[..cut])
            );
        }
    }

    #[test]
    fn malformed_binary_literals_are_rejected_where_they_go_wrong() {
        for (input, at) in [
            ("(X'0')", 4),
            ("(X'4G')", 4),
            ("(b'102')", 5),
            ("(0x)", 3),
            ("(0xZZ)", 3),
            ("(0x1G)", 4),
            ("(0b12)", 4),
            ("(0x41'a')", 5),
            ("(_binary ,1)", 9),
            ("(_binary NULL)", 9),
            ("(_binary 12)", 9),
        ] {
            match parse(input) {
                Err(TupleError::Invalid { at: found, .. }) => assert_eq!(found, at, "{input}"),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_tuples_are_rejected_with_a_position() {
        assert_eq!(
            parse("(1 2)").unwrap_err(),
            TupleError::Invalid {
                at: 3,
                what: "expected ',' or ')' after a value"
            }
        );
        assert!(matches!(
            parse("(1,,2)").unwrap_err(),
            TupleError::Invalid { at: 3, .. }
        ));
        assert!(matches!(
            parse("(1'a')").unwrap_err(),
            TupleError::Invalid { .. }
        ));
    }
}

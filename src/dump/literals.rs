//! MySQL's binary string literals, as MySQL 8's `mysqldump` writes binary columns and as
//! MySQL and MariaDB read them: hex (`0x00FF`, `X'00FF'`), bit (`0b101`, `b'101'`), and
//! a character set introducer before a literal (`_binary '\0'`, `_utf8mb4'text'`).
//! A literal's value is its bytes: `_binary '\0'`, `0x00`, `X'00'` and `b'0'` are equal.

/// How an unquoted token that starts a value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// A hex or bit literal.
    Literal(Literal),
    /// `_charset`: a character set introducer; a literal follows.
    Introducer,
    /// Anything else: a number or `NULL`.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Literal {
    /// `0x…`: the token is a hex literal.
    Hex,
    /// `0b…`: the token is a bit literal.
    Bits,
    /// `X'` or `x'`: quoted hex digits follow.
    QuotedHex,
    /// `B'` or `b'`: quoted bits follow.
    QuotedBits,
}

/// Classifies `token`, the unquoted bytes at the start of a value, by its spelling and the
/// byte `next` that ended it. MySQL's `0x`/`0b` prefixes are lowercase only (`0X1` is a
/// name, not a literal); `X'…'` and `b'…'` take either case.
pub(super) fn classify(token: &[u8], next: u8) -> Token {
    match (token, next) {
        (b"x" | b"X", b'\'') => Token::Literal(Literal::QuotedHex),
        (b"b" | b"B", b'\'') => Token::Literal(Literal::QuotedBits),
        ([b'0', b'x', ..], _) => Token::Literal(Literal::Hex),
        ([b'0', b'b', ..], _) => Token::Literal(Literal::Bits),
        ([b'_', _, ..], _) => Token::Introducer,
        _ => Token::Other,
    }
}

/// Whether an introducer gives a binary string (rather than text in a character set).
pub(super) fn is_binary_introducer(introducer: &[u8]) -> bool {
    introducer.eq_ignore_ascii_case(b"_binary")
}

/// Why digits do not form a literal.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadDigit {
    /// Index of the offending digit in the slice given (its length when none is missing
    /// but the count is wrong).
    pub at: usize,
    pub what: &'static str,
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Appends the bytes that hex `digits` stand for. An odd count is allowed (`0xF` is
/// `0x0F`), as MySQL reads `0x` literals; `X'…'` literals must have an even count, which
/// the caller checks.
pub(super) fn push_hex(digits: &[u8], out: &mut Vec<u8>) -> Result<(), BadDigit> {
    let bad = |at| BadDigit {
        at,
        what: "a hex literal holds only the digits 0-9 and A-F",
    };
    let odd = digits.len() % 2;
    if odd == 1 {
        out.push(nibble(digits[0]).ok_or(bad(0))?);
    }
    for (i, pair) in digits[odd..].chunks_exact(2).enumerate() {
        let at = odd + 2 * i;
        let high = nibble(pair[0]).ok_or(bad(at))?;
        let low = nibble(pair[1]).ok_or(bad(at + 1))?;
        out.push(high << 4 | low);
    }
    Ok(())
}

/// Appends the bytes that bit `digits` stand for: right-aligned in as many whole bytes as
/// the digits need (`b'1'` is `0x01`, `b'000000001'` is `0x0001`, `b''` is empty).
pub(super) fn push_bits(digits: &[u8], out: &mut Vec<u8>) -> Result<(), BadDigit> {
    let mut byte = 0u8;
    // Bits still to come before the current byte is full.
    let mut left = match digits.len() % 8 {
        0 => 8,
        partial => partial,
    };
    for (at, &digit) in digits.iter().enumerate() {
        let bit = match digit {
            b'0' => 0,
            b'1' => 1,
            _ => {
                return Err(BadDigit {
                    at,
                    what: "a bit literal holds only the digits 0 and 1",
                })
            }
        };
        byte = byte << 1 | bit;
        left -= 1;
        if left == 0 {
            out.push(byte);
            byte = 0;
            left = 8;
        }
    }
    Ok(())
}

/// Where the quoted digits of `X'…'` or `b'…'` end: `Ok(Some(i))` with `input[i]` the
/// closing quote, `Ok(None)` when the input ends first, or the index of a byte that cannot
/// be a digit. `from` is the index just past the opening quote.
pub(super) fn quoted_digits_end(
    input: &[u8],
    from: usize,
    is_digit: fn(&u8) -> bool,
) -> Result<Option<usize>, usize> {
    for (i, byte) in input.iter().enumerate().skip(from) {
        if *byte == b'\'' {
            return Ok(Some(i));
        }
        if !is_digit(byte) {
            return Err(i);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(digits: &str) -> Result<Vec<u8>, BadDigit> {
        let mut out = Vec::new();
        push_hex(digits.as_bytes(), &mut out).map(|()| out)
    }

    fn bits(digits: &str) -> Result<Vec<u8>, BadDigit> {
        let mut out = Vec::new();
        push_bits(digits.as_bytes(), &mut out).map(|()| out)
    }

    // Expected bytes as MariaDB 10.11's HEX() gives them for the same literals.
    #[test]
    fn hex_digits_as_mysql_reads_them() {
        assert_eq!(hex("00FF").unwrap(), [0x00, 0xFF]);
        assert_eq!(hex("00ff").unwrap(), [0x00, 0xFF]);
        assert_eq!(hex("F").unwrap(), [0x0F]);
        assert_eq!(hex("abc").unwrap(), [0x0A, 0xBC]);
        assert_eq!(hex("").unwrap(), Vec::<u8>::new());
        assert_eq!(hex("0G").unwrap_err().at, 1);
        assert_eq!(hex("G").unwrap_err().at, 0);
    }

    #[test]
    fn bits_as_mysql_reads_them() {
        assert_eq!(bits("").unwrap(), Vec::<u8>::new());
        assert_eq!(bits("0").unwrap(), [0x00]);
        assert_eq!(bits("1").unwrap(), [0x01]);
        assert_eq!(bits("1000001").unwrap(), b"A");
        assert_eq!(bits("000000000").unwrap(), [0x00, 0x00]);
        assert_eq!(bits("0000000001").unwrap(), [0x00, 0x01]);
        assert_eq!(bits("1000000001").unwrap(), [0x02, 0x01]);
        assert_eq!(bits("11111111").unwrap(), [0xFF]);
        assert_eq!(bits("102").unwrap_err().at, 2);
    }

    #[test]
    fn tokens_by_spelling() {
        let literal = |l| Token::Literal(l);
        assert_eq!(classify(b"X", b'\''), literal(Literal::QuotedHex));
        assert_eq!(classify(b"x", b'\''), literal(Literal::QuotedHex));
        assert_eq!(classify(b"B", b'\''), literal(Literal::QuotedBits));
        assert_eq!(classify(b"0x00FF", b','), literal(Literal::Hex));
        assert_eq!(classify(b"0b101", b')'), literal(Literal::Bits));
        assert_eq!(classify(b"_binary", b' '), Token::Introducer);
        assert_eq!(classify(b"_utf8mb4", b'\''), Token::Introducer);
        // MySQL reads these as names, not literals.
        assert_eq!(classify(b"0X1", b','), Token::Other);
        assert_eq!(classify(b"0B1", b','), Token::Other);
        assert_eq!(classify(b"x", b','), Token::Other);
        assert_eq!(classify(b"_", b'\''), Token::Other);
        assert_eq!(classify(b"-1.5e3", b','), Token::Other);
        assert_eq!(classify(b"0", b','), Token::Other);
    }

    #[test]
    fn quoted_digits_end_at_the_quote() {
        let is_hex: fn(&u8) -> bool = u8::is_ascii_hexdigit;
        assert_eq!(quoted_digits_end(b"X'0A'", 2, is_hex), Ok(Some(4)));
        assert_eq!(quoted_digits_end(b"X'0A", 2, is_hex), Ok(None));
        assert_eq!(quoted_digits_end(b"X'0Z'", 2, is_hex), Err(3));
    }
}

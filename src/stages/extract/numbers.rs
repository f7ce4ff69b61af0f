//! Numbers as a dump spells them, checked and parsed straight from their bytes: extraction
//! parses every integer and double of a backup, so this is one of its hot loops.

/// An optional `-` and at least one digit: MariaDB's spelling of an integer.
pub(super) fn is_integer(bytes: &[u8]) -> bool {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// At least one digit and nothing else: MariaDB's spelling of an unsigned integer.
pub(super) fn is_unsigned(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit)
}

/// Digits with the characters of a decimal or exponent form and nothing else (so no `inf`
/// or `nan`, which are not SQL numbers).
pub(super) fn is_decimal(bytes: &[u8]) -> bool {
    bytes.iter().any(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

/// The integer `bytes` spells, if it is one that fits in 64 bits. One pass: each byte is
/// checked as it is added (a separate `is_integer` pass first cost a second read of every
/// integer of a backup).
#[inline]
pub(super) fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, bytes),
    };
    if digits.is_empty() {
        return None;
    }
    // Up to 18 digits cannot overflow: no checks but the digits'. Accumulated negative:
    // i64::MIN has no positive twin.
    let mut value: i64 = 0;
    if digits.len() <= 18 {
        // Eight digits a step (timestamps and dates have 8-10): the byte loop was a quarter
        // of the partition writer's time.
        let mut digits = digits;
        while let Some((eight, rest)) = digits.split_first_chunk::<8>() {
            value = value * 100_000_000 - eight_digits(*eight)?;
            digits = rest;
        }
        for &d in digits {
            let digit = d.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value * 10 - i64::from(digit);
        }
    } else {
        for &d in digits {
            let digit = d.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value.checked_mul(10)?.checked_sub(i64::from(digit))?;
        }
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// The number eight ASCII digits spell, if they are all digits: all eight at once in a
/// `u64` (each byte's digit, then pairs, fours and the eight combined by multiplies).
#[inline]
fn eight_digits(bytes: [u8; 8]) -> Option<i64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let word = u64::from_le_bytes(bytes);
    // Every byte 0x30..=0x39: its high nibble is 3, and adding 6 does not carry into it.
    let all_digits = (word & HIGH_NIBBLES) == ZEROS
        && (word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES) == ZEROS;
    if !all_digits {
        return None;
    }
    let mut word = word - ZEROS;
    // The first byte is the most significant digit.
    word = (word * 10 + (word >> 8)) & 0x00FF_00FF_00FF_00FF;
    word = (word * 100 + (word >> 16)) & 0x0000_FFFF_0000_FFFF;
    word = (word * 10_000 + (word >> 32)) & 0xFFFF_FFFF;
    Some(word as i64)
}

/// The unsigned integer `bytes` spells, if it is one that fits in 64 bits (`bigint
/// unsigned`: up to 18446744073709551615).
pub(super) fn parse_unsigned(bytes: &[u8]) -> Option<u64> {
    if !is_unsigned(bytes) {
        return None;
    }
    let mut value: u64 = 0;
    for &d in bytes {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}

/// The double `bytes` spells, correctly rounded. `fast_float2` is about twice as fast as the
/// standard library's parser and rounds the same way (both are exact); anything it refuses
/// goes to the standard parser, so what is accepted is never less than before.
/// A finite result needs no check of the spelling first: `fast_float2` gives one only for
/// digits with a sign, a point and an exponent, which `is_decimal` accepts; only `inf`,
/// `nan` (which are not SQL numbers) and overflows (`1e400`, which is) give other results,
/// and those are checked as before.
pub(super) fn parse_decimal(bytes: &[u8]) -> Option<f64> {
    if let Ok(value) = fast_float2::parse::<f64, _>(bytes) {
        if value.is_finite() {
            return Some(value);
        }
    }
    if !is_decimal(bytes) {
        return None;
    }
    fast_float2::parse::<f64, _>(bytes)
        .ok()
        .or_else(|| std::str::from_utf8(bytes).ok()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard library's reading, the reference.
    fn std_integer(text: &str) -> Option<i64> {
        is_integer(text.as_bytes()).then(|| text.parse().ok())?
    }

    fn std_decimal(text: &str) -> Option<u64> {
        is_decimal(text.as_bytes()).then(|| text.parse::<f64>().ok().map(f64::to_bits))?
    }

    #[test]
    fn integers_read_as_the_standard_library_reads_them() {
        let cases = [
            "0",
            "-0",
            "7",
            "-7",
            "0042",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
            "",
            "-",
            "1-",
            "+1",
            "1.0",
            " 1",
        ];
        for text in cases {
            assert_eq!(
                parse_integer(text.as_bytes()),
                std_integer(text),
                "{text:?}"
            );
        }
    }

    /// Eight digits at once: every length around the word's, every byte position of a
    /// non-digit, and the bytes just outside `0`..`9` (`/` and `:`), which share its nibbles.
    #[test]
    fn integers_of_eight_and_more_digits_read_as_the_standard_library_reads_them() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 1..=20 {
            for _ in 0..300 {
                let mut text: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        b'0' + (state % 10) as u8
                    })
                    .collect();
                let at = (state >> 32) as usize % len;
                let text_ok = String::from_utf8(text.clone()).unwrap();
                assert_eq!(parse_integer(&text), std_integer(&text_ok), "{text_ok}");
                let negative = format!("-{text_ok}");
                assert_eq!(
                    parse_integer(negative.as_bytes()),
                    std_integer(&negative),
                    "{negative}"
                );
                for bad in [b'/', b':', b'a', b' ', 0x80, 0xb0] {
                    text[at] = bad;
                    assert_eq!(parse_integer(&text), None, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn unsigned_integers_read_as_the_standard_library_reads_them() {
        for text in [
            "0",
            "0042",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "-0",
            "-1",
            "+1",
            "",
            "1.0",
            "1e3",
        ] {
            let reference = is_unsigned(text.as_bytes())
                .then(|| text.parse::<u64>().ok())
                .flatten();
            assert_eq!(parse_unsigned(text.as_bytes()), reference, "{text:?}");
        }
        assert_eq!(parse_unsigned(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn decimals_read_bit_for_bit_as_the_standard_library_reads_them() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "1.",
            ".5",
            "-.5",
            "+1.5",
            "1e5",
            "1E5",
            "1e+5",
            "1e-5",
            "1e",
            "e5",
            "1e5.5",
            "--1",
            "1-",
            "1.2.3",
            "1e400",
            "-1e400",
            "1e-400",
            "4.9e-324",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "9007199254740993",
            "0.1",
            "0.30000000000000004",
            "123456789012345678901234567890",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "+",
            "-",
            ".",
            "1..",
            "..1",
            "1e+-5",
            "00000.000001",
            "7.0e-10",
            "1234.5678e-2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Shortest spellings of many doubles, as a dump writes them, and some longer ones.
        for value in crate::values::test_doubles::doubles(0x9E37_79B9_7F4A_7C15, 20_000) {
            if value.is_finite() {
                cases.push(format!("{value}"));
                cases.push(format!("{value:e}"));
                cases.push(format!("{:.3}", value / 1e300));
            }
        }
        for text in &cases {
            assert_eq!(
                parse_decimal(text.as_bytes()).map(f64::to_bits),
                std_decimal(text),
                "{text:?}"
            );
        }
    }
}

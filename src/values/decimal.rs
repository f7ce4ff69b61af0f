//! DECIMAL values exactly: the canonical text of a number at a column's scale, as
//! mariadb-dump writes it (`100.10` in a `decimal(20,2)`, `0.00`, `-0.5000`), so that two
//! values are equal exactly when their canonical texts are. Polars' own decimal holds at
//! most 38 digits, MySQL's DECIMAL 65, so the partitions and the output keep this text.

/// Writes into `out` (cleared first) the canonical text of the number `bytes` spells, at
/// `scale` digits after the point: no `+`, no leading zeros (one `0` before the point when
/// the whole part is zero), exactly `scale` fraction digits (trailing zeros added, or
/// dropped when they are zeros), no point when `scale` is 0, and no `-` on zero.
/// `100.1`, `+100.100` and `0100.10` all give `100.10` at scale 2.
pub fn canonical_decimal(bytes: &[u8], scale: u8, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let not_a_decimal = || {
        format!(
            "{:?} is not a decimal number",
            String::from_utf8_lossy(bytes)
        )
    };
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (whole, fraction) = match memchr::memchr(b'.', digits) {
        Some(point) => (&digits[..point], &digits[point + 1..]),
        None => (digits, &b""[..]),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return Err(not_a_decimal());
    }
    let scale = usize::from(scale);
    if fraction.len() > scale && fraction[scale..].iter().any(|&d| d != b'0') {
        return Err(format!(
            "{:?} has more digits after the point than the column's scale ({scale})",
            String::from_utf8_lossy(bytes)
        ));
    }
    let whole = match whole.iter().position(|&d| d != b'0') {
        Some(first) => &whole[first..],
        None => &b"0"[..],
    };
    let fraction = &fraction[..fraction.len().min(scale)];
    let zero = whole == b"0" && fraction.iter().all(|&d| d == b'0');
    if negative && !zero {
        out.push(b'-');
    }
    out.extend_from_slice(whole);
    if scale > 0 {
        out.push(b'.');
        out.extend_from_slice(fraction);
        out.resize(out.len() + scale - fraction.len(), b'0');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str, scale: u8) -> Result<String, String> {
        let mut out = Vec::new();
        canonical_decimal(text.as_bytes(), scale, &mut out)
            .map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn one_spelling_per_value() {
        for (text, scale, expected) in [
            // As mariadb-dump writes them: unchanged.
            ("100.10", 2, "100.10"),
            (
                "12345678901234567890.1234567890",
                10,
                "12345678901234567890.1234567890",
            ),
            (
                "-0.500000000000000000000000000000",
                30,
                "-0.500000000000000000000000000000",
            ),
            ("0.00", 2, "0.00"),
            ("5", 0, "5"),
            (
                "18446744073709551616123456789012345678901234567890123456789012345",
                0,
                "18446744073709551616123456789012345678901234567890123456789012345",
            ),
            // Other spellings of the same values.
            ("100.1", 2, "100.10"),
            ("+100.100", 2, "100.10"),
            ("0100.10", 2, "100.10"),
            ("-0", 2, "0.00"),
            ("-0.000", 2, "0.00"),
            ("-.5", 1, "-0.5"),
            ("7.", 0, "7"),
            ("7.000", 0, "7"),
            ("000", 0, "0"),
            (".25", 3, "0.250"),
        ] {
            assert_eq!(canonical(text, scale).as_deref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn a_change_in_any_digit_within_the_scale_is_another_value() {
        let a = canonical("12345678901234567890.1234567890", 10).unwrap();
        let b = canonical("12345678901234567890.1234567891", 10).unwrap();
        assert_ne!(a, b);
        assert_eq!(canonical("1.50", 2), canonical("1.5", 2));
    }

    #[test]
    fn what_is_no_decimal_is_refused() {
        for text in [
            "", "-", ".", "1e5", "1.2.3", "abc", "1,5", "--1", " 1", "0x10", "NaN",
        ] {
            assert!(canonical(text, 2).is_err(), "{text:?}");
        }
        let err = canonical("1.234", 2).unwrap_err();
        assert!(err.contains("scale (2)"), "{err}");
    }
}

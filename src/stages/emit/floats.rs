//! Doubles written as mariadb-dump writes them: shortest round-trip digits, plain between
//! 1e-15 and 1e15, else with an exponent.

use std::io::Write;

/// Writes a double as MariaDB prints it (my_gcvt): the shortest digits that read back as
/// the same number; with `d` the position of the decimal point after the first digit
/// (the value is 0.DIGITS × 10^d), plain notation when -14 <= d and either d <= 15 or the
/// digits reach past the point, otherwise exponent form without `+` (`1e15`,
/// `1.234567890123456e15`, but `1000000000000000.2`). Whole numbers have no `.0`.
pub(super) fn write_float(out: &mut (impl Write + ?Sized), v: f64) -> std::io::Result<()> {
    if v == 0.0 || !v.is_finite() {
        let text = if v.is_nan() {
            "NaN"
        } else if v == 0.0 {
            if v.is_sign_negative() {
                "-0"
            } else {
                "0"
            }
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        return out.write_all(text.as_bytes());
    }
    // One shortest-digits conversion (zmij: a fifth of the standard library's time, same
    // digits); the MariaDB form is laid out from its digits into one buffer.
    let mut shortest = zmij::Buffer::new();
    let shortest = shortest.format_finite(v).as_bytes();
    // Most data: plain digits with a point, at most 15 before it and at most 14 zeros
    // after `0.`, which MariaDB writes the same way, less a `.0` at the end (laying them
    // out again cost twice zmij's time).
    if !shortest.contains(&b'e') {
        if let Some(point) = shortest.iter().position(|&b| b == b'.') {
            let whole_digits = point - usize::from(shortest[0] == b'-');
            let fraction = &shortest[point + 1..];
            let zeros = fraction.iter().take_while(|&&b| b == b'0').count();
            let plain = whole_digits <= 15 && (zeros <= 14 || fraction.len() == zeros);
            if plain {
                let text = shortest.strip_suffix(b".0").unwrap_or(shortest);
                return out.write_all(text);
            }
        }
    }
    let (negative, digits, d) = decimal_digits(shortest);
    let count = digits.len() as i32;
    let mut text = [0u8; 48];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        text[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if negative {
        put(b"-");
    }
    if d < -14 || (d > 15 && count <= d) {
        put(&digits[..1]);
        if count > 1 {
            put(b".");
            put(&digits[1..]);
        }
        put(b"e");
        put(itoa::Buffer::new().format(d - 1).as_bytes());
    } else if d <= 0 {
        put(b"0.");
        put(&b"00000000000000"[..(-d) as usize]);
        put(&digits);
    } else if count <= d {
        put(&digits);
        put(&b"000000000000000"[..(d - count) as usize]);
    } else {
        let (whole, fraction) = digits.split_at(d as usize);
        put(whole);
        put(b".");
        put(fraction);
    }
    out.write_all(&text[..len])
}

/// Up to 17 significant digits of a double, on the stack.
pub(super) struct Digits {
    bytes: [u8; 24],
    len: usize,
}

impl std::ops::Deref for Digits {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The sign, significant digits (no leading or trailing zeros) and decimal point position
/// `d` (the value is 0.DIGITS × 10^d) of a finite, nonzero number printed in any of the
/// usual forms (`-1.5e-7`, `1e16`, `0.00012`, `123.45`).
pub(super) fn decimal_digits(text: &[u8]) -> (bool, Digits, i32) {
    let (negative, text) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(e) => {
            let exponent = std::str::from_utf8(&text[e + 1..]).expect("ASCII");
            let exponent = exponent.trim_start_matches('+');
            (&text[..e], exponent.parse::<i32>().expect("an exponent"))
        }
        None => (text, 0),
    };
    let point = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let mut digits = Digits {
        bytes: [0; 24],
        len: 0,
    };
    let mut leading = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if b == b'0' && digits.len == 0 {
            leading += 1;
        } else {
            digits.bytes[digits.len] = b;
            digits.len += 1;
        }
    }
    while digits.len > 0 && digits.bytes[digits.len - 1] == b'0' {
        digits.len -= 1;
    }
    (negative, digits, point as i32 - leading + exponent)
}

/// `write_float` into a string.
pub fn format_float(v: f64) -> String {
    let mut text = Vec::new();
    write_float(&mut text, v).expect("writing to memory");
    String::from_utf8(text).expect("ASCII")
}

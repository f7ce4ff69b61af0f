//! Byte searches eight bytes at a time in a `u64` ("SIMD within a register"): the tuple
//! scanner's hot loops looked at one byte per step. Each mask has the high bit set in the
//! bytes that match; the lowest set bit marks the first match exactly (borrows only run
//! upward from a true match, so false marks can only come after it).

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Eight bytes from `input[at..]` as a little-endian word (the first byte lowest).
#[inline]
pub fn word_at(input: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(input[at..at + 8].try_into().expect("eight bytes"))
}

/// The bytes of `word` equal to `byte`.
#[inline]
pub fn equal_to(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The bytes of `word` below `bound` (which must be at most 128); bytes of 128 and above
/// never match.
#[inline]
pub fn below(word: u64, bound: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGHS
}

/// True when no byte of `bytes` is above 127. The words are or-ed together with no exit on
/// the way, a loop the compiler turns into vector instructions: a row's check took 160
/// instructions with the standard library's, which stops at the first non-ASCII word.
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let tail = words
        .remainder()
        .iter()
        .fold(0u64, |all, &b| all | u64::from(b));
    let all = words.fold(tail, |all, word| {
        all | u64::from_le_bytes(word.try_into().expect("eight bytes"))
    });
    all & HIGHS == 0
}

/// The index within the word of the first marked byte of a non-zero `mask`.
#[inline]
pub fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the word's, a byte above 127 at every place.
    #[test]
    fn ascii_agrees_with_the_standard_library() {
        for len in 0..80 {
            let ascii: Vec<u8> = (0..len).map(|i| (i * 37 % 128) as u8).collect();
            assert!(is_ascii(&ascii));
            for at in 0..len {
                for high in [0x80, 0xc3, 0xff] {
                    let mut bytes = ascii.clone();
                    bytes[at] = high;
                    assert_eq!(is_ascii(&bytes), bytes.is_ascii(), "{len} {at}");
                    assert!(!is_ascii(&bytes));
                }
            }
        }
    }

    /// Each search against a byte-by-byte one, at every offset of words with the match
    /// anywhere, repeated, and beside bytes above 127.
    #[test]
    fn the_first_match_agrees_with_a_byte_loop() {
        let alphabet = [
            b'a', b'\'', b'\\', b',', b')', b' ', 0x80, 0xff, b'\n', b'0', 0,
        ];
        let mut word = [0u8; 8];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            for b in &mut word {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = alphabet[(state % alphabet.len() as u64) as usize];
            }
            let w = word_at(&word, 0);
            for byte in [b'\'', b'\\', b',', 0x80, 0] {
                let expected = word.iter().position(|&b| b == byte);
                let mask = equal_to(w, byte);
                assert_eq!(
                    (mask != 0).then(|| first(mask)),
                    expected,
                    "{word:?} {byte}"
                );
            }
            for bound in [1u8, b'+', b'0', 128] {
                let expected = word.iter().position(|&b| b < bound);
                let mask = below(w, bound);
                assert_eq!(
                    (mask != 0).then(|| first(mask)),
                    expected,
                    "{word:?} <{bound}"
                );
            }
        }
    }
}

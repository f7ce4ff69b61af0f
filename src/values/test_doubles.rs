//! Test input: doubles of every magnitude (NaN and infinities included), from a fixed
//! xorshift walk over their bits, so every run checks the same values.

pub fn doubles(seed: u64, count: usize) -> impl Iterator<Item = f64> {
    let mut bits = seed;
    (0..count).map(move |_| {
        bits ^= bits << 13;
        bits ^= bits >> 7;
        bits ^= bits << 17;
        f64::from_bits(bits)
    })
}

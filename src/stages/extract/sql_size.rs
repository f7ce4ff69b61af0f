//! How much SQL a backup holds, before it is read: exact for plain SQL; for gzip, the size
//! its trailer records (ISIZE: the uncompressed size modulo 4 GiB, RFC 1952), made whole
//! with the compression ratio expected, or that ratio alone when the trailer does not fit it
//! (a file of several gzip members records only its last member's size).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The uncompressed size of a backup and what it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlSize {
    /// A plain `.sql` file: its size.
    Plain(u64),
    /// From the gzip trailer.
    Trailer(u64),
    /// The file's size times the expected ratio.
    Estimated(u64),
}

impl SqlSize {
    pub fn bytes(self) -> u64 {
        match self {
            SqlSize::Plain(b) | SqlSize::Trailer(b) | SqlSize::Estimated(b) => b,
        }
    }
}

/// A trailer's size is taken when it is within this factor of the expected one: wide
/// enough for small files, whose ratios vary most, narrow enough to tell the last member
/// of a multi-member file (a 4 GiB wrap of it) from the whole.
const TRUST: f64 = 3.0;

/// The SQL in the backup at `path` of `file_size` bytes, `ratio` the SQL bytes expected per
/// byte of gzip.
pub fn sql_size(path: &Path, file_size: u64, ratio: f64) -> SqlSize {
    if path.extension().is_none_or(|e| e != "gz") {
        return SqlSize::Plain(file_size);
    }
    let expected = file_size as f64 * ratio;
    match gzip_isize(path).and_then(|isize| whole_size(isize, file_size, expected)) {
        Some(bytes) => SqlSize::Trailer(bytes),
        None => SqlSize::Estimated(expected as u64),
    }
}

/// The last four bytes of a gzip file, little-endian.
fn gzip_isize(path: &Path) -> Option<u32> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::End(-4)).ok()?;
    let mut bytes = [0; 4];
    file.read_exact(&mut bytes).ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// The size `isize + k × 4 GiB` nearest to `expected` (by ratio), if it is no smaller than
/// the compressed file and within `TRUST` of `expected`.
fn whole_size(isize: u32, file_size: u64, expected: f64) -> Option<u64> {
    const WRAP: f64 = 4_294_967_296.0;
    let k = ((expected - isize as f64) / WRAP).round().max(0.0);
    let candidates = [k - 1.0, k, k + 1.0].map(|k| isize as f64 + k.max(0.0) * WRAP);
    let best = candidates
        .into_iter()
        .filter(|&c| c >= file_size as f64 && c > 0.0)
        .min_by(|a, b| distance(*a, expected).total_cmp(&distance(*b, expected)))?;
    (distance(best, expected) <= TRUST.ln()).then_some(best as u64)
}

fn distance(a: f64, b: f64) -> f64 {
    (a / b.max(1.0)).ln().abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_trailer_is_made_whole_with_the_expected_ratio() {
        // 10 GiB of SQL in a 1.25 GiB file: the trailer holds 10 GiB mod 4 GiB = 2 GiB.
        let isize = (10 * GIB % (4 * GIB)) as u32;
        assert_eq!(
            whole_size(isize, GIB + GIB / 4, 9.0 * GIB as f64),
            Some(10 * GIB)
        );
        // Under 4 GiB the trailer is the size whatever the guess, within the trust factor.
        assert_eq!(whole_size(1000, 200, 1200.0), Some(1000));
        assert_eq!(whole_size(1000, 200, 300.0), None);
        // The last member of a multi-member file (a few KB) does not fit a 6x guess of a
        // 100 MB file, nor does any wrap of it.
        assert_eq!(
            whole_size(60_000, 100 << 20, 600.0 * (1 << 20) as f64),
            None
        );
    }

    #[test]
    fn sizes_of_plain_single_and_multi_member_files() {
        let dir = tempfile::tempdir().unwrap();
        let sql: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("({i},'x'),\n").into_bytes())
            .collect();
        let gzip = |data: &[u8]| {
            let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let plain = dir.path().join("a.sql");
        std::fs::write(&plain, &sql).unwrap();
        assert_eq!(
            sql_size(&plain, sql.len() as u64, 6.0),
            SqlSize::Plain(sql.len() as u64)
        );

        let single = dir.path().join("b.sql.gz");
        let compressed = gzip(&sql);
        std::fs::write(&single, &compressed).unwrap();
        let size = compressed.len() as u64;
        let ratio = sql.len() as f64 / size as f64;
        // A guess 30% off still finds the exact size in the trailer.
        assert_eq!(
            sql_size(&single, size, ratio * 0.7),
            SqlSize::Trailer(sql.len() as u64)
        );

        let multi = dir.path().join("c.sql.gz");
        let mut members = gzip(&sql);
        members.extend(gzip(b"-- the end\n"));
        std::fs::write(&multi, &members).unwrap();
        let size = members.len() as u64;
        assert_eq!(
            sql_size(&multi, size, ratio),
            SqlSize::Estimated((size as f64 * ratio) as u64)
        );
    }
}

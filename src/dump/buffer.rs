//! A sliding window over a byte stream that tracks where it is (byte offset and line) for
//! error messages, grows only as far as one statement or tuple needs, and never holds the dump.

use std::cell::Cell;
use std::io::{self, Read};

const READ_CHUNK: usize = 1 << 20;

pub struct Window<R> {
    reader: R,
    data: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Uncompressed byte offset of `data[start]`.
    offset: u64,
    /// The 1-based line that `data[counted]` is on. Lines are counted in bulk, up to `start`
    /// only when the window moves or a position is asked for: counting at every consumed
    /// row cost 4% of extraction.
    line: u64,
    counted: usize,
    max_len: usize,
}

thread_local! {
    /// The buffer of the last window dropped on this thread, for the next one: a new buffer
    /// is zeroed (2 MiB), which for a history of dumps of a megabyte each came to about 3%
    /// of extraction's CPU. Its stale bytes are never read: only `start..end` is.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl<R: Read> Window<R> {
    pub fn new(reader: R, max_len: usize) -> Self {
        // The size of a new window, whatever the last one grew to (or it would take longer
        // rows than this one's `max_len`); only bytes not there yet are zeroed.
        let mut data = SPARE.take();
        data.resize(READ_CHUNK * 2, 0);
        Window {
            reader,
            data,
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            line: 1,
            counted: 0,
            max_len,
        }
    }

    /// The bytes read but not yet consumed.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Reads more input; returns false at the end of the stream. Grows the window only when
    /// the unconsumed part already fills it, and refuses to grow past `max_len`.
    pub fn fill_more(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.line += newlines(&self.data[self.counted..self.start]);
            self.counted = 0;
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < READ_CHUNK {
            if self.data.len() >= self.max_len {
                return Err(io::Error::other(WindowFull(self.max_len)));
            }
            let new_len = (self.data.len() * 2).min(self.max_len.max(READ_CHUNK));
            self.data.resize(new_len.max(self.end + READ_CHUNK), 0);
        }
        loop {
            match self.reader.read(&mut self.data[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks `n` bytes as consumed.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(self.start + n <= self.end);
        self.offset += n as u64;
        self.start += n;
    }

    /// The last `n` bytes consumed: they stay in place until the next `fill_more`.
    #[inline]
    pub fn consumed(&self, n: usize) -> &[u8] {
        &self.data[self.start - n..self.start]
    }

    /// Byte offset of the consumed part's end.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Byte offset and line of the position `ahead` bytes past the consumed part.
    pub fn position(&self, ahead: usize) -> Position {
        let ahead = ahead.min(self.end - self.start);
        Position {
            offset: self.offset + ahead as u64,
            line: self.line + newlines(&self.data[self.counted..self.start + ahead]),
        }
    }
}

impl<R> Drop for Window<R> {
    fn drop(&mut self) {
        // A window grown for a long statement (up to `max_len`) is not kept: the thread
        // would hold that memory after its extract.
        if self.data.capacity() <= READ_CHUNK * 4 {
            SPARE.set(std::mem::take(&mut self.data));
        }
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Where in the uncompressed dump something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub line: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} (byte {})", self.line, self.offset)
    }
}

/// The marker error for a statement or row longer than the window may grow.
#[derive(Debug)]
pub struct WindowFull(pub usize);

impl std::fmt::Display for WindowFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a single statement or row is longer than {} MiB",
            self.0 >> 20
        )
    }
}

impl std::error::Error for WindowFull {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a window over `input` reads, consuming as it goes.
    fn read_all(input: &[u8], max_len: usize) -> io::Result<Vec<u8>> {
        let mut window = Window::new(input, max_len);
        let mut out = Vec::new();
        while window.fill_more()? {
            out.extend_from_slice(window.bytes());
            let n = window.bytes().len();
            window.consume(n);
        }
        Ok(out)
    }

    /// A window on a thread that ran others before reads its own bytes only, and its
    /// limit is its own, not the size a window before it grew to.
    #[test]
    fn a_reused_buffer_holds_nothing_of_the_last_window() {
        // Read whole without consuming: the buffer grows to 4 MiB, and is kept.
        let big: Vec<u8> = (0..3 * READ_CHUNK).map(|i| (i % 251) as u8).collect();
        let grow = |input: &[u8]| {
            let mut grown = Window::new(input, 8 * READ_CHUNK);
            while grown.fill_more().unwrap() {}
            assert_eq!(grown.bytes(), input);
        };
        grow(&big);
        assert_eq!(
            read_all(b"(1,'a'),(2,'b')", 4 * READ_CHUNK).unwrap(),
            b"(1,'a'),(2,'b')"
        );
        assert_eq!(read_all(b"", 4 * READ_CHUNK).unwrap(), b"");
        // A window that may not grow refuses what does not fit, after one that grew.
        grow(&big);
        let mut small = Window::new(&big[..], 2 * READ_CHUNK);
        let full = loop {
            match small.fill_more() {
                Ok(true) => continue,
                Ok(false) => panic!("3 MiB fit a window of at most 2 MiB"),
                Err(e) => break e,
            }
        };
        assert!(full.get_ref().is_some_and(|e| e.is::<WindowFull>()));
        assert_eq!(small.bytes(), &big[..2 * READ_CHUNK]);
        drop(small);
        // A window grown past 4 MiB leaves no buffer behind.
        grow(&[7u8; 5 * READ_CHUNK]);
        assert_eq!(SPARE.take().capacity(), 0);
    }
}

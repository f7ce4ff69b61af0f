//! Fuzzes the dump reader (statement splitting, INSERT heads, row scanning): it must never
//! panic or hang, must place errors inside the input, and must read the same events whether
//! the bytes arrive at once or a few at a time.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

#[path = "../../src/dump/mod.rs"]
#[allow(dead_code, unused_imports)]
mod dump;

use dump::DumpReader;

/// Hands out at most `step` bytes per read, so refills split every kind of token.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The events as text, or the byte offset of the error.
fn events(input: impl Read) -> Result<Vec<String>, u64> {
    let mut reader = DumpReader::with_max_statement(input, 8 << 20);
    let mut out = Vec::new();
    loop {
        match reader.next_event() {
            Ok(Some(event)) => out.push(format!("{event:?}")),
            Ok(None) => return Ok(out),
            Err(error) => return Err(error.position().offset),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = events(data);
    if let Err(offset) = whole {
        assert!(offset <= data.len() as u64, "error at {offset} past the end");
    }
    let step = 1 + data.len() % 5;
    let pieces = events(Trickle { data, step });
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "events depend on how the input was read"),
        (Err(a), Err(b)) => assert_eq!(a, b, "errors depend on how the input was read"),
        _ => panic!("whole: {whole:?}, in pieces: {pieces:?}"),
    }
});

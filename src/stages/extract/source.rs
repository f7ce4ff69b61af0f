//! Opening a backup for reading: gzip (any number of members) or plain SQL; a large one is
//! decompressed on a thread of its own so that decoding and row parsing overlap.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;

const CHUNK: usize = 1 << 20;
/// Chunks decoded ahead of the parser: bounds the memory the two threads share.
const CHUNKS_AHEAD: usize = 4;

/// Called with the number of bytes of the file read so far, as they are read.
pub type OnRead = Box<dyn FnMut(u64) + Send>;

/// Files smaller than this are decompressed on the thread that parses them. A thread of
/// their own overlaps little when many backups are read side by side (as they are when
/// there are many small ones), and costs its start, a handoff per MiB and its buffers.
const READ_AHEAD_FROM: u64 = 16 << 20;

/// Opens `path`, decompressing when its name ends in `.gz`.
pub fn open_backup(path: &Path, on_read: OnRead) -> Result<Box<dyn Read + Send>> {
    let size = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
    open_with(path, on_read, size >= READ_AHEAD_FROM)
}

fn open_with(path: &Path, on_read: OnRead, read_ahead: bool) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file = Counting {
        inner: file,
        on_read,
    };
    let is_gzip = path.extension().is_some_and(|ext| ext == "gz");
    let reader: Box<dyn Read + Send> = if is_gzip {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(CHUNK, file)))
    } else {
        Box::new(file)
    };
    Ok(match read_ahead {
        true => Box::new(ReadAhead::spawn(reader)),
        false => reader,
    })
}

/// Reports how much of the file was read, for progress in bytes of the backup on disk.
struct Counting {
    inner: File,
    on_read: OnRead,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_read)(n as u64);
        Ok(n)
    }
}

/// A reader whose data is produced by a background thread reading from another reader.
pub struct ReadAhead {
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Chunks read out go back to the thread for reuse: a fresh chunk for every MiB of SQL
    /// cost a zeroing (memset or new pages) of every byte.
    spent: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    pub fn spawn(mut reader: Box<dyn Read + Send>) -> ReadAhead {
        let (sender, chunks) = sync_channel(CHUNKS_AHEAD);
        let (spent, reusable) = sync_channel::<Vec<u8>>(CHUNKS_AHEAD + 2);
        let thread = std::thread::spawn(move || loop {
            let mut chunk = reusable.try_recv().unwrap_or_default();
            // Only a new chunk (or the tail of a short one) is zero-filled.
            chunk.resize(CHUNK, 0);
            let (filled, error) = read_full(&mut reader, &mut chunk);
            chunk.truncate(filled);
            // Data decoded before an error is delivered first, so the error is placed where
            // the damage is, not at the start of the chunk.
            let end = filled == 0 || error.is_some();
            if filled > 0 && sender.send(Ok(chunk)).is_err() {
                return;
            }
            if end {
                let last = error.map_or(Ok(Vec::new()), Err);
                let _ = sender.send(last);
                return;
            }
        });
        ReadAhead {
            chunks,
            spent,
            current: Vec::new(),
            pos: 0,
            done: false,
            thread: Some(thread),
        }
    }
}

/// Reads until `buf` is full, the input ends or fails: how much was read, and the error.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.current, chunk);
                    // Full (the thread has enough to reuse) or gone: the chunk is just freed.
                    let _ = self.spent.try_send(spent);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the decompression thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Unblock the producer (its next send fails), then wait for it.
        let (_, empty) = sync_channel(0);
        drop(std::mem::replace(&mut self.chunks, empty));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_multi_member_and_damaged_gzip() {
        for read_ahead in [false, true] {
            read_with(read_ahead);
        }
    }

    fn read_with(read_ahead: bool) {
        let read_all = |path: &Path| -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            open_with(path, Box::new(|_| {}), read_ahead)
                .unwrap()
                .read_to_end(&mut out)?;
            Ok(out)
        };
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
        let plain = dir.path().join("a.sql");
        std::fs::write(&plain, &data).unwrap();
        assert_eq!(read_all(&plain).unwrap(), data);

        let mut members = gzip(&data[..1000]);
        members.extend(gzip(&data[1000..]));
        let multi = dir.path().join("b.sql.gz");
        std::fs::write(&multi, &members).unwrap();
        assert_eq!(read_all(&multi).unwrap(), data);

        let whole = gzip(&data);
        for cut in [whole.len() / 2, whole.len() - 4] {
            let truncated = dir.path().join("c.sql.gz");
            std::fs::write(&truncated, &whole[..cut]).unwrap();
            assert!(read_all(&truncated).is_err(), "cut at {cut}, {read_ahead}");
        }
    }
}

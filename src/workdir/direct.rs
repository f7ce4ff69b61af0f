//! Files written and read past the page cache: whole blocks go straight to the disk
//! (`O_DIRECT`), only a file's last partial block through the cache. The output is written
//! once and read by other programs later, so caching it only costs: the kernel's copy into
//! cache pages was a quarter of the diff stage's samples on the benchmark's machine
//! (measured), and on a long run gigabytes of cached output can push out of the cache the
//! partitions the next diffs read (reasoned, not measured). Partitions are written and read
//! whole by the diffs the same way (`read_whole`): through the cache, the large series took
//! 26.4 CPU s end to end instead of 24.5 (medians of 6 interleaved).
//! Where the file system refuses direct writes (tmpfs, some network or overlay file
//! systems), every byte goes through the cache as before.

use std::borrow::BorrowMut;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

/// What direct writes need: memory, file offsets and lengths in multiples of the device's
/// logical block, which is at most this on Linux file systems.
const ALIGNMENT: usize = 4096;
/// Bytes gathered before a write, at most.
pub const BUFFER_BYTES: usize = 1 << 20;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Block([u8; ALIGNMENT]);

/// A writer of a new file that writes whole buffers directly when it can.
pub struct DirectWriter<F: BorrowMut<File>> {
    file: F,
    /// Memory aligned for direct writes, grown up to `most` blocks as the file does: a
    /// history writes thousands of files of a few kilobytes, each with a buffer of its own.
    blocks: Vec<Block>,
    most: usize,
    filled: usize,
    /// Bytes of the file written (or being written) before the buffer's.
    written: u64,
    direct: bool,
    /// The file's descriptor for the background writes, made at the first.
    shared: Option<Arc<File>>,
    /// Where the background write of the previous full buffer reports, with the buffer.
    in_flight: Option<Receiver<Written>>,
}

/// A finished background write: its buffer, for the next, and its result.
type Written = (Vec<Block>, std::io::Result<()>);

/// A full buffer to write at `offset` of `file`, in the background.
struct Job {
    file: Arc<File>,
    offset: u64,
    blocks: Vec<Block>,
    done: SyncSender<Written>,
}

/// Threads that write full buffers while their writers fill the next: a direct write
/// blocks until the disk has the bytes (about 1 ms a megabyte on the benchmark's machine,
/// 0.95 s of the large series' diff stage), time the writer can spend formatting instead.
fn background() -> &'static Mutex<mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        // Two: one per core of a small server; the disk is shared anyway.
        for _ in 0..2 {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name("direct-writes".into())
                .spawn(move || loop {
                    let job = match receiver.lock().expect("not poisoned").recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    let result = write_at(&job.file, bytes(&job.blocks), job.offset);
                    // A writer that stopped waiting (dropped after an error) needs no answer.
                    let _ = job.done.send((job.blocks, result));
                })
                .expect("a thread for background writes");
        }
        Mutex::new(sender)
    })
}

/// Writes `data` at `offset`; a file system that took the direct flag but refuses the
/// write gets it again through the cache.
fn write_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    match file.write_all_at(data, offset) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && set_direct_off(file) => {
            file.write_all_at(data, offset)
        }
        result => result,
    }
}

/// Turns direct writes off for `file`; true if they were on.
fn set_direct_off(file: &File) -> bool {
    let was = is_direct(file);
    set_direct(file, false);
    was
}

/// The blocks' bytes.
fn bytes(blocks: &[Block]) -> &[u8] {
    // SAFETY: `Block` is plain bytes with no padding; the slice covers the blocks exactly.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), blocks.len() * ALIGNMENT) }
}

/// The blocks' bytes, to write into.
fn bytes_mut(blocks: &mut [Block]) -> &mut [u8] {
    // SAFETY: as in `bytes`, borrowed mutably through `blocks`.
    unsafe {
        std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), blocks.len() * ALIGNMENT)
    }
}

impl<F: BorrowMut<File>> DirectWriter<F> {
    /// Writes `file` (new and empty: direct writes start at offset 0) directly if its file
    /// system allows.
    pub fn new(file: F) -> DirectWriter<F> {
        DirectWriter::with_buffer(file, BUFFER_BYTES)
    }

    /// As `new`, gathering at most `bytes` (whole blocks, at least one) before a write.
    pub fn with_buffer(mut file: F, bytes: usize) -> DirectWriter<F> {
        let direct = set_direct(file.borrow_mut(), true);
        DirectWriter {
            file,
            blocks: Vec::new(),
            most: (bytes / ALIGNMENT).max(1),
            filled: 0,
            written: 0,
            direct,
            shared: None,
            in_flight: None,
        }
    }

    /// Hands a full buffer to the background threads, after the one before it is written
    /// (its buffer becomes the next one).
    fn write_full_buffer(&mut self) -> std::io::Result<()> {
        let spare = self.wait()?.unwrap_or_default();
        let file = match &self.shared {
            Some(file) => Arc::clone(file),
            None => Arc::clone(
                self.shared
                    .insert(Arc::new(self.file.borrow().try_clone()?)),
            ),
        };
        let (done, in_flight) = mpsc::sync_channel(1);
        let job = Job {
            file,
            offset: self.written,
            blocks: std::mem::replace(&mut self.blocks, spare),
            done,
        };
        self.written += self.filled as u64;
        self.filled = 0;
        self.in_flight = Some(in_flight);
        let queue = background().lock().expect("not poisoned");
        queue
            .send(job)
            .map_err(|_| std::io::Error::other("the background writes stopped"))
    }

    /// Waits for the background write in flight, if any: its buffer, or its error.
    fn wait(&mut self) -> std::io::Result<Option<Vec<Block>>> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(None);
        };
        let (blocks, result) = in_flight
            .recv()
            .map_err(|_| std::io::Error::other("a background write was lost"))?;
        result.map(|()| Some(blocks))
    }

    /// Writes the buffer here: directly when it is whole blocks and the file system takes
    /// it, else (a file's last bytes, or a file system that refuses) through the cache.
    fn write_buffer(&mut self) -> std::io::Result<()> {
        self.wait()?;
        if self.direct && !self.filled.is_multiple_of(ALIGNMENT) {
            self.stop_direct();
        }
        write_at(
            self.file.borrow(),
            &bytes(&self.blocks)[..self.filled],
            self.written,
        )?;
        self.written += self.filled as u64;
        self.filled = 0;
        Ok(())
    }

    fn stop_direct(&mut self) {
        set_direct(self.file.borrow_mut(), false);
        self.direct = false;
    }
}

impl<F: BorrowMut<File>> Write for DirectWriter<F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let capacity = self.most * ALIGNMENT;
        let taken = data.len().min(capacity - self.filled);
        let filled = self.filled;
        let needed = (filled + taken).div_ceil(ALIGNMENT);
        if self.blocks.len() < needed {
            let grown = needed.max(2 * self.blocks.len()).min(self.most);
            self.blocks.resize(grown, Block([0; ALIGNMENT]));
        }
        bytes_mut(&mut self.blocks)[filled..filled + taken].copy_from_slice(&data[..taken]);
        self.filled += taken;
        if self.filled == capacity && self.direct {
            self.write_full_buffer()?;
        } else if self.filled == capacity {
            self.write_buffer()?;
        }
        Ok(taken)
    }

    /// Writes what is buffered; after a flush that was not at a whole block, the rest of
    /// the file goes through the cache.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.filled > 0 {
            self.write_buffer()?;
        }
        self.wait().map(drop)
    }
}

/// A whole file's bytes in memory aligned for direct reads.
pub struct DirectBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl AsRef<[u8]> for DirectBytes {
    fn as_ref(&self) -> &[u8] {
        &bytes(&self.blocks)[..self.len]
    }
}

/// Files smaller than this are read through the cache: they were written through it too
/// (a smaller file is written at its end, in one partial write), and a direct read of a
/// cached file goes to the disk all the same.
pub const DIRECT_READ_BYTES: usize = 1 << 20;

/// Reads the whole of `file`: past the page cache when it is at least `DIRECT_READ_BYTES`
/// and its file system allows, else through the cache.
pub fn read_whole(file: &mut File) -> std::io::Result<DirectBytes> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len() as usize;
    let mut blocks = vec![Block([0; ALIGNMENT]); len.div_ceil(ALIGNMENT) + 1];
    let direct = len >= DIRECT_READ_BYTES && set_direct(file, true);
    let mut filled = 0;
    loop {
        let buffer = &mut bytes_mut(&mut blocks)[filled..];
        let read = match file.read(buffer) {
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(file, false);
                file.seek(SeekFrom::Start(filled as u64))?;
                file.read(buffer)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            result => result?,
        };
        if read == 0 {
            break;
        }
        filled += read;
        if direct && !filled.is_multiple_of(ALIGNMENT) {
            // A short read: the file's end, or an interruption not on a block; the rest
            // through the cache.
            set_direct(file, false);
        }
    }
    Ok(DirectBytes {
        blocks,
        len: filled,
    })
}

/// Whether `file` is open for direct writes.
#[cfg(target_os = "linux")]
fn is_direct(file: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: fcntl reads the flags of an open descriptor only.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_DIRECT != 0
}

#[cfg(not(target_os = "linux"))]
fn is_direct(_file: &File) -> bool {
    false
}

/// Turns direct writes on or off for `file`; true when they are on.
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> bool {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl reads and sets the flags of an open descriptor only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        libc::fcntl(fd, libc::F_SETFL, flags) == 0 && on
    }
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, _on: bool) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder under `target/`, on the disk the outputs of the tests go to (`/tmp` may be
    /// a tmpfs, which takes no direct writes).
    fn disk_folder() -> tempfile::TempDir {
        let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).unwrap();
        tempfile::tempdir_in(target).unwrap()
    }

    /// Bytes that differ from one position to the next, so that a block written twice or
    /// out of place shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn a_file_reads_back_as_written_whatever_the_sizes_of_the_writes_and_buffer() {
        let dir = disk_folder();
        // Below a block, a block, the buffer and around it, several buffers and a tail.
        for len in [
            0,
            1,
            4095,
            4096,
            BUFFER_BYTES - 1,
            BUFFER_BYTES,
            BUFFER_BYTES + 1,
            3 * BUFFER_BYTES + 12345,
        ] {
            for piece in [1, 1000, 65536, BUFFER_BYTES + 3] {
                // The outputs' buffer, and a partition's of two blocks.
                for buffer in [BUFFER_BYTES, 2 * ALIGNMENT] {
                    let path = dir.path().join(format!("{len}-{piece}-{buffer}"));
                    let mut file = File::create(&path).unwrap();
                    let data = pattern(len);
                    let mut out = DirectWriter::with_buffer(&mut file, buffer);
                    for chunk in data.chunks(piece) {
                        out.write_all(chunk).unwrap();
                    }
                    out.flush().unwrap();
                    drop(out);
                    drop(file);
                    let case = format!("{len} bytes in {piece} through {buffer}");
                    assert!(std::fs::read(&path).unwrap() == data, "{case}");
                    let read = read_whole(&mut File::open(&path).unwrap()).unwrap();
                    assert!(read.as_ref() == data, "{case}, read directly");
                }
            }
        }
    }

    #[test]
    fn a_failed_background_write_fails_the_file() {
        let dir = disk_folder();
        let path = dir.path().join("read-only");
        File::create(&path).unwrap();
        // Opened for reading only: every write of it fails, the background ones too.
        let mut out = DirectWriter::with_buffer(File::open(&path).unwrap(), 2 * ALIGNMENT);
        // Two whole buffers and no tail: only background writes.
        let written = (out.write_all(&pattern(4 * ALIGNMENT))).and_then(|()| out.flush());
        assert!(written.is_err(), "a write into a read-only file succeeded");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn whole_buffers_go_past_the_cache_where_the_file_system_allows() {
        let dir = disk_folder();
        let mut file = File::create(dir.path().join("f")).unwrap();
        let mut out = DirectWriter::new(&mut file);
        assert!(
            out.direct,
            "the file system of target/ takes O_DIRECT (ext4, xfs, btrfs do)"
        );
        // Past the size read directly, with a partial block at the end.
        let data = pattern(DIRECT_READ_BYTES + 3 * ALIGNMENT + 5);
        out.write_all(&data).unwrap();
        out.flush().unwrap();
        drop(out);
        let mut file = File::open(dir.path().join("f")).unwrap();
        assert!(set_direct(&file, true), "reads past the cache too");
        set_direct(&file, false);
        assert!(read_whole(&mut file).unwrap().as_ref() == data);
    }
}

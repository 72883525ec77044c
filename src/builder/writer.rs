//! The background writer: file data leaves the builder in large block-aligned runs, written by
//! a thread of their own so that parsing and decompression go on meanwhile.
//!
//! The runs are written with `O_DIRECT` where the filesystem allows it: the bytes go from the
//! run's buffer to the device without a copy into the page cache, which on a busy machine costs
//! more than the writing itself. Where `O_DIRECT` is refused, the same writes go through the
//! page cache. Two buffers take turns: one being filled, one being written.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use crate::error::{Error, Result};

/// Memory alignment of the buffers: what `O_DIRECT` asks of them on any device. Offsets and
/// lengths are whole filesystem blocks; where the device wants more than that, the write is
/// refused and the writer goes on through the page cache.
const ALIGN: usize = 4096;

/// A heap buffer whose usable part starts on an [`ALIGN`] boundary.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, start, len }
    }

    /// The usable bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    /// The usable bytes, for filling.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

enum Job {
    /// Write the first `len` bytes of the buffer at byte `offset`, then give the buffer back.
    Write {
        offset: u64,
        buf: AlignedBuf,
        len: usize,
    },
    /// Make `len` bytes from `offset` read as zeros (freed file data).
    Discard { offset: u64, len: u64 },
}

/// What the writer thread did, when it ends.
struct Done {
    crc: u32,
    direct: bool,
}

/// The writer thread and the buffers it hands back.
pub struct BackgroundWriter {
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<AlignedBuf>,
    thread: Option<JoinHandle<io::Result<Done>>>,
}

/// Turns `O_DIRECT` on for `file`; false where the filesystem does not support it.
fn set_direct(file: &File, on: bool) -> bool {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let Ok(flags) = fcntl_getfl(file) else {
        return false;
    };
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags).is_ok()
}

fn run(file: File, jobs: Receiver<Job>, spare: SyncSender<AlignedBuf>) -> io::Result<Done> {
    let mut direct = set_direct(&file, true);
    let mut crc = 0u32;
    for job in jobs {
        match job {
            Job::Write { offset, buf, len } => {
                let data = &buf.as_slice()[..len];
                match file.write_all_at(data, offset) {
                    Ok(()) => {}
                    // Some filesystems accept the flag but not the alignment: write through
                    // the page cache from here on.
                    Err(e)
                        if direct
                            && e.raw_os_error()
                                == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                    {
                        direct = false;
                        set_direct(&file, false);
                        file.write_all_at(data, offset)?;
                    }
                    Err(e) => return Err(e),
                }
                crc = crc32c::crc32c_append(crc, data);
                // The builder may be gone after an error; then the buffer is simply dropped.
                let _ = spare.send(buf);
            }
            Job::Discard { offset, len } => super::output::discard(&file, offset, len)?,
        }
    }
    if direct {
        set_direct(&file, false);
    }
    Ok(Done { crc, direct })
}

impl BackgroundWriter {
    /// Starts the writer on a handle to `file`, with `buffers` buffers of `len` bytes in all
    /// (one of them is handed out at once by [`BackgroundWriter::take_buffer`]).
    pub fn start(file: &File, buffers: usize, len: usize) -> Result<Self> {
        let handle = file
            .try_clone()
            .map_err(|e| Error::io("cannot duplicate the output handle", e))?;
        let (jobs_tx, jobs_rx) = mpsc::sync_channel(buffers);
        let (spare_tx, spare_rx) = mpsc::sync_channel(buffers);
        for _ in 0..buffers {
            spare_tx
                .send(AlignedBuf::new(len))
                .map_err(|_| Error::io("writer setup", io::Error::other("channel closed")))?;
        }
        let thread = thread::Builder::new()
            .name("image-writer".into())
            .spawn(move || run(handle, jobs_rx, spare_tx))
            .map_err(|e| Error::io("cannot start the writer thread", e))?;
        Ok(BackgroundWriter {
            jobs: Some(jobs_tx),
            spare: spare_rx,
            thread: Some(thread),
        })
    }

    /// A buffer to fill; waits while every buffer is being written.
    pub fn take_buffer(&mut self) -> Result<AlignedBuf> {
        match self.spare.recv() {
            Ok(b) => Ok(b),
            Err(_) => Err(self.failure()),
        }
    }

    /// Queues the first `len` bytes of `buf` for byte `offset` onwards.
    pub fn write(&mut self, offset: u64, buf: AlignedBuf, len: usize) -> Result<()> {
        self.send(Job::Write { offset, buf, len })
    }

    /// Queues freeing `len` bytes from `offset`, after every write queued before.
    pub fn discard(&mut self, offset: u64, len: u64) -> Result<()> {
        self.send(Job::Discard { offset, len })
    }

    fn send(&mut self, job: Job) -> Result<()> {
        let sent = self
            .jobs
            .as_ref()
            .map(|j| j.send(job).is_ok())
            .unwrap_or(false);
        if sent {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// The writer's error after it stopped early.
    fn failure(&mut self) -> Error {
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Error::io("cannot write the image", e),
            _ => Error::io(
                "cannot write the image",
                io::Error::other("the writer thread stopped"),
            ),
        }
    }

    /// Waits for every queued write. Returns the crc32c of all data written, in order, and
    /// whether the writes bypassed the page cache.
    pub fn finish(mut self) -> Result<(u32, bool)> {
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(done))) => Ok((done.crc, done.direct)),
            Some(Ok(Err(e))) => Err(Error::io("cannot write the image", e)),
            _ => Err(Error::io(
                "cannot write the image",
                io::Error::other("the writer thread stopped"),
            )),
        }
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn buffers_are_aligned() {
        for len in [4096, 8192, 1 << 20] {
            let b = AlignedBuf::new(len);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.as_slice().len(), len);
        }
    }

    #[test]
    fn writes_land_in_order_with_discards() {
        const BLOCK_SIZE: usize = 4096;
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("out"))
            .unwrap();
        let mut w = BackgroundWriter::start(&file, 2, 3 * BLOCK_SIZE).unwrap();
        for (i, byte) in [1u8, 2, 3].into_iter().enumerate() {
            let mut b = w.take_buffer().unwrap();
            b.as_mut_slice().fill(byte);
            w.write((i * 3 * BLOCK_SIZE) as u64, b, 3 * BLOCK_SIZE)
                .unwrap();
        }
        w.discard(3 * BLOCK_SIZE as u64, 3 * BLOCK_SIZE as u64)
            .unwrap();
        let (crc, _) = w.finish().unwrap();
        let mut all = vec![0u8; 9 * BLOCK_SIZE];
        file.read_exact_at(&mut all, 0).unwrap();
        assert!(all[..3 * BLOCK_SIZE].iter().all(|&b| b == 1));
        assert!(
            all[3 * BLOCK_SIZE..6 * BLOCK_SIZE].iter().all(|&b| b == 0),
            "discarded blocks read as zeros"
        );
        assert!(all[6 * BLOCK_SIZE..].iter().all(|&b| b == 3));
        let mut expect = 0;
        for byte in [1u8, 2, 3] {
            expect = crc32c::crc32c_append(expect, &vec![byte; 3 * BLOCK_SIZE]);
        }
        assert_eq!(crc, expect);
    }
}

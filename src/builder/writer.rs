//! The background writer: file data leaves the builder in block-aligned runs, written by a
//! thread of their own so that parsing and decompression go on meanwhile.
//!
//! By default the runs are written with `O_DIRECT` where the filesystem allows it, whole: the
//! bytes go from the run's buffer to the device without a copy into the page cache. On the
//! measured virtual machines that was both faster and steadier than the page cache, whose new
//! memory the host often had to fault in again first (see the README). A device slower than
//! [`DIRECT_FLOOR`] (a disk rather than a host's cache) would make every build wait for it, so
//! unless the image is to be durable the writer measures its writes and goes on through the
//! page cache once they prove slower than that, as it does where `O_DIRECT` is refused. Through
//! the page cache, runs go in writes of at most [`PAGE_CACHE_WRITE`] bytes and the kernel
//! writes them out in its own time. The caller chooses how many buffers are in flight and their
//! length. Runs of a source file can also be copied by the kernel (`copy_file_range`), where it
//! agrees to.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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
    /// Copy `len` bytes of `src` from byte `from` to byte `to` of the image; `crc` is their
    /// crc32c.
    Copy {
        src: Arc<File>,
        from: u64,
        to: u64,
        len: u64,
        crc: u32,
    },
}

/// Length of the writer's own buffer, for copies it reads and zeros it writes.
const SCRATCH: usize = 1 << 20;

/// Whether the writes bypass the page cache (`O_DIRECT`), where the filesystem allows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direct {
    /// Through the page cache.
    Off,
    /// Past the page cache, whatever the device's speed.
    On,
    /// Past the page cache while the device takes the writes at [`DIRECT_FLOOR`] or faster.
    #[default]
    UnlessSlow,
}

/// What the writer thread did, when it ends.
pub struct Done {
    /// crc32c of all data written, in order.
    pub crc: u32,
    /// Bytes of [`BackgroundWriter::copy`] jobs the kernel copied.
    pub kernel_copied: u64,
    /// Bytes of [`BackgroundWriter::copy`] jobs read and written back here because the kernel
    /// refused to copy them.
    pub read_copied: u64,
    /// Bytes written with `O_DIRECT`, past the page cache.
    pub direct_written: u64,
}

/// The writer thread and the buffers it hands back.
pub struct BackgroundWriter {
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<AlignedBuf>,
    thread: Option<JoinHandle<io::Result<Done>>>,
}

/// Turns `O_DIRECT` on or off for `file` (for every handle of its open file); false where that
/// cannot be done (the filesystem does not support it).
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

/// The longest single write through the page cache. The kernel gives each write page-cache
/// memory in pieces (folios) as large as the write, up to 2 MiB: longer writes ask it for
/// larger contiguous pieces, which on the measured virtual machines were often slow to come by
/// (perhaps the guest's free memory handed back to the host, to be faulted in again). Writes
/// of 32 and 64 KiB measured steady with `dd`; in the builder, 64 KiB pieces were faster than
/// 16 and 32 KiB ones. See the README.
const PAGE_CACHE_WRITE: usize = 64 << 10;

/// Writes `data` at `offset` through the page cache, [`PAGE_CACHE_WRITE`] bytes at a time.
fn write_through_cache(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut at = offset;
    for piece in data.chunks(PAGE_CACHE_WRITE) {
        file.write_all_at(piece, at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// The slowest `O_DIRECT` writes worth waiting for when the image need not be durable: about
/// what copying into the page cache costs a core (the measured machines did 2.7 GB/s with
/// `O_DIRECT` into their virtual disks, a SATA disk does under 0.6 GB/s).
pub const DIRECT_FLOOR: u64 = 1 << 30;
/// Bytes written with `O_DIRECT` before their speed is judged against [`DIRECT_FLOOR`].
const DIRECT_PROBE: u64 = 64 << 20;

/// Whether `bytes` written with `O_DIRECT` in `busy` (the time spent inside the writes) came
/// slower than [`DIRECT_FLOOR`], once there are enough of them to say.
fn slower_than_floor(bytes: u64, busy: Duration) -> bool {
    bytes >= DIRECT_PROBE && (bytes as f64) < busy.as_secs_f64() * DIRECT_FLOOR as f64
}

/// Where the writer's bytes go: past the page cache or through it.
struct Sink {
    file: File,
    /// Writing with `O_DIRECT` now.
    direct: bool,
    /// May leave `O_DIRECT` for the page cache when the device is slow (not when the image is
    /// to be durable: then the bytes have to reach the device anyway).
    may_leave: bool,
    /// Bytes written with `O_DIRECT`, and the time spent writing them.
    direct_written: u64,
    direct_busy: Duration,
}

impl Sink {
    fn new(file: File, direct: bool, may_leave: bool) -> Self {
        // The flag belongs to the open file, which other handles share: set or clear it here,
        // whatever an earlier writer left.
        let direct = set_direct(&file, direct) && direct;
        Sink {
            file,
            direct,
            may_leave,
            direct_written: 0,
            direct_busy: Duration::ZERO,
        }
    }

    /// Writes `data` at `offset`, a whole number of blocks at a block boundary from an aligned
    /// buffer when `O_DIRECT` is on.
    fn write(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        if !self.direct {
            return write_through_cache(&self.file, data, offset);
        }
        let started = Instant::now();
        match self.file.write_all_at(data, offset) {
            Ok(()) => {
                self.account(data.len() as u64, started.elapsed());
                Ok(())
            }
            // Some filesystems accept the flag but not the alignment: write through the page
            // cache from here on.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                self.leave_direct();
                write_through_cache(&self.file, data, offset)
            }
            Err(e) => Err(e),
        }
    }

    /// Counts `len` bytes written with `O_DIRECT` in `busy`, and leaves `O_DIRECT` when it may
    /// and they have come slower than [`DIRECT_FLOOR`].
    fn account(&mut self, len: u64, busy: Duration) {
        self.direct_written += len;
        self.direct_busy += busy;
        if self.may_leave && slower_than_floor(self.direct_written, self.direct_busy) {
            self.leave_direct();
        }
    }

    /// Goes on through the page cache. Where the flag cannot be cleared (it always can on
    /// Linux), stays past it, and unaligned writes then fail rather than go astray.
    fn leave_direct(&mut self) {
        if set_direct(&self.file, false) {
            self.direct = false;
        }
    }

    /// Makes `len` bytes from `offset` (whole blocks) read as zeros: a hole where the
    /// filesystem can punch one, else zeros written like data.
    fn discard(
        &mut self,
        offset: u64,
        len: u64,
        scratch: &mut Option<AlignedBuf>,
    ) -> io::Result<()> {
        if super::output::punch_hole(&self.file, offset, len) {
            return Ok(());
        }
        self.write_zeros(offset, len, scratch)
    }

    /// Writes `len` bytes of zeros from `offset` (whole blocks).
    fn write_zeros(
        &mut self,
        offset: u64,
        len: u64,
        scratch: &mut Option<AlignedBuf>,
    ) -> io::Result<()> {
        let zeros = scratch.get_or_insert_with(|| AlignedBuf::new(SCRATCH));
        zeros.as_mut_slice().fill(0);
        let mut done = 0u64;
        while done < len {
            let n = crate::ext4::capped(len - done, SCRATCH);
            self.write(&zeros.as_slice()[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }
}

impl Drop for Sink {
    /// Leaves the open file as it was found, also after an error: without `O_DIRECT`.
    fn drop(&mut self) {
        if self.direct {
            self.leave_direct();
        }
    }
}

fn run(
    file: File,
    direct: Direct,
    jobs: Receiver<Job>,
    spare: SyncSender<AlignedBuf>,
) -> io::Result<Done> {
    let mut sink = Sink::new(file, direct != Direct::Off, direct == Direct::UnlessSlow);
    let mut crc = 0u32;
    let mut kernel = true;
    let (mut kernel_copied, mut read_copied) = (0u64, 0u64);
    let mut scratch: Option<AlignedBuf> = None;
    for job in jobs {
        match job {
            Job::Write { offset, buf, len } => {
                let data = &buf.as_slice()[..len];
                sink.write(data, offset)?;
                crc = crc32c::crc32c_append(crc, data);
                // The builder may be gone after an error; then the buffer is simply dropped.
                let _ = spare.send(buf);
            }
            Job::Discard { offset, len } => sink.discard(offset, len, &mut scratch)?,
            Job::Copy {
                src,
                from,
                to,
                len,
                crc: run_crc,
            } => {
                // The kernel's copy goes through the page cache: not for a file written past it.
                let by_kernel = if kernel && !sink.direct {
                    copy_by_kernel(&src, from, &sink.file, to, len)?
                } else {
                    0
                };
                if by_kernel < len {
                    if !sink.direct {
                        // Refused: no further attempts.
                        kernel = false;
                    }
                    let rest = len - by_kernel;
                    copy_by_reading(
                        &src,
                        from + by_kernel,
                        &mut sink,
                        to + by_kernel,
                        rest,
                        &mut scratch,
                    )?;
                    read_copied += rest;
                }
                kernel_copied += by_kernel;
                crc = crc32c::crc32c_combine(
                    crc,
                    run_crc,
                    usize::try_from(len).map_err(io::Error::other)?,
                );
            }
        }
    }
    if sink.direct {
        sink.leave_direct();
    }
    // Cleared before the builder goes on to the metadata, which is written unaligned.
    if sink.direct {
        return Err(io::Error::other("cannot turn O_DIRECT off for the image"));
    }
    Ok(Done {
        crc,
        kernel_copied,
        read_copied,
        direct_written: sink.direct_written,
    })
}

/// Copies with `copy_file_range`, which moves the bytes inside the kernel (or shares the
/// extents, on filesystems that can). Returns the bytes copied: fewer than `len` when the
/// kernel refuses the copy (another filesystem, a filesystem or file that cannot, an old
/// kernel), for the caller to copy the rest itself.
fn copy_by_kernel(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<u64> {
    use rustix::io::Errno;
    let mut done = 0u64;
    while done < len {
        let mut off_in = from + done;
        let mut off_out = to + done;
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
            Ok(0) => return Err(ended(from + done)),
            Ok(n) => done += n as u64,
            Err(Errno::INTR) => {}
            Err(
                Errno::XDEV
                | Errno::INVAL
                | Errno::NOSYS
                | Errno::OPNOTSUPP
                | Errno::PERM
                | Errno::OVERFLOW
                | Errno::TXTBSY,
            ) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Copies through a buffer in user space.
fn copy_by_reading(
    src: &File,
    from: u64,
    dst: &mut Sink,
    to: u64,
    len: u64,
    scratch: &mut Option<AlignedBuf>,
) -> io::Result<()> {
    let scratch = scratch
        .get_or_insert_with(|| AlignedBuf::new(SCRATCH))
        .as_mut_slice();
    let mut done = 0u64;
    while done < len {
        let n = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(scratch.len());
        src.read_exact_at(&mut scratch[..n], from + done)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => ended(from + done),
                _ => e,
            })?;
        dst.write(&scratch[..n], to + done)?;
        done += n as u64;
    }
    Ok(())
}

/// The error for a source that is shorter than it was when it was read.
fn ended(at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the source file ends at byte {at}, inside data read from it before (was it changed during the build?)"),
    )
}

impl BackgroundWriter {
    /// Starts the writer on a handle to `file`, with `buffers` buffers of `len` bytes in all
    /// (one of them is handed out at once by [`BackgroundWriter::take_buffer`]). `direct` says
    /// whether the writes bypass the page cache.
    pub fn start(file: &File, buffers: usize, len: usize, direct: Direct) -> Result<Self> {
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
            .spawn(move || run(handle, direct, jobs_rx, spare_tx))
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

    /// Queues copying `len` bytes of `src` from byte `from` to byte `to` of the image, after
    /// every write queued before; `crc` is the crc32c of those bytes.
    pub fn copy(&mut self, src: Arc<File>, from: u64, to: u64, len: u64, crc: u32) -> Result<()> {
        self.send(Job::Copy {
            src,
            from,
            to,
            len,
            crc,
        })
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

    /// Waits for every queued write and says what was done.
    pub fn finish(mut self) -> Result<Done> {
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(done))) => Ok(done),
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
    fn page_cache_writes_are_split_but_land_whole() {
        // Lengths around the piece size, at an offset that is not a multiple of it.
        for len in [
            1,
            PAGE_CACHE_WRITE,
            PAGE_CACHE_WRITE + 1,
            3 * PAGE_CACHE_WRITE + 4096,
        ] {
            let file = tempfile::tempfile().unwrap();
            let data: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i % 253).unwrap() + 1)
                .collect();
            write_through_cache(&file, &data, 12_288).unwrap();
            let mut back = vec![0u8; 12_288 + len];
            file.read_exact_at(&mut back, 0).unwrap();
            assert!(back[..12_288].iter().all(|&b| b == 0), "len {len}");
            assert_eq!(&back[12_288..], &data[..], "len {len}");
        }
    }

    #[test]
    fn direct_writes_are_judged_after_the_probe() {
        let gib = Duration::from_secs(1);
        // Too few bytes to say, however slow.
        assert!(!slower_than_floor(DIRECT_PROBE - 1, gib * 100));
        // At the floor or faster: stay.
        assert!(!slower_than_floor(DIRECT_FLOOR, gib));
        assert!(!slower_than_floor(DIRECT_PROBE, Duration::from_millis(1)));
        // Slower: leave.
        assert!(slower_than_floor(
            DIRECT_FLOOR,
            gib + Duration::from_millis(1)
        ));
        assert!(slower_than_floor(DIRECT_PROBE, gib));
    }

    #[test]
    fn a_slow_device_sends_the_writes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = File::create(&path).unwrap();
        let mut data = AlignedBuf::new(8192);
        data.as_mut_slice().fill(7);

        // Durable: never leaves, however slow.
        let mut durable = Sink::new(file.try_clone().unwrap(), true, false);
        if !durable.direct {
            eprintln!("skipped: the temporary directory's filesystem refuses O_DIRECT");
            return;
        }
        durable.account(DIRECT_PROBE, Duration::from_secs(60));
        assert!(durable.direct);
        drop(durable);
        assert!(!flags_direct(&file), "dropping the sink clears O_DIRECT");

        let mut sink = Sink::new(file.try_clone().unwrap(), true, true);
        sink.write(data.as_slice(), 0).unwrap();
        assert_eq!(sink.direct_written, 8192);
        sink.account(DIRECT_PROBE, Duration::from_secs(60));
        assert!(!sink.direct, "left O_DIRECT after a slow probe");
        // An unaligned write works now: it goes through the page cache.
        sink.write(&[9u8; 100], 8192 + 1).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 8192 + 101);
        assert!(back[..8192].iter().all(|&b| b == 7));
        assert_eq!(back[8192], 0);
        assert!(back[8193..].iter().all(|&b| b == 9));
    }

    /// Whether `O_DIRECT` is set on `file`'s open file.
    fn flags_direct(file: &File) -> bool {
        rustix::fs::fcntl_getfl(file)
            .unwrap()
            .contains(rustix::fs::OFlags::DIRECT)
    }

    #[test]
    fn zeros_for_freed_blocks_are_written_past_the_page_cache_too() {
        let file = tempfile::tempfile().unwrap();
        let mut data = AlignedBuf::new(3 * SCRATCH);
        data.as_mut_slice().fill(5);
        let mut sink = Sink::new(file.try_clone().unwrap(), true, false);
        if !sink.direct {
            eprintln!("skipped: the temporary directory's filesystem refuses O_DIRECT");
            return;
        }
        sink.write(data.as_slice(), 0).unwrap();
        // As where holes cannot be punched: more than one scratch buffer of zeros, from the
        // writer's own aligned buffer (an unaligned one would be refused).
        let mut scratch = None;
        sink.write_zeros(4096, (SCRATCH + 8192) as u64, &mut scratch)
            .unwrap();
        assert!(sink.direct, "written past the page cache, not refused");
        assert_eq!(sink.direct_written, (4 * SCRATCH + 8192) as u64);
        drop(sink);
        let mut back = vec![0u8; 3 * SCRATCH];
        file.read_exact_at(&mut back, 0).unwrap();
        assert!(back[..4096].iter().all(|&b| b == 5));
        assert!(back[4096..4096 + SCRATCH + 8192].iter().all(|&b| b == 0));
        assert!(back[4096 + SCRATCH + 8192..].iter().all(|&b| b == 5));
    }

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
        let mut w = BackgroundWriter::start(&file, 2, 3 * BLOCK_SIZE, Direct::Off).unwrap();
        for (i, byte) in [1u8, 2, 3].into_iter().enumerate() {
            let mut b = w.take_buffer().unwrap();
            b.as_mut_slice().fill(byte);
            w.write((i * 3 * BLOCK_SIZE) as u64, b, 3 * BLOCK_SIZE)
                .unwrap();
        }
        w.discard(3 * BLOCK_SIZE as u64, 3 * BLOCK_SIZE as u64)
            .unwrap();
        let crc = w.finish().unwrap().crc;
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

    #[test]
    fn copies_by_the_kernel_and_falls_back_when_it_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.path().join(name))
                .unwrap()
        };
        let src = Arc::new(open("src"));
        let data: Vec<u8> = (0..5 * 4096u32).map(|i| (i % 253) as u8 + 1).collect();
        src.write_all_at(&data, 0).unwrap();
        let file = open("out");
        let mut w = BackgroundWriter::start(&file, 2, 4096, Direct::Off).unwrap();
        let crc = crc32c::crc32c(&data[4096..]);
        w.copy(src.clone(), 4096, 8192, 4 * 4096, crc).unwrap();
        let done = w.finish().unwrap();
        assert_eq!((done.kernel_copied, done.read_copied), (4 * 4096, 0));
        assert_eq!(done.crc, crc);
        let mut back = vec![0u8; 4 * 4096];
        file.read_exact_at(&mut back, 8192).unwrap();
        assert!(back == data[4096..]);

        // Overlapping ranges of one file: the kernel refuses (EINVAL); read and written here.
        let mut w = BackgroundWriter::start(&src, 2, 4096, Direct::Off).unwrap();
        w.copy(
            src.clone(),
            0,
            4096,
            2 * 4096,
            crc32c::crc32c(&data[..8192]),
        )
        .unwrap();
        let done = w.finish().unwrap();
        assert_eq!((done.kernel_copied, done.read_copied), (0, 2 * 4096));
        let mut back = vec![0u8; 2 * 4096];
        src.read_exact_at(&mut back, 4096).unwrap();
        assert!(back == data[..8192]);
    }

    #[test]
    fn a_source_shorter_than_the_copy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = Arc::new(File::create(dir.path().join("src")).unwrap());
        src.write_all_at(&[1u8; 4096], 0).unwrap();
        let src = Arc::new(File::open(dir.path().join("src")).unwrap());
        let file = tempfile::tempfile().unwrap();
        let mut w = BackgroundWriter::start(&file, 2, 4096, Direct::Off).unwrap();
        w.copy(src, 0, 0, 8192, 0).unwrap();
        assert!(w.finish().is_err());
    }
}

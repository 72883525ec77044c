//! File data on its way into the image: read straight into a large aligned buffer, blocks of
//! zeros dropped (they become holes), every other block given the next free block, and full
//! buffers handed to the background writer ([`super::writer`]) in large runs. Each byte is
//! copied once from the reader into the buffer and written once.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::writer::{AlignedBuf, BackgroundWriter, Direct};

use crate::error::{Error, ErrorKind, Result};
use crate::ext4::extent::{Extent, EXT_INIT_MAX_LEN};
use crate::ext4::{capped, fit};
use crate::layout::alloc::BlockAllocator;

/// Blocks taken from the allocator at a time; what a file does not use goes to the next one.
const ALLOC_CHUNK: u64 = 2048;
/// Logical blocks a file may have: extents address 32-bit block numbers (16 TiB of 4 KiB
/// blocks, 4 TiB of 1 KiB blocks).
const MAX_FILE_BLOCKS: u64 = 1 << 32;

/// The error for a file past [`MAX_FILE_BLOCKS`].
fn too_large(bs: usize) -> Error {
    Error::limit(format!(
        "file larger than ext4's limit of {} TiB with {bs}-byte blocks",
        (MAX_FILE_BLOCKS * bs as u64) >> 40
    ))
}

/// Whether a block holds only zeros.
pub fn is_zero(block: &[u8]) -> bool {
    block
        .chunks(64)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// What the data phase leaves behind.
pub struct DataDone {
    /// The allocator, with blocks taken but not used given back.
    pub alloc: BlockAllocator,
    /// crc32c of every data byte written, in order.
    pub crc: u32,
    /// Bytes of [`FileSession::copy_from_file`] the kernel copied.
    pub kernel_copied: u64,
    /// Bytes of [`FileSession::copy_from_file`] copied through user space because the kernel
    /// refused.
    pub read_copied: u64,
    /// Bytes written past the page cache (`O_DIRECT`).
    pub direct_written: u64,
}

/// How file data is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct Writes {
    /// Whether to bypass the page cache (`O_DIRECT`) where the filesystem allows it.
    pub direct: Direct,
    /// Let the kernel copy the data of [`FileSession::copy_from_file`] (`copy_file_range`).
    pub kernel_copy: bool,
}

/// Bytes of a source file looked at in one go by [`FileSession::copy_from_file`].
const SCAN: usize = 512 << 10;
/// Length of one run of file data through the page cache (a multiple of every block size);
/// the writer hands each to the kernel in pieces of 64 KiB.
const BUFFERED_RUN: usize = 256 << 10;

/// Writes file data into the image.
pub struct DataWriter {
    alloc: BlockAllocator,
    /// Block size in bytes.
    bs: usize,
    writer: BackgroundWriter,
    buf: AlignedBuf,
    /// Bytes at the start of `buf` that have blocks assigned, from `buf_start` on.
    committed: usize,
    /// End of the bytes read into `buf`; `[committed, filled)` are not yet placed.
    filled: usize,
    buf_start: u64,
    run_next: u64,
    run_end: u64,
    cancel: Option<Arc<AtomicBool>>,
    /// Says what the block limit is, for the error when it is reached.
    limit_reason: String,
    /// File bytes taken in so far, holes read as zeros included.
    taken: u64,
    /// Most file bytes taken in before the build stops (a decompression bomb of zeros takes no
    /// blocks, but still takes time).
    max_taken: u64,
    /// Where [`FileSession::copy_from_file`] looks for blocks of zeros.
    scan: Vec<u8>,
    /// How the data is written.
    writes: Writes,
}

impl DataWriter {
    /// A writer into `file` that takes blocks from `alloc` (of its block size) and buffers `buffer` bytes while
    /// another buffer of that size is being written. `limit_reason` completes "the image would
    /// grow past ..." when the allocator's limit is reached; `max_taken` bounds the file bytes
    /// read. `writes` says how the data is written.
    pub fn new(
        file: &File,
        alloc: BlockAllocator,
        buffer: usize,
        cancel: Option<Arc<AtomicBool>>,
        limit_reason: String,
        max_taken: u64,
        writes: Writes,
    ) -> Result<Self> {
        let bs = alloc.block_size().bytes();
        let buffer = buffer.max(64 << 10) / bs * bs;
        // Through the page cache, the same bytes in flight go in shorter runs: each run is
        // copied into the page cache while the bytes just read into it are still in a CPU
        // cache, which on the measured machines cost less than half the system time of runs of
        // 1 MiB and more (see the README). `O_DIRECT` writes skip that copy and want long runs
        // (and keep them if the writer turns to the page cache part of the way).
        let (count, len) = if writes.direct != Direct::Off || buffer <= BUFFERED_RUN {
            (2, buffer)
        } else {
            (buffer / BUFFERED_RUN, BUFFERED_RUN)
        };
        let mut writer = BackgroundWriter::start(file, count, len, writes.direct)?;
        let buf = writer.take_buffer()?;
        Ok(DataWriter {
            alloc,
            bs,
            writer,
            buf,
            committed: 0,
            filled: 0,
            buf_start: 0,
            run_next: 0,
            run_end: 0,
            cancel,
            limit_reason,
            taken: 0,
            max_taken,
            scan: Vec::new(),
            writes,
        })
    }

    /// Starts writing one file's data, on a block of its own. Bytes a failed file (one whose
    /// session ended without [`FileSession::finish`]) left past its last placed block have no
    /// block and belong to no inode: they are dropped, or this file would start inside them.
    pub fn begin(&mut self) -> FileSession<'_> {
        self.filled = self.committed;
        FileSession {
            w: self,
            block: 0,
            extents: Vec::new(),
        }
    }

    /// Makes freed extents read as zeros in the image (they are free blocks from now on).
    pub fn discard(&mut self, extents: &[Extent]) -> Result<()> {
        if extents.is_empty() {
            return Ok(());
        }
        self.flush_committed()?;
        for e in extents {
            let bs = self.bs as u64;
            self.writer
                .discard(e.ee_start * bs, u64::from(e.len()) * bs)?;
        }
        Ok(())
    }

    /// Ends the data phase: waits for every write and returns the allocator, with blocks taken
    /// but not used given back, a crc32c of every data byte written, in order (a cheap
    /// fingerprint of the content), and what the copies from files did.
    pub fn finish(mut self) -> Result<DataDone> {
        self.flush_committed()?;
        self.alloc.give_back(self.run_next, self.run_end);
        let done = self.writer.finish()?;
        Ok(DataDone {
            alloc: self.alloc,
            crc: done.crc,
            kernel_copied: done.kernel_copied,
            read_copied: done.read_copied,
            direct_written: done.direct_written,
        })
    }

    /// Hands the committed bytes to the writer and carries the unplaced ones over to a fresh
    /// buffer.
    fn flush_committed(&mut self) -> Result<()> {
        if self.committed > 0 {
            let mut next = self.writer.take_buffer()?;
            let tail = self.filled - self.committed;
            next.as_mut_slice()[..tail]
                .copy_from_slice(&self.buf.as_slice()[self.committed..self.filled]);
            let full = std::mem::replace(&mut self.buf, next);
            self.writer
                .write(self.buf_start * self.bs as u64, full, self.committed)?;
            self.buf_start += (self.committed / self.bs) as u64;
            self.filled = tail;
            self.committed = 0;
        }
        Ok(())
    }

    fn next_block(&mut self, hint: u64) -> Result<u64> {
        if self.run_next == self.run_end {
            let run = self
                .alloc
                .alloc(hint.clamp(ALLOC_CHUNK, u64::from(EXT_INIT_MAX_LEN)))
                .map_err(|_| {
                    Error::limit(format!("the image would grow past {}", self.limit_reason))
                })?;
            self.run_next = run.start;
            self.run_end = run.end();
        }
        let b = self.run_next;
        self.run_next += 1;
        Ok(b)
    }

    /// Counts `n` more file bytes taken in, failing past the limit.
    fn take(&mut self, n: u64) -> Result<()> {
        self.taken += n;
        if self.taken > self.max_taken {
            return Err(Error::limit(format!(
                "more than {} bytes of file data (the maximum image size); stopping",
                self.max_taken
            )));
        }
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// A range of a file, read with positioned reads.
struct FileRange<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.end - self.at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// One file's data being written.
pub struct FileSession<'a> {
    w: &'a mut DataWriter,
    /// Logical block of `w.buf[w.committed]`.
    block: u64,
    extents: Vec<Extent>,
}

impl FileSession<'_> {
    /// The logical byte position the next byte goes to.
    pub fn position(&self) -> u64 {
        self.block * self.w.bs as u64 + (self.w.filled - self.w.committed) as u64
    }

    /// Places the whole blocks read so far.
    fn place_whole_blocks(&mut self) -> Result<()> {
        let bs = self.w.bs;
        let mut upto = self.w.committed + (self.w.filled - self.w.committed) / bs * bs;
        while self.w.committed < upto {
            let at = self.w.committed;
            if is_zero(&self.w.buf.as_slice()[at..at + bs]) {
                // A hole: drop the block from the buffer.
                self.w
                    .buf
                    .as_mut_slice()
                    .copy_within(at + bs..self.w.filled, at);
                self.w.filled -= bs;
                upto -= bs;
                self.block += 1;
                continue;
            }
            if self.block >= MAX_FILE_BLOCKS {
                return Err(too_large(bs));
            }
            let b = self.w.next_block(((upto - at) / bs) as u64)?;
            if self.w.committed == 0 {
                self.w.buf_start = b;
            } else if b != self.w.buf_start + (self.w.committed / bs) as u64 {
                self.w.flush_committed()?;
                upto -= at;
                self.w.buf_start = b;
            }
            self.w.committed += bs;
            self.record(b)?;
        }
        Ok(())
    }

    /// Maps the current logical block to image block `b`, and moves on to the next. Callers
    /// stop files at [`MAX_FILE_BLOCKS`]; a block past 32 bits is refused all the same.
    fn record(&mut self, b: u64) -> Result<()> {
        match self.extents.last_mut() {
            Some(e)
                if u64::from(e.ee_block) + u64::from(e.len()) == self.block
                    && e.ee_start + u64::from(e.len()) == b
                    && e.len() < EXT_INIT_MAX_LEN =>
            {
                e.ee_len += 1;
            }
            _ => self.extents.push(Extent {
                ee_block: fit("ee_block", self.block)?,
                ee_len: 1,
                ee_start: b,
            }),
        }
        self.block += 1;
        Ok(())
    }

    /// Makes room for at least `need` more bytes in the buffer.
    fn make_room(&mut self, need: usize) -> Result<()> {
        if self.w.buf.as_slice().len() - self.w.filled < need {
            self.w.flush_committed()?;
        }
        Ok(())
    }

    /// Copies from `reader` until it ends or `limit` bytes were copied; returns the count.
    pub fn copy(&mut self, reader: &mut dyn Read, limit: Option<u64>) -> Result<u64> {
        let mut copied = 0u64;
        loop {
            let want = match limit {
                Some(l) if copied >= l => break,
                Some(l) => l - copied,
                None => u64::MAX,
            };
            if self.w.cancelled() {
                return Err(Error::new(ErrorKind::Cancelled, "build cancelled"));
            }
            self.make_room(64 * 1024)?;
            let space = self.w.buf.as_slice().len() - self.w.filled;
            let n = space.min(usize::try_from(want).unwrap_or(usize::MAX));
            let filled = self.w.filled;
            let got = match reader.read(&mut self.w.buf.as_mut_slice()[filled..filled + n]) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.w.filled += got;
            copied += got as u64;
            self.w.take(got as u64)?;
            self.place_whole_blocks()?;
        }
        Ok(copied)
    }

    /// Copies `len` bytes of `src` from byte `offset` on; the image is the same as
    /// [`FileSession::copy`] makes of the same bytes. A source shorter than `offset + len` is an
    /// error. The bytes are read with positioned reads, unless the writer was made with
    /// `Writes::kernel_copy`: then the whole blocks are only looked at for zeros (which
    /// become holes, as in [`FileSession::copy`]), and the others are copied into the image by
    /// the kernel (`copy_file_range`), or read and written back where it refuses.
    pub fn copy_from_file(&mut self, src: &Arc<File>, offset: u64, len: u64) -> Result<()> {
        let bs = self.w.bs;
        let whole = if !self.w.writes.kernel_copy || self.w.writes.direct != Direct::Off {
            // Read like any other stream (the kernel's copy goes through the page cache, so it
            // is not for data that bypasses it).
            0
        } else if self.w.filled == self.w.committed {
            len / bs as u64 * bs as u64
        } else {
            // Not at a block boundary (after a jump inside a block): read it all.
            0
        };
        if whole > 0 {
            // What is in the buffer goes first.
            self.w.flush_committed()?;
            let mut scan = std::mem::take(&mut self.w.scan);
            scan.resize(SCAN, 0);
            let result = self.scan_and_copy(src, offset, whole, &mut scan);
            self.w.scan = scan;
            result?;
        }
        let mut rest = FileRange {
            file: src,
            at: offset + whole,
            end: offset + len,
        };
        let n = self.copy(&mut rest, Some(len - whole))?;
        if n < len - whole {
            return Err(Error::corrupt(format!(
                "the source ends at byte {}, before the {len} bytes from byte {offset}",
                offset + whole + n
            )));
        }
        Ok(())
    }

    /// The whole blocks of [`FileSession::copy_from_file`].
    fn scan_and_copy(
        &mut self,
        src: &Arc<File>,
        offset: u64,
        len: u64,
        scan: &mut [u8],
    ) -> Result<()> {
        let bs = self.w.bs;
        let mut done = 0u64;
        while done < len {
            if self.w.cancelled() {
                return Err(Error::new(ErrorKind::Cancelled, "build cancelled"));
            }
            let n = usize::try_from(len - done)
                .unwrap_or(usize::MAX)
                .min(scan.len());
            let chunk = &mut scan[..n];
            src.read_exact_at(chunk, offset + done).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    Error::corrupt(format!(
                        "the source ends before the {len} bytes from byte {offset}"
                    ))
                } else {
                    Error::io("cannot read the source", e)
                }
            })?;
            self.w.take(n as u64)?;
            // A run of blocks that follow each other both in the source and in the image.
            let mut run: Option<(u64, u64, u64, u32)> = None; // from, to, len, crc
            for (i, block) in chunk.chunks(bs).enumerate() {
                let from = offset + done + (i * bs) as u64;
                if is_zero(block) {
                    self.block += 1;
                    continue;
                }
                if self.block >= MAX_FILE_BLOCKS {
                    return Err(too_large(bs));
                }
                let left = (len - done) / bs as u64 - i as u64;
                let b = self.w.next_block(left)?;
                let to = b * bs as u64;
                match &mut run {
                    Some((f, t, l, crc)) if *f + *l == from && *t + *l == to => {
                        *l += bs as u64;
                        *crc = crc32c::crc32c_append(*crc, block);
                    }
                    _ => {
                        if let Some((f, t, l, crc)) = run.take() {
                            self.w.writer.copy(src.clone(), f, t, l, crc)?;
                        }
                        run = Some((from, to, bs as u64, crc32c::crc32c(block)));
                    }
                }
                self.record(b)?;
            }
            if let Some((f, t, l, crc)) = run {
                self.w.writer.copy(src.clone(), f, t, l, crc)?;
            }
            done += n as u64;
        }
        Ok(())
    }

    /// Appends `n` zero bytes without reading them: a hole where whole blocks are skipped.
    pub fn skip_to(&mut self, offset: u64) -> Result<()> {
        let bs = self.w.bs;
        let pos = self.position();
        if offset < pos {
            return Err(Error::corrupt(format!(
                "data segment at offset {offset} goes back before {pos}"
            )));
        }
        if offset == pos {
            return Ok(());
        }
        let partial = self.w.filled - self.w.committed;
        if partial > 0 {
            if offset / bs as u64 == self.block {
                // Still inside the block being filled.
                // Inside one block: less than `bs`.
                let gap = capped(offset - pos, bs);
                self.w.buf.as_mut_slice()[self.w.filled..self.w.filled + gap].fill(0);
                self.w.filled += gap;
                return Ok(());
            }
            self.pad_block()?;
        }
        self.block = offset / bs as u64;
        let lead = capped(offset % bs as u64, bs);
        self.make_room(bs)?;
        self.w.buf.as_mut_slice()[self.w.filled..self.w.filled + lead].fill(0);
        self.w.filled += lead;
        Ok(())
    }

    /// Pads a partly filled block with zeros and places it.
    fn pad_block(&mut self) -> Result<()> {
        let bs = self.w.bs;
        let partial = self.w.filled - self.w.committed;
        if !partial.is_multiple_of(bs) {
            let pad = bs - partial % bs;
            self.make_room(pad)?;
            self.w.buf.as_mut_slice()[self.w.filled..self.w.filled + pad].fill(0);
            self.w.filled += pad;
        }
        self.place_whole_blocks()
    }

    /// Ends the file at `size` bytes (at least the position reached) and returns its extents.
    pub fn finish(mut self, size: u64) -> Result<Vec<Extent>> {
        if size < self.position() {
            return Err(Error::corrupt(format!(
                "file size {size} is less than its {} bytes of data",
                self.position()
            )));
        }
        if size.div_ceil(self.w.bs as u64) > MAX_FILE_BLOCKS {
            return Err(too_large(self.w.bs));
        }
        self.pad_block()?;
        if self.w.committed != self.w.filled {
            return Err(Error::internal(format!(
                "{} bytes of file data were left unplaced after its last block",
                self.w.filled - self.w.committed
            )));
        }
        Ok(self.extents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    use crate::ext4::BlockSize;

    const BS: usize = 4096;

    fn writer() -> (DataWriter, File) {
        let file = tempfile::tempfile().unwrap();
        let w = DataWriter::new(
            &file,
            BlockAllocator::new(BlockSize::K4, 1, 1 << 20),
            64 * 1024,
            None,
            "the limit".into(),
            u64::MAX,
            Writes::default(),
        )
        .unwrap();
        (w, file)
    }

    fn read_back(file: &File, extents: &[Extent], size: u64) -> Vec<u8> {
        let mut out = vec![0u8; usize::try_from(size).unwrap()];
        for e in extents {
            let from = u64::from(e.ee_block) * BS as u64;
            let len = capped(
                u64::from(e.len()) * BS as u64,
                usize::try_from(size - from).unwrap(),
            );
            let from = usize::try_from(from).unwrap();
            file.read_exact_at(&mut out[from..from + len], e.ee_start * BS as u64)
                .unwrap();
        }
        out
    }

    #[test]
    fn data_round_trips_with_zero_blocks_as_holes() {
        let (mut w, file) = writer();
        let mut data = vec![0u8; 5 * BS + 100];
        data[..BS].fill(1);
        data[3 * BS..4 * BS].fill(3);
        data[5 * BS..].fill(5);
        let mut s = w.begin();
        assert_eq!(s.copy(&mut &data[..], None).unwrap(), data.len() as u64);
        let extents = s.finish(data.len() as u64).unwrap();
        w.finish().unwrap();
        // Blocks 0, 3 and 5 hold data; 1, 2 and 4 are holes.
        assert_eq!(extents.len(), 3);
        assert_eq!(
            extents.iter().map(|e| e.ee_block).collect::<Vec<_>>(),
            [0, 3, 5]
        );
        assert_eq!(
            extents[1].ee_start,
            extents[0].ee_start + 1,
            "holes take no blocks"
        );
        assert_eq!(read_back(&file, &extents, data.len() as u64), data);
    }

    #[test]
    fn consecutive_files_pack_and_large_reads_span_flushes() {
        let (mut w, file) = writer();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut s = w.begin();
        s.copy(&mut &big[..], None).unwrap();
        let e1 = s.finish(big.len() as u64).unwrap();
        let small = b"hello".to_vec();
        let mut s = w.begin();
        s.copy(&mut &small[..], None).unwrap();
        let e2 = s.finish(5).unwrap();
        w.finish().unwrap();
        assert_eq!(e1.len(), 1);
        assert_eq!(e2[0].ee_start, e1[0].ee_start + u64::from(e1[0].len()));
        assert_eq!(read_back(&file, &e1, big.len() as u64), big);
        assert_eq!(read_back(&file, &e2, 5), small);
    }

    #[test]
    fn buffered_writes_in_short_runs_round_trip() {
        // A 1 MiB buffer through the page cache: four runs of BUFFERED_RUN in flight.
        let file = tempfile::tempfile().unwrap();
        let mut w = DataWriter::new(
            &file,
            BlockAllocator::new(BlockSize::K4, 1, 1 << 20),
            1 << 20,
            None,
            "the limit".into(),
            u64::MAX,
            Writes::default(),
        )
        .unwrap();
        let mut data: Vec<u8> = (0..5 * (1u32 << 20) + 300)
            .map(|i| (i % 251) as u8 + 1)
            .collect();
        // Zero blocks at run boundaries and inside runs become holes.
        for at in [0, BUFFERED_RUN, 3 * BUFFERED_RUN + 5 * BS, 2 << 20] {
            data[at..at + BS].fill(0);
        }
        let mut s = w.begin();
        // Odd-sized reads, so that blocks straddle them.
        for piece in data.chunks(100_003) {
            s.copy(&mut &piece[..], None).unwrap();
        }
        let extents = s.finish(data.len() as u64).unwrap();
        let done = w.finish().unwrap();
        let blocks: u64 = extents.iter().map(|e| u64::from(e.len())).sum();
        assert_eq!(blocks, (data.len() as u64).div_ceil(BS as u64) - 4);
        assert_eq!(read_back(&file, &extents, data.len() as u64), data);
        let written: Vec<u8> = data
            .chunks(BS)
            .filter(|b| !is_zero(b))
            .flat_map(|b| {
                let mut b = b.to_vec();
                b.resize(BS, 0);
                b
            })
            .collect();
        assert_eq!(done.crc, crc32c::crc32c(&written));
    }

    #[test]
    fn sparse_segments_at_unaligned_offsets() {
        let (mut w, file) = writer();
        let mut s = w.begin();
        s.skip_to(100).unwrap();
        s.copy(&mut &[7u8; 50][..], None).unwrap();
        s.skip_to(10 * BS as u64 + 5).unwrap();
        s.copy(&mut &[9u8; 10][..], None).unwrap();
        let size = 20 * BS as u64;
        let extents = s.finish(size).unwrap();
        w.finish().unwrap();
        assert_eq!(
            extents.iter().map(|e| e.ee_block).collect::<Vec<_>>(),
            [0, 10]
        );
        let back = read_back(&file, &extents, size);
        let mut want = vec![0u8; usize::try_from(size).unwrap()];
        want[100..150].fill(7);
        want[10 * BS + 5..10 * BS + 15].fill(9);
        assert_eq!(back, want);
    }

    #[test]
    fn going_backwards_or_short_size_is_an_error() {
        let (mut w, _file) = writer();
        let mut s = w.begin();
        s.copy(&mut &[1u8; 10][..], None).unwrap();
        assert!(s.skip_to(5).is_err());
        assert!(s.finish(3).is_err());
    }

    #[test]
    fn limit_is_reported() {
        let file = tempfile::tempfile().unwrap();
        let mut w = DataWriter::new(
            &file,
            BlockAllocator::new(BlockSize::K4, 1, 10),
            64 * 1024,
            None,
            "the limit".into(),
            u64::MAX,
            Writes::default(),
        )
        .unwrap();
        let mut s = w.begin();
        let err = s.copy(&mut &vec![1u8; 20 * BS][..], None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    }
}

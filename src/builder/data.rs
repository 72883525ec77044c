//! File data on its way into the image: read straight into a large aligned buffer, blocks of
//! zeros dropped (they become holes), every other block given the next free block, and full
//! buffers handed to the background writer ([`super::writer`]) in large runs. Each byte is
//! copied once from the reader into the buffer and written once.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::writer::{AlignedBuf, BackgroundWriter};

use crate::error::{Error, ErrorKind, Result};
use crate::ext4::extent::{Extent, EXT_INIT_MAX_LEN};
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
}

impl DataWriter {
    /// A writer into `file` that takes blocks from `alloc` (of its block size) and buffers `buffer` bytes while
    /// another buffer of that size is being written. `limit_reason` completes "the image would
    /// grow past ..." when the allocator's limit is reached; `max_taken` bounds the file bytes
    /// read.
    pub fn new(
        file: &File,
        alloc: BlockAllocator,
        buffer: usize,
        cancel: Option<Arc<AtomicBool>>,
        limit_reason: String,
        max_taken: u64,
    ) -> Result<Self> {
        let bs = alloc.block_size().bytes();
        let buffer = buffer.max(64 << 10) / bs * bs;
        let mut writer = BackgroundWriter::start(file, 2, buffer)?;
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
        })
    }

    /// Starts writing one file's data.
    pub fn begin(&mut self) -> FileSession<'_> {
        debug_assert_eq!(self.committed, self.filled);
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
    /// but not used given back, and a crc32c of every data byte written, in order: a cheap
    /// fingerprint of the content.
    pub fn into_allocator(mut self) -> Result<(BlockAllocator, u32)> {
        self.flush_committed()?;
        self.alloc.give_back(self.run_next, self.run_end);
        let (crc, _direct) = self.writer.finish()?;
        Ok((self.alloc, crc))
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

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
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
            match self.extents.last_mut() {
                Some(e)
                    if u64::from(e.ee_block) + u64::from(e.len()) == self.block
                        && e.ee_start + u64::from(e.len()) == b
                        && e.len() < EXT_INIT_MAX_LEN =>
                {
                    e.ee_len += 1;
                }
                _ => self.extents.push(Extent {
                    ee_block: self.block as u32,
                    ee_len: 1,
                    ee_start: b,
                }),
            }
            self.block += 1;
        }
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
            self.w.taken += got as u64;
            if self.w.taken > self.w.max_taken {
                return Err(Error::limit(format!(
                    "more than {} bytes of file data (the maximum image size); stopping",
                    self.w.max_taken
                )));
            }
            self.place_whole_blocks()?;
        }
        Ok(copied)
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
                let gap = (offset - pos) as usize;
                self.w.buf.as_mut_slice()[self.w.filled..self.w.filled + gap].fill(0);
                self.w.filled += gap;
                return Ok(());
            }
            self.pad_block()?;
        }
        self.block = offset / bs as u64;
        let lead = (offset % bs as u64) as usize;
        self.make_room(bs)?;
        self.w.buf.as_mut_slice()[self.w.filled..self.w.filled + lead].fill(0);
        self.w.filled += lead;
        Ok(())
    }

    /// Pads a partly filled block with zeros and places it.
    fn pad_block(&mut self) -> Result<()> {
        let bs = self.w.bs;
        let partial = self.w.filled - self.w.committed;
        if partial % bs != 0 {
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
        debug_assert_eq!(self.w.committed, self.w.filled);
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
        )
        .unwrap();
        (w, file)
    }

    fn read_back(file: &File, extents: &[Extent], size: u64) -> Vec<u8> {
        let mut out = vec![0u8; size as usize];
        for e in extents {
            let from = u64::from(e.ee_block) * BS as u64;
            let len = (u64::from(e.len()) * BS as u64).min(size - from) as usize;
            file.read_exact_at(
                &mut out[from as usize..from as usize + len],
                e.ee_start * BS as u64,
            )
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
        w.into_allocator().unwrap();
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
        w.into_allocator().unwrap();
        assert_eq!(e1.len(), 1);
        assert_eq!(e2[0].ee_start, e1[0].ee_start + u64::from(e1[0].len()));
        assert_eq!(read_back(&file, &e1, big.len() as u64), big);
        assert_eq!(read_back(&file, &e2, 5), small);
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
        w.into_allocator().unwrap();
        assert_eq!(
            extents.iter().map(|e| e.ee_block).collect::<Vec<_>>(),
            [0, 10]
        );
        let back = read_back(&file, &extents, size);
        let mut want = vec![0u8; size as usize];
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
        )
        .unwrap();
        let mut s = w.begin();
        let err = s.copy(&mut &vec![1u8; 20 * BS][..], None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    }
}

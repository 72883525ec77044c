//! The output file: created under a temporary name beside the destination, renamed over it only
//! when the image is complete and synced, removed on any failure.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::ext4::BLOCK_SIZE;

/// The image file while it is being written.
pub struct Output {
    temp: NamedTempFile,
    dest: PathBuf,
}

impl Output {
    /// Creates a temporary file in the directory of `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| {
                Error::io(
                    format!("cannot create a temporary file in {}", dir.display()),
                    e,
                )
            })?;
        Ok(Output {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// Where the image goes.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary path, for cleanup by a signal handler.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Syncs the file and renames it over the destination.
    pub fn commit(self) -> Result<()> {
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io("cannot sync the image", e))?;
        let dest = self.dest;
        self.temp.persist(&dest).map_err(|e| {
            Error::io(
                format!("cannot rename the image to {}", dest.display()),
                e.error,
            )
        })?;
        Ok(())
    }
}

/// Writes `data` at block `block` of `file`.
pub fn write_blocks(file: &File, block: u64, data: &[u8]) -> io::Result<()> {
    file.write_all_at(data, block * BLOCK_SIZE as u64)
}

/// Buffers writes to consecutive blocks into large `pwrite` calls.
pub struct BlockSink<'a> {
    file: &'a File,
    buf: Vec<u8>,
    start: u64,
    cap: usize,
}

impl<'a> BlockSink<'a> {
    /// A sink that writes in runs of up to `cap` bytes.
    pub fn new(file: &'a File, cap: usize) -> Self {
        BlockSink {
            file,
            buf: Vec::with_capacity(cap),
            start: 0,
            cap,
        }
    }

    /// Queues whole blocks for block `block` onwards.
    pub fn write(&mut self, block: u64, data: &[u8]) -> io::Result<()> {
        debug_assert_eq!(data.len() % BLOCK_SIZE, 0);
        let next = self.start + (self.buf.len() / BLOCK_SIZE) as u64;
        if self.buf.is_empty() || block != next || self.buf.len() + data.len() > self.cap {
            self.flush()?;
            self.start = block;
        }
        if data.len() >= self.cap {
            return write_blocks(self.file, block, data);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Writes out what is queued.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            write_blocks(self.file, self.start, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Makes `count` blocks from `block` read as zeros and take no space: punches a hole, or writes
/// zeros where the filesystem cannot punch.
pub fn discard(file: &File, block: u64, count: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    let (offset, len) = (block * BLOCK_SIZE as u64, count * BLOCK_SIZE as u64);
    match fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    ) {
        Ok(()) => Ok(()),
        Err(_) => {
            let zeros = vec![0u8; BLOCK_SIZE * 256];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], offset + done)?;
                done += n as u64;
            }
            Ok(())
        }
    }
}

//! An uncompressed layer in a regular file, applied in place: headers are read through a
//! buffer, and the data of larger files is not read through the tar stream at all but copied
//! from the file by [`FileSession::copy_from_file`] (by the kernel where it can).
//!
//! Used only when no digest is computed: a digest needs every byte read in order anyway.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::{apply_entries, LayerStats};
use crate::blob::compression::Compression;
use crate::builder::ImageBuilder;
use crate::error::{Error, Result};
use crate::tar::TarReader;

/// Regular files with at least this much data are copied in place; smaller ones are already
/// in the read buffer, and copying them from there costs less than a system call.
const IN_PLACE_MIN: u64 = 64 << 10;
/// Read buffer for the headers and small files.
const READ_BUFFER: usize = 256 << 10;

/// A buffered file whose relative seeks keep what is buffered.
struct Buffered {
    inner: BufReader<File>,
    pos: u64,
}

impl Read for Buffered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Buffered {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Current(delta) => {
                self.inner.seek_relative(delta)?;
                self.pos = self.pos.checked_add_signed(delta).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
                })?;
            }
            other => self.pos = self.inner.seek(other)?,
        }
        Ok(self.pos)
    }
}

/// Opens `path` when it is a regular file holding an uncompressed tar; `None` otherwise (a
/// compressed layer, a pipe), for the caller to stream it.
pub fn open_plain(path: &Path) -> Result<Option<File>> {
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut head = [0u8; 8];
    let n = crate::blob::chunks::read_full(&mut file, &mut head)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if Compression::detect(&head[..n])? != Compression::None {
        return Ok(None);
    }
    file.rewind()
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    Ok(Some(file))
}

/// Applies the uncompressed tar in `file` to `builder`. Returns the layer's counts and the
/// count of non-zero bytes after the end of the archive.
pub fn apply_file(builder: &mut ImageBuilder, file: File) -> Result<(LayerStats, u64)> {
    let src = Arc::new(
        file.try_clone()
            .map_err(|e| Error::io("cannot duplicate the layer's handle", e))?,
    );
    let mut reader = TarReader::new(Buffered {
        inner: BufReader::with_capacity(READ_BUFFER, file),
        pos: 0,
    });
    let stats = apply_entries(
        builder,
        &mut reader,
        &mut |r, w, size| {
            if size < IN_PLACE_MIN {
                return Ok(false);
            }
            w.copy_from_file(&src, r.data_offset(), size)?;
            r.seek_past_data()?;
            Ok(true)
        },
        None,
    )?;
    let mut rest = reader.into_inner();
    let mut trailing = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => trailing += buf[..n].iter().filter(|&&b| b != 0).count() as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("cannot read the layer", e)),
        }
    }
    Ok((stats, trailing))
}

//! The output file: created under a temporary name beside the destination, renamed over it only
//! when the image is complete (and, when asked, synced), removed on any failure. The file gets mode 0666 less
//! the umask, as any file a build tool creates. An existing regular file at the destination is
//! replaced; a symbolic link there is replaced by the image, not followed; anything else
//! (a directory, a device, a FIFO, a socket) is refused before any work.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::writer::{AlignedBuf, BackgroundWriter, Direct};
use crate::error::{Error, Result};
use crate::ext4::BlockSize;

/// The image file while it is being written.
pub struct Output {
    temp: NamedTempFile,
    dest: PathBuf,
}

impl Output {
    /// Checks `dest` with [`check_destination`], then creates a temporary file in its directory.
    pub fn create(dest: &Path) -> Result<Self> {
        check_destination(dest, &[])?;
        let dir = dest_dir(dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // open(2) takes the umask off the mode, as for any file created.
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .permissions(std::fs::Permissions::from_mode(0o666))
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

    /// Renames the file over the destination. With `durable`, first syncs its data and
    /// metadata, and afterwards the directory that holds the new name, so that the image is
    /// there, whole, after a power loss; without, the kernel writes both out in its own time.
    pub fn commit(self, durable: bool) -> Result<()> {
        if durable {
            self.temp
                .as_file()
                .sync_all()
                .map_err(|e| Error::io("cannot sync the image", e))?;
        }
        let dest = self.dest;
        self.temp.persist(&dest).map_err(|e| {
            Error::io(
                format!("cannot rename the image to {}", dest.display()),
                e.error,
            )
        })?;
        if durable {
            sync_dir(&dest)?;
        }
        Ok(())
    }
}

/// The directory `dest` goes in.
fn dest_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `dest` may receive an image read from `inputs` (files or directories): it must not
/// name an existing directory, device, FIFO or socket (a symbolic link is fine: it is replaced,
/// not followed), nor an input, a hard link to one, or a path inside an input directory.
/// Every refusal is [`crate::ErrorKind::InvalidArgument`]; nothing is changed.
pub fn check_destination(dest: &Path, inputs: &[&Path]) -> Result<()> {
    let refuse = |why: &str| Err(Error::invalid(format!("output {}: {why}", dest.display())));
    if dest.file_name().is_none() {
        return refuse("names a directory, not a file");
    }
    let existing = match std::fs::symlink_metadata(dest) {
        Ok(md) => Some(md),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::io(
                format!("cannot inspect the output {}", dest.display()),
                e,
            ))
        }
    };
    if let Some(md) = &existing {
        let t = md.file_type();
        if t.is_dir() {
            return refuse("is a directory; give a file name");
        }
        if t.is_block_device() {
            return refuse(
                "is a block device; writing an image straight to a block device is not \
                 supported yet (write a file, then copy it with dd)",
            );
        }
        if t.is_char_device() {
            return refuse("is a character device; give a regular file");
        }
        if t.is_fifo() {
            return refuse("is a FIFO; give a regular file");
        }
        if t.is_socket() {
            return refuse("is a socket; give a regular file");
        }
    }
    if inputs.is_empty() {
        return Ok(());
    }
    // Where the image will be: its directory resolved, its own name kept (a symbolic link at
    // the destination is replaced, so where it points does not matter).
    let Ok(dir) = std::fs::canonicalize(dest_dir(dest)) else {
        return Ok(()); // no such directory: creating the temporary file will say so
    };
    let target = dir.join(dest.file_name().unwrap_or_default());
    let regular = existing.filter(|md| md.file_type().is_file());
    for input in inputs {
        let Ok(input_md) = std::fs::metadata(input) else {
            continue;
        };
        let same_file = regular
            .as_ref()
            .is_some_and(|md| md.dev() == input_md.dev() && md.ino() == input_md.ino());
        let Ok(input) = std::fs::canonicalize(input) else {
            continue;
        };
        if same_file || target == input {
            return refuse(&format!("is the input {}", input.display()));
        }
        if input_md.is_dir() && target.starts_with(&input) {
            return refuse(&format!(
                "is inside the input directory {}",
                input.display()
            ));
        }
    }
    Ok(())
}

/// Syncs the directory that holds `path`, so that a rename into it survives a power loss.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync the directory {}", dir.display()), e))
}

/// Gathers writes to consecutive blocks into large runs for the background writer.
pub struct BlockSink {
    writer: BackgroundWriter,
    /// Block size in bytes.
    bs: usize,
    buf: AlignedBuf,
    len: usize,
    start: u64,
}

impl BlockSink {
    /// A sink writing `bs` blocks to `file` in runs of up to `cap` bytes.
    pub fn new(file: &File, bs: BlockSize, cap: usize) -> Result<Self> {
        let mut writer = BackgroundWriter::start(file, 2, cap, Direct::Off)?;
        let buf = writer.take_buffer()?;
        Ok(BlockSink {
            writer,
            bs: bs.bytes(),
            buf,
            len: 0,
            start: 0,
        })
    }

    /// Queues whole blocks for block `block` onwards.
    pub fn write(&mut self, block: u64, data: &[u8]) -> Result<()> {
        let bs = self.bs;
        if !data.len().is_multiple_of(bs) {
            return Err(Error::internal(format!(
                "a metadata write of {} bytes at block {block} is not whole {bs}-byte blocks",
                data.len()
            )));
        }
        let cap = self.buf.as_slice().len();
        for (i, chunk) in data.chunks(cap).enumerate() {
            let at = block + (i * cap / bs) as u64;
            let next = self.start + (self.len / bs) as u64;
            if self.len > 0 && (at != next || self.len + chunk.len() > cap) {
                self.flush()?;
            }
            if self.len == 0 {
                self.start = at;
            }
            self.buf.as_mut_slice()[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }

    /// Hands what is queued to the writer.
    fn flush(&mut self) -> Result<()> {
        if self.len > 0 {
            let next = self.writer.take_buffer()?;
            let full = std::mem::replace(&mut self.buf, next);
            self.writer
                .write(self.start * self.bs as u64, full, self.len)?;
            self.len = 0;
        }
        Ok(())
    }

    /// Writes out everything and waits for it.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.writer.finish().map(|_| ())
    }
}

/// Makes `len` bytes from `offset` read as zeros and take no space, where the filesystem can
/// punch holes; false where it cannot (the caller then writes zeros).
pub fn punch_hole(file: &File, offset: u64, len: u64) -> bool {
    use rustix::fs::{fallocate, FallocateFlags};
    fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    )
    .is_ok()
}

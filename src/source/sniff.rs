//! Sources read as streams (standard input, pipes, FIFOs, compressed files): recognised from
//! what comes first, without losing a byte.
//!
//! The stream is decompressed and its tar headers are read while every member is one an image
//! archive has ([`super::archive::is_image_member`]). The first member that is not decides: a
//! root filesystem tar, replayed from the bytes read so far followed by the rest of the
//! stream. A stream that ends with only image members and holds `manifest.json` (or
//! `oci-layout` and `index.json`) is an image archive: its tar was spooled meanwhile to a
//! temporary file beside the output, which is indexed and read in place like an archive file,
//! and removed when the build ends (on an error or a cancel as well).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::archive::{is_image_member, normalize, shape_of, Shape};
use crate::blob::compression::{self, Compression};
use crate::blob::stream::Opener;
use crate::error::{Error, ErrorKind, Result};
use crate::tar::TarReader;

/// Bytes kept in memory before a spool moves to a file.
const IN_MEMORY: usize = 8 << 20;

/// Bytes written aside, in memory while they are few, then in a temporary file.
pub struct Spool {
    dir: PathBuf,
    mem: Vec<u8>,
    file: Option<(BufWriter<File>, tempfile::TempPath)>,
}

impl Spool {
    /// An empty spool whose file, if it needs one, goes in `dir`.
    pub fn new(dir: &Path) -> Self {
        Spool {
            dir: dir.to_path_buf(),
            mem: Vec::new(),
            file: None,
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        let (file, path) = tempfile::Builder::new()
            .prefix(".oci2ext4-spool-")
            .tempfile_in(&self.dir)?
            .into_parts();
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(&self.mem)?;
        self.mem = Vec::new();
        self.file = Some((w, path));
        Ok(())
    }

    /// The spooled bytes as a temporary file (written now if they were still in memory).
    pub fn into_file(mut self) -> Result<tempfile::TempPath> {
        let dir = self.dir.clone();
        let err = |e| Error::io(format!("cannot write a spool file in {}", dir.display()), e);
        if self.file.is_none() {
            self.spill().map_err(err)?;
        }
        let Some((w, path)) = self.file.take() else {
            unreachable!("spilled above")
        };
        let file = w.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_data().ok();
        Ok(path)
    }

    /// A reader of the spooled bytes from the start.
    pub fn into_reader(mut self) -> Result<Box<dyn Read + Send>> {
        match self.file.take() {
            None => Ok(Box::new(io::Cursor::new(std::mem::take(&mut self.mem)))),
            Some((w, path)) => {
                let mut file = w
                    .into_inner()
                    .map_err(|e| Error::io("cannot write the spool file", e.into_error()))?;
                file.rewind()
                    .map_err(|e| Error::io("cannot read the spool file", e))?;
                Ok(Box::new(SpoolReader { file, _path: path }))
            }
        }
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.mem.len() + buf.len() > IN_MEMORY {
            self.spill()?;
        }
        match &mut self.file {
            Some((w, _)) => w.write_all(buf)?,
            None => self.mem.extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((w, _)) => w.flush(),
            None => Ok(()),
        }
    }
}

/// A spool file being read back; removed when dropped.
struct SpoolReader {
    file: File,
    _path: tempfile::TempPath,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

/// Copies what is read from `inner` into `copy` (when there is one). A failure to read
/// `inner` or to write the copy is kept in `failed`: the copy is then not whole, and the
/// sniffing fails with it rather than replay a stream with bytes missing.
struct Tee<'a, R> {
    inner: R,
    copy: Option<&'a mut Spool>,
    failed: &'a RefCell<Option<Error>>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let err = if e.get_ref().is_some_and(|i| i.is::<Error>()) {
                    e.into()
                } else {
                    Error::io("cannot read the source", e)
                };
                self.failed.borrow_mut().get_or_insert(err);
                return Err(io::Error::other("source read failed"));
            }
        };
        if let Some(c) = &mut self.copy {
            if let Err(e) = c.write_all(&buf[..n]) {
                let err = Error::io("cannot write a spool file beside the output", e);
                self.failed.borrow_mut().get_or_insert(err);
                return Err(io::Error::other("spool write failed"));
            }
        }
        Ok(n)
    }
}

/// What a stream turned out to be.
pub enum Sniffed {
    /// A root filesystem tar. `replay` (for a stream that cannot be opened again) yields every
    /// byte of the stream, as it came.
    Rootfs {
        /// The stream from its first byte, when it cannot be opened again.
        replay: Option<Opener>,
    },
    /// An image archive, its tar spooled to a temporary file.
    Archive {
        /// The spooled tar.
        tar: tempfile::TempPath,
        /// What it holds (which the tests check; the plan reads the spooled tar's index).
        #[cfg_attr(not(test), allow(dead_code))]
        shape: Shape,
    },
}

/// Reads `raw` (the source named `name`) far enough to tell a root filesystem tar from an
/// image archive. `reopenable` says the source can be read again from the start (a regular
/// file), so its bytes need not be kept for a replay. Spool files go in `dir`.
pub fn sniff(
    raw: Box<dyn Read + Send>,
    reopenable: bool,
    dir: &Path,
    cancel: Option<&AtomicBool>,
) -> Result<Sniffed> {
    let mut raw = raw;
    let mut raw_copy = (!reopenable).then(|| Spool::new(dir));
    let mut tar_copy = Spool::new(dir);
    let failed = RefCell::new(None);
    let replayable = raw_copy.is_some();
    let outcome = {
        let mut buffered = BufReader::with_capacity(
            64 << 10,
            Tee {
                inner: &mut raw,
                copy: raw_copy.as_mut(),
                failed: &failed,
            },
        );
        let compression = match compression::detect(&mut buffered) {
            Ok(c) => c,
            Err(e) => return Err(failed.take().unwrap_or(e)),
        };
        // Uncompressed and read once, the bytes kept for a replay are the tar itself.
        let plain_copy = compression == Compression::None && replayable;
        let decoded = compression::decoder(&mut buffered, compression)?;
        let tar = Tee {
            inner: decoded,
            copy: (!plain_copy).then_some(&mut tar_copy),
            failed: &failed,
        };
        let outcome = scan(tar, cancel)?;
        (outcome, plain_copy)
    };
    if let Some(e) = failed.take() {
        return Err(e);
    }
    match outcome {
        (None, _) => Ok(Sniffed::Rootfs {
            replay: raw_copy.map(|copy| replay(copy, raw)).transpose()?,
        }),
        (Some(shape), plain_copy) => {
            let spooled = match raw_copy {
                Some(copy) if plain_copy => copy,
                _ => tar_copy,
            };
            Ok(Sniffed::Archive {
                tar: spooled.into_file()?,
                shape,
            })
        }
    }
}

/// A reader of `copy` and then the rest of `rest`, handed out once.
fn replay(copy: Spool, rest: Box<dyn Read + Send>) -> Result<Opener> {
    let once = Mutex::new(Some(copy.into_reader()?.chain(rest)));
    Ok(Arc::new(move || {
        let taken = once.lock().map(|mut r| r.take()).ok().flatten();
        taken
            .map(|r| Box::new(r) as Box<dyn Read + Send>)
            .ok_or_else(|| {
                Error::invalid("a stream can be read only once; give a file to read it again")
            })
    }))
}

/// Reads tar headers while every member is an image archive's, reading (and so spooling) the
/// data between them. `None` at the first member that is not, at the end of a stream without
/// an image's index files, or where the stream cannot be read as a tar (the build then reads
/// it as a root filesystem tar and says what is wrong, unless the source itself failed, which
/// the caller finds in its [`Tee`]); else the image archive's shape, with the stream read to
/// its end.
fn scan(stream: impl Read, cancel: Option<&AtomicBool>) -> Result<Option<Shape>> {
    let mut tar = TarReader::new(stream);
    let mut names = std::collections::HashSet::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let entry = match tar.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(_) => return Ok(None),
        };
        let name = normalize(&String::from_utf8_lossy(&entry.path));
        if !is_image_member(&name) {
            return Ok(None);
        }
        names.insert(name);
        let mut data = tar.data();
        loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
            }
            match data.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(None),
            }
        }
    }
    let shape = shape_of(|n| names.contains(n));
    if shape == Shape::Rootfs {
        return Ok(None);
    }
    // What follows the end of the archive is read too: a stream is not cut short.
    let mut rest = tar.into_inner();
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The archive itself was whole; what follows it is not read by anything.
            Err(_) => break,
        }
    }
    Ok(Some(shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[108..116].copy_from_slice(b"0000000\0");
            h[116..124].copy_from_slice(b"0000000\0");
            h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn sniff_bytes(data: Vec<u8>, dir: &Path) -> Sniffed {
        sniff(Box::new(io::Cursor::new(data)), false, dir, None).unwrap()
    }

    fn replayed(s: Sniffed) -> Vec<u8> {
        let Sniffed::Rootfs { replay: Some(open) } = s else {
            panic!("not a replayable rootfs")
        };
        let mut out = Vec::new();
        open().unwrap().read_to_end(&mut out).unwrap();
        assert!(open().is_err(), "a stream replayed twice");
        out
    }

    #[test]
    fn rootfs_streams_replay_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; 3 * IN_MEMORY];
        let hex = "b".repeat(64);
        // The first member decides at once; or only after a large image-like member, which
        // makes the copy spill to a file.
        for tar in [
            tar_of(&[("etc/passwd", b"root"), ("manifest.json", b"[]")]),
            tar_of(&[(&format!("{hex}.tar"), &big), ("bin/sh", b"x")]),
            tar_of(&[("blobs/sha256/x", b"blob")]),
        ] {
            for compressed in [false, true] {
                let input = if compressed {
                    zstd::encode_all(&tar[..], 1).unwrap()
                } else {
                    tar.clone()
                };
                assert_eq!(replayed(sniff_bytes(input.clone(), dir.path())), input);
            }
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn image_archives_are_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("blobs/sha256/aa", b"layer"),
            ("oci-layout", b"{}"),
            ("index.json", b"{}"),
        ]);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        for input in [tar.clone(), gz] {
            let Sniffed::Archive { tar: path, shape } = sniff_bytes(input, dir.path()) else {
                panic!("not an archive")
            };
            assert_eq!(shape, Shape::Oci);
            assert_eq!(std::fs::read(&path).unwrap(), tar);
            drop(path);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }
}

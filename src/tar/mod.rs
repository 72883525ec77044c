//! A streaming tar reader: ustar, GNU (long names, old sparse format) and PAX (with GNU sparse
//! formats 0.0, 0.1 and 1.0). It reads one 512-byte header block at a time and hands out each
//! entry's data as a reader over the underlying stream; nothing else is buffered.
//!
//! Where real tools are tolerant, so is this reader, as Go's `archive/tar` is: an archive that
//! ends without its two zero blocks, or inside the padding after its last entry, ends there
//! (with a warning).

mod header;
pub mod pax;

use std::io::{self, Read, Seek, SeekFrom};

use crate::entry::{Timestamp, Xattr};
use crate::error::{show_path, Error, Result};
use header::{parse_sparse_ext, typeflag, Header, BLOCK};
use pax::Overrides;

/// Largest PAX header or GNU long name accepted.
const MAX_SPECIAL_SIZE: u64 = 1 << 20;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (target in `link_name`).
    Symlink,
    /// Hard link to `link_name`.
    HardLink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
}

/// One entry's header information, PAX and GNU extensions applied.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The name as stored.
    pub path: Vec<u8>,
    /// Symlink target or hard link target.
    pub link_name: Vec<u8>,
    /// The kind.
    pub kind: EntryKind,
    /// Mode bits as stored (permission bits and possibly type bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time, if the archive records one.
    pub atime: Option<Timestamp>,
    /// Change time, if the archive records one.
    pub ctime: Option<Timestamp>,
    /// File size (the real size of a sparse file).
    pub size: u64,
    /// Bytes of data that follow in the archive.
    pub data_size: u64,
    /// For sparse files: the (offset, length) of each data segment; the data that follows is
    /// their concatenation.
    pub sparse: Option<Vec<(u64, u64)>>,
    /// Device major number.
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// Extended attributes.
    pub xattrs: Vec<Xattr>,
    /// Byte offset of the entry's first header in the stream.
    pub offset: u64,
}

/// Reads entries from a tar stream.
pub struct TarReader<R> {
    inner: R,
    pos: u64,
    remaining: u64,
    padding: u64,
    done: bool,
    warnings: Vec<String>,
}

fn corrupt_at(offset: u64, msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("{msg} (at byte {offset})"))
}

fn to_u32(v: u64, what: &str, offset: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt_at(offset, format!("{what} {v} does not fit in 32 bits")))
}

impl<R: Read> TarReader<R> {
    /// A reader over a tar stream.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            pos: 0,
            remaining: 0,
            padding: 0,
            done: false,
            warnings: Vec::new(),
        }
    }

    /// Warnings so far (tolerated damage, ignored records), emptied by the call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The underlying stream, positioned after what was read.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes read from the stream so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads until `buf` is full or the stream ends; returns the bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads and discards `n` bytes; returns how many there were before the stream ended.
    fn skip(&mut self, n: u64) -> Result<u64> {
        let mut scratch = [0u8; 8192];
        let mut done = 0;
        while done < n {
            let want = (n - done).min(scratch.len() as u64) as usize;
            let got = self.read_full(&mut scratch[..want])?;
            done += got as u64;
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    /// Reads the data of a special entry (PAX header, long name) whole.
    fn read_special(&mut self, size: u64, what: &str, offset: u64) -> Result<Vec<u8>> {
        if size > MAX_SPECIAL_SIZE {
            return Err(Error::limit(format!(
                "{what} of {size} bytes is larger than {MAX_SPECIAL_SIZE}"
            ))
            .with_entry(format!("at byte {offset}")));
        }
        let mut data = vec![0u8; size as usize];
        if self.read_full(&mut data)? < data.len() {
            return Err(corrupt_at(offset, format!("archive ends inside a {what}")));
        }
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        if self.skip(pad)? < pad {
            self.warnings
                .push(format!("archive ends inside the padding of a {what}"));
        }
        Ok(data)
    }

    /// Reads one header block; `None` at the end of the stream.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<Option<()>> {
        let at = self.pos;
        match self.read_full(block)? {
            0 => Ok(None),
            BLOCK => Ok(Some(())),
            n => Err(corrupt_at(
                at,
                format!("archive ends inside a header ({n} of 512 bytes)"),
            )),
        }
    }

    /// The next entry, or `None` at the end of the archive. Data of the previous entry that
    /// was not read is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        if self.remaining > 0 {
            let want = self.remaining;
            let got = self.skip(want)?;
            if got < want {
                return Err(corrupt_at(
                    self.pos,
                    format!(
                        "archive ends {} bytes into an entry's data of {want} more bytes",
                        got
                    ),
                ));
            }
            self.remaining = 0;
        }
        if self.padding > 0 {
            let pad = self.padding;
            self.padding = 0;
            if self.skip(pad)? < pad {
                self.warnings.push(
                    "archive ends inside the padding after its last entry; read as its end".into(),
                );
                self.done = true;
                return Ok(None);
            }
        }
        let mut overrides = Overrides::default();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut first_offset: Option<u64> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let offset = self.pos;
            if self.read_block(&mut block)?.is_none() {
                if first_offset.is_some() {
                    return Err(corrupt_at(
                        offset,
                        "archive ends after an extended header, before its entry",
                    ));
                }
                self.warnings
                    .push("archive ends without its end-of-archive blocks".into());
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                if first_offset.is_some() {
                    return Err(corrupt_at(
                        offset,
                        "end of archive right after an extended header",
                    ));
                }
                let second_at = self.pos;
                match self.read_block(&mut block) {
                    Ok(None) => self
                        .warnings
                        .push("archive ends after one of its two end-of-archive blocks".into()),
                    Ok(Some(())) if block.iter().all(|&b| b == 0) => {}
                    Ok(Some(())) => {
                        return Err(corrupt_at(
                            second_at,
                            "a zero block is followed by a header",
                        ))
                    }
                    Err(e) => return Err(e),
                }
                self.done = true;
                return Ok(None);
            }
            first_offset.get_or_insert(offset);
            let header = Header::parse(&block).map_err(|e| corrupt_at(offset, e))?;
            let num = |r: std::result::Result<i64, header::HeaderError>| {
                r.map_err(|e| corrupt_at(offset, e))
            };
            let size = num(header.size())?;
            let size = u64::try_from(size)
                .map_err(|_| corrupt_at(offset, format!("negative entry size {size}")))?;
            match header.typeflag() {
                typeflag::PAX_LOCAL => {
                    let data = self.read_special(size, "PAX header", offset)?;
                    let records = pax::parse_records(&data).map_err(|m| corrupt_at(offset, m))?;
                    let warnings = overrides
                        .apply(records)
                        .map_err(|m| corrupt_at(offset, m))?;
                    self.warnings.extend(warnings);
                    continue;
                }
                typeflag::PAX_GLOBAL => {
                    self.read_special(size, "PAX global header", offset)?;
                    continue;
                }
                typeflag::GNU_LONGNAME | typeflag::GNU_LONGLINK => {
                    let mut data = self.read_special(size, "GNU long name", offset)?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    if header.typeflag() == typeflag::GNU_LONGNAME {
                        long_name = Some(data);
                    } else {
                        long_link = Some(data);
                    }
                    continue;
                }
                typeflag::GNU_VOLHDR => {
                    self.read_special(size, "GNU volume header", offset)?;
                    continue;
                }
                typeflag::GNU_MULTIVOL => {
                    return Err(Error::unsupported(format!(
                        "multi-volume tar entries are not supported (at byte {offset})"
                    )))
                }
                _ => {}
            }
            let entry_offset = first_offset.unwrap_or(offset);
            return self
                .finish_entry(&header, size, overrides, long_name, long_link, entry_offset)
                .map(Some);
        }
    }

    fn finish_entry(
        &mut self,
        header: &Header<'_>,
        header_size: u64,
        o: Overrides,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        offset: u64,
    ) -> Result<Entry> {
        let num =
            |r: std::result::Result<i64, header::HeaderError>| r.map_err(|e| corrupt_at(offset, e));
        let mut path = o.path.or(long_name).unwrap_or_else(|| header.name());
        let link_name = o
            .link_path
            .or(long_link)
            .unwrap_or_else(|| header.link_name());
        let tf = header.typeflag();
        let mut kind = match tf {
            typeflag::REG | typeflag::AREG | typeflag::CONT | typeflag::GNU_SPARSE => {
                EntryKind::File
            }
            typeflag::LINK => EntryKind::HardLink,
            typeflag::SYMLINK => EntryKind::Symlink,
            typeflag::CHR => EntryKind::CharDevice,
            typeflag::BLK => EntryKind::BlockDevice,
            typeflag::DIR | typeflag::GNU_DUMPDIR => EntryKind::Dir,
            typeflag::FIFO => EntryKind::Fifo,
            other => {
                return Err(Error::unsupported(format!(
                    "tar entry type {:?} is not supported (at byte {offset})",
                    other as char
                ))
                .with_entry(show_path(&path)))
            }
        };
        if kind == EntryKind::File && tf != typeflag::GNU_SPARSE && path.last() == Some(&b'/') {
            kind = EntryKind::Dir;
        }
        let data_size = o.size.unwrap_or(header_size);
        let uid = o
            .uid
            .map_or_else(|| num(header.uid()).map(|v| v as u64), Ok)?;
        let gid = o
            .gid
            .map_or_else(|| num(header.gid()).map(|v| v as u64), Ok)?;
        let mode = num(header.mode())?;
        let mtime = match o.mtime {
            Some(t) => t,
            None => Timestamp::from_secs(num(header.mtime())?),
        };
        let (gnu_atime, gnu_ctime) = header.gnu_times().map_err(|e| corrupt_at(offset, e))?;
        let atime = o
            .atime
            .or((gnu_atime != 0).then(|| Timestamp::from_secs(gnu_atime)));
        let ctime = o
            .ctime
            .or((gnu_ctime != 0).then(|| Timestamp::from_secs(gnu_ctime)));
        let dev_major = o
            .dev_major
            .map_or_else(|| num(header.dev_major()).map(|v| v as u64), Ok)?;
        let dev_minor = o
            .dev_minor
            .map_or_else(|| num(header.dev_minor()).map(|v| v as u64), Ok)?;
        self.remaining = data_size;
        self.padding = (BLOCK as u64 - data_size % BLOCK as u64) % BLOCK as u64;

        // Sparse files.
        let mut size = data_size;
        let mut sparse = None;
        if tf == typeflag::GNU_SPARSE {
            let header::GnuSparse {
                mut map,
                mut extended,
                real_size: real,
            } = header.gnu_sparse().map_err(|e| corrupt_at(offset, e))?;
            let mut ext = [0u8; BLOCK];
            while extended {
                let at = self.pos;
                if self.read_block(&mut ext)?.is_none() {
                    return Err(corrupt_at(at, "archive ends inside a sparse map"));
                }
                let (more, again) = parse_sparse_ext(&ext).map_err(|e| corrupt_at(at, e))?;
                map.extend(more);
                extended = again;
            }
            let map = map
                .into_iter()
                .map(|(a, b)| {
                    Ok((
                        u64::try_from(a).map_err(|_| ())?,
                        u64::try_from(b).map_err(|_| ())?,
                    ))
                })
                .collect::<std::result::Result<Vec<_>, ()>>()
                .map_err(|_| corrupt_at(offset, "negative sparse map entry"))?;
            size =
                u64::try_from(real).map_err(|_| corrupt_at(offset, "negative sparse real size"))?;
            sparse = Some(map);
        } else if o.sparse.present && kind == EntryKind::File {
            let s = &o.sparse;
            if let Some(name) = &s.name {
                path = name.clone();
            }
            size = s
                .real_size
                .ok_or_else(|| corrupt_at(offset, "PAX sparse entry without its real size"))?;
            let flat = match (s.major, s.minor) {
                (Some(1), Some(0)) => self.read_sparse_1_0(offset)?,
                (None | Some(0), _) => s.map.clone(),
                (major, minor) => {
                    return Err(Error::unsupported(format!(
                        "GNU sparse format {}.{} is not supported (at byte {offset})",
                        major.unwrap_or(0),
                        minor.unwrap_or(0)
                    ))
                    .with_entry(show_path(&path)))
                }
            };
            if flat.len() % 2 != 0 {
                return Err(corrupt_at(
                    offset,
                    "sparse map with an odd number of values",
                ));
            }
            sparse = Some(flat.chunks(2).map(|c| (c[0], c[1])).collect());
        }
        if let Some(map) = &sparse {
            let mut end = 0u64;
            let mut total = 0u64;
            for &(off, len) in map {
                let seg_end = off
                    .checked_add(len)
                    .ok_or_else(|| corrupt_at(offset, "sparse map overflows"))?;
                if off < end || seg_end > size {
                    return Err(corrupt_at(
                        offset,
                        "sparse map entries overlap, go backwards or pass the file size",
                    ));
                }
                end = seg_end;
                total += len;
            }
            if total != self.remaining {
                return Err(corrupt_at(
                    offset,
                    format!(
                        "sparse map holds {total} bytes but the entry has {}",
                        self.remaining
                    ),
                ));
            }
        }
        Ok(Entry {
            path,
            link_name,
            kind,
            mode: (mode & 0o7777_7777) as u32,
            uid: to_u32(uid, "uid", offset)?,
            gid: to_u32(gid, "gid", offset)?,
            mtime,
            atime,
            ctime,
            size: if matches!(kind, EntryKind::File) {
                size
            } else {
                0
            },
            data_size: self.remaining,
            sparse,
            dev_major: to_u32(dev_major, "device major", offset)?,
            dev_minor: to_u32(dev_minor, "device minor", offset)?,
            xattrs: o.xattrs,
            offset,
        })
    }

    /// Reads the GNU 1.0 sparse map at the start of the entry's data: decimal numbers, one per
    /// line (the count, then offset and length pairs), padded to whole blocks.
    fn read_sparse_1_0(&mut self, offset: u64) -> Result<Vec<u64>> {
        let mut text: Vec<u8> = Vec::new();
        let mut block = [0u8; BLOCK];
        let mut numbers: Vec<u64> = Vec::new();
        let mut wanted: Option<u64> = None;
        loop {
            if self.remaining < BLOCK as u64 {
                return Err(corrupt_at(offset, "sparse map runs past the entry's data"));
            }
            if self.read_full(&mut block)? < BLOCK {
                return Err(corrupt_at(offset, "archive ends inside a sparse map"));
            }
            self.remaining -= BLOCK as u64;
            text.extend_from_slice(&block);
            // Take every complete line.
            while let Some(nl) = text.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = text.drain(..=nl).collect();
                let v = pax::parse_u64(&line[..line.len() - 1])
                    .ok_or_else(|| corrupt_at(offset, "sparse map value is not a number"))?;
                match wanted {
                    None => {
                        if v > MAX_SPECIAL_SIZE {
                            return Err(Error::limit(format!(
                                "sparse map of {v} entries is too large (at byte {offset})"
                            )));
                        }
                        wanted = Some(2 * v);
                    }
                    Some(_) => numbers.push(v),
                }
                if wanted == Some(numbers.len() as u64) {
                    return Ok(numbers);
                }
            }
        }
    }

    /// A reader over the current entry's data.
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { tar: self }
    }
}

impl<R: Read + Seek> TarReader<R> {
    /// The stream offset of the current entry's data (valid right after
    /// [`TarReader::next_entry`]).
    pub fn data_offset(&self) -> u64 {
        self.pos
    }

    /// Skips the current entry's data and padding by seeking instead of reading.
    pub fn seek_past_data(&mut self) -> Result<()> {
        let n = self.remaining + self.padding;
        let delta = i64::try_from(n).map_err(|_| Error::corrupt("entry size out of range"))?;
        self.inner
            .seek(SeekFrom::Current(delta))
            .map_err(|e| Error::io("cannot seek in the archive", e))?;
        self.pos += n;
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }
}

/// The data of the current entry.
pub struct EntryData<'a, R> {
    tar: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = &mut *self.tar;
        if t.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(t.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match t.inner.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "archive ends {} bytes before the end of the entry's data (at byte {})",
                    t.remaining, t.pos
                ),
            ));
        }
        t.pos += n as u64;
        t.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;

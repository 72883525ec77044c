//! A streaming tar reader: ustar, GNU (long names, old sparse format), star and PAX (with GNU
//! sparse formats 0.0, 0.1 and 1.0). It reads one 512-byte header block at a time and hands out
//! each entry's data as a reader over the underlying stream; nothing else is buffered.
//!
//! Why a reader of our own rather than the `tar` crate: container layers are unpacked by
//! containerd, Docker, umoci and crane with Go's `archive/tar`, so an image must hold what that
//! reader reads, or the same layer means one tree to an image scanner and another in the image.
//! The `tar` crate reads differently where it matters (it takes data blocks after a directory,
//! link or device header whose size field is not zero, and merges consecutive PAX headers), and
//! lacks what images need: PAX sparse files (formats 0.0, 0.1, 1.0) with their holes kept as
//! holes, nanosecond times, xattrs in both the `SCHILY` and `LIBARCHIVE` dialects, and bounds on
//! the memory an entry's extension headers may take.
//!
//! So this reader reads every archive as Go's `archive/tar` does:
//! - directories, symlinks, hard links, devices and fifos never have data, whatever their size
//!   field or PAX `size` says; the next header follows theirs;
//! - of several PAX `x` headers before one entry, the last one alone counts (the earlier ones
//!   are dropped whole, not merged); of several GNU long names (or links), the last; a GNU long
//!   name or link wins over a PAX `path` or `linkpath`; a long name is cut at its first NUL; a
//!   PAX record with an empty value leaves the header's field as it is;
//! - a PAX global header (`g`) or GNU volume header (`V`) is an entry of its own to Go, which
//!   unpackers skip: it ends whatever extended headers came before it, and is skipped;
//! - an archive that ends (at the end of the stream, or with zero blocks) after extended headers
//!   but before their entry ends there, like an archive of only extended headers, which is
//!   empty; so does one that ends without its two zero blocks or inside the padding after its
//!   last entry (each with a warning);
//! - symlinks get mode 0777, as every unpacker creates them on Linux;
//! - a type-`\0` entry whose name ends in `/` is a directory; other regular files keep their
//!   name and their data;
//! - numbers are octal (anything after a NUL ignored) or GNU base-256; checksums may be of
//!   signed or unsigned bytes; GNU time fields that are not numbers are read as the name prefix
//!   old Go writers put there.
//!
//! What Go refuses is refused, with an error that names the byte offset: a bad checksum, a
//! field that is not a number, a negative size, a malformed PAX record (bad length, no `=`,
//! an empty key, a NUL in a key or in a `path`, `linkpath`, `uname` or `gname` value, NUL
//! padding after the records), a PAX `uid`, `gid`, `size` or time that is not a number, a zero
//! block followed by a header, a sparse map that is malformed, overlaps or passes the file's
//! size, and an archive cut inside a header or an entry's data. Beyond Go, this reader refuses
//! GNU sparse formats it does not know (Go reads those entries as plain files holding the
//! encoded data), entry types it cannot build (Go hands those to the unpacker, which refuses
//! them too), and input past the limits below.
//!
//! Memory is bounded per entry, whatever the archive: a PAX header or GNU long name is read
//! whole up to 1 MiB ([`MAX_SPECIAL_SIZE`]); at most [`MAX_EXTENSION_HEADERS`] of them may
//! precede one entry, and only the last of each kind is kept; an entry's extended attributes
//! are bounded by [`pax::MAX_XATTRS`] and [`pax::MAX_XATTR_BYTES`]; a sparse map by
//! [`MAX_SPARSE_ENTRIES`] entries and [`MAX_SPARSE_MAP_BYTES`] of encoding (1.0 maps and old GNU
//! extension blocks); at most [`MAX_WARNINGS`] warnings are kept, the rest counted.

mod header;
pub mod pax;

use std::io::{self, Read, Seek, SeekFrom};

use crate::entry::{Timestamp, Xattr};
use crate::error::{show_path, Error, Result};
use header::{parse_sparse_ext, typeflag, Header, BLOCK};
use pax::{Overrides, SparseFormat};

/// Largest PAX header or GNU long name accepted (Go's and libarchive's limit).
pub const MAX_SPECIAL_SIZE: u64 = 1 << 20;
/// Most extended headers (PAX `x`, GNU `L` and `K`) before one entry. Writers put one of each
/// at most.
pub const MAX_EXTENSION_HEADERS: usize = 32;
/// Most entries in one sparse map.
pub const MAX_SPARSE_ENTRIES: usize = 1 << 20;
/// Most bytes of a sparse map kept in the data (format 1.0) or in old GNU extension blocks.
pub const MAX_SPARSE_MAP_BYTES: usize = 1 << 20;
/// Warnings kept; the ones beyond are counted.
pub const MAX_WARNINGS: usize = 16;

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
}

/// Reads entries from a tar stream.
pub struct TarReader<R> {
    inner: R,
    pos: u64,
    remaining: u64,
    padding: u64,
    done: bool,
    warnings: Vec<String>,
    warnings_dropped: u64,
}

/// What the extended headers read so far say about the entry that follows them.
#[derive(Default)]
struct Pending {
    /// Records of the last PAX `x` header.
    pax: Option<Vec<pax::Record>>,
    /// The last GNU long name and long link, cut at their first NUL.
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    /// Offset of the first of these headers.
    first_offset: Option<u64>,
    /// How many there were.
    headers: usize,
    /// The last name any of them gave, kept or not.
    hint: Option<Vec<u8>>,
}

impl Pending {
    /// The entry these headers belong to, for messages: the last name any of them gave.
    fn name(&self) -> String {
        match &self.hint {
            Some(n) => pax::escape(n),
            None => "(name not yet read)".into(),
        }
    }
}

fn corrupt_at(offset: u64, msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("{msg} (at byte {offset})"))
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
            warnings_dropped: 0,
        }
    }

    /// Warnings so far (tolerated damage, ignored records), emptied by the call. At most
    /// [`MAX_WARNINGS`] are kept; a last line counts the ones dropped.
    pub fn take_warnings(&mut self) -> Vec<String> {
        let mut w = std::mem::take(&mut self.warnings);
        if self.warnings_dropped > 0 {
            w.push(format!(
                "{} more tar warnings not shown",
                self.warnings_dropped
            ));
            self.warnings_dropped = 0;
        }
        w
    }

    fn warn(&mut self, message: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(message);
        } else {
            self.warnings_dropped += 1;
        }
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
        let n = crate::blob::chunks::read_full(&mut self.inner, buf)?;
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
            self.warn(format!("archive ends inside the padding of a {what}"));
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
                self.warn(
                    "archive ends inside the padding after its last entry; read as its end".into(),
                );
                self.done = true;
                return Ok(None);
            }
        }
        let mut pending = Pending::default();
        let mut block = [0u8; BLOCK];
        loop {
            let offset = self.pos;
            if self.read_block(&mut block)?.is_none() {
                if pending.first_offset.is_some() {
                    self.end_after_extended_headers(&pending);
                } else {
                    self.warn("archive ends without its end-of-archive blocks".into());
                }
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                let second_at = self.pos;
                match self.read_block(&mut block)? {
                    None => {
                        self.warn("archive ends after one of its two end-of-archive blocks".into())
                    }
                    Some(()) if block.iter().all(|&b| b == 0) => {}
                    Some(()) => {
                        return Err(corrupt_at(
                            second_at,
                            "a zero block is followed by a header",
                        ))
                    }
                }
                if pending.first_offset.is_some() {
                    self.end_after_extended_headers(&pending);
                }
                self.done = true;
                return Ok(None);
            }
            let header = Header::parse(&block).map_err(|e| corrupt_at(offset, e))?;
            let size = header.size().map_err(|e| corrupt_at(offset, e))?;
            let tf = header.typeflag();
            let special = matches!(
                tf,
                typeflag::PAX_LOCAL
                    | typeflag::PAX_GLOBAL
                    | typeflag::GNU_LONGNAME
                    | typeflag::GNU_LONGLINK
                    | typeflag::GNU_VOLHDR
            );
            if !special {
                let entry_offset = pending.first_offset.unwrap_or(offset);
                return self
                    .finish_entry(&header, size, pending, entry_offset)
                    .map(Some);
            }
            let size = u64::try_from(size)
                .map_err(|_| corrupt_at(offset, format!("negative entry size {size}")))?;
            if matches!(
                tf,
                typeflag::PAX_LOCAL | typeflag::GNU_LONGNAME | typeflag::GNU_LONGLINK
            ) {
                pending.first_offset.get_or_insert(offset);
                pending.headers += 1;
                if pending.headers > MAX_EXTENSION_HEADERS {
                    return Err(Error::limit(format!(
                        "more than {MAX_EXTENSION_HEADERS} extended headers before one entry \
                         (at byte {offset})"
                    ))
                    .with_entry(pending.name()));
                }
            }
            match tf {
                typeflag::PAX_LOCAL => {
                    let data = self.read_special(size, "PAX header", offset)?;
                    let records = pax::parse_records(&data).map_err(|m| corrupt_at(offset, m))?;
                    if let Some((_, p)) = records
                        .iter()
                        .rev()
                        .find(|(k, v)| k == b"path" && !v.is_empty())
                    {
                        pending.hint = Some(p.clone());
                    }
                    // Go keeps the last PAX header's records only.
                    pending.pax = Some(records);
                }
                typeflag::GNU_LONGNAME | typeflag::GNU_LONGLINK => {
                    let mut data = self.read_special(size, "GNU long name", offset)?;
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    data.truncate(end);
                    if tf == typeflag::GNU_LONGNAME {
                        pending.hint = Some(data.clone());
                        pending.long_name = Some(data);
                    } else {
                        pending.long_link = Some(data);
                    }
                }
                _ => {
                    // A global header (whose records must still parse, as Go parses them) or a
                    // volume header: an entry to Go that unpackers skip, ending whatever came
                    // before it.
                    let what = if tf == typeflag::PAX_GLOBAL {
                        let data = self.read_special(size, "PAX global header", offset)?;
                        pax::parse_records(&data).map_err(|m| corrupt_at(offset, m))?;
                        "PAX global header"
                    } else {
                        if self.skip(size)? < size {
                            return Err(corrupt_at(
                                offset,
                                "archive ends inside a GNU volume header",
                            ));
                        }
                        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
                        if self.skip(pad)? < pad {
                            self.warn(
                                "archive ends inside the padding of a GNU volume header".into(),
                            );
                            self.done = true;
                            return Ok(None);
                        }
                        "GNU volume header"
                    };
                    if let Some(first) = pending.first_offset {
                        self.warn(format!(
                            "extended headers at byte {first} are followed by a {what}, not an \
                             entry; ignored"
                        ));
                    }
                    pending = Pending::default();
                }
            }
        }
    }

    /// The archive ends after extended headers and before their entry: as Go reads it, that is
    /// the end of the archive.
    fn end_after_extended_headers(&mut self, pending: &Pending) {
        self.warn(format!(
            "archive ends after extended headers (at byte {}), before their entry; they are ignored",
            pending.first_offset.unwrap_or(0)
        ));
    }

    fn finish_entry(
        &mut self,
        header: &Header<'_>,
        header_size: i64,
        pending: Pending,
        offset: u64,
    ) -> Result<Entry> {
        let num =
            |r: std::result::Result<i64, header::HeaderError>| r.map_err(|e| corrupt_at(offset, e));
        let (o, warnings) = match pending.pax {
            Some(records) => Overrides::from_records(records).map_err(|e| {
                Error::new(e.kind(), format!("{} (at byte {offset})", e.message()))
                    .with_entry(show_path(&header.name()))
            })?,
            None => (Overrides::default(), Vec::new()),
        };
        for w in warnings {
            self.warn(w);
        }
        // PAX records first, then GNU long names over them, as Go applies them.
        let mut path = o.path.unwrap_or_else(|| header.name());
        if let Some(n) = pending.long_name.filter(|n| !n.is_empty()) {
            path = n;
        }
        let mut link_name = o.link_path.unwrap_or_else(|| header.link_name());
        if let Some(n) = pending.long_link.filter(|n| !n.is_empty()) {
            link_name = n;
        }
        let tf = header.typeflag();
        let kind = match tf {
            typeflag::AREG if path.last() == Some(&b'/') => EntryKind::Dir,
            typeflag::REG | typeflag::AREG | typeflag::CONT | typeflag::GNU_SPARSE => {
                EntryKind::File
            }
            typeflag::LINK => EntryKind::HardLink,
            typeflag::SYMLINK => EntryKind::Symlink,
            typeflag::CHR => EntryKind::CharDevice,
            typeflag::BLK => EntryKind::BlockDevice,
            typeflag::DIR | typeflag::GNU_DUMPDIR => EntryKind::Dir,
            typeflag::FIFO => EntryKind::Fifo,
            typeflag::GNU_MULTIVOL => {
                return Err(Error::unsupported(format!(
                    "multi-volume tar entries are not supported (at byte {offset})"
                ))
                .with_entry(show_path(&path)))
            }
            other => {
                return Err(Error::unsupported(format!(
                    "tar entry type {:?} is not supported (at byte {offset})",
                    other as char
                ))
                .with_entry(show_path(&path)))
            }
        };
        // Types that never have data, whatever their size says (a GNU dump directory has).
        let header_only = tf != typeflag::GNU_DUMPDIR && kind != EntryKind::File;
        let size = o.size.unwrap_or(header_size);
        let data_size = if header_only {
            0
        } else {
            u64::try_from(size).map_err(|_| {
                corrupt_at(offset, format!("negative entry size {size}"))
                    .with_entry(show_path(&path))
            })?
        };
        let uid = match o.uid {
            Some(v) => v,
            None => num(header.uid())?,
        };
        let gid = match o.gid {
            Some(v) => v,
            None => num(header.gid())?,
        };
        let mut mode = num(header.mode())?;
        if kind == EntryKind::Symlink {
            mode = (mode & !0o7777) | 0o777;
        }
        let mtime = match o.mtime {
            Some(t) => t,
            None => Timestamp::from_secs(num(header.mtime())?),
        };
        let (header_atime, header_ctime) =
            match header.star_times().map_err(|e| corrupt_at(offset, e))? {
                Some((a, c)) => (Some(a), Some(c)),
                None => header.gnu_times().unwrap_or((None, None)),
            };
        let atime = o.atime.or(header_atime.map(Timestamp::from_secs));
        let ctime = o.ctime.or(header_ctime.map(Timestamp::from_secs));
        let dev_major = num(header.dev_major())?;
        let dev_minor = num(header.dev_minor())?;
        self.remaining = data_size;
        self.padding = (BLOCK as u64 - data_size % BLOCK as u64) % BLOCK as u64;

        // Sparse files.
        let mut file_size = data_size;
        let mut sparse = None;
        if tf == typeflag::GNU_SPARSE {
            if header.format != header::Format::Gnu {
                return Err(
                    corrupt_at(offset, "old GNU sparse entry in a header that is not GNU")
                        .with_entry(show_path(&path)),
                );
            }
            let (map, real) = self
                .read_old_gnu_sparse_map(header)
                .map_err(|e| e.with_entry(show_path(&path)))?;
            sparse = Some(map);
            file_size = u64::try_from(real).map_err(|_| {
                corrupt_at(offset, "negative sparse real size").with_entry(show_path(&path))
            })?;
        } else {
            let format = o.sparse.format();
            if format == SparseFormat::Unknown {
                let s = &o.sparse;
                return Err(Error::unsupported(format!(
                    "GNU sparse format {}.{} is not supported (at byte {offset})",
                    String::from_utf8_lossy(s.major.as_deref().unwrap_or_default()),
                    String::from_utf8_lossy(s.minor.as_deref().unwrap_or_default()),
                ))
                .with_entry(show_path(&path)));
            }
            if format != SparseFormat::None {
                if header_only || kind != EntryKind::File {
                    return Err(corrupt_at(
                        offset,
                        "sparse records on an entry that is not a file",
                    )
                    .with_entry(show_path(&path)));
                }
                if let Some(name) = o.sparse.name.as_ref().filter(|n| !n.is_empty()) {
                    path = name.clone();
                }
                let real = o.sparse.size.as_ref().filter(|v| !v.is_empty()).or(o
                    .sparse
                    .real_size
                    .as_ref()
                    .filter(|v| !v.is_empty()));
                let real = match real {
                    Some(v) => pax::parse_i64(v).ok_or_else(|| {
                        corrupt_at(
                            offset,
                            format!("sparse real size {} is not a number", pax::show(v)),
                        )
                        .with_entry(show_path(&path))
                    })?,
                    None => size,
                };
                file_size = u64::try_from(real).map_err(|_| {
                    corrupt_at(offset, "negative sparse real size").with_entry(show_path(&path))
                })?;
                let map = if format == SparseFormat::Data {
                    self.read_sparse_1_0(offset)
                } else {
                    o.sparse.map_pairs().map_err(|m| corrupt_at(offset, m))
                }
                .map_err(|e| e.with_entry(show_path(&path)))?;
                if map.len() > MAX_SPARSE_ENTRIES {
                    return Err(Error::limit(format!(
                        "sparse map of more than {MAX_SPARSE_ENTRIES} entries (at byte {offset})"
                    ))
                    .with_entry(show_path(&path)));
                }
                sparse = Some(map);
            }
        }
        let sparse = match sparse {
            None => None,
            Some(map) => Some(
                self.check_sparse_map(map, file_size, offset)
                    .map_err(|e| e.with_entry(show_path(&path)))?,
            ),
        };
        let id = |v: i64, what: &str| {
            u32::try_from(v).map_err(|_| {
                corrupt_at(offset, format!("{what} {v} does not fit in 32 bits"))
                    .with_entry(show_path(&path))
            })
        };
        Ok(Entry {
            uid: id(uid, "uid")?,
            gid: id(gid, "gid")?,
            dev_major: id(dev_major, "device major")?,
            dev_minor: id(dev_minor, "device minor")?,
            link_name,
            kind,
            mode: (mode & 0o7777_7777) as u32,
            mtime,
            atime,
            ctime,
            size: if matches!(kind, EntryKind::File) {
                file_size
            } else {
                0
            },
            data_size: self.remaining,
            sparse,
            xattrs: o.xattrs,
            path,
        })
    }

    /// Checks a sparse map as Go does (segments in order, not overlapping, within the file)
    /// and that its segments hold exactly the entry's data.
    fn check_sparse_map(
        &self,
        map: Vec<(i64, i64)>,
        size: u64,
        offset: u64,
    ) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::with_capacity(map.len());
        let mut end = 0u64;
        let mut total = 0u64;
        for (off, len) in map {
            let (Ok(off), Ok(len)) = (u64::try_from(off), u64::try_from(len)) else {
                return Err(corrupt_at(offset, "negative sparse map entry"));
            };
            let seg_end = off
                .checked_add(len)
                .filter(|&e| e <= i64::MAX as u64)
                .ok_or_else(|| corrupt_at(offset, "sparse map overflows"))?;
            if off < end || seg_end > size {
                return Err(corrupt_at(
                    offset,
                    "sparse map entries overlap, go backwards or pass the file size",
                ));
            }
            end = seg_end;
            total += len;
            out.push((off, len));
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
        Ok(out)
    }

    /// The old GNU sparse map: up to four pairs in the header, then extension blocks of 21 while
    /// the continuation flag is set (at most [`MAX_SPARSE_MAP_BYTES`] of them). Returns the map
    /// and the real size.
    fn read_old_gnu_sparse_map(&mut self, header: &Header<'_>) -> Result<(Vec<(i64, i64)>, i64)> {
        let offset = self.pos - BLOCK as u64;
        let header::GnuSparse {
            mut map,
            mut extended,
            real_size,
        } = header.gnu_sparse().map_err(|e| corrupt_at(offset, e))?;
        let mut ext = [0u8; BLOCK];
        let mut blocks = 0usize;
        while extended {
            blocks += 1;
            if blocks * BLOCK > MAX_SPARSE_MAP_BYTES {
                return Err(Error::limit(format!(
                    "old GNU sparse map of more than {} extension blocks (at byte {offset})",
                    MAX_SPARSE_MAP_BYTES / BLOCK
                )));
            }
            let at = self.pos;
            if self.read_block(&mut ext)?.is_none() {
                return Err(corrupt_at(at, "archive ends inside a sparse map"));
            }
            let (more, again) = parse_sparse_ext(&ext).map_err(|e| corrupt_at(at, e))?;
            map.extend(more);
            if map.len() > MAX_SPARSE_ENTRIES {
                return Err(Error::limit(format!(
                    "sparse map of more than {MAX_SPARSE_ENTRIES} entries (at byte {offset})"
                )));
            }
            extended = again;
        }
        Ok((map, real_size))
    }

    /// Reads the GNU 1.0 sparse map at the start of the entry's data: decimal numbers, one per
    /// line (the count, then offset and length pairs), padded to whole blocks. Each byte is
    /// looked at once; the map may take at most [`MAX_SPARSE_MAP_BYTES`].
    fn read_sparse_1_0(&mut self, offset: u64) -> Result<Vec<(i64, i64)>> {
        let mut text: Vec<u8> = Vec::new();
        let mut block = [0u8; BLOCK];
        // Start of the next number, and how far a newline was looked for.
        let mut start = 0usize;
        let mut scanned = 0usize;
        let mut count: Option<usize> = None;
        let mut values: Vec<i64> = Vec::new();
        loop {
            while let Some(nl) = text[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + nl;
                let v = pax::parse_i64(&text[start..end])
                    .ok_or_else(|| corrupt_at(offset, "sparse map value is not a number"))?;
                start = end + 1;
                scanned = start;
                match count {
                    None => {
                        let n = usize::try_from(v)
                            .map_err(|_| corrupt_at(offset, "sparse map count is negative"))?;
                        if n > MAX_SPARSE_ENTRIES {
                            return Err(Error::limit(format!(
                                "sparse map of {n} entries is larger than {MAX_SPARSE_ENTRIES} \
                                 (at byte {offset})"
                            )));
                        }
                        count = Some(n);
                    }
                    Some(_) => values.push(v),
                }
                if count.is_some_and(|n| values.len() == 2 * n) {
                    return Ok(values.chunks(2).map(|c| (c[0], c[1])).collect());
                }
            }
            scanned = text.len();
            if text.len() + BLOCK > MAX_SPARSE_MAP_BYTES {
                return Err(Error::limit(format!(
                    "sparse map takes more than {MAX_SPARSE_MAP_BYTES} bytes (at byte {offset})"
                )));
            }
            if self.remaining < BLOCK as u64 {
                return Err(corrupt_at(offset, "sparse map runs past the entry's data"));
            }
            if self.read_full(&mut block)? < BLOCK {
                return Err(corrupt_at(offset, "archive ends inside a sparse map"));
            }
            self.remaining -= BLOCK as u64;
            text.extend_from_slice(&block);
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
// Tar archives written byte by byte, shared with the integration tests.
#[cfg(test)]
mod conformance;
#[cfg(test)]
#[path = "../../tests/common/raw_tar.rs"]
mod raw_tar;

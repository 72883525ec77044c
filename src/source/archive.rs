//! Tar files of images (`docker save`, docker-archive, OCI archives) indexed in place: each
//! member's data offset and size, found by reading headers and seeking over data, so blobs are
//! later read where they lie, once, with no extraction.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blob::stream::Opener;
use crate::error::{Error, Result};
use crate::oci::MAX_DOCUMENT;
use crate::tar::{EntryKind, TarReader};

/// Members that no image archive has kept in an index at most.
const MAX_FOREIGN: usize = 4096;

/// What an indexed member is.
#[derive(Clone, Debug)]
enum Member {
    /// A regular file: its data's offset in the tar and its size.
    File { offset: u64, size: u64 },
    /// A symbolic link, its target resolved to a member name.
    Symlink(String),
    /// A hard link to another member.
    HardLink(String),
    /// Anything else (directories, devices).
    Other,
}

/// What a tar holds, judged by its member names alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `manifest.json` at the top: a `docker save` or docker-archive tar (Docker 25 and later
    /// also write an OCI layout beside it).
    Docker {
        /// Whether it is an OCI layout too (`oci-layout` and `index.json`).
        oci: bool,
    },
    /// `oci-layout` and `index.json` at the top, no `manifest.json`: an OCI archive.
    Oci,
    /// Neither: a root filesystem tar.
    Rootfs,
}

/// An indexed tar file.
pub struct TarIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
    /// How many members no image archive has, and the first of them.
    foreign: (usize, Option<String>),
    /// The spooled copy `path` is, removed when the last reader is dropped.
    _spool: Option<tempfile::TempPath>,
}

/// A member name as an archive path: no `./` prefix, no trailing `/`, `.` and `..` resolved
/// lexically (`..` above the top stays at the top).
pub fn normalize(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Whether `name` (normalized) is a member an image archive has: its index files, blobs,
/// `<64 hex digits>` layer directories (and what is in them), `<hex>.json` configs and
/// `<hex>.tar` layers. The top directory itself is neutral and counts as one.
pub fn is_image_member(name: &str) -> bool {
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let first = name.split('/').next().unwrap_or("");
    name.is_empty()
        || hex64(first)
        || first == "blobs"
        || name
            .strip_suffix(".json")
            .or_else(|| name.strip_suffix(".tar"))
            .is_some_and(hex64)
        || matches!(
            name,
            "manifest.json" | "repositories" | "oci-layout" | "index.json"
        )
}

/// The shape of a tar from the set of its (normalized) member names.
pub fn shape_of(has: impl Fn(&str) -> bool) -> Shape {
    let oci = has("oci-layout") && has("index.json");
    if has("manifest.json") {
        Shape::Docker { oci }
    } else if oci {
        Shape::Oci
    } else {
        Shape::Rootfs
    }
}

/// A buffered file whose relative seeks stay within the buffer when they can: indexing seeks
/// over every member's data, and most members of a root filesystem tar are small.
struct SeekBuffered(BufReader<File>);

impl Read for SeekBuffered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for SeekBuffered {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::Current(n) => {
                self.0.seek_relative(n)?;
                self.0.stream_position()
            }
            other => self.0.seek(other),
        }
    }
}

impl TarIndex {
    /// Indexes the tar file at `path` (reading headers, seeking over data). `spool` is the
    /// temporary file `path` names, if it is one; it is removed when the index and every
    /// reader it opened are dropped.
    pub fn open(path: &Path, spool: Option<tempfile::TempPath>) -> Result<Arc<Self>> {
        let file = File::open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let mut tar = TarReader::new(SeekBuffered(BufReader::with_capacity(16 << 10, file)));
        let mut members = HashMap::new();
        let mut foreign = (0, None);
        while let Some(entry) = tar.next_entry()? {
            let name = normalize(&String::from_utf8_lossy(&entry.path));
            let member = match entry.kind {
                EntryKind::File if entry.sparse.is_none() => Member::File {
                    offset: tar.data_offset(),
                    size: entry.data_size,
                },
                EntryKind::Symlink => {
                    let target = String::from_utf8_lossy(&entry.link_name).into_owned();
                    let base = name.rsplit_once('/').map_or("", |(dir, _)| dir);
                    Member::Symlink(if target.starts_with('/') {
                        normalize(&target)
                    } else {
                        normalize(&format!("{base}/{target}"))
                    })
                }
                EntryKind::HardLink => {
                    Member::HardLink(normalize(&String::from_utf8_lossy(&entry.link_name)))
                }
                _ => Member::Other,
            };
            tar.seek_past_data()?;
            if !is_image_member(&name) {
                foreign.0 += 1;
                if foreign.1.is_none() {
                    foreign.1 = Some(name.clone());
                }
                // A root filesystem tar may have millions of members: only so many that are
                // not an image's are kept (for an archive that names one of them).
                if foreign.0 > MAX_FOREIGN {
                    continue;
                }
            }
            // A later member of the same name replaces an earlier one, as on extraction.
            members.insert(name, member);
        }
        Ok(Arc::new(TarIndex {
            path: path.to_path_buf(),
            members,
            foreign,
            _spool: spool,
        }))
    }

    /// Whether the tar has a member of this (normalized) name.
    pub fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// The shape of the tar.
    pub fn shape(&self) -> Shape {
        shape_of(|n| self.has(n))
    }

    /// Members that no image archive has (see [`is_image_member`]): how many, and the first.
    pub fn foreign_members(&self) -> (usize, Option<&str>) {
        (self.foreign.0, self.foreign.1.as_deref())
    }

    /// The data of regular file `name`, following links: (offset, size).
    pub fn locate(&self, name: &str) -> Result<(u64, u64)> {
        let mut at = normalize(name);
        for _ in 0..16 {
            match self.members.get(&at) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Symlink(t) | Member::HardLink(t)) => at = t.clone(),
                Some(Member::Other) => {
                    return Err(Error::corrupt(format!(
                        "the archive's member {name:?} is not a file"
                    )))
                }
                None => {
                    return Err(Error::corrupt(format!(
                        "the archive has no member {name:?}"
                    )))
                }
            }
        }
        Err(Error::corrupt(format!(
            "the archive's member {name:?} is a loop of links"
        )))
    }

    /// Reads a small member (a manifest, an index, a config) whole.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let (offset, size) = self.locate(name)?;
        if size > MAX_DOCUMENT {
            return Err(Error::limit(format!(
                "{name} of {size} bytes is larger than {MAX_DOCUMENT}"
            )));
        }
        let mut data = vec![0u8; size as usize];
        let file = File::open(&self.path).map_err(|e| Error::io("cannot open the archive", e))?;
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut data, offset)
            .map_err(|_| Error::corrupt(format!("the archive ends inside {name}")))?;
        Ok(data)
    }

    /// An opener of member `name`'s data, its size and its expanded size (see
    /// [`crate::blob::compression::expanded_size_at`]).
    pub fn member(self: &Arc<Self>, name: &str) -> Result<(Opener, u64, Option<u64>)> {
        let (offset, size) = self.locate(name)?;
        let expanded = File::open(&self.path)
            .ok()
            .and_then(|f| crate::blob::compression::expanded_size_at(&f, offset, size));
        let index = Arc::clone(self);
        let open: Opener = Arc::new(move || {
            let mut f =
                File::open(&index.path).map_err(|e| Error::io("cannot open the archive", e))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io("cannot seek in the archive", e))?;
            Ok(Box::new(MemberData {
                _index: Arc::clone(&index),
                data: f.take(size),
            }) as Box<dyn Read + Send>)
        });
        Ok((open, size, expanded))
    }
}

/// A member's data, keeping its index (and a spooled tar) alive while it is read.
struct MemberData {
    _index: Arc<TarIndex>,
    data: io::Take<File>,
}

impl Read for MemberData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        if n == 0 && !buf.is_empty() && self.data.limit() > 0 {
            return Err(io::Error::other(Error::corrupt(
                "the archive ends inside a layer",
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        let hex = "a".repeat(64);
        for yes in [
            format!("{hex}/layer.tar"),
            hex.clone(),
            format!("{hex}.json"),
            format!("{hex}.tar"),
            "blobs/sha256/abc".into(),
            "manifest.json".into(),
            "oci-layout".into(),
            String::new(),
        ] {
            assert!(is_image_member(&yes), "{yes}");
        }
        for no in ["bin/sh", "etc", "abc.json", "lib/manifest.json"] {
            assert!(!is_image_member(no), "{no}");
        }
        assert_eq!(normalize("./a/../b/./c/"), "b/c");
        assert_eq!(normalize("../../x"), "x");
        assert_eq!(normalize("./"), "");
    }

    /// A ustar header of `kind` for `name` with `size` bytes of data and `link`.
    fn header(name: &str, kind: u8, size: usize, link: &str) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    #[test]
    fn members_are_found_through_links() {
        let hex = "c".repeat(64);
        let mut tar = Vec::new();
        let data = b"layer bytes";
        tar.extend_from_slice(&header(&format!("./{hex}/layer.tar"), b'0', data.len(), ""));
        tar.extend_from_slice(data);
        tar.resize(1024, 0);
        // Classic `docker save` links a repeated layer to the first copy.
        let dup = format!("{}/layer.tar", "d".repeat(64));
        tar.extend_from_slice(&header(&dup, b'2', 0, &format!("../{hex}/layer.tar")));
        tar.extend_from_slice(&header("hard", b'1', 0, &dup));
        tar.extend_from_slice(&header("loop", b'2', 0, "loop"));
        tar.extend_from_slice(&header("dir/", b'5', 0, ""));
        tar.resize(tar.len() + 1024, 0);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &tar).unwrap();
        let index = TarIndex::open(f.path(), None).unwrap();
        for name in [format!("{hex}/layer.tar"), dup, "hard".into()] {
            assert_eq!(
                index.locate(&name).unwrap(),
                (512, data.len() as u64),
                "{name}"
            );
            assert_eq!(index.read_small(&name).unwrap(), data);
            let (open, size, _) = index.member(&name).unwrap();
            let mut got = Vec::new();
            open().unwrap().read_to_end(&mut got).unwrap();
            assert_eq!((got.as_slice(), size), (&data[..], data.len() as u64));
        }
        assert!(index.locate("loop").is_err());
        assert!(index.locate("dir").is_err());
        assert!(index.locate("absent").is_err());
        assert_eq!(index.shape(), Shape::Rootfs);
        assert_eq!(index.foreign_members(), (3, Some("hard")));
    }

    #[test]
    fn shapes() {
        let of = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            shape_of(|n| names.iter().any(|m| m == n))
        };
        assert_eq!(
            of(&["a.tar", "manifest.json"]),
            Shape::Docker { oci: false }
        );
        assert_eq!(
            of(&["oci-layout", "index.json", "manifest.json"]),
            Shape::Docker { oci: true }
        );
        assert_eq!(of(&["oci-layout", "index.json"]), Shape::Oci);
        assert_eq!(of(&["oci-layout", "etc/passwd"]), Shape::Rootfs);
    }
}

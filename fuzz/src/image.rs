//! Reading a built image back in process with `ext4-view`, an ext4 reader written
//! independently of this crate that checks the metadata checksums of what it reads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use ext4_view::{Ext4, FileType};

/// What a path in the image is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file: its size and (some of) its content.
    File {
        size: u64,
        content: Vec<u8>,
    },
    Symlink(Vec<u8>),
    /// A device, fifo or socket.
    Special,
}

/// One path's inode as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
}

/// How much of each file to read.
#[derive(Clone, Copy, Debug)]
pub enum Contents {
    /// All of it.
    All,
    /// At most this many bytes from the start (files may be huge and sparse).
    Prefix(u64),
}

/// Most paths walked: a bound, so that a broken directory structure cannot hang the walk.
const MAX_PATHS: usize = 200_000;

/// Walks the whole image: every path (relative, without a leading `/`; the root is the empty
/// path) with its inode. `lost+found` at the root is left out.
pub fn read(image: &Path, contents: Contents) -> Result<BTreeMap<Vec<u8>, Entry>, String> {
    let fs = Ext4::load_from_path(image).map_err(|e| format!("load: {e}"))?;
    let mut out = BTreeMap::new();
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        if out.len() > MAX_PATHS {
            return Err(format!("more than {MAX_PATHS} paths"));
        }
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(&rel);
        let show = String::from_utf8_lossy(&abs).into_owned();
        let md = fs
            .symlink_metadata(&abs[..])
            .map_err(|e| format!("{show}: metadata: {e}"))?;
        let kind = match md.file_type() {
            FileType::Directory => {
                for e in fs
                    .read_dir(&abs[..])
                    .map_err(|e| format!("{show}: read_dir: {e}"))?
                {
                    let e = e.map_err(|e| format!("{show}: directory entry: {e}"))?;
                    let name = e.file_name();
                    let name: &[u8] = name.as_ref();
                    if name == b"." || name == b".." || (rel.is_empty() && name == b"lost+found") {
                        continue;
                    }
                    let mut child = rel.clone();
                    if !child.is_empty() {
                        child.push(b'/');
                    }
                    child.extend_from_slice(name);
                    stack.push(child);
                }
                Kind::Dir
            }
            FileType::Regular => {
                let mut f = fs
                    .open(&abs[..])
                    .map_err(|e| format!("{show}: open: {e}"))?;
                let limit = match contents {
                    Contents::All => u64::MAX,
                    Contents::Prefix(n) => n,
                };
                let mut content = Vec::new();
                (&mut f)
                    .take(limit)
                    .read_to_end(&mut content)
                    .map_err(|e| format!("{show}: read: {e}"))?;
                Kind::File {
                    size: md.len(),
                    content,
                }
            }
            FileType::Symlink => {
                let target = fs
                    .read_link(&abs[..])
                    .map_err(|e| format!("{show}: read_link: {e}"))?;
                Kind::Symlink(target.as_ref().to_vec())
            }
            _ => Kind::Special,
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.modified().seconds(),
            },
        );
    }
    Ok(out)
}

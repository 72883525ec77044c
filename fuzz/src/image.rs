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

/// Whether `msg`, an error of [`read`], is ext4-view refusing a valid late timestamp.
///
/// ext4-view 1.0 takes an inode's 32-bit seconds word as a non-negative `i32`, so it refuses
/// every time from 2038-01-19 on. The kernel and e2fsck take the word as signed and add the
/// epoch bits of the `_extra` word (tests/writer.rs checks such times through the kernel). So
/// the refusal counts as a failure only when the inode's raw fields are wrong too: a
/// nanosecond count of 10^9 or more, or no seconds word past `i32::MAX` to explain it.
pub fn is_late_time_refusal(image: &Path, msg: &str) -> bool {
    let Some(ino) = msg
        .split("inode ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" has invalid timestamp"))
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    let Ok(img) = std::fs::read(image) else {
        return false;
    };
    raw_times(&img, ino).is_some_and(|times| {
        times.iter().all(|&(_, extra)| extra >> 2 < 1_000_000_000)
            && times.iter().any(|&(secs, _)| secs > i32::MAX as u32)
    })
}

/// The (seconds, extra) words of inode `ino`'s atime, ctime, mtime and crtime, read from the
/// raw image through the superblock and the group descriptor table.
fn raw_times(img: &[u8], ino: u64) -> Option<Vec<(u32, u32)>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(img.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(img.get(at..at + 4)?.try_into().ok()?));
    let sb = 1024;
    let first_data_block = u64::from(u32_at(sb + 0x14)?);
    let block_size = 1024u64 << u32_at(sb + 0x18)?.min(6);
    let inodes_per_group = u64::from(u32_at(sb + 0x28)?).max(1);
    let inode_size = u64::from(u16_at(sb + 0x58)?);
    let desc_size = u64::from(u16_at(sb + 0xFE)?).max(32);
    let group = (ino.checked_sub(1)?) / inodes_per_group;
    let index = (ino - 1) % inodes_per_group;
    let desc = usize::try_from((first_data_block + 1) * block_size + group * desc_size).ok()?;
    let mut table = u64::from(u32_at(desc + 0x08)?);
    if desc_size >= 64 {
        table |= u64::from(u32_at(desc + 0x28)?) << 32;
    }
    let inode = usize::try_from(table * block_size + index * inode_size).ok()?;
    let extra_isize = u16_at(inode + 0x80)?;
    if inode_size <= 128 || extra_isize < 24 {
        return None;
    }
    Some(vec![
        (u32_at(inode + 0x08)?, u32_at(inode + 0x8C)?),
        (u32_at(inode + 0x0C)?, u32_at(inode + 0x84)?),
        (u32_at(inode + 0x10)?, u32_at(inode + 0x88)?),
        (u32_at(inode + 0x90)?, u32_at(inode + 0x94)?),
    ])
}

//! Finishing an image: once every entry is in, inode numbers are given out (`numbering`),
//! directories, extent trees, symlink blocks and xattr blocks are placed after the file data and
//! written in order, and the geometry is chosen from the real counts (`place`); then the inode
//! tables, journal, bitmaps, group descriptors and superblocks are written (`metadata`).

mod metadata;
mod numbering;
mod place;

use std::fs::File;

use sha2::{Digest, Sha256};

use super::options::BuildOptions;
use super::output::BlockSink;
use super::Summary;
use crate::error::{Error, Result};
use crate::ext4::checksum::fs_seed;
use crate::ext4::superblock::{HASH_SEED_LEN, UUID_LEN};
use crate::ext4::BlockSize;
use crate::layout::alloc::{BlockAllocator, Run};
use crate::tree::{Content, NodeId, Tree, ROOT};
use crate::verity;
use metadata::superblock;
use numbering::{number, Numbering};
use place::Placements;

/// Finishes the image in `file`: everything after the file data, in the order it lands on
/// disk.
pub(crate) fn finish(
    tree: &Tree,
    file: &File,
    alloc: BlockAllocator,
    opts: &BuildOptions,
    data_crc: u32,
    lost_found: Option<NodeId>,
) -> Result<Summary> {
    let numbering = number(tree)?;
    let digest = content_digest(tree, &numbering, opts, data_crc);
    let id = Identity::derive(opts, &digest);
    let bs = alloc.block_size();
    let mut fin = Finisher {
        tree,
        bs,
        opts,
        alloc,
        sink: BlockSink::new(file, bs, 2 << 20)?,
        meta_runs: Vec::new(),
        fs_seed: fs_seed(&id.uuid),
        hash_seed: id.hash_seed,
    };
    let placements = fin.place_all(&numbering, lost_found)?;
    let layout = fin.choose_geometry(&numbering, &placements)?;
    let journal = fin.journal_inode(&layout)?;
    fin.write_inode_tables(&numbering, &placements, &layout, journal.as_ref())?;
    fin.write_journal_superblock(&layout, &id.uuid)?;
    let Placements { data_runs, .. } = placements;
    let descs = fin.write_bitmaps(&numbering, data_runs, &layout)?;
    let max_ino = numbering.max_ino();
    let mut sb = superblock(opts, &id, &layout.geo, &descs, max_ino, journal.as_ref())?;
    fin.write_superblocks(&mut sb, &descs, &layout.geo)?;
    fin.sink.finish()?;
    let geo = layout.geo;
    let bsz = bs.bytes_u64();
    file.set_len(geo.blocks_count * bsz)
        .map_err(|e| Error::io("cannot size the image", e))?;
    let verity = match &opts.verity {
        Some(v) => {
            let salt = v
                .salt
                .clone()
                .unwrap_or_else(|| verity::derive_salt(&digest));
            let params = verity::HashTreeParams {
                salt: &salt,
                superblock: v.superblock,
                uuid: v.uuid,
                cancel: opts.cancel.as_deref(),
            };
            Some(verity::append(file, geo.blocks_count * bsz, &params)?)
        }
        None => None,
    };
    Ok(Summary {
        image_bytes: geo.blocks_count * bsz,
        block_size: bsz,
        blocks_count: geo.blocks_count,
        blocks_used: geo.blocks_count - sb.s_free_blocks_count,
        blocks_free: sb.s_free_blocks_count,
        inodes_count: geo.inodes_count(),
        inodes_used: u64::from(max_ino),
        inodes_free: u64::from(sb.s_free_inodes_count),
        groups: geo.groups,
        journal_blocks: layout.journal_blocks.unwrap_or(0),
        uuid: format_uuid(&id.uuid),
        data_bytes: 0,
        entries: 0,
        verity,
        kernel_copied_bytes: 0,
        read_copied_bytes: 0,
        direct_written_bytes: 0,
    })
}

/// The state of finishing: the tree, the allocator (after the file data) and the output.
struct Finisher<'a> {
    tree: &'a Tree,
    bs: BlockSize,
    opts: &'a BuildOptions,
    alloc: BlockAllocator,
    sink: BlockSink,
    /// Every block range placed here, in order.
    meta_runs: Vec<Run>,
    fs_seed: u32,
    hash_seed: [u8; HASH_SEED_LEN],
}

fn out_of_space(opts: &BuildOptions) -> Error {
    Error::limit(format!(
        "the image would grow past its maximum size of {} bytes (see the max_size option)",
        opts.limits.max_size
    ))
}

/// The filesystem's identity: UUID and directory hash seed.
struct Identity {
    uuid: [u8; UUID_LEN],
    hash_seed: [u8; HASH_SEED_LEN],
}

impl Identity {
    /// Takes what the options give, and derives the rest from the content digest.
    fn derive(opts: &BuildOptions, digest: &[u8; 32]) -> Self {
        let mut uuid = opts.uuid.unwrap_or_else(|| {
            let mut u = [0u8; UUID_LEN];
            u.copy_from_slice(&digest[..UUID_LEN]);
            // A version 8 (custom) UUID, RFC 9562 variant.
            u[6] = (u[6] & 0x0F) | 0x80;
            u[8] = (u[8] & 0x3F) | 0x80;
            u
        });
        if uuid == [0; UUID_LEN] {
            uuid[UUID_LEN - 1] = 1;
        }
        let hash_seed = opts.hash_seed.unwrap_or_else(|| {
            let mut s = [0u8; HASH_SEED_LEN];
            s.copy_from_slice(&digest[UUID_LEN..UUID_LEN + HASH_SEED_LEN]);
            s
        });
        Identity { uuid, hash_seed }
    }
}

/// A digest of everything that ends up in the image, for the default UUID and hash seed.
fn content_digest(
    tree: &Tree,
    numbering: &Numbering,
    opts: &BuildOptions,
    data_crc: u32,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"oci2ext4 image v1\0");
    h.update(opts.size.unwrap_or(0).to_le_bytes());
    h.update(format!(
        "{:?}|{}|{:?}|{:?}|{}|{:?}",
        opts.headroom, opts.min_size, opts.inodes, opts.label, opts.journal, opts.time
    ));
    for (num, node) in numbering.all() {
        let data = tree.inode(node);
        let a = &data.attrs;
        h.update(num.to_le_bytes());
        h.update([data.kind as u8]);
        h.update(a.mode.to_le_bytes());
        h.update(a.uid.to_le_bytes());
        h.update(a.gid.to_le_bytes());
        for t in [a.atime, a.mtime, a.ctime] {
            h.update(t.sec.to_le_bytes());
            h.update(t.nsec.to_le_bytes());
        }
        for x in a.xattrs.iter() {
            h.update((x.name.len() as u64).to_le_bytes());
            h.update(&x.name);
            h.update((x.value.len() as u64).to_le_bytes());
            h.update(&x.value);
        }
        match &data.content {
            Content::None => {}
            Content::File { size, extents } => {
                h.update(size.to_le_bytes());
                for e in extents.iter() {
                    h.update(e.ee_block.to_le_bytes());
                    h.update(e.ee_len.to_le_bytes());
                    h.update(e.ee_start.to_le_bytes());
                }
            }
            Content::Symlink(t) => h.update(t),
            Content::Device { major, minor } => {
                h.update(major.to_le_bytes());
                h.update(minor.to_le_bytes());
            }
        }
        for (name, child) in tree.children(node) {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name);
            h.update(numbering.ino(tree, child).to_le_bytes());
        }
    }
    h.update(data_crc.to_le_bytes());
    h.finalize().into()
}

/// The path of a node, for messages.
pub(crate) fn path_of(tree: &Tree, node: NodeId) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = node;
    while cur != ROOT {
        let parent = tree.parent(cur);
        let name = tree
            .children(parent)
            .find(|&(_, c)| c == cur)
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned());
        parts.push(name.unwrap_or_else(|| "?".into()));
        cur = parent;
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

/// Formats a UUID in its usual 8-4-4-4-12 form.
pub fn format_uuid(u: &[u8; UUID_LEN]) -> String {
    uuid::Uuid::from_bytes(*u).hyphenated().to_string()
}

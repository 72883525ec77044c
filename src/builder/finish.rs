//! Finishing an image: once every entry is in, inode numbers are given out, directories,
//! extent trees, symlink blocks and xattr blocks are placed after the file data and written in
//! order, the geometry is chosen from the real counts, and the inode tables, bitmaps, group
//! descriptors and superblocks follow.

use std::fs::File;

use sha2::{Digest, Sha256};

use super::options::BuildOptions;
use super::output::BlockSink;
use super::Summary;
use crate::error::{Error, Result};
use crate::ext4::bitmap::Bitmap;
use crate::ext4::checksum::{fs_seed, inode_seed};
use crate::ext4::dir::FileType;
use crate::ext4::extent::{self, Extent};
use crate::ext4::group_desc::{BgFlags, GroupDesc, DESC_SIZE};
use crate::ext4::inode::{
    self, encode_device, ino, mode, DiskTime, Inode, InodeFlags, EXT4_LINK_MAX, INODE_SIZE,
};
use crate::ext4::superblock::{
    CompatFeatures, DefaultMountOpts, IncompatFeatures, RoCompatFeatures, SuperFlags, Superblock,
    DX_HASH_HALF_MD4, EXT3_JNL_BACKUP_BLOCKS, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use crate::ext4::xattr;
use crate::ext4::{journal, BlockSize, LOG_GROUPS_PER_FLEX};
use crate::layout::alloc::{BlockAllocator, Run};
use crate::layout::directory;
use crate::layout::geometry::{has_super, Geometry};
use crate::layout::sizing::{
    self, runs_to_extents, Demand, GroupMetadata, SizePolicy, SizingError,
};
use crate::layout::xattrs;
use crate::tree::{Content, InodeData, Kind, NodeId, Tree, ROOT};
use crate::verity;

/// Longest symlink target kept in the inode itself (`i_block` holds 60 bytes, and the kernel
/// wants the terminating NUL inside it).
const FAST_SYMLINK_MAX: usize = 59;

/// Inode numbers in the order they are given: the root is 2, then from 11 on.
struct Numbering {
    /// Inode number of each tree inode (0: not reached).
    ino_of: Vec<u32>,
    /// The node of inode `ino::FIRST + i`.
    order: Vec<NodeId>,
}

impl Numbering {
    fn ino(&self, tree: &Tree, node: NodeId) -> u32 {
        self.ino_of[tree.inode_id(node) as usize]
    }

    fn max_ino(&self) -> u32 {
        ino::FIRST - 1 + self.order.len() as u32
    }

    /// Every numbered inode with its node: the root, then 11 on.
    fn all(&self) -> impl Iterator<Item = (u32, NodeId)> + '_ {
        std::iter::once((ino::ROOT, ROOT)).chain(
            self.order
                .iter()
                .enumerate()
                .map(|(i, &n)| (ino::FIRST + i as u32, n)),
        )
    }
}

/// Gives inode numbers: `lost+found` first (11, as mke2fs does), then directory by directory,
/// each directory's children consecutively in name order.
fn number(tree: &Tree) -> Result<Numbering> {
    let mut ino_of = vec![0u32; tree.inode_slots()];
    ino_of[tree.inode_id(ROOT) as usize] = ino::ROOT;
    let mut order = Vec::new();
    let mut next = u64::from(ino::FIRST);
    let mut give = |node: NodeId, ino_of: &mut Vec<u32>, order: &mut Vec<NodeId>| -> Result<()> {
        let slot = &mut ino_of[tree.inode_id(node) as usize];
        if *slot == 0 {
            *slot = u32::try_from(next)
                .map_err(|_| Error::limit("more inodes than ext4 can address"))?;
            order.push(node);
            next += 1;
        }
        Ok(())
    };
    if let Some(lf) = tree.child(ROOT, b"lost+found").filter(|&n| tree.is_dir(n)) {
        give(lf, &mut ino_of, &mut order)?;
    }
    let mut stack = vec![ROOT];
    let mut subdirs = Vec::new();
    while let Some(dir) = stack.pop() {
        subdirs.clear();
        for (_, child) in tree.children(dir) {
            give(child, &mut ino_of, &mut order)?;
            if tree.is_dir(child) {
                subdirs.push(child);
            }
        }
        stack.extend(subdirs.iter().rev());
    }
    Ok(Numbering { ino_of, order })
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegFile,
        Kind::Dir => FileType::Dir,
        Kind::Symlink => FileType::Symlink,
        Kind::CharDev => FileType::CharDev,
        Kind::BlockDev => FileType::BlockDev,
        Kind::Fifo => FileType::Fifo,
        Kind::Socket => FileType::Socket,
    }
}

fn mode_bits(kind: Kind) -> u16 {
    match kind {
        Kind::File => mode::S_IFREG,
        Kind::Dir => mode::S_IFDIR,
        Kind::Symlink => mode::S_IFLNK,
        Kind::CharDev => mode::S_IFCHR,
        Kind::BlockDev => mode::S_IFBLK,
        Kind::Fifo => mode::S_IFIFO,
        Kind::Socket => mode::S_IFSOCK,
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

/// Blocks an inode owns besides file data, placed during finishing.
#[derive(Default)]
struct Placed {
    /// First extent tree block (files and directories with more than four extents).
    tree_start: u64,
    /// Tree blocks.
    tree_blocks: u64,
    /// The external xattr block, or 0.
    xattr_block: u64,
    /// Directory and slow symlink blocks as extents.
    own: Vec<Extent>,
    /// Blocks in `own`.
    own_blocks: u64,
    /// Subdirectories (directories only).
    subdirs: u32,
    /// Whether the directory is hashed.
    htree: bool,
}

impl Placed {
    /// Nothing placed.
    const EMPTY: Placed = Placed {
        tree_start: 0,
        tree_blocks: 0,
        xattr_block: 0,
        own: Vec::new(),
        own_blocks: 0,
        subdirs: 0,
        htree: false,
    };

    fn is_empty(&self) -> bool {
        self.tree_blocks == 0 && self.xattr_block == 0 && self.own.is_empty() && self.subdirs == 0
    }
}

struct Finisher<'a> {
    tree: &'a Tree,
    bs: BlockSize,
    opts: &'a BuildOptions,
    alloc: BlockAllocator,
    sink: BlockSink,
    /// Every block range placed here, in order.
    meta_runs: Vec<Run>,
    fs_seed: u32,
    hash_seed: [u8; 16],
}

fn out_of_space(opts: &BuildOptions) -> Error {
    Error::limit(format!(
        "the image would grow past its maximum size of {} bytes (see the max_size option)",
        opts.limits.max_size
    ))
}

impl Finisher<'_> {
    fn alloc_runs(&mut self, mut n: u64) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        while n > 0 {
            let run = self.alloc.alloc(n).map_err(|_| out_of_space(self.opts))?;
            n -= run.len;
            runs.push(run);
            self.meta_runs.push(run);
        }
        Ok(runs)
    }

    fn alloc_contiguous(&mut self, n: u64) -> Result<u64> {
        let start = self
            .alloc
            .alloc_contiguous(n)
            .map_err(|_| out_of_space(self.opts))?;
        self.meta_runs.push(Run { start, len: n });
        Ok(start)
    }

    /// Places an extent tree for `extents` if the inode cannot hold them, writing its blocks.
    fn place_tree(&mut self, extents: &[Extent], seed: u32, placed: &mut Placed) -> Result<()> {
        let (blocks, depth) = extent::tree_shape(extents.len(), self.bs.bytes());
        if blocks == 0 {
            return Ok(());
        }
        if depth > extent::MAX_DEPTH {
            return Err(Error::limit(format!(
                "{} extents need an extent tree deeper than ext4 allows",
                extents.len()
            )));
        }
        let start = self.alloc_contiguous(blocks)?;
        placed.tree_start = start;
        placed.tree_blocks = blocks;
        let mut root = [0u8; inode::I_BLOCK_SIZE];
        let sink = &mut self.sink;
        extent::encode_tree(extents, start, self.bs.bytes(), seed, &mut root, |nr, b| {
            sink.write(nr, b).map_err(std::io::Error::other)
        })
        .map_err(Error::from)
    }

    /// Places and writes a directory's blocks.
    fn place_dir(
        &mut self,
        num: &Numbering,
        node: NodeId,
        self_ino: u32,
        min_blocks: usize,
        placed: &mut Placed,
    ) -> Result<()> {
        let tree = self.tree;
        let mut entries: Vec<directory::Entry<'_>> = tree
            .children(node)
            .map(|(name, child)| directory::Entry {
                name,
                ino: num.ino(tree, child),
                file_type: file_type(tree.inode(child).kind),
            })
            .collect();
        placed.subdirs = entries
            .iter()
            .filter(|e| e.file_type == FileType::Dir)
            .count() as u32;
        let bs = self.bs.bytes();
        let plan = directory::plan(&mut entries, &self.hash_seed, min_blocks, bs).map_err(|e| {
            Error::limit(format!(
                "directory with {} entries needs {} leaf blocks, more than an htree indexes",
                entries.len(),
                e.leaves
            ))
        })?;
        let blocks = plan.blocks() as u64;
        let runs = self.alloc_runs(blocks)?;
        let parent_ino = num.ino(tree, tree.parent(node));
        let seed = inode_seed(self.fs_seed, self_ino, 0);
        let mut physical = runs.iter().flat_map(|r| r.start..r.end());
        let sink = &mut self.sink;
        directory::encode(&plan, &entries, self_ino, parent_ino, seed, bs, |block| {
            let nr = physical
                .next()
                .ok_or_else(|| std::io::Error::other("directory plan and allocation disagree"))?;
            sink.write(nr, block).map_err(std::io::Error::other)
        })?;
        placed.own = runs_to_extents(&runs);
        placed.own_blocks = blocks;
        placed.htree = plan.is_htree();
        let own = std::mem::take(&mut placed.own);
        self.place_tree(&own, seed, placed)?;
        placed.own = own;
        Ok(())
    }

    /// Places everything an inode owns besides file data.
    fn place_inode(
        &mut self,
        num: &Numbering,
        node: NodeId,
        ino_nr: u32,
        lost_found: Option<NodeId>,
    ) -> Result<Placed> {
        let tree = self.tree;
        let data = tree.inode(node);
        let seed = inode_seed(self.fs_seed, ino_nr, 0);
        let mut placed = Placed::default();
        match (&data.kind, &data.content) {
            (Kind::Dir, _) => {
                let min_blocks = if Some(node) == lost_found { 4 } else { 1 };
                self.place_dir(num, node, ino_nr, min_blocks, &mut placed)?;
            }
            (Kind::Symlink, Content::Symlink(target)) if target.len() > FAST_SYMLINK_MAX => {
                let runs = self.alloc_runs(1)?;
                let mut block = vec![0u8; self.bs.bytes()];
                block[..target.len()].copy_from_slice(target);
                self.sink.write(runs[0].start, &block)?;
                placed.own = runs_to_extents(&runs);
                placed.own_blocks = 1;
            }
            (Kind::File, Content::File { extents, .. }) => {
                self.place_tree(extents, seed, &mut placed)?
            }
            _ => {}
        }
        let attrs = xattrs::stored(&data.attrs.xattrs);
        if !attrs.is_empty() {
            let placement = xattrs::place(&attrs, self.bs.bytes()).ok_or_else(|| {
                Error::limit("extended attributes do not fit in the inode and one block")
            })?;
            if !placement.block.is_empty() {
                let nr = self.alloc_runs(1)?[0].start;
                let mut block = vec![0u8; self.bs.bytes()];
                xattr::encode_block(&mut block, nr, self.fs_seed, &placement.block);
                self.sink.write(nr, &block)?;
                placed.xattr_block = nr;
            }
        }
        Ok(placed)
    }

    /// The on-disk inode of a tree inode.
    fn inode(&self, data: &InodeData, links: u16, placed: &Placed, seed: u32) -> Result<Inode> {
        let a = &data.attrs;
        let t = |ts: crate::entry::Timestamp| DiskTime {
            sec: ts.sec,
            nsec: ts.nsec,
        };
        let mut inode = Inode {
            i_mode: mode_bits(data.kind) | a.mode,
            i_uid: a.uid,
            i_gid: a.gid,
            i_atime: t(a.atime),
            i_ctime: t(a.ctime),
            i_mtime: t(a.mtime),
            i_crtime: t(a.ctime),
            i_links_count: links,
            ..Inode::default()
        };
        let mut blocks = placed.tree_blocks + u64::from(placed.xattr_block != 0);
        match &data.content {
            Content::File { size, extents } => {
                inode.i_size = *size;
                inode.i_flags = InodeFlags::EXTENTS;
                blocks += extents.iter().map(|e| u64::from(e.len())).sum::<u64>();
                extent_root(
                    extents,
                    placed.tree_start,
                    seed,
                    self.bs,
                    &mut inode.i_block,
                )?;
            }
            Content::Symlink(target) if target.len() <= FAST_SYMLINK_MAX => {
                inode.i_size = target.len() as u64;
                inode.i_block[..target.len()].copy_from_slice(target);
            }
            Content::Device { major, minor } => encode_device(*major, *minor, &mut inode.i_block),
            Content::Symlink(_) | Content::None => {
                if !placed.own.is_empty() {
                    inode.i_size = placed.own_blocks * self.bs.bytes_u64();
                    if let Content::Symlink(target) = &data.content {
                        inode.i_size = target.len() as u64;
                    }
                    inode.i_flags = InodeFlags::EXTENTS;
                    if placed.htree {
                        inode.i_flags |= InodeFlags::INDEX;
                    }
                    blocks += placed.own_blocks;
                    extent_root(
                        &placed.own,
                        placed.tree_start,
                        seed,
                        self.bs,
                        &mut inode.i_block,
                    )?;
                }
            }
        }
        inode.i_blocks = blocks * (self.bs.bytes_u64() / 512);
        inode.i_file_acl = placed.xattr_block;
        let attrs = xattrs::stored(&data.attrs.xattrs);
        if let Some(placement) = xattrs::place(&attrs, self.bs.bytes()) {
            xattr::encode_ibody(&mut inode.ibody_xattrs, &placement.ibody);
        }
        Ok(inode)
    }
}

/// Encodes the root of an extent tree into `i_block`; the tree's blocks, if any, were written
/// when it was placed.
fn extent_root(
    extents: &[Extent],
    tree_start: u64,
    seed: u32,
    bs: BlockSize,
    i_block: &mut [u8; inode::I_BLOCK_SIZE],
) -> Result<()> {
    extent::encode_tree(
        extents,
        tree_start,
        bs.bytes(),
        seed,
        i_block,
        |_, _| Ok(()),
    )
    .map_err(|e| Error::io("cannot encode an extent tree", e))
}

/// The journal inode for `extents`.
fn journal_inode(
    extents: &[Extent],
    tree_start: u64,
    blocks: u64,
    time: DiskTime,
    seed: u32,
    bs: BlockSize,
) -> Result<Inode> {
    let (tree_blocks, _) = extent::tree_shape(extents.len(), bs.bytes());
    let mut inode = Inode {
        i_mode: mode::S_IFREG | 0o600,
        i_size: blocks * bs.bytes_u64(),
        i_atime: time,
        i_ctime: time,
        i_mtime: time,
        i_crtime: time,
        i_links_count: 1,
        i_blocks: (blocks + tree_blocks) * (bs.bytes_u64() / 512),
        i_flags: InodeFlags::EXTENTS,
        ..Inode::default()
    };
    extent_root(extents, tree_start, seed, bs, &mut inode.i_block)?;
    Ok(inode)
}

/// The filesystem's identity: UUID and directory hash seed.
struct Identity {
    uuid: [u8; 16],
    hash_seed: [u8; 16],
}

impl Identity {
    /// Takes what the options give, and derives the rest from the content digest.
    fn derive(opts: &BuildOptions, digest: &[u8; 32]) -> Self {
        let mut uuid = opts.uuid.unwrap_or_else(|| {
            let mut u = [0u8; 16];
            u.copy_from_slice(&digest[..16]);
            // A version 8 (custom) UUID, RFC 9562 variant.
            u[6] = (u[6] & 0x0F) | 0x80;
            u[8] = (u[8] & 0x3F) | 0x80;
            u
        });
        if uuid == [0; 16] {
            uuid[15] = 1;
        }
        let hash_seed = opts.hash_seed.unwrap_or_else(|| {
            let mut s = [0u8; 16];
            s.copy_from_slice(&digest[16..]);
            s
        });
        Identity { uuid, hash_seed }
    }
}

/// What placing the per-inode blocks produced.
struct Placements {
    /// Indexed by inode number - 1; `None` for inodes that own no blocks besides file data.
    by_ino: Vec<Option<Box<Placed>>>,
    /// Every file data extent as a run of blocks.
    data_runs: Vec<Run>,
}

impl Placements {
    fn get(&self, ino_nr: u32) -> &Placed {
        static NONE: Placed = Placed::EMPTY;
        self.by_ino[ino_nr as usize - 1].as_deref().unwrap_or(&NONE)
    }
}

/// The chosen geometry and where its per-group metadata went.
struct Layout {
    geo: Geometry,
    journal_blocks: Option<u64>,
    meta: GroupMetadata,
}

/// `i_links_count` of a directory with `subdirs` subdirectories (`dir_nlink`: 1 past the limit).
fn dir_links(subdirs: u32) -> u16 {
    let l = 2 + subdirs;
    if l >= EXT4_LINK_MAX {
        1
    } else {
        l as u16
    }
}

impl Finisher<'_> {
    /// Places and writes every inode's own blocks, in inode order, right after the data.
    fn place_all(
        &mut self,
        numbering: &Numbering,
        lost_found: Option<NodeId>,
    ) -> Result<Placements> {
        let tree = self.tree;
        let max_ino = numbering.max_ino();
        let mut by_ino: Vec<Option<Box<Placed>>> = Vec::with_capacity(max_ino as usize);
        by_ino.resize_with(max_ino as usize, || None);
        let mut data_runs = Vec::new();
        for (ino_nr, node) in numbering.all() {
            let p = self
                .place_inode(numbering, node, ino_nr, lost_found)
                .map_err(|e| e.with_entry(path_of(tree, node)))?;
            if let Content::File { extents, .. } = &tree.inode(node).content {
                data_runs.extend(extents.iter().map(|e| Run {
                    start: e.ee_start,
                    len: u64::from(e.len()),
                }));
            }
            if !p.is_empty() {
                by_ino[ino_nr as usize - 1] = Some(Box::new(p));
            }
        }
        Ok(Placements { by_ino, data_runs })
    }

    /// Chooses the geometry from the real counts and places the bitmaps, inode tables and
    /// journal.
    fn choose_geometry(
        &mut self,
        numbering: &Numbering,
        placements: &Placements,
    ) -> Result<Layout> {
        let opts = self.opts;
        let data_blocks: u64 = placements.data_runs.iter().map(|r| r.len).sum();
        let per_inode_blocks: u64 = self.meta_runs.iter().map(|r| r.len).sum();
        let policy = SizePolicy {
            fixed_bytes: opts.size,
            headroom: opts.headroom,
            min_bytes: opts.min_size,
            inodes: opts.inodes,
            // dm-verity's 4096-byte blocks cover the filesystem exactly.
            align_blocks: match opts.verity {
                Some(_) => verity::VERITY_BLOCK_SIZE / self.bs.bytes_u64(),
                None => 1,
            },
        };
        let demand = Demand {
            used_blocks: data_blocks + per_inode_blocks,
            inodes_used: u64::from(numbering.max_ino()),
            journal: opts.journal,
        };
        let plan = sizing::plan(&demand, &policy, &self.alloc).map_err(|e| match e {
            SizingError::TooSmall { needed_bytes } => Error::limit(format!(
                "the content needs an image of at least {needed_bytes} bytes ({} MiB), more than the size given",
                needed_bytes.div_ceil(1 << 20)
            )),
            SizingError::Inodes(msg) => Error::limit(msg),
            SizingError::OutOfSpace(_) => out_of_space(opts),
        })?;
        let meta =
            sizing::place_group_metadata(&mut self.alloc, &plan.geometry, plan.journal_blocks)
                .map_err(|_| out_of_space(opts))?;
        self.meta_runs.extend_from_slice(&meta.runs);
        if self.alloc.high_water() > plan.geometry.blocks_count {
            return Err(out_of_space(opts));
        }
        Ok(Layout {
            geo: plan.geometry,
            journal_blocks: plan.journal_blocks,
            meta,
        })
    }

    /// The journal inode, if there is a journal.
    fn journal_inode(&self, layout: &Layout) -> Result<Option<Inode>> {
        let time = DiskTime {
            sec: self.opts.time.sec,
            nsec: self.opts.time.nsec,
        };
        match &layout.meta.journal {
            Some((extents, tree_start)) => {
                let seed = inode_seed(self.fs_seed, ino::JOURNAL, 0);
                let blocks = layout.journal_blocks.unwrap_or(0);
                Ok(Some(journal_inode(
                    extents,
                    *tree_start,
                    blocks,
                    time,
                    seed,
                    self.bs,
                )?))
            }
            None => Ok(None),
        }
    }

    /// Writes the used prefix of each group's inode table; the rest stays a hole. Reserved
    /// inodes other than the root and the journal stay zero.
    fn write_inode_tables(
        &mut self,
        numbering: &Numbering,
        placements: &Placements,
        layout: &Layout,
        journal: Option<&Inode>,
    ) -> Result<()> {
        let tree = self.tree;
        let ipg = layout.geo.inodes_per_group;
        let max_ino = numbering.max_ino();
        let mut table = Vec::new();
        let mut raw = [0u8; INODE_SIZE];
        for g in 0..layout.geo.groups {
            let first = g * ipg + 1;
            if first > max_ino {
                break;
            }
            let last = (first + ipg - 1).min(max_ino);
            table.clear();
            table.resize(
                ((last - first + 1) as usize * INODE_SIZE).next_multiple_of(self.bs.bytes()),
                0,
            );
            for n in first..=last {
                let seed = inode_seed(self.fs_seed, n, 0);
                let node = match n {
                    ino::ROOT => ROOT,
                    ino::JOURNAL => match journal {
                        Some(j) => {
                            j.encode(seed, &mut raw);
                            let at = (n - first) as usize * INODE_SIZE;
                            table[at..at + INODE_SIZE].copy_from_slice(&raw);
                            continue;
                        }
                        None => continue,
                    },
                    n if n >= ino::FIRST => numbering.order[(n - ino::FIRST) as usize],
                    _ => continue,
                };
                let data = tree.inode(node);
                let p = placements.get(n);
                let links = if data.kind == Kind::Dir {
                    dir_links(p.subdirs)
                } else {
                    data.links() as u16
                };
                let encoded = self
                    .inode(data, links, p, seed)
                    .map_err(|e| e.with_entry(path_of(tree, node)))?;
                encoded.encode(seed, &mut raw);
                let at = (n - first) as usize * INODE_SIZE;
                table[at..at + INODE_SIZE].copy_from_slice(&raw);
            }
            self.sink
                .write(layout.meta.inode_tables[g as usize], &table)?;
        }
        Ok(())
    }

    /// Writes the block bitmaps (from every used run) and the inode bitmaps, each set in one
    /// pass, and returns the group descriptors.
    fn write_bitmaps(
        &mut self,
        numbering: &Numbering,
        data_runs: Vec<Run>,
        layout: &Layout,
    ) -> Result<Vec<GroupDesc>> {
        let tree = self.tree;
        let geo = &layout.geo;
        let ipg = geo.inodes_per_group;
        let max_ino = numbering.max_ino();
        let mut used = data_runs;
        used.extend_from_slice(&self.meta_runs);
        for g in 0..u64::from(geo.groups) {
            if has_super(g) {
                used.push(Run {
                    start: geo.group_start(g as u32),
                    len: 1 + geo.gdt_blocks(),
                });
            }
        }
        used.sort_unstable_by_key(|r| r.start);
        if used.windows(2).any(|w| w[0].end() > w[1].start) {
            return Err(Error::new(
                crate::ErrorKind::Io,
                "internal error: overlapping block allocations",
            ));
        }
        let mut dirs_per_group = vec![0u32; geo.groups as usize];
        for (n, node) in numbering.all() {
            if tree.is_dir(node) {
                dirs_per_group[((n - 1) / ipg) as usize] += 1;
            }
        }
        let mut descs = Vec::with_capacity(geo.groups as usize);
        let mut block = vec![0u8; self.bs.bytes()];
        let mut next_run = 0usize;
        for g in 0..geo.groups {
            let gstart = geo.group_start(g);
            let glen = geo.group_len(g);
            let gend = gstart + u64::from(glen);
            let mut bm = Bitmap::new(&mut block);
            let mut used_in_group = 0u64;
            while next_run < used.len() && used[next_run].start < gend {
                let r = used[next_run];
                let (from, to) = (r.start.max(gstart), r.end().min(gend));
                if to > from {
                    bm.set_range((from - gstart) as u32, (to - from) as u32);
                    used_in_group += to - from;
                }
                if r.end() > gend {
                    break;
                }
                next_run += 1;
            }
            bm.pad_from(glen);
            let block_csum = bm.checksum(self.fs_seed, self.bs.blocks_per_group());
            self.sink
                .write(layout.meta.block_bitmaps[g as usize], &block)?;
            // Inodes 1..=max_ino are all in use: each group's used inodes are a prefix.
            let used_inodes = max_ino.saturating_sub(g * ipg).min(ipg);
            descs.push(GroupDesc {
                bg_block_bitmap: layout.meta.block_bitmaps[g as usize],
                bg_inode_bitmap: layout.meta.inode_bitmaps[g as usize],
                bg_inode_table: layout.meta.inode_tables[g as usize],
                bg_free_blocks_count: (u64::from(glen) - used_in_group) as u32,
                bg_free_inodes_count: ipg - used_inodes,
                bg_used_dirs_count: dirs_per_group[g as usize],
                bg_flags: if used_inodes == 0 {
                    BgFlags::INODE_ZEROED | BgFlags::INODE_UNINIT
                } else {
                    BgFlags::INODE_ZEROED
                },
                bg_block_bitmap_csum: block_csum,
                bg_inode_bitmap_csum: 0,
                bg_itable_unused: ipg - used_inodes,
            });
        }
        for (g, d) in descs.iter_mut().enumerate() {
            let mut bm = Bitmap::new(&mut block);
            bm.set_range(0, ipg - d.bg_free_inodes_count);
            bm.pad_from(ipg);
            d.bg_inode_bitmap_csum = bm.checksum(self.fs_seed, ipg);
            self.sink.write(layout.meta.inode_bitmaps[g], &block)?;
        }
        Ok(descs)
    }

    /// Writes the superblock and descriptor table into group 0 and every backup group.
    fn write_superblocks(
        &mut self,
        sb: &mut Superblock,
        descs: &[GroupDesc],
        geo: &Geometry,
    ) -> Result<()> {
        let bs = self.bs.bytes();
        let mut gdt = vec![0u8; geo.gdt_blocks() as usize * bs];
        for (g, d) in descs.iter().enumerate() {
            let mut raw = [0u8; DESC_SIZE];
            d.encode(g as u32, self.fs_seed, &mut raw);
            gdt[g * DESC_SIZE..(g + 1) * DESC_SIZE].copy_from_slice(&raw);
        }
        let mut sb_raw = [0u8; SUPERBLOCK_SIZE];
        let mut first = vec![0u8; bs];
        for g in (0..geo.groups).filter(|&g| has_super(u64::from(g))) {
            sb.s_block_group_nr = g as u16;
            sb.encode(&mut sb_raw);
            first.fill(0);
            // The primary superblock is at byte 1024: inside block 0, or block 1 of its own
            // with 1 KiB blocks (where group 0 starts). Copies start their group's first block.
            let at = if g == 0 {
                SUPERBLOCK_OFFSET as usize % bs
            } else {
                0
            };
            first[at..at + SUPERBLOCK_SIZE].copy_from_slice(&sb_raw);
            let start = geo.group_start(g);
            self.sink.write(start, &first)?;
            self.sink.write(start + 1, &gdt)?;
        }
        Ok(())
    }
}

/// The superblock of a finished layout.
fn superblock(
    opts: &BuildOptions,
    id: &Identity,
    geo: &Geometry,
    descs: &[GroupDesc],
    max_ino: u32,
    journal: Option<&Inode>,
) -> Superblock {
    let mut label = [0u8; 16];
    if let Some(l) = &opts.label {
        label[..l.len()].copy_from_slice(l.as_bytes());
    }
    let mut jnl_blocks = [0u32; 17];
    if let Some(j) = journal {
        for (i, w) in j.i_block.chunks(4).enumerate() {
            jnl_blocks[i] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        }
        jnl_blocks[15] = (j.i_size >> 32) as u32;
        jnl_blocks[16] = j.i_size as u32;
    }
    let free_blocks: u64 = descs
        .iter()
        .map(|d| u64::from(d.bg_free_blocks_count))
        .sum();
    let mut compat = CompatFeatures::EXT_ATTR | CompatFeatures::DIR_INDEX;
    if journal.is_some() {
        compat |= CompatFeatures::HAS_JOURNAL;
    }
    Superblock {
        s_inodes_count: geo.inodes_count() as u32,
        s_blocks_count: geo.blocks_count,
        s_r_blocks_count: 0,
        s_free_blocks_count: free_blocks,
        s_free_inodes_count: (geo.inodes_count() - u64::from(max_ino)) as u32,
        s_first_data_block: geo.block_size.first_data_block() as u32,
        s_log_block_size: geo.block_size.log(),
        s_blocks_per_group: geo.block_size.blocks_per_group(),
        s_inodes_per_group: geo.inodes_per_group,
        s_mkfs_time: opts.time.sec.max(0) as u64,
        s_first_ino: ino::FIRST,
        s_inode_size: INODE_SIZE as u16,
        s_block_group_nr: 0,
        s_feature_compat: compat,
        s_feature_incompat: IncompatFeatures::FILETYPE
            | IncompatFeatures::EXTENTS
            | IncompatFeatures::BIT64
            | IncompatFeatures::FLEX_BG,
        s_feature_ro_compat: RoCompatFeatures::SPARSE_SUPER
            | RoCompatFeatures::LARGE_FILE
            | RoCompatFeatures::HUGE_FILE
            | RoCompatFeatures::DIR_NLINK
            | RoCompatFeatures::EXTRA_ISIZE
            | RoCompatFeatures::METADATA_CSUM,
        s_uuid: id.uuid,
        s_volume_name: label,
        s_journal_inum: if journal.is_some() { ino::JOURNAL } else { 0 },
        s_hash_seed: id.hash_seed,
        s_def_hash_version: DX_HASH_HALF_MD4,
        s_jnl_backup_type: if journal.is_some() {
            EXT3_JNL_BACKUP_BLOCKS
        } else {
            0
        },
        s_desc_size: DESC_SIZE as u16,
        s_default_mount_opts: DefaultMountOpts::XATTR_USER | DefaultMountOpts::ACL,
        s_jnl_blocks: jnl_blocks,
        s_min_extra_isize: inode::EXTRA_ISIZE,
        s_flags: SuperFlags::UNSIGNED_HASH,
        s_log_groups_per_flex: LOG_GROUPS_PER_FLEX,
    }
}

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
    if let Some((extents, _)) = &layout.meta.journal {
        let mut block = vec![0u8; bs.bytes()];
        journal::encode_superblock(
            &mut block,
            bs.bytes() as u32,
            layout.journal_blocks.unwrap_or(0) as u32,
            &id.uuid,
        );
        fin.sink.write(extents[0].ee_start, &block)?;
    }
    let Placements { data_runs, .. } = placements;
    let descs = fin.write_bitmaps(&numbering, data_runs, &layout)?;
    let max_ino = numbering.max_ino();
    let mut sb = superblock(opts, &id, &layout.geo, &descs, max_ino, journal.as_ref());
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
    })
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
pub fn format_uuid(u: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*u).hyphenated().to_string()
}

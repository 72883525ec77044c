//! Placing what each inode owns besides its file data (directory blocks, extent tree blocks, slow
//! symlink blocks, xattr blocks), in inode order right after the data; then choosing the geometry
//! from the real counts and placing the per-group metadata and the journal.

use super::numbering::Numbering;
use super::{out_of_space, path_of, Finisher};
use crate::error::{Error, Result};
use crate::ext4::checksum::inode_seed;
use crate::ext4::dir::FileType;
use crate::ext4::extent::{self, Extent};
use crate::ext4::inode::{self, FAST_SYMLINK_MAX};
use crate::ext4::{capped, xattr};
use crate::layout::alloc::Run;
use crate::layout::directory;
use crate::layout::geometry::Geometry;
use crate::layout::sizing::{
    self, runs_to_extents, Demand, GroupMetadata, SizePolicy, SizingError,
};
use crate::layout::xattrs;
use crate::tree::{Content, Kind, NodeId};
use crate::verity;

/// Blocks `lost+found` gets, as mke2fs gives it, so that e2fsck finds room there without
/// allocating.
const LOST_FOUND_BLOCKS: usize = 4;

/// What placing the per-inode blocks produced.
pub(super) struct Placements {
    /// Indexed by inode number - 1; `None` for inodes that own no blocks besides file data.
    by_ino: Vec<Option<Box<Placed>>>,
    /// Every file data extent as a run of blocks.
    pub(super) data_runs: Vec<Run>,
}

impl Placements {
    pub(super) fn get(&self, ino_nr: u32) -> &Placed {
        static NONE: Placed = Placed::EMPTY;
        self.by_ino[ino_nr as usize - 1].as_deref().unwrap_or(&NONE)
    }
}

/// Blocks an inode owns besides file data, placed during finishing.
#[derive(Default)]
pub(super) struct Placed {
    /// First extent tree block (files and directories with more than four extents).
    pub(super) tree_start: u64,
    /// Tree blocks.
    pub(super) tree_blocks: u64,
    /// The external xattr block, or 0.
    pub(super) xattr_block: u64,
    /// Directory and slow symlink blocks as extents.
    pub(super) own: Vec<Extent>,
    /// Blocks in `own`.
    pub(super) own_blocks: u64,
    /// Subdirectories (directories only).
    pub(super) subdirs: u32,
    /// Whether the directory is hashed.
    pub(super) htree: bool,
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

/// The chosen geometry and where its per-group metadata went.
pub(super) struct Layout {
    pub(super) geo: Geometry,
    pub(super) journal_blocks: Option<u64>,
    pub(super) meta: GroupMetadata,
}

impl Finisher<'_> {
    /// Places and writes every inode's own blocks, in inode order, right after the data.
    pub(super) fn place_all(
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
                let min_blocks = if Some(node) == lost_found {
                    LOST_FOUND_BLOCKS
                } else {
                    1
                };
                self.place_dir(num, node, ino_nr, min_blocks, &mut placed)?;
            }
            (Kind::Symlink, Content::Symlink(target)) if target.len() > FAST_SYMLINK_MAX => {
                let runs = self.alloc_runs(1)?;
                let mut block = vec![0u8; self.bs.bytes()];
                block[..target.len()].copy_from_slice(target);
                self.sink.write(runs[0].start, &block)?;
                placed.own = runs_to_extents(&runs)?;
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
                xattr::encode_block(&mut block, nr, self.fs_seed, &placement.block)?;
                self.sink.write(nr, &block)?;
                placed.xattr_block = nr;
            }
        }
        Ok(placed)
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
        let subdirs = entries
            .iter()
            .filter(|e| e.file_type == FileType::Dir)
            .count();
        // Past EXT4_LINK_MAX the count is not stored (dir_nlink), so saturating is exact.
        placed.subdirs = capped(subdirs as u64, u32::MAX);
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
        placed.own = runs_to_extents(&runs)?;
        placed.own_blocks = blocks;
        placed.htree = plan.is_htree();
        let own = std::mem::take(&mut placed.own);
        self.place_tree(&own, seed, placed)?;
        placed.own = own;
        Ok(())
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
            sink.write(nr, b)
        })
    }

    /// Chooses the geometry from the real counts and places the bitmaps, inode tables and
    /// journal.
    pub(super) fn choose_geometry(
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
            SizingError::Field(e) => Error::from(e),
        })?;
        let meta =
            sizing::place_group_metadata(&mut self.alloc, &plan.geometry, plan.journal_blocks)
                .map_err(|e| match e {
                    SizingError::Field(e) => Error::from(e),
                    _ => out_of_space(opts),
                })?;
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

    /// Allocates `n` blocks in as few runs as the allocator gives, noting them as metadata.
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

    /// Allocates `n` contiguous blocks, noting them as metadata.
    fn alloc_contiguous(&mut self, n: u64) -> Result<u64> {
        let start = self
            .alloc
            .alloc_contiguous(n)
            .map_err(|_| out_of_space(self.opts))?;
        self.meta_runs.push(Run { start, len: n });
        Ok(start)
    }
}

/// The directory entry type of an inode kind.
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

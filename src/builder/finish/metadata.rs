//! Writing the metadata once everything is placed: the inode tables, the journal's inode and
//! superblock, the block and inode bitmaps with the group descriptors, and the superblock with
//! its backups.

use super::numbering::Numbering;
use super::place::{Layout, Placed, Placements};
use super::{path_of, Finisher, Identity};
use crate::builder::options::BuildOptions;
use crate::error::{Error, Result};
use crate::ext4::bitmap::Bitmap;
use crate::ext4::checksum::inode_seed;
use crate::ext4::extent::{self, Extent};
use crate::ext4::group_desc::{BgFlags, GroupDesc, DESC_SIZE, S_DESC_SIZE};
use crate::ext4::inode::{
    self, encode_device, ino, mode, DiskTime, Inode, InodeFlags, EXT4_LINK_MAX, FAST_SYMLINK_MAX,
    INODE_SIZE, I_BLOCKS_UNIT, TIME_MAX,
};
use crate::ext4::superblock::{
    journal_backup, CompatFeatures, DefaultMountOpts, IncompatFeatures, RoCompatFeatures,
    SuperFlags, Superblock, DX_HASH_HALF_MD4, EXT3_JNL_BACKUP_BLOCKS, JNL_BLOCKS_WORDS,
    SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, UUID_LEN, VOLUME_NAME_LEN,
};
use crate::ext4::xattr;
use crate::ext4::{capped, fit, journal, BlockSize, FieldOutOfRange, LOG_GROUPS_PER_FLEX};
use crate::layout::alloc::Run;
use crate::layout::geometry::{has_super, Geometry};
use crate::layout::xattrs;
use crate::tree::{Content, InodeData, Kind, ROOT};

impl Finisher<'_> {
    /// The journal inode, if there is a journal: a regular file whose extents (and extent tree,
    /// for a fragmented journal) were placed with the group metadata.
    pub(super) fn journal_inode(&self, layout: &Layout) -> Result<Option<Inode>> {
        let Some((extents, tree_start)) = &layout.meta.journal else {
            return Ok(None);
        };
        let time = DiskTime {
            sec: self.opts.time.sec,
            nsec: self.opts.time.nsec,
        };
        let blocks = layout.journal_blocks.unwrap_or(0);
        let (tree_blocks, _) = extent::tree_shape(extents.len(), self.bs.bytes());
        let mut inode = Inode {
            i_mode: mode::S_IFREG | journal::INODE_PERMISSIONS,
            i_size: blocks * self.bs.bytes_u64(),
            i_atime: time,
            i_ctime: time,
            i_mtime: time,
            i_crtime: time,
            i_links_count: 1,
            i_blocks: (blocks + tree_blocks) * (self.bs.bytes_u64() / I_BLOCKS_UNIT),
            i_flags: InodeFlags::EXTENTS,
            ..Inode::default()
        };
        let seed = inode_seed(self.fs_seed, ino::JOURNAL, 0);
        extent_root(extents, *tree_start, seed, self.bs, &mut inode.i_block)?;
        Ok(Some(inode))
    }

    /// Writes the journal's superblock (an empty, clean journal) into its first block.
    pub(super) fn write_journal_superblock(
        &mut self,
        layout: &Layout,
        uuid: &[u8; UUID_LEN],
    ) -> Result<()> {
        let Some((extents, _)) = &layout.meta.journal else {
            return Ok(());
        };
        let mut block = vec![0u8; self.bs.bytes()];
        journal::encode_superblock(
            &mut block,
            self.bs.bytes_u32(),
            fit("s_maxlen", layout.journal_blocks.unwrap_or(0))?,
            uuid,
        );
        self.sink.write(extents[0].ee_start, &block)?;
        Ok(())
    }

    /// Writes the used prefix of each group's inode table; the rest stays a hole. Reserved
    /// inodes other than the root and the journal stay zero.
    pub(super) fn write_inode_tables(
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
                            j.encode(seed, &mut raw)?;
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
                    fit("i_links_count", u64::from(data.links()))?
                };
                let encoded = self
                    .inode(data, links, p, seed)
                    .map_err(|e| e.with_entry(path_of(tree, node)))?;
                encoded.encode(seed, &mut raw)?;
                let at = (n - first) as usize * INODE_SIZE;
                table[at..at + INODE_SIZE].copy_from_slice(&raw);
            }
            self.sink
                .write(layout.meta.inode_tables[g as usize], &table)?;
        }
        Ok(())
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
        inode.i_blocks = blocks * (self.bs.bytes_u64() / I_BLOCKS_UNIT);
        inode.i_file_acl = placed.xattr_block;
        let attrs = xattrs::stored(&data.attrs.xattrs);
        if let Some(placement) = xattrs::place(&attrs, self.bs.bytes()) {
            xattr::encode_ibody(&mut inode.ibody_xattrs, &placement.ibody)?;
        }
        Ok(inode)
    }

    /// Writes the block bitmaps (from every used run) and the inode bitmaps, each set in one
    /// pass, and returns the group descriptors.
    pub(super) fn write_bitmaps(
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
        for g in 0..geo.groups {
            if has_super(u64::from(g)) {
                used.push(Run {
                    start: geo.group_start(g),
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
                    // Both within the group, so at most its length.
                    bm.set_range(capped(from - gstart, glen), capped(to - from, glen));
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
                bg_free_blocks_count: free_blocks(glen, used_in_group)?,
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
    pub(super) fn write_superblocks(
        &mut self,
        sb: &mut Superblock,
        descs: &[GroupDesc],
        geo: &Geometry,
    ) -> Result<()> {
        let bs = self.bs.bytes();
        let gdt_bytes = usize::try_from(geo.gdt_blocks() * self.bs.bytes_u64())
            .map_err(|_| Error::limit("the descriptor table does not fit in memory"))?;
        let mut gdt = vec![0u8; gdt_bytes];
        for ((g, d), at) in (0..geo.groups).zip(descs).zip((0..).step_by(DESC_SIZE)) {
            let mut raw = [0u8; DESC_SIZE];
            d.encode(g, self.fs_seed, &mut raw);
            gdt[at..at + DESC_SIZE].copy_from_slice(&raw);
        }
        let mut sb_raw = [0u8; SUPERBLOCK_SIZE];
        let mut first = vec![0u8; bs];
        for g in (0..geo.groups).filter(|&g| has_super(u64::from(g))) {
            sb.s_block_group_nr = fit("s_block_group_nr", u64::from(g))?;
            sb.encode(&mut sb_raw)?;
            first.fill(0);
            // The primary superblock is at byte 1024: inside block 0, or block 1 of its own
            // with 1 KiB blocks (where group 0 starts). Copies start their group's first block.
            let at = if g == 0 {
                capped(SUPERBLOCK_OFFSET % self.bs.bytes_u64(), bs)
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
pub(super) fn superblock(
    opts: &BuildOptions,
    id: &Identity,
    geo: &Geometry,
    descs: &[GroupDesc],
    max_ino: u32,
    journal: Option<&Inode>,
) -> Result<Superblock> {
    let mut label = [0u8; VOLUME_NAME_LEN];
    if let Some(l) = &opts.label {
        label[..l.len()].copy_from_slice(l.as_bytes());
    }
    let jnl_blocks = journal.map_or([0; JNL_BLOCKS_WORDS], |j| {
        journal_backup(&j.i_block, j.i_size)
    });
    let free_blocks: u64 = descs
        .iter()
        .map(|d| u64::from(d.bg_free_blocks_count))
        .sum();
    let mut compat = CompatFeatures::EXT_ATTR | CompatFeatures::DIR_INDEX;
    if journal.is_some() {
        compat |= CompatFeatures::HAS_JOURNAL;
    }
    Ok(Superblock {
        s_inodes_count: fit("s_inodes_count", geo.inodes_count())?,
        s_blocks_count: geo.blocks_count,
        s_r_blocks_count: 0,
        s_free_blocks_count: free_blocks,
        s_free_inodes_count: fit(
            "s_free_inodes_count",
            geo.inodes_count() - u64::from(max_ino),
        )?,
        s_first_data_block: fit("s_first_data_block", geo.block_size.first_data_block())?,
        s_log_block_size: geo.block_size.log(),
        s_blocks_per_group: geo.block_size.blocks_per_group(),
        s_inodes_per_group: geo.inodes_per_group,
        // Before 1970 is 0; past the inodes' last second (TIME_MAX, well inside the 40 bits
        // the superblock holds) it is that second, as the inodes' times are.
        s_mkfs_time: opts.time.sec.clamp(0, TIME_MAX).cast_unsigned(),
        s_first_ino: ino::FIRST,
        s_inode_size: inode::S_INODE_SIZE,
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
        s_desc_size: S_DESC_SIZE,
        s_default_mount_opts: DefaultMountOpts::XATTR_USER | DefaultMountOpts::ACL,
        s_jnl_blocks: jnl_blocks,
        s_min_extra_isize: inode::EXTRA_ISIZE,
        s_flags: SuperFlags::UNSIGNED_HASH,
        s_log_groups_per_flex: LOG_GROUPS_PER_FLEX,
    })
}

/// `bg_free_blocks_count` of a group of `glen` blocks with `used` of them in use; more in use
/// than the group has means runs were counted twice, and is refused.
fn free_blocks(glen: u32, used: u64) -> Result<u32> {
    let used: u32 = fit("bg_free_blocks_count (blocks in use)", used)?;
    glen.checked_sub(used).ok_or_else(|| {
        Error::from(FieldOutOfRange {
            field: "bg_free_blocks_count (blocks in use)",
            value: u64::from(used),
            max: u64::from(glen),
        })
    })
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
    extent::encode_tree(extents, tree_start, bs.bytes(), seed, i_block, |_, _| {
        Ok::<(), Error>(())
    })
}

/// `i_links_count` of a directory with `subdirs` subdirectories (`dir_nlink`: 1 past the limit).
fn dir_links(subdirs: u32) -> u16 {
    let l = subdirs.saturating_add(2);
    // Below EXT4_LINK_MAX (65,000) the count fits 16 bits; from it on, 1.
    match u16::try_from(l) {
        Ok(n) if l < EXT4_LINK_MAX => n,
        _ => 1,
    }
}

/// The file type bits of `i_mode` for an inode kind.
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

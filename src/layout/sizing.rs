//! Deciding the filesystem's size, group count and inodes per group once the content is known,
//! and placing the per-group metadata (bitmaps, inode tables) and the journal.

use super::alloc::{BlockAllocator, OutOfSpace, Run};
use super::geometry::{
    gdt_blocks, group_start, groups_for, has_super, inodes_per_group_step, Geometry,
};
use crate::ext4::extent::{self, Extent, EE_LEN_MAX};
use crate::ext4::{capped, fit, BlockSize, FieldOutOfRange};

/// Smallest image written unless a size is given: 64 MiB.
pub const MIN_IMAGE_BYTES: u64 = 64 << 20;

/// Images smaller than this get 1 KiB blocks from [`block_size_for`].
pub const SMALL_IMAGE_BYTES: u64 = 512 << 20;

/// The block size mke2fs chooses for a filesystem of `bytes` bytes: 1 KiB below 512 MiB
/// (mke2fs.conf's "small" and "floppy" types), 4 KiB from there on. Small blocks waste less at
/// the end of each file, which in a small image of small files is a good part of it.
pub fn block_size_for(bytes: u64) -> BlockSize {
    if bytes < SMALL_IMAGE_BYTES {
        BlockSize::K1
    } else {
        BlockSize::K4
    }
}

/// Journal size in blocks for a filesystem of `blocks` blocks, as mke2fs chooses it
/// (`ext2fs_default_journal_size`); `None` below 2048 blocks, where mke2fs makes no journal.
///
/// | filesystem size | journal |
/// |---|---|
/// | < 8 MiB | none |
/// | < 128 MiB | 4 MiB |
/// | < 1 GiB | 16 MiB |
/// | < 2 GiB | 32 MiB |
/// | < 16 GiB | 64 MiB |
/// | < 32 GiB | 128 MiB |
/// | < 64 GiB | 256 MiB |
/// | < 128 GiB | 512 MiB |
/// | larger | 1 GiB |
pub fn journal_blocks(blocks: u64) -> Option<u64> {
    const TABLE: [(u64, u64); 8] = [
        (32 * 1024, 1024),
        (256 * 1024, 4096),
        (512 * 1024, 8192),
        (4096 * 1024, 16384),
        (8192 * 1024, 32768),
        (16384 * 1024, 65536),
        (32768 * 1024, 131_072),
        (u64::MAX, 262_144),
    ];
    if blocks < 2048 {
        return None;
    }
    TABLE
        .iter()
        .find(|(below, _)| blocks < *below)
        .map(|&(_, j)| j)
}

/// Bytes of image per free inode that an image sized by default keeps at least: mke2fs's
/// default `inode_ratio`.
pub const BYTES_PER_FREE_INODE: u64 = 16 << 10;

/// Free space to leave in the image beyond its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headroom {
    /// A percentage of the used blocks.
    Percent(u32),
    /// A number of bytes.
    Bytes(u64),
    /// The larger of a percentage of the used blocks and a number of bytes.
    AtLeast {
        /// Percentage of the used blocks.
        percent: u32,
        /// Bytes, whatever the content.
        bytes: u64,
    },
}

impl Headroom {
    /// The default: 20 % of the content, and never less than 256 MiB, so that a guest has room
    /// to install packages, write logs and grow a few files. Free blocks are holes in the
    /// image file, so the room costs no disk space.
    pub const DEFAULT: Headroom = Headroom::AtLeast {
        percent: 20,
        bytes: 256 << 20,
    };

    /// Free bytes for content of `used` bytes.
    pub fn bytes_for(self, used: u64) -> u64 {
        let percent = |p: u32| used.saturating_mul(u64::from(p)).div_ceil(100);
        match self {
            Headroom::Percent(p) => percent(p),
            Headroom::Bytes(b) => b,
            Headroom::AtLeast { percent: p, bytes } => percent(p).max(bytes),
        }
    }

    fn blocks(self, used: u64, bs: BlockSize) -> u64 {
        let size = bs.bytes_u64();
        match self {
            Headroom::Percent(p) => (used * u64::from(p)).div_ceil(100),
            Headroom::Bytes(b) => b.div_ceil(size),
            Headroom::AtLeast { percent, bytes } => Headroom::Percent(percent)
                .blocks(used, bs)
                .max(bytes.div_ceil(size)),
        }
    }
}

/// What the content needs, known before the geometry is chosen.
#[derive(Clone, Debug)]
pub struct Demand {
    /// Blocks in use so far: file data and per-inode metadata (directories, extent tree
    /// blocks, xattr blocks, symlink blocks), not counting superblock copies.
    pub used_blocks: u64,
    /// Inodes in use, reserved ones included (all of `1..=inodes_used` are taken).
    pub inodes_used: u64,
    /// Whether to create a journal.
    pub journal: bool,
}

/// How the user wants the image sized.
#[derive(Clone, Copy, Debug)]
pub struct SizePolicy {
    /// An exact size in bytes.
    pub fixed_bytes: Option<u64>,
    /// Free space to add when the size is not fixed.
    pub headroom: Headroom,
    /// Smallest image when the size is not fixed.
    pub min_bytes: u64,
    /// Total inode count wanted; default: the used ones, and free ones at least one per
    /// [`BYTES_PER_FREE_INODE`] of image and at least a fifth of the used ones.
    pub inodes: Option<u64>,
    /// The block count is a multiple of this (1: any): rounded down from a fixed size, up
    /// otherwise.
    pub align_blocks: u64,
}

/// Why no geometry fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizingError {
    /// The fixed size is too small; `needed_bytes` would do.
    TooSmall {
        /// Smallest size that holds the content.
        needed_bytes: u64,
    },
    /// More inodes than ext4 can address, or fewer than are used.
    Inodes(String),
    /// The maximum image size was reached.
    OutOfSpace(OutOfSpace),
    /// A value an on-disk field cannot hold.
    Field(FieldOutOfRange),
}

impl From<OutOfSpace> for SizingError {
    fn from(e: OutOfSpace) -> Self {
        SizingError::OutOfSpace(e)
    }
}

impl From<FieldOutOfRange> for SizingError {
    fn from(e: FieldOutOfRange) -> Self {
        SizingError::Field(e)
    }
}

/// Where the per-group metadata and the journal went.
#[derive(Clone, Debug)]
pub struct GroupMetadata {
    /// Block bitmap of each group.
    pub block_bitmaps: Vec<u64>,
    /// Inode bitmap of each group.
    pub inode_bitmaps: Vec<u64>,
    /// First inode table block of each group.
    pub inode_tables: Vec<u64>,
    /// The journal's extents (logical from 0), and its extent tree blocks' first block.
    pub journal: Option<(Vec<Extent>, u64)>,
    /// Every run handed out here, in order.
    pub runs: Vec<Run>,
}

/// The chosen shape and what it costs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The geometry.
    pub geometry: Geometry,
    /// Journal length in blocks, if any.
    pub journal_blocks: Option<u64>,
}

/// Splits allocated runs into extents of at most [`extent::EXT_INIT_MAX_LEN`] blocks, numbering logical
/// blocks from 0; runs past the 32-bit logical block numbers are refused.
pub fn runs_to_extents(runs: &[Run]) -> Result<Vec<Extent>, FieldOutOfRange> {
    let mut out = Vec::new();
    let mut logical = 0u64;
    for run in runs {
        let mut done = 0;
        while done < run.len {
            let len = capped(run.len - done, EE_LEN_MAX);
            out.push(Extent {
                ee_block: fit("ee_block", logical)?,
                ee_len: len,
                ee_start: run.start + done,
            });
            logical += u64::from(len);
            done += u64::from(len);
        }
    }
    Ok(out)
}

fn alloc_runs(
    alloc: &mut BlockAllocator,
    mut n: u64,
    runs: &mut Vec<Run>,
) -> Result<Vec<Run>, OutOfSpace> {
    let mut got = Vec::new();
    while n > 0 {
        let run = alloc.alloc(n)?;
        n -= run.len;
        got.push(run);
        runs.push(run);
    }
    Ok(got)
}

/// Places the block bitmaps, inode bitmaps, inode tables and journal of `geometry` with
/// `alloc`, in that order.
pub fn place_group_metadata(
    alloc: &mut BlockAllocator,
    geometry: &Geometry,
    journal_blocks: Option<u64>,
) -> Result<GroupMetadata, SizingError> {
    let groups = u64::from(geometry.groups);
    let mut runs = Vec::new();
    let flatten = |rs: Vec<Run>| {
        rs.iter()
            .flat_map(|r| r.start..r.end())
            .collect::<Vec<u64>>()
    };
    let block_bitmaps = flatten(alloc_runs(alloc, groups, &mut runs)?);
    let inode_bitmaps = flatten(alloc_runs(alloc, groups, &mut runs)?);
    let itable = u64::from(geometry.itable_blocks());
    let mut inode_tables = Vec::with_capacity(geometry.groups as usize);
    for _ in 0..groups {
        let start = alloc.alloc_contiguous(itable)?;
        runs.push(Run { start, len: itable });
        inode_tables.push(start);
    }
    let journal = match journal_blocks {
        Some(n) => {
            let extents = runs_to_extents(&alloc_runs(alloc, n, &mut runs)?)?;
            let (tree, _) = extent::tree_shape(extents.len(), geometry.block_size.bytes());
            let tree_start = if tree > 0 {
                let start = alloc.alloc_contiguous(tree)?;
                runs.push(Run { start, len: tree });
                start
            } else {
                0
            };
            Some((extents, tree_start))
        }
        None => None,
    };
    Ok(GroupMetadata {
        block_bitmaps,
        inode_bitmaps,
        inode_tables,
        journal,
        runs,
    })
}

fn inodes_per_group(total: u64, groups: u64, bs: BlockSize) -> u64 {
    let step = u64::from(inodes_per_group_step(bs));
    total.div_ceil(groups).max(step).next_multiple_of(step)
}

/// Superblock and descriptor table blocks over all groups.
fn super_overhead(groups: u64, bs: BlockSize) -> u64 {
    (0..groups).filter(|&g| has_super(g)).count() as u64 * (1 + gdt_blocks(groups, bs))
}

/// Chooses the geometry: the smallest that holds `demand` with the policy's headroom, or the
/// fixed size. `alloc` is the allocator after all per-inode metadata; it is only cloned here.
pub fn plan(
    demand: &Demand,
    policy: &SizePolicy,
    alloc: &BlockAllocator,
) -> Result<Plan, SizingError> {
    match plan_with(demand, policy, alloc, policy.inodes) {
        // With a fixed size and the default inode count, inode tables for one inode per 16 KiB
        // may not fit beside the content; a fifth more than the used ones is then enough.
        Err(SizingError::TooSmall { .. })
            if policy.fixed_bytes.is_some() && policy.inodes.is_none() =>
        {
            let least = demand.inodes_used + demand.inodes_used / 5;
            plan_with(demand, policy, alloc, Some(least))
        }
        other => other,
    }
}

/// The default inode count for an image of `blocks` blocks holding `used` inodes.
fn default_inodes(used: u64, blocks: u64, bs: BlockSize) -> u64 {
    let by_size = blocks.saturating_mul(bs.bytes_u64()) / BYTES_PER_FREE_INODE;
    used + by_size.max(used / 5)
}

fn plan_with(
    demand: &Demand,
    policy: &SizePolicy,
    alloc: &BlockAllocator,
    inodes: Option<u64>,
) -> Result<Plan, SizingError> {
    let bs = alloc.block_size();
    let bpg = u64::from(bs.blocks_per_group());
    let first = bs.first_data_block();
    if let Some(n) = inodes {
        if n < demand.inodes_used {
            return Err(SizingError::Inodes(format!(
                "{n} inodes requested, but the content needs {}",
                demand.inodes_used
            )));
        }
    }
    let total_for =
        |blocks: u64| inodes.unwrap_or_else(|| default_inodes(demand.inodes_used, blocks, bs));
    let align = policy.align_blocks.max(1);
    let mut blocks = match policy.fixed_bytes {
        Some(bytes) => bytes / bs.bytes_u64() / align * align,
        None => (policy.min_bytes / bs.bytes_u64())
            .max(alloc.high_water())
            .next_multiple_of(align),
    };
    if policy.fixed_bytes.is_none() {
        let min_groups = total_for(blocks).div_ceil(bpg);
        blocks = blocks
            .max(group_start(min_groups.max(1) - 1, bs) + 1)
            .next_multiple_of(align);
    }
    loop {
        let total_inodes = total_for(blocks);
        if total_inodes > u64::from(u32::MAX) {
            return Err(SizingError::Inodes(format!(
                "{total_inodes} inodes is more than ext4 can address"
            )));
        }
        let groups = groups_for(blocks, bs).max(1);
        let ipg = inodes_per_group(total_inodes, groups, bs);
        // Both fit 32 bits (and so does the inode count), or the filesystem grows.
        let shape = match (u32::try_from(groups), u32::try_from(ipg)) {
            (Ok(g), Ok(i)) if ipg <= bpg && groups * ipg <= u64::from(u32::MAX) => Some((g, i)),
            _ => None,
        };
        let Some((groups32, ipg32)) = shape else {
            if policy.fixed_bytes.is_some() {
                return Err(SizingError::Inodes(format!(
                    "{total_inodes} inodes do not fit in a filesystem of {blocks} blocks"
                )));
            }
            blocks = blocks
                .max(first + total_inodes.div_ceil(bpg) * bpg)
                .next_multiple_of(align);
            continue;
        };
        let geometry = Geometry {
            block_size: bs,
            blocks_count: blocks,
            groups: groups32,
            inodes_per_group: ipg32,
        };
        let journal = if demand.journal {
            journal_blocks(blocks)
        } else {
            None
        };
        let mut sim = alloc.clone();
        let placed = match place_group_metadata(&mut sim, &geometry, journal) {
            Ok(p) => p,
            Err(SizingError::OutOfSpace(_)) if policy.fixed_bytes.is_some() => {
                return too_small(demand, policy, alloc)
            }
            Err(e) => return Err(e),
        };
        let meta: u64 = placed.runs.iter().map(|r| r.len).sum();
        // With 1 KiB blocks, block 0 (the boot block) counts in the size but is in no group.
        let used = first + demand.used_blocks + meta + super_overhead(groups, bs);
        let end = sim.high_water();
        // The last group, when it holds a superblock copy, must fit it and the descriptors.
        let last = groups - 1;
        let last_start = group_start(last, bs);
        let last_len = blocks - last_start;
        let last_min = if has_super(last) {
            1 + gdt_blocks(groups, bs) + 1
        } else {
            1
        };
        let want = match policy.fixed_bytes {
            Some(_) => end.max(used).max(last_start + last_min),
            None => (policy.min_bytes / bs.bytes_u64())
                .max(end)
                .max(used + policy.headroom.blocks(used, bs))
                .max(last_start + last_min),
        };
        if want <= blocks && last_len >= last_min {
            return Ok(Plan {
                geometry,
                journal_blocks: journal,
            });
        }
        if policy.fixed_bytes.is_some() {
            return too_small(demand, policy, alloc);
        }
        blocks = want.max(blocks + 1).next_multiple_of(align);
    }
}

/// The error for a fixed size that is too small, with the size that would do.
fn too_small(
    demand: &Demand,
    policy: &SizePolicy,
    alloc: &BlockAllocator,
) -> Result<Plan, SizingError> {
    let relaxed = SizePolicy {
        fixed_bytes: None,
        headroom: Headroom::Bytes(0),
        min_bytes: 0,
        ..*policy
    };
    let needed = plan(demand, &relaxed, &alloc.with_limit(u64::MAX / 2))?;
    Err(SizingError::TooSmall {
        needed_bytes: needed.geometry.blocks_count * needed.geometry.block_size.bytes_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_images_get_small_blocks() {
        assert_eq!(block_size_for(0), BlockSize::K1);
        assert_eq!(block_size_for(SMALL_IMAGE_BYTES - 1), BlockSize::K1);
        assert_eq!(block_size_for(SMALL_IMAGE_BYTES), BlockSize::K4);
    }

    #[test]
    fn one_kib_plans_count_the_boot_block() {
        let alloc = BlockAllocator::new(BlockSize::K1, 16, 1 << 26);
        let demand = Demand {
            used_blocks: 10,
            inodes_used: 12,
            journal: true,
        };
        let plan = plan(&demand, &policy(), &alloc).unwrap();
        let g = plan.geometry;
        assert_eq!(g.block_size, BlockSize::K1);
        // 64 MiB of 1 KiB blocks, block 0 included: eight groups, the last one block short.
        assert_eq!(g.blocks_count, 65536);
        assert_eq!(g.groups, 8);
        assert_eq!(g.group_len(7), 8191);
        assert_eq!(g.inodes_per_group % 8, 0);
        assert_eq!(plan.journal_blocks, Some(4096));
    }

    #[test]
    fn journal_table_matches_mke2fs() {
        assert_eq!(journal_blocks(2047), None);
        assert_eq!(journal_blocks(16384), Some(1024));
        assert_eq!(journal_blocks(262_143), Some(4096));
        assert_eq!(journal_blocks(262_144), Some(8192));
        assert_eq!(journal_blocks(1 << 40), Some(262_144));
    }

    #[test]
    fn runs_split_at_max_extent_length() {
        let e = runs_to_extents(&[
            Run {
                start: 10,
                len: 40_000,
            },
            Run {
                start: 100_000,
                len: 5,
            },
        ])
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].ee_block, e[0].ee_len, e[0].ee_start), (0, 32768, 10));
        assert_eq!(
            (e[1].ee_block, e[1].ee_len, e[1].ee_start),
            (32768, 40_000 - 32768, 32778)
        );
        assert_eq!(
            (e[2].ee_block, e[2].ee_len, e[2].ee_start),
            (40_000, 5, 100_000)
        );
    }

    #[test]
    fn logical_blocks_past_32_bits_are_refused() {
        // Runs totalling 2^32 blocks end exactly at the last logical block ext4 can number.
        let run = |start, len| Run { start, len };
        let e = runs_to_extents(&[run(0, (1 << 32) - 1), run(1 << 40, 1)]).unwrap();
        assert_eq!(e.last().unwrap().ee_block, u32::MAX);
        let err = runs_to_extents(&[run(0, 1 << 32), run(1 << 40, 1)]).unwrap_err();
        assert_eq!((err.field, err.value), ("ee_block", 1 << 32));
    }

    fn policy() -> SizePolicy {
        SizePolicy {
            fixed_bytes: None,
            headroom: Headroom::Percent(20),
            min_bytes: MIN_IMAGE_BYTES,
            inodes: None,
            align_blocks: 1,
        }
    }

    #[test]
    fn aligned_plans_round_the_block_count() {
        let alloc = BlockAllocator::new(BlockSize::K1, 16, 1 << 26);
        let aligned = SizePolicy {
            align_blocks: 4,
            ..policy()
        };
        let mut unaligned = 0;
        for used_blocks in 70_000..70_016 {
            let demand = Demand {
                used_blocks,
                inodes_used: 12,
                journal: false,
            };
            let auto = plan(&demand, &policy(), &alloc)
                .unwrap()
                .geometry
                .blocks_count;
            let up = plan(&demand, &aligned, &alloc)
                .unwrap()
                .geometry
                .blocks_count;
            assert_eq!(up, auto.next_multiple_of(4), "{used_blocks} blocks used");
            unaligned += usize::from(!auto.is_multiple_of(4));
        }
        assert!(unaligned > 0, "no plan needed rounding");
        let demand = Demand {
            used_blocks: 70_000,
            inodes_used: 12,
            journal: false,
        };
        let fixed = SizePolicy {
            fixed_bytes: Some((100 << 20) + 3 * 1024),
            ..aligned
        };
        let down = plan(&demand, &fixed, &alloc).unwrap().geometry.blocks_count;
        assert_eq!(down, (100 << 20) / 1024);
    }

    #[test]
    fn small_content_gets_the_minimum_size() {
        let alloc = BlockAllocator::new(BlockSize::K4, 128, 1 << 28);
        let demand = Demand {
            used_blocks: 10,
            inodes_used: 12,
            journal: true,
        };
        let plan = plan(&demand, &policy(), &alloc).unwrap();
        assert_eq!(plan.geometry.blocks_count, 16384);
        assert_eq!(plan.geometry.groups, 1);
        assert!(plan.geometry.inodes_count() >= 12 + 1024);
        assert_eq!(plan.journal_blocks, Some(1024));
    }

    #[test]
    fn headroom_is_kept_for_large_content() {
        let mut alloc = BlockAllocator::new(BlockSize::K4, 128, 1 << 28);
        let mut used = 0;
        while used < 300_000 {
            used += alloc.alloc(300_000 - used).unwrap().len;
        }
        let demand = Demand {
            used_blocks: used,
            inodes_used: 5000,
            journal: true,
        };
        let plan = plan(&demand, &policy(), &alloc).unwrap();
        let g = plan.geometry;
        assert!(g.blocks_count >= used + used / 5, "{g:?}");
        assert!(g.blocks_count >= alloc.high_water());
        assert!(g.inodes_count() >= 5000 + 1000 + 1024);
    }

    #[test]
    fn default_headroom_keeps_256_mib_or_a_fifth_and_an_inode_per_16_kib() {
        let bs = BlockSize::K4;
        let default = SizePolicy {
            headroom: Headroom::DEFAULT,
            ..policy()
        };
        for (content, inodes_used) in [(10u64, 12u64), (600_000, 300_000)] {
            let mut alloc = BlockAllocator::new(bs, 128, 1 << 28);
            let mut used = 0;
            while used < content {
                used += alloc.alloc(content - used).unwrap().len;
            }
            let demand = Demand {
                used_blocks: used,
                inodes_used,
                journal: true,
            };
            let plan = plan(&demand, &default, &alloc).unwrap();
            let g = plan.geometry;
            let mut sim = alloc.clone();
            let meta = place_group_metadata(&mut sim, &g, plan.journal_blocks).unwrap();
            let meta: u64 = meta.runs.iter().map(|r| r.len).sum();
            let taken = used + meta + super_overhead(u64::from(g.groups), bs);
            let free = g.blocks_count - taken;
            assert!(free >= (256 << 20) / 4096, "{content}: {free} free");
            assert!(free * 5 >= taken, "{content}: {free} free of {taken}");
            let free_inodes = g.inodes_count() - inodes_used;
            assert!(free_inodes >= g.blocks_count * 4096 / BYTES_PER_FREE_INODE);
            assert!(free_inodes * 5 >= inodes_used);
        }
        // 600,000 blocks of content: a fifth of it is more than 256 MiB.
        assert_eq!(Headroom::DEFAULT.bytes_for(10 << 30), 2 << 30);
        assert_eq!(Headroom::DEFAULT.bytes_for(100 << 20), 256 << 20);
    }

    #[test]
    fn fixed_size_keeps_its_size_with_fewer_inodes_when_tables_do_not_fit() {
        // 40 MiB of content with 100 blocks to spare: an inode per 16 KiB would take 163
        // blocks of inode tables, a fifth more than the used ones takes 8.
        let mut alloc = BlockAllocator::new(BlockSize::K4, 128, 1 << 28);
        let mut used = 0;
        while used < 10_240 {
            used += alloc.alloc(10_240 - used).unwrap().len;
        }
        let demand = Demand {
            used_blocks: used,
            inodes_used: 100,
            journal: false,
        };
        let fixed = SizePolicy {
            fixed_bytes: Some((alloc.high_water() + 100) * 4096),
            headroom: Headroom::DEFAULT,
            ..policy()
        };
        let plan = plan(&demand, &fixed, &alloc).unwrap();
        assert_eq!(plan.geometry.blocks_count, alloc.high_water() + 100);
        let inodes = plan.geometry.inodes_count();
        assert!((120..1000).contains(&inodes), "{inodes}");
    }

    #[test]
    fn fixed_size_too_small_reports_what_is_needed() {
        let mut alloc = BlockAllocator::new(BlockSize::K4, 128, 1 << 28);
        alloc.alloc(20_000).unwrap();
        let demand = Demand {
            used_blocks: 20_000,
            inodes_used: 100,
            journal: true,
        };
        let fixed = SizePolicy {
            fixed_bytes: Some(16 << 20),
            ..policy()
        };
        match plan(&demand, &fixed, &alloc) {
            Err(SizingError::TooSmall { needed_bytes }) => assert!(needed_bytes > 20_000 * 4096),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn many_inodes_force_more_groups() {
        let alloc = BlockAllocator::new(BlockSize::K4, 128, 1 << 28);
        let demand = Demand {
            used_blocks: 10,
            inodes_used: 100_000,
            journal: false,
        };
        let plan = plan(&demand, &policy(), &alloc).unwrap();
        assert!(plan.geometry.inodes_per_group <= BlockSize::K4.blocks_per_group());
        assert!(plan.geometry.inodes_count() >= 100_000);
    }
}

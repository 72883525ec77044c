//! Where the fixed structures of an ext4 filesystem sit: block groups, the groups that carry a
//! superblock copy (`sparse_super`), and the size of the group descriptor table.

use crate::ext4::capped;
use crate::ext4::group_desc::DESC_SIZE;
use crate::ext4::inode::S_INODE_SIZE;
use crate::ext4::BlockSize;

/// Descriptors per block of the group descriptor table.
pub fn descs_per_block(bs: BlockSize) -> u64 {
    (bs.bytes() / DESC_SIZE) as u64
}

/// Inodes per inode-table block.
pub fn inodes_per_block(bs: BlockSize) -> u32 {
    bs.bytes_u32() / u32::from(S_INODE_SIZE)
}

/// What `s_inodes_per_group` is a multiple of: whole inode-table blocks and whole bytes of the
/// inode bitmap.
pub fn inodes_per_group_step(bs: BlockSize) -> u32 {
    inodes_per_block(bs).max(8)
}

/// Whether group `g` holds a superblock and descriptor table copy under `sparse_super`:
/// groups 0 and 1 and the powers of 3, 5 and 7.
pub fn has_super(g: u64) -> bool {
    if g <= 1 {
        return true;
    }
    [3u64, 5, 7].iter().any(|&base| {
        let mut p = base;
        while p < g {
            p *= base;
        }
        p == g
    })
}

/// The first group after `g` that holds a superblock copy.
pub fn next_super_group(g: u64) -> u64 {
    if g == 0 {
        return 1;
    }
    [3u64, 5, 7]
        .iter()
        .map(|&base| {
            let mut p = base;
            while p <= g {
                p *= base;
            }
            p
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// Blocks of the group descriptor table for `groups` groups.
pub fn gdt_blocks(groups: u64, bs: BlockSize) -> u64 {
    groups.div_ceil(descs_per_block(bs))
}

/// Number of groups a filesystem of `blocks` blocks has.
pub fn groups_for(blocks: u64, bs: BlockSize) -> u64 {
    blocks
        .saturating_sub(bs.first_data_block())
        .div_ceil(u64::from(bs.blocks_per_group()))
}

/// First block of group `g`.
pub fn group_start(g: u64, bs: BlockSize) -> u64 {
    bs.first_data_block() + g * u64::from(bs.blocks_per_group())
}

/// The final shape of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Block size.
    pub block_size: BlockSize,
    /// `s_blocks_count`
    pub blocks_count: u64,
    /// Number of block groups.
    pub groups: u32,
    /// `s_inodes_per_group`, a multiple of [`inodes_per_group_step`].
    pub inodes_per_group: u32,
}

impl Geometry {
    /// First block of group `g`.
    pub fn group_start(&self, g: u32) -> u64 {
        group_start(u64::from(g), self.block_size)
    }

    /// Number of blocks in group `g` (the last group may be short).
    pub fn group_len(&self, g: u32) -> u32 {
        capped(
            self.blocks_count - self.group_start(g),
            self.block_size.blocks_per_group(),
        )
    }

    /// Blocks of one group's inode table.
    pub fn itable_blocks(&self) -> u32 {
        self.inodes_per_group / inodes_per_block(self.block_size)
    }

    /// `s_inodes_count`.
    pub fn inodes_count(&self) -> u64 {
        u64::from(self.groups) * u64::from(self.inodes_per_group)
    }

    /// Blocks of the group descriptor table.
    pub fn gdt_blocks(&self) -> u64 {
        gdt_blocks(u64::from(self.groups), self.block_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let supers: Vec<u64> = (0..400).filter(|&g| has_super(g)).collect();
        assert_eq!(
            supers,
            vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343]
        );
        assert_eq!(next_super_group(0), 1);
        assert_eq!(next_super_group(1), 3);
        assert_eq!(next_super_group(9), 25);
        assert_eq!(next_super_group(343), 625);
    }

    #[test]
    fn descriptor_table_size() {
        let k4 = BlockSize::K4;
        assert_eq!(gdt_blocks(1, k4), 1);
        assert_eq!(gdt_blocks(64, k4), 1);
        assert_eq!(gdt_blocks(65, k4), 2);
        assert_eq!(groups_for(32768, k4), 1);
        assert_eq!(groups_for(32769, k4), 2);
        assert_eq!(group_start(1, k4), 32768);
    }

    #[test]
    fn one_kib_blocks_start_groups_at_block_one() {
        let k1 = BlockSize::K1;
        assert_eq!(gdt_blocks(16, k1), 1);
        assert_eq!(gdt_blocks(17, k1), 2);
        // Block 0 belongs to no group: 8193 blocks are exactly one group.
        assert_eq!(groups_for(8193, k1), 1);
        assert_eq!(groups_for(8194, k1), 2);
        assert_eq!(group_start(0, k1), 1);
        assert_eq!(group_start(2, k1), 16385);
        assert_eq!(inodes_per_group_step(k1), 8);
        assert_eq!(inodes_per_group_step(BlockSize::K4), 16);
    }
}

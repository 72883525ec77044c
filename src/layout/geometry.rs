//! Where the fixed structures of an ext4 filesystem sit: block groups, the groups that carry a
//! superblock copy (`sparse_super`), and the size of the group descriptor table.

use crate::ext4::group_desc::DESC_SIZE;
use crate::ext4::inode::INODE_SIZE;
use crate::ext4::{BLOCKS_PER_GROUP, BLOCK_SIZE};

/// Descriptors per block of the group descriptor table.
pub const DESCS_PER_BLOCK: u64 = (BLOCK_SIZE / DESC_SIZE) as u64;
/// Inodes per inode-table block.
pub const INODES_PER_BLOCK: u32 = (BLOCK_SIZE / INODE_SIZE) as u32;

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
pub fn gdt_blocks(groups: u64) -> u64 {
    groups.div_ceil(DESCS_PER_BLOCK)
}

/// Number of groups a filesystem of `blocks` blocks has.
pub fn groups_for(blocks: u64) -> u64 {
    blocks.div_ceil(u64::from(BLOCKS_PER_GROUP))
}

/// The final shape of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `s_blocks_count`
    pub blocks_count: u64,
    /// Number of block groups.
    pub groups: u32,
    /// `s_inodes_per_group`, a multiple of [`INODES_PER_BLOCK`].
    pub inodes_per_group: u32,
}

impl Geometry {
    /// First block of group `g`.
    pub fn group_start(&self, g: u32) -> u64 {
        u64::from(g) * u64::from(BLOCKS_PER_GROUP)
    }

    /// Number of blocks in group `g` (the last group may be short).
    pub fn group_len(&self, g: u32) -> u32 {
        (self.blocks_count - self.group_start(g)).min(u64::from(BLOCKS_PER_GROUP)) as u32
    }

    /// Blocks of one group's inode table.
    pub fn itable_blocks(&self) -> u32 {
        self.inodes_per_group / INODES_PER_BLOCK
    }

    /// `s_inodes_count`.
    pub fn inodes_count(&self) -> u64 {
        u64::from(self.groups) * u64::from(self.inodes_per_group)
    }

    /// Blocks of the group descriptor table.
    pub fn gdt_blocks(&self) -> u64 {
        gdt_blocks(u64::from(self.groups))
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
        assert_eq!(gdt_blocks(1), 1);
        assert_eq!(gdt_blocks(64), 1);
        assert_eq!(gdt_blocks(65), 2);
        assert_eq!(groups_for(32768), 1);
        assert_eq!(groups_for(32769), 2);
    }
}

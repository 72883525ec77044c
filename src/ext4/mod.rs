//! On-disk encoding of ext4: one module per structure, fields under the kernel's names at the
//! kernel's byte offsets. Nothing here decides where anything goes; see [`crate::layout`].

pub mod acl;
pub mod bitmap;
pub mod checksum;
pub mod dir;
pub mod dirhash;
pub mod extent;
pub mod group_desc;
pub mod htree;
pub mod inode;
pub mod journal;
pub mod superblock;
pub mod xattr;

/// A filesystem block size: 1024, 2048 or 4096 bytes (`1024 << s_log_block_size`).
///
/// Everything that follows from it on disk is here: a bitmap block covers one group, so a
/// group has `8 * bytes` blocks; with 1 KiB blocks block 0 is the boot block and group 0 starts
/// at block 1 (`s_first_data_block`), with larger blocks the superblock sits inside block 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockSize {
    log: u8,
}

impl BlockSize {
    /// 1 KiB blocks.
    pub const K1: BlockSize = BlockSize { log: 0 };
    /// 2 KiB blocks.
    pub const K2: BlockSize = BlockSize { log: 1 };
    /// 4 KiB blocks.
    pub const K4: BlockSize = BlockSize { log: 2 };

    /// The block size of `bytes` bytes, if it is one this crate writes.
    pub fn from_bytes(bytes: u64) -> Option<BlockSize> {
        match bytes {
            1024 => Some(Self::K1),
            2048 => Some(Self::K2),
            4096 => Some(Self::K4),
            _ => None,
        }
    }

    /// Bytes per block.
    pub const fn bytes(self) -> usize {
        1024 << self.log
    }

    /// Bytes per block, as a `u64` for offset arithmetic.
    pub const fn bytes_u64(self) -> u64 {
        1024 << self.log
    }

    /// `s_log_block_size`.
    pub const fn log(self) -> u32 {
        self.log as u32
    }

    /// `s_blocks_per_group` (and the most inodes a group may have): the bits of one bitmap
    /// block.
    pub const fn blocks_per_group(self) -> u32 {
        8 * (1024 << self.log)
    }

    /// `s_first_data_block`: 1 with 1 KiB blocks (block 0 is the boot block), else 0.
    pub const fn first_data_block(self) -> u64 {
        if self.log == 0 {
            1
        } else {
            0
        }
    }
}

impl Default for BlockSize {
    fn default() -> Self {
        Self::K4
    }
}

/// `s_log_groups_per_flex`: 16 groups per flexible group, as mke2fs chooses.
pub const LOG_GROUPS_PER_FLEX: u8 = 4;

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

/// Block size of every image this crate writes.
pub const BLOCK_SIZE: usize = 4096;
/// `s_log_block_size` for [`BLOCK_SIZE`]: `1024 << 2`.
pub const LOG_BLOCK_SIZE: u32 = 2;
/// Blocks (and at most inodes) per group: the bits in one bitmap block.
pub const BLOCKS_PER_GROUP: u32 = 8 * BLOCK_SIZE as u32;
/// `s_log_groups_per_flex`: 16 groups per flexible group, as mke2fs chooses.
pub const LOG_GROUPS_PER_FLEX: u8 = 4;

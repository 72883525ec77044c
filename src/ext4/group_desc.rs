//! Block group descriptors (`struct ext4_group_desc`), 64 bytes each with the `64bit` feature.

use bitflags::bitflags;
use byteorder::{ByteOrder, LittleEndian as LE};

use super::checksum::ext4_crc32c;
use super::{hi16, hi32, lo16, lo32};

/// `s_desc_size` with the `64bit` feature.
pub const S_DESC_SIZE: u16 = 64;
/// `s_desc_size` with the `64bit` feature, as a length.
pub const DESC_SIZE: usize = S_DESC_SIZE as usize;

bitflags! {
    /// `bg_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BgFlags: u16 {
        /// `EXT4_BG_INODE_UNINIT`: the inode bitmap and table are not initialised.
        const INODE_UNINIT = 0x1;
        /// `EXT4_BG_BLOCK_UNINIT`: the block bitmap is not initialised.
        const BLOCK_UNINIT = 0x2;
        /// `EXT4_BG_INODE_ZEROED`: the inode table reads as zeros.
        const INODE_ZEROED = 0x4;
    }
}

/// One group's descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDesc {
    /// `bg_block_bitmap_lo` / `_hi`
    pub bg_block_bitmap: u64,
    /// `bg_inode_bitmap_lo` / `_hi`
    pub bg_inode_bitmap: u64,
    /// `bg_inode_table_lo` / `_hi`
    pub bg_inode_table: u64,
    /// `bg_free_blocks_count_lo` / `_hi`
    pub bg_free_blocks_count: u32,
    /// `bg_free_inodes_count_lo` / `_hi`
    pub bg_free_inodes_count: u32,
    /// `bg_used_dirs_count_lo` / `_hi`
    pub bg_used_dirs_count: u32,
    /// `bg_flags`
    pub bg_flags: BgFlags,
    /// `bg_block_bitmap_csum_lo` / `_hi`
    pub bg_block_bitmap_csum: u32,
    /// `bg_inode_bitmap_csum_lo` / `_hi`
    pub bg_inode_bitmap_csum: u32,
    /// `bg_itable_unused_lo` / `_hi`
    pub bg_itable_unused: u32,
}

impl GroupDesc {
    /// Encodes the descriptor of group `group`, including `bg_checksum`, into `out`.
    pub fn encode(&self, group: u32, fs_seed: u32, out: &mut [u8; DESC_SIZE]) {
        out.fill(0);
        LE::write_u32(&mut out[0x00..], lo32(self.bg_block_bitmap));
        LE::write_u32(&mut out[0x04..], lo32(self.bg_inode_bitmap));
        LE::write_u32(&mut out[0x08..], lo32(self.bg_inode_table));
        LE::write_u16(&mut out[0x0C..], lo16(self.bg_free_blocks_count));
        LE::write_u16(&mut out[0x0E..], lo16(self.bg_free_inodes_count));
        LE::write_u16(&mut out[0x10..], lo16(self.bg_used_dirs_count));
        LE::write_u16(&mut out[0x12..], self.bg_flags.bits());
        LE::write_u16(&mut out[0x18..], lo16(self.bg_block_bitmap_csum));
        LE::write_u16(&mut out[0x1A..], lo16(self.bg_inode_bitmap_csum));
        LE::write_u16(&mut out[0x1C..], lo16(self.bg_itable_unused));
        LE::write_u32(&mut out[0x20..], hi32(self.bg_block_bitmap));
        LE::write_u32(&mut out[0x24..], hi32(self.bg_inode_bitmap));
        LE::write_u32(&mut out[0x28..], hi32(self.bg_inode_table));
        LE::write_u16(&mut out[0x2C..], hi16(self.bg_free_blocks_count));
        LE::write_u16(&mut out[0x2E..], hi16(self.bg_free_inodes_count));
        LE::write_u16(&mut out[0x30..], hi16(self.bg_used_dirs_count));
        LE::write_u16(&mut out[0x32..], hi16(self.bg_itable_unused));
        LE::write_u16(&mut out[0x38..], hi16(self.bg_block_bitmap_csum));
        LE::write_u16(&mut out[0x3A..], hi16(self.bg_inode_bitmap_csum));
        // bg_checksum: low 16 bits of crc32c(seed, le32 group ‖ descriptor with bg_checksum = 0).
        let csum = ext4_crc32c(ext4_crc32c(fs_seed, &group.to_le_bytes()), &out[..]);
        LE::write_u16(&mut out[0x1E..], lo16(csum));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_wide_fields() {
        let d = GroupDesc {
            bg_block_bitmap: 0x2_0000_0001,
            bg_free_blocks_count: 0x1_8000,
            bg_block_bitmap_csum: 0xAABB_CCDD,
            ..GroupDesc::default()
        };
        let mut b = [0u8; DESC_SIZE];
        d.encode(5, 0, &mut b);
        assert_eq!(LE::read_u32(&b[0x00..]), 1);
        assert_eq!(LE::read_u32(&b[0x20..]), 2);
        assert_eq!(LE::read_u16(&b[0x0C..]), 0x8000);
        assert_eq!(LE::read_u16(&b[0x2C..]), 1);
        assert_eq!(LE::read_u16(&b[0x18..]), 0xCCDD);
        assert_eq!(LE::read_u16(&b[0x38..]), 0xAABB);
    }

    #[test]
    fn checksum_depends_on_group_number() {
        let d = GroupDesc::default();
        let (mut a, mut b) = ([0u8; DESC_SIZE], [0u8; DESC_SIZE]);
        d.encode(0, 42, &mut a);
        d.encode(1, 42, &mut b);
        assert_ne!(LE::read_u16(&a[0x1E..]), LE::read_u16(&b[0x1E..]));
    }
}

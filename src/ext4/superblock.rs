//! The superblock (`struct ext4_super_block`): 1024 bytes at byte 1024 of the filesystem, with
//! copies at the start of the backup groups.

use bitflags::bitflags;
use byteorder::{ByteOrder, LittleEndian as LE};

use super::checksum::ext4_crc32c;
use super::inode::I_BLOCK_SIZE;
use super::{hi32, lo32, FieldOutOfRange};

/// Byte offset of the primary superblock from the start of the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock structure.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// Latest `s_mkfs_time` (and `s_wtime`, `s_lastcheck`): 32 bits plus 8 in the `_hi` byte.
pub const MAX_TIME_40: u64 = (1 << 40) - 1;
/// `s_magic`.
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;
/// `s_rev_level` for filesystems with dynamic inode sizes.
pub const EXT4_DYNAMIC_REV: u32 = 1;
/// `s_state`: cleanly unmounted.
pub const EXT4_VALID_FS: u16 = 0x0001;
/// `s_errors`: continue on errors.
pub const EXT4_ERRORS_CONTINUE: u16 = 1;
/// `s_creator_os`: Linux.
pub const EXT4_OS_LINUX: u32 = 0;
/// `s_checksum_type`: crc32c.
pub const EXT4_CRC32C_CHKSUM: u8 = 1;
/// `s_jnl_backup_type`: `s_jnl_blocks` holds a copy of the journal inode's block map.
pub const EXT3_JNL_BACKUP_BLOCKS: u8 = 1;
/// `s_def_hash_version`: half MD4.
pub const DX_HASH_HALF_MD4: u8 = 1;
/// Bytes of `s_uuid`.
pub const UUID_LEN: usize = 16;
/// Bytes of `s_hash_seed`.
pub const HASH_SEED_LEN: usize = 16;
/// Bytes of `s_volume_name`, the label (not NUL-terminated when full).
pub const VOLUME_NAME_LEN: usize = 16;
/// Words of `s_jnl_blocks`: the journal inode's 15 `i_block` words, `i_size_high`, `i_size`.
pub const JNL_BLOCKS_WORDS: usize = 17;

bitflags! {
    /// `s_feature_compat`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct CompatFeatures: u32 {
        /// `COMPAT_HAS_JOURNAL`
        const HAS_JOURNAL = 0x4;
        /// `COMPAT_EXT_ATTR`
        const EXT_ATTR = 0x8;
        /// `COMPAT_DIR_INDEX`
        const DIR_INDEX = 0x20;
    }
}

bitflags! {
    /// `s_feature_incompat`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IncompatFeatures: u32 {
        /// `INCOMPAT_FILETYPE`
        const FILETYPE = 0x2;
        /// `INCOMPAT_EXTENTS`
        const EXTENTS = 0x40;
        /// `INCOMPAT_64BIT`
        const BIT64 = 0x80;
        /// `INCOMPAT_FLEX_BG`
        const FLEX_BG = 0x200;
    }
}

bitflags! {
    /// `s_feature_ro_compat`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RoCompatFeatures: u32 {
        /// `RO_COMPAT_SPARSE_SUPER`
        const SPARSE_SUPER = 0x1;
        /// `RO_COMPAT_LARGE_FILE`
        const LARGE_FILE = 0x2;
        /// `RO_COMPAT_HUGE_FILE`
        const HUGE_FILE = 0x8;
        /// `RO_COMPAT_DIR_NLINK`
        const DIR_NLINK = 0x20;
        /// `RO_COMPAT_EXTRA_ISIZE`
        const EXTRA_ISIZE = 0x40;
        /// `RO_COMPAT_METADATA_CSUM`
        const METADATA_CSUM = 0x400;
    }
}

bitflags! {
    /// `s_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SuperFlags: u32 {
        /// `EXT2_FLAGS_SIGNED_HASH`: directory hashes treat name bytes as signed chars.
        const SIGNED_HASH = 0x1;
        /// `EXT2_FLAGS_UNSIGNED_HASH`: directory hashes treat name bytes as unsigned chars.
        const UNSIGNED_HASH = 0x2;
    }
}

bitflags! {
    /// `s_default_mount_opts`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DefaultMountOpts: u32 {
        /// `EXT4_DEFM_XATTR_USER`
        const XATTR_USER = 0x4;
        /// `EXT4_DEFM_ACL`
        const ACL = 0x8;
    }
}

/// The superblock fields this writer sets; every other field is zero.
#[derive(Clone, Debug)]
pub struct Superblock {
    /// `s_inodes_count`
    pub s_inodes_count: u32,
    /// `s_blocks_count_lo` / `_hi`
    pub s_blocks_count: u64,
    /// `s_r_blocks_count_lo` / `_hi`
    pub s_r_blocks_count: u64,
    /// `s_free_blocks_count_lo` / `_hi`
    pub s_free_blocks_count: u64,
    /// `s_free_inodes_count`
    pub s_free_inodes_count: u32,
    /// `s_first_data_block`
    pub s_first_data_block: u32,
    /// `s_log_block_size` (block size is `1024 << s_log_block_size`); also `s_log_cluster_size`.
    pub s_log_block_size: u32,
    /// `s_blocks_per_group`; also `s_clusters_per_group`.
    pub s_blocks_per_group: u32,
    /// `s_inodes_per_group`
    pub s_inodes_per_group: u32,
    /// `s_mkfs_time`, also used for `s_wtime` and `s_lastcheck` (seconds since the epoch).
    pub s_mkfs_time: u64,
    /// `s_first_ino`
    pub s_first_ino: u32,
    /// `s_inode_size`
    pub s_inode_size: u16,
    /// `s_block_group_nr`: the group this copy sits in.
    pub s_block_group_nr: u16,
    /// `s_feature_compat`
    pub s_feature_compat: CompatFeatures,
    /// `s_feature_incompat`
    pub s_feature_incompat: IncompatFeatures,
    /// `s_feature_ro_compat`
    pub s_feature_ro_compat: RoCompatFeatures,
    /// `s_uuid`
    pub s_uuid: [u8; UUID_LEN],
    /// `s_volume_name`
    pub s_volume_name: [u8; VOLUME_NAME_LEN],
    /// `s_journal_inum` (0 without a journal)
    pub s_journal_inum: u32,
    /// `s_hash_seed`
    pub s_hash_seed: [u8; HASH_SEED_LEN],
    /// `s_def_hash_version`
    pub s_def_hash_version: u8,
    /// `s_jnl_backup_type`
    pub s_jnl_backup_type: u8,
    /// `s_desc_size`
    pub s_desc_size: u16,
    /// `s_default_mount_opts`
    pub s_default_mount_opts: DefaultMountOpts,
    /// `s_jnl_blocks`: the journal inode's `i_block` words, then `i_size_high`, `i_size`.
    pub s_jnl_blocks: [u32; JNL_BLOCKS_WORDS],
    /// `s_min_extra_isize`, also `s_want_extra_isize`.
    pub s_min_extra_isize: u16,
    /// `s_flags`
    pub s_flags: SuperFlags,
    /// `s_log_groups_per_flex`
    pub s_log_groups_per_flex: u8,
}

/// `s_jnl_blocks` for a journal inode with `i_block` and `i_size`: the backup of its block map
/// that e2fsck restores a damaged journal inode from (`s_jnl_backup_type` =
/// [`EXT3_JNL_BACKUP_BLOCKS`]).
pub fn journal_backup(i_block: &[u8; I_BLOCK_SIZE], i_size: u64) -> [u32; JNL_BLOCKS_WORDS] {
    let mut words = [0u32; JNL_BLOCKS_WORDS];
    for (w, b) in words.iter_mut().zip(i_block.chunks_exact(4)) {
        *w = LE::read_u32(b);
    }
    words[JNL_BLOCKS_WORDS - 2] = hi32(i_size);
    words[JNL_BLOCKS_WORDS - 1] = lo32(i_size);
    words
}

impl Superblock {
    /// Encodes the superblock, including `s_checksum`, into `out`. Block counts beyond 64 bits
    /// cannot occur; `s_mkfs_time` beyond its 40 bits is refused.
    pub fn encode(&self, out: &mut [u8; SUPERBLOCK_SIZE]) -> Result<(), FieldOutOfRange> {
        // The upper 8 bits of the 40-bit times.
        let time_hi = u8::try_from(self.s_mkfs_time >> 32).map_err(|_| FieldOutOfRange {
            field: "s_mkfs_time",
            value: self.s_mkfs_time,
            max: MAX_TIME_40,
        })?;
        out.fill(0);
        let (lo, hi) = (lo32, hi32);
        LE::write_u32(&mut out[0x00..], self.s_inodes_count);
        LE::write_u32(&mut out[0x04..], lo(self.s_blocks_count));
        LE::write_u32(&mut out[0x08..], lo(self.s_r_blocks_count));
        LE::write_u32(&mut out[0x0C..], lo(self.s_free_blocks_count));
        LE::write_u32(&mut out[0x10..], self.s_free_inodes_count);
        LE::write_u32(&mut out[0x14..], self.s_first_data_block);
        LE::write_u32(&mut out[0x18..], self.s_log_block_size);
        LE::write_u32(&mut out[0x1C..], self.s_log_block_size); // s_log_cluster_size
        LE::write_u32(&mut out[0x20..], self.s_blocks_per_group);
        LE::write_u32(&mut out[0x24..], self.s_blocks_per_group); // s_clusters_per_group
        LE::write_u32(&mut out[0x28..], self.s_inodes_per_group);
        // s_mtime (0x2C) stays 0: never mounted.
        LE::write_u32(&mut out[0x30..], lo(self.s_mkfs_time)); // s_wtime
        LE::write_u16(&mut out[0x34..], 0); // s_mnt_count
        LE::write_i16(&mut out[0x36..], -1); // s_max_mnt_count: no mount-count checks
        LE::write_u16(&mut out[0x38..], EXT4_SUPER_MAGIC);
        LE::write_u16(&mut out[0x3A..], EXT4_VALID_FS);
        LE::write_u16(&mut out[0x3C..], EXT4_ERRORS_CONTINUE);
        LE::write_u32(&mut out[0x40..], lo(self.s_mkfs_time)); // s_lastcheck
        LE::write_u32(&mut out[0x48..], EXT4_OS_LINUX);
        LE::write_u32(&mut out[0x4C..], EXT4_DYNAMIC_REV);
        LE::write_u32(&mut out[0x54..], self.s_first_ino);
        LE::write_u16(&mut out[0x58..], self.s_inode_size);
        LE::write_u16(&mut out[0x5A..], self.s_block_group_nr);
        LE::write_u32(&mut out[0x5C..], self.s_feature_compat.bits());
        LE::write_u32(&mut out[0x60..], self.s_feature_incompat.bits());
        LE::write_u32(&mut out[0x64..], self.s_feature_ro_compat.bits());
        out[0x68..0x78].copy_from_slice(&self.s_uuid);
        out[0x78..0x88].copy_from_slice(&self.s_volume_name);
        LE::write_u32(&mut out[0xE0..], self.s_journal_inum);
        out[0xEC..0xFC].copy_from_slice(&self.s_hash_seed);
        out[0xFC] = self.s_def_hash_version;
        out[0xFD] = self.s_jnl_backup_type;
        LE::write_u16(&mut out[0xFE..], self.s_desc_size);
        LE::write_u32(&mut out[0x100..], self.s_default_mount_opts.bits());
        LE::write_u32(&mut out[0x108..], lo(self.s_mkfs_time));
        for (i, word) in self.s_jnl_blocks.iter().enumerate() {
            LE::write_u32(&mut out[0x10C + 4 * i..], *word);
        }
        LE::write_u32(&mut out[0x150..], hi(self.s_blocks_count));
        LE::write_u32(&mut out[0x154..], hi(self.s_r_blocks_count));
        LE::write_u32(&mut out[0x158..], hi(self.s_free_blocks_count));
        LE::write_u16(&mut out[0x15C..], self.s_min_extra_isize);
        LE::write_u16(&mut out[0x15E..], self.s_min_extra_isize); // s_want_extra_isize
        LE::write_u32(&mut out[0x160..], self.s_flags.bits());
        out[0x174] = self.s_log_groups_per_flex;
        out[0x175] = EXT4_CRC32C_CHKSUM;
        out[0x274] = time_hi; // s_wtime_hi
        out[0x276] = time_hi; // s_mkfs_time_hi
        out[0x277] = time_hi; // s_lastcheck_hi
        let csum = ext4_crc32c(!0, &out[..0x3FC]);
        LE::write_u32(&mut out[0x3FC..], csum);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_backup_copies_i_block_then_size() {
        let mut i_block = [0u8; I_BLOCK_SIZE];
        for (i, b) in i_block.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap();
        }
        let words = journal_backup(&i_block, 0x0000_0002_8000_0000);
        assert_eq!(words[0], 0x0302_0100);
        assert_eq!(words[14], 0x3B3A_3938);
        assert_eq!(words[15], 2, "i_size_high");
        assert_eq!(words[16], 0x8000_0000, "i_size");
    }

    fn sample() -> Superblock {
        Superblock {
            s_inodes_count: 1024,
            s_blocks_count: 0x1_0000_0010,
            s_r_blocks_count: 0,
            s_free_blocks_count: 7,
            s_free_inodes_count: 1000,
            s_first_data_block: 0,
            s_log_block_size: 2,
            s_blocks_per_group: 32768,
            s_inodes_per_group: 1024,
            s_mkfs_time: 0x1_2345_6789,
            s_first_ino: 11,
            s_inode_size: 256,
            s_block_group_nr: 3,
            s_feature_compat: CompatFeatures::EXT_ATTR,
            s_feature_incompat: IncompatFeatures::EXTENTS,
            s_feature_ro_compat: RoCompatFeatures::METADATA_CSUM,
            s_uuid: [7; 16],
            s_volume_name: *b"rootfs\0\0\0\0\0\0\0\0\0\0",
            s_journal_inum: 0,
            s_hash_seed: [9; 16],
            s_def_hash_version: DX_HASH_HALF_MD4,
            s_jnl_backup_type: 0,
            s_desc_size: 64,
            s_default_mount_opts: DefaultMountOpts::ACL,
            s_jnl_blocks: [0; JNL_BLOCKS_WORDS],
            s_min_extra_isize: 32,
            s_flags: SuperFlags::UNSIGNED_HASH,
            s_log_groups_per_flex: 4,
        }
    }

    #[test]
    fn fields_land_at_kernel_offsets() {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        sample().encode(&mut b).unwrap();
        assert_eq!(LE::read_u16(&b[0x38..]), EXT4_SUPER_MAGIC);
        assert_eq!(LE::read_u32(&b[0x04..]), 0x10);
        assert_eq!(LE::read_u32(&b[0x150..]), 1);
        assert_eq!(LE::read_u16(&b[0x5A..]), 3);
        assert_eq!(&b[0x78..0x7E], b"rootfs");
        assert_eq!(LE::read_u32(&b[0x108..]), 0x2345_6789);
        assert_eq!(b[0x276], 1);
    }

    #[test]
    fn checksum_covers_everything_before_it() {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        sample().encode(&mut b).unwrap();
        let stored = LE::read_u32(&b[0x3FC..]);
        assert_eq!(stored, ext4_crc32c(!0, &b[..0x3FC]));
        let mut other = sample();
        other.s_free_blocks_count = 8;
        let mut c = [0u8; SUPERBLOCK_SIZE];
        other.encode(&mut c).unwrap();
        assert_ne!(stored, LE::read_u32(&c[0x3FC..]));
    }

    #[test]
    fn mkfs_time_beyond_40_bits_is_refused() {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        let mut sb = sample();
        sb.s_mkfs_time = MAX_TIME_40;
        sb.encode(&mut b).unwrap();
        assert_eq!(LE::read_u32(&b[0x108..]), u32::MAX);
        assert_eq!(b[0x276], 0xFF);
        sb.s_mkfs_time = MAX_TIME_40 + 1;
        let err = sb.encode(&mut b).unwrap_err();
        assert_eq!((err.field, err.value), ("s_mkfs_time", 1 << 40));
    }
}

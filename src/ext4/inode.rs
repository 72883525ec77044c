//! Inodes (`struct ext4_inode`): 256 bytes on disk, the first 128 as in ext2 and 32 more
//! (`i_extra_isize`) for checksum, nanosecond times and creation time; the rest holds in-inode
//! extended attributes.

use bitflags::bitflags;
use byteorder::{ByteOrder, LittleEndian as LE};

use super::checksum::ext4_crc32c;
use super::{hi16, hi32, lo16, lo32, split48, FieldOutOfRange};

/// `s_inode_size`.
pub const S_INODE_SIZE: u16 = 256;
/// `s_inode_size`, as a length.
pub const INODE_SIZE: usize = S_INODE_SIZE as usize;
/// The classic inode size; `i_extra_isize` counts from here.
pub const EXT4_GOOD_OLD_INODE_SIZE: usize = 128;
/// `i_extra_isize` (and `s_min_extra_isize`): up to and including `i_projid`.
pub const EXTRA_ISIZE: u16 = 32;
/// Offset of the in-inode extended attribute area (`EXT4_GOOD_OLD_INODE_SIZE + i_extra_isize`).
pub const IBODY_XATTR_OFFSET: usize = EXT4_GOOD_OLD_INODE_SIZE + EXTRA_ISIZE as usize;
/// Size of `i_block`.
pub const I_BLOCK_SIZE: usize = 60;
/// `EXT4_LINK_MAX`: beyond this many links a directory's `i_links_count` is 1 (`dir_nlink`).
pub const EXT4_LINK_MAX: u32 = 65_000;
/// `PATH_MAX`: a symlink target and its NUL fit in it; the kernel refuses longer targets.
pub const PATH_MAX: usize = 4096;
/// Longest symlink target kept in `i_block` itself (a fast symlink): the kernel wants the
/// terminating NUL inside it.
pub const FAST_SYMLINK_MAX: usize = I_BLOCK_SIZE - 1;
/// Bytes per unit of `i_blocks` (without `EXT4_HUGE_FILE_FL`, which no inode here carries).
pub const I_BLOCKS_UNIT: u64 = 512;

/// Reserved inode numbers.
pub mod ino {
    /// `EXT4_ROOT_INO`
    pub const ROOT: u32 = 2;
    /// `EXT4_JOURNAL_INO`
    pub const JOURNAL: u32 = 8;
    /// `EXT4_GOOD_OLD_FIRST_INO`: the first inode for ordinary files (`s_first_ino`).
    pub const FIRST: u32 = 11;
}

/// File type bits of `i_mode`.
pub mod mode {
    /// `S_IFIFO`
    pub const S_IFIFO: u16 = 0o010000;
    /// `S_IFCHR`
    pub const S_IFCHR: u16 = 0o020000;
    /// `S_IFDIR`
    pub const S_IFDIR: u16 = 0o040000;
    /// `S_IFBLK`
    pub const S_IFBLK: u16 = 0o060000;
    /// `S_IFREG`
    pub const S_IFREG: u16 = 0o100000;
    /// `S_IFLNK`
    pub const S_IFLNK: u16 = 0o120000;
    /// `S_IFSOCK`
    pub const S_IFSOCK: u16 = 0o140000;
    /// The permission bits (`S_ISUID`, `S_ISGID`, `S_ISVTX` and `rwx` for user, group, other).
    pub const PERMISSIONS: u16 = 0o7777;
}

bitflags! {
    /// `i_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct InodeFlags: u32 {
        /// `EXT4_INDEX_FL`: a hashed (htree) directory.
        const INDEX = 0x1000;
        /// `EXT4_HUGE_FILE_FL`: `i_blocks` counts filesystem blocks, not 512-byte sectors.
        const HUGE_FILE = 0x4_0000;
        /// `EXT4_EXTENTS_FL`: `i_block` holds an extent tree.
        const EXTENTS = 0x8_0000;
    }
}

/// A timestamp as ext4 stores it: seconds since the epoch and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskTime {
    /// Seconds since the epoch; ext4 keeps 34 bits (1901-12-13 to 2446-05-10).
    pub sec: i64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

/// Earliest second an ext4 timestamp can hold.
pub const TIME_MIN: i64 = i32::MIN as i64;
/// Latest second an ext4 timestamp can hold.
pub const TIME_MAX: i64 = i32::MAX as i64 + (3 << 32);

impl DiskTime {
    /// The `(seconds, extra)` words: the low 32 bits of the seconds, and
    /// `(nsec << 2) | epoch` where `epoch` carries the seconds beyond the signed 32-bit range.
    /// Seconds outside [`TIME_MIN`, `TIME_MAX`] are clamped.
    pub fn encode(self) -> (u32, u32) {
        let sec = self.sec.clamp(TIME_MIN, TIME_MAX);
        // The seconds word is the low 32 bits of the two's complement seconds; the epoch counts
        // the 2^32-second spans above TIME_MIN, 0 to 3 after the clamp.
        let epoch = hi32((sec - TIME_MIN).cast_unsigned()) & 0x3;
        (
            lo32(sec.cast_unsigned()),
            (self.nsec.min(999_999_999) << 2) | epoch,
        )
    }
}

/// The inode fields this writer sets; every other field is zero.
#[derive(Clone, Debug)]
pub struct Inode {
    /// `i_mode`: file type and permission bits.
    pub i_mode: u16,
    /// `i_uid` and `l_i_uid_high`.
    pub i_uid: u32,
    /// `i_gid` and `l_i_gid_high`.
    pub i_gid: u32,
    /// `i_size_lo` and `i_size_high`.
    pub i_size: u64,
    /// `i_atime` and `i_atime_extra`.
    pub i_atime: DiskTime,
    /// `i_ctime` and `i_ctime_extra`.
    pub i_ctime: DiskTime,
    /// `i_mtime` and `i_mtime_extra`.
    pub i_mtime: DiskTime,
    /// `i_crtime` and `i_crtime_extra`.
    pub i_crtime: DiskTime,
    /// `i_links_count`
    pub i_links_count: u16,
    /// `i_blocks_lo` and `l_i_blocks_high`, in 512-byte units.
    pub i_blocks: u64,
    /// `i_flags`
    pub i_flags: InodeFlags,
    /// `i_block`: extent tree root, fast symlink target or device number.
    pub i_block: [u8; I_BLOCK_SIZE],
    /// `i_generation`
    pub i_generation: u32,
    /// `i_file_acl_lo` and `l_i_file_acl_high`: the external xattr block, or 0.
    pub i_file_acl: u64,
    /// The in-inode extended attribute area, from [`IBODY_XATTR_OFFSET`] to the end.
    pub ibody_xattrs: [u8; INODE_SIZE - IBODY_XATTR_OFFSET],
}

impl Default for Inode {
    fn default() -> Self {
        Inode {
            i_mode: 0,
            i_uid: 0,
            i_gid: 0,
            i_size: 0,
            i_atime: DiskTime::default(),
            i_ctime: DiskTime::default(),
            i_mtime: DiskTime::default(),
            i_crtime: DiskTime::default(),
            i_links_count: 0,
            i_blocks: 0,
            i_flags: InodeFlags::empty(),
            i_block: [0; I_BLOCK_SIZE],
            i_generation: 0,
            i_file_acl: 0,
            ibody_xattrs: [0; INODE_SIZE - IBODY_XATTR_OFFSET],
        }
    }
}

impl Inode {
    /// Encodes the inode into `out`, with its checksum seeded by the per-inode seed
    /// ([`super::checksum::inode_seed`]). `i_blocks` and `i_file_acl` beyond their 48 bits are
    /// refused.
    pub fn encode(
        &self,
        inode_seed: u32,
        out: &mut [u8; INODE_SIZE],
    ) -> Result<(), FieldOutOfRange> {
        let (blocks_lo, blocks_hi) = split48("i_blocks", self.i_blocks)?;
        let (acl_lo, acl_hi) = split48("i_file_acl", self.i_file_acl)?;
        out.fill(0);
        let (atime, atime_extra) = self.i_atime.encode();
        let (ctime, ctime_extra) = self.i_ctime.encode();
        let (mtime, mtime_extra) = self.i_mtime.encode();
        let (crtime, crtime_extra) = self.i_crtime.encode();
        LE::write_u16(&mut out[0x00..], self.i_mode);
        LE::write_u16(&mut out[0x02..], lo16(self.i_uid));
        LE::write_u32(&mut out[0x04..], lo32(self.i_size));
        LE::write_u32(&mut out[0x08..], atime);
        LE::write_u32(&mut out[0x0C..], ctime);
        LE::write_u32(&mut out[0x10..], mtime);
        LE::write_u16(&mut out[0x18..], lo16(self.i_gid));
        LE::write_u16(&mut out[0x1A..], self.i_links_count);
        LE::write_u32(&mut out[0x1C..], blocks_lo);
        LE::write_u32(&mut out[0x20..], self.i_flags.bits());
        out[0x28..0x28 + I_BLOCK_SIZE].copy_from_slice(&self.i_block);
        LE::write_u32(&mut out[0x64..], self.i_generation);
        LE::write_u32(&mut out[0x68..], acl_lo);
        LE::write_u32(&mut out[0x6C..], hi32(self.i_size));
        LE::write_u16(&mut out[0x74..], blocks_hi);
        LE::write_u16(&mut out[0x76..], acl_hi);
        LE::write_u16(&mut out[0x78..], hi16(self.i_uid));
        LE::write_u16(&mut out[0x7A..], hi16(self.i_gid));
        LE::write_u16(&mut out[0x80..], EXTRA_ISIZE);
        LE::write_u32(&mut out[0x84..], ctime_extra);
        LE::write_u32(&mut out[0x88..], mtime_extra);
        LE::write_u32(&mut out[0x8C..], atime_extra);
        LE::write_u32(&mut out[0x90..], crtime);
        LE::write_u32(&mut out[0x94..], crtime_extra);
        out[IBODY_XATTR_OFFSET..].copy_from_slice(&self.ibody_xattrs);
        // With both checksum fields zero, the checksum covers the whole inode.
        let csum = ext4_crc32c(inode_seed, &out[..]);
        LE::write_u16(&mut out[0x7C..], lo16(csum)); // l_i_checksum_lo
        LE::write_u16(&mut out[0x82..], hi16(csum)); // i_checksum_hi
        Ok(())
    }
}

/// Encodes a device number into `i_block` the way the kernel does: the old 16-bit form in
/// word 0 when major and minor both fit in a byte, else the new 32-bit form in word 1.
pub fn encode_device(major: u32, minor: u32, i_block: &mut [u8; I_BLOCK_SIZE]) {
    i_block.fill(0);
    if major < 256 && minor < 256 {
        LE::write_u32(&mut i_block[0..], (major << 8) | minor);
    } else {
        let new = (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & !0xFF) << 12);
        LE::write_u32(&mut i_block[4..], new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_epoch_bits() {
        assert_eq!(DiskTime { sec: 0, nsec: 1 }.encode(), (0, 4));
        assert_eq!(DiskTime { sec: -1, nsec: 0 }.encode(), (u32::MAX, 0));
        // 2038-01-19T03:14:08Z, one past the signed 32-bit range.
        assert_eq!(
            DiskTime {
                sec: 1 << 31,
                nsec: 0
            }
            .encode(),
            (1 << 31, 1)
        );
        // 2106-02-07T06:28:16Z.
        assert_eq!(
            DiskTime {
                sec: 1 << 32,
                nsec: 5
            }
            .encode(),
            (0, (5 << 2) | 1)
        );
        assert_eq!(
            DiskTime {
                sec: i64::MAX,
                nsec: 0
            }
            .encode(),
            (i32::MAX as u32, 3)
        );
        assert_eq!(
            DiskTime {
                sec: i64::MIN,
                nsec: 0
            }
            .encode(),
            (1 << 31, 0)
        );
    }

    #[test]
    fn devices_use_old_or_new_encoding() {
        let mut b = [0u8; I_BLOCK_SIZE];
        encode_device(8, 1, &mut b);
        assert_eq!(LE::read_u32(&b[0..]), 0x0801);
        assert_eq!(LE::read_u32(&b[4..]), 0);
        encode_device(259, 0x12345, &mut b);
        assert_eq!(LE::read_u32(&b[0..]), 0);
        assert_eq!(LE::read_u32(&b[4..]), 0x45 | (259 << 8) | (0x123 << 20));
    }

    #[test]
    fn checksum_is_split_lo_hi() {
        let inode = Inode {
            i_mode: mode::S_IFREG | 0o644,
            ..Inode::default()
        };
        let mut out = [0u8; INODE_SIZE];
        inode.encode(0xDEAD_BEEF, &mut out).unwrap();
        let stored =
            u32::from(LE::read_u16(&out[0x7C..])) | (u32::from(LE::read_u16(&out[0x82..])) << 16);
        let mut zeroed = out;
        zeroed[0x7C..0x7E].fill(0);
        zeroed[0x82..0x84].fill(0);
        assert_eq!(stored, ext4_crc32c(0xDEAD_BEEF, &zeroed));
    }

    #[test]
    fn wide_fields_split_and_48_bit_ones_are_checked() {
        let inode = Inode {
            i_uid: 0x0001_0002,
            i_gid: 0x0003_0004,
            i_size: 0x5_0000_0006,
            i_blocks: 0xFFFF_0000_0007,
            i_file_acl: 0x8_0000_0009,
            ..Inode::default()
        };
        let mut out = [0u8; INODE_SIZE];
        inode.encode(0, &mut out).unwrap();
        assert_eq!(LE::read_u16(&out[0x02..]), 2);
        assert_eq!(LE::read_u16(&out[0x78..]), 1);
        assert_eq!(LE::read_u16(&out[0x18..]), 4);
        assert_eq!(LE::read_u16(&out[0x7A..]), 3);
        assert_eq!(LE::read_u32(&out[0x04..]), 6);
        assert_eq!(LE::read_u32(&out[0x6C..]), 5);
        assert_eq!(LE::read_u32(&out[0x1C..]), 7);
        assert_eq!(LE::read_u16(&out[0x74..]), 0xFFFF);
        assert_eq!(LE::read_u32(&out[0x68..]), 9);
        assert_eq!(LE::read_u16(&out[0x76..]), 8);
        for (i_blocks, i_file_acl, field) in [(1 << 48, 0, "i_blocks"), (0, 1 << 48, "i_file_acl")]
        {
            let wide = Inode {
                i_blocks,
                i_file_acl,
                ..Inode::default()
            };
            let err = wide.encode(0, &mut out).unwrap_err();
            assert_eq!((err.field, err.value), (field, 1 << 48));
        }
    }
}

//! On-disk encoding of ext4: one module per structure, fields under the kernel's names at the
//! kernel's byte offsets. Nothing here decides where anything goes; see [`crate::layout`].

#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

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

    /// Bytes per block, as a `u32` for on-disk fields.
    pub const fn bytes_u32(self) -> u32 {
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

/// A value outside what an on-disk field can hold: the encoders' one error.
///
/// The encoders refuse such a value instead of writing a cut-off one (a 300-byte name stored
/// with `name_len` 44, a block number with its high bits dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldOutOfRange {
    /// The field, under the kernel's name (`ee_start`, `name_len`, ...).
    pub field: &'static str,
    /// The value that was to be written.
    pub value: u64,
    /// The largest value the field (or the space it describes) can hold.
    pub max: u64,
}

impl std::fmt::Display for FieldOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cannot hold {} (at most {})",
            self.field, self.value, self.max
        )
    }
}

impl std::error::Error for FieldOutOfRange {}

/// `value` as a field of type `T`, or the error naming `field`.
pub fn fit<T>(field: &'static str, value: u64) -> Result<T, FieldOutOfRange>
where
    T: TryFrom<u64> + Into<u64> + Bounded,
{
    T::try_from(value).map_err(|_| FieldOutOfRange {
        field,
        value,
        max: T::MAX.into(),
    })
}

/// The unsigned field types, with their largest value.
pub trait Bounded {
    /// The largest value.
    const MAX: Self;
}

impl Bounded for u8 {
    const MAX: u8 = u8::MAX;
}

impl Bounded for u16 {
    const MAX: u16 = u16::MAX;
}

impl Bounded for u32 {
    const MAX: u32 = u32::MAX;
}

/// The low 32 bits of a 64-bit value: the `_lo` half of a split field.
pub const fn lo32(v: u64) -> u32 {
    // Masked to 32 bits first: the cast drops only zeros.
    #[allow(clippy::cast_possible_truncation)]
    let lo = (v & 0xFFFF_FFFF) as u32;
    lo
}

/// The high 32 bits of a 64-bit value: the `_hi` half of a split field.
pub const fn hi32(v: u64) -> u32 {
    lo32(v >> 32)
}

/// The low 16 bits of a 32-bit value: the `_lo` half of a split field, or the low half of a
/// crc32c kept in a 16-bit checksum field.
pub const fn lo16(v: u32) -> u16 {
    // Masked to 16 bits first: the cast drops only zeros.
    #[allow(clippy::cast_possible_truncation)]
    let lo = (v & 0xFFFF) as u16;
    lo
}

/// The high 16 bits of a 32-bit value: the `_hi` half of a split field.
pub const fn hi16(v: u32) -> u16 {
    lo16(v >> 16)
}

/// `v` as a `T`, at most `cap`: the cast-free `v.min(cap) as T`.
pub fn capped<T: TryFrom<u64> + Ord + Copy>(v: u64, cap: T) -> T {
    // A `v` that `T` cannot hold is larger than any `T`, so larger than `cap`.
    T::try_from(v).map_or(cap, |v| v.min(cap))
}

/// Largest value of a 48-bit field (block numbers, `i_blocks`, `i_file_acl`).
pub const MAX_48: u64 = (1 << 48) - 1;

/// A 48-bit field's `_lo` (32 bits) and `_hi` (16 bits) words, or the error naming `field`
/// when `v` needs more than 48 bits.
pub fn split48(field: &'static str, v: u64) -> Result<(u32, u16), FieldOutOfRange> {
    if v > MAX_48 {
        return Err(FieldOutOfRange {
            field,
            value: v,
            max: MAX_48,
        });
    }
    Ok((lo32(v), lo16(hi32(v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_conversions_keep_every_bit_or_refuse() {
        assert_eq!((lo32(0x1_2345_6789), hi32(0x1_2345_6789)), (0x2345_6789, 1));
        assert_eq!((lo16(0xABCD_1234), hi16(0xABCD_1234)), (0x1234, 0xABCD));
        assert_eq!(split48("f", MAX_48), Ok((u32::MAX, u16::MAX)));
        assert_eq!(split48("f", 0x1234_5678_9ABC), Ok((0x5678_9ABC, 0x1234)));
        let err = split48("f", MAX_48 + 1).unwrap_err();
        assert_eq!((err.field, err.value, err.max), ("f", 1 << 48, MAX_48));
        assert_eq!(fit::<u16>("f", 65_535), Ok(u16::MAX));
        assert_eq!(
            fit::<u16>("rec_len", 65_536).unwrap_err().to_string(),
            "rec_len cannot hold 65536 (at most 65535)"
        );
        assert_eq!(fit::<u8>("name_len", 300).unwrap_err().max, 255);
        assert_eq!(capped(5, 7u16), 5);
        assert_eq!(capped(70_000, 32_768u16), 32_768);
        assert_eq!(capped(u64::MAX, 9u32), 9);
    }
}

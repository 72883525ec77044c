//! The crc32c checksums of `metadata_csum`.
//!
//! The kernel's `ext4_chksum()` is the raw Castagnoli CRC: it takes the running value as it is and
//! applies no final inversion. The `crc32c` crate computes the standard CRC (inverted on the way
//! in and out), so [`ext4_crc32c`] undoes both inversions.

/// Continues a kernel-style (uninverted) crc32c from `seed` over `data`.
pub fn ext4_crc32c(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The filesystem checksum seed: `crc32c(~0, s_uuid)` (no `metadata_csum_seed` feature).
pub fn fs_seed(uuid: &[u8; 16]) -> u32 {
    ext4_crc32c(!0, uuid)
}

/// The per-inode seed used for inodes, extent blocks and directory blocks:
/// `crc32c(crc32c(fs_seed, le32 ino), le32 i_generation)`.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let s = ext4_crc32c(fs_seed, &ino.to_le_bytes());
    ext4_crc32c(s, &generation.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_standard_crc32c_when_inverted() {
        // The standard check value of CRC-32C over "123456789" is 0xE3069283.
        assert_eq!(!ext4_crc32c(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn chaining_equals_one_pass() {
        let whole = ext4_crc32c(0x1234_5678, b"hello world");
        let part = ext4_crc32c(ext4_crc32c(0x1234_5678, b"hello "), b"world");
        assert_eq!(whole, part);
    }
}

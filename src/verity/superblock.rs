//! The superblock `veritysetup format` writes at the start of the hash area (unless told
//! `--no-superblock`): 512 bytes, little-endian, padded to one hash block on disk.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0x00 | 8 | `signature`: `verity\0\0` |
//! | 0x08 | 4 | `version`: 1 |
//! | 0x0C | 4 | `hash_type`: 1 (0 is Chrome OS's format) |
//! | 0x10 | 16 | `uuid` |
//! | 0x20 | 32 | `algorithm`: the hash's name, NUL-padded |
//! | 0x40 | 4 | `data_block_size` |
//! | 0x44 | 4 | `hash_block_size` |
//! | 0x48 | 8 | `data_blocks` |
//! | 0x50 | 2 | `salt_size` |
//! | 0x52 | 6 | padding |
//! | 0x58 | 256 | `salt`, zero-padded |
//! | 0x158 | 168 | padding |

/// Bytes of the superblock.
pub const VERITY_SB_SIZE: usize = 512;

/// `signature`.
pub const VERITY_SIGNATURE: &[u8; 8] = b"verity\0\0";

/// `version` of the superblock layout.
pub const VERITY_SB_VERSION: u32 = 1;

/// Longest salt the superblock holds.
pub const VERITY_MAX_SALT: usize = 256;

/// Longest algorithm name the superblock holds.
const VERITY_MAX_ALG: usize = 32;

/// The fields of a verity superblock, under veritysetup's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VeritySuperblock<'a> {
    /// Hash format: 1 for the normal format (salt hashed first).
    pub hash_type: u32,
    /// UUID of the hash area.
    pub uuid: [u8; 16],
    /// Hash algorithm name, e.g. `sha256`.
    pub algorithm: &'a str,
    /// Data block size in bytes.
    pub data_block_size: u32,
    /// Hash block size in bytes.
    pub hash_block_size: u32,
    /// Number of data blocks covered.
    pub data_blocks: u64,
    /// The salt, up to [`VERITY_MAX_SALT`] bytes.
    pub salt: &'a [u8],
}

impl VeritySuperblock<'_> {
    /// Encodes the superblock into the first [`VERITY_SB_SIZE`] bytes of `out` (the rest is left
    /// as it is). The caller checks the salt and name lengths; longer ones are cut.
    pub fn encode(&self, out: &mut [u8]) {
        let out = &mut out[..VERITY_SB_SIZE];
        out.fill(0);
        out[0x00..0x08].copy_from_slice(VERITY_SIGNATURE);
        out[0x08..0x0C].copy_from_slice(&VERITY_SB_VERSION.to_le_bytes());
        out[0x0C..0x10].copy_from_slice(&self.hash_type.to_le_bytes());
        out[0x10..0x20].copy_from_slice(&self.uuid);
        let alg = self.algorithm.as_bytes();
        let alg = &alg[..alg.len().min(VERITY_MAX_ALG)];
        out[0x20..0x20 + alg.len()].copy_from_slice(alg);
        out[0x40..0x44].copy_from_slice(&self.data_block_size.to_le_bytes());
        out[0x44..0x48].copy_from_slice(&self.hash_block_size.to_le_bytes());
        out[0x48..0x50].copy_from_slice(&self.data_blocks.to_le_bytes());
        let salt = &self.salt[..self.salt.len().min(VERITY_MAX_SALT)];
        out[0x50..0x52].copy_from_slice(&(salt.len() as u16).to_le_bytes());
        out[0x58..0x58 + salt.len()].copy_from_slice(salt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_land_at_their_offsets() {
        let sb = VeritySuperblock {
            hash_type: 1,
            uuid: [0xAB; 16],
            algorithm: "sha256",
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: 0x0102_0304_0506,
            salt: &[1, 2, 3],
        };
        let mut raw = [0xFFu8; 600];
        sb.encode(&mut raw);
        assert_eq!(&raw[..8], b"verity\0\0");
        assert_eq!(raw[8..16], [1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(raw[16..32], [0xAB; 16]);
        assert_eq!(&raw[32..39], b"sha256\0");
        assert_eq!(raw[0x40..0x48], [0, 16, 0, 0, 0, 16, 0, 0]);
        assert_eq!(raw[0x48..0x50], [6, 5, 4, 3, 2, 1, 0, 0]);
        assert_eq!(raw[0x50..0x52], [3, 0]);
        assert_eq!(raw[0x58..0x5C], [1, 2, 3, 0]);
        assert!(raw[0x5C..VERITY_SB_SIZE].iter().all(|&b| b == 0));
        // Bytes past the superblock are not touched.
        assert!(raw[VERITY_SB_SIZE..].iter().all(|&b| b == 0xFF));
    }
}

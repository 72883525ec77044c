//! The jbd2 journal superblock (`journal_superblock_t`, big-endian), in the first block of the
//! journal inode (inode 8). A new, empty journal is only this block; the rest may read as zeros.

use byteorder::{BigEndian as BE, ByteOrder};

/// `JBD2_MAGIC_NUMBER`
pub const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
/// `JBD2_SUPERBLOCK_V2`
pub const JBD2_SUPERBLOCK_V2: u32 = 4;
/// Permission bits of the journal inode, as mke2fs gives it.
pub const INODE_PERMISSIONS: u16 = 0o600;

/// Encodes the superblock of an empty, clean journal of `maxlen` blocks into the start of
/// `block` (which must be zeroed by the caller or is cleared here).
pub fn encode_superblock(block: &mut [u8], block_size: u32, maxlen: u32, fs_uuid: &[u8; 16]) {
    block.fill(0);
    BE::write_u32(&mut block[0x0..], JBD2_MAGIC_NUMBER); // s_header.h_magic
    BE::write_u32(&mut block[0x4..], JBD2_SUPERBLOCK_V2); // s_header.h_blocktype
    BE::write_u32(&mut block[0xC..], block_size); // s_blocksize
    BE::write_u32(&mut block[0x10..], maxlen); // s_maxlen
    BE::write_u32(&mut block[0x14..], 1); // s_first: the first log block
    BE::write_u32(&mut block[0x18..], 1); // s_sequence
    BE::write_u32(&mut block[0x1C..], 0); // s_start: 0 means the journal is empty
    block[0x30..0x40].copy_from_slice(fs_uuid); // s_uuid
    BE::write_u32(&mut block[0x40..], 1); // s_nr_users
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_fields() {
        let mut b = vec![0xAAu8; 4096];
        encode_superblock(&mut b, 4096, 4096, &[5; 16]);
        assert_eq!(&b[0..4], &[0xC0, 0x3B, 0x39, 0x98]);
        assert_eq!(BE::read_u32(&b[0x10..]), 4096);
        assert_eq!(BE::read_u32(&b[0x1C..]), 0);
        assert_eq!(&b[0x30..0x40], &[5; 16]);
        assert_eq!(b[4095], 0);
    }
}

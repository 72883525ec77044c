//! Interior blocks of hashed (htree) directories: the root (`struct dx_root`) in logical block
//! 0, and index nodes (`struct dx_node`) one level down. Leaves are ordinary directory blocks
//! ([`super::dir`]).

use byteorder::{ByteOrder, LittleEndian as LE};

use super::checksum::ext4_crc32c;
use super::dir::{encode_dirent, DirName, FileType};
use super::{fit, FieldOutOfRange};

/// Offset of `struct dx_countlimit` in the root: after `.`, `..` and `struct dx_root_info`.
pub const ROOT_COUNT_OFFSET: usize = 0x20;
/// Offset of `struct dx_countlimit` in an index node: after the fake directory entry.
pub const NODE_COUNT_OFFSET: usize = 0x8;
/// Size of a `struct dx_entry`.
pub const DX_ENTRY_SIZE: usize = 8;
/// Size of `struct dx_tail`.
pub const DX_TAIL_SIZE: usize = 8;
/// `dx_root_info.info_length`.
pub const DX_ROOT_INFO_LEN: u8 = 8;
/// Deepest `indirect_levels` without the `large_dir` feature.
pub const MAX_INDIRECT_LEVELS: u8 = 1;

/// Index entries that fit in the root (`dx_root_limit()` with a checksum tail).
pub const fn root_limit(block_size: usize) -> usize {
    (block_size - ROOT_COUNT_OFFSET - DX_TAIL_SIZE) / DX_ENTRY_SIZE
}

/// Index entries that fit in a node (`dx_node_limit()` with a checksum tail).
pub const fn node_limit(block_size: usize) -> usize {
    (block_size - NODE_COUNT_OFFSET - DX_TAIL_SIZE) / DX_ENTRY_SIZE
}

/// One index entry: names hashing to `hash` and up (until the next entry) are in `block`, a
/// logical block of the directory. Bit 0 of `hash` marks a leaf that continues a run of equal
/// hashes from the previous one. The first entry's hash is implied (it is stored as the
/// count and limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DxEntry {
    /// `hash`
    pub hash: u32,
    /// `block`
    pub block: u32,
}

/// Writes `dx_countlimit` and the entries; `count` must be 1 to `limit`.
fn encode_entries(
    block: &mut [u8],
    count_offset: usize,
    limit: usize,
    entries: &[DxEntry],
    inode_seed: u32,
) -> Result<(), FieldOutOfRange> {
    let limit16: u16 = fit("dx_countlimit.limit", limit as u64)?;
    let count: u16 = fit("dx_countlimit.count", entries.len() as u64)?;
    if count > limit16 {
        return Err(FieldOutOfRange {
            field: "dx_countlimit.count",
            value: u64::from(count),
            max: u64::from(limit16),
        });
    }
    // The first entry's block is always there: a node indexes at least one block.
    let Some(first) = entries.first() else {
        return Err(FieldOutOfRange {
            field: "dx_countlimit.count (of an empty node)",
            value: 0,
            max: u64::from(limit16),
        });
    };
    LE::write_u16(&mut block[count_offset..], limit16);
    LE::write_u16(&mut block[count_offset + 2..], count);
    LE::write_u32(&mut block[count_offset + 4..], first.block);
    for (i, e) in entries.iter().enumerate().skip(1) {
        let at = count_offset + i * DX_ENTRY_SIZE;
        LE::write_u32(&mut block[at..], e.hash);
        LE::write_u32(&mut block[at + 4..], e.block);
    }
    // struct dx_tail: dt_reserved, dt_checksum. The checksum covers the block up to the last
    // used entry, then dt_reserved, then a zero word in place of itself.
    let tail = count_offset + limit * DX_ENTRY_SIZE;
    let used = count_offset + entries.len() * DX_ENTRY_SIZE;
    let csum = ext4_crc32c(inode_seed, &block[..used]);
    let csum = ext4_crc32c(csum, &block[tail..tail + 4]);
    let csum = ext4_crc32c(csum, &[0; 4]);
    LE::write_u32(&mut block[tail + 4..], csum);
    Ok(())
}

/// Encodes the root block: `.` and `..`, `dx_root_info`, and the index entries.
pub fn encode_root(
    block: &mut [u8],
    self_ino: u32,
    parent_ino: u32,
    hash_version: u8,
    indirect_levels: u8,
    entries: &[DxEntry],
    inode_seed: u32,
) -> Result<(), FieldOutOfRange> {
    block.fill(0);
    let dot_len = DirName::DOT.rec_len();
    // `..` spans the rest of the block, over the index.
    let dotdot_len: u16 = fit("rec_len", block.len().saturating_sub(12) as u64)?;
    encode_dirent(
        &mut block[0..],
        self_ino,
        dot_len,
        DirName::DOT,
        FileType::Dir as u8,
    );
    encode_dirent(
        &mut block[usize::from(dot_len)..],
        parent_ino,
        dotdot_len,
        DirName::DOTDOT,
        FileType::Dir as u8,
    );
    // struct dx_root_info at 0x18: reserved_zero, hash_version, info_length, indirect_levels,
    // unused_flags.
    block[0x1C] = hash_version;
    block[0x1D] = DX_ROOT_INFO_LEN;
    block[0x1E] = indirect_levels;
    let limit = root_limit(block.len());
    encode_entries(block, ROOT_COUNT_OFFSET, limit, entries, inode_seed)
}

/// Encodes an index node: a fake empty entry spanning the block, then the index entries.
pub fn encode_node(
    block: &mut [u8],
    entries: &[DxEntry],
    inode_seed: u32,
) -> Result<(), FieldOutOfRange> {
    let fake_len: u16 = fit("rec_len", block.len() as u64)?;
    block.fill(0);
    LE::write_u16(&mut block[4..], fake_len);
    let limit = node_limit(block.len());
    encode_entries(block, NODE_COUNT_OFFSET, limit, entries, inode_seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_for_4k_blocks() {
        assert_eq!(root_limit(4096), 507);
        assert_eq!(node_limit(4096), 510);
    }

    #[test]
    fn root_layout() {
        let mut b = vec![0u8; 4096];
        let entries = [
            DxEntry { hash: 0, block: 1 },
            DxEntry {
                hash: 0x8000_0000,
                block: 2,
            },
        ];
        encode_root(&mut b, 12, 2, 1, 0, &entries, 5).unwrap();
        assert_eq!(LE::read_u32(&b[0..]), 12);
        assert_eq!(LE::read_u16(&b[16..]), 4084);
        assert_eq!(&b[20..22], b"..");
        assert_eq!(b[0x1D], 8);
        assert_eq!(LE::read_u16(&b[0x20..]), 507);
        assert_eq!(LE::read_u16(&b[0x22..]), 2);
        assert_eq!(LE::read_u32(&b[0x24..]), 1);
        assert_eq!(LE::read_u32(&b[0x28..]), 0x8000_0000);
        assert_eq!(LE::read_u32(&b[0x2C..]), 2);
        let tail = 0x20 + 507 * 8;
        assert_eq!(tail, 4088);
        let want = ext4_crc32c(ext4_crc32c(ext4_crc32c(5, &b[..0x30]), &[0; 4]), &[0; 4]);
        assert_eq!(LE::read_u32(&b[tail + 4..]), want);
    }

    #[test]
    fn node_layout() {
        let mut b = vec![0u8; 4096];
        encode_node(&mut b, &[DxEntry { hash: 0, block: 9 }], 0).unwrap();
        assert_eq!(LE::read_u32(&b[0..]), 0);
        assert_eq!(LE::read_u16(&b[4..]), 4096);
        assert_eq!(LE::read_u16(&b[8..]), 510);
        assert_eq!(LE::read_u16(&b[10..]), 1);
        assert_eq!(LE::read_u32(&b[12..]), 9);
    }

    #[test]
    fn overfull_and_empty_nodes_are_refused() {
        let mut b = vec![0u8; 4096];
        let full = vec![DxEntry { hash: 0, block: 1 }; 510];
        encode_node(&mut b, &full, 0).unwrap();
        assert_eq!(LE::read_u16(&b[10..]), 510);
        let over = vec![DxEntry { hash: 0, block: 1 }; 511];
        let err = encode_node(&mut b, &over, 0).unwrap_err();
        assert_eq!(
            (err.field, err.value, err.max),
            ("dx_countlimit.count", 511, 510)
        );
        let err = encode_root(&mut b, 12, 2, 1, 0, &over[..508], 0).unwrap_err();
        assert_eq!((err.value, err.max), (508, 507));
        assert!(encode_root(&mut b, 12, 2, 1, 0, &[], 0).is_err());
        // A node's fake entry spans the block: 64 KiB is past what rec_len holds.
        let mut huge = vec![0u8; 1 << 16];
        let err = encode_node(&mut huge, &full, 0).unwrap_err();
        assert_eq!((err.field, err.value), ("rec_len", 1 << 16));
    }
}

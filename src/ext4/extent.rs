//! Extent trees: the header, leaf and index entries, and the checksum tail of tree blocks.
//!
//! The root lives in the inode's `i_block` (four entries). When a file has more extents, they go
//! to leaf blocks that the root indexes, adding levels until the root's four slots suffice.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::checksum::ext4_crc32c;
use super::inode::I_BLOCK_SIZE;
use super::{fit, split48, FieldOutOfRange};

/// `eh_magic`
pub const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// Size of the header and of each entry.
pub const ENTRY_SIZE: usize = 12;
/// Longest run an initialized extent can describe (`EXT_INIT_MAX_LEN`), as `ee_len` holds it.
pub const EE_LEN_MAX: u16 = 32_768;
/// Longest run an initialized extent can describe (`EXT_INIT_MAX_LEN`).
pub const EXT_INIT_MAX_LEN: u32 = EE_LEN_MAX as u32;
/// `EXT4_MAX_EXTENT_DEPTH`
pub const MAX_DEPTH: u16 = 5;
/// Entries in the inode's root node: `(60 - 12) / 12`.
pub const ROOT_CAPACITY: usize = (I_BLOCK_SIZE - ENTRY_SIZE) / ENTRY_SIZE;

/// Entries in a tree block of `block_size` bytes: the header and the 4-byte checksum tail
/// (`struct ext4_extent_tail`) take the rest.
pub const fn block_capacity(block_size: usize) -> usize {
    (block_size - ENTRY_SIZE - 4) / ENTRY_SIZE
}

/// One leaf entry (`struct ext4_extent`): `ee_len` blocks from logical block `ee_block` are
/// stored from physical block `ee_start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// `ee_block`: first logical block.
    pub ee_block: u32,
    /// `ee_len`: number of blocks, at most [`EXT_INIT_MAX_LEN`].
    pub ee_len: u16,
    /// `ee_start_hi` / `ee_start_lo`: first physical block.
    pub ee_start: u64,
}

impl Extent {
    /// The length as a block count (`ee_len` 32768 is stored as 0x8000).
    pub fn len(self) -> u32 {
        u32::from(self.ee_len)
    }

    /// Encodes the entry; `ee_len` beyond [`EXT_INIT_MAX_LEN`] (an unwritten extent's
    /// encoding) and `ee_start` beyond 48 bits are refused.
    fn encode(self, out: &mut [u8]) -> Result<(), FieldOutOfRange> {
        if self.len() > EXT_INIT_MAX_LEN {
            return Err(FieldOutOfRange {
                field: "ee_len",
                value: u64::from(self.ee_len),
                max: u64::from(EXT_INIT_MAX_LEN),
            });
        }
        let (lo, hi) = split48("ee_start", self.ee_start)?;
        LE::write_u32(&mut out[0..], self.ee_block);
        LE::write_u16(&mut out[4..], self.ee_len);
        LE::write_u16(&mut out[6..], hi);
        LE::write_u32(&mut out[8..], lo);
        Ok(())
    }
}

fn encode_header(
    out: &mut [u8],
    entries: usize,
    max: usize,
    depth: u16,
) -> Result<(), FieldOutOfRange> {
    let eh_entries: u16 = fit("eh_entries", entries as u64)?;
    let eh_max: u16 = fit("eh_max", max as u64)?;
    LE::write_u16(&mut out[0..], EXT4_EXT_MAGIC);
    LE::write_u16(&mut out[2..], eh_entries);
    LE::write_u16(&mut out[4..], eh_max);
    LE::write_u16(&mut out[6..], depth);
    LE::write_u32(&mut out[8..], 0); // eh_generation
    Ok(())
}

/// `struct ext4_extent_idx`: the subtree covering logical blocks from `ei_block` is at `ei_leaf`.
fn encode_idx(out: &mut [u8], ei_block: u32, ei_leaf: u64) -> Result<(), FieldOutOfRange> {
    let (lo, hi) = split48("ei_leaf", ei_leaf)?;
    LE::write_u32(&mut out[0..], ei_block);
    LE::write_u32(&mut out[4..], lo);
    LE::write_u16(&mut out[8..], hi);
    LE::write_u16(&mut out[10..], 0);
    Ok(())
}

/// The number of tree blocks (leaves and index nodes, not the root) a file with `extents`
/// extents needs, and the tree depth.
pub fn tree_shape(extents: usize, block_size: usize) -> (u64, u16) {
    let per_block = block_capacity(block_size);
    let (mut nodes, mut level_entries, mut depth) = (0u64, extents, 0u16);
    while level_entries > ROOT_CAPACITY {
        let level_nodes = level_entries.div_ceil(per_block);
        nodes += level_nodes as u64;
        level_entries = level_nodes;
        depth += 1;
    }
    (nodes, depth)
}

/// Encodes the extent tree of one inode.
///
/// `extents` must be sorted by logical block and non-overlapping. `first_block` is the first of
/// the `tree_shape(extents.len()).0` contiguous blocks reserved for the tree; they are filled
/// level by level from the leaves up, each handed to `write_block` with its checksum tail.
/// The root is written into `i_block`. An extent or tree block number a field cannot hold is
/// refused ([`FieldOutOfRange`], through `E`) before anything is written.
pub fn encode_tree<E: From<FieldOutOfRange>>(
    extents: &[Extent],
    first_block: u64,
    block_size: usize,
    inode_seed: u32,
    i_block: &mut [u8; I_BLOCK_SIZE],
    mut write_block: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let per_block = block_capacity(block_size);
    // Entries of the level being built: (first logical block, encoded 12-byte entry).
    let mut level: Vec<(u32, [u8; ENTRY_SIZE])> = extents
        .iter()
        .map(|e| {
            let mut raw = [0u8; ENTRY_SIZE];
            e.encode(&mut raw)?;
            Ok((e.ee_block, raw))
        })
        .collect::<Result<_, FieldOutOfRange>>()?;
    let (nodes, _) = tree_shape(extents.len(), block_size);
    if let Some(last) = nodes.checked_sub(1) {
        split48("ei_leaf", first_block.saturating_add(last))?;
    }
    let mut depth = 0u16;
    let mut next_block = first_block;
    let mut buf = vec![0u8; block_size];
    while level.len() > ROOT_CAPACITY {
        let mut parents = Vec::with_capacity(level.len().div_ceil(per_block));
        for chunk in level.chunks(per_block) {
            buf.fill(0);
            encode_header(&mut buf, chunk.len(), per_block, depth)?;
            for (i, (_, raw)) in chunk.iter().enumerate() {
                let at = ENTRY_SIZE * (i + 1);
                buf[at..at + ENTRY_SIZE].copy_from_slice(raw);
            }
            let tail = ENTRY_SIZE * (per_block + 1);
            let csum = ext4_crc32c(inode_seed, &buf[..tail]);
            LE::write_u32(&mut buf[tail..], csum);
            write_block(next_block, &buf)?;
            let mut idx = [0u8; ENTRY_SIZE];
            encode_idx(&mut idx, chunk[0].0, next_block)?;
            parents.push((chunk[0].0, idx));
            next_block += 1;
        }
        level = parents;
        depth += 1;
    }
    i_block.fill(0);
    encode_header(&mut i_block[..], level.len(), ROOT_CAPACITY, depth)?;
    for (i, (_, raw)) in level.iter().enumerate() {
        let at = ENTRY_SIZE * (i + 1);
        i_block[at..at + ENTRY_SIZE].copy_from_slice(raw);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::MAX_48;
    use super::*;

    #[test]
    fn capacities() {
        assert_eq!(ROOT_CAPACITY, 4);
        assert_eq!(block_capacity(4096), 340);
        assert_eq!(tree_shape(0, 4096), (0, 0));
        assert_eq!(tree_shape(4, 4096), (0, 0));
        assert_eq!(tree_shape(5, 4096), (1, 1));
        assert_eq!(tree_shape(1360, 4096), (4, 1));
        assert_eq!(tree_shape(1361, 4096), (5 + 1, 2));
    }

    fn extents(n: u32) -> Vec<Extent> {
        (0..n)
            .map(|i| Extent {
                ee_block: i * 2,
                ee_len: 1,
                ee_start: 1000 + u64::from(i) * 3,
            })
            .collect()
    }

    #[test]
    fn inline_root_for_few_extents() {
        let mut ib = [0u8; I_BLOCK_SIZE];
        let mut writes = 0;
        encode_tree(&extents(3), 0, 4096, 0, &mut ib, |_, _| {
            writes += 1;
            Ok::<(), FieldOutOfRange>(())
        })
        .unwrap();
        assert_eq!(writes, 0);
        assert_eq!(LE::read_u16(&ib[0..]), EXT4_EXT_MAGIC);
        assert_eq!(LE::read_u16(&ib[2..]), 3);
        assert_eq!(LE::read_u16(&ib[4..]), 4);
        assert_eq!(LE::read_u16(&ib[6..]), 0);
        assert_eq!(LE::read_u32(&ib[24..]), 2); // second extent's ee_block
    }

    #[test]
    fn two_level_tree_indexes_first_logical_blocks() {
        let ext = extents(1361);
        let (nodes, depth) = tree_shape(ext.len(), 4096);
        let mut blocks = Vec::new();
        let mut ib = [0u8; I_BLOCK_SIZE];
        encode_tree(&ext, 500, 4096, 7, &mut ib, |n, b| {
            blocks.push((n, b.to_vec()));
            Ok::<(), FieldOutOfRange>(())
        })
        .unwrap();
        assert_eq!(blocks.len() as u64, nodes);
        assert_eq!(LE::read_u16(&ib[6..]), depth);
        // Leaves are 500..505, the index node is 505; the root points at it.
        assert_eq!(LE::read_u16(&ib[2..]), 1);
        assert_eq!(LE::read_u32(&ib[16..]), 505);
        let (_, node) = &blocks[5];
        assert_eq!(LE::read_u16(&node[2..]), 5);
        assert_eq!(LE::read_u16(&node[6..]), 1);
        // The third leaf starts at extent 680, logical block 1360.
        assert_eq!(LE::read_u32(&node[12 + 24..]), 1360);
        assert_eq!(LE::read_u32(&node[12 + 24 + 4..]), 502);
        let (_, leaf) = &blocks[4];
        assert_eq!(LE::read_u16(&leaf[2..]), 1);
        let tail = 12 * 341;
        assert_eq!(LE::read_u32(&leaf[tail..]), ext4_crc32c(7, &leaf[..tail]));
    }

    fn encode_one(e: Extent) -> Result<(), FieldOutOfRange> {
        let mut ib = [0u8; I_BLOCK_SIZE];
        encode_tree(&[e], 0, 4096, 0, &mut ib, |_, _| Ok(()))
    }

    #[test]
    fn block_numbers_beyond_48_bits_are_refused() {
        let at = |ee_start| Extent {
            ee_block: 0,
            ee_len: 1,
            ee_start,
        };
        let mut ib = [0u8; I_BLOCK_SIZE];
        encode_tree(&[at(MAX_48)], 0, 4096, 0, &mut ib, |_, _| {
            Ok::<(), FieldOutOfRange>(())
        })
        .unwrap();
        assert_eq!(LE::read_u16(&ib[12 + 6..]), 0xFFFF, "ee_start_hi");
        assert_eq!(LE::read_u32(&ib[12 + 8..]), u32::MAX, "ee_start_lo");
        let err = encode_one(at(MAX_48 + 1)).unwrap_err();
        assert_eq!(err.field, "ee_start");
        assert_eq!(err.value, 1 << 48);
        // Tree blocks are numbered from `first_block`: the index entries must reach them.
        let mut writes = 0;
        let mut write = |_: u64, _: &[u8]| {
            writes += 1;
            Ok::<(), FieldOutOfRange>(())
        };
        encode_tree(&extents(5), MAX_48, 4096, 0, &mut ib, &mut write).unwrap();
        let err = encode_tree(&extents(5), MAX_48 + 1, 4096, 0, &mut ib, &mut write).unwrap_err();
        assert_eq!(err.field, "ei_leaf");
        assert_eq!(writes, 1, "nothing written for the refused tree");
    }

    #[test]
    fn lengths_beyond_32768_blocks_are_refused() {
        let len = |ee_len| Extent {
            ee_block: 0,
            ee_len,
            ee_start: 100,
        };
        encode_one(len(32_768)).unwrap();
        let err = encode_one(len(32_769)).unwrap_err();
        assert_eq!((err.field, err.value, err.max), ("ee_len", 32_769, 32_768));
    }
}

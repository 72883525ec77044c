//! Directory layout: which entries go in which block. A directory whose entries fit in one
//! block is linear; a larger one is a hashed tree (htree): a root block, a level of index nodes
//! when the root cannot index every leaf, and leaves holding the entries in hash order.

use crate::ext4::dir::{rec_len, DirBlock, DirName, FileType, EXT4_NAME_LEN, TAIL_SIZE};
use crate::ext4::dirhash::{half_md4, CharSign};
use crate::ext4::htree::{self, DxEntry, MAX_INDIRECT_LEVELS};
use crate::ext4::superblock::DX_HASH_HALF_MD4;
use crate::ext4::{fit, FieldOutOfRange};

/// How the directory hash treats name bytes; written to the superblock flags to match.
pub const HASH_SIGN: CharSign = CharSign::Unsigned;
/// `dx_root_info.hash_version` for [`HASH_SIGN`]: the unsigned variants are numbered 3 higher,
/// but the on-disk root records the base version; the superblock flag selects the variant.
pub const ROOT_HASH_VERSION: u8 = DX_HASH_HALF_MD4;

/// One name in a directory.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The name.
    pub name: &'a [u8],
    /// The inode it names.
    pub ino: u32,
    /// The inode's type.
    pub file_type: FileType,
}

/// Space for entries in a leaf block of `bs` bytes (before the checksum tail).
fn leaf_space(bs: usize) -> usize {
    bs - TAIL_SIZE
}
/// Space `.` and `..` take at the start of a linear directory.
const DOTS: usize = 2 * rec_len(2);

/// The planned blocks of a directory.
#[derive(Debug)]
pub enum Plan {
    /// Every entry in the first block; the other blocks (if any) are empty.
    Linear {
        /// Total blocks.
        blocks: usize,
    },
    /// Entries sorted by hash; leaves and the index above them.
    Htree {
        /// First entry of each leaf.
        leaf_starts: Vec<usize>,
        /// The hash of each entry, in sorted order.
        hashes: Vec<u32>,
        /// Index nodes between root and leaves (0 or 1 level).
        levels: u8,
        /// Index entries an index node holds.
        per_node: usize,
    },
}

/// The directory is too large for an htree without the `large_dir` feature.
#[derive(Debug)]
pub struct TooLarge {
    /// Number of leaf blocks it would need.
    pub leaves: usize,
}

impl Plan {
    /// Number of blocks the directory takes.
    pub fn blocks(&self) -> usize {
        match self {
            Plan::Linear { blocks } => *blocks,
            Plan::Htree {
                leaf_starts,
                levels,
                per_node,
                ..
            } => 1 + nodes(leaf_starts.len(), *levels, *per_node) + leaf_starts.len(),
        }
    }

    /// Whether the directory is hashed (`EXT4_INDEX_FL`).
    pub fn is_htree(&self) -> bool {
        matches!(self, Plan::Htree { .. })
    }
}

fn nodes(leaves: usize, levels: u8, per_node: usize) -> usize {
    if levels == 0 {
        0
    } else {
        leaves.div_ceil(per_node)
    }
}

/// Plans a directory of `bs`-byte blocks. `entries` (without `.` and `..`) may be reordered: an
/// htree sorts them by hash. `min_blocks` makes a linear directory at least that long (mke2fs
/// gives `lost+found` four blocks).
pub fn plan(
    entries: &mut [Entry<'_>],
    hash_seed: &[u8; 16],
    min_blocks: usize,
    bs: usize,
) -> Result<Plan, TooLarge> {
    let total: usize = entries.iter().map(|e| rec_len(e.name.len())).sum();
    let leaf_space = leaf_space(bs);
    if DOTS + total <= leaf_space {
        return Ok(Plan::Linear {
            blocks: min_blocks.max(1),
        });
    }
    let mut keyed: Vec<(u32, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (half_md4(e.name, hash_seed, HASH_SIGN), i))
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| entries[a.1].name.cmp(entries[b.1].name))
    });
    let sorted: Vec<Entry<'_>> = keyed.iter().map(|&(_, i)| entries[i]).collect();
    entries.copy_from_slice(&sorted);
    let hashes: Vec<u32> = keyed.iter().map(|&(h, _)| h).collect();
    let (root_limit, node_limit) = (htree::root_limit(bs), htree::node_limit(bs));
    // Filled as the kernel leaves a directory that grew, when that fits under the root; packed
    // tighter, nodes first, when it does not.
    let mut leaves_needed = 0;
    for (leaf_fill, node_fill) in [(FILL, FILL), (FILL, FULL), (FULL, FILL), (FULL, FULL)] {
        let leaf_starts = fill_leaves(entries, leaf_space * leaf_fill.0 / leaf_fill.1);
        let leaves = leaf_starts.len();
        leaves_needed = leaves;
        let shape = if leaves <= root_limit {
            Some((0, node_limit))
        } else {
            let n_nodes = leaves.div_ceil((node_limit * node_fill.0 / node_fill.1).max(1));
            // The same number of nodes, with the leaves spread evenly over them.
            (n_nodes <= root_limit).then(|| (1, leaves.div_ceil(n_nodes)))
        };
        if let Some((levels, per_node)) = shape {
            return Ok(Plan::Htree {
                leaf_starts,
                hashes,
                levels,
                per_node,
            });
        }
    }
    Err(TooLarge {
        leaves: leaves_needed,
    })
}

// The plans above have `levels` 0 or 1.
const _: () = assert!(MAX_INDIRECT_LEVELS >= 1);

/// How full the tool fills htree leaves and index nodes, as a fraction: three quarters. When the
/// kernel adds a name to a full leaf it splits the leaf in two halves by size (`do_split` in
/// fs/ext4/namei.c), and a full index node likewise in two halves by count; a directory grown
/// by random names therefore has blocks between half and completely full, about 70 % on
/// average. A directory written packed full would instead split a leaf at the first new name in
/// each, and need a new index entry for each of those splits at once. At three quarters each
/// leaf takes a quarter of its size in new names before its first split and each node a
/// quarter of its entries in new leaves, for a third more leaf blocks than packed full.
const FILL: (usize, usize) = (3, 4);
/// Completely full.
const FULL: (usize, usize) = (1, 1);

/// The first entry of each leaf, when leaves are filled in hash order up to `target` bytes.
fn fill_leaves(entries: &[Entry<'_>], target: usize) -> Vec<usize> {
    let mut leaf_starts = vec![0];
    let mut used = 0;
    for (i, e) in entries.iter().enumerate() {
        let len = rec_len(e.name.len());
        if used > 0 && used + len > target {
            leaf_starts.push(i);
            used = 0;
        }
        used += len;
    }
    leaf_starts
}

/// The entry's name as a directory record holds it; a longer name is an error (the tree refuses
/// such names before they get here).
fn dir_name<'a>(e: &Entry<'a>) -> std::io::Result<DirName<'a>> {
    DirName::new(e.name).ok_or_else(|| {
        std::io::Error::other(crate::Error::limit(format!(
            "a name of {} bytes is longer than ext4's limit of {EXT4_NAME_LEN}",
            e.name.len()
        )))
    })
}

/// An entry that does not fit the block its plan gave it: a planning error, never written.
fn overflow(e: &Entry<'_>) -> std::io::Error {
    std::io::Error::other(format!(
        "directory plan error: the entry {:?} does not fit its block",
        crate::error::show_path(e.name)
    ))
}

/// A value the plan gave that an on-disk field cannot hold, as the error `encode` returns.
fn field(e: FieldOutOfRange) -> std::io::Error {
    std::io::Error::other(crate::Error::from(e))
}

/// Encodes the planned directory block by block (`bs` bytes each), in logical order, handing
/// each to `emit`.
pub fn encode(
    plan: &Plan,
    entries: &[Entry<'_>],
    self_ino: u32,
    parent_ino: u32,
    inode_seed: u32,
    bs: usize,
    mut emit: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut block = vec![0u8; bs];
    match plan {
        Plan::Linear { blocks } => {
            let mut b = DirBlock::new(&mut block).map_err(field)?;
            b.push(self_ino, DirName::DOT, FileType::Dir);
            b.push(parent_ino, DirName::DOTDOT, FileType::Dir);
            for e in entries {
                if !b.push(e.ino, dir_name(e)?, e.file_type) {
                    return Err(overflow(e));
                }
            }
            b.finish(inode_seed);
            emit(&block)?;
            for _ in 1..*blocks {
                DirBlock::new(&mut block).map_err(field)?.finish(inode_seed);
                emit(&block)?;
            }
        }
        Plan::Htree {
            leaf_starts,
            hashes,
            levels,
            per_node,
        } => {
            let (leaves, per_node) = (leaf_starts.len(), *per_node);
            let n_nodes = nodes(leaves, *levels, per_node);
            let first_leaf = 1 + n_nodes;
            // The index entry of leaf i: its first hash, with bit 0 set when it continues a run
            // of equal hashes from the previous leaf.
            let leaf_entry = |i: usize| {
                let start = leaf_starts[i];
                let h = hashes[start];
                let continued = start > 0 && hashes[start - 1] == h;
                Ok(DxEntry {
                    hash: h | u32::from(continued),
                    block: fit("dx_entry.block", (first_leaf + i) as u64)?,
                })
            };
            // The root indexes the leaves directly, or one level of index nodes that do.
            let root: Result<Vec<DxEntry>, FieldOutOfRange> = if *levels == 0 {
                (0..leaves).map(leaf_entry).collect()
            } else {
                (0..n_nodes)
                    .map(|n| {
                        Ok(DxEntry {
                            hash: leaf_entry(n * per_node)?.hash,
                            block: fit("dx_entry.block", (1 + n) as u64)?,
                        })
                    })
                    .collect()
            };
            let root = root.map_err(field)?;
            htree::encode_root(
                &mut block,
                self_ino,
                parent_ino,
                ROOT_HASH_VERSION,
                *levels,
                &root,
                inode_seed,
            )
            .map_err(field)?;
            emit(&block)?;
            for n in 0..n_nodes {
                let node: Vec<DxEntry> = (n * per_node..((n + 1) * per_node).min(leaves))
                    .map(leaf_entry)
                    .collect::<Result<_, FieldOutOfRange>>()
                    .map_err(field)?;
                htree::encode_node(&mut block, &node, inode_seed).map_err(field)?;
                emit(&block)?;
            }
            for (i, &start) in leaf_starts.iter().enumerate() {
                let end = leaf_starts.get(i + 1).copied().unwrap_or(entries.len());
                let mut b = DirBlock::new(&mut block).map_err(field)?;
                for e in &entries[start..end] {
                    if !b.push(e.ino, dir_name(e)?, e.file_type) {
                        return Err(overflow(e));
                    }
                }
                b.finish(inode_seed);
                emit(&block)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{i:0len$}").into_bytes()).collect()
    }

    fn entries(names: &[Vec<u8>]) -> Vec<Entry<'_>> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Entry {
                name: n,
                ino: 100 + u32::try_from(i).unwrap(),
                file_type: FileType::RegFile,
            })
            .collect()
    }

    #[test]
    fn small_directories_are_linear() {
        let n = names(10, 8);
        let mut e = entries(&n);
        let p = plan(&mut e, &[1; 16], 1, 4096).unwrap();
        assert!(!p.is_htree());
        assert_eq!(p.blocks(), 1);
        assert_eq!(plan(&mut e, &[1; 16], 4, 4096).unwrap().blocks(), 4);
    }

    #[test]
    fn large_directories_are_hashed_and_sorted() {
        let n = names(2000, 20);
        let mut e = entries(&n);
        let p = plan(&mut e, &[1; 16], 1, 4096).unwrap();
        let Plan::Htree {
            leaf_starts,
            hashes,
            levels,
            ..
        } = &p
        else {
            panic!("expected an htree")
        };
        assert_eq!(*levels, 0);
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]));
        // 28-byte records: 145 fill a leaf, 109 fill three quarters of it (3063 of 4084 bytes).
        assert_eq!(leaf_starts.len(), 2000usize.div_ceil(109));
        let mut blocks = 0;
        encode(&p, &e, 12, 2, 0, 4096, |_| {
            blocks += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(blocks, p.blocks());
    }

    #[test]
    fn very_large_directories_get_an_index_level() {
        let n: Vec<Vec<u8>> = (0..100_000)
            .map(|i| format!("{i:0>250}").into_bytes())
            .collect();
        let mut e = entries(&n);
        let p = plan(&mut e, &[1; 16], 1, 4096).unwrap();
        let Plan::Htree { levels, .. } = &p else {
            panic!("expected an htree")
        };
        assert_eq!(*levels, 1);
    }

    /// Entries per leaf and leaves per index node of a planned htree.
    fn shape(p: &Plan, n: usize) -> (Vec<usize>, Vec<usize>) {
        let Plan::Htree {
            leaf_starts,
            levels,
            per_node,
            ..
        } = p
        else {
            panic!("expected an htree")
        };
        let mut ends = leaf_starts[1..].to_vec();
        ends.push(n);
        let per_leaf = leaf_starts.iter().zip(&ends).map(|(a, b)| b - a).collect();
        let per_index = match levels {
            0 => vec![leaf_starts.len()],
            _ => leaf_starts
                .chunks(*per_node)
                .map(|c| c.len())
                .collect::<Vec<_>>(),
        };
        (per_leaf, per_index)
    }

    #[test]
    fn leaves_and_nodes_keep_room_for_new_names() {
        // 100,000 names of 11 bytes (20-byte records) at 1 KiB: a full leaf holds 50, a full
        // node 126 leaves; the root 123 nodes.
        let n: Vec<Vec<u8>> = (0..100_000)
            .map(|i| format!("file-{i:06}").into_bytes())
            .collect();
        let mut e = entries(&n);
        let p = plan(&mut e, &[7; 16], 1, 1024).unwrap();
        let (per_leaf, per_node) = shape(&p, e.len());
        assert!(
            per_leaf.iter().all(|&c| c <= 37),
            "{:?}",
            per_leaf.iter().max()
        );
        assert!(
            per_node.len() > 1 && per_node.len() < 123,
            "{}",
            per_node.len()
        );
        assert!(per_node.iter().all(|&c| c <= 126 * 3 / 4), "{per_node:?}");
    }

    #[test]
    fn directories_near_the_limit_are_packed_tighter() {
        // 200-byte names (208-byte records) at 1 KiB: 4 fill a leaf, 3 fill three quarters.
        // 50,000 of them need 12,500 full leaves or 16,667 at three quarters; the root and one
        // level of nodes index at most 123 * 126 = 15,498.
        let n: Vec<Vec<u8>> = (0..50_000)
            .map(|i| format!("{i:0>200}").into_bytes())
            .collect();
        let mut e = entries(&n);
        let p = plan(&mut e, &[7; 16], 1, 1024).unwrap();
        let (per_leaf, per_node) = shape(&p, e.len());
        assert_eq!(per_leaf.len(), 12_500);
        assert!(per_node.len() <= 123);
        // Beyond that, no htree of two levels holds it.
        let n: Vec<Vec<u8>> = (0..62_000)
            .map(|i| format!("{i:0>200}").into_bytes())
            .collect();
        let mut e = entries(&n);
        assert!(plan(&mut e, &[7; 16], 1, 1024).is_err());
    }

    #[test]
    fn one_kib_blocks_hold_fewer_entries() {
        let n = names(2000, 20);
        let mut e = entries(&n);
        assert!(!plan(&mut e[..30], &[1; 16], 1, 1024).unwrap().is_htree());
        let p = plan(&mut e, &[1; 16], 1, 1024).unwrap();
        let Plan::Htree { leaf_starts, .. } = &p else {
            panic!("expected an htree")
        };
        // 28-byte records: 36 fill a 1 KiB leaf (1012 bytes before the tail), 27 three quarters.
        assert_eq!(leaf_starts.len(), 2000usize.div_ceil(27));
        let mut sizes = Vec::new();
        encode(&p, &e, 12, 2, 0, 1024, |b| {
            sizes.push(b.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes.len(), p.blocks());
        assert!(sizes.iter().all(|&s| s == 1024));
    }
}

//! The hash tree of dm-verity's format 1, computed as the data streams past.
//!
//! Each data block is hashed as `H(salt || block)`. The digests, each padded with zeros to a
//! power of two bytes, fill hash blocks in order (the last one of a level padded with zeros);
//! those blocks are hashed the same way into the level above, until a level of one block,
//! whose hash is the root hash. On disk the levels are stored top first: the single top block,
//! then each level below it, the digests of the data blocks last.

use sha2::{Digest, Sha256};

/// Bytes of a sha256 digest, which is already a power of two (no padding per digest).
pub const DIGEST_SIZE: usize = 32;

/// Where the levels of a tree over some number of data blocks go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Levels {
    /// For each level, lowest (the data blocks' digests) first: its first hash block, counted
    /// from the start of the tree.
    pub starts: Vec<u64>,
    /// For each level, lowest first: how many hash blocks it has.
    pub counts: Vec<u64>,
}

impl Levels {
    /// The levels over `data_blocks` blocks, with hash blocks of `hash_block_size` bytes. No
    /// levels for a single block: its own hash is the root.
    pub fn new(data_blocks: u64, hash_block_size: usize) -> Self {
        let per_block_bits = (hash_block_size / DIGEST_SIZE).trailing_zeros();
        let mut counts = Vec::new();
        let mut below = data_blocks;
        while below > 1 {
            below = below.div_ceil(1 << per_block_bits);
            counts.push(below);
        }
        let mut starts = vec![0u64; counts.len()];
        let mut next = 0u64;
        for level in (0..counts.len()).rev() {
            starts[level] = next;
            next += counts[level];
        }
        Levels { starts, counts }
    }

    /// Hash blocks in the whole tree.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// `H(salt || block)`.
pub fn hash_block(salt: &[u8], block: &[u8]) -> [u8; DIGEST_SIZE] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// Builds the tree from the digests of the data blocks, given in order. Each finished hash
/// block goes to `emit` with its block number counted from the start of the tree; every level
/// emits its blocks in increasing order.
pub struct TreeBuilder<'s, E: FnMut(u64, &[u8]) -> std::io::Result<()>> {
    salt: &'s [u8],
    levels: Levels,
    /// One partly filled hash block per level.
    partial: Vec<Vec<u8>>,
    /// Bytes filled in each partial block.
    fill: Vec<usize>,
    /// Blocks emitted per level.
    done: Vec<u64>,
    root: Option<[u8; DIGEST_SIZE]>,
    emit: E,
}

impl<'s, E: FnMut(u64, &[u8]) -> std::io::Result<()>> TreeBuilder<'s, E> {
    /// A builder for `data_blocks` data blocks and hash blocks of `hash_block_size` bytes.
    pub fn new(data_blocks: u64, hash_block_size: usize, salt: &'s [u8], emit: E) -> Self {
        let levels = Levels::new(data_blocks, hash_block_size);
        let n = levels.counts.len();
        TreeBuilder {
            salt,
            levels,
            partial: vec![vec![0u8; hash_block_size]; n],
            fill: vec![0; n],
            done: vec![0; n],
            root: None,
            emit,
        }
    }

    /// The levels of the tree being built.
    pub fn levels(&self) -> &Levels {
        &self.levels
    }

    /// Takes the digest of the next data block.
    pub fn push(&mut self, digest: &[u8; DIGEST_SIZE]) -> std::io::Result<()> {
        self.push_at(0, digest)
    }

    fn push_at(&mut self, level: usize, digest: &[u8; DIGEST_SIZE]) -> std::io::Result<()> {
        if level == self.partial.len() {
            // Only the top's single block (or the only data block) gets here.
            self.root = Some(*digest);
            return Ok(());
        }
        let at = self.fill[level];
        self.partial[level][at..at + DIGEST_SIZE].copy_from_slice(digest);
        self.fill[level] = at + DIGEST_SIZE;
        if self.fill[level] == self.partial[level].len() {
            self.close(level)?;
        }
        Ok(())
    }

    /// Emits the partial block of `level` (zero-padded) and passes its hash up.
    fn close(&mut self, level: usize) -> std::io::Result<()> {
        let block = std::mem::take(&mut self.partial[level]);
        let at = self.levels.starts[level] + self.done[level];
        (self.emit)(at, &block)?;
        let digest = hash_block(self.salt, &block);
        self.partial[level] = block;
        self.partial[level].fill(0);
        self.fill[level] = 0;
        self.done[level] += 1;
        self.push_at(level + 1, &digest)
    }

    /// Closes every level, lowest first, and returns the root hash. `None` when no data block
    /// was given.
    pub fn finish(mut self) -> std::io::Result<Option<[u8; DIGEST_SIZE]>> {
        for level in 0..self.partial.len() {
            if self.fill[level] > 0 {
                self.close(level)?;
            }
        }
        debug_assert!(self
            .done
            .iter()
            .zip(&self.levels.counts)
            .all(|(d, c)| d == c));
        Ok(self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_stored_top_first() {
        assert_eq!(Levels::new(1, 4096).counts, Vec::<u64>::new());
        assert_eq!(Levels::new(128, 4096).counts, vec![1]);
        let l = Levels::new(129, 4096);
        assert_eq!(l.counts, vec![2, 1]);
        assert_eq!(l.starts, vec![1, 0]);
        let l = Levels::new(128 * 128 * 3 + 1, 4096);
        assert_eq!(l.counts, vec![385, 4, 1]);
        assert_eq!(l.starts, vec![5, 1, 0]);
        assert_eq!(l.total(), 390);
    }

    /// The tree computed level by level over whole levels held in memory, as the format
    /// describes it, against the streaming builder.
    #[test]
    fn streaming_matches_level_by_level() {
        let salt = b"salt";
        let bs = 128; // four digests per block: several levels from few blocks
        for n in [1u64, 2, 4, 5, 16, 17, 63, 64, 65] {
            let data: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 64]).collect();
            let mut level: Vec<[u8; 32]> = data.iter().map(|b| hash_block(salt, b)).collect();
            let mut stored: Vec<Vec<Vec<u8>>> = Vec::new();
            while level.len() > 1 {
                let blocks: Vec<Vec<u8>> = level
                    .chunks(bs / DIGEST_SIZE)
                    .map(|c| {
                        let mut b = c.concat();
                        b.resize(bs, 0);
                        b
                    })
                    .collect();
                level = blocks.iter().map(|b| hash_block(salt, b)).collect();
                stored.push(blocks);
            }
            let want_root = level[0];
            let want_tree: Vec<u8> = stored.iter().rev().flatten().flatten().copied().collect();

            let levels = Levels::new(n, bs);
            let mut tree = vec![0u8; levels.total() as usize * bs];
            let mut b = TreeBuilder::new(n, bs, salt, |at, block: &[u8]| {
                let at = at as usize * bs;
                tree[at..at + bs].copy_from_slice(block);
                Ok(())
            });
            for d in &data {
                b.push(&hash_block(salt, d)).unwrap();
            }
            let root = b.finish().unwrap();
            assert_eq!(root, Some(want_root), "{n} blocks");
            assert_eq!(tree, want_tree, "{n} blocks");
        }
    }
}

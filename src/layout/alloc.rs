//! Block allocation while the filesystem's final size is still unknown.
//!
//! Blocks are handed out in increasing order from the end of group 0's descriptor table. The
//! places of the superblock copies do not depend on the final group count (group `g` starts at
//! `s_first_data_block + g * s_blocks_per_group`), so the allocator steps over them from the start: each copy, with room for the
//! descriptor table of the largest filesystem permitted, is never given out. What a smaller
//! final filesystem does not need of that room simply stays free.

use super::geometry::{group_start, has_super, next_super_group};
use crate::ext4::BlockSize;

/// A run of consecutive blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub len: u64,
}

impl Run {
    /// One past the last block.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The allocator ran past the largest filesystem permitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfSpace {
    /// The block limit that was hit.
    pub limit: u64,
}

/// A bump allocator that skips the superblock and descriptor table copies.
#[derive(Clone, Debug)]
pub struct BlockAllocator {
    bs: BlockSize,
    next: u64,
    reserved: u64,
    limit: u64,
}

impl BlockAllocator {
    /// An allocator for a filesystem of `bs` blocks and at most `limit` blocks, reserving
    /// `1 + gdt_reserved` blocks at the start of every group with a superblock copy.
    pub fn new(bs: BlockSize, gdt_reserved: u64, limit: u64) -> Self {
        BlockAllocator {
            bs,
            next: bs.first_data_block() + 1 + gdt_reserved,
            reserved: 1 + gdt_reserved,
            limit,
        }
    }

    /// The block size of the filesystem being allocated.
    pub fn block_size(&self) -> BlockSize {
        self.bs
    }

    /// The next block that would be handed out: everything below it has been passed.
    pub fn high_water(&self) -> u64 {
        self.next
    }

    /// The reserved region `[start, end)` at or after `block`'s group that `block` is in or
    /// before.
    fn next_reserved(&self, block: u64) -> (u64, u64) {
        let bpg = u64::from(self.bs.blocks_per_group());
        let first = self.bs.first_data_block();
        let g = block.saturating_sub(first) / bpg;
        let start = group_start(g, self.bs);
        if has_super(g) && block < start + self.reserved {
            return (start, start + self.reserved);
        }
        let n = next_super_group(g);
        let start = n.saturating_mul(bpg).saturating_add(first);
        (start, start.saturating_add(self.reserved))
    }

    /// Hands out up to `want` consecutive blocks (at least one), stopping short of the next
    /// reserved region. Asking for none is an error.
    pub fn alloc(&mut self, want: u64) -> Result<Run, OutOfSpace> {
        let (rstart, rend) = self.next_reserved(self.next);
        if self.next >= rstart {
            self.next = rend;
        }
        let (rstart, _) = self.next_reserved(self.next);
        let len = want
            .min(rstart - self.next)
            .min(self.limit.saturating_sub(self.next));
        if len == 0 {
            return Err(OutOfSpace { limit: self.limit });
        }
        let run = Run {
            start: self.next,
            len,
        };
        self.next += len;
        Ok(run)
    }

    /// The same allocator with another block limit.
    pub fn with_limit(&self, limit: u64) -> Self {
        BlockAllocator {
            limit,
            ..self.clone()
        }
    }

    /// Returns the unused tail `[start, end)` of the most recent allocation.
    pub fn give_back(&mut self, start: u64, end: u64) {
        if end == self.next && start <= end {
            self.next = start;
        }
    }

    /// Hands out exactly `n` consecutive blocks, leaving a gap before a reserved region when
    /// they would not fit in front of it.
    pub fn alloc_contiguous(&mut self, n: u64) -> Result<u64, OutOfSpace> {
        // A run longer than a group's free stretch would never fit: refuse it rather than loop.
        if n == 0 || n > u64::from(self.bs.blocks_per_group()).saturating_sub(self.reserved) {
            return Err(OutOfSpace { limit: self.limit });
        }
        loop {
            let (rstart, rend) = self.next_reserved(self.next);
            if self.next >= rstart {
                self.next = rend;
                continue;
            }
            if rstart - self.next >= n {
                break;
            }
            self.next = rend;
        }
        if self.next + n > self.limit {
            return Err(OutOfSpace { limit: self.limit });
        }
        let start = self.next;
        self.next += n;
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BPG: u64 = BlockSize::K4.blocks_per_group() as u64;
    const K4: BlockSize = BlockSize::K4;

    #[test]
    fn starts_after_group_zero_reservation() {
        let mut a = BlockAllocator::new(K4, 3, u64::MAX);
        assert_eq!(a.alloc(10).unwrap(), Run { start: 4, len: 10 });
    }

    #[test]
    fn runs_stop_before_backup_groups() {
        let mut a = BlockAllocator::new(K4, 1, u64::MAX);
        let first = a.alloc(BPG).unwrap();
        assert_eq!(
            first,
            Run {
                start: 2,
                len: BPG - 2
            }
        );
        // Group 1 has a backup: skip its two reserved blocks. Group 2 has none, so the run
        // goes on into it.
        let second = a.alloc(BPG).unwrap();
        assert_eq!(
            second,
            Run {
                start: BPG + 2,
                len: BPG
            }
        );
        // Group 3 has a backup again.
        let third = a.alloc(3 * BPG).unwrap();
        assert_eq!(
            third,
            Run {
                start: 2 * BPG + 2,
                len: BPG - 2
            }
        );
        let fourth = a.alloc(1).unwrap();
        assert_eq!(fourth.start, 3 * BPG + 2);
    }

    #[test]
    fn contiguous_requests_skip_ahead() {
        let mut a = BlockAllocator::new(K4, 1, u64::MAX);
        a.alloc(BPG - 10).unwrap();
        let start = a.alloc_contiguous(20).unwrap();
        assert_eq!(start, BPG + 2);
        // The eight blocks left in group 0 were passed over.
        assert_eq!(a.high_water(), BPG + 22);
    }

    #[test]
    fn one_kib_groups_are_offset_by_the_boot_block() {
        let k1 = BlockSize::K1;
        let bpg = u64::from(k1.blocks_per_group());
        let mut a = BlockAllocator::new(k1, 1, u64::MAX);
        // Block 0 is the boot block, 1 the superblock, 2 the descriptor table.
        let first = a.alloc(bpg).unwrap();
        assert_eq!(
            first,
            Run {
                start: 3,
                len: bpg - 2
            }
        );
        // Group 1 starts at block 8193 and holds a copy.
        let second = a.alloc(1).unwrap();
        assert_eq!(second.start, 1 + bpg + 2);
    }

    #[test]
    fn limit_is_enforced() {
        let mut a = BlockAllocator::new(K4, 1, 100);
        assert_eq!(a.alloc(200).unwrap(), Run { start: 2, len: 98 });
        assert_eq!(a.alloc(1), Err(OutOfSpace { limit: 100 }));
    }
}

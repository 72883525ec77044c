//! Block and inode bitmaps: one block each per group.
//!
//! Bit `i` of byte `i / 8` (least significant bit first) stands for the group's `i`-th block or
//! inode. Bits past the group's last real block or inode are set, as e2fsck expects.

use super::checksum::ext4_crc32c;

/// One bitmap block.
pub struct Bitmap<'a> {
    bits: &'a mut [u8],
}

impl<'a> Bitmap<'a> {
    /// Wraps a block-sized buffer and clears it.
    pub fn new(block: &'a mut [u8]) -> Self {
        block.fill(0);
        Bitmap { bits: block }
    }

    /// Marks `count` entries starting at `first` as in use.
    pub fn set_range(&mut self, first: u32, count: u32) {
        self.set_bits(first as usize, first as usize + count as usize);
    }

    /// Sets bits `i..end`.
    fn set_bits(&mut self, mut i: usize, end: usize) {
        // Leading bits up to a byte boundary.
        while i < end && !i.is_multiple_of(8) {
            self.bits[i / 8] |= 1 << (i % 8);
            i += 1;
        }
        // Whole bytes.
        let whole = (end - i) / 8;
        self.bits[i / 8..i / 8 + whole].fill(0xFF);
        i += whole * 8;
        // Trailing bits.
        while i < end {
            self.bits[i / 8] |= 1 << (i % 8);
            i += 1;
        }
    }

    /// Sets every bit from `used_len` to the end of the block: the padding past the group's
    /// real entries.
    pub fn pad_from(&mut self, used_len: u32) {
        let total = self.bits.len() * 8;
        let from = used_len as usize;
        if from < total {
            self.set_bits(from, total);
        }
    }

    /// Number of set bits among the first `len` entries.
    #[cfg(test)]
    pub fn count_set(&self, len: u32) -> u32 {
        let len = len as usize;
        let whole: u32 = self.bits[..len / 8].iter().map(|b| b.count_ones()).sum();
        let rest = if !len.is_multiple_of(8) {
            (self.bits[len / 8] & ((1u8 << (len % 8)) - 1)).count_ones()
        } else {
            0
        };
        whole + rest
    }

    /// The bitmap checksum stored in the group descriptor: crc32c over the first `len / 8` bytes
    /// (`len` is blocks or inodes per group).
    pub fn checksum(&self, fs_seed: u32, len: u32) -> u32 {
        ext4_crc32c(fs_seed, &self.bits[..len as usize / 8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_range_spans_partial_bytes() {
        let mut block = vec![0u8; 16];
        let mut b = Bitmap::new(&mut block);
        b.set_range(3, 14);
        assert_eq!(b.count_set(128), 14);
        assert_eq!(block[0], 0b1111_1000);
        assert_eq!(block[1], 0xFF);
        assert_eq!(block[2], 0b0000_0001);
    }

    #[test]
    fn padding_fills_to_the_end() {
        let mut block = vec![0u8; 16];
        let mut b = Bitmap::new(&mut block);
        b.pad_from(100);
        assert_eq!(b.count_set(128), 28);
        assert_eq!(b.count_set(100), 0);
    }
}

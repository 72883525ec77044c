//! Linear directory blocks: `struct ext4_dir_entry_2` records packed into a block, ending in the
//! 12-byte checksum tail (`struct ext4_dir_entry_tail`) of `metadata_csum`.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::checksum::ext4_crc32c;
use super::{fit, FieldOutOfRange};

/// Size of a directory entry's fixed part (inode, rec_len, name_len, file_type), as a `rec_len`.
const DIRENT_HEADER_REC_LEN: u16 = 8;
/// Size of a directory entry's fixed part (inode, rec_len, name_len, file_type).
pub const DIRENT_HEADER_SIZE: usize = DIRENT_HEADER_REC_LEN as usize;
/// `rec_len` of the checksum tail at the end of every directory leaf block.
pub const TAIL_REC_LEN: u16 = 12;
/// Size of the checksum tail at the end of every directory leaf block.
pub const TAIL_SIZE: usize = TAIL_REC_LEN as usize;
/// `det_reserved_ft` of the checksum tail.
pub const EXT4_DIR_TAIL_FT: u8 = 0xDE;
/// Longest file name.
pub const EXT4_NAME_LEN: usize = 255;

/// `file_type` of a directory entry (`filetype` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileType {
    /// `EXT4_FT_REG_FILE`
    RegFile = 1,
    /// `EXT4_FT_DIR`
    Dir = 2,
    /// `EXT4_FT_CHRDEV`
    CharDev = 3,
    /// `EXT4_FT_BLKDEV`
    BlockDev = 4,
    /// `EXT4_FT_FIFO`
    Fifo = 5,
    /// `EXT4_FT_SOCK`
    Socket = 6,
    /// `EXT4_FT_SYMLINK`
    Symlink = 7,
}

/// `EXT4_DIR_REC_LEN`: the space an entry with a `name_len`-byte name takes, 4-byte aligned.
pub const fn rec_len(name_len: usize) -> usize {
    (DIRENT_HEADER_SIZE + name_len + 3) & !3
}

/// A name a directory entry can hold: at most [`EXT4_NAME_LEN`] bytes, so its length always fits
/// the 8-bit `name_len` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirName<'a> {
    bytes: &'a [u8],
    len: u8,
}

impl<'a> DirName<'a> {
    /// `.`
    pub const DOT: DirName<'static> = DirName {
        bytes: b".",
        len: 1,
    };
    /// `..`
    pub const DOTDOT: DirName<'static> = DirName {
        bytes: b"..",
        len: 2,
    };
    /// The empty name of an unused record.
    const EMPTY: DirName<'static> = DirName { bytes: b"", len: 0 };

    /// `name` as a directory entry name; `None` when it is longer than [`EXT4_NAME_LEN`].
    pub fn new(name: &'a [u8]) -> Option<Self> {
        let len = u8::try_from(name.len()).ok()?;
        Some(DirName { bytes: name, len })
    }

    /// [`rec_len`] of an entry with this name: at most 264, so it always fits `rec_len`.
    pub const fn rec_len(self) -> u16 {
        (DIRENT_HEADER_REC_LEN + self.len as u16 + 3) & !3
    }
}

/// Writes one directory entry header and name at the start of `out`.
pub fn encode_dirent(out: &mut [u8], inode: u32, rec_len: u16, name: DirName<'_>, file_type: u8) {
    LE::write_u32(&mut out[0..], inode);
    LE::write_u16(&mut out[4..], rec_len);
    out[6] = name.len;
    out[7] = file_type;
    out[DIRENT_HEADER_SIZE..DIRENT_HEADER_SIZE + name.bytes.len()].copy_from_slice(name.bytes);
}

/// A linear directory block being filled. Offsets within it are `u16`: every `rec_len` it
/// writes is a difference of two of them.
pub struct DirBlock<'a> {
    buf: &'a mut [u8],
    /// Where the checksum tail starts.
    end: u16,
    used: u16,
    last: Option<u16>,
}

impl<'a> DirBlock<'a> {
    /// Starts an empty block in `buf` (one filesystem block, so at least [`TAIL_SIZE`] bytes).
    /// A buffer with room for entries past what `rec_len` can span (64 KiB) is refused.
    pub fn new(buf: &'a mut [u8]) -> Result<Self, FieldOutOfRange> {
        let end: u16 = fit("rec_len", buf.len().saturating_sub(TAIL_SIZE) as u64)?;
        buf.fill(0);
        Ok(DirBlock {
            buf,
            end,
            used: 0,
            last: None,
        })
    }

    /// Bytes still free for entries before the checksum tail.
    pub fn space_left(&self) -> usize {
        usize::from(self.end - self.used)
    }

    /// Appends an entry; returns `false`, changing nothing, when it does not fit.
    pub fn push(&mut self, inode: u32, name: DirName<'_>, file_type: FileType) -> bool {
        let len = name.rec_len();
        if usize::from(len) > self.space_left() {
            return false;
        }
        encode_dirent(
            &mut self.buf[usize::from(self.used)..],
            inode,
            len,
            name,
            file_type as u8,
        );
        self.last = Some(self.used);
        self.used += len;
        true
    }

    /// Stretches the last entry over the free space (or writes one empty entry), then writes the
    /// checksum tail, seeded with the directory's per-inode seed.
    pub fn finish(self, inode_seed: u32) {
        match self.last {
            Some(at) => LE::write_u16(&mut self.buf[usize::from(at) + 4..], self.end - at),
            None => encode_dirent(self.buf, 0, self.end, DirName::EMPTY, 0),
        }
        write_tail(self.buf, inode_seed);
    }
}

/// Writes the checksum tail over the last [`TAIL_SIZE`] bytes of a leaf block.
pub fn write_tail(block: &mut [u8], inode_seed: u32) {
    let end = block.len() - TAIL_SIZE;
    block[end..].fill(0);
    LE::write_u16(&mut block[end + 4..], TAIL_REC_LEN);
    block[end + 7] = EXT4_DIR_TAIL_FT;
    let csum = ext4_crc32c(inode_seed, &block[..end]);
    LE::write_u32(&mut block[end + 8..], csum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rec_len_is_aligned() {
        assert_eq!(rec_len(1), 12);
        assert_eq!(rec_len(4), 12);
        assert_eq!(rec_len(5), 16);
        assert_eq!(rec_len(255), 264);
    }

    #[test]
    fn names_longer_than_255_bytes_are_refused() {
        assert!(DirName::new(&[b'a'; 255]).is_some());
        for len in [256, 257, 258, 300, 2000] {
            assert_eq!(DirName::new(&vec![b'a'; len]), None, "{len}");
        }
        let mut buf = vec![0u8; 1024];
        let mut b = DirBlock::new(&mut buf).unwrap();
        assert!(b.push(2, DirName::new(&[b'z'; 255]).unwrap(), FileType::RegFile));
        assert_eq!(buf[6], 255);
    }

    #[test]
    fn last_entry_reaches_the_tail() {
        let mut buf = vec![0u8; 4096];
        let mut b = DirBlock::new(&mut buf).unwrap();
        assert!(b.push(2, DirName::DOT, FileType::Dir));
        assert!(b.push(2, DirName::DOTDOT, FileType::Dir));
        b.finish(1);
        assert_eq!(LE::read_u16(&buf[4..]), 12);
        assert_eq!(LE::read_u16(&buf[16..]), 4096 - 12 - 12);
        assert_eq!(LE::read_u16(&buf[4084 + 4..]), 12);
        assert_eq!(buf[4084 + 7], 0xDE);
        assert_eq!(LE::read_u32(&buf[4092..]), ext4_crc32c(1, &buf[..4084]));
    }

    #[test]
    fn refuses_entries_that_do_not_fit() {
        let mut buf = vec![0u8; 4096];
        let mut b = DirBlock::new(&mut buf).unwrap();
        let name = [b'x'; 255];
        let mut n = 0;
        while b.push(11, DirName::new(&name).unwrap(), FileType::RegFile) {
            n += 1;
        }
        assert_eq!(n, (4096 - 12) / 264);
        assert!(b.space_left() < 264);
    }

    #[test]
    fn empty_block_has_one_unused_entry() {
        let mut buf = vec![0u8; 4096];
        DirBlock::new(&mut buf).unwrap().finish(0);
        assert_eq!(LE::read_u32(&buf[0..]), 0);
        assert_eq!(LE::read_u16(&buf[4..]), 4084);
    }

    #[test]
    fn blocks_rec_len_cannot_span_are_refused() {
        // A 64 KiB block's last entry would need rec_len 65524 + 12: the largest that still
        // fits 16 bits is a block of 65535 + 12 bytes.
        let mut ok = vec![0u8; usize::from(u16::MAX) + TAIL_SIZE];
        let mut b = DirBlock::new(&mut ok).unwrap();
        assert!(b.push(2, DirName::DOT, FileType::Dir));
        b.finish(0);
        assert_eq!(LE::read_u16(&ok[4..]), u16::MAX);
        let mut big = vec![0u8; usize::from(u16::MAX) + TAIL_SIZE + 1];
        let err = DirBlock::new(&mut big).err().unwrap();
        assert_eq!((err.field, err.value), ("rec_len", 65_536));
    }

    #[test]
    fn name_rec_len_matches_rec_len() {
        for len in [0, 1, 4, 5, 100, 255] {
            let name = vec![b'n'; len];
            assert_eq!(
                usize::from(DirName::new(&name).unwrap().rec_len()),
                rec_len(len)
            );
        }
    }
}

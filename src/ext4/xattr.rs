//! Extended attributes: the in-inode area after `i_extra_isize`, and the external xattr block
//! (`struct ext4_xattr_header` followed by `struct ext4_xattr_entry` records and the values).

use byteorder::{ByteOrder, LittleEndian as LE};

use super::checksum::ext4_crc32c;
use super::{fit, FieldOutOfRange};

/// `EXT4_XATTR_MAGIC`, at the start of the in-inode area and of an xattr block.
pub const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
/// Size of `struct ext4_xattr_header` (block only).
pub const BLOCK_HEADER_SIZE: usize = 32;
/// Size of the in-inode header (`struct ext4_xattr_ibody_header`: the magic).
pub const IBODY_HEADER_SIZE: usize = 4;
/// Fixed part of `struct ext4_xattr_entry`.
pub const ENTRY_HEADER_SIZE: usize = 16;
/// The four zero bytes that end an entry list.
pub const END_MARKER_SIZE: usize = 4;
/// Longest name suffix an entry stores (`e_name_len` is one byte).
pub const NAME_MAX: usize = u8::MAX as usize;

/// Name indexes (`EXT4_XATTR_INDEX_*`): the namespace prefix is stored as a number.
pub mod index {
    /// `user.`
    pub const USER: u8 = 1;
    /// `system.posix_acl_access` (the whole name; the stored suffix is empty).
    pub const POSIX_ACL_ACCESS: u8 = 2;
    /// `system.posix_acl_default`
    pub const POSIX_ACL_DEFAULT: u8 = 3;
    /// `trusted.`
    pub const TRUSTED: u8 = 4;
    /// `security.`
    pub const SECURITY: u8 = 6;
    /// `system.`
    pub const SYSTEM: u8 = 7;
    /// `system.richacl`
    pub const RICHACL: u8 = 8;
}

/// Splits a full attribute name into its name index and the stored suffix, or `None` for a
/// namespace ext4 cannot store.
pub fn split_name(name: &[u8]) -> Option<(u8, &[u8])> {
    // Whole names first: they are also under "system.".
    const WHOLE: [(&[u8], u8); 3] = [
        (b"system.posix_acl_access", index::POSIX_ACL_ACCESS),
        (b"system.posix_acl_default", index::POSIX_ACL_DEFAULT),
        (b"system.richacl", index::RICHACL),
    ];
    const PREFIX: [(&[u8], u8); 4] = [
        (b"user.", index::USER),
        (b"trusted.", index::TRUSTED),
        (b"security.", index::SECURITY),
        (b"system.", index::SYSTEM),
    ];
    if let Some(&(_, idx)) = WHOLE.iter().find(|(whole, _)| name == *whole) {
        return Some((idx, b""));
    }
    PREFIX
        .iter()
        .find(|(prefix, _)| name.len() > prefix.len() && name.starts_with(prefix))
        .map(|&(prefix, idx)| (idx, &name[prefix.len()..]))
}

/// One attribute ready for encoding: name index, name suffix, value.
#[derive(Clone, Copy, Debug)]
pub struct Attr<'a> {
    /// `e_name_index`
    pub index: u8,
    /// `e_name`: the name without its namespace prefix.
    pub name: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// `EXT4_XATTR_LEN`: space an entry header and its name take.
pub const fn entry_size(name_len: usize) -> usize {
    (ENTRY_HEADER_SIZE + name_len + 3) & !3
}

/// `EXT4_XATTR_SIZE`: space a value takes, padded to 4 bytes.
pub const fn value_size(len: usize) -> usize {
    (len + 3) & !3
}

impl Attr<'_> {
    /// Space the attribute takes in an entry table plus value area.
    pub fn footprint(&self) -> usize {
        entry_size(self.name.len()) + value_size(self.value.len())
    }

    /// `ext4_xattr_hash_entry()`: a rotate-and-xor hash of the name bytes, then of the value as
    /// little-endian words (zero padded).
    pub fn hash(&self) -> u32 {
        let mut hash: u32 = 0;
        for &c in self.name {
            hash = (hash << 5) ^ (hash >> 27) ^ u32::from(c);
        }
        for chunk in self.value.chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            hash = (hash << 16) ^ (hash >> 16) ^ u32::from_le_bytes(word);
        }
        hash
    }

    /// The order of entries in an xattr block, which the kernel's lookup relies on: by name
    /// index, then name length, then name bytes.
    pub fn block_order(&self, other: &Self) -> std::cmp::Ordering {
        (self.index, self.name.len(), self.name).cmp(&(other.index, other.name.len(), other.name))
    }
}

/// Whether `attrs` fit in an area of `area_size` bytes after its header of `header_size`.
pub fn fits(attrs: &[Attr<'_>], area_size: usize, header_size: usize) -> bool {
    let need: usize =
        header_size + END_MARKER_SIZE + attrs.iter().map(Attr::footprint).sum::<usize>();
    need <= area_size
}

/// Writes entries from `first` and values downward from the end of `area`; value offsets are
/// relative to `offs_base`. Attributes that do not fit the area are refused before anything is
/// written; a name, offset or value length its field cannot hold, before its entry is written.
fn encode_entries(
    area: &mut [u8],
    first: usize,
    offs_base: usize,
    attrs: &[Attr<'_>],
) -> Result<(), FieldOutOfRange> {
    if !fits(attrs, area.len(), first) {
        let need = first + END_MARKER_SIZE + attrs.iter().map(Attr::footprint).sum::<usize>();
        return Err(FieldOutOfRange {
            field: "xattr area",
            value: need as u64,
            max: area.len() as u64,
        });
    }
    let mut at = first;
    let mut value_end = area.len();
    for attr in attrs {
        let value_at = value_end - value_size(attr.value.len());
        let offs = if attr.value.is_empty() {
            0
        } else {
            value_at - offs_base
        };
        let e_name_len: u8 = fit("e_name_len", attr.name.len() as u64)?;
        let e_value_offs: u16 = fit("e_value_offs", offs as u64)?;
        let e_value_size: u32 = fit("e_value_size", attr.value.len() as u64)?;
        area[value_at..value_at + attr.value.len()].copy_from_slice(attr.value);
        value_end = value_at;
        area[at] = e_name_len;
        area[at + 1] = attr.index;
        LE::write_u16(&mut area[at + 2..], e_value_offs);
        LE::write_u32(&mut area[at + 4..], 0); // e_value_inum
        LE::write_u32(&mut area[at + 8..], e_value_size);
        LE::write_u32(&mut area[at + 12..], attr.hash());
        area[at + ENTRY_HEADER_SIZE..at + ENTRY_HEADER_SIZE + attr.name.len()]
            .copy_from_slice(attr.name);
        at += entry_size(attr.name.len());
    }
    Ok(())
}

/// Encodes the in-inode area (the inode bytes from `i_extra_isize` on); attributes that do
/// not [`fits`] are refused. With no attributes the area stays zero.
pub fn encode_ibody(area: &mut [u8], attrs: &[Attr<'_>]) -> Result<(), FieldOutOfRange> {
    area.fill(0);
    if attrs.is_empty() {
        return Ok(());
    }
    encode_entries(area, IBODY_HEADER_SIZE, IBODY_HEADER_SIZE, attrs)?;
    LE::write_u32(&mut area[0..], EXT4_XATTR_MAGIC);
    Ok(())
}

/// Encodes an xattr block stored at `block_nr`: header, entries in the kernel's order, values,
/// block hash and checksum; attributes that do not [`fits`] are refused.
pub fn encode_block(
    block: &mut [u8],
    block_nr: u64,
    fs_seed: u32,
    attrs: &[Attr<'_>],
) -> Result<(), FieldOutOfRange> {
    block.fill(0);
    let mut sorted: Vec<Attr<'_>> = attrs.to_vec();
    sorted.sort_by(Attr::block_order);
    encode_entries(block, BLOCK_HEADER_SIZE, 0, &sorted)?;
    LE::write_u32(&mut block[0..], EXT4_XATTR_MAGIC);
    LE::write_u32(&mut block[4..], 1); // h_refcount
    LE::write_u32(&mut block[8..], 1); // h_blocks
                                       // h_hash (ext4_xattr_rehash): combine the entry hashes; 0 if any entry hash is 0.
    let mut hash: u32 = 0;
    for attr in &sorted {
        let h = attr.hash();
        if h == 0 {
            hash = 0;
            break;
        }
        hash = (hash << 16) ^ (hash >> 16) ^ h;
    }
    LE::write_u32(&mut block[12..], hash);
    // h_checksum: crc32c(fs seed, le64 block number ‖ block with h_checksum zeroed).
    let csum = ext4_crc32c(ext4_crc32c(fs_seed, &block_nr.to_le_bytes()), block);
    LE::write_u32(&mut block[16..], csum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_index_and_suffix() {
        assert_eq!(
            split_name(b"user.mime_type"),
            Some((index::USER, &b"mime_type"[..]))
        );
        assert_eq!(
            split_name(b"security.capability"),
            Some((index::SECURITY, &b"capability"[..]))
        );
        assert_eq!(
            split_name(b"system.posix_acl_access"),
            Some((index::POSIX_ACL_ACCESS, &b""[..]))
        );
        assert_eq!(
            split_name(b"system.posix_acl_default"),
            Some((index::POSIX_ACL_DEFAULT, &b""[..]))
        );
        assert_eq!(
            split_name(b"system.data"),
            Some((index::SYSTEM, &b"data"[..]))
        );
        assert_eq!(split_name(b"user."), None);
        assert_eq!(split_name(b"com.apple.quarantine"), None);
    }

    #[test]
    fn ibody_layout() {
        let mut area = [0u8; 96];
        let attrs = [Attr {
            index: index::SECURITY,
            name: b"capability",
            value: &[1, 2, 3, 4, 5],
        }];
        assert!(fits(&attrs, 96, IBODY_HEADER_SIZE));
        encode_ibody(&mut area, &attrs).unwrap();
        assert_eq!(LE::read_u32(&area[0..]), EXT4_XATTR_MAGIC);
        assert_eq!(area[4], 10);
        assert_eq!(area[5], index::SECURITY);
        let offs = LE::read_u16(&area[6..]) as usize;
        assert_eq!(offs, 96 - 8 - 4);
        assert_eq!(&area[4 + offs..4 + offs + 5], &[1, 2, 3, 4, 5]);
        assert_eq!(LE::read_u32(&area[12..]), 5);
        assert_eq!(&area[20..30], b"capability");
        // The end marker after the entry is zero.
        assert_eq!(LE::read_u32(&area[4 + entry_size(10)..]), 0);
    }

    #[test]
    fn block_entries_are_sorted_and_checksummed() {
        let mut block = vec![0u8; 4096];
        let attrs = [
            Attr {
                index: index::USER,
                name: b"zz",
                value: b"1",
            },
            Attr {
                index: index::USER,
                name: b"a",
                value: b"2",
            },
            Attr {
                index: index::TRUSTED,
                name: b"b",
                value: b"3",
            },
        ];
        encode_block(&mut block, 1234, 99, &attrs).unwrap();
        assert_eq!(&block[32 + 16..32 + 17], b"a");
        assert_eq!(&block[32 + 20 + 16..32 + 20 + 18], b"zz");
        assert_eq!(block[32 + 40 + 1], index::TRUSTED);
        let stored = LE::read_u32(&block[16..]);
        let mut zeroed = block.clone();
        zeroed[16..20].fill(0);
        assert_eq!(
            stored,
            ext4_crc32c(ext4_crc32c(99, &1234u64.to_le_bytes()), &zeroed)
        );
    }

    #[test]
    fn capacity_counts_header_and_end_marker() {
        let value = [0u8; 60];
        let attrs = [Attr {
            index: index::USER,
            name: b"n",
            value: &value,
        }];
        // 4 header + 20 entry + 60 value + 4 end = 88.
        assert!(fits(&attrs, 88, IBODY_HEADER_SIZE));
        assert!(!fits(&attrs, 87, IBODY_HEADER_SIZE));
    }

    #[test]
    fn overfull_areas_and_long_names_are_refused() {
        let value = [7u8; 60];
        let attrs = [Attr {
            index: index::USER,
            name: b"n",
            value: &value,
        }];
        let mut area = [0u8; 88];
        encode_ibody(&mut area, &attrs).unwrap();
        let mut small = [0xAAu8; 87];
        let err = encode_ibody(&mut small, &attrs).unwrap_err();
        assert_eq!((err.field, err.value, err.max), ("xattr area", 88, 87));
        assert_eq!(small, [0u8; 87], "nothing but zeros written");
        let long = [b'x'; 256];
        let named = [Attr {
            index: index::USER,
            name: &long,
            value: b"",
        }];
        let mut block = vec![0u8; 4096];
        let err = encode_block(&mut block, 1, 0, &named).unwrap_err();
        assert_eq!((err.field, err.value, err.max), ("e_name_len", 256, 255));
        // Value offsets are 16 bits: a value placed past 64 KiB is refused.
        let mut huge = vec![0u8; (1 << 16) + 4096];
        let err = encode_block(&mut huge, 1, 0, &attrs).unwrap_err();
        assert_eq!(err.field, "e_value_offs");
    }
}

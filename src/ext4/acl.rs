//! POSIX ACLs as ext4 stores them in `system.posix_acl_*` xattrs: its own compact format
//! (`ext4_acl_header`, version 1), with 4-byte short entries where no id is needed and 8-byte
//! full entries for named users and groups. The generic xattr format they arrive in is decoded
//! outside this module.

/// `EXT4_ACL_VERSION`
pub const EXT4_ACL_VERSION: u32 = 1;
/// `ACL_USER`: a tag whose entry carries a uid (a full entry).
pub const TAG_USER: u16 = 0x02;
/// `ACL_GROUP`: a tag whose entry carries a gid (a full entry).
pub const TAG_GROUP: u16 = 0x08;

/// One ACL entry as ext4 stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskAclEntry {
    /// `e_tag`
    pub tag: u16,
    /// `e_perm`: read 4, write 2, execute 1.
    pub perm: u16,
    /// `e_id`: stored only for [`TAG_USER`] and [`TAG_GROUP`].
    pub id: u32,
}

/// Encodes entries in ext4's on-disk format (`ext4_acl_header` + short and full entries).
pub fn encode_disk(entries: &[DiskAclEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * entries.len());
    out.extend_from_slice(&EXT4_ACL_VERSION.to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        if e.tag == TAG_USER || e.tag == TAG_GROUP {
            out.extend_from_slice(&e.id.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use byteorder::{ByteOrder, LittleEndian as LE};

    #[test]
    fn short_and_full_entries() {
        let e = |tag, perm, id| DiskAclEntry { tag, perm, id };
        let d = encode_disk(&[
            e(0x01, 7, u32::MAX),
            e(TAG_USER, 5, 1000),
            e(0x04, 5, u32::MAX),
            e(TAG_GROUP, 4, 50),
            e(0x10, 7, u32::MAX),
            e(0x20, 0, u32::MAX),
        ]);
        assert_eq!(d.len(), 4 + 4 + 8 + 4 + 8 + 4 + 4);
        assert_eq!(LE::read_u32(&d), 1);
        assert_eq!(LE::read_u16(&d[8..]), TAG_USER);
        assert_eq!(LE::read_u32(&d[12..]), 1000);
        assert_eq!(LE::read_u16(&d[20..]), TAG_GROUP);
        assert_eq!(LE::read_u32(&d[24..]), 50);
    }
}

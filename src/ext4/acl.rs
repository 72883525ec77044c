//! POSIX ACLs: the `system.posix_acl_access` / `system.posix_acl_default` values arrive in the
//! generic xattr format of `listxattr(2)` and tar (version 2, 8-byte entries) and are stored by
//! ext4 in its own compact format (version 1, 4-byte entries where no id is needed).

use byteorder::{ByteOrder, LittleEndian as LE};

/// `POSIX_ACL_XATTR_VERSION`
pub const POSIX_ACL_XATTR_VERSION: u32 = 2;
/// `EXT4_ACL_VERSION`
pub const EXT4_ACL_VERSION: u32 = 1;

/// ACL entry tags.
pub mod tag {
    /// `ACL_USER_OBJ`
    pub const USER_OBJ: u16 = 0x01;
    /// `ACL_USER`
    pub const USER: u16 = 0x02;
    /// `ACL_GROUP_OBJ`
    pub const GROUP_OBJ: u16 = 0x04;
    /// `ACL_GROUP`
    pub const GROUP: u16 = 0x08;
    /// `ACL_MASK`
    pub const MASK: u16 = 0x10;
    /// `ACL_OTHER`
    pub const OTHER: u16 = 0x20;
}

/// One ACL entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclEntry {
    /// `e_tag`
    pub tag: u16,
    /// `e_perm`: read 4, write 2, execute 1.
    pub perm: u16,
    /// `e_id`: uid or gid for `ACL_USER` / `ACL_GROUP`, else unused.
    pub id: u32,
}

/// Parses the xattr wire format (`struct posix_acl_xattr_header` + entries).
pub fn parse_xattr(value: &[u8]) -> Result<Vec<AclEntry>, String> {
    if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) {
        return Err(format!(
            "POSIX ACL value of {} bytes is not a header plus 8-byte entries",
            value.len()
        ));
    }
    let version = LE::read_u32(value);
    if version != POSIX_ACL_XATTR_VERSION {
        return Err(format!(
            "POSIX ACL version {version}, expected {POSIX_ACL_XATTR_VERSION}"
        ));
    }
    value[4..]
        .chunks_exact(8)
        .map(|e| {
            let entry = AclEntry {
                tag: LE::read_u16(e),
                perm: LE::read_u16(&e[2..]),
                id: LE::read_u32(&e[4..]),
            };
            match entry.tag {
                tag::USER_OBJ
                | tag::USER
                | tag::GROUP_OBJ
                | tag::GROUP
                | tag::MASK
                | tag::OTHER => Ok(entry),
                other => Err(format!("unknown POSIX ACL tag {other:#x}")),
            }
        })
        .collect()
}

/// Encodes entries in ext4's on-disk format (`ext4_acl_header` + short and full entries).
pub fn encode_disk(entries: &[AclEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * entries.len());
    out.extend_from_slice(&EXT4_ACL_VERSION.to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        if e.tag == tag::USER || e.tag == tag::GROUP {
            out.extend_from_slice(&e.id.to_le_bytes());
        }
    }
    out
}

/// Converts an ACL from the xattr wire format to ext4's on-disk format.
pub fn xattr_to_disk(value: &[u8]) -> Result<Vec<u8>, String> {
    parse_xattr(value).map(|entries| encode_disk(&entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(t, p, id) in entries {
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&p.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn short_and_full_entries() {
        let v = wire(&[
            (tag::USER_OBJ, 7, u32::MAX),
            (tag::USER, 5, 1000),
            (tag::GROUP_OBJ, 5, u32::MAX),
            (tag::GROUP, 4, 50),
            (tag::MASK, 7, u32::MAX),
            (tag::OTHER, 0, u32::MAX),
        ]);
        let d = xattr_to_disk(&v).unwrap();
        assert_eq!(d.len(), 4 + 4 + 8 + 4 + 8 + 4 + 4);
        assert_eq!(LE::read_u32(&d), 1);
        assert_eq!(LE::read_u16(&d[8..]), tag::USER);
        assert_eq!(LE::read_u32(&d[12..]), 1000);
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(xattr_to_disk(&[2, 0, 0]).is_err());
        assert!(xattr_to_disk(&wire(&[(0x40, 0, 0)])).is_err());
        let mut v1 = wire(&[(tag::OTHER, 0, 0)]);
        v1[0] = 1;
        assert!(xattr_to_disk(&v1).is_err());
    }
}

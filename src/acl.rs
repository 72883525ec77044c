//! POSIX ACLs as extended attributes carry them: the `system.posix_acl_access` and
//! `system.posix_acl_default` values in the kernel's generic wire format (a version-2 header and
//! 8-byte entries), as `listxattr(2)` returns them and tar readers produce them. How ext4 stores
//! an ACL on disk is `ext4::acl`'s business; the builder converts between the two.

use byteorder::{ByteOrder, LittleEndian as LE};

/// `POSIX_ACL_XATTR_VERSION`: the version in the wire format's header.
pub const XATTR_VERSION: u32 = 2;

/// ACL entry tags (`e_tag`).
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
    /// `e_tag`, one of [`tag`].
    pub tag: u16,
    /// `e_perm`: read 4, write 2, execute 1.
    pub perm: u16,
    /// `e_id`: uid or gid for `ACL_USER` / `ACL_GROUP`, else unused.
    pub id: u32,
}

/// Parses the wire format (`struct posix_acl_xattr_header` + entries).
pub fn parse_xattr(value: &[u8]) -> Result<Vec<AclEntry>, String> {
    if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) {
        return Err(format!(
            "POSIX ACL value of {} bytes is not a header plus 8-byte entries",
            value.len()
        ));
    }
    let version = LE::read_u32(value);
    if version != XATTR_VERSION {
        return Err(format!(
            "POSIX ACL version {version}, expected {XATTR_VERSION}"
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

/// Encodes entries in the wire format, in the order given.
pub fn encode_xattr(entries: &[AclEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * entries.len());
    out.extend_from_slice(&XATTR_VERSION.to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&e.id.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: u16, perm: u16, id: u32) -> AclEntry {
        AclEntry { tag, perm, id }
    }

    #[test]
    fn round_trips() {
        let entries = [
            entry(tag::USER_OBJ, 7, u32::MAX),
            entry(tag::USER, 5, 1000),
            entry(tag::OTHER, 0, u32::MAX),
        ];
        let wire = encode_xattr(&entries);
        assert_eq!(wire.len(), 4 + 3 * 8);
        assert_eq!(LE::read_u32(&wire), 2);
        assert_eq!(parse_xattr(&wire).unwrap(), entries);
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(parse_xattr(&[2, 0, 0]).is_err());
        assert!(parse_xattr(&encode_xattr(&[entry(0x40, 0, 0)])).is_err());
        let mut v1 = encode_xattr(&[entry(tag::OTHER, 0, 0)]);
        v1[0] = 1;
        assert!(parse_xattr(&v1).is_err());
    }
}

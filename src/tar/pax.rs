//! PAX extended header records (`"%d %s=%s\n"`) and what they override.

use base64::Engine;

use crate::entry::{Timestamp, Xattr};
use crate::ext4::acl::{self, tag, AclEntry};

/// One PAX record: key and value.
pub type Record = (Vec<u8>, Vec<u8>);

/// Parses the records of a PAX header. Later records for the same key win, except for the
/// repeated `GNU.sparse.offset` / `GNU.sparse.numbytes` pairs, which are kept in order.
pub fn parse_records(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        // Some writers pad the header with NULs.
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record length is not a number")?;
        if len <= sp + 1 || len > data.len() {
            return Err(format!("PAX record length {len} is out of bounds"));
        }
        let record = &data[sp + 1..len];
        let Some((&b'\n', body)) = record.split_last() else {
            return Err("PAX record does not end in a newline".into());
        };
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without '='")?;
        out.push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// Parses a PAX time: decimal seconds with an optional sign and fraction.
pub fn parse_time(value: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(value).ok()?;
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let sec: i64 = whole.parse().ok()?;
    let mut nsec: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if !negative {
        Timestamp { sec, nsec }
    } else if nsec == 0 {
        Timestamp { sec: -sec, nsec: 0 }
    } else {
        Timestamp {
            sec: -sec - 1,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

/// Parses a non-negative decimal number.
pub fn parse_u64(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Decodes `%XX` escapes (libarchive's xattr names).
pub fn url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Decodes base64 with or without padding (libarchive writes none).
pub fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(s).ok()
}

/// Converts a text ACL as GNU tar and star store it (`SCHILY.acl.access`): entries like
/// `user::rwx`, `user:1000:r-x`, `group:50:r--`, `mask::r-x`, `other::---`, separated by commas
/// or newlines. A named user or group must be numeric, or carry its id in a fourth field (star's
/// `user:name:rwx:1000`). Returns the xattr wire format.
pub fn text_acl_to_xattr(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "ACL text is not UTF-8".to_string())?;
    let mut entries = Vec::new();
    for item in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
    {
        let fields: Vec<&str> = item.split(':').collect();
        if fields.len() < 3 {
            return Err(format!("ACL entry {item:?} has fewer than three fields"));
        }
        let perm = fields[2].bytes().try_fold(0u16, |acc, c| match c {
            b'r' => Ok(acc | 4),
            b'w' => Ok(acc | 2),
            b'x' => Ok(acc | 1),
            b'-' => Ok(acc),
            _ => Err(format!("ACL entry {item:?} has bad permissions")),
        })?;
        let qualifier = fields[1];
        let id =
            match fields.get(3) {
                Some(id) => Some(
                    id.parse::<u32>()
                        .map_err(|_| format!("ACL entry {item:?} has a bad id"))?,
                ),
                None if qualifier.is_empty() => None,
                None => Some(qualifier.parse::<u32>().map_err(|_| {
                    format!("ACL entry {item:?} names a user or group without its id")
                })?),
            };
        let (t, id) = match (fields[0], id) {
            ("user" | "u", None) => (tag::USER_OBJ, u32::MAX),
            ("user" | "u", Some(id)) => (tag::USER, id),
            ("group" | "g", None) => (tag::GROUP_OBJ, u32::MAX),
            ("group" | "g", Some(id)) => (tag::GROUP, id),
            ("mask" | "m", _) => (tag::MASK, u32::MAX),
            ("other" | "o", _) => (tag::OTHER, u32::MAX),
            (other, _) => return Err(format!("ACL entry tag {other:?} is unknown")),
        };
        entries.push(AclEntry { tag: t, perm, id });
    }
    // The kernel wants entries ordered by tag, then id.
    entries.sort_by_key(|e| (e.tag, e.id));
    let mut out = acl::POSIX_ACL_XATTR_VERSION.to_le_bytes().to_vec();
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&e.id.to_le_bytes());
    }
    Ok(out)
}

/// Sparse file information from PAX records (GNU formats 0.0, 0.1 and 1.0).
#[derive(Clone, Debug, Default)]
pub struct PaxSparse {
    /// `GNU.sparse.major`
    pub major: Option<u64>,
    /// `GNU.sparse.minor`
    pub minor: Option<u64>,
    /// `GNU.sparse.name`: the real name.
    pub name: Option<Vec<u8>>,
    /// `GNU.sparse.realsize` or `GNU.sparse.size`.
    pub real_size: Option<u64>,
    /// `GNU.sparse.map` (0.1) or the `GNU.sparse.offset`/`numbytes` pairs (0.0).
    pub map: Vec<u64>,
    /// Whether any sparse record was seen.
    pub present: bool,
}

/// What the PAX records of one entry override.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `path`
    pub path: Option<Vec<u8>>,
    /// `linkpath`
    pub link_path: Option<Vec<u8>>,
    /// `size`
    pub size: Option<u64>,
    /// `uid`
    pub uid: Option<u64>,
    /// `gid`
    pub gid: Option<u64>,
    /// `mtime`
    pub mtime: Option<Timestamp>,
    /// `atime`
    pub atime: Option<Timestamp>,
    /// `ctime`
    pub ctime: Option<Timestamp>,
    /// `SCHILY.devmajor`
    pub dev_major: Option<u64>,
    /// `SCHILY.devminor`
    pub dev_minor: Option<u64>,
    /// Extended attributes from `SCHILY.xattr.*`, `LIBARCHIVE.xattr.*` and `SCHILY.acl.*`.
    pub xattrs: Vec<Xattr>,
    /// Sparse file records.
    pub sparse: PaxSparse,
}

impl Overrides {
    /// Applies the records of one PAX header. Returns warnings for records that were ignored.
    pub fn apply(&mut self, records: Vec<Record>) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        for (key, value) in records {
            let bad = |what: &str| {
                format!(
                    "PAX record {}={:?} is not a valid {what}",
                    String::from_utf8_lossy(&key),
                    String::from_utf8_lossy(&value)
                )
            };
            let num = |v: &[u8]| parse_u64(v).ok_or_else(|| bad("number"));
            let time = |v: &[u8]| parse_time(v).ok_or_else(|| bad("time"));
            match &key[..] {
                b"path" => self.path = Some(value),
                b"linkpath" => self.link_path = Some(value),
                b"size" => self.size = Some(num(&value)?),
                b"uid" => self.uid = Some(num(&value)?),
                b"gid" => self.gid = Some(num(&value)?),
                b"mtime" => self.mtime = Some(time(&value)?),
                b"atime" => self.atime = Some(time(&value)?),
                b"ctime" => self.ctime = Some(time(&value)?),
                b"SCHILY.devmajor" => self.dev_major = Some(num(&value)?),
                b"SCHILY.devminor" => self.dev_minor = Some(num(&value)?),
                b"SCHILY.acl.access" | b"SCHILY.acl.default" => {
                    let name: &[u8] = if &key[..] == b"SCHILY.acl.access" {
                        b"system.posix_acl_access"
                    } else {
                        b"system.posix_acl_default"
                    };
                    let value = text_acl_to_xattr(&value)?;
                    self.xattrs.push(Xattr {
                        name: name.to_vec(),
                        value,
                    });
                }
                b"GNU.sparse.major" => {
                    self.sparse.major = Some(num(&value)?);
                    self.sparse.present = true;
                }
                b"GNU.sparse.minor" => {
                    self.sparse.minor = Some(num(&value)?);
                    self.sparse.present = true;
                }
                b"GNU.sparse.name" => {
                    self.sparse.name = Some(value);
                    self.sparse.present = true;
                }
                b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                    self.sparse.real_size = Some(num(&value)?);
                    self.sparse.present = true;
                }
                b"GNU.sparse.map" => {
                    self.sparse.map = value
                        .split(|&b| b == b',')
                        .filter(|s| !s.is_empty())
                        .map(|s| parse_u64(s).ok_or_else(|| bad("sparse map")))
                        .collect::<Result<_, _>>()?;
                    self.sparse.present = true;
                }
                b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                    self.sparse.map.push(num(&value)?);
                    self.sparse.present = true;
                }
                _ if key.starts_with(b"SCHILY.xattr.") => {
                    self.xattrs.push(Xattr {
                        name: key[b"SCHILY.xattr.".len()..].to_vec(),
                        value,
                    });
                }
                _ if key.starts_with(b"LIBARCHIVE.xattr.") => {
                    let name = url_decode(&key[b"LIBARCHIVE.xattr.".len()..])
                        .ok_or_else(|| bad("xattr name"))?;
                    let value = base64_decode(&value).ok_or_else(|| bad("base64 xattr value"))?;
                    self.xattrs.push(Xattr { name, value });
                }
                // Names of owners are not used: numeric ids win. Charset, comments and file
                // flags have no place in ext4.
                b"uname"
                | b"gname"
                | b"hdrcharset"
                | b"comment"
                | b"charset"
                | b"SCHILY.fflags"
                | b"SCHILY.dev"
                | b"SCHILY.ino"
                | b"SCHILY.nlink"
                | b"SCHILY.filetype"
                | b"LIBARCHIVE.creationtime" => {}
                _ => warnings.push(format!(
                    "PAX record {} ignored",
                    String::from_utf8_lossy(&key)
                )),
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        let data = b"30 mtime=1700000000.123456789\n20 path=a/long/name\n";
        let r = parse_records(data).unwrap();
        assert_eq!(r[0].0, b"mtime");
        assert_eq!(r[0].1, b"1700000000.123456789");
        assert_eq!(r[1].1, b"a/long/name");
        assert!(parse_records(b"5 a=b\n").is_err());
        assert!(parse_records(b"99 a=b\n").is_err());
        assert!(parse_records(b"x a=b\n").is_err());
    }

    #[test]
    fn times_with_fractions_and_signs() {
        assert_eq!(
            parse_time(b"12.5"),
            Some(Timestamp {
                sec: 12,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_time(b"-1.25"),
            Some(Timestamp {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(parse_time(b"-3"), Some(Timestamp { sec: -3, nsec: 0 }));
        assert_eq!(
            parse_time(b"1.1234567891"),
            Some(Timestamp {
                sec: 1,
                nsec: 123_456_789
            })
        );
        assert_eq!(parse_time(b"abc"), None);
        assert_eq!(parse_time(b"1.2x"), None);
    }

    #[test]
    fn xattrs_from_both_dialects() {
        let mut o = Overrides::default();
        o.apply(vec![
            (b"SCHILY.xattr.user.a".to_vec(), vec![0, 1, 2]),
            (b"LIBARCHIVE.xattr.user.b%20c".to_vec(), b"AAEC".to_vec()),
        ])
        .unwrap();
        assert_eq!(
            o.xattrs[0],
            Xattr {
                name: b"user.a".to_vec(),
                value: vec![0, 1, 2]
            }
        );
        assert_eq!(
            o.xattrs[1],
            Xattr {
                name: b"user.b c".to_vec(),
                value: vec![0, 1, 2]
            }
        );
    }

    #[test]
    fn text_acls_become_wire_format() {
        let v =
            text_acl_to_xattr(b"user::rwx,user:1000:r-x,group::r-x,mask::r-x,other::---").unwrap();
        let disk = acl::xattr_to_disk(&v).unwrap();
        assert_eq!(disk.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert!(text_acl_to_xattr(b"user:alice:rwx").is_err());
        assert!(text_acl_to_xattr(b"user:alice:rwx:1001").is_ok());
    }
}

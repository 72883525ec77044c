//! PAX extended header records (`"%d %s=%s\n"`) and what they override.

use base64::Engine;

use crate::acl::{self, tag, AclEntry};
use crate::entry::{Timestamp, Xattr};

/// One PAX record: key and value.
pub type Record = (Vec<u8>, Vec<u8>);

/// Parses the records of a PAX header, as Go's `archive/tar` does: every record must be
/// `"%d %s=%s\n"` with a length that covers exactly the record, a key that is not empty and
/// holds no NUL, and no NUL in a `path`, `linkpath`, `uname` or `gname` value (GNU tar and
/// bsdtar refuse NULs in keys too). Nothing may follow the last record, not even NUL padding.
/// Records come back in order; what a repeated key means is [`Overrides::from_records`]' call.
pub fn parse_records(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record length is not a number")?;
        if len < 5 || len <= sp + 1 || len > data.len() {
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
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        if key.is_empty() {
            return Err("PAX record with an empty key".into());
        }
        if key.contains(&0) {
            return Err(format!("PAX record key {} holds a NUL", show(key)));
        }
        if matches!(key, b"path" | b"linkpath" | b"uname" | b"gname") && value.contains(&0) {
            return Err(format!("PAX record {} holds a NUL", show(key)));
        }
        out.push((key.to_vec(), value.to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// At most 64 bytes of a key or value from the input, control characters escaped, quoted, for
/// a message.
pub fn show(bytes: &[u8]) -> String {
    format!("\"{}\"", escape(bytes))
}

/// At most 64 bytes of a name or key from the input, control characters and bytes beyond
/// ASCII escaped.
pub fn escape(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(64)];
    let more = if bytes.len() > 64 { "..." } else { "" };
    format!("{}{more}", cut.escape_ascii())
}

/// Parses a PAX time as Go does: decimal seconds with an optional sign, then optionally `.`
/// and digits (beyond nine ignored).
pub fn parse_time(value: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(value).ok()?;
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let sec: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nsec: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if !whole.starts_with('-') || nsec == 0 {
        Timestamp { sec, nsec }
    } else {
        // -1.25 is 1.25 seconds before the epoch: -2 seconds plus 0.75.
        Timestamp {
            sec: sec.checked_sub(1)?,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

/// Parses a decimal number as Go's `strconv.ParseInt` does (an optional sign, digits).
pub fn parse_i64(value: &[u8]) -> Option<i64> {
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
    Ok(acl::encode_xattr(&entries))
}

/// Most extended attributes one entry may carry, and most bytes of their names and values
/// together: far more than ext4 can store for one inode (its inode space and one block), so
/// only input that could never build reaches them.
pub const MAX_XATTRS: usize = 1024;
/// See [`MAX_XATTRS`].
pub const MAX_XATTR_BYTES: usize = 256 << 10;

/// Sparse file information from PAX records (GNU formats 0.0, 0.1 and 1.0).
#[derive(Clone, Debug, Default)]
pub struct PaxSparse {
    /// `GNU.sparse.major`
    pub major: Option<Vec<u8>>,
    /// `GNU.sparse.minor`
    pub minor: Option<Vec<u8>>,
    /// `GNU.sparse.name`: the real name.
    pub name: Option<Vec<u8>>,
    /// `GNU.sparse.size`, the real size (format 0.x).
    pub size: Option<Vec<u8>>,
    /// `GNU.sparse.realsize`, the real size (format 1.0).
    pub real_size: Option<Vec<u8>>,
    /// `GNU.sparse.numblocks`: how many pairs the 0.x map holds.
    pub num_blocks: Option<Vec<u8>>,
    /// `GNU.sparse.map` (0.1), or the `GNU.sparse.offset`/`numbytes` pairs (0.0) joined the same
    /// way.
    pub map: Option<Vec<u8>>,
}

/// Which GNU sparse format the records of an entry announce, as Go tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseFormat {
    /// Not sparse.
    None,
    /// 0.0 or 0.1: the map is in the records.
    Map,
    /// 1.0: the map starts the entry's data.
    Data,
    /// A version this reader does not know.
    Unknown,
}

impl PaxSparse {
    /// The format: versions 0.0, 0.1 and 1.0 by their `major`/`minor` records, or, without
    /// those, 0.x when a map is present. Empty values count as absent.
    pub fn format(&self) -> SparseFormat {
        let major = self.major.as_deref().unwrap_or_default();
        let minor = self.minor.as_deref().unwrap_or_default();
        match (major, minor) {
            (b"0", b"0" | b"1") => SparseFormat::Map,
            (b"1", b"0") => SparseFormat::Data,
            (b"", b"") if self.map.as_deref().is_some_and(|m| !m.is_empty()) => SparseFormat::Map,
            (b"", b"") => SparseFormat::None,
            _ => SparseFormat::Unknown,
        }
    }

    /// The 0.x map: `numblocks` pairs of decimal numbers separated by commas.
    pub fn map_pairs(&self) -> Result<Vec<(i64, i64)>, String> {
        let count = self
            .num_blocks
            .as_deref()
            .and_then(parse_i64)
            .filter(|&n| n >= 0)
            .ok_or("GNU.sparse.numblocks is missing or not a count")?;
        let map = self.map.as_deref().unwrap_or_default();
        let values: Vec<&[u8]> = if map.is_empty() {
            Vec::new()
        } else {
            map.split(|&b| b == b',').collect()
        };
        let wanted = u64::try_from(count).unwrap_or(0).checked_mul(2);
        if Some(values.len() as u64) != wanted {
            return Err(format!(
                "GNU.sparse.map holds {} values where GNU.sparse.numblocks says {count} pairs",
                values.len()
            ));
        }
        values
            .chunks(2)
            .map(|c| match (parse_i64(c[0]), parse_i64(c[1])) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(format!(
                    "GNU.sparse.map value {} is not a number",
                    show(c[0])
                )),
            })
            .collect()
    }
}

/// What the PAX records of one entry override, read as Go's `archive/tar` reads them: a key
/// given twice takes its last value, and an empty value leaves the header's field as it is.
/// Go reads `SCHILY.devmajor`/`devminor` from no record (devices take the header's numbers),
/// and so does this reader.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `path`
    pub path: Option<Vec<u8>>,
    /// `linkpath`
    pub link_path: Option<Vec<u8>>,
    /// `size`
    pub size: Option<i64>,
    /// `uid`
    pub uid: Option<i64>,
    /// `gid`
    pub gid: Option<i64>,
    /// `mtime`
    pub mtime: Option<Timestamp>,
    /// `atime`
    pub atime: Option<Timestamp>,
    /// `ctime`
    pub ctime: Option<Timestamp>,
    /// Extended attributes from `SCHILY.xattr.*`, `LIBARCHIVE.xattr.*` and `SCHILY.acl.*`, one
    /// per name (the last record wins), in the order of their first record.
    pub xattrs: Vec<Xattr>,
    /// Sparse file records.
    pub sparse: PaxSparse,
}

impl Overrides {
    /// What the records of one PAX header say. Returns warnings for records that were ignored,
    /// as (at most 64 bytes of) their keys.
    pub fn from_records(records: Vec<Record>) -> crate::error::Result<(Self, Vec<String>)> {
        use crate::error::Error;
        let mut o = Overrides::default();
        let mut warnings = Vec::new();
        let mut by_name: std::collections::HashMap<Vec<u8>, usize> =
            std::collections::HashMap::new();
        let mut xattr_bytes = 0usize;
        // GNU sparse 0.0 repeats offset and numbytes records; Go joins them into a 0.1 map,
        // in strict alternation.
        let mut pairs: Vec<u8> = Vec::new();
        let mut pair_values = 0usize;
        for (key, value) in records {
            let bad = |what: &str| {
                Error::corrupt(format!(
                    "PAX record {}={} is not a valid {what}",
                    show(&key),
                    show(&value)
                ))
            };
            let num = |v: &[u8]| parse_i64(v).ok_or_else(|| bad("number"));
            let time = |v: &[u8]| parse_time(v).ok_or_else(|| bad("time"));
            let mut xattr = |name: Vec<u8>, value: Vec<u8>| -> crate::error::Result<()> {
                xattr_bytes += name.len() + value.len();
                if let Some(&i) = by_name.get(&name) {
                    let old: &mut Xattr = &mut o.xattrs[i];
                    xattr_bytes -= old.name.len() + old.value.len();
                    old.value = value;
                } else {
                    if o.xattrs.len() >= MAX_XATTRS {
                        return Err(Error::limit(format!(
                            "more than {MAX_XATTRS} extended attributes for one entry"
                        )));
                    }
                    by_name.insert(name.clone(), o.xattrs.len());
                    o.xattrs.push(Xattr { name, value });
                }
                if xattr_bytes > MAX_XATTR_BYTES {
                    return Err(Error::limit(format!(
                        "extended attributes of one entry take more than {MAX_XATTR_BYTES} bytes"
                    )));
                }
                Ok(())
            };
            match &key[..] {
                b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                    let want: &[u8] = if pair_values.is_multiple_of(2) {
                        b"GNU.sparse.offset"
                    } else {
                        b"GNU.sparse.numbytes"
                    };
                    if key != want || value.contains(&b',') {
                        return Err(Error::corrupt(format!(
                            "GNU sparse 0.0 record {}={} is out of order or malformed",
                            show(&key),
                            show(&value)
                        )));
                    }
                    if pair_values > 0 {
                        pairs.push(b',');
                    }
                    pairs.extend_from_slice(&value);
                    pair_values += 1;
                    continue;
                }
                b"GNU.sparse.major" => o.sparse.major = Some(value),
                b"GNU.sparse.minor" => o.sparse.minor = Some(value),
                b"GNU.sparse.name" => o.sparse.name = Some(value),
                b"GNU.sparse.size" => o.sparse.size = Some(value),
                b"GNU.sparse.realsize" => o.sparse.real_size = Some(value),
                b"GNU.sparse.numblocks" => o.sparse.num_blocks = Some(value),
                b"GNU.sparse.map" => o.sparse.map = Some(value),
                // An xattr's value may be empty (Docker and containerd set those).
                _ if key.starts_with(b"SCHILY.xattr.") => {
                    xattr(key[b"SCHILY.xattr.".len()..].to_vec(), value)?;
                }
                _ if key.starts_with(b"LIBARCHIVE.xattr.") => {
                    let name = url_decode(&key[b"LIBARCHIVE.xattr.".len()..])
                        .ok_or_else(|| bad("xattr name"))?;
                    let value = base64_decode(&value).ok_or_else(|| bad("base64 xattr value"))?;
                    xattr(name, value)?;
                }
                b"SCHILY.acl.access" | b"SCHILY.acl.default" if !value.is_empty() => {
                    let name: &[u8] = if &key[..] == b"SCHILY.acl.access" {
                        b"system.posix_acl_access"
                    } else {
                        b"system.posix_acl_default"
                    };
                    xattr(
                        name.to_vec(),
                        text_acl_to_xattr(&value).map_err(Error::corrupt)?,
                    )?;
                }
                // An empty value, the last for its key, leaves the header's field as it is.
                _ if value.is_empty() => match &key[..] {
                    b"path" => o.path = None,
                    b"linkpath" => o.link_path = None,
                    b"size" => o.size = None,
                    b"uid" => o.uid = None,
                    b"gid" => o.gid = None,
                    b"mtime" => o.mtime = None,
                    b"atime" => o.atime = None,
                    b"ctime" => o.ctime = None,
                    _ => {}
                },
                b"path" => o.path = Some(value),
                b"linkpath" => o.link_path = Some(value),
                b"size" => o.size = Some(num(&value)?),
                b"uid" => o.uid = Some(num(&value)?),
                b"gid" => o.gid = Some(num(&value)?),
                b"mtime" => o.mtime = Some(time(&value)?),
                b"atime" => o.atime = Some(time(&value)?),
                b"ctime" => o.ctime = Some(time(&value)?),
                // Names of owners are not used: numeric ids win. Charset, comments, file flags
                // and the device numbers Go does not read have no place here.
                b"uname"
                | b"gname"
                | b"hdrcharset"
                | b"comment"
                | b"charset"
                | b"SCHILY.fflags"
                | b"SCHILY.dev"
                | b"SCHILY.devmajor"
                | b"SCHILY.devminor"
                | b"SCHILY.ino"
                | b"SCHILY.nlink"
                | b"SCHILY.filetype"
                | b"LIBARCHIVE.creationtime" => {}
                _ => warnings.push(format!("PAX record {} ignored", show(&key))),
            }
        }
        if pair_values > 0 {
            o.sparse.map = Some(pairs);
        }
        Ok((o, warnings))
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
        let (o, _) = Overrides::from_records(vec![
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
        let entries = acl::parse_xattr(&v).unwrap();
        let tags: Vec<u16> = entries.iter().map(|e| e.tag).collect();
        assert_eq!(
            tags,
            [
                tag::USER_OBJ,
                tag::USER,
                tag::GROUP_OBJ,
                tag::MASK,
                tag::OTHER
            ]
        );
        assert_eq!(entries[1].id, 1000);
        assert_eq!(entries[1].perm, 5);
        assert!(text_acl_to_xattr(b"user:alice:rwx").is_err());
        assert!(text_acl_to_xattr(b"user:alice:rwx:1001").is_ok());
    }
}

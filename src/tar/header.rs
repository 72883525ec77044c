//! The 512-byte tar header block: ustar, GNU and old v7 layouts, octal and base-256 numbers.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Header formats, told apart by the magic at offset 257.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// No magic: the original Unix v7 layout.
    V7,
    /// POSIX ustar (`"ustar\0"`, any version), also used by PAX.
    Ustar,
    /// Jörg Schilling's star: ustar magic and `"tar\0"` in the last four bytes; its prefix is
    /// 131 bytes, followed by access and change times.
    Star,
    /// GNU tar (`"ustar "`, version `" \0"`).
    Gnu,
}

/// Type flags (offset 156).
pub mod typeflag {
    /// Regular file.
    pub const REG: u8 = b'0';
    /// Regular file (pre-POSIX).
    pub const AREG: u8 = b'\0';
    /// Hard link.
    pub const LINK: u8 = b'1';
    /// Symbolic link.
    pub const SYMLINK: u8 = b'2';
    /// Character device.
    pub const CHR: u8 = b'3';
    /// Block device.
    pub const BLK: u8 = b'4';
    /// Directory.
    pub const DIR: u8 = b'5';
    /// Fifo.
    pub const FIFO: u8 = b'6';
    /// Contiguous file, read as a regular file.
    pub const CONT: u8 = b'7';
    /// PAX extended header for the next entry.
    pub const PAX_LOCAL: u8 = b'x';
    /// PAX global extended header.
    pub const PAX_GLOBAL: u8 = b'g';
    /// GNU long name for the next entry.
    pub const GNU_LONGNAME: u8 = b'L';
    /// GNU long link name for the next entry.
    pub const GNU_LONGLINK: u8 = b'K';
    /// GNU sparse file.
    pub const GNU_SPARSE: u8 = b'S';
    /// GNU volume header.
    pub const GNU_VOLHDR: u8 = b'V';
    /// GNU multi-volume continuation.
    pub const GNU_MULTIVOL: u8 = b'M';
    /// GNU directory dump.
    pub const GNU_DUMPDIR: u8 = b'D';
}

/// A parsed header block.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    raw: &'a [u8; BLOCK],
    /// The format.
    pub format: Format,
}

/// Why a header block was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The stored checksum does not match the block.
    Checksum,
    /// A numeric field is not a number.
    Number(&'static str),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Checksum => {
                f.write_str("header checksum mismatch (not a tar archive, or corrupt)")
            }
            HeaderError::Number(field) => write!(f, "header field {field} is not a valid number"),
        }
    }
}

/// Bytes of a NUL-terminated (or full-width) string field.
pub fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// Parses a numeric field as Go's `archive/tar` does (what containerd, Docker and umoci read
/// layers with): the base-256 form GNU tar and Go use for values that do not fit (first byte
/// with its high bit set, bit 6 the sign), or else octal.
pub fn parse_number(field: &[u8], name: &'static str) -> Result<i64, HeaderError> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            // Big-endian two's complement; bit 6 of the first byte is the sign. Negative values
            // are read inverted (-a-1 == !a) so the accumulation stays unsigned.
            let invert = if first & 0x40 != 0 { 0xFF } else { 0x00 };
            let mut v: u64 = 0;
            for (i, &b) in field.iter().enumerate() {
                let mut c = b ^ invert;
                if i == 0 {
                    c &= 0x7F;
                }
                if v >> 56 != 0 {
                    return Err(HeaderError::Number(name));
                }
                v = (v << 8) | u64::from(c);
            }
            let v = i64::try_from(v).map_err(|_| HeaderError::Number(name))?;
            return Ok(if invert == 0xFF { !v } else { v });
        }
    }
    parse_octal(field, name)
}

/// Parses an octal field: spaces and NULs around it are ignored, and so is anything after a
/// NUL inside it; an empty field is 0. Spaces inside the digits, signs and other characters are
/// errors.
pub fn parse_octal(field: &[u8], name: &'static str) -> Result<i64, HeaderError> {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |e| e + 1);
    let digits = cstr(&field[start..end.max(start)]);
    let mut v: i64 = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return Err(HeaderError::Number(name));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(HeaderError::Number(name))?;
    }
    Ok(v)
}

impl<'a> Header<'a> {
    /// Parses a block, verifying its checksum. The caller has already ruled out a zero block.
    pub fn parse(raw: &'a [u8; BLOCK]) -> Result<Self, HeaderError> {
        let stored = parse_octal(&raw[148..156], "chksum")?;
        // The checksum counts the checksum field as eight spaces; old tars summed signed bytes.
        let unsigned: i64 = raw.iter().map(|&b| i64::from(b)).sum::<i64>()
            - raw[148..156].iter().map(|&b| i64::from(b)).sum::<i64>()
            + 8 * 32;
        let signed: i64 = raw.iter().map(|&b| i64::from(b as i8)).sum::<i64>()
            - raw[148..156]
                .iter()
                .map(|&b| i64::from(b as i8))
                .sum::<i64>()
            + 8 * 32;
        if stored != unsigned && stored != signed {
            return Err(HeaderError::Checksum);
        }
        let format = match (&raw[257..263], &raw[263..265]) {
            (b"ustar\0", _) if &raw[508..512] == b"tar\0" => Format::Star,
            (b"ustar\0", _) => Format::Ustar,
            (b"ustar ", b" \0") => Format::Gnu,
            _ => Format::V7,
        };
        Ok(Header { raw, format })
    }

    /// The type flag.
    pub fn typeflag(&self) -> u8 {
        self.raw[156]
    }

    /// The name, with the ustar (or star) prefix joined in; for GNU headers whose time fields
    /// are not numbers, with those bytes read as a prefix (see [`Header::gnu_times`]).
    pub fn name(&self) -> Vec<u8> {
        let name = cstr(&self.raw[0..100]);
        let prefix = match self.format {
            Format::Ustar => cstr(&self.raw[345..500]),
            Format::Star => cstr(&self.raw[345..476]),
            Format::Gnu => match self.gnu_times() {
                Ok(_) => &[][..],
                Err(prefix) => prefix,
            },
            Format::V7 => &[][..],
        };
        if prefix.is_empty() {
            return name.to_vec();
        }
        let mut full = prefix.to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        full
    }

    /// The link name.
    pub fn link_name(&self) -> Vec<u8> {
        cstr(&self.raw[157..257]).to_vec()
    }

    /// Permission bits and whatever else the writer put in the mode field.
    pub fn mode(&self) -> Result<i64, HeaderError> {
        parse_number(&self.raw[100..108], "mode")
    }

    /// Owner.
    pub fn uid(&self) -> Result<i64, HeaderError> {
        parse_number(&self.raw[108..116], "uid")
    }

    /// Group.
    pub fn gid(&self) -> Result<i64, HeaderError> {
        parse_number(&self.raw[116..124], "gid")
    }

    /// Bytes of data following the header.
    pub fn size(&self) -> Result<i64, HeaderError> {
        parse_number(&self.raw[124..136], "size")
    }

    /// Modification time in seconds.
    pub fn mtime(&self) -> Result<i64, HeaderError> {
        parse_number(&self.raw[136..148], "mtime")
    }

    /// Device major number.
    pub fn dev_major(&self) -> Result<i64, HeaderError> {
        if self.format == Format::V7 {
            return Ok(0);
        }
        parse_number(&self.raw[329..337], "devmajor")
    }

    /// Device minor number.
    pub fn dev_minor(&self) -> Result<i64, HeaderError> {
        if self.format == Format::V7 {
            return Ok(0);
        }
        parse_number(&self.raw[337..345], "devminor")
    }

    /// Access and change times: GNU headers carry them where ustar has its prefix (a field
    /// starting with NUL is absent), star headers after its shorter prefix.
    ///
    /// Go's writer before 1.8 put a ustar prefix into GNU headers; as Go reads them, GNU time
    /// fields that are not numbers are read as that prefix, when it is ASCII, and the times as
    /// absent. `Err` holds that prefix (empty when it is not ASCII).
    pub fn gnu_times(&self) -> Result<(Option<i64>, Option<i64>), &'a [u8]> {
        match self.format {
            Format::Gnu => {
                let time = |f: &[u8]| -> Result<Option<i64>, HeaderError> {
                    if f[0] == 0 {
                        return Ok(None);
                    }
                    parse_number(f, "atime").map(Some)
                };
                match (time(&self.raw[345..357]), time(&self.raw[357..369])) {
                    (Ok(a), Ok(c)) => Ok((a, c)),
                    _ => {
                        let prefix = cstr(&self.raw[345..500]);
                        Err(if prefix.is_ascii() { prefix } else { &[] })
                    }
                }
            }
            _ => Ok((None, None)),
        }
    }

    /// Access and change times of a star header.
    pub fn star_times(&self) -> Result<Option<(i64, i64)>, HeaderError> {
        if self.format != Format::Star {
            return Ok(None);
        }
        Ok(Some((
            parse_number(&self.raw[476..488], "atime")?,
            parse_number(&self.raw[488..500], "ctime")?,
        )))
    }

    /// The old GNU sparse map in the header.
    pub fn gnu_sparse(&self) -> Result<GnuSparse, HeaderError> {
        let mut map = Vec::new();
        for i in 0..4 {
            let at = 386 + 24 * i;
            if self.raw[at] == 0 {
                break;
            }
            map.push((
                parse_number(&self.raw[at..at + 12], "sparse offset")?,
                parse_number(&self.raw[at + 12..at + 24], "sparse numbytes")?,
            ));
        }
        let extended = self.raw[482] != 0;
        let real_size = parse_number(&self.raw[483..495], "realsize")?;
        Ok(GnuSparse {
            map,
            extended,
            real_size,
        })
    }
}

/// The sparse map of an old GNU sparse header.
pub struct GnuSparse {
    /// Up to four (offset, length) pairs.
    pub map: Vec<(i64, i64)>,
    /// Whether extension blocks with more pairs follow.
    pub extended: bool,
    /// The real file size.
    pub real_size: i64,
}

/// Parses an old GNU sparse extension block: 21 (offset, length) pairs and a continuation flag.
pub fn parse_sparse_ext(raw: &[u8; BLOCK]) -> Result<(Vec<(i64, i64)>, bool), HeaderError> {
    let mut map = Vec::new();
    for i in 0..21 {
        let at = 24 * i;
        if raw[at] == 0 {
            break;
        }
        map.push((
            parse_number(&raw[at..at + 12], "sparse offset")?,
            parse_number(&raw[at + 12..at + 24], "sparse numbytes")?,
        ));
    }
    Ok((map, raw[504] != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_numbers() {
        assert_eq!(parse_number(b"0000644\0", "m"), Ok(0o644));
        assert_eq!(parse_number(b"  755 \0\0", "m"), Ok(0o755));
        assert_eq!(parse_number(b"\0\0\0\0\0\0\0\0", "m"), Ok(0));
        assert_eq!(parse_number(b"12345670123 ", "m"), Ok(0o12345670123));
        assert!(parse_number(b"0009\0", "m").is_err());
        assert!(parse_number(b"07 7\0", "m").is_err());
        // As Go reads them: whatever follows a NUL is ignored, spaces inside are not.
        assert_eq!(parse_number(b"12\0junk\0", "m"), Ok(0o12));
        assert_eq!(parse_number(b" \0 17 \0", "m"), Ok(0o17));
        assert!(parse_number(b"+17\0", "m").is_err());
    }

    #[test]
    fn base256_numbers() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 1;
        f[10] = 2;
        assert_eq!(parse_number(&f, "size"), Ok(0x201));
        let neg = [0xFFu8; 12];
        assert_eq!(parse_number(&neg, "mtime"), Ok(-1));
        let mut too_big = [0xFFu8; 12];
        too_big[0] = 0x80;
        assert!(parse_number(&too_big, "size").is_err());
    }

    #[test]
    fn cstr_stops_at_nul() {
        assert_eq!(cstr(b"abc\0def"), b"abc");
        assert_eq!(cstr(b"abc"), b"abc");
    }
}

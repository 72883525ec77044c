//! Content digests (`sha256:<hex>`) and a reader that computes one as bytes pass through.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A sha256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Parses `sha256:<64 lowercase hex digits>`.
    pub fn parse(s: &str) -> Result<Self> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::unsupported(format!("digest {s:?} is not sha256")))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::corrupt(format!(
                "digest {s:?} is not 64 lowercase hex digits"
            )));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| Error::corrupt("bad hex"))?;
        }
        Ok(Digest(out))
    }

    /// A digest from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The hex digits alone (the file name under `blobs/sha256/`).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Passes bytes through while counting them and, when asked to, hashing them.
pub struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R> HashingReader<R> {
    /// Wraps `inner`; hashes only if `hash`.
    pub fn new(inner: R, hash: bool) -> Self {
        HashingReader {
            inner,
            hasher: hash.then(Sha256::new),
            count: 0,
        }
    }

    /// The digest (of nothing, when not hashing) and byte count of what passed so far.
    pub fn finish(self) -> (Digest, u64) {
        (
            Digest(self.hasher.unwrap_or_default().finalize().into()),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Checks a computed digest against the expected one.
pub fn verify(what: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected != actual {
        return Err(Error::new(
            crate::ErrorKind::DigestMismatch,
            format!("{what} digest mismatch: expected {expected}, got {actual}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert!(Digest::parse("sha512:abc").is_err());
        assert!(Digest::parse("sha256:ABC").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "g".repeat(64))).is_err());
    }

    #[test]
    fn hashing_reader_sees_everything() {
        let data = b"hello world".repeat(100);
        let mut r = HashingReader::new(&data[..], true);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of(&data));
    }
}

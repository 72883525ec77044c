//! Tar archives written byte by byte, header field by header field, for tests of how they are
//! read: shared by the tar reader's conformance tests inside the crate (`src/tar/conformance.rs`)
//! and the whole-build tests of `tests/tar_conformance.rs`.

#![allow(dead_code)]

/// The modification time every header gets unless told otherwise.
pub const T0: i64 = 1_700_000_000;

/// One 512-byte header block, ustar unless told otherwise; mode 0644, owner 0:0, mtime T0.
#[derive(Clone)]
pub struct H(pub [u8; 512]);

impl H {
    pub fn new(name: &[u8], typeflag: u8, size: u64) -> H {
        let mut h = H([0; 512]);
        h.0[..name.len()].copy_from_slice(name);
        h = h
            .octal(100, 8, 0o644)
            .octal(108, 8, 0)
            .octal(116, 8, 0)
            .octal(124, 12, size)
            .octal(136, 12, T0 as u64);
        h.0[156] = typeflag;
        h.0[257..265].copy_from_slice(b"ustar\x0000");
        h
    }

    /// A field of `len` bytes at `at`: octal digits and a NUL.
    pub fn octal(mut self, at: usize, len: usize, v: u64) -> H {
        let s = format!("{:0w$o}\0", v, w = len - 1);
        self.0[at..at + len].copy_from_slice(s.as_bytes());
        self
    }

    /// Raw bytes at `at`.
    pub fn put(mut self, at: usize, bytes: &[u8]) -> H {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
        self
    }

    pub fn gnu(self) -> H {
        self.put(257, b"ustar  \0")
    }

    pub fn v7(self) -> H {
        self.put(257, &[0; 8])
    }

    pub fn star(self) -> H {
        self.put(508, b"tar\0")
    }

    pub fn mode(self, m: u64) -> H {
        self.octal(100, 8, m)
    }

    pub fn owner(self, uid: u64, gid: u64) -> H {
        self.octal(108, 8, uid).octal(116, 8, gid)
    }

    pub fn mtime(self, t: u64) -> H {
        self.octal(136, 12, t)
    }

    pub fn link(self, target: &[u8]) -> H {
        self.put(157, target)
    }

    pub fn dev(self, major: u64, minor: u64) -> H {
        self.octal(329, 8, major).octal(337, 8, minor)
    }

    /// The block with its checksum (unsigned bytes, the checksum field counted as spaces).
    pub fn block(&self) -> [u8; 512] {
        let mut b = self.0;
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }
}

/// An archive being written.
#[derive(Default)]
pub struct Tar(pub Vec<u8>);

/// One PAX record, its length prefix computed.
pub fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = [b" ", key, b"=", value, b"\n"].concat();
    let mut n = body.len() + 1;
    while n.to_string().len() + body.len() != n {
        n += 1;
    }
    [n.to_string().as_bytes(), &body].concat()
}

impl Tar {
    pub fn h(&mut self, h: H) -> &mut Self {
        self.0.extend_from_slice(&h.block());
        self
    }

    /// Bytes padded to whole blocks.
    pub fn data(&mut self, d: &[u8]) -> &mut Self {
        self.0.extend_from_slice(d);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    /// A header of type `typeflag` (`x` or `g`) holding `body` as its data.
    pub fn ext(&mut self, typeflag: u8, body: &[u8]) -> &mut Self {
        self.h(H::new(b"PaxHeaders/x", typeflag, body.len() as u64))
            .data(body)
    }

    /// A PAX header of records.
    pub fn pax(&mut self, typeflag: u8, records: &[(&str, &[u8])]) -> &mut Self {
        let body: Vec<u8> = records
            .iter()
            .flat_map(|(k, v)| record(k.as_bytes(), v))
            .collect();
        self.ext(typeflag, &body)
    }

    /// A GNU long name (`L`) or link (`K`) holding exactly `name`.
    pub fn long(&mut self, typeflag: u8, name: &[u8]) -> &mut Self {
        self.h(H::new(b"././@LongLink", typeflag, name.len() as u64).gnu())
            .data(name)
    }

    /// A regular file with its content.
    pub fn file(&mut self, name: &str, content: &[u8]) -> &mut Self {
        self.h(H::new(name.as_bytes(), b'0', content.len() as u64))
            .data(content)
    }

    /// Two zero blocks.
    pub fn end(&mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        std::mem::take(&mut self.0)
    }

    /// `bytes` as they are, with no header or padding.
    pub fn raw_then(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// The bytes as they are.
    pub fn bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

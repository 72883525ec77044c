//! Writing test tars with the `tar` crate (an implementation independent of the crate's own
//! reader) while recording what the image should contain.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::model::{Kind, Model, Node};
use super::normalize_xattr;

/// Attributes of an entry.
#[derive(Clone, Debug)]
pub struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Attrs {
    pub fn new(mode: u32) -> Self {
        Attrs {
            mode,
            uid: 0,
            gid: 0,
            mtime: (1_700_000_000, 0),
            xattrs: Vec::new(),
        }
    }

    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, sec: i64, nsec: u32) -> Self {
        self.mtime = (sec, nsec);
        self
    }

    pub fn xattr(mut self, name: &[u8], value: &[u8]) -> Self {
        self.xattrs.push((name.to_vec(), value.to_vec()));
        self
    }

    /// The model node of an entry with these attributes.
    pub fn to_node(&self, kind: Kind) -> Node {
        // The kernel does not let user.* attributes of anything but files and directories be
        // read, so a mount cannot show them.
        let visible =
            |n: &[u8]| matches!(kind, Kind::File { .. } | Kind::Dir) || !n.starts_with(b"user.");
        let xattrs: BTreeMap<Vec<u8>, Vec<u8>> = self
            .xattrs
            .iter()
            .filter(|(n, _)| visible(n))
            .map(|(n, v)| (n.clone(), normalize_xattr(n, v.clone())))
            .collect();
        Node {
            kind,
            mode: self.mode & 0o7777,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            xattrs,
        }
    }
}

/// A tar being written, with its model.
pub struct TarGen<W: Write> {
    pub tar: tar::Builder<W>,
    pub model: Model,
}

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<W: Write> TarGen<W> {
    pub fn new(w: W) -> Self {
        let mut tar = tar::Builder::new(w);
        tar.mode(tar::HeaderMode::Complete);
        TarGen {
            tar,
            model: Model::new((0, 0)),
        }
    }

    fn header(
        &mut self,
        path: &[u8],
        kind: tar::EntryType,
        a: &Attrs,
        size: u64,
        link: Option<&[u8]>,
    ) -> tar::Header {
        let mut pax: Vec<(String, Vec<u8>)> = vec![
            ("mtime".into(), format_time(a.mtime).into_bytes()),
            ("uid".into(), a.uid.to_string().into_bytes()),
            ("gid".into(), a.gid.to_string().into_bytes()),
        ];
        if path.len() > 99 {
            pax.push(("path".into(), path.to_vec()));
        }
        if let Some(l) = link.filter(|l| l.len() > 99) {
            pax.push(("linkpath".into(), l.to_vec()));
        }
        for (n, v) in &a.xattrs {
            pax.push((
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(n)),
                v.clone(),
            ));
        }
        self.tar
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .unwrap();
        let mut h = tar::Header::new_ustar();
        let short: &[u8] = if path.len() > 99 {
            b"././@PaxPath"
        } else {
            path
        };
        h.as_mut_bytes()[..short.len()].copy_from_slice(short);
        h.set_entry_type(kind);
        h.set_mode(a.mode);
        h.set_uid(u64::from(a.uid.min(0o7777777)));
        h.set_gid(u64::from(a.gid.min(0o7777777)));
        h.set_mtime(a.mtime.0.max(0) as u64);
        h.set_size(size);
        if let Some(l) = link {
            let short: &[u8] = if l.len() > 99 { b"././@PaxLink" } else { l };
            h.as_mut_bytes()[157..157 + short.len()].copy_from_slice(short);
        }
        h.set_cksum();
        h
    }

    pub fn dir(&mut self, path: &str, a: Attrs) {
        let h = self.header(path.as_bytes(), tar::EntryType::Directory, &a, 0, None);
        self.tar.append(&h, &[][..]).unwrap();
        self.model.put(path.as_bytes(), a.to_node(Kind::Dir));
    }

    pub fn file(&mut self, path: &str, a: Attrs, content: &[u8]) {
        self.file_bytes(path.as_bytes(), a, content);
    }

    pub fn file_bytes(&mut self, path: &[u8], a: Attrs, content: &[u8]) {
        let h = self.header(
            path,
            tar::EntryType::Regular,
            &a,
            content.len() as u64,
            None,
        );
        self.tar.append(&h, content).unwrap();
        let sha256 = Sha256::digest(content).into();
        self.model.put(
            path,
            a.to_node(Kind::File {
                size: content.len() as u64,
                sha256,
            }),
        );
    }

    /// A file whose `size` bytes come from `data`, hashed on the way.
    pub fn file_from(&mut self, path: &str, a: Attrs, size: u64, data: impl Read) {
        let h = self.header(path.as_bytes(), tar::EntryType::Regular, &a, size, None);
        let mut r = Hashing {
            inner: data.take(size),
            hasher: Sha256::new(),
            count: 0,
        };
        self.tar.append(&h, &mut r).unwrap();
        assert_eq!(r.count, size);
        self.model.put(
            path.as_bytes(),
            a.to_node(Kind::File {
                size,
                sha256: r.hasher.finalize().into(),
            }),
        );
    }

    pub fn symlink(&mut self, path: &str, a: Attrs, target: &[u8]) {
        let h = self.header(
            path.as_bytes(),
            tar::EntryType::Symlink,
            &a,
            0,
            Some(target),
        );
        self.tar.append(&h, &[][..]).unwrap();
        self.model
            .put(path.as_bytes(), a.to_node(Kind::Symlink(target.to_vec())));
    }

    pub fn hardlink(&mut self, path: &str, target: &str) {
        let a = Attrs::new(0o644);
        let h = self.header(
            path.as_bytes(),
            tar::EntryType::Link,
            &a,
            0,
            Some(target.as_bytes()),
        );
        self.tar.append(&h, &[][..]).unwrap();
        self.model.link(path.as_bytes(), target.as_bytes());
    }

    pub fn device(&mut self, path: &str, a: Attrs, block: bool, major: u32, minor: u32) {
        let kind = if block {
            tar::EntryType::Block
        } else {
            tar::EntryType::Char
        };
        let mut h = self.header(path.as_bytes(), kind, &a, 0, None);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.tar.append(&h, &[][..]).unwrap();
        let k = if block {
            Kind::Block(major, minor)
        } else {
            Kind::Char(major, minor)
        };
        self.model.put(path.as_bytes(), a.to_node(k));
    }

    pub fn fifo(&mut self, path: &str, a: Attrs) {
        let h = self.header(path.as_bytes(), tar::EntryType::Fifo, &a, 0, None);
        self.tar.append(&h, &[][..]).unwrap();
        self.model.put(path.as_bytes(), a.to_node(Kind::Fifo));
    }

    pub fn finish(self) -> (W, Model) {
        (self.tar.into_inner().unwrap(), self.model)
    }
}

/// PAX time text: seconds and a nanosecond fraction, negative times as PAX writes them.
pub fn format_time((sec, nsec): (i64, u32)) -> String {
    if nsec == 0 {
        sec.to_string()
    } else if sec >= 0 {
        format!("{sec}.{nsec:09}")
    } else {
        // -1.25 is 1.25 s before the epoch: sec -2, nsec 750000000.
        let total = -(sec as i128 * 1_000_000_000 + i128::from(nsec));
        format!("-{}.{:09}", total / 1_000_000_000, total % 1_000_000_000)
    }
}

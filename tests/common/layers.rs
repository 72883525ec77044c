//! Multi-layer images for tests: a layer writer that records what each entry means, and an
//! independent model of OCI layer application written from the specification: a layer's
//! whiteouts apply to the layers below it, then its entries are applied in order.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::model::{norm, Kind, Model, Node, Tree};
use super::tars::{format_time, Attrs};

/// What one tar entry of a layer means.
#[derive(Clone, Debug)]
pub enum Op {
    Put(Vec<u8>, Node),
    Link(Vec<u8>, Vec<u8>),
    Whiteout(Vec<u8>),
    Opaque(Vec<u8>),
    /// A name in the whiteout namespace that means nothing (`.wh..wh.plnk`).
    Ignored,
}

/// One layer being written.
pub struct LayerGen {
    tar: tar::Builder<Vec<u8>>,
    pub ops: Vec<Op>,
}

impl Default for LayerGen {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerGen {
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Complete);
        LayerGen {
            tar,
            ops: Vec::new(),
        }
    }

    fn append(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        a: &Attrs,
        data: &[u8],
        link: Option<&str>,
        dev: Option<(u32, u32)>,
    ) {
        let mut pax: Vec<(String, Vec<u8>)> = vec![
            ("mtime".into(), format_time(a.mtime).into_bytes()),
            ("uid".into(), a.uid.to_string().into_bytes()),
            ("gid".into(), a.gid.to_string().into_bytes()),
            ("path".into(), path.as_bytes().to_vec()),
        ];
        if let Some(l) = link {
            pax.push(("linkpath".into(), l.as_bytes().to_vec()));
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
        h.as_mut_bytes()[..8].copy_from_slice(b"pax-name");
        h.set_entry_type(kind);
        h.set_mode(a.mode);
        h.set_mtime(a.mtime.0.max(0) as u64);
        h.set_size(data.len() as u64);
        if let Some((major, minor)) = dev {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_cksum();
        self.tar.append(&h, data).unwrap();
    }

    pub fn dir(&mut self, path: &str, a: Attrs) -> &mut Self {
        self.append(path, tar::EntryType::Directory, &a, b"", None, None);
        self.ops.push(Op::Put(path.into(), a.to_node(Kind::Dir)));
        self
    }

    pub fn file(&mut self, path: &str, a: Attrs, data: &[u8]) -> &mut Self {
        self.append(path, tar::EntryType::Regular, &a, data, None, None);
        let kind = Kind::File {
            size: data.len() as u64,
            sha256: Sha256::digest(data).into(),
        };
        self.ops.push(Op::Put(path.into(), a.to_node(kind)));
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let a = Attrs::new(0o777);
        self.append(path, tar::EntryType::Symlink, &a, b"", Some(target), None);
        self.ops.push(Op::Put(
            path.into(),
            a.to_node(Kind::Symlink(target.into())),
        ));
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.append(
            path,
            tar::EntryType::Link,
            &Attrs::new(0o644),
            b"",
            Some(target),
            None,
        );
        self.ops.push(Op::Link(path.into(), target.into()));
        self
    }

    pub fn device(&mut self, path: &str, a: Attrs, major: u32, minor: u32) -> &mut Self {
        self.append(
            path,
            tar::EntryType::Char,
            &a,
            b"",
            None,
            Some((major, minor)),
        );
        self.ops
            .push(Op::Put(path.into(), a.to_node(Kind::Char(major, minor))));
        self
    }

    pub fn fifo(&mut self, path: &str, a: Attrs) -> &mut Self {
        self.append(path, tar::EntryType::Fifo, &a, b"", None, None);
        self.ops.push(Op::Put(path.into(), a.to_node(Kind::Fifo)));
        self
    }

    /// `.wh.NAME` for `path`.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        self.append(
            &format!("{dir}.wh.{name}"),
            tar::EntryType::Regular,
            &Attrs::new(0o644),
            b"",
            None,
            None,
        );
        self.ops.push(Op::Whiteout(path.into()));
        self
    }

    /// `.wh..wh..opq` in `dir`.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.append(
            &format!("{dir}/.wh..wh..opq"),
            tar::EntryType::Regular,
            &Attrs::new(0o644),
            b"",
            None,
            None,
        );
        self.ops.push(Op::Opaque(dir.into()));
        self
    }

    /// An entry with a raw name and no meaning in the model.
    pub fn raw(&mut self, path: &str) -> &mut Self {
        self.append(
            path,
            tar::EntryType::Regular,
            &Attrs::new(0o644),
            b"",
            None,
            None,
        );
        self.ops.push(Op::Ignored);
        self
    }

    pub fn finish(self) -> (Vec<u8>, Vec<Op>) {
        (self.tar.into_inner().unwrap(), self.ops)
    }
}

/// Applies layers as the specification says, independently of the crate.
pub fn expected(layers: &[Vec<Op>]) -> Tree {
    let mut m = Model::new((0, 0));
    for ops in layers {
        // Whiteouts act on the layers below, whatever their place in this layer.
        for op in ops {
            match op {
                Op::Whiteout(p) => m.remove(&norm(p)),
                Op::Opaque(d) => {
                    let mut prefix = norm(d);
                    prefix.push(b'/');
                    m.tree.paths.retain(|p, _| !p.starts_with(&prefix));
                }
                _ => {}
            }
        }
        // Links to a target that comes later in the layer are made at its end.
        let mut later = Vec::new();
        for op in ops {
            match op {
                Op::Put(p, n) => m.put(p, n.clone()),
                Op::Link(p, t) if m.tree.paths.contains_key(&norm(t)) => m.link(p, t),
                Op::Link(p, t) => later.push((p, t)),
                Op::Opaque(d) if !m.tree.paths.contains_key(&norm(d)) => {
                    m.put(d, Node::dir(0o755, 0, 0, (0, 0)));
                }
                _ => {}
            }
        }
        for (p, t) in later {
            m.link(p, t);
        }
    }
    m.tree
}

/// gzip-compresses a layer.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// zstd-compresses a layer.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Builds an image from layer blobs (any compression), each written to `NAME-layerI` in `dir`
/// and applied in order with default options; the image path (`NAME.ext4`) or the error.
pub fn build_layers(
    dir: &tempfile::TempDir,
    name: &str,
    blobs: &[Vec<u8>],
) -> Result<std::path::PathBuf, oci2ext4::Error> {
    use oci2ext4::layer::{apply_layers, NoProgress};
    let mut inputs = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        let p = dir.path().join(format!("{name}-layer{i}"));
        std::fs::write(&p, blob).unwrap();
        inputs.push(oci2ext4::source::file_layer(&p));
    }
    let image = dir.path().join(format!("{name}.ext4"));
    let mut b = oci2ext4::ImageBuilder::create(&image, oci2ext4::BuildOptions::default())?;
    apply_layers(&mut b, inputs, &mut NoProgress)?;
    b.finish()?;
    Ok(image)
}

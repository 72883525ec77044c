//! Where layers come from: OCI image layouts, `docker save` archives, root filesystem tars,
//! loose layer files and host directories; compressed or not, with their digests checked.

pub mod compression;
pub mod digest;
pub mod directory;
pub mod docker;
pub mod oci;
pub mod stream;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layer::LayerInput;

/// What to build from.
pub enum Plan {
    /// Layers to apply in order.
    Layers {
        /// The layers.
        layers: Vec<LayerInput>,
        /// The image's digest (manifest, or config for `docker save` archives), when known.
        image_digest: Option<String>,
    },
    /// A host directory.
    Directory {
        /// The directory.
        path: PathBuf,
        /// Owner to force on every entry.
        owner: Option<(u32, u32)>,
    },
}

/// A layer read from a file (any compression).
pub fn file_layer(path: &Path) -> LayerInput {
    let p = path.to_path_buf();
    // Only a regular file has a size; a pipe (`/dev/stdin`) is read once, as it comes.
    let size = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    LayerInput {
        name: path.display().to_string(),
        open: std::sync::Arc::new(move || {
            let f =
                File::open(&p).map_err(|e| Error::io(format!("cannot open {}", p.display()), e))?;
            Ok(Box::new(f) as Box<dyn Read + Send>)
        }),
        blob_digest: None,
        diff_id: None,
        size,
        expanded_size: compression::expanded_size_of(path),
        report_digests: false,
        blob_verified: false,
        file: size.is_some().then(|| path.to_path_buf()),
    }
}

/// An estimate of the bytes of uncompressed tar `layers` hold, for choosing a block size before
/// any layer is read: each layer's `expanded_size`, or else its blob size times
/// [`compression::TYPICAL_RATIO`]; a layer of unknown size (a pipe) counts nothing.
pub fn estimate_tar_bytes(layers: &[LayerInput]) -> u64 {
    layers
        .iter()
        .map(|l| {
            l.expanded_size.unwrap_or_else(|| {
                l.size
                    .unwrap_or(0)
                    .saturating_mul(compression::TYPICAL_RATIO)
            })
        })
        .fold(0u64, u64::saturating_add)
}

/// Parses `UID:GID`.
pub fn parse_owner(s: &str) -> Result<(u32, u32)> {
    let (u, g) = s
        .split_once(':')
        .ok_or_else(|| Error::invalid(format!("owner {s:?} is not UID:GID")))?;
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| Error::invalid(format!("owner {s:?} is not UID:GID")))
    };
    Ok((num(u)?, num(g)?))
}

/// What kind of file `path` is, from its first bytes and, for a plain tar, its member names.
enum FileKind {
    DockerArchive,
    Tar,
}

fn file_kind(path: &Path) -> Result<FileKind> {
    let file =
        File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let mut r = BufReader::new(file);
    let compression = compression::detect(&mut r)?;
    if compression != compression::Compression::None {
        return Ok(FileKind::Tar);
    }
    // `docker save` starts with a layer directory, a blob or one of its index files; a root
    // filesystem tar does not. Only a likely archive is indexed in full.
    let first = crate::tar::TarReader::new(r).next_entry().ok().flatten();
    if !first.is_some_and(|e| docker::looks_like_archive_member(&e.path)) {
        return Ok(FileKind::Tar);
    }
    let archive = docker::Archive::open(path)?;
    Ok(if archive.is_docker_archive() {
        FileKind::DockerArchive
    } else {
        FileKind::Tar
    })
}

/// Splits `PATH:REF` or `PATH@sha256:…` into an existing path and a reference. A reference may
/// itself hold colons (`archive.tar:alpine:3.20`), so the first split whose path exists wins.
fn split_reference(source: &str, exists: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
    if let Some(at) = source.find("@sha256:") {
        return Some((&source[..at], &source[at + 1..])).filter(|(p, _)| exists(p));
    }
    source
        .match_indices(':')
        .map(|(i, _)| (&source[..i], &source[i + 1..]))
        .find(|(path, r)| !path.is_empty() && !r.is_empty() && !r.contains('/') && exists(path))
}

/// Decides how to read `source`, or the `layers` given instead.
pub fn plan(
    source: Option<&str>,
    layers: &[PathBuf],
    platform: &str,
    owner: Option<&str>,
) -> Result<Plan> {
    let owner = owner.map(parse_owner).transpose()?;
    if !layers.is_empty() {
        if source.is_some() {
            return Err(Error::invalid(
                "give either a SOURCE or --layer files, not both",
            ));
        }
        return Ok(Plan::Layers {
            layers: layers.iter().map(|p| file_layer(p)).collect(),
            image_digest: None,
        });
    }
    let source =
        source.ok_or_else(|| Error::invalid("nothing to build: give a SOURCE or --layer files"))?;
    let platform = oci::Platform::parse(platform)?;
    let (path, reference) = if Path::new(source).exists() {
        (Path::new(source), None)
    } else {
        match split_reference(source, |p| Path::new(p).exists()) {
            Some((p, r)) => (Path::new(p), Some(r)),
            None => {
                return Err(Error::invalid(format!(
                    "{source}: no such file or directory"
                )))
            }
        }
    };
    let with_source = |e: Error| e.with_source(path.display());
    if path.is_dir() {
        if path.join("oci-layout").exists() {
            let image = oci::Layout::open(path)
                .and_then(|l| l.image(reference, &platform))
                .map_err(with_source)?;
            return Ok(Plan::Layers {
                layers: image.layers,
                image_digest: Some(image.manifest_digest),
            });
        }
        if reference.is_some() {
            return Err(Error::invalid(format!(
                "{} is a plain directory; it has no tags",
                path.display()
            )));
        }
        return Ok(Plan::Directory {
            path: path.to_path_buf(),
            owner,
        });
    }
    match file_kind(path).map_err(with_source)? {
        FileKind::DockerArchive => {
            let image = docker::Archive::open(path)
                .and_then(|a| a.image(reference))
                .map_err(with_source)?;
            Ok(Plan::Layers {
                layers: image.layers,
                image_digest: Some(image.manifest_digest),
            })
        }
        FileKind::Tar => {
            if reference.is_some() {
                return Err(Error::invalid(format!(
                    "{} is a root filesystem tar; it has no tags",
                    path.display()
                )));
            }
            Ok(Plan::Layers {
                layers: vec![file_layer(path)],
                image_digest: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        let all = |_: &str| true;
        assert_eq!(split_reference("img:latest", all), Some(("img", "latest")));
        assert_eq!(
            split_reference("dir/img@sha256:abc", all),
            Some(("dir/img", "sha256:abc"))
        );
        assert_eq!(split_reference("./a:b/c", all), None);
        assert_eq!(split_reference(":x", all), None);
        let only = |p: &str| p == "a.tar";
        assert_eq!(
            split_reference("a.tar:alpine:3.20", only),
            Some(("a.tar", "alpine:3.20"))
        );
        assert_eq!(split_reference("b.tar:alpine:3.20", only), None);
        assert!(parse_owner("1000:100").is_ok());
        assert!(parse_owner("1000").is_err());
    }
}

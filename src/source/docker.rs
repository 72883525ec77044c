//! `docker save` archives: a tar holding `manifest.json`, the image config and one tar per
//! layer (older Docker: `<id>/layer.tar`; Docker 25 and later: an OCI layout's
//! `blobs/sha256/<hex>`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::digest::{verify, Digest};
use super::oci::{parse_json, Image, Platform, MAX_DOCUMENT};
use crate::error::{Error, Result};
use crate::layer::LayerInput;
use crate::tar::{EntryKind, TarReader};

/// One image in `manifest.json`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveManifest {
    /// Path of the config in the archive.
    pub config: String,
    /// Tags of the image.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars in the archive, lowest first.
    pub layers: Vec<String>,
}

/// An indexed `docker save` archive.
pub struct Archive {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

fn clean(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    s.trim_start_matches("./").trim_end_matches('/').to_string()
}

/// Whether a tar member name is one `docker save` writes first: a layer directory
/// (`<64 hex digits>/...`), a blob, a config (`<64 hex digits>.json`) or an index file.
pub fn looks_like_archive_member(name: &[u8]) -> bool {
    let name = clean(name);
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let first = name.split('/').next().unwrap_or("");
    hex64(first)
        || first == "blobs"
        || name.strip_suffix(".json").is_some_and(hex64)
        || matches!(
            name.as_str(),
            "manifest.json" | "repositories" | "oci-layout" | "index.json"
        )
}

/// The digest a member's name states: `blobs/sha256/<hex>` or `<hex>.json`.
fn named_digest(name: &str) -> Option<Digest> {
    let hex = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix(".json"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

impl Archive {
    /// Indexes the archive's members (reading headers only, seeking over data).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let mut tar = TarReader::new(BufReader::with_capacity(64 << 10, file));
        let mut members = HashMap::new();
        while let Some(entry) = tar.next_entry()? {
            if entry.kind == EntryKind::File {
                members.insert(clean(&entry.path), (tar.data_offset(), entry.data_size));
            }
            tar.seek_past_data()?;
        }
        Ok(Archive {
            path: path.to_path_buf(),
            members,
        })
    }

    /// Whether the archive looks like `docker save` output.
    pub fn is_docker_archive(&self) -> bool {
        self.members.contains_key("manifest.json")
    }

    /// Reads a small member whole.
    fn read_member(&self, name: &str) -> Result<Vec<u8>> {
        let &(offset, size) = self
            .members
            .get(name)
            .ok_or_else(|| Error::corrupt(format!("the archive has no member {name:?}")))?;
        if size > MAX_DOCUMENT {
            return Err(Error::limit(format!(
                "{name} of {size} bytes is larger than {MAX_DOCUMENT}"
            )));
        }
        let mut f = File::open(&self.path).map_err(|e| Error::io("cannot open the archive", e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("cannot seek in the archive", e))?;
        let mut data = Vec::with_capacity(size as usize);
        f.take(size)
            .read_to_end(&mut data)
            .map_err(|e| Error::io("cannot read the archive", e))?;
        if data.len() as u64 != size {
            return Err(Error::corrupt(format!("the archive ends inside {name}")));
        }
        Ok(data)
    }

    /// The image `reference` names (a tag such as `alpine:3.20` or `3.20`), or the only one.
    pub fn image(&self, reference: Option<&str>) -> Result<Image> {
        let manifests: Vec<ArchiveManifest> =
            parse_json("manifest.json", &self.read_member("manifest.json")?)?;
        let tags = |m: &ArchiveManifest| m.repo_tags.clone().unwrap_or_default();
        let m = match reference {
            Some(r) => manifests
                .iter()
                .find(|m| {
                    tags(m)
                        .iter()
                        .any(|t| t == r || t.rsplit_once(':').is_some_and(|(_, tag)| tag == r))
                })
                .ok_or_else(|| Error::invalid(format!("no image tagged {r:?} in the archive")))?,
            None => match manifests.as_slice() {
                [one] => one,
                [] => return Err(Error::corrupt("manifest.json lists no images")),
                many => {
                    let all: Vec<String> = many.iter().flat_map(tags).collect();
                    return Err(Error::invalid(format!(
                        "the archive holds {} images; pick one with FILE:TAG ({})",
                        many.len(),
                        all.join(", ")
                    )));
                }
            },
        };
        let config_data = self.read_member(&m.config)?;
        if let Some(d) = named_digest(&m.config) {
            verify("config", &d, &Digest::of(&config_data))?;
        }
        let config: super::oci::Config = parse_json("image config", &config_data)?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(Error::corrupt(format!(
                "manifest.json lists {} layers but the config {} diff_ids",
                m.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let total = m.layers.len();
        let mut layers = Vec::with_capacity(total);
        for (i, (name, diff_id)) in m.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
            let &(offset, size) = self
                .members
                .get(name.as_str())
                .ok_or_else(|| Error::corrupt(format!("the archive has no layer {name:?}")))?;
            let path = self.path.clone();
            let expanded_size = File::open(&path)
                .ok()
                .and_then(|f| super::compression::expanded_size_at(&f, offset, size));
            layers.push(LayerInput {
                name: format!("layer {}/{total} ({name})", i + 1),
                open: std::sync::Arc::new(move || {
                    let mut f =
                        File::open(&path).map_err(|e| Error::io("cannot open the archive", e))?;
                    f.seek(SeekFrom::Start(offset))
                        .map_err(|e| Error::io("cannot seek in the archive", e))?;
                    Ok(Box::new(f.take(size)) as Box<dyn Read + Send>)
                }),
                blob_digest: named_digest(name),
                diff_id: Some(Digest::parse(diff_id)?),
                size: Some(size),
                expanded_size,
                report_digests: false,
                blob_verified: false,
                file: None,
            });
        }
        Ok(Image {
            manifest_digest: format!("{}", Digest::of(&config_data)),
            layers,
            platform: Platform {
                os: config.os,
                architecture: config.architecture,
                variant: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_members_are_recognised() {
        let hex = "a".repeat(64);
        assert!(looks_like_archive_member(
            format!("{hex}/layer.tar").as_bytes()
        ));
        assert!(looks_like_archive_member(format!("{hex}/").as_bytes()));
        assert!(looks_like_archive_member(format!("{hex}.json").as_bytes()));
        assert!(looks_like_archive_member(b"blobs/sha256/abc"));
        assert!(looks_like_archive_member(b"./manifest.json"));
        assert!(looks_like_archive_member(b"oci-layout"));
        assert!(!looks_like_archive_member(b"./"));
        assert!(!looks_like_archive_member(b"bin/sh"));
        assert!(!looks_like_archive_member(b"etc/"));
    }
}

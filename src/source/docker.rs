//! `docker save` archives: a tar holding `manifest.json`, the image config and one tar per
//! layer (older Docker: `<id>/layer.tar`; Docker 25 and later: an OCI layout's
//! `blobs/sha256/<hex>`).

use std::sync::Arc;

use serde::Deserialize;

use super::archive::{normalize, TarIndex};
use super::oci::Image;
use crate::blob::digest::{verify, Digest};
use crate::error::{Error, Result};
use crate::layer::LayerInput;
use crate::oci::{parse_json, Platform};

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
    index: Arc<TarIndex>,
}

/// The digest a member's name states: `blobs/sha256/<hex>`, `<hex>.json` or `<hex>.tar`.
fn named_digest(name: &str) -> Option<Digest> {
    let name = normalize(name);
    let hex = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix(".json"))
        .or_else(|| name.strip_suffix(".tar"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

impl Archive {
    /// The archive read from an index made already.
    pub fn from_index(index: Arc<TarIndex>) -> Self {
        Archive { index }
    }

    /// The image `reference` names (a tag such as `alpine:3.20` or `3.20`), or the only one.
    pub fn image(&self, reference: Option<&str>) -> Result<Image> {
        let manifests: Vec<ArchiveManifest> =
            parse_json("manifest.json", &self.index.read_small("manifest.json")?)?;
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
        let config_data = self.index.read_small(&m.config)?;
        if let Some(d) = named_digest(&m.config) {
            verify("config", &d, &Digest::of(&config_data))?;
        }
        let config: crate::oci::Config = parse_json("image config", &config_data)?;
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
            let layer_name = format!("layer {}/{total} ({name})", i + 1);
            let (open, size, expanded_size) = self
                .index
                .member(name)
                .map_err(|e| e.with_layer(&layer_name))?;
            let mut input = LayerInput::from_opener(layer_name, open)
                .with_diff_id(Digest::parse(diff_id)?)
                .with_size(size);
            input.blob_digest = named_digest(name);
            input.expanded_size = expanded_size;
            layers.push(input);
        }
        Ok(Image {
            manifest_digest: format!("{}", Digest::of(&config_data)),
            layers,
            platform: Platform::of_config(&config),
            from_index: false,
        })
    }
}

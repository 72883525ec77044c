//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`), read from a directory or
//! in place from a tar, and the step from an image's documents to its layer inputs.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::archive::TarIndex;
use crate::blob::digest::{verify, Digest};
use crate::blob::stream::Opener;
use crate::error::{Error, ErrorKind, Result};
use crate::layer::LayerInput;
use crate::oci::{
    check_layer_media_type, check_manifest_media_type, layer_name, parse_document, parse_json,
    select_platform, select_reference, Config, Descriptor, Document, Index, Manifest, Platform,
    MAX_DOCUMENT,
};

/// Where a layout's files are: a directory, or the members of a tar (an OCI archive).
enum Store {
    Dir(PathBuf),
    Tar(Arc<TarIndex>),
}

/// An OCI image layout: a directory, or a tar of one (an OCI archive) read in place.
pub struct Layout {
    store: Store,
}

/// Checks an `oci-layout` file's version.
fn check_marker(marker: &[u8]) -> Result<()> {
    #[derive(Deserialize)]
    struct Marker {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let m: Marker = parse_json("oci-layout", marker)?;
    if !m.version.starts_with("1.") {
        return Err(Error::unsupported(format!(
            "image layout version {:?} is not supported",
            m.version
        )));
    }
    Ok(())
}

impl Layout {
    /// Opens a layout directory, checking `oci-layout`.
    pub fn open(dir: &Path) -> Result<Self> {
        let marker = std::fs::read(dir.join("oci-layout")).map_err(|e| {
            Error::io(
                format!(
                    "{} is not an OCI image layout (no oci-layout file)",
                    dir.display()
                ),
                e,
            )
        })?;
        check_marker(&marker)?;
        Ok(Layout {
            store: Store::Dir(dir.to_path_buf()),
        })
    }

    /// The layout in an indexed tar (an OCI archive), checking `oci-layout`; blobs are read
    /// from the tar where they lie.
    pub fn from_archive(index: Arc<TarIndex>) -> Result<Self> {
        check_marker(&index.read_small("oci-layout")?)?;
        Ok(Layout {
            store: Store::Tar(index),
        })
    }

    /// The path of a blob in a layout directory.
    fn blob_name(digest: &Digest) -> String {
        format!("blobs/sha256/{}", digest.hex())
    }

    /// Reads a small file of the layout whole (at most [`MAX_DOCUMENT`] and one byte).
    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        match &self.store {
            Store::Dir(dir) => {
                let path = dir.join(name);
                let file = File::open(&path)
                    .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
                let mut data = Vec::new();
                file.take(MAX_DOCUMENT + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
                if data.len() as u64 > MAX_DOCUMENT {
                    return Err(Error::limit(format!(
                        "{} is larger than {MAX_DOCUMENT} bytes",
                        path.display()
                    )));
                }
                Ok(data)
            }
            Store::Tar(index) => index.read_small(name),
        }
    }

    /// Reads a small blob whole, checking its size and digest.
    pub fn read_document(&self, what: &str, desc: &Descriptor) -> Result<Vec<u8>> {
        let digest = Digest::parse(&desc.digest)?;
        if desc.size > MAX_DOCUMENT {
            return Err(Error::limit(format!(
                "{what} {} of {} bytes is larger than {MAX_DOCUMENT}",
                desc.digest, desc.size
            )));
        }
        let data = self.read_small(&Self::blob_name(&digest))?;
        if desc.size != 0 && data.len() as u64 != desc.size {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!(
                    "{what} {} has {} bytes, the descriptor says {}",
                    desc.digest,
                    data.len(),
                    desc.size
                ),
            ));
        }
        verify(what, &digest, &Digest::of(&data))?;
        Ok(data)
    }

    /// `index.json`.
    pub fn index(&self) -> Result<Index> {
        parse_json("index.json", &self.read_small("index.json")?)
    }

    /// A layer input for the blob `d` describes (name and `diff_id` left for the caller).
    fn layer(&self, d: &Descriptor) -> Result<LayerInput> {
        let digest = Digest::parse(&d.digest)?;
        let name = Self::blob_name(&digest);
        let (open, expanded_size): (Opener, _) = match &self.store {
            Store::Dir(dir) => {
                let path = dir.join(&name);
                let open_path = path.clone();
                let open: Opener = Arc::new(move || {
                    let f = File::open(&open_path).map_err(|e| {
                        Error::io(format!("cannot open {}", open_path.display()), e)
                    })?;
                    Ok(Box::new(f) as Box<dyn Read + Send>)
                });
                (open, crate::blob::compression::expanded_size_of(&path))
            }
            Store::Tar(index) => {
                let (open, _, expanded) = index.member(&name)?;
                (open, expanded)
            }
        };
        let mut input = LayerInput::from_opener(format!("layer {}", &d.digest), open)
            .with_blob_digest(digest)
            .with_size(d.size);
        input.expanded_size = expanded_size;
        Ok(input)
    }

    /// Resolves `reference` (a tag, a `sha256:` digest, or nothing when there is one image) and
    /// `platform` to the image's layers.
    pub fn image(&self, reference: Option<&str>, platform: &Platform) -> Result<Image> {
        let index = self.index()?;
        let desc = select_reference(&index, reference)?;
        resolve(
            desc.clone(),
            platform,
            |what, d| self.read_document(what, d),
            |d| self.layer(d),
        )
    }
}

/// An image ready to apply.
pub struct Image {
    /// Digest of the image manifest.
    pub manifest_digest: String,
    /// The layers, lowest first, with their `diff_id`s set.
    pub layers: Vec<LayerInput>,
    /// The platform: the one picked from an image index, or else the config's.
    pub platform: Platform,
    /// Whether the platform was picked from an image index.
    pub from_index: bool,
}

/// Checks a manifest against its config and makes one layer input per layer, lowest first,
/// with names (`layer 2/3 (sha256:0123456789ab)`) and `diff_id`s set. `layer` makes the input
/// for a layer descriptor; it may leave the name and `diff_id` empty.
pub fn image_layers(
    manifest: &Manifest,
    config: &Config,
    mut layer: impl FnMut(&Descriptor) -> Result<LayerInput>,
) -> Result<Vec<LayerInput>> {
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(Error::corrupt(format!(
            "the manifest lists {} layers but the config {} diff_ids",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    let total = manifest.layers.len();
    for (i, (d, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let name = layer_name(i, total, &d.digest);
        check_layer_media_type(&d.media_type).map_err(|e| e.with_layer(&name))?;
        let mut input = layer(d).map_err(|e| e.with_layer(&name))?;
        input.name = name;
        input.diff_id = Some(Digest::parse(diff_id)?);
        layers.push(input);
    }
    Ok(layers)
}

/// Follows a descriptor through indexes to a manifest, reads the config, and makes the layer
/// inputs with their `diff_id`s. `read` fetches and verifies documents; `layer` makes a layer
/// input from a layer descriptor.
pub fn resolve(
    mut desc: Descriptor,
    platform: &Platform,
    mut read: impl FnMut(&str, &Descriptor) -> Result<Vec<u8>>,
    layer: impl FnMut(&Descriptor) -> Result<LayerInput>,
) -> Result<Image> {
    let mut picked = None;
    // Nested indexes are allowed, a few levels deep.
    for _ in 0..4 {
        check_manifest_media_type(&desc.media_type)?;
        let data = read("manifest", &desc)?;
        let manifest = match parse_document(&desc.media_type, &data)? {
            Document::Index(index) => {
                desc = select_platform(&index, platform)?.clone();
                picked = desc.platform.clone();
                continue;
            }
            Document::Manifest(m) => m,
        };
        let config_data = read("config", &manifest.config)?;
        let config: Config = parse_json("image config", &config_data)?;
        let layers = image_layers(&manifest, &config, layer)?;
        return Ok(Image {
            manifest_digest: desc.digest.clone(),
            layers,
            from_index: picked.is_some(),
            platform: picked.unwrap_or_else(|| Platform::of_config(&config)),
        });
    }
    Err(Error::corrupt("image indexes nested more than four deep"))
}

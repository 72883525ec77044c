//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`) and the JSON documents of
//! images: indexes, manifests (OCI and Docker v2 schema 2) and configs.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::archive::TarIndex;
use crate::blob::digest::{verify, Digest};
use crate::blob::stream::Opener;
use crate::error::{Error, ErrorKind, Result};
use crate::layer::LayerInput;

/// Largest manifest, index or config read (registries use the same bound).
pub const MAX_DOCUMENT: u64 = 4 << 20;

/// Media types of image documents and layers.
pub mod media {
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker image manifest, schema 1 (unsigned).
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// Docker image manifest, schema 1 (signed).
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
}

/// A content descriptor.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Platform, in indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl Descriptor {
    /// A descriptor of `digest` with nothing else known.
    pub fn of_digest(digest: impl Into<String>) -> Self {
        Descriptor {
            media_type: String::new(),
            digest: digest.into(),
            size: 0,
            platform: None,
            annotations: HashMap::new(),
        }
    }
}

/// An image platform.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Platform {
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.into(),
                    architecture: arch.into(),
                    variant: Some(variant.into()),
                })
            }
            _ => Err(Error::invalid(format!(
                "platform {s:?} is not os/arch[/variant]"
            ))),
        }
    }

    /// Whether an index entry's platform satisfies this wanted one. A wanted variant must
    /// match; without one, any variant does, except that arm64 prefers v8 and arm v7 (as the
    /// default variants), which the caller handles by ranking.
    pub fn matches(&self, offered: &Platform) -> bool {
        let norm = |v: &Option<String>, arch: &str| match (v.as_deref(), arch) {
            (None | Some(""), "arm64") => Some("v8".to_string()),
            (None | Some(""), _) => None,
            (Some(v), _) => Some(v.to_string()),
        };
        self.os == offered.os
            && self.architecture == offered.architecture
            && (self.variant.is_none()
                || norm(&self.variant, &self.architecture)
                    == norm(&offered.variant, &offered.architecture))
    }
}

impl Platform {
    /// The platform an image config states.
    pub fn of_config(config: &Config) -> Self {
        Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// The host's platform, as Docker and Podman name it (`linux/amd64`, `linux/arm64/v8`):
    /// the one to pull by default, since a microVM runs its host's architecture.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image index or manifest list.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Schema version (2).
    #[serde(default)]
    pub schema_version: u32,
    /// Media type, if stated.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Schema version (2).
    #[serde(default)]
    pub schema_version: u32,
    /// Media type, if stated.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, lowest first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config used here.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// CPU variant, if stated.
    #[serde(default)]
    pub variant: Option<String>,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// One `diff_id` per layer.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// Parses a JSON document, naming it in errors.
pub fn parse_json<'a, T: Deserialize<'a>>(what: &str, data: &'a [u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::corrupt(format!("{what} is not valid: {e}")))
}

/// Whether a layer media type is acceptable; an error names the ones that are not.
pub fn check_layer_media_type(media_type: &str) -> Result<()> {
    const LAYERS: [&str; 10] = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
    ];
    if LAYERS.contains(&media_type) {
        return Ok(());
    }
    if media_type.contains("encrypted") {
        return Err(Error::unsupported(format!(
            "encrypted layer media type {media_type:?} is not supported"
        )));
    }
    Err(Error::unsupported(format!(
        "layer media type {media_type:?} is not a filesystem layer"
    )))
}

/// Rejects manifest media types that are not image manifests or indexes, by name.
pub fn check_manifest_media_type(media_type: &str) -> Result<()> {
    match media_type {
        media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED => Err(Error::unsupported(format!(
            "Docker image manifest schema 1 ({media_type}) is not supported"
        ))),
        ""
        | media::OCI_INDEX
        | media::OCI_MANIFEST
        | media::DOCKER_LIST
        | media::DOCKER_MANIFEST => Ok(()),
        other => Err(Error::unsupported(format!(
            "manifest media type {other:?} is not an image"
        ))),
    }
}

/// Tells an index from a manifest when the media type is missing: indexes have `manifests`.
pub fn is_index(media_type: &str, data: &[u8]) -> Result<bool> {
    match media_type {
        media::OCI_INDEX | media::DOCKER_LIST => Ok(true),
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => Ok(false),
        _ => {
            #[derive(Deserialize)]
            struct Probe {
                #[serde(rename = "mediaType", default)]
                media_type: Option<String>,
                manifests: Option<serde_json::Value>,
                #[serde(rename = "schemaVersion", default)]
                schema_version: u32,
            }
            let p: Probe = parse_json("manifest", data)?;
            if p.schema_version == 1 {
                return Err(Error::unsupported(
                    "Docker image manifest schema 1 is not supported",
                ));
            }
            if let Some(mt) = &p.media_type {
                check_manifest_media_type(mt)?;
                if mt == media::OCI_INDEX || mt == media::DOCKER_LIST {
                    return Ok(true);
                }
            }
            Ok(p.manifests.is_some())
        }
    }
}

/// Picks the manifest for `want` from an index; the error lists what the index offers.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .collect();
    // Prefer an exact variant match, then the default variant, then any.
    let rank = |d: &&Descriptor| {
        let v = d.platform.as_ref().and_then(|p| p.variant.clone());
        match (&want.variant, v.as_deref()) {
            (Some(w), Some(v)) if w == v => 0,
            (None, None) => 0,
            (None, Some("v8")) if want.architecture == "arm64" => 0,
            (None, Some("v7")) if want.architecture == "arm" => 0,
            _ => 1,
        }
    };
    if let Some(best) = candidates.into_iter().min_by_key(rank) {
        return Ok(best);
    }
    let offered: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(ToString::to_string)
        .collect();
    Err(Error::invalid(format!(
        "the image index has no manifest for {want}; it offers: {}",
        if offered.is_empty() {
            "no platforms".to_string()
        } else {
            offered.join(", ")
        }
    )))
}

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
        Ok(LayerInput {
            name: format!("layer {}", &d.digest),
            open,
            blob_digest: Some(digest),
            diff_id: None,
            size: Some(d.size),
            expanded_size,
            report_digests: false,
            blob_verified: false,
            file: None,
        })
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

/// The reference names of a descriptor in `index.json`.
fn ref_names(d: &Descriptor) -> Vec<&str> {
    let mut v = Vec::new();
    if let Some(n) = d.annotations.get("org.opencontainers.image.ref.name") {
        v.push(n.as_str());
    }
    if let Some(n) = d.annotations.get("io.containerd.image.name") {
        v.push(n.as_str());
    }
    v
}

/// Picks the descriptor in `index.json` that `reference` names.
pub fn select_reference<'a>(index: &'a Index, reference: Option<&str>) -> Result<&'a Descriptor> {
    match reference {
        Some(r) if r.starts_with("sha256:") => index
            .manifests
            .iter()
            .find(|d| d.digest == r)
            .ok_or_else(|| Error::invalid(format!("no manifest {r} in index.json"))),
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| {
                ref_names(d).iter().any(|n| {
                    *n == tag
                            || n.rsplit_once(':').is_some_and(|(_, t)| t == tag)
                            // `app:1` names `docker.io/library/app:1`.
                            || (tag.contains(':') && n.ends_with(&format!("/{tag}")))
                })
            })
            .ok_or_else(|| {
                let known: Vec<&str> = index.manifests.iter().flat_map(ref_names).collect();
                Error::invalid(format!(
                    "no image tagged {tag:?} in index.json (tags: {})",
                    known.join(", ")
                ))
            }),
        None => match index.manifests.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::invalid("index.json lists no images")),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|d| {
                        ref_names(d)
                            .first()
                            .map_or_else(|| d.digest.clone(), |n| n.to_string())
                    })
                    .collect();
                Err(Error::invalid(format!(
                    "index.json lists {} images; pick one with DIR:TAG or DIR@DIGEST ({})",
                    many.len(),
                    names.join(", ")
                )))
            }
        },
    }
}

/// An image document: an index (or manifest list) or an image manifest.
#[derive(Clone, Debug)]
pub enum Document {
    /// An image index or Docker manifest list.
    Index(Index),
    /// An image manifest (OCI or Docker v2 schema 2).
    Manifest(Manifest),
}

/// Parses the document `data` found under a descriptor of `media_type` (which may be empty,
/// as for the top of a registry reference). Docker schema 1 and non-image media types are
/// rejected by name.
pub fn parse_document(media_type: &str, data: &[u8]) -> Result<Document> {
    check_manifest_media_type(media_type)?;
    if data.len() as u64 > MAX_DOCUMENT {
        return Err(Error::limit(format!(
            "manifest of {} bytes is larger than {MAX_DOCUMENT}",
            data.len()
        )));
    }
    if is_index(media_type, data)? {
        let index: Index = parse_json("image index", data)?;
        if let Some(mt) = &index.media_type {
            check_manifest_media_type(mt)?;
        }
        return Ok(Document::Index(index));
    }
    let manifest: Manifest = parse_json("image manifest", data)?;
    if let Some(mt) = &manifest.media_type {
        check_manifest_media_type(mt)?;
    }
    Ok(Document::Manifest(manifest))
}

/// The media type a document declares, or the one its shape implies (OCI media types when it
/// declares none).
pub fn document_media_type(doc: &Document) -> &str {
    match doc {
        Document::Index(i) => i.media_type.as_deref().unwrap_or(media::OCI_INDEX),
        Document::Manifest(m) => m.media_type.as_deref().unwrap_or(media::OCI_MANIFEST),
    }
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

/// The name of layer `index` (from 0) of `total` in messages: `layer 2/3 (sha256:0123456789ab)`.
pub fn layer_name(index: usize, total: usize, digest: &str) -> String {
    format!("layer {}/{total} ({})", index + 1, short_digest(digest))
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

/// `sha256:0123456789ab` for messages.
pub fn short_digest(d: &str) -> &str {
    let mut end = (d.find(':').map_or(0, |i| i + 1) + 12).min(d.len());
    // The digest comes from a document and may not be valid yet: never cut a character.
    while !d.is_char_boundary(end) {
        end -= 1;
    }
    &d[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn platforms() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm/v7").variant.as_deref(), Some("v7"));
        assert!(Platform::parse("linux").is_err());
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm64/v8").matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None
        }));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
    }

    #[test]
    fn the_host_platform() {
        let host = Platform::host().to_string();
        match std::env::consts::ARCH {
            "x86_64" => assert_eq!(host, "linux/amd64"),
            "aarch64" => assert_eq!(host, "linux/arm64/v8"),
            _ => assert!(host.starts_with("linux/"), "{host}"),
        }
        // The host's arm64/v8 picks an index's arm64 entry with or without a variant.
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
    }

    #[test]
    fn platform_selection_lists_offers() {
        let index: Index = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v6"}},
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":1,"platform":{"os":"unknown","architecture":"unknown"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            select_platform(&index, &p("linux/arm")).unwrap().digest,
            "sha256:bb"
        );
        assert_eq!(
            select_platform(&index, &p("linux/arm/v6")).unwrap().digest,
            "sha256:aa"
        );
        let err = select_platform(&index, &p("linux/amd64"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux/arm/v6, linux/arm/v7"), "{err}");
    }

    #[test]
    fn short_digests_keep_whole_characters() {
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(
            short_digest("sha256:a\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
            "sha256:a\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"
        );
        assert_eq!(
            short_digest("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}x"),
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"
        );
    }

    #[test]
    fn media_types() {
        assert!(check_layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd").is_ok());
        assert!(check_layer_media_type(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        )
        .is_ok());
        let e = check_layer_media_type("application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
            .unwrap_err();
        assert!(e.to_string().contains("encrypted"));
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let e = check_manifest_media_type(media::DOCKER_SCHEMA1_SIGNED).unwrap_err();
        assert!(e.to_string().contains("schema 1"));
    }

    #[test]
    fn documents() {
        let schema1 = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        let e = parse_document("", schema1).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = parse_document(media::DOCKER_SCHEMA1_SIGNED, schema1).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        let doc = parse_document("", list).unwrap();
        assert!(matches!(doc, Document::Index(_)));
        assert_eq!(document_media_type(&doc), media::DOCKER_LIST);
        let bare = br#"{"schemaVersion":2,"config":{"digest":"sha256:aa","size":1},"layers":[]}"#;
        let doc = parse_document("", bare).unwrap();
        assert_eq!(document_media_type(&doc), media::OCI_MANIFEST);
        let e = parse_document("application/vnd.example+json", bare).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn references() {
        let index: Index = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"annotations":{"org.opencontainers.image.ref.name":"latest"}},
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1,"annotations":{"io.containerd.image.name":"docker.io/library/alpine:3.20"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            select_reference(&index, Some("latest")).unwrap().digest,
            "sha256:aa"
        );
        assert_eq!(
            select_reference(&index, Some("3.20")).unwrap().digest,
            "sha256:bb"
        );
        assert_eq!(
            select_reference(&index, Some("sha256:bb")).unwrap().digest,
            "sha256:bb"
        );
        assert!(select_reference(&index, None).is_err());
        assert!(select_reference(&index, Some("nope")).is_err());
    }
}

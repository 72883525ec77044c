//! The JSON documents of images, as OCI image layouts and registries both serve them: indexes
//! (and Docker manifest lists), manifests (OCI and Docker v2 schema 2) and configs, with their
//! media types, platform selection and the checks every reader applies.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

/// The name of layer `index` (from 0) of `total` in messages: `layer 2/3 (sha256:0123456789ab)`.
pub fn layer_name(index: usize, total: usize, digest: &str) -> String {
    format!("layer {}/{total} ({})", index + 1, short_digest(digest))
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
    use crate::ErrorKind;

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

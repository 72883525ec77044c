//! Writing OCI image layouts and `docker save` archives for tests.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

pub fn digest(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// One image to put in a layout.
pub struct ImageSpec {
    /// (blob, media type, uncompressed tar) per layer.
    pub layers: Vec<(Vec<u8>, String, Vec<u8>)>,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl ImageSpec {
    pub fn new(layers: Vec<(Vec<u8>, &str, Vec<u8>)>) -> Self {
        ImageSpec {
            layers: layers
                .into_iter()
                .map(|(b, m, t)| (b, m.to_string(), t))
                .collect(),
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        }
    }

    /// The image's platform as an index entry names it.
    pub fn platform(&self) -> serde_json::Value {
        let mut platform = serde_json::json!({"os": self.os, "architecture": self.arch});
        if let Some(v) = &self.variant {
            platform["variant"] = serde_json::json!(v);
        }
        platform
    }
}

fn put(dir: &Path, data: &[u8]) -> String {
    let d = digest(data);
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
    d
}

/// Writes the manifest and config of `image` into `dir`; returns (manifest digest, size).
pub fn write_image(dir: &Path, image: &ImageSpec) -> (String, usize) {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (blob, media, tar) in &image.layers {
        let d = put(dir, blob);
        layers.push(serde_json::json!({"mediaType": media, "digest": d, "size": blob.len()}));
        diff_ids.push(digest(tar));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": image.arch, "os": image.os,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = put(dir, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    (put(dir, &manifest), manifest.len())
}

/// Writes a layout with one image per tag.
pub fn write_layout(dir: &Path, images: &[(&str, &ImageSpec)]) {
    let mut manifests = Vec::new();
    for (tag, image) in images {
        let (d, size) = write_image(dir, image);
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size,
            "platform": image.platform(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
    }
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap(),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Writes a layout whose tag names a multi-platform index.
pub fn write_multiplatform(dir: &Path, tag: &str, images: &[&ImageSpec]) -> String {
    let mut manifests = Vec::new();
    for image in images {
        let (d, size) = write_image(dir, image);
        manifests.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size, "platform": image.platform()}));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
    }))
    .unwrap();
    let id = put(dir, &index);
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    id
}

/// Writes a `docker save` archive (the classic layout: `<id>/layer.tar`, `<config>.json`,
/// `manifest.json`, `repositories`) of uncompressed layer tars.
pub fn write_docker_archive(path: &Path, tag: &str, layers: &[Vec<u8>]) {
    let mut tar = tar::Builder::new(fs::File::create(path).unwrap());
    let add = |tar: &mut tar::Builder<fs::File>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, data).unwrap();
    };
    let mut names = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        let name = format!("{id}/layer.tar");
        add(&mut tar, &name, layer);
        names.push(name);
        diff_ids.push(digest(layer));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_name = format!("{}.json", &digest(&config)[7..]);
    add(&mut tar, &config_name, &config);
    let manifest = serde_json::to_vec(
        &serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]),
    )
    .unwrap();
    add(&mut tar, "manifest.json", &manifest);
    add(&mut tar, "repositories", b"{}");
    tar.finish().unwrap();
}

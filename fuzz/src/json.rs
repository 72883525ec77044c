//! Targets `oci_json` (index, manifest and config documents through `oci` and `source::oci`) and
//! `docker_manifest` (the `manifest.json` of a `docker save` archive through `source::docker`).

use oci2ext4::blob::Digest;
use oci2ext4::layer::{apply_layers, LayerInput, NoProgress};
use oci2ext4::oci::{self, media, Config, Descriptor, Index, Manifest, Platform};
use oci2ext4::source::{self, resolve, Plan, PlanOptions, Reading};
use oci2ext4::{Error, ImageBuilder};

use super::{options, scratch};

const PLATFORMS: [&str; 5] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "windows/amd64",
];

const MEDIA_TYPES: [&str; 7] = [
    "",
    media::OCI_INDEX,
    media::OCI_MANIFEST,
    media::DOCKER_LIST,
    media::DOCKER_MANIFEST,
    media::DOCKER_SCHEMA1,
    "application/json",
];

/// Splits the input into documents at NUL bytes (which JSON text cannot hold).
fn documents(data: &[u8], most: usize) -> Vec<&[u8]> {
    data.splitn(most, |&b| b == 0).collect()
}

/// The document a descriptor names in the in-memory store: the one whose number is the
/// digest's last character (`sha256:…0` is the first), so that inputs can point at each other
/// without computing hashes.
fn lookup<'a>(docs: &[&'a [u8]], d: &Descriptor) -> oci2ext4::Result<&'a [u8]> {
    d.digest
        .chars()
        .last()
        .and_then(|c| c.to_digit(10))
        .and_then(|i| docs.get(i as usize).copied())
        .ok_or_else(|| Error::corrupt(format!("no blob {:?} in the store", d.digest)))
}

fn layer_input(d: &Descriptor) -> oci2ext4::Result<LayerInput> {
    let digest = Digest::parse(&d.digest)?;
    Ok(
        LayerInput::new(oci::short_digest(&d.digest), || Ok(std::io::empty()))
            .with_blob_digest(digest)
            .with_size(d.size),
    )
}

/// Every string a descriptor holds through the helpers that take strings.
fn strings(d: &Descriptor) {
    let _ = oci::short_digest(&d.digest);
    let _ = Digest::parse(&d.digest);
    let _ = oci::check_layer_media_type(&d.media_type);
    let _ = oci::check_manifest_media_type(&d.media_type);
    if let Some(p) = &d.platform {
        let shown = p.to_string();
        if let Ok(back) = Platform::parse(&shown) {
            assert!(back.matches(p) || p.os.contains('/') || p.architecture.contains('/'));
        }
    }
}

/// Target `oci_json`: up to four documents separated by NUL bytes. The first is parsed as an
/// index, a manifest and a config; then it is resolved as the root of an image with
/// `source::oci::resolve`, reading documents from an in-memory store (see [`lookup`]), for each
/// platform and root media type.
///
/// Checks: no panic; a resolved image has as many layers as its manifest and config say, each
/// with a `diff_id`.
pub fn oci_json(data: &[u8]) {
    let docs = documents(data, 4);
    for doc in &docs {
        if let Ok(index) = oci::parse_json::<Index>("index", doc) {
            for d in &index.manifests {
                strings(d);
            }
            for p in PLATFORMS {
                let want = Platform::parse(p).expect("a valid platform");
                if let Ok(d) = oci::select_platform(&index, &want) {
                    let offered = d.platform.as_ref().expect("selected by platform");
                    assert!(want.matches(offered), "{want} selected {offered}");
                }
            }
            let first_ref = index
                .manifests
                .iter()
                .find_map(|d| d.annotations.values().next().cloned());
            for r in [None, Some("latest"), Some("sha256:0"), first_ref.as_deref()] {
                let _ = oci::select_reference(&index, r);
            }
        }
        if let Ok(m) = oci::parse_json::<Manifest>("manifest", doc) {
            strings(&m.config);
            m.layers.iter().for_each(strings);
        }
        let _ = oci::parse_json::<Config>("config", doc);
        for mt in MEDIA_TYPES {
            let _ = oci::is_index(mt, doc);
        }
        if let Ok(s) = std::str::from_utf8(doc) {
            if let Ok(p) = Platform::parse(s) {
                assert_eq!(p.to_string(), s, "a parsed platform displays as given");
            }
        }
    }
    for mt in [media::OCI_INDEX, media::OCI_MANIFEST, ""] {
        let root = Descriptor {
            media_type: mt.to_string(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: docs[0].len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        for p in PLATFORMS {
            let want = Platform::parse(p).expect("a valid platform");
            let mut manifests = 0usize;
            let result = resolve(
                root.clone(),
                &want,
                |_, d| {
                    manifests += 1;
                    lookup(&docs, d).map(<[u8]>::to_vec)
                },
                layer_input,
            );
            if let Ok(image) = result {
                assert!(manifests >= 2, "a manifest and a config were read");
                for l in &image.layers {
                    assert!(l.diff_id.is_some(), "{} has no diff_id", l.name);
                }
            }
        }
    }
}

/// A small valid layer.
fn tiny_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("hello").expect("a short name");
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"hi\n"[..]).expect("write to memory");
    b.into_inner().expect("write to memory")
}

fn hex(d: &Digest) -> String {
    d.hex()
}

/// Target `docker_manifest`: a `docker save` archive whose `manifest.json` is the input up to
/// its first NUL byte. After the NUL comes the content of the member `config.json`; without
/// one, `config.json` is a valid config for one layer. The archive also holds a layer as
/// `layer/layer.tar` and as `blobs/sha256/<digest>`, and a valid config as `<digest>.json`,
/// for manifests to point at. The archive is planned with `source::plan` for no tag and a few
/// tags (which reads it as a docker archive, by its `manifest.json`); a resolved image is
/// built.
///
/// Checks: no panic; a resolved image builds, or fails with an error rather than a panic.
pub fn docker_manifest(data: &[u8]) {
    let (manifest, config) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let layer = tiny_layer();
    let diff_id = Digest::of(&layer);
    let good_config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    )
    .into_bytes();
    let config = config.map_or_else(|| good_config.clone(), <[u8]>::to_vec);
    let config_digest = Digest::of(&good_config);
    let dir = scratch();
    let path = dir.path().join("archive.tar");
    {
        let file = std::fs::File::create(&path).expect("create the archive");
        let mut b = tar::Builder::new(file);
        let mut add = |name: &str, content: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_path(name).expect("a valid member name");
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, content).expect("write the archive");
        };
        add("manifest.json", manifest);
        add("config.json", &config);
        add(&format!("{}.json", hex(&config_digest)), &good_config);
        add("layer/layer.tar", &layer);
        add(&format!("blobs/sha256/{}", hex(&diff_id)), &layer);
        b.into_inner().expect("finish the archive");
    }
    let plan_options = PlanOptions::default().with_spool_dir(dir.path());
    for reference in [None, Some("latest"), Some("img:latest"), Some("img")] {
        let source = match reference {
            Some(r) => format!("{}:{r}", path.display()),
            None => path.display().to_string(),
        };
        let Ok(plan) = source::plan(Some(&source), &[], &plan_options) else {
            continue;
        };
        assert_eq!(
            plan.origin().reading,
            Reading::DockerArchive,
            "read by its manifest.json"
        );
        let Plan::Layers { layers, .. } = plan else {
            panic!("an archive planned as a directory");
        };
        let out = dir.path().join("out.ext4");
        let mut builder = ImageBuilder::create(&out, options()).expect("create the builder");
        let result =
            apply_layers(&mut builder, layers, &mut NoProgress).and_then(|_| builder.finish());
        if result.is_err() {
            assert!(!out.exists(), "a failed build left its output");
        }
        let _ = std::fs::remove_file(&out);
    }
}

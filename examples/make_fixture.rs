//! Writes the example OCI image layout in `fixtures/example-oci`: three layers (gzip, zstd
//! and uncompressed) of a tiny root filesystem, with a setuid binary, a file capability, hard
//! links, device nodes, a whiteout and an opaque directory. The output is byte-for-byte
//! reproducible.
//!
//! ```text
//! cargo run --example make_fixture -- fixtures/example-oci
//! ```

use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

const MTIME: u64 = 1_700_000_000;

struct Layer {
    tar: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        Layer { tar }
    }

    fn header(path: &str, kind: tar::EntryType, mode: u32, uid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(MTIME);
        h.set_size(size);
        h.set_cksum();
        h
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let h = Self::header(path, tar::EntryType::Directory, mode, 0, 0);
        self.tar.append(&h, &[][..]).unwrap();
        self
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.file_as(path, mode, 0, data)
    }

    fn file_as(&mut self, path: &str, mode: u32, uid: u64, data: &[u8]) -> &mut Self {
        let h = Self::header(path, tar::EntryType::Regular, mode, uid, data.len() as u64);
        self.tar.append(&h, data).unwrap();
        self
    }

    fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(
            path,
            kind,
            if kind == tar::EntryType::Symlink {
                0o777
            } else {
                0o755
            },
            0,
            0,
        );
        h.set_link_name(target).unwrap();
        h.set_cksum();
        self.tar.append(&h, &[][..]).unwrap();
        self
    }

    fn device(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = Self::header(path, kind, mode, 0, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.tar.append(&h, &[][..]).unwrap();
        self
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.tar
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.tar.into_inner().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // No name and a zero mtime in the gzip header keep the output reproducible.
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn digest(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn put_blob(dir: &Path, data: &[u8]) -> String {
    let d = digest(data);
    fs::write(dir.join("blobs/sha256").join(&d["sha256:".len()..]), data).unwrap();
    d
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/example-oci".into());
    let dir = Path::new(&out);
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();

    // Layer 1: the base system.
    let mut base = Layer::new();
    base.dir("bin", 0o755)
        .dir("etc", 0o755)
        .file(
            "etc/os-release",
            0o644,
            b"NAME=\"oci2ext4 example\"\nID=example\nVERSION_ID=1\n",
        )
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nuser:x:1000:\n")
        .file("etc/shadow", 0o640, b"root:*:19000:0:99999:7:::\n")
        .file(
            "bin/hello",
            0o755,
            b"#!/bin/sh\necho hello from an ext4 image\n",
        )
        .link(tar::EntryType::Symlink, "bin/sh", "busybox")
        .file("bin/busybox", 0o755, b"busybox stand-in\n")
        .link(tar::EntryType::Link, "bin/ls", "bin/busybox")
        .link(tar::EntryType::Link, "bin/cat", "bin/busybox")
        .file("bin/su", 0o4755, b"setuid stand-in\n")
        .pax(&[(
            "SCHILY.xattr.security.capability",
            &[
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        )])
        .file("bin/ping", 0o755, b"ping stand-in with cap_net_raw\n")
        .dir("dev", 0o755)
        .device("dev/null", tar::EntryType::Char, 0o666, 1, 3)
        .device("dev/console", tar::EntryType::Char, 0o600, 5, 1)
        .dir("tmp", 0o1777)
        .dir("home", 0o755)
        .dir("home/user", 0o700)
        .file_as("home/user/.profile", 0o644, 1000, b"export PS1='$ '\n")
        .dir("var", 0o755)
        .dir("var/cache", 0o755)
        .file("var/cache/stale-1", 0o644, b"old cache entry\n")
        .file("var/cache/stale-2", 0o644, b"another old cache entry\n")
        .file(
            "etc/motd",
            0o644,
            b"this file is removed by a whiteout in layer 2\n",
        );
    let base = base.finish();

    // Layer 2: a package update, with a whiteout and an opaque directory.
    let mut update = Layer::new();
    update
        .file(".wh.motd", 0o644, b"")
        .dir("etc", 0o755)
        .file("etc/.wh.motd", 0o644, b"")
        .dir("var/cache", 0o755)
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .file("var/cache/fresh", 0o644, b"new cache entry\n")
        .pax(&[
            ("mtime", b"1700000000.123456789"),
            ("SCHILY.xattr.user.origin", b"layer-2"),
        ])
        .file("etc/hostname", 0o644, b"example\n");
    let update = update.finish();

    // Layer 3: configuration.
    let mut config = Layer::new();
    config.dir("etc", 0o755).file(
        "etc/os-release",
        0o644,
        b"NAME=\"oci2ext4 example\"\nID=example\nVERSION_ID=2\n",
    );
    let config_layer = config.finish();

    let layers = [
        (
            gzip(&base),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            digest(&base),
        ),
        (
            zstd::encode_all(&update[..], 19).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
            digest(&update),
        ),
        (
            config_layer.clone(),
            "application/vnd.oci.image.layer.v1.tar",
            digest(&config_layer),
        ),
    ];
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (blob, media_type, diff_id) in &layers {
        let d = put_blob(dir, blob);
        descriptors
            .push(serde_json::json!({"mediaType": media_type, "digest": d, "size": blob.len()}));
        diff_ids.push(diff_id.clone());
    }
    let config_json = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = put_blob(dir, &config_json);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_json.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let manifest_digest = put_blob(dir, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    println!("{}: image {manifest_digest}", dir.display());
}

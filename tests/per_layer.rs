//! `--per-layer`: one image per layer in overlay form. Each is checked by e2fsck; as root the
//! images are mounted read-only, stacked with overlayfs in manifest order, and the merged tree
//! compared entry by entry with the flattened image of the same layers. A second image sharing
//! the base layers reuses their files without applying them again.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use common::layers::{gzip, LayerGen};
use common::model::Kind;
use common::oci::{write_layout, ImageSpec};
use common::tars::Attrs;
use common::{
    assert_same_tree, can_mount, e2fsck, have_e2fsprogs, scratch, skip, snapshot, Mounted,
};

const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn build(source: &str, out: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn layer(build: impl FnOnce(&mut LayerGen)) -> Vec<u8> {
    let mut g = LayerGen::new();
    build(&mut g);
    g.finish().0
}

/// Base, a layer deleting and hiding things, and a top layer; a second image shares the first two.
fn layers() -> Vec<Vec<u8>> {
    let t = |m| Attrs::new(m).mtime(1_600_000_000, 0);
    let base = layer(|g| {
        g.dir("etc", t(0o755));
        g.file("etc/passwd", t(0o644), b"root:x:0:0::/root:/bin/sh\n");
        g.file("etc/gone", t(0o600), b"deleted later");
        g.dir("opt", t(0o755));
        g.dir("opt/app", t(0o755));
        g.file("opt/app/old", t(0o644), b"hidden by an opaque dir");
        g.dir("var", t(0o755));
        g.file("var/log", t(0o644), b"a file, later a directory");
        g.symlink("bin", "usr/bin");
        g.dir("srv", t(0o755));
        g.dir("srv/cache", t(0o755));
        g.file("srv/cache/stale", t(0o644), b"removed with its directory");
        g.hardlink("etc/passwd-", "etc/passwd");
    });
    let middle = layer(|g| {
        g.dir("etc", t(0o755));
        g.whiteout("etc/gone");
        g.dir("opt", t(0o755));
        g.dir("opt/app", t(0o750).xattr(b"user.note", b"kept"));
        g.opaque("opt/app");
        g.file("opt/app/new", t(0o644), b"new");
        g.dir("var", t(0o755));
        g.whiteout("var/log");
        g.dir("var/log", t(0o755));
        g.file("var/log/x", t(0o644), b"x");
        g.dir("srv", t(0o755));
        g.dir("srv/cache", t(0o755));
        g.whiteout("srv/cache");
        g.file("srv/cache/fresh", t(0o644), b"fresh");
    });
    let top = layer(|g| {
        g.dir("etc", t(0o755));
        g.file("etc/hostname", t(0o644), b"vm\n");
        g.fifo("fifo", t(0o600));
    });
    let other_top = layer(|g| {
        g.dir("srv", t(0o700));
        g.file("srv/data", t(0o600), b"other image");
    });
    vec![base, middle, top, other_top]
}

#[test]
fn layer_images_stack_to_the_flattened_tree_and_are_reused() {
    if !have_e2fsprogs() {
        skip("per-layer images", "e2fsprogs is not installed");
        return;
    }
    let dir = scratch();
    let l = layers();
    let spec = |idx: &[usize]| {
        ImageSpec::new(
            idx.iter()
                .map(|&i| (gzip(&l[i]), TGZ, l[i].clone()))
                .collect(),
        )
    };
    let layout = dir.path().join("layout");
    write_layout(
        &layout,
        &[("first", &spec(&[0, 1, 2])), ("second", &spec(&[0, 1, 3]))],
    );
    let layers_dir = dir.path().join("layers");
    let ld = layers_dir.to_str().unwrap();
    let src = |tag: &str| format!("{}:{tag}", layout.display());

    let manifest1 = dir.path().join("first.json");
    let out = ok(&build(
        &src("first"),
        &manifest1,
        &["--per-layer", ld, "--json"],
    ));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["built"], 3, "{summary}");
    assert_eq!(summary["reused"], 0, "{summary}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest1).unwrap()).unwrap();
    let files: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 3);
    for f in &files {
        assert!(f.starts_with("sha256-") && f.ends_with(".ext4"), "{f}");
        e2fsck(&layers_dir.join(f));
    }
    let base_meta: Vec<(u64, i64)> = files[..2]
        .iter()
        .map(|f| {
            let m = fs::metadata(layers_dir.join(f)).unwrap();
            (m.ino(), m.mtime_nsec() + m.mtime() * 1_000_000_000)
        })
        .collect();

    // The second image shares the base layers: their files are reused, untouched.
    let manifest2 = dir.path().join("second.json");
    let out = ok(&build(
        &src("second"),
        &manifest2,
        &["--per-layer", ld, "--json"],
    ));
    let summary2: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary2["built"], 1, "{summary2}");
    assert_eq!(summary2["reused"], 2, "{summary2}");
    let reused: Vec<bool> = summary2["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["reused"].as_bool().unwrap())
        .collect();
    assert_eq!(reused, [true, true, false]);
    for (f, before) in files[..2].iter().zip(&base_meta) {
        let m = fs::metadata(layers_dir.join(f)).unwrap();
        assert_eq!(
            &(m.ino(), m.mtime_nsec() + m.mtime() * 1_000_000_000),
            before,
            "{f}"
        );
    }
    // Other options make other images: nothing reused.
    let user_dir = dir.path().join("user-layers");
    let ud = user_dir.to_str().unwrap();
    let manifest3 = dir.path().join("user.json");
    let out = ok(&build(
        &src("first"),
        &manifest3,
        &["--per-layer", ud, "--json", "--overlay-xattr", "user"],
    ));
    let summary3: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary3["built"], 3, "{summary3}");

    if !can_mount() {
        skip(
            "overlay stacking of per-layer images",
            "needs root and loop devices",
        );
        return;
    }
    for (tag, manifest_path, extra, layers_dir) in [
        ("first", &manifest1, None, &layers_dir),
        ("second", &manifest2, None, &layers_dir),
        ("first", &manifest3, Some("userxattr"), &user_dir),
    ] {
        let flat = dir.path().join(format!("{tag}.ext4"));
        ok(&build(&src(tag), &flat, &["-q"]));
        let want = {
            let m = Mounted::new(&flat, true).unwrap();
            snapshot(m.path())
        };
        fs::remove_file(&flat).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(manifest_path).unwrap()).unwrap();
        let mut mounts = Vec::new();
        for l in manifest["layers"].as_array().unwrap() {
            let m = Mounted::new(&layers_dir.join(l["file"].as_str().unwrap()), true).unwrap();
            mounts.push(m);
        }
        let lower: Vec<String> = mounts
            .iter()
            .rev()
            .map(|m| m.path().display().to_string())
            .collect();
        let merged = tempfile::tempdir().unwrap();
        let mut opts = format!("xino=on,lowerdir={}", lower.join(":"));
        if let Some(x) = extra {
            opts.push(',');
            opts.push_str(x);
        }
        let o = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(merged.path())
            .output()
            .unwrap();
        if !o.status.success() {
            skip(
                "overlay stacking of per-layer images",
                &format!(
                    "overlayfs mount failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
            );
            return;
        }
        let got = snapshot(merged.path());
        let _ = Command::new("umount").arg(merged.path()).output();
        assert_same_tree(&want, &got);
        eprintln!(
            "{tag} ({manifest_path:?}): merged tree equals the flattened one, {} entries",
            want.paths.len()
        );
    }
}

#[test]
fn layer_images_with_verity_pass_veritysetup_verify() {
    let have = Command::new("veritysetup")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_e2fsprogs() || !have {
        skip(
            "per-layer verity",
            "needs e2fsprogs and veritysetup (cryptsetup-bin)",
        );
        return;
    }
    let dir = scratch();
    let l = layers();
    let spec = ImageSpec::new(l[..3].iter().map(|t| (gzip(t), TGZ, t.clone())).collect());
    let layout = dir.path().join("layout");
    write_layout(&layout, &[("latest", &spec)]);
    let layers_dir = dir.path().join("layers");
    let manifest_path = dir.path().join("manifest.json");
    ok(&build(
        &format!("{}:latest", layout.display()),
        &manifest_path,
        &[
            "--per-layer",
            layers_dir.to_str().unwrap(),
            "--verity",
            "-q",
        ],
    ));
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for l in layers {
        let image = layers_dir.join(l["file"].as_str().unwrap());
        let v = &l["verity"];
        let root = v["root_hash"].as_str().unwrap();
        let args = [
            "verify".to_string(),
            image.display().to_string(),
            image.display().to_string(),
            root.to_string(),
            format!("--hash-offset={}", v["hash_offset"]),
            "--no-superblock".into(),
            format!("--data-blocks={}", v["data_blocks"]),
            format!("--salt={}", v["salt"].as_str().unwrap()),
        ];
        let o = Command::new("veritysetup").args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // e2fsck on the filesystem's part.
        let fs_part = dir.path().join("fs-part.img");
        fs::copy(&image, &fs_part).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&fs_part)
            .unwrap()
            .set_len(v["hash_offset"].as_u64().unwrap())
            .unwrap();
        e2fsck(&fs_part);
        fs::remove_file(&fs_part).unwrap();
    }
}

#[test]
fn whiteouts_are_devices_and_opaque_dirs_carry_the_attribute() {
    if !can_mount() {
        skip("per-layer overlay form", "needs root and loop devices");
        return;
    }
    let dir = scratch();
    let l = layers();
    let spec = ImageSpec::new(l[..2].iter().map(|t| (gzip(t), TGZ, t.clone())).collect());
    let layout = dir.path().join("layout");
    write_layout(&layout, &[("latest", &spec)]);
    for (ns, name) in [
        ("trusted", "trusted.overlay.opaque"),
        ("user", "user.overlay.opaque"),
    ] {
        let layers_dir = dir.path().join(ns);
        let manifest_path = dir.path().join(format!("{ns}.json"));
        ok(&build(
            &format!("{}:latest", layout.display()),
            &manifest_path,
            &[
                "--per-layer",
                layers_dir.to_str().unwrap(),
                "--overlay-xattr",
                ns,
                "-q",
            ],
        ));
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
        let middle = layers_dir.join(manifest["layers"][1]["file"].as_str().unwrap());
        e2fsck(&middle);
        let m = Mounted::new(&middle, true).unwrap();
        let tree = snapshot(m.path());
        let n = tree.node(b"etc/gone").expect("etc/gone");
        assert!(matches!(n.kind, Kind::Char(0, 0)), "{n:?}");
        let opaque = |path: &str| {
            let n = tree
                .node(path.as_bytes())
                .unwrap_or_else(|| panic!("no {path}"));
            assert_eq!(n.kind, Kind::Dir, "{path}");
            assert_eq!(
                n.xattrs.get(name.as_bytes()).map(Vec::as_slice),
                Some(&b"y"[..]),
                "{path}: {n:?}"
            );
            n.clone()
        };
        // A directory of the layer by a whited-out name hides what was below it: opaque.
        opaque("var/log");
        opaque("srv/cache");
        let app = opaque("opt/app");
        assert_eq!(
            app.xattrs.get(&b"user.note"[..]).map(Vec::as_slice),
            Some(&b"kept"[..])
        );
        assert!(tree.node(b"opt/app/old").is_none());
        assert!(tree.node(b"opt/app/new").is_some());
    }
}

#[test]
fn a_layer_that_is_not_its_diff_id_fails_and_leaves_no_partial_image() {
    let dir = scratch();
    let l = layers();
    // The second layer's blob holds the top layer's tar, the config the middle one's diff_id.
    let spec = ImageSpec::new(vec![
        (gzip(&l[0]), TGZ, l[0].clone()),
        (gzip(&l[2]), TGZ, l[1].clone()),
    ]);
    let layout = dir.path().join("layout");
    write_layout(&layout, &[("latest", &spec)]);
    let layers_dir = dir.path().join("layers");
    let manifest_path = dir.path().join("manifest.json");
    let o = build(
        &format!("{}:latest", layout.display()),
        &manifest_path,
        &["--per-layer", layers_dir.to_str().unwrap(), "-q"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("diff_id") && err.contains("layer 2"), "{err}");
    assert!(!manifest_path.exists());
    // The first layer's image is whole and kept (with its record); nothing else is there.
    let mut names: Vec<String> = fs::read_dir(&layers_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].ends_with(".ext4") && names[1] == format!("{}.json", names[0]),
        "{names:?}"
    );
    if have_e2fsprogs() {
        e2fsck(&layers_dir.join(&names[0]));
    }
}

/// `pull --per-layer` twice into one directory, then a second image sharing the base layers:
/// the layers already there are reused, and the merged tree is checked as for `build`.
#[cfg(feature = "registry")]
#[test]
fn pull_per_layer_reuses_shared_layers() {
    use common::registry::{Proxy, PushImage, Pusher, Registry, Setup};
    let Some(reg) = Registry::start("pull --per-layer", Setup::default()) else {
        return;
    };
    let pusher = Pusher::new(&reg.addr, None, false);
    let l = layers();
    let image = |idx: &[usize]| {
        PushImage::new(
            idx.iter()
                .map(|&i| (gzip(&l[i]), TGZ, l[i].clone()))
                .collect(),
        )
    };
    pusher.push("per/layer", "first", &image(&[0, 1, 2]));
    pusher.push("per/layer", "second", &image(&[0, 1, 3]));
    let proxy = Proxy::start(&reg.addr);
    let dir = scratch();
    let layers_dir = dir.path().join("layers");
    let pull = |tag: &str, cache: &str| -> serde_json::Value {
        let o = Command::new(common::bin())
            .arg("pull")
            .arg(format!("{}/per/layer:{tag}", proxy.addr))
            .arg("-o")
            .arg(dir.path().join(format!("{tag}.json")))
            .arg("--cache-dir")
            .arg(dir.path().join(cache))
            .args(["--plain-http", "--json", "--per-layer"])
            .arg(&layers_dir)
            .env("HOME", dir.path())
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .output()
            .unwrap();
        serde_json::from_str(&ok(&o)).unwrap()
    };
    let first = pull("first", "cache1");
    assert_eq!(
        (first["built"].as_u64(), first["reused"].as_u64()),
        (Some(3), Some(0)),
        "{first}"
    );
    let gets = proxy.blob_gets();
    // Another cache: nothing of the first pull's downloads helps, only the images in DIR.
    let second = pull("second", "cache2");
    assert_eq!(
        (second["built"].as_u64(), second["reused"].as_u64()),
        (Some(1), Some(2)),
        "{second}"
    );
    let second_gets = proxy.blob_gets() - gets;
    eprintln!("first pull: {gets} blob GETs; second pull (2 of 3 layers reused): {second_gets}");
    assert!(second_gets >= 2, "the config and the new layer at least");
    if have_e2fsprogs() {
        for l in second["layers"].as_array().unwrap() {
            e2fsck(&layers_dir.join(l["file"].as_str().unwrap()));
        }
    }
}

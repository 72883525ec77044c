//! Image sources: OCI layouts (tags, digests, platforms), `docker save` archives, host
//! directories, digest checks, and a comparison with `umoci raw unpack` where it is installed.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::layers::{expected, gzip, zstd, LayerGen, Op};
use common::model::{Kind, Tree};
use common::oci::{digest, write_docker_archive, write_layout, write_multiplatform, ImageSpec};
use common::tars::Attrs;
use common::{can_mount, check_image, scratch, skip, snapshot, Check, Mounted};

const NO_RW: Check = Check { read_write: false };
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_GZ: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn run(args: &[&str], source: &Path, out: &Path) -> Output {
    Command::new(common::bin())
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg("-q")
        .args(args)
        .output()
        .unwrap()
}

fn run_ref(source: &str, out: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg("-q")
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A layer's tar and what its entries mean.
type Layer = (Vec<u8>, Vec<Op>);

fn layer(build: impl FnOnce(&mut LayerGen)) -> Layer {
    let mut g = LayerGen::new();
    build(&mut g);
    g.finish()
}

fn two_layers() -> (Vec<Layer>, Tree) {
    let l1 = layer(|g| {
        g.dir("etc", Attrs::new(0o755))
            .file("etc/a", Attrs::new(0o644), b"a1")
            .file("etc/b", Attrs::new(0o600).owner(1, 2), b"b1");
    });
    let l2 = layer(|g| {
        g.whiteout("etc/b").file("etc/c", Attrs::new(0o644), b"c2");
    });
    let want = expected(&[l1.1.clone(), l2.1.clone()]);
    (vec![l1, l2], want)
}

#[test]
fn oci_layout_tags_digests_and_compressions() {
    let dir = scratch();
    let layout = dir.path().join("layout");
    let (layers, want) = two_layers();
    let (t1, t2) = (&layers[0].0, &layers[1].0);
    let gz = ImageSpec::new(vec![
        (gzip(t1), TGZ, t1.clone()),
        (zstd(t2), TZST, t2.clone()),
    ]);
    let plain = ImageSpec::new(vec![
        (t1.clone(), TAR, t1.clone()),
        (gzip(t2), DOCKER_GZ, t2.clone()),
    ]);
    let other_layer = layer(|g| {
        g.file("other", Attrs::new(0o644), b"o");
    });
    let other = ImageSpec::new(vec![(other_layer.0.clone(), TAR, other_layer.0.clone())]);
    write_layout(
        &layout,
        &[("gz", &gz), ("plain", &plain), ("other", &other)],
    );
    for tag in ["gz", "plain"] {
        let out = dir.path().join(format!("{tag}.ext4"));
        ok(&run_ref(&format!("{}:{tag}", layout.display()), &out, &[]));
        check_image(&out, &want, NO_RW);
    }
    let out = dir.path().join("other.ext4");
    ok(&run_ref(&format!("{}:other", layout.display()), &out, &[]));
    check_image(&out, &expected(&[other_layer.1]), NO_RW);
    // By manifest digest.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    let out = dir.path().join("by-digest.ext4");
    ok(&run_ref(&format!("{}@{d}", layout.display()), &out, &[]));
    check_image(&out, &want, NO_RW);
    // Several images and no tag: an error that lists them.
    let o = run(&[], &layout, &dir.path().join("none.ext4"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("gz") && err.contains("plain") && err.contains("other"),
        "{err}"
    );
    let o = run_ref(
        &format!("{}:nope", layout.display()),
        &dir.path().join("nope.ext4"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.path().join("nope.ext4").exists());
}

#[test]
fn platforms_from_an_index() {
    let dir = scratch();
    let layout = dir.path().join("multi");
    let mut specs = Vec::new();
    let mut models = Vec::new();
    for (arch, variant) in [
        ("amd64", None),
        ("arm64", Some("v8")),
        ("arm", Some("v7")),
        ("arm", Some("v6")),
    ] {
        let name = format!("{arch}{}", variant.unwrap_or(""));
        let l = layer(|g| {
            g.file(&format!("arch-{name}"), Attrs::new(0o644), name.as_bytes());
        });
        let mut s = ImageSpec::new(vec![(gzip(&l.0), TGZ, l.0.clone())]);
        s.arch = arch.into();
        s.variant = variant.map(Into::into);
        specs.push(s);
        models.push(expected(&[l.1]));
    }
    write_multiplatform(&layout, "latest", &specs.iter().collect::<Vec<_>>());
    for (platform, which) in [
        ("linux/amd64", 0),
        ("linux/arm64", 1),
        ("linux/arm64/v8", 1),
        ("linux/arm", 2),
        ("linux/arm/v7", 2),
        ("linux/arm/v6", 3),
    ] {
        let out = dir
            .path()
            .join(format!("{}.ext4", platform.replace('/', "-")));
        ok(&run(&["--platform", platform], &layout, &out));
        check_image(&out, &models[which], NO_RW);
    }
    let o = run(
        &["--platform", "linux/s390x"],
        &layout,
        &dir.path().join("s390x.ext4"),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("linux/amd64")
            && err.contains("linux/arm64/v8")
            && err.contains("linux/arm/v7"),
        "{err}"
    );
}

#[test]
fn bad_blobs_digests_and_media_types() {
    let dir = scratch();
    let (layers, _) = two_layers();
    let (t1, t2) = (&layers[0].0, &layers[1].0);
    let make = |name: &str, spec: &ImageSpec| -> PathBuf {
        let layout = dir.path().join(name);
        write_layout(&layout, &[("latest", spec)]);
        layout
    };
    let expect_fail = |layout: &Path, code: i32, needle: &str| {
        let out = dir.path().join("fail.ext4");
        let o = run(&[], layout, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
        assert!(!out.exists(), "output left behind");
        assert!(fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial")));
    };
    // A blob changed on disk.
    let spec = ImageSpec::new(vec![
        (gzip(t1), TGZ, t1.clone()),
        (t2.clone(), TAR, t2.clone()),
    ]);
    let layout = make("corrupt-blob", &spec);
    let blob = layout.join("blobs/sha256").join(&digest(t2)[7..]);
    let mut data = fs::read(&blob).unwrap();
    let at = data.len() / 3;
    data[at] ^= 1;
    fs::write(&blob, data).unwrap();
    expect_fail(&layout, 4, "digest mismatch");
    // A diff_id that does not match the layer.
    let mut spec = ImageSpec::new(vec![(t1.clone(), TAR, t2.clone())]);
    spec.layers[0].2 = b"not the tar".to_vec();
    expect_fail(&make("bad-diff-id", &spec), 4, "diff_id");
    // Media types refused by name.
    let spec = ImageSpec::new(vec![(
        t1.clone(),
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        t1.clone(),
    )]);
    expect_fail(&make("encrypted", &spec), 6, "encrypted");
    let spec = ImageSpec::new(vec![(
        t1.clone(),
        "application/vnd.example.unknown",
        t1.clone(),
    )]);
    expect_fail(
        &make("unknown", &spec),
        6,
        "application/vnd.example.unknown",
    );
    // A Docker schema 1 manifest.
    let layout = dir.path().join("schema1");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let m = br#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
    fs::write(layout.join("blobs/sha256").join(&digest(m)[7..]), m).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws", "digest": digest(m), "size": m.len()}]});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    expect_fail(&layout, 6, "schema 1");
    // Not JSON at all.
    fs::write(layout.join("index.json"), b"{{not json").unwrap();
    expect_fail(&layout, 3, "index.json");
}

#[test]
fn docker_save_archives() {
    let dir = scratch();
    let (layers, want) = two_layers();
    let archive = dir.path().join("saved.tar");
    write_docker_archive(
        &archive,
        "example:1.0",
        &[layers[0].0.clone(), layers[1].0.clone()],
    );
    for src in [
        archive.display().to_string(),
        format!("{}:1.0", archive.display()),
        format!("{}:example:1.0", archive.display()),
    ] {
        let out = dir.path().join("d.ext4");
        let _ = fs::remove_file(&out);
        ok(&run_ref(&src, &out, &[]));
        check_image(&out, &want, NO_RW);
    }
    // A layer whose content does not match its diff_id: one byte of file data changed.
    let bad = dir.path().join("bad.tar");
    write_docker_archive(&bad, "x:1", &[layers[0].0.clone(), layers[1].0.clone()]);
    let mut data = fs::read(&bad).unwrap();
    let layer_at = data
        .windows(layers[1].0.len())
        .position(|w| w == &layers[1].0[..])
        .unwrap();
    let content_at = layers[1].0.windows(2).position(|w| w == b"c2").unwrap();
    data[layer_at + content_at] = b'X';
    fs::write(&bad, data).unwrap();
    let o = run(&[], &bad, &dir.path().join("bad.ext4"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("diff_id digest mismatch") && err.contains("layer 2/2"),
        "{err}"
    );
    assert!(!dir.path().join("bad.ext4").exists());
}

#[test]
fn loose_layers_in_order() {
    let dir = scratch();
    let (layers, want) = two_layers();
    let p1 = dir.path().join("one.tar.gz");
    let p2 = dir.path().join("two.tzst");
    fs::write(&p1, gzip(&layers[0].0)).unwrap();
    fs::write(&p2, zstd(&layers[1].0)).unwrap();
    let out = dir.path().join("loose.ext4");
    let o = Command::new(common::bin())
        .arg("build")
        .arg("--layer")
        .arg(&p1)
        .arg("--layer")
        .arg(&p2)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    check_image(&out, &want, NO_RW);
}

#[test]
fn host_directory_like_mkfs_d() {
    let dir = scratch();
    let src = dir.path().join("root");
    fs::create_dir_all(src.join("etc/sub")).unwrap();
    fs::write(src.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(src.join("etc/sub/f"), b"f").unwrap();
    fs::hard_link(src.join("etc/passwd"), src.join("etc/passwd-link")).unwrap();
    symlink("../etc/passwd", src.join("link")).unwrap();
    // A sparse file: 4 KiB of data, a hole, 4 KiB of data.
    {
        let f = fs::File::create(src.join("sparse")).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 4096], 0).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[9u8; 4096], 100 << 20).unwrap();
    }
    let has_xattrs = rustix::fs::setxattr(
        src.join("etc/passwd").as_path(),
        "user.test",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    let out = dir.path().join("dir.ext4");
    ok(&run(&["--owner", "0:0"], &src, &out));
    // The expected tree, read from the source directory itself.
    let mut want = snapshot(&src);
    for n in &mut want.inodes {
        n.uid = 0;
        n.gid = 0;
    }
    check_image(&out, &want, NO_RW);
    if has_xattrs {
        assert!(want
            .node(b"etc/passwd")
            .unwrap()
            .xattrs
            .contains_key(&b"user.test"[..]));
    }
    // The sparse file stayed sparse.
    if let Some(s) = common::debugfs(&out, "stat /sparse") {
        assert!(s.contains("Size: 104861696"), "{}", &s[..300]);
    }
}

/// The fixture the README builds: spot checks of what its layers say.
#[test]
fn the_bundled_example() {
    let dir = scratch();
    let out = dir.path().join("example.ext4");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example-oci");
    let o = Command::new(common::bin())
        .arg("build")
        .arg(&fixture)
        .arg("-o")
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
    assert_eq!(v["layers"][1]["compression"], "zstd");
    assert!(v["image_digest"].as_str().unwrap().starts_with("sha256:"));
    common::e2fsck(&out);
    if !can_mount() {
        skip("example contents", "needs root");
        return;
    }
    let m = Mounted::new(&out, true).unwrap();
    let t = snapshot(m.path());
    assert!(t.node(b"etc/motd").is_none(), "whiteout ignored");
    assert!(
        t.node(b"var/cache/stale-1").is_none() && t.node(b"var/cache/fresh").is_some(),
        "opaque ignored"
    );
    assert_eq!(t.node(b"bin/su").unwrap().mode, 0o4755);
    assert!(t
        .node(b"bin/ping")
        .unwrap()
        .xattrs
        .contains_key(&b"security.capability"[..]));
    assert_eq!(
        t.node(b"etc/hostname").unwrap().mtime,
        (1_700_000_000, 123_456_789)
    );
    assert_eq!(
        fs::read(m.path().join("etc/os-release")).unwrap(),
        b"NAME=\"oci2ext4 example\"\nID=example\nVERSION_ID=2\n"
    );
    assert_eq!(t.node(b"dev/null").unwrap().kind, Kind::Char(1, 3));
    assert_eq!(t.node(b"home/user/.profile").unwrap().uid, 1000);
    assert!(t
        .link_groups()
        .iter()
        .any(|g| g.contains(&b"bin/ls"[..]) && g.contains(&b"bin/busybox"[..])));
}

/// Compares with `umoci raw unpack` of the same layout, entry for entry. Directory times are
/// left out: umoci stamps the directories it makes or changes with the time of unpacking.
#[test]
fn same_tree_as_umoci() {
    if Command::new("umoci").arg("--version").output().is_err() || !can_mount() {
        skip("umoci comparison", "needs umoci and root");
        return;
    }
    let dir = scratch();
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let l1 = layer(|g| {
        g.dir("etc", Attrs::new(0o755))
            .file("etc/passwd", Attrs::new(0o644), b"root:x:0:0\n")
            .file("etc/shadow", Attrs::new(0o600).owner(0, 42), b"secret")
            .dir("var/cache", Attrs::new(0o755))
            .file("var/cache/a", Attrs::new(0o644), b"a")
            .file("var/cache/b", Attrs::new(0o644), b"b")
            .file(
                "bin/ping",
                Attrs::new(0o4755).xattr(b"security.capability", &cap),
                b"ping",
            )
            .hardlink("bin/ping6", "bin/ping")
            .symlink("bin/sh", "busybox")
            .device("dev/null", Attrs::new(0o666), 1, 3)
            .fifo("run/fifo", Attrs::new(0o600))
            .file(
                "home/u/f",
                Attrs::new(0o640).owner(1000, 1000).mtime(1_600_000_000, 5),
                b"user",
            );
    });
    let l2 = layer(|g| {
        g.file(
            "etc/passwd",
            Attrs::new(0o644),
            b"root:x:0:0\nu:x:1000:1000\n",
        )
        .whiteout("etc/shadow")
        .opaque("var/cache")
        .file("var/cache/c", Attrs::new(0o644), b"c")
        .whiteout("home/u")
        .file("home/u/g", Attrs::new(0o600), b"new");
    });
    let l3 = layer(|g| {
        g.whiteout("bin/ping6")
            .file("etc/added", Attrs::new(0o644), b"3");
    });
    let spec = ImageSpec::new(vec![
        (gzip(&l1.0), TGZ, l1.0.clone()),
        (l2.0.clone(), TAR, l2.0.clone()),
        (gzip(&l3.0), TGZ, l3.0.clone()),
    ]);
    let layout = dir.path().join("layout");
    write_layout(&layout, &[("latest", &spec)]);
    let theirs = common::umoci_tree(&layout, "latest", dir.path()).unwrap();
    let out = dir.path().join("ours.ext4");
    ok(&run(&[], &layout, &out));
    let m = Mounted::new(&out, true).unwrap();
    let ours = common::umoci_comparable(snapshot(m.path()));
    common::assert_same_tree(&theirs, &ours);
    // And both agree with the model.
    let mut want = expected(&[l1.1, l2.1, l3.1]);
    for n in &mut want.inodes {
        if n.kind == Kind::Dir {
            n.mtime = (0, 0);
        }
    }
    common::assert_same_tree(&want, &ours);
}

/// Sparse files archived by GNU tar, in its old GNU format and in PAX format 1.0: holes stay
/// holes, data reads back the same.
#[test]
fn gnu_tar_sparse_files() {
    if Command::new("tar")
        .arg("--version")
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).contains("GNU"))
        .unwrap_or(true)
    {
        skip("GNU sparse archives", "needs GNU tar");
        return;
    }
    let dir = scratch();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let sparse = src.join("sparse.img");
    {
        let f = fs::File::create(&sparse).unwrap();
        let mut rng = common::Rng::new(9);
        for (offset, len) in [
            (0u64, 10_000usize),
            (64 << 20, 4096),
            (200 << 20, 123),
            ((512u64 << 20) - 4096, 4096),
        ] {
            let mut data = vec![0u8; len];
            rng.fill(&mut data);
            std::os::unix::fs::FileExt::write_all_at(&f, &data, offset).unwrap();
        }
    }
    let want_sha = common::sha256_file(&sparse);
    for (format, archive) in [("gnu", "old-gnu.tar"), ("posix", "pax.tar")] {
        let tar = dir.path().join(archive);
        let o = Command::new("tar")
            .args(["--sparse", &format!("--format={format}"), "-cf"])
            .arg(&tar)
            .arg("-C")
            .arg(&src)
            .arg("sparse.img")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            fs::metadata(&tar).unwrap().len() < 1 << 20,
            "tar did not store {format} sparse"
        );
        let out = dir.path().join(format!("{format}.ext4"));
        ok(&run(&[], &tar, &out));
        common::e2fsck(&out);
        if let Some(stat) = common::debugfs(&out, "stat /sparse.img") {
            assert!(
                stat.contains("Size: 536870912"),
                "{format}: {}",
                &stat[..400]
            );
        }
        if can_mount() {
            let m = Mounted::new(&out, true).unwrap();
            let p = m.path().join("sparse.img");
            assert_eq!(common::sha256_file(&p), want_sha, "{format}");
            assert!(
                fs::metadata(&p).unwrap().blocks() * 512 <= 64 << 10,
                "{format}: holes were filled"
            );
        }
    }
}

/// An archive written by bsdtar (libarchive): its xattrs come as `LIBARCHIVE.xattr.*` records.
#[test]
fn bsdtar_archives_with_xattrs() {
    if Command::new("bsdtar").arg("--version").output().is_err() {
        skip("bsdtar archives", "needs bsdtar (libarchive-tools)");
        return;
    }
    let dir = scratch();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("tagged"), b"content").unwrap();
    let tagged = src.join("tagged");
    if rustix::fs::setxattr(
        tagged.as_path(),
        "user.origin",
        b"bsd\0tar \xff",
        rustix::fs::XattrFlags::empty(),
    )
    .is_err()
    {
        skip(
            "bsdtar archives",
            "the scratch filesystem has no user xattrs",
        );
        return;
    }
    let tar = dir.path().join("bsd.tar");
    let o = Command::new("bsdtar")
        .args(["--xattrs", "--format", "pax", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("tagged")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = fs::read(&tar).unwrap();
    assert!(
        raw.windows(17).any(|w| w == b"LIBARCHIVE.xattr."),
        "bsdtar wrote no LIBARCHIVE records"
    );
    let out = dir.path().join("bsd.ext4");
    ok(&run(&[], &tar, &out));
    common::e2fsck(&out);
    if let Some(s) = common::debugfs(&out, "ea_get /tagged user.origin") {
        assert!(s.contains("62 73 64 00 74 61 72 20 ff"), "{s}");
    }
    if can_mount() {
        let m = Mounted::new(&out, true).unwrap();
        let x = common::read_xattrs(&m.path().join("tagged"));
        assert_eq!(
            x.get(&b"user.origin"[..]).map(Vec::as_slice),
            Some(&b"bsd\0tar \xff"[..])
        );
    }
}

//! OCI layer semantics: whiteouts, opaque directories, names, replacement and hard links, each
//! rule in both orders within a layer, compared through a kernel mount with an independent
//! model of the specification.

mod common;

use std::fs;

use common::layers::{build_layers as build, expected, gzip, zstd, LayerGen, Op};
use common::model::Kind;
use common::tars::Attrs;
use common::{check_image, scratch, Check};
use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::source::file_layer;
use oci2ext4::{BuildOptions, ErrorKind, ImageBuilder};

const NO_RW: Check = Check { read_write: false };

/// Builds `layers` and checks the image against the model of their ops.
fn check_layers(name: &str, layers: Vec<LayerGen>) {
    let dir = scratch();
    let (blobs, ops): (Vec<Vec<u8>>, Vec<Vec<Op>>) =
        layers.into_iter().map(LayerGen::finish).unzip();
    let image = build(&dir, name, &blobs).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_image(&image, &expected(&ops), NO_RW);
}

/// The same rule with the upper layer's entries in both orders.
fn both_orders(
    name: &str,
    lower: impl Fn() -> LayerGen,
    upper_a: impl Fn() -> LayerGen,
    upper_b: impl Fn() -> LayerGen,
) {
    check_layers(&format!("{name}-a"), vec![lower(), upper_a()]);
    check_layers(&format!("{name}-b"), vec![lower(), upper_b()]);
    // Both orders give the same tree.
    let ops = |g: LayerGen| g.finish().1;
    let (a, b) = (
        expected(&[ops(lower()), ops(upper_a())]),
        expected(&[ops(lower()), ops(upper_b())]),
    );
    assert_eq!(
        common::path_set(&a),
        common::path_set(&b),
        "{name}: the model itself depends on order"
    );
}

fn a(mode: u32) -> Attrs {
    Attrs::new(mode)
}

fn base() -> LayerGen {
    let mut g = LayerGen::new();
    g.dir("etc", a(0o755))
        .file("etc/motd", a(0o644), b"lower motd")
        .file("etc/keep", a(0o644), b"kept")
        .dir("var", a(0o755))
        .dir("var/cache", a(0o700).owner(3, 3))
        .file("var/cache/one", a(0o644), b"1")
        .file("var/cache/two", a(0o644), b"2")
        .dir("var/cache/sub", a(0o755))
        .file("var/cache/sub/three", a(0o644), b"3")
        .dir("usr", a(0o755))
        .dir("usr/lib", a(0o755))
        .file("usr/lib/libc.so", a(0o755), b"libc")
        .symlink("lib", "usr/lib")
        .symlink("abslib", "/usr/lib")
        .symlink("escape", "../../../../usr")
        .symlink("loop-a", "loop-b")
        .symlink("loop-b", "loop-a");
    g
}

#[test]
fn whiteout_removes_a_lower_file() {
    let mut up = LayerGen::new();
    up.whiteout("etc/motd");
    check_layers("wh-file", vec![base(), up]);
}

#[test]
fn whiteout_and_same_layer_entry_in_both_orders() {
    both_orders(
        "wh-same-layer",
        base,
        || {
            let mut g = LayerGen::new();
            g.whiteout("etc/motd")
                .file("etc/motd", a(0o600), b"upper motd");
            g
        },
        || {
            let mut g = LayerGen::new();
            g.file("etc/motd", a(0o600), b"upper motd")
                .whiteout("etc/motd");
            g
        },
    );
}

#[test]
fn whiteout_of_a_directory_spares_same_layer_children_in_both_orders() {
    both_orders(
        "wh-dir",
        base,
        || {
            let mut g = LayerGen::new();
            g.whiteout("var/cache").dir("var/cache", a(0o755)).file(
                "var/cache/new",
                a(0o644),
                b"new",
            );
            g
        },
        || {
            let mut g = LayerGen::new();
            g.dir("var/cache", a(0o755))
                .file("var/cache/new", a(0o644), b"new")
                .whiteout("var/cache");
            g
        },
    );
    // The same with no directory entry in the upper layer: the directory is made afresh.
    both_orders(
        "wh-dir-implicit",
        base,
        || {
            let mut g = LayerGen::new();
            g.whiteout("var/cache")
                .file("var/cache/sub/new", a(0o644), b"new");
            g
        },
        || {
            let mut g = LayerGen::new();
            g.file("var/cache/sub/new", a(0o644), b"new")
                .whiteout("var/cache");
            g
        },
    );
}

#[test]
fn whiteout_of_something_missing_is_no_error() {
    let mut up = LayerGen::new();
    up.whiteout("nothing/here").whiteout("etc/not-there");
    check_layers("wh-missing", vec![base(), up]);
}

#[test]
fn whiteout_with_an_empty_or_dot_name_is_an_error() {
    for bad in ["etc/.wh.", ".wh..", "etc/.wh..."] {
        let dir = scratch();
        let mut g = LayerGen::new();
        g.raw(bad);
        let (blob, _) = g.finish();
        let e = build(&dir, "bad", &[blob]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CorruptInput, "{bad}: {e}");
        assert!(e.to_string().contains("names no file"), "{e}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "output left behind"
        );
    }
}

#[test]
fn opaque_directory_in_both_orders() {
    both_orders(
        "opq",
        base,
        || {
            let mut g = LayerGen::new();
            g.dir("var/cache", a(0o750)).opaque("var/cache").file(
                "var/cache/fresh",
                a(0o644),
                b"fresh",
            );
            g
        },
        || {
            let mut g = LayerGen::new();
            g.file("var/cache/fresh", a(0o644), b"fresh")
                .opaque("var/cache")
                .dir("var/cache", a(0o750));
            g
        },
    );
    // Without an entry for the directory itself, it keeps its attributes.
    both_orders(
        "opq-no-dir-entry",
        base,
        || {
            let mut g = LayerGen::new();
            g.opaque("var/cache")
                .file("var/cache/sub/deep", a(0o644), b"deep");
            g
        },
        || {
            let mut g = LayerGen::new();
            g.file("var/cache/sub/deep", a(0o644), b"deep")
                .opaque("var/cache");
            g
        },
    );
}

#[test]
fn other_whiteout_namespace_names_are_ignored() {
    let mut up = LayerGen::new();
    up.raw("etc/.wh..wh.plnk")
        .raw(".wh..wh.aufs")
        .file("etc/new", a(0o644), b"n");
    check_layers("wh-meta", vec![base(), up]);
}

#[test]
fn whiteouts_only_reach_lower_layers_across_three() {
    let mut l2 = LayerGen::new();
    l2.file("etc/motd", a(0o644), b"second")
        .file("a", a(0o644), b"a2");
    let mut l3 = LayerGen::new();
    l3.whiteout("etc/motd")
        .whiteout("a")
        .file("a", a(0o644), b"a3")
        .opaque("etc")
        .file("etc/only", a(0o644), b"o");
    check_layers("three", vec![base(), l2, l3]);
}

#[test]
fn names_are_normalized_and_escapes_refused() {
    let mut g = LayerGen::new();
    g.file("/abs/file", a(0o644), b"a")
        .file("./dot/file", a(0o644), b"d")
        .file("x/./y/../z", a(0o644), b"z");
    let (blob, _) = g.finish();
    let dir = scratch();
    let image = build(&dir, "names", &[blob]).unwrap();
    let mut want = common::model::Model::new((0, 0));
    for (p, c) in [("abs/file", b"a"), ("dot/file", b"d"), ("x/z", b"z")] {
        want.put(
            p.as_bytes(),
            a(0o644).to_node(Kind::File {
                size: 1,
                sha256: sha(c),
            }),
        );
    }
    check_image(&image, &want.tree, NO_RW);
    for bad in ["../etc/passwd", "a/../../b", "/../x"] {
        let mut g = LayerGen::new();
        g.file(bad, a(0o644), b"evil");
        let (blob, _) = g.finish();
        let e = build(&dir, "escape", &[blob]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CorruptInput, "{bad}: {e}");
        assert_eq!(e.entry(), Some(bad), "{e}");
    }
}

fn sha(d: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(d).into()
}

#[test]
fn symlinks_in_parents_resolve_inside_the_image() {
    let mut up = LayerGen::new();
    up.file("lib/via-relative", a(0o644), b"r")
        .file("abslib/via-absolute", a(0o644), b"a")
        .file("escape/lib/clamped", a(0o644), b"c");
    let (b0, ops0) = base().finish();
    let (b1, _) = up.finish();
    let dir = scratch();
    let image = build(&dir, "symparent", &[b0, b1]).unwrap();
    let mut want = expected(&[ops0]);
    let mut m = common::model::Model {
        tree: want.clone(),
        implicit_time: (0, 0),
    };
    for (p, c) in [
        ("usr/lib/via-relative", b"r"),
        ("usr/lib/via-absolute", b"a"),
        ("usr/lib/clamped", b"c"),
    ] {
        m.put(
            p.as_bytes(),
            a(0o644).to_node(Kind::File {
                size: 1,
                sha256: sha(c),
            }),
        );
    }
    want = m.tree;
    check_image(&image, &want, NO_RW);
    // A loop is an error, not a hang.
    let mut up = LayerGen::new();
    up.file("loop-a/x", a(0o644), b"x");
    let (b0, _) = base().finish();
    let e = build(&dir, "loop", &[b0, up.finish().0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert_eq!(e.entry(), Some("loop-a/x"));
    // The last component is never followed: a symlink replaced by a file stays a file.
    let mut up = LayerGen::new();
    up.file("lib", a(0o644), b"not a link");
    check_layers("last-component", vec![base(), up]);
}

#[test]
fn missing_parents_and_parents_that_are_files() {
    let mut g = LayerGen::new();
    g.file("a/b/c/d", a(0o600).owner(5, 6), b"deep");
    check_layers("implicit", vec![g]);
    let mut g = LayerGen::new();
    g.file("f", a(0o644), b"file")
        .file("f/g", a(0o644), b"under a file");
    let dir = scratch();
    let e = build(&dir, "notdir", &[g.finish().0]).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert_eq!(e.entry(), Some("f/g"));
}

#[test]
fn a_lower_file_in_a_parent_path_is_an_error_unless_the_layer_replaces_it() {
    // Nothing in the layer whites out the lower file `etc/keep` or makes it a directory.
    let mut up = LayerGen::new();
    up.file("etc/keep/x", a(0o644), b"x")
        .file("etc/other", a(0o644), b"o");
    let dir = scratch();
    let e = build(
        &dir,
        "lower-file-parent",
        &[base().finish().0, up.finish().0],
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"keep\" is not a directory"), "{e}");
    assert_eq!(e.entry(), Some("etc/keep/x"));
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().contains("-layer"))
        .collect();
    assert!(left.is_empty(), "output left behind: {left:?}");
    // The directory it gave way to is replaced by a file later in the layer: still an error.
    let mut up = LayerGen::new();
    up.file("etc/keep/x", a(0o644), b"x")
        .file("etc/keep", a(0o644), b"file again");
    let e = build(
        &dir,
        "lower-file-parent-again",
        &[base().finish().0, up.finish().0],
    )
    .unwrap_err();
    assert_eq!(e.entry(), Some("etc/keep/x"), "{e}");
    // An opaque marker on the parent accounts for it, after the entry as before it.
    for marker_last in [false, true] {
        let mut up = LayerGen::new();
        if marker_last {
            up.file("etc/keep/x", a(0o644), b"x").opaque("etc");
        } else {
            up.opaque("etc").file("etc/keep/x", a(0o644), b"x");
        }
        check_layers(
            &format!("opaque-over-lower-file-{marker_last}"),
            vec![base(), up],
        );
    }
}

#[test]
fn replacement_rules() {
    let mut up = LayerGen::new();
    up.dir("var/cache", a(0o711).owner(9, 9)) // dir over dir: attributes replaced, children kept
        .file("etc", a(0o644), b"etc is a file now") // file over dir: the subtree goes
        .dir("usr/lib/libc.so", a(0o755)); // dir over file
    check_layers("replace", vec![base(), up]);
    // A file replaced in an upper layer gets a new inode: its other names keep the old content.
    let mut l1 = LayerGen::new();
    l1.file("x", a(0o644), b"old").hardlink("y", "x");
    let mut l2 = LayerGen::new();
    l2.file("x", a(0o644), b"new");
    check_layers("relink", vec![l1, l2]);
}

#[test]
fn hard_links_across_and_within_layers() {
    let mut up = LayerGen::new();
    up.hardlink("bin/libc-link", "usr/lib/libc.so") // lower target
        .hardlink("early", "late") // target later in the same layer
        .file("late", a(0o640), b"late target");
    check_layers("links", vec![base(), up]);
    let dir = scratch();
    let mut g = LayerGen::new();
    g.hardlink("dangling", "nowhere");
    let e = build(&dir, "dangling", &[g.finish().0]).unwrap_err();
    assert!(
        e.to_string()
            .contains("exists neither in this layer nor below"),
        "{e}"
    );
    assert_eq!(e.entry(), Some("dangling"));
    let mut g = LayerGen::new();
    g.dir("d", a(0o755)).hardlink("to-dir", "d");
    let e = build(&dir, "todir", &[g.finish().0]).unwrap_err();
    assert!(e.to_string().contains("hard link to a directory"), "{e}");
}

#[test]
fn a_repeated_path_in_one_layer_takes_the_last_entry() {
    let mut g = LayerGen::new();
    g.file("p", a(0o644), b"first")
        .file("p", a(0o600), b"second")
        .symlink("p", "third");
    check_layers("repeat", vec![g]);
}

#[test]
fn compressions_and_empty_layers() {
    let dir = scratch();
    let mut g = LayerGen::new();
    g.file("gz", a(0o644), b"gzip layer");
    let (t1, o1) = g.finish();
    let mut g = LayerGen::new();
    g.file("zs", a(0o644), b"zstd layer");
    let (t2, o2) = g.finish();
    let empty_tar = vec![0u8; 1024];
    let blobs = vec![
        gzip(&t1),
        zstd(&t2),
        Vec::new(),
        empty_tar.clone(),
        gzip(&[]),
        gzip(&empty_tar),
        zstd(&[]),
    ];
    let image = build(&dir, "compressions", &blobs).unwrap();
    check_image(&image, &expected(&[o1, o2]), NO_RW);
}

#[test]
fn truncated_and_corrupt_streams_are_errors() {
    let mut g = LayerGen::new();
    let mut big = vec![0u8; 300_000];
    common::Rng::new(1).fill(&mut big);
    g.file("f", a(0o644), &big);
    let (tar, _) = g.finish();
    let dir = scratch();
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    for (name, blob) in [
        ("gzip-cut", gz[..gz.len() / 2].to_vec()),
        ("zstd-cut", zs[..zs.len() / 2].to_vec()),
        ("gzip-flip", flipped),
        ("tar-cut", tar[..tar.len() / 3].to_vec()),
    ] {
        let e = build(&dir, name, &[blob]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CorruptInput, "{name}: {e}");
        assert!(e.layer().is_some(), "{name}: no layer named: {e}");
    }
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".ext4")));
}

#[test]
fn tolerated_tar_damage() {
    let mut g = LayerGen::new();
    g.file("f", a(0o644), b"abc");
    let (tar, ops) = g.finish();
    // Header blocks: PAX header + its data, then the file's header and data.
    let data_end = tar.len() - 1024 - (tar.len() - 1024) % 512;
    let dir = scratch();
    for (name, blob) in [
        ("no-end-blocks", tar[..data_end].to_vec()),
        ("cut-padding", tar[..data_end - 400].to_vec()),
    ] {
        let mut b = ImageBuilder::create(
            dir.path().join(format!("{name}.ext4")),
            BuildOptions::default(),
        )
        .unwrap();
        let p = dir.path().join(name);
        fs::write(&p, &blob).unwrap();
        apply_layers(&mut b, vec![file_layer(&p)], &mut NoProgress).unwrap();
        assert!(!b.warnings().is_empty(), "{name}: no warning");
        b.finish().unwrap();
        check_image(
            &dir.path().join(format!("{name}.ext4")),
            &expected(std::slice::from_ref(&ops)),
            NO_RW,
        );
    }
}

#[test]
fn devices_fifos_owners_and_xattrs_from_layers() {
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut g = LayerGen::new();
    g.device("dev/null", a(0o666), 1, 3)
        .fifo("run/ctl", a(0o600).owner(100, 101))
        .file(
            "bin/ping",
            a(0o755).xattr(b"security.capability", &cap),
            b"ping",
        )
        .file(
            "big-ids",
            a(0o644).owner(4_000_000_000, 3_000_000_000),
            b"ids",
        )
        .symlink("abs", "/etc/../verbatim//target");
    check_layers("special", vec![g]);
}

#[test]
fn digests_are_checked() {
    use oci2ext4::blob::Digest;
    let dir = scratch();
    let mut g = LayerGen::new();
    g.file("f", a(0o644), b"content");
    let (tar, _) = g.finish();
    let blob = gzip(&tar);
    let p = dir.path().join("layer");
    fs::write(&p, &blob).unwrap();
    let run = |blob_digest: Option<Digest>, diff_id: Option<Digest>| {
        let image = dir.path().join("d.ext4");
        let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
        let mut l = file_layer(&p);
        l.blob_digest = blob_digest;
        l.diff_id = diff_id;
        apply_layers(&mut b, vec![l], &mut NoProgress)?;
        b.finish()
    };
    run(Some(Digest::of(&blob)), Some(Digest::of(&tar))).unwrap();
    let e = run(Some(Digest::of(b"other")), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    let e = run(None, Some(Digest::of(b"other"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    assert!(e.to_string().contains("diff_id"), "{e}");

    // A source that checks the blob itself (a download) is trusted with it: the blob is not
    // hashed again, and the report names the digest the source checked.
    let claimed = Digest::of(b"checked by the source");
    let image = dir.path().join("v.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    let mut l = file_layer(&p);
    l.blob_digest = Some(claimed);
    l.blob_verified = true;
    l.diff_id = Some(Digest::of(&tar));
    let reports = apply_layers(&mut b, vec![l], &mut NoProgress).unwrap();
    b.finish().unwrap();
    assert_eq!(reports[0].blob_digest, Some(claimed));
    assert_eq!(reports[0].diff_id, Some(Digest::of(&tar)));
}

#[test]
fn a_whiteout_node_carries_no_attributes_of_its_own() {
    // Paranoia: a whiteout file is never written out, even with xattrs.
    let mut up = LayerGen::new();
    up.whiteout("etc/keep");
    check_layers("wh-not-written", vec![base(), up]);
}

#[test]
fn a_lower_file_in_a_parent_path_gives_way_in_both_orders() {
    // Over a lower file `etc/keep`, the layer both whites it out and puts `etc/keep/x`.
    both_orders(
        "wh-file-then-child",
        base,
        || {
            let mut g = LayerGen::new();
            g.whiteout("etc/keep").file("etc/keep/x", a(0o644), b"x");
            g
        },
        || {
            let mut g = LayerGen::new();
            g.file("etc/keep/x", a(0o644), b"x").whiteout("etc/keep");
            g
        },
    );
    // With a directory entry for it instead of a whiteout, before or after the child.
    both_orders(
        "dir-over-file-then-child",
        base,
        || {
            let mut g = LayerGen::new();
            g.dir("etc/keep", a(0o700))
                .file("etc/keep/x", a(0o644), b"x");
            g
        },
        || {
            let mut g = LayerGen::new();
            g.file("etc/keep/x", a(0o644), b"x")
                .dir("etc/keep", a(0o700));
            g
        },
    );
}

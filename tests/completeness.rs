//! ext4 writer completeness: features, hashed directories, journal, xattr blocks and ACLs,
//! extent trees, huge and sparse files, big trees, reproducible output.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::model::{Kind, Model};
use common::{
    can_mount, check_image, e2fsck, meta, node, scratch, skip, sparse_sha, Check, Mounted, Pattern,
    Rng,
};
use oci2ext4::{BlockSize, BuildOptions, ImageBuilder, Xattr};
use sha2::{Digest, Sha256};

#[test]
fn feature_set_is_what_mkfs_would_choose() {
    let dir = scratch();
    let image = dir.path().join("f.ext4");
    ImageBuilder::create(&image, BuildOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    let Some(h) = common::dumpe2fs(&image) else {
        return;
    };
    let features = h
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap()
        .to_string();
    for f in [
        "has_journal",
        "ext_attr",
        "dir_index",
        "filetype",
        "extent",
        "64bit",
        "flex_bg",
        "sparse_super",
        "large_file",
        "huge_file",
        "dir_nlink",
        "extra_isize",
        "metadata_csum",
    ] {
        assert!(
            features.split_whitespace().any(|w| w == f),
            "{f} missing: {features}"
        );
    }
    assert!(!features.contains("read-only"), "{features}");
    assert!(
        h.contains("Journal size:") || h.contains("Total journal size:"),
        "{h}"
    );
    let mut opts = BuildOptions::default();
    opts.journal = false;
    let nj = dir.path().join("nj.ext4");
    ImageBuilder::create(&nj, opts).unwrap().finish().unwrap();
    let h = common::dumpe2fs(&nj).unwrap();
    assert!(!h.contains("has_journal"), "{h}");
    check_image(&nj, &Model::new((0, 0)).tree, Check::default());
}

#[test]
fn journal_sizes_follow_mkfs() {
    let dir = scratch();
    for (size, blocks) in [
        (64u64 << 20, 1024u64),
        (512 << 20, 4096),
        (1 << 30, 8192),
        (3 << 30, 16384),
    ] {
        let image = dir.path().join(format!("j{size}.ext4"));
        let mut opts = BuildOptions::default();
        opts.size = Some(size);
        let s = ImageBuilder::create(&image, opts)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(s.journal_blocks, blocks, "size {size}");
        // The journal body is a hole: the file takes far less than the journal.
        assert!(fs::metadata(&image).unwrap().blocks() * 512 < blocks * 4096 / 2 + (4 << 20));
        e2fsck(&image);
    }
}

#[test]
fn hundred_thousand_names_through_an_htree() {
    let dir = scratch();
    let image = dir.path().join("big.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    b.add_dir("big", meta(0o755)).unwrap();
    let mut names = BTreeSet::new();
    let mut rng = Rng::new(7);
    for i in 0..100_000u32 {
        // Lengths from 1 to 255 bytes, every one unique.
        let len = 1 + rng.below(255) as usize;
        let mut name = format!("{i:x}-");
        while name.len() < len {
            name.push((b'a' + rng.below(26) as u8) as char);
        }
        name.truncate(len.max(format!("{i:x}-").len()));
        names.insert(name.clone());
        b.add_file(format!("big/{name}"), meta(0o644), &mut &b""[..])
            .unwrap();
    }
    b.finish().unwrap();
    e2fsck(&image);
    if let Some(out) = common::debugfs(&image, "htree /big") {
        assert!(out.contains("Root node dump"), "no htree index");
        assert!(
            out.contains("Indirect levels: 1") || out.contains("Indirect levels: 0"),
            "{}",
            &out[..500]
        );
    }
    if !can_mount() {
        skip("kernel lookups", "needs root");
        return;
    }
    let m = Mounted::new(&image, true).unwrap();
    let big = m.path().join("big");
    for name in &names {
        let md =
            fs::symlink_metadata(big.join(name)).unwrap_or_else(|e| panic!("stat {name}: {e}"));
        assert!(md.is_file());
    }
    let read: BTreeSet<String> = fs::read_dir(&big)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(read, names);
    assert!(fs::symlink_metadata(big.join("not-there")).is_err());
    drop(m);
    // The guest can add names to it.
    let m = Mounted::new(&image, false).unwrap();
    common::grow_largest_directory(m.path());
    drop(m);
    e2fsck(&image);
}

#[test]
fn more_than_65000_subdirectories() {
    let dir = scratch();
    let image = dir.path().join("many.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    let mut model = Model::new((0, 0));
    model.put(b"many", node(Kind::Dir, 0o755));
    b.add_dir("many", meta(0o755)).unwrap();
    for i in 0..70_000 {
        let p = format!("many/d{i}");
        b.add_dir(&p, meta(0o755)).unwrap();
        model.put(p.as_bytes(), node(Kind::Dir, 0o755));
    }
    b.finish().unwrap();
    check_image(&image, &model.tree, Check::default());
    if can_mount() {
        let m = Mounted::new(&image, true).unwrap();
        assert_eq!(
            fs::metadata(m.path().join("many")).unwrap().nlink(),
            1,
            "dir_nlink: a huge directory counts 1 link"
        );
        assert_eq!(fs::metadata(m.path().join("many/d5")).unwrap().nlink(), 2);
    }
}

#[test]
fn a_million_inodes() {
    let dir = scratch();
    let image = dir.path().join("million.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    for i in 0..1_000_000u32 {
        b.add_file(
            format!("{:02x}/{:02x}/{i}", i % 251, i % 241),
            meta(0o644),
            &mut &b""[..],
        )
        .unwrap();
    }
    let s = b.finish().unwrap();
    assert!(s.inodes_used >= 1_000_000);
    e2fsck(&image);
    if !can_mount() {
        skip("kernel walk", "needs root");
        return;
    }
    let m = Mounted::new(&image, true).unwrap();
    let mut count = 0u64;
    for a in fs::read_dir(m.path()).unwrap() {
        let a = a.unwrap();
        if a.file_name() == "lost+found" {
            continue;
        }
        for bdir in fs::read_dir(a.path()).unwrap() {
            count += fs::read_dir(bdir.unwrap().path()).unwrap().count() as u64;
        }
    }
    assert_eq!(count, 1_000_000);
}

/// The xattr wire format of an ACL.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(t, p, id) in entries {
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&p.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[test]
fn xattr_blocks_capabilities_and_acls() {
    let dir = scratch();
    let image = dir.path().join("x.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    let mut model = Model::new((0, 0));
    let cap = vec![
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let access = acl(&[
        (1, 7, u32::MAX),
        (2, 5, 1000),
        (2, 4, 1001),
        (4, 5, u32::MAX),
        (8, 5, 50),
        (0x10, 7, u32::MAX),
        (0x20, 0, u32::MAX),
    ]);
    let default = acl(&[
        (1, 7, u32::MAX),
        (4, 5, u32::MAX),
        (8, 7, 2000),
        (0x10, 7, u32::MAX),
        (0x20, 5, u32::MAX),
    ]);
    // 3 KiB over several attributes: some in the inode, the rest in the block.
    let mut xs = vec![
        Xattr {
            name: b"security.capability".to_vec(),
            value: cap.clone(),
        },
        Xattr {
            name: b"system.posix_acl_access".to_vec(),
            value: access.clone(),
        },
    ];
    let mut rng = Rng::new(3);
    for i in 0..6 {
        let mut v = vec![0u8; 500];
        rng.fill(&mut v);
        xs.push(Xattr {
            name: format!("user.blob{i}").into_bytes(),
            value: v,
        });
    }
    xs.push(Xattr {
        name: b"trusted.overlay.opaque".to_vec(),
        value: b"y".to_vec(),
    });
    xs.push(Xattr {
        name: b"security.selinux".to_vec(),
        value: b"system_u:object_r:bin_t:s0\0".to_vec(),
    });
    let mut m = meta(0o750);
    m.xattrs = xs.clone();
    b.add_file("bin/tool", m, &mut &b"tool"[..]).unwrap();
    let mut n = node(
        Kind::File {
            size: 4,
            sha256: Sha256::digest(b"tool").into(),
        },
        0o750,
    );
    for x in &xs {
        n.xattrs.insert(
            x.name.clone(),
            common::normalize_xattr(&x.name, x.value.clone()),
        );
    }
    model.put(b"bin/tool", n);
    let mut dm = meta(0o2775);
    dm.xattrs = vec![
        Xattr {
            name: b"system.posix_acl_default".to_vec(),
            value: default.clone(),
        },
        Xattr {
            name: b"system.posix_acl_access".to_vec(),
            value: access.clone(),
        },
    ];
    b.add_dir("shared", dm).unwrap();
    let mut n = node(Kind::Dir, 0o2775);
    n.xattrs.insert(
        b"system.posix_acl_default".to_vec(),
        common::normalize_xattr(b"system.posix_acl_default", default),
    );
    n.xattrs.insert(
        b"system.posix_acl_access".to_vec(),
        common::normalize_xattr(b"system.posix_acl_access", access),
    );
    model.put(b"shared", n);
    model.put(b"bin", node(Kind::Dir, 0o755));
    model.tree.inodes[model.tree.paths[&b"bin"[..]]].mtime = (0, 0);
    b.finish().unwrap();
    check_image(&image, &model.tree, Check::default());
    if let Some(out) = common::debugfs(&image, "stat /bin/tool") {
        assert!(
            out.contains("File ACL: ") && !out.contains("File ACL: 0"),
            "no xattr block:\n{out}"
        );
    }
    if can_mount() && Command::new("getfacl").arg("--version").output().is_ok() {
        let m = Mounted::new(&image, true).unwrap();
        let out = Command::new("getfacl")
            .arg("-n")
            .arg(m.path().join("shared"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for line in [
            "user:1000:r-x",
            "user:1001:r--",
            "group:50:r-x",
            "default:group:2000:rwx",
        ] {
            assert!(text.contains(line), "getfacl lacks {line}:\n{text}");
        }
    } else {
        skip(
            "getfacl",
            "needs root and the acl package; the ACL was compared through its xattr",
        );
    }
}

#[test]
fn five_gib_of_alternating_data_and_holes() {
    let dir = scratch();
    let image = dir.path().join("sparse.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    let size = 5u64 << 30;
    let segments: Vec<(u64, u64)> = (0..size / (2 << 20))
        .map(|i| (i * (2 << 20), 1 << 20))
        .collect();
    b.add_file_with("alternating", meta(0o644), |w| {
        let mut p = Pattern(Rng::new(11));
        for &(off, len) in &segments {
            w.skip_to(off)?;
            w.copy(&mut (&mut p).take(len), None)?;
        }
        Ok(size)
    })
    .unwrap();
    // Apparent 3 TiB with a few blocks of data.
    let huge = 3u64 << 40;
    let huge_segments = [(0u64, 4096u64), (1 << 40, 10), (huge - 4096, 4096)];
    b.add_file_with("three-tib", meta(0o600), |w| {
        let mut p = Pattern(Rng::new(12));
        for &(off, len) in &huge_segments {
            w.skip_to(off)?;
            w.copy(&mut (&mut p).take(len), None)?;
        }
        Ok(huge)
    })
    .unwrap();
    let s = b.finish().unwrap();
    // 2.5 GiB of data in 2560 extents: a two-level extent tree.
    assert!(s.blocks_used < (2700u64 << 20) / 4096, "{s:?}");
    let on_disk = fs::metadata(&image).unwrap().blocks() * 512;
    assert!(on_disk < 2800 << 20, "image takes {on_disk} bytes on disk");
    let mut model = Model::new((0, 0));
    model.put(
        b"alternating",
        node(
            Kind::File {
                size,
                sha256: sparse_sha(size, &segments, 11),
            },
            0o644,
        ),
    );
    e2fsck(&image);
    if let Some(out) = common::debugfs(&image, "stat /alternating") {
        assert!(out.contains("Size: 5368709120"), "{}", &out[..400]);
    }
    if !can_mount() {
        skip("kernel read-back", "needs root");
        return;
    }
    let m = Mounted::new(&image, true).unwrap();
    let md = fs::metadata(m.path().join("three-tib")).unwrap();
    assert_eq!(md.len(), huge);
    assert!(
        md.blocks() * 512 <= 3 * 4096,
        "three-tib takes {} blocks",
        md.blocks()
    );
    // Read the three data regions back and a spot in a hole.
    let f = fs::File::open(m.path().join("three-tib")).unwrap();
    let mut expect = Pattern(Rng::new(12));
    for &(off, len) in &huge_segments {
        let mut want = vec![0u8; len as usize];
        expect.read_exact(&mut want).unwrap();
        let mut got = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut got, off).unwrap();
        assert_eq!(got, want, "segment at {off}");
    }
    let mut hole = vec![1u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut hole, 2 << 40).unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    drop(f);
    let got = common::sha256_file(&m.path().join("alternating"));
    assert_eq!(
        Kind::File { size, sha256: got },
        model.tree.node(b"alternating").unwrap().kind
    );
}

#[test]
fn fragmented_files_get_deep_extent_trees() {
    let dir = scratch();
    let image = dir.path().join("frag.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    let mut model = Model::new((0, 0));
    // One data block every other block: one extent per block.
    for (name, n) in [
        ("five", 5u64),
        ("one-leaf", 340),
        ("two-leaves", 700),
        ("two-levels", 2000),
    ] {
        let segments: Vec<(u64, u64)> = (0..n).map(|i| (i * 8192, 4096)).collect();
        let size = n * 8192;
        b.add_file_with(name, meta(0o644), |w| {
            let mut p = Pattern(Rng::new(n));
            for &(off, len) in &segments {
                w.skip_to(off)?;
                w.copy(&mut (&mut p).take(len), None)?;
            }
            Ok(size)
        })
        .unwrap();
        model.put(
            name.as_bytes(),
            node(
                Kind::File {
                    size,
                    sha256: sparse_sha(size, &segments, n),
                },
                0o644,
            ),
        );
    }
    b.finish().unwrap();
    if let Some(out) = common::debugfs(&image, "stat /two-levels") {
        assert!(
            out.contains("(ETB1)") || out.contains("ETB1"),
            "no second-level index:\n{}",
            &out[..out.len().min(1500)]
        );
    }
    check_image(&image, &model.tree, Check::default());
}

fn build_example(out: &Path, extra_env: &[(&str, &str)]) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example-oci");
    let mut cmd = Command::new(common::bin());
    cmd.arg("build").arg(&fixture).arg("-o").arg(out).arg("-q");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn identical_input_gives_identical_bytes() {
    let dir = scratch();
    let (a, b) = (dir.path().join("a.ext4"), dir.path().join("sub-b.ext4"));
    build_example(&a, &[]);
    build_example(&b, &[]);
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "two builds of the example differ"
    );
    let c = dir.path().join("c.ext4");
    build_example(&c, &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert!(
        fs::read(&a).unwrap() != fs::read(&c).unwrap(),
        "SOURCE_DATE_EPOCH had no effect"
    );
    let d = dir.path().join("d.ext4");
    build_example(&d, &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert!(fs::read(&c).unwrap() == fs::read(&d).unwrap());
    let h = common::dumpe2fs(&c).unwrap_or_default();
    let h2 = common::dumpe2fs(&a).unwrap_or_default();
    let uuid = |h: &str| {
        h.lines()
            .find(|l| l.starts_with("Filesystem UUID"))
            .map(str::to_string)
    };
    assert_ne!(uuid(&h), uuid(&h2), "the UUID does not follow the content");
    e2fsck(&a);
}

#[test]
fn journal_replays_after_a_crash() {
    if !can_mount() {
        skip("journal replay", "needs root");
        return;
    }
    // With 4 KiB blocks, and with 1 KiB blocks (smaller files, so that they still span blocks
    // without filling the 64 MiB image's 4 MiB journal).
    journal_replay(BlockSize::K4, 10_000);
    journal_replay(BlockSize::K1, 3000);
}

/// Writes and syncs in a read-write mount, copies the image while mounted (a crash), and checks
/// that the kernel replays the journal of the copy.
fn journal_replay(bs: BlockSize, file_len: usize) {
    let dir = scratch();
    let image = dir.path().join("j.ext4");
    let mut opts = BuildOptions::default();
    opts.block_size = bs;
    let mut b = ImageBuilder::create(&image, opts).unwrap();
    b.add_file("existing", meta(0o644), &mut &b"before"[..])
        .unwrap();
    b.finish().unwrap();
    let crashed = dir.path().join("crashed.ext4");
    {
        let m = Mounted::new(&image, false).unwrap();
        for i in 0..200 {
            fs::write(m.path().join(format!("new-{i}")), vec![i as u8; file_len]).unwrap();
        }
        fs::remove_file(m.path().join("existing")).unwrap();
        // Commit to the journal, then take the image as it is on disk: a crash.
        let f = fs::File::open(m.path()).unwrap();
        rustix::fs::syncfs(&f).unwrap();
        let o = Command::new("cp")
            .arg("--sparse=always")
            .arg(&image)
            .arg(&crashed)
            .output()
            .unwrap();
        assert!(o.status.success());
    }
    e2fsck(&image);
    // The kernel replays the journal on mount; the result is consistent.
    {
        let m = Mounted::new(&crashed, false).unwrap();
        // Everything synced before the copy is there after the replay.
        for i in 0..200 {
            assert_eq!(
                fs::read(m.path().join(format!("new-{i}"))).unwrap(),
                vec![i as u8; file_len]
            );
        }
        assert!(!m.path().join("existing").exists());
    }
    e2fsck(&crashed);
}

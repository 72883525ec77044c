//! Block sizes other than 4 KiB: 1 KiB images (block 0 outside every group, groups of 8 MiB,
//! small htree and extent nodes, one-block xattr and symlink limits), 2 KiB images, and the
//! command line's block size (4 KiB by default, mke2fs's choice with `--block-size auto`). Every image goes through e2fsck and, as root, a kernel
//! mount compared with the model; the 4 KiB cases live in writer.rs and completeness.rs (writer.rs
//! also runs its tar round trips at 1 and 2 KiB; completeness.rs replays a 1 KiB journal).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::model::{Kind, Model};
use common::tars::{Attrs, TarGen};
use common::{
    can_mount, check_image, e2fsck, meta, node, scratch, skip, sparse_sha, Check, Mounted, Pattern,
    Rng,
};
use oci2ext4::{BlockSize, BuildOptions, ErrorKind, ImageBuilder, Xattr};
use sha2::{Digest, Sha256};

fn opts(bs: BlockSize) -> BuildOptions {
    let mut o = BuildOptions::default();
    o.block_size = bs;
    o
}

/// A `dumpe2fs -h` field, e.g. "Block size".
fn field(header: &str, name: &str) -> Option<String> {
    header
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

#[test]
fn twenty_thousand_names_through_a_one_kib_htree() {
    let dir = scratch();
    let image = dir.path().join("names.ext4");
    let mut b = ImageBuilder::create(&image, opts(BlockSize::K1)).unwrap();
    b.add_dir("big", meta(0o755)).unwrap();
    let mut model = Model::new((0, 0));
    model.put(b"big", node(Kind::Dir, 0o755));
    let mut names = BTreeSet::new();
    let mut rng = Rng::new(11);
    for i in 0..20_000u32 {
        let mut name = format!("{i:x}-");
        let len = 1 + rng.below(120) as usize;
        while name.len() < len {
            name.push((b'a' + rng.below(26) as u8) as char);
        }
        b.add_file(format!("big/{name}"), meta(0o644), &mut &b""[..])
            .unwrap();
        model.put(
            format!("big/{name}").as_bytes(),
            node(
                Kind::File {
                    size: 0,
                    sha256: Sha256::digest(b"").into(),
                },
                0o644,
            ),
        );
        names.insert(name);
    }
    b.finish().unwrap();
    if let Some(out) = common::debugfs(&image, "htree /big") {
        // More leaves than a 1 KiB root indexes: one level of index nodes.
        assert!(
            out.contains("Indirect levels: 1"),
            "{}",
            &out[..out.len().min(500)]
        );
    }
    check_image(&image, &model.tree, Check { read_write: false });
    if can_mount() {
        let m = Mounted::new(&image, true).unwrap();
        let read: BTreeSet<String> = fs::read_dir(m.path().join("big"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(read, names);
        drop(m);
        // The guest can add names to it.
        let m = Mounted::new(&image, false).unwrap();
        common::grow_largest_directory(m.path());
        drop(m);
        e2fsck(&image);
    }
}

#[test]
fn fragmented_files_get_deep_extent_trees_at_one_kib() {
    let dir = scratch();
    let image = dir.path().join("frag.ext4");
    let mut b = ImageBuilder::create(&image, opts(BlockSize::K1)).unwrap();
    let mut model = Model::new((0, 0));
    // One 1 KiB data block every other block: one extent per block. A 1 KiB extent block holds
    // 84 entries, so 2,000 extents need 24 leaves under an index block.
    for (name, n) in [("five", 5u64), ("one-leaf", 84), ("two-levels", 2000)] {
        let segments: Vec<(u64, u64)> = (0..n).map(|i| (i * 2048, 1024)).collect();
        let size = n * 2048;
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
            out.contains("ETB1"),
            "no second-level index:\n{}",
            &out[..out.len().min(1500)]
        );
    }
    check_image(&image, &model.tree, Check::default());
}

#[test]
fn one_kib_images_span_many_groups_with_xattr_blocks() {
    let dir = scratch();
    let image = dir.path().join("groups.ext4");
    // 600 MiB of 1 KiB blocks: 75 groups of 8 MiB, superblock copies up to group 49.
    let mut o = opts(BlockSize::K1);
    o.size = Some(600 << 20);
    let mut b = ImageBuilder::create(&image, o).unwrap();
    let mut model = Model::new((0, 0));
    let size = 200u64 << 20;
    let mut h = Sha256::new();
    let mut p = Pattern(Rng::new(3));
    b.add_file_with("big.bin", meta(0o644), |w| {
        let mut left = size;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            p.read_exact(&mut buf).unwrap();
            h.update(&buf);
            w.copy(&mut &buf[..], None)?;
            left -= buf.len() as u64;
        }
        Ok(size)
    })
    .unwrap();
    model.put(
        b"big.bin",
        node(
            Kind::File {
                size,
                sha256: h.finalize().into(),
            },
            0o644,
        ),
    );
    for i in 0..1000u32 {
        let data = format!("small file {i}\n").repeat(i as usize % 200);
        let path = format!("d{}/f{i}", i % 10);
        b.add_file(&path, meta(0o600), &mut data.as_bytes())
            .unwrap();
        model.put(
            path.as_bytes(),
            node(
                Kind::File {
                    size: data.len() as u64,
                    sha256: Sha256::digest(data.as_bytes()).into(),
                },
                0o600,
            ),
        );
    }
    // 900 bytes of attributes: past the inode, into a 1 KiB block.
    let xs = vec![
        Xattr {
            name: b"user.big".to_vec(),
            value: vec![7u8; 800],
        },
        Xattr {
            name: b"user.small".to_vec(),
            value: b"x".repeat(100),
        },
    ];
    let mut m = meta(0o644);
    m.xattrs = xs.clone();
    b.add_file("attrs", m, &mut &b"a"[..]).unwrap();
    let mut n = node(
        Kind::File {
            size: 1,
            sha256: Sha256::digest(b"a").into(),
        },
        0o644,
    );
    n.xattrs = xs.into_iter().map(|x| (x.name, x.value)).collect();
    model.put(b"attrs", n);
    // 3 KiB of attributes do not fit: the error names the entry.
    let mut m = meta(0o644);
    m.xattrs = vec![Xattr {
        name: b"user.huge".to_vec(),
        value: vec![1u8; 3000],
    }];
    let err = b.add_file("too-many", m, &mut &b""[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    let msg = err.to_string();
    assert!(
        msg.contains("too-many") && msg.contains("1024-byte block"),
        "{msg}"
    );
    let s = b.finish().unwrap();
    assert_eq!((s.block_size, s.blocks_count), (1024, 600 << 10));
    assert_eq!(s.groups, 75);
    if let Some(h) = common::dumpe2fs(&image) {
        assert_eq!(field(&h, "Block size").as_deref(), Some("1024"), "{h}");
        assert_eq!(field(&h, "First block").as_deref(), Some("1"), "{h}");
    }
    check_image(&image, &model.tree, Check::default());
}

#[test]
fn journals_follow_mkfs_at_one_kib() {
    let dir = scratch();
    for size in [16u64 << 20, 64 << 20, 256 << 20] {
        let image = dir.path().join(format!("j{size}.ext4"));
        let mut o = opts(BlockSize::K1);
        o.size = Some(size);
        let s = ImageBuilder::create(&image, o).unwrap().finish().unwrap();
        e2fsck(&image);
        let theirs = dir.path().join(format!("m{size}.img"));
        fs::File::create(&theirs).unwrap();
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "1024"])
            .arg(&theirs)
            .arg(format!("{}k", size >> 10))
            .status();
        match (made, common::dumpe2fs(&theirs)) {
            (Ok(st), Some(h)) if st.success() => {
                let want: u64 = field(&h, "Total journal blocks")
                    .or_else(|| field(&h, "Journal length"))
                    .unwrap_or_else(|| panic!("no journal length in:\n{h}"))
                    .parse()
                    .unwrap();
                assert_eq!(s.journal_blocks, want, "size {size}");
            }
            _ => skip("journal size comparison", "mkfs.ext4 is not available"),
        }
    }
}

/// Runs the command-line tool; returns its status and stderr.
fn run(args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    let mut child = Command::new(common::bin())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn block_size_of(image: &Path) -> Option<String> {
    common::dumpe2fs(image).and_then(|h| field(&h, "Block size"))
}

#[test]
fn the_command_line_writes_4_kib_blocks_or_chooses_as_mkfs_does() {
    let dir = scratch();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example-oci");
    let fixture = fixture.to_str().unwrap();
    let out = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // By default: 4 KiB, whatever the size.
    let default = out("default.ext4");
    let (ok, err) = run(&["build", fixture, "-o", &default, "-q"], None);
    assert!(ok, "{err}");
    e2fsck(Path::new(&default));
    // auto, a small image: 1 KiB blocks, as mke2fs's "small" type.
    let small = out("small.ext4");
    let (ok, err) = run(
        &["build", fixture, "-o", &small, "-q", "--block-size", "auto"],
        None,
    );
    assert!(ok, "{err}");
    e2fsck(Path::new(&small));
    // auto, a size of 512 MiB or more: 4 KiB.
    let large = out("large.ext4");
    let (ok, err) = run(
        &[
            "build",
            fixture,
            "-o",
            &large,
            "-q",
            "--size",
            "512M",
            "--block-size",
            "auto",
        ],
        None,
    );
    assert!(ok, "{err}");
    e2fsck(Path::new(&large));
    // Given: kept.
    let given = out("given.ext4");
    let (ok, err) = run(
        &["build", fixture, "-o", &given, "-q", "--block-size", "2048"],
        None,
    );
    assert!(ok, "{err}");
    e2fsck(Path::new(&given));
    let (ok, err) = run(
        &[
            "build",
            fixture,
            "-o",
            &out("bad.ext4"),
            "--block-size",
            "512",
        ],
        None,
    );
    assert!(!ok && err.contains("--block-size"), "{err}");
    assert!(!dir.path().join("bad.ext4").exists());
    if let Some(bs) = block_size_of(Path::new(&small)) {
        assert_eq!(bs, "1024");
        assert_eq!(block_size_of(Path::new(&default)).unwrap(), "4096");
        assert_eq!(block_size_of(Path::new(&large)).unwrap(), "4096");
        assert_eq!(block_size_of(Path::new(&given)).unwrap(), "2048");
    }

    // A layer from a pipe is read once: choosing the block size must not consume it.
    let tar_path = dir.path().join("piped.tar");
    let mut g = TarGen::new(fs::File::create(&tar_path).unwrap());
    g.file("etc/hostname", Attrs::new(0o644), b"vm\n");
    g.file("bin/tool", Attrs::new(0o755), &vec![9u8; 5000]);
    let (_, model) = g.finish();
    let piped = out("piped.ext4");
    let tar = fs::read(&tar_path).unwrap();
    let (ok, err) = run(
        &["build", "--layer", "/dev/stdin", "-o", &piped, "-q"],
        Some(&tar),
    );
    assert!(ok, "{err}");
    check_image(Path::new(&piped), &model.tree, Check { read_write: false });
}

#[test]
fn gzip_layers_are_measured_by_their_trailer() {
    // 40 MiB that gzip cannot shrink: the trailer says 40 MiB where a typical ratio would guess
    // three times the blob. With 420 MiB of headroom the image is expected at about 460 MiB
    // (1 KiB blocks); with 480 MiB, at about 520 MiB (4 KiB blocks).
    let dir = scratch();
    let tar_path = dir.path().join("noise.tar");
    let mut g = TarGen::new(fs::File::create(&tar_path).unwrap());
    let mut data = vec![0u8; 40 << 20];
    Rng::new(9).fill(&mut data);
    g.file("noise.bin", Attrs::new(0o644), &data);
    drop(data);
    let (_, model) = g.finish();
    let gz_path = dir.path().join("noise.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&gz_path).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut fs::File::open(&tar_path).unwrap(), &mut gz).unwrap();
    gz.finish().unwrap();
    for (headroom, want) in [("420M", "1024"), ("480M", "4096")] {
        let image = dir.path().join(format!("noise-{headroom}.ext4"));
        let (ok, err) = run(
            &[
                "build",
                "--layer",
                gz_path.to_str().unwrap(),
                "-o",
                image.to_str().unwrap(),
                "-q",
                "--headroom",
                headroom,
                "--block-size",
                "auto",
            ],
            None,
        );
        assert!(ok, "{err}");
        check_image(&image, &model.tree, Check { read_write: false });
        if let Some(bs) = block_size_of(&image) {
            assert_eq!(bs, want, "headroom {headroom}");
        }
    }
}

#[test]
fn small_files_take_less_space_with_small_blocks() {
    let dir = scratch();
    let tar_path = dir.path().join("small-files.tar");
    let mut g = TarGen::new(fs::File::create(&tar_path).unwrap());
    let mut rng = Rng::new(5);
    for i in 0..3000u32 {
        let mut data = vec![0u8; 100 + rng.below(3000) as usize];
        rng.fill(&mut data);
        g.file(&format!("d{}/f{i}", i % 30), Attrs::new(0o644), &data);
    }
    let (_, model) = g.finish();
    let mut du = Vec::new();
    for bs in ["1024", "4096"] {
        let image = dir.path().join(format!("img-{bs}.ext4"));
        let image_s = image.to_str().unwrap();
        let (ok, err) = run(
            &[
                "build",
                tar_path.to_str().unwrap(),
                "-o",
                image_s,
                "-q",
                "--block-size",
                bs,
            ],
            None,
        );
        assert!(ok, "{err}");
        check_image(&image, &model.tree, Check { read_write: false });
        du.push(fs::metadata(&image).unwrap().blocks() * 512);
    }
    // 3,000 files of 100 to 3,100 bytes: a 4 KiB block each, against one to four 1 KiB ones.
    assert!(
        du[0] * 10 < du[1] * 8,
        "1 KiB blocks: {} bytes, 4 KiB blocks: {} bytes",
        du[0],
        du[1]
    );
}

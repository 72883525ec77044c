//! The core writer: images from generated tars and from the library API, judged by e2fsck and,
//! as root, by a kernel mount compared entry by entry, then a read-write session.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::model::{Kind, Model, Node};
use common::tars::{Attrs, TarGen};
use common::{check_image, scratch, Check, Pattern, Rng};
use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::source::file_layer;
use oci2ext4::{
    BlockSize, BuildOptions, ImageBuilder, Metadata, Special, Summary, Timestamp, Xattr,
};

/// Builds `tar` (a file) into `image`.
fn build_tar_to(tar: &Path, image: &Path, opts: BuildOptions) -> Summary {
    let mut b = ImageBuilder::create(image, opts).unwrap();
    apply_layers(&mut b, vec![file_layer(tar)], &mut NoProgress).unwrap();
    b.finish().unwrap()
}

/// Builds `tar` (a file) into an image next to it.
fn build_tar(tar: &Path, opts: BuildOptions) -> (PathBuf, Summary) {
    let image = tar.with_extension("ext4");
    let summary = build_tar_to(tar, &image, opts);
    (image, summary)
}

/// Writes a tar with `make`, builds it with 4 KiB blocks, and checks the image against the
/// model; then the same with 1 KiB and 2 KiB blocks. Returns the 4 KiB image.
fn round_trip(
    name: &str,
    check: Check,
    make: impl FnOnce(&mut TarGen<fs::File>),
) -> (tempfile::TempDir, PathBuf, Summary) {
    round_trip_with(
        name,
        check,
        &[BlockSize::K4, BlockSize::K1, BlockSize::K2],
        make,
    )
}

/// [`round_trip`] with the block sizes given; returns the first image.
fn round_trip_with(
    name: &str,
    check: Check,
    sizes: &[BlockSize],
    make: impl FnOnce(&mut TarGen<fs::File>),
) -> (tempfile::TempDir, PathBuf, Summary) {
    let dir = scratch();
    let tar_path = dir.path().join(format!("{name}.tar"));
    let mut g = TarGen::new(fs::File::create(&tar_path).unwrap());
    make(&mut g);
    let (_, model) = g.finish();
    let mut first = None;
    for &bs in sizes {
        let image = dir.path().join(format!("{name}-{}.ext4", bs.bytes()));
        let mut opts = BuildOptions::default();
        opts.block_size = bs;
        let summary = build_tar_to(&tar_path, &image, opts);
        assert_eq!(summary.block_size, bs.bytes() as u64);
        eprintln!("{name}: {}-byte blocks", bs.bytes());
        check_image(&image, &model.tree, check);
        first.get_or_insert((image, summary));
    }
    let (image, summary) = first.expect("no block size given");
    (dir, image, summary)
}

const NO_RW: Check = Check { read_write: false };

#[test]
fn empty_image() {
    let dir = scratch();
    let image = dir.path().join("empty.ext4");
    let summary = ImageBuilder::create(&image, BuildOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    // The default room: 256 MiB free, and an inode per 16 KiB of image.
    assert_eq!(summary.blocks_free * summary.block_size, 256 << 20);
    assert!(summary.image_bytes < 300 << 20, "{summary:?}");
    assert!(
        summary.inodes_free >= summary.image_bytes / 16384,
        "{summary:?}"
    );
    assert_eq!(fs::metadata(&image).unwrap().len(), summary.image_bytes);
    check_image(&image, &Model::new((0, 0)).tree, Check::default());
}

#[test]
fn one_file() {
    round_trip("one", Check::default(), |g| {
        g.file("hello.txt", Attrs::new(0o644), b"hello, world\n")
    });
}

#[test]
fn every_entry_type_and_mode_bit() {
    round_trip("kinds", Check::default(), |g| {
        g.dir("./", Attrs::new(0o755).mtime(1_600_000_000, 5));
        g.dir("usr", Attrs::new(0o755));
        g.dir("usr/bin", Attrs::new(0o755).owner(0, 0));
        g.file("usr/bin/su", Attrs::new(0o4755), b"#!/bin/true\n");
        g.file("usr/bin/wall", Attrs::new(0o2755).owner(0, 5), b"wall");
        g.dir("tmp", Attrs::new(0o1777));
        g.file("usr/bin/all-bits", Attrs::new(0o7777), b"x");
        g.file("usr/bin/no-bits", Attrs::new(0o000), b"y");
        g.symlink("usr/bin/sh", Attrs::new(0o777), b"dash");
        g.symlink("abs-link", Attrs::new(0o777), b"/usr/bin/su");
        g.hardlink("usr/bin/su-again", "usr/bin/su");
        g.device("dev/null", Attrs::new(0o666), false, 1, 3);
        g.device("dev/sda", Attrs::new(0o660).owner(0, 6), true, 8, 0);
        g.device("dev/big", Attrs::new(0o600), true, 4095, 1_048_575);
        g.device("dev/mid", Attrs::new(0o600), false, 259, 300);
        g.fifo("run/fifo", Attrs::new(0o620));
        g.file("home/u/owned", Attrs::new(0o600).owner(1000, 1000), b"mine");
        g.file(
            "home/nobody",
            Attrs::new(0o600).owner(65534, 65534),
            b"nobody",
        );
        g.file(
            "home/max",
            Attrs::new(0o600).owner(4_294_967_294, 4_294_967_294),
            b"max",
        );
        g.file(
            "times/ns",
            Attrs::new(0o644).mtime(1_700_000_000, 123_456_789),
            b"ns",
        );
        g.file(
            "times/pre-epoch",
            Attrs::new(0o644).mtime(-86_400, 250_000_000),
            b"old",
        );
        g.file(
            "times/after-2038",
            Attrs::new(0o644).mtime(4_000_000_000, 999_999_999),
            b"new",
        );
        g.file("times/y2106", Attrs::new(0o644).mtime(1 << 32, 1), b"newer");
    });
}

#[test]
fn in_inode_xattrs_and_capabilities() {
    // security.capability: version 2, cap_net_raw permitted and effective.
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let (_dir, image, _) = round_trip("xattrs", Check::default(), |g| {
        g.file(
            "bin/ping",
            Attrs::new(0o755).xattr(b"security.capability", &cap),
            b"\x7fELF",
        );
        g.file(
            "data",
            Attrs::new(0o644)
                .xattr(b"user.mime_type", b"text/plain")
                .xattr(b"trusted.x", &[0, 255, 0]),
            b"d",
        );
        g.dir(
            "labelled",
            Attrs::new(0o755).xattr(b"security.selinux", b"system_u:object_r:etc_t:s0\0"),
        );
        g.symlink(
            "labelled/link",
            Attrs::new(0o777).xattr(b"user.l", b"1"),
            b"target",
        );
        g.file(
            "empty-value",
            Attrs::new(0o644).xattr(b"user.empty", b""),
            b"e",
        );
    });
    // The kernel hides user.* attributes of symlinks; debugfs shows the one stored.
    if let Some(out) = common::debugfs(&image, "ea_get /labelled/link user.l") {
        assert!(out.contains("user.l (1) = \"1\""), "{out}");
    }
}

#[test]
fn three_way_hard_links() {
    round_trip("links", Check::default(), |g| {
        g.file("a/one", Attrs::new(0o640).owner(7, 8), b"shared content");
        g.hardlink("b/two", "a/one");
        g.hardlink("c/d/three", "a/one");
        g.file("lonely", Attrs::new(0o644), b"alone");
    });
}

#[test]
fn names_of_every_length_and_script() {
    round_trip("names", NO_RW, |g| {
        g.file("a", Attrs::new(0o644), b"1");
        g.file(&"n".repeat(255), Attrs::new(0o644), b"255");
        g.dir(&"d".repeat(255), Attrs::new(0o755));
        g.file(
            &format!("{}/{}", "d".repeat(255), "e".repeat(255)),
            Attrs::new(0o644),
            b"deep long",
        );
        g.file("naïve café", Attrs::new(0o644), b"utf8");
        g.file("日本語のファイル名", Attrs::new(0o644), b"cjk");
        g.file("emoji-🚀", Attrs::new(0o644), b"rocket");
        g.file_bytes(b"latin1-\xe9\xff", Attrs::new(0o644), b"not utf8");
        g.file("with space and\ttab", Attrs::new(0o644), b"ws");
    });
}

#[test]
fn two_thousand_entries_in_one_directory() {
    let (_dir, image, _) = round_trip("wide", NO_RW, |g| {
        g.dir("wide", Attrs::new(0o755));
        for i in 0..2000 {
            g.file(
                &format!("wide/file-{i:05}"),
                Attrs::new(0o644),
                format!("{i}").as_bytes(),
            );
        }
    });
    if let Some(out) = common::debugfs(&image, "htree /wide") {
        assert!(
            out.contains("Root node dump"),
            "no htree index:\n{}",
            &out[..out.len().min(2000)]
        );
    }
}

#[test]
fn two_hundred_levels_of_nesting() {
    round_trip("deep", NO_RW, |g| {
        let mut path = String::new();
        for i in 0..200 {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&format!("l{i}"));
            g.dir(&path, Attrs::new(0o755));
        }
        g.file(&format!("{path}/bottom"), Attrs::new(0o644), b"deep");
    });
}

#[test]
fn file_sizes_around_block_boundaries() {
    round_trip("sizes", Check::default(), |g| {
        for size in [
            0usize,
            1,
            1023,
            1024,
            1025,
            2047,
            2048,
            2049,
            4095,
            4096,
            4097,
            8191,
            8192,
            65537,
            1 << 20,
        ] {
            let mut data = vec![0u8; size];
            Rng::new(size as u64).fill(&mut data);
            g.file(&format!("size-{size}"), Attrs::new(0o644), &data);
        }
        // Zero blocks inside data become holes; the content still reads back the same.
        let mut mixed = vec![0u8; 5 * 4096 + 7];
        mixed[4096..8192].fill(0xAA);
        mixed[5 * 4096..].fill(0x55);
        g.file("zeros-inside", Attrs::new(0o644), &mixed);
        g.file("all-zero", Attrs::new(0o644), &vec![0u8; 3 * 4096 + 1]);
        // The same at 1 KiB granularity: zero 1 KiB blocks between data.
        let mut fine = vec![0u8; 7 * 1024 + 3];
        fine[1024..2048].fill(0x11);
        fine[3 * 1024..3 * 1024 + 10].fill(0x22);
        fine[7 * 1024..].fill(0x33);
        g.file("zeros-inside-1k", Attrs::new(0o644), &fine);
    });
}

#[test]
fn file_of_300_mib() {
    round_trip("big", NO_RW, |g| {
        g.file_from(
            "big.bin",
            Attrs::new(0o644),
            300 << 20,
            Pattern(Rng::new(42)),
        );
        g.file("after", Attrs::new(0o644), b"after the big one");
    });
}

#[test]
fn symlinks_of_59_60_and_4000_bytes() {
    round_trip_with("links", Check::default(), &[BlockSize::K4], |g| {
        for n in [1usize, 59, 60, 61, 4000, 4095] {
            g.symlink(
                &format!("len-{n}"),
                Attrs::new(0o777),
                "t".repeat(n).as_bytes(),
            );
        }
    });
    // A slow symlink's target takes one block: up to 1023 bytes with 1 KiB blocks.
    round_trip_with(
        "small-links",
        Check::default(),
        &[BlockSize::K1, BlockSize::K2],
        |g| {
            for n in [59usize, 60, 1000, 1023] {
                g.symlink(
                    &format!("len-{n}"),
                    Attrs::new(0o777),
                    "t".repeat(n).as_bytes(),
                );
            }
        },
    );
    let dir = scratch();
    let mut opts = BuildOptions::default();
    opts.block_size = BlockSize::K1;
    let mut b = ImageBuilder::create(dir.path().join("l.ext4"), opts).unwrap();
    let err = b
        .add_symlink(
            "long",
            Metadata::new(0o777, 0, 0, Timestamp::default()),
            "t".repeat(1024),
        )
        .unwrap_err();
    assert_eq!(err.kind(), oci2ext4::ErrorKind::LimitExceeded);
    let msg = err.to_string();
    assert!(
        msg.contains("long") && msg.contains("1024-byte block"),
        "{msg}"
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let secret = b"SECRET-THAT-MUST-NOT-SURVIVE-0123456789".repeat(200);
    let (_dir, image, _) = round_trip("replace", Check::default(), |g| {
        g.file("f", Attrs::new(0o644), &secret);
        g.file("f", Attrs::new(0o600), b"new content");
        g.dir("d", Attrs::new(0o755));
        g.file("d/child", Attrs::new(0o644), b"kept");
        g.dir("d", Attrs::new(0o700).owner(5, 5));
        g.dir("gone", Attrs::new(0o755));
        g.file("gone/x", Attrs::new(0o644), &secret);
        g.file("gone", Attrs::new(0o644), b"now a file");
        g.file("to-dir", Attrs::new(0o644), b"file first");
        g.dir("to-dir", Attrs::new(0o755));
        g.file("linked", Attrs::new(0o644), b"old inode");
        g.hardlink("other-name", "linked");
        g.file("linked", Attrs::new(0o644), b"new inode");
    });
    // The replaced bytes are gone from the image file itself.
    let raw = fs::read(&image).unwrap();
    assert!(
        !raw.windows(39).any(|w| w == &secret[..39]),
        "replaced file data survives in the image"
    );
}

#[test]
fn library_api_every_kind_remove_and_sparse() {
    let dir = scratch();
    let image = dir.path().join("api.ext4");
    let t = Timestamp {
        sec: 1_650_000_000,
        nsec: 42,
    };
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    let mut model = Model::new((0, 0));
    let node = |kind: Kind, mode: u32| Node {
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: (t.sec, t.nsec),
        xattrs: Default::default(),
    };
    b.add_dir("srv", Metadata::new(0o750, 0, 0, t)).unwrap();
    model.put(b"srv", node(Kind::Dir, 0o750));
    b.add_special("srv/sock", Metadata::new(0o777, 0, 0, t), Special::Socket)
        .unwrap();
    model.put(b"srv/sock", node(Kind::Socket, 0o777));
    b.add_special("srv/fifo", Metadata::new(0o600, 0, 0, t), Special::Fifo)
        .unwrap();
    model.put(b"srv/fifo", node(Kind::Fifo, 0o600));
    let mut meta = Metadata::new(0o644, 0, 0, t);
    meta.xattrs.push(Xattr {
        name: b"user.k".to_vec(),
        value: b"v".to_vec(),
    });
    b.add_file("srv/data", meta, &mut &b"payload"[..]).unwrap();
    let mut n = node(
        Kind::File {
            size: 7,
            sha256: sha(b"payload"),
        },
        0o644,
    );
    n.xattrs.insert(b"user.k".to_vec(), b"v".to_vec());
    model.put(b"srv/data", n);
    b.add_file(
        "srv/removed",
        Metadata::new(0o644, 0, 0, t),
        &mut &b"bye"[..],
    )
    .unwrap();
    assert!(b.remove("srv/removed").unwrap());
    assert!(!b.remove("srv/never-there").unwrap());
    // A sparse file: 1 MiB of data, a 1 GiB hole, 10 bytes, and a hole to 2 GiB.
    let size = 2u64 << 30;
    b.add_file_with("sparse", Metadata::new(0o644, 0, 0, t), |w| {
        w.copy(&mut Pattern(Rng::new(1)).take(1 << 20), None)?;
        w.skip_to((1 << 30) + (1 << 20))?;
        w.copy(&mut &b"0123456789"[..], None)?;
        Ok(size)
    })
    .unwrap();
    let mut content = Vec::new();
    Pattern(Rng::new(1))
        .take(1 << 20)
        .read_to_end(&mut content)
        .unwrap();
    let mut h = sha2::Sha256::new();
    use sha2::Digest;
    h.update(&content);
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        h.update(&zeros);
    }
    h.update(b"0123456789");
    let mut left = size - (1 << 30) - (1 << 20) - 10;
    while left > 0 {
        let n = left.min(zeros.len() as u64);
        h.update(&zeros[..n as usize]);
        left -= n;
    }
    model.put(
        b"sparse",
        node(
            Kind::File {
                size,
                sha256: h.finalize().into(),
            },
            0o644,
        ),
    );
    let summary = b.finish().unwrap();
    // Used: the journal, the inode tables, a few directory and extent blocks, not the holes.
    assert!(
        summary.blocks_used - summary.journal_blocks < 2000,
        "holes took blocks: {summary:?}"
    );
    check_image(&image, &model.tree, Check::default());
}

/// A reader that gives `left` bytes of 9 and then fails.
struct FailsAfter(usize);

impl Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("the source broke"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(9);
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn a_file_whose_data_fails_leaves_nothing_in_the_next() {
    // A failure mid-block once left its bytes in the buffer, and the next file started inside
    // that block: "b" read back as 100 bytes of 9 and its own 5000 bytes, with size 5100.
    for failed_after in [100, 4096, 3 * 4096 + 5] {
        let dir = scratch();
        let image = dir.path().join("failed.ext4");
        let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
        let mut model = Model::new((0, 0));
        let err = b
            .add_file("a", common::meta(0o644), &mut FailsAfter(failed_after))
            .unwrap_err();
        assert!(err.to_string().contains("\"a\""), "{err}");
        let data = vec![7u8; 5000];
        b.add_file("b", common::meta(0o644), &mut &data[..])
            .unwrap();
        model.put(
            b"b",
            common::node(
                Kind::File {
                    size: 5000,
                    sha256: sha(&data),
                },
                0o644,
            ),
        );
        b.finish().unwrap();
        check_image(&image, &model.tree, Check::default());
    }
}

#[test]
fn a_build_time_past_ext4s_range_is_clamped_in_the_superblock() {
    // 2^40 seconds once lost its high byte in `s_mkfs_time_hi` and read as 1970; it is the
    // inodes' last second (TIME_MAX, in 2446) now, as the root directory's time is.
    let dir = scratch();
    let image = dir.path().join("late.ext4");
    let mut o = BuildOptions::default();
    o.time = Timestamp::from_secs(1 << 40);
    let b = ImageBuilder::create(&image, o).unwrap();
    b.finish().unwrap();
    // The root directory, made implicitly at the build time, holds TIME_MAX.
    let time_max = i64::from(i32::MAX) + (3 << 32);
    check_image(&image, &Model::new((time_max, 0)).tree, Check::default());
    // s_mkfs_time at 0x108 and its high byte at 0x276 (the dumpe2fs here shows only the low
    // 32 bits).
    let raw = fs::read(&image).unwrap();
    let sb = &raw[1024..2048];
    let lo = u32::from_le_bytes(sb[0x108..0x10C].try_into().unwrap());
    let mkfs_time = (u64::from(sb[0x276]) << 32) | u64::from(lo);
    assert_eq!(mkfs_time, time_max.cast_unsigned());
}

fn sha(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

#[test]
fn bad_entries_are_errors_that_name_them() {
    let dir = scratch();
    let image = dir.path().join("bad.ext4");
    let t = Timestamp::default();
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    b.add_file("f", Metadata::new(0o644, 0, 0, t), &mut &b"x"[..])
        .unwrap();
    let e = b
        .add_file(
            "f/under-a-file",
            Metadata::new(0o644, 0, 0, t),
            &mut &b"x"[..],
        )
        .unwrap_err();
    assert_eq!(e.entry(), Some("f/under-a-file"));
    let e = b
        .add_dir("../escape", Metadata::new(0o755, 0, 0, t))
        .unwrap_err();
    assert!(e.to_string().contains("leaves the image root"), "{e}");
    let e = b.add_hard_link("l", "no/such/target").unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    b.add_dir("d", Metadata::new(0o755, 0, 0, t)).unwrap();
    assert!(b.add_hard_link("l", "d").is_err());
    let mut m = Metadata::new(0o644, 0, 0, t);
    m.xattrs.push(Xattr {
        name: b"com.apple.quarantine".to_vec(),
        value: b"x".to_vec(),
    });
    assert_eq!(
        b.add_dir("x", m).unwrap_err().kind(),
        oci2ext4::ErrorKind::Unsupported
    );
    let mut m = Metadata::new(0o644, 0, 0, t);
    m.xattrs.push(Xattr {
        name: b"user.huge".to_vec(),
        value: vec![1; 5000],
    });
    assert_eq!(
        b.add_dir("y", m).unwrap_err().kind(),
        oci2ext4::ErrorKind::LimitExceeded
    );
    assert!(b
        .add_special(
            "s",
            Metadata::new(0o777, 0, 0, t),
            Special::Symlink(Vec::new())
        )
        .is_err());
    assert!(b
        .add_special(
            "dev",
            Metadata::new(0o600, 0, 0, t),
            Special::CharDevice {
                major: 4096,
                minor: 0
            }
        )
        .is_err());
    // Dropped without finishing: nothing is left behind.
    drop(b);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a partial output was left behind"
    );
}

#[test]
fn fixed_size_too_small_states_what_is_needed() {
    let dir = scratch();
    let image = dir.path().join("small.ext4");
    let mut opts = BuildOptions::default();
    opts.size = Some(16 << 20);
    let mut b = ImageBuilder::create(&image, opts).unwrap();
    b.add_file(
        "big",
        Metadata::new(0o644, 0, 0, Timestamp::default()),
        &mut Pattern(Rng::new(3)).take(30 << 20),
    )
    .unwrap_err();
    drop(b);
    let mut opts = BuildOptions::default();
    opts.size = Some(16 << 20);
    let mut b = ImageBuilder::create(&image, opts).unwrap();
    b.add_file(
        "medium",
        Metadata::new(0o644, 0, 0, Timestamp::default()),
        &mut Pattern(Rng::new(3)).take(14 << 20),
    )
    .unwrap();
    let e = b.finish().unwrap_err();
    assert_eq!(e.kind(), oci2ext4::ErrorKind::LimitExceeded);
    assert!(e.to_string().contains("needs an image of at least"), "{e}");
    assert!(!image.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn sizing_options_are_honoured() {
    let dir = scratch();
    let tar = dir.path().join("s.tar");
    let mut g = TarGen::new(fs::File::create(&tar).unwrap());
    g.file_from("data", Attrs::new(0o644), 100 << 20, Pattern(Rng::new(9)));
    let (_, model) = g.finish();
    let mut opts = BuildOptions::default();
    opts.size = Some(300 << 20);
    opts.inodes = Some(5000);
    opts.label = Some("rootfs".into());
    opts.uuid = Some(*b"0123456789abcdef");
    let (image, summary) = build_tar(&tar, opts);
    assert_eq!(summary.image_bytes, 300 << 20);
    assert!(summary.inodes_count >= 5000);
    check_image(&image, &model.tree, NO_RW);
    if let Some(h) = common::dumpe2fs(&image) {
        assert!(h.contains("Filesystem volume name:   rootfs"), "{h}");
        assert!(
            h.contains("Filesystem UUID:          30313233-3435-3637-3839-616263646566"),
            "{h}"
        );
    }
    // Default sizing leaves at least 20 % free, and never less than 64 MiB in all.
    let (_, s) = build_tar(&tar, BuildOptions::default());
    assert!(s.blocks_free * 5 >= s.blocks_used, "{s:?}");
    let mut opts = BuildOptions::default();
    opts.headroom = oci2ext4::Headroom::Bytes(1 << 30);
    let (_, s) = build_tar(&tar, opts);
    assert!(s.blocks_free * 4096 >= 1 << 30, "{s:?}");
}

#[test]
fn command_line_build_with_json() {
    let dir = scratch();
    let tar = dir.path().join("root.tar");
    let mut g = TarGen::new(fs::File::create(&tar).unwrap());
    g.file("etc/os-release", Attrs::new(0o644), b"ID=test\n");
    g.finish();
    // gzip it, named without .gz: compression is found by magic.
    let gz = dir.path().join("root.layer");
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    std::io::copy(&mut fs::File::open(&tar).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let out = dir.path().join("out.ext4");
    let o = Command::new(common::bin())
        .args(["build"])
        .arg(&gz)
        .arg("-o")
        .arg(&out)
        .args(["--json", "--label", "cli"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["block_size"], 4096);
    assert_eq!(v["summary"]["blocks_free"], 65536);
    assert_eq!(v["layers"][0]["compression"], "gzip");
    assert_eq!(v["layers"][0]["files"], 1);
    common::e2fsck(&out);
    // Too small a size: distinct exit status, the bytes needed in the message, no output.
    let small = dir.path().join("small.ext4");
    let o = Command::new(common::bin())
        .arg("build")
        .arg(&gz)
        .arg("-o")
        .arg(&small)
        .args(["--size", "1M"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!small.exists());
    let o = Command::new(common::bin())
        .arg("build")
        .arg(dir.path().join("missing.tar"))
        .arg("-o")
        .arg(&small)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.tar"));
}

//! dm-verity hash trees: what `--verity` appends must be byte for byte what `veritysetup format`
//! writes for the same data, offset and salt, pass `veritysetup verify` with the printed root
//! hash, fail it after one flipped data byte, and, as root, map with `veritysetup open` and
//! mount read-only to the image's tree.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::layers::{expected, gzip, LayerGen, Op};
use common::model::Tree;
use common::oci::{write_layout, ImageSpec};
use common::tars::Attrs;
use common::{assert_same_tree, e2fsck, scratch, skip, snapshot, Mounted, Rng};
use oci2ext4::verity::VerityOptions;
use oci2ext4::{BlockSize, BuildOptions, ImageBuilder};

const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Bytes no other part of the image holds: the tampering test finds the file by them.
const MARKER: &[u8] = b"verity-test-marker:7f3a9c";

fn have_veritysetup() -> bool {
    let ok = Command::new("veritysetup")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        skip(
            "veritysetup checks",
            "veritysetup is not installed (apt-get install cryptsetup-bin)",
        );
    }
    ok
}

/// A two-layer OCI layout (gzip layers, a whiteout, a file of several read chunks) and the
/// tree it stands for.
fn layout(dir: &Path) -> (PathBuf, Tree) {
    let mut big = vec![0u8; (9 << 20) + 12345];
    Rng::new(17).fill(&mut big);
    let mut marked = MARKER.to_vec();
    marked.resize(10_000, b'm');
    let mut lower = LayerGen::new();
    lower
        .dir("etc", Attrs::new(0o755))
        .file("etc/hostname", Attrs::new(0o644), b"vm\n")
        .file("etc/gone", Attrs::new(0o600), b"whited out")
        .dir("usr", Attrs::new(0o755))
        .dir("usr/lib", Attrs::new(0o755))
        .file("usr/lib/big.bin", Attrs::new(0o644), &big)
        .file("usr/lib/marked", Attrs::new(0o644), &marked)
        .symlink("lib", "usr/lib");
    let mut upper = LayerGen::new();
    upper
        .whiteout("etc/gone")
        .file("etc/motd", Attrs::new(0o644).owner(1000, 1000), b"hello\n")
        .file("usr/bin-setuid", Attrs::new(0o4755), b"#!/bin/sh\n");
    let (blobs, ops): (Vec<Vec<u8>>, Vec<Vec<Op>>) =
        [lower, upper].into_iter().map(LayerGen::finish).unzip();
    let spec = ImageSpec::new(blobs.iter().map(|t| (gzip(t), TGZ, t.clone())).collect());
    let path = dir.join("oci");
    write_layout(&path, &[("latest", &spec)]);
    (path, expected(&ops))
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `oci2ext4 build SOURCE -o OUT --json ARGS`; the JSON report.
fn build(source: &Path, out: &Path, args: &[&str]) -> serde_json::Value {
    let o = Command::new(common::bin())
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn veritysetup(args: &[&str]) -> Output {
    Command::new("veritysetup").args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of the image's filesystem part, without the tree.
fn data_copy(image: &Path, to: &Path, hash_offset: u64) {
    fs::copy(image, to).unwrap();
    let f = fs::OpenOptions::new().write(true).open(to).unwrap();
    f.set_len(hash_offset).unwrap();
}

fn root_hash_of(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap_or_else(|| panic!("no root hash in {out}"))
        .trim()
        .to_string()
}

/// The parts of the report every verity image must agree with.
fn check_report(image: &Path, report: &serde_json::Value) -> serde_json::Value {
    let v = report["verity"].clone();
    let summary = &report["summary"];
    let fs_bytes =
        summary["blocks_count"].as_u64().unwrap() * summary["block_size"].as_u64().unwrap();
    let offset = v["hash_offset"].as_u64().unwrap();
    assert_eq!(
        offset, fs_bytes,
        "the tree starts where the filesystem ends"
    );
    assert_eq!(offset % 4096, 0, "the filesystem is whole 4096-byte blocks");
    assert_eq!(v["data_blocks"].as_u64().unwrap(), offset / 4096);
    assert_eq!(
        summary["journal_blocks"], 0,
        "a verity image has no journal"
    );
    let sb = u64::from(v["superblock"].as_bool().unwrap());
    let tree_len = (sb + v["hash_blocks"].as_u64().unwrap()) * 4096;
    assert_eq!(fs::metadata(image).unwrap().len(), offset + tree_len);
    assert_eq!(v["hash_start_block"].as_u64().unwrap(), offset / 4096 + sb);
    assert_eq!(v["root_hash"].as_str().unwrap().len(), 64);
    let cmdline = v["kernel_cmdline"].as_str().unwrap();
    assert!(cmdline.contains(&format!(
        "verity 1 /dev/vda /dev/vda 4096 4096 {} {} sha256 {} {}",
        offset / 4096,
        offset / 4096 + sb,
        v["root_hash"].as_str().unwrap(),
        v["salt"].as_str().unwrap()
    )));
    v
}

#[test]
fn tree_equals_veritysetup_format_and_verify_catches_one_flipped_byte() {
    if !have_veritysetup() {
        return;
    }
    let dir = scratch();
    let (source, want) = layout(dir.path());
    let image = dir.path().join("root.img");
    let report = build(&source, &image, &["--verity"]);
    let v = check_report(&image, &report);
    e2fsck(&image);
    let root = v["root_hash"].as_str().unwrap();
    let salt = v["salt"].as_str().unwrap();
    let offset = v["hash_offset"].as_u64().unwrap();
    let data_blocks = v["data_blocks"].as_u64().unwrap();
    assert_eq!(v["superblock"], false);
    assert_eq!(salt.len(), 64, "a derived salt of 32 bytes");
    let opts = [
        format!("--hash-offset={offset}"),
        "--no-superblock".into(),
        format!("--data-blocks={data_blocks}"),
        format!("--salt={salt}"),
    ];
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();

    // veritysetup verify accepts the tree with the root hash printed.
    let mut args = vec!["verify", s(&image), s(&image), root];
    args.extend(&opts);
    ok(&veritysetup(&args));

    // veritysetup format on the same data writes the same bytes.
    let theirs = dir.path().join("theirs.img");
    data_copy(&image, &theirs, offset);
    let mut args = vec!["format", s(&theirs), s(&theirs)];
    args.extend(&opts);
    let o = veritysetup(&args);
    ok(&o);
    assert_eq!(root_hash_of(&o), root);
    assert!(
        fs::read(&image).unwrap() == fs::read(&theirs).unwrap(),
        "the image differs from veritysetup format's"
    );

    // One flipped byte of file data: verify fails.
    let bytes = fs::read(&image).unwrap();
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("the marked file's data in the image") as u64;
    assert!(at < offset);
    let tampered = dir.path().join("tampered.img");
    fs::copy(&image, &tampered).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&tampered).unwrap();
    f.write_all_at(&[bytes[at as usize + 3] ^ 1], at + 3)
        .unwrap();
    drop(f);
    let mut args = vec!["verify", s(&tampered), s(&tampered), root];
    args.extend(&opts);
    let o = veritysetup(&args);
    assert!(!o.status.success(), "verify passed a tampered image");
    // And one flipped byte in a block that was a hole (free space).
    let tampered2 = dir.path().join("tampered2.img");
    fs::copy(&image, &tampered2).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&tampered2).unwrap();
    f.write_all_at(&[1], offset - 4096 + 100).unwrap();
    drop(f);
    let mut args = vec!["verify", s(&tampered2), s(&tampered2), root];
    args.extend(&opts);
    assert!(
        !veritysetup(&args).status.success(),
        "verify passed a tampered free block"
    );

    mount_verified(&image, root, &opts, &want);
}

#[test]
fn superblock_equals_veritysetup_format_and_builds_are_reproducible() {
    if !have_veritysetup() {
        return;
    }
    let dir = scratch();
    let (source, want) = layout(dir.path());
    let image = dir.path().join("root.img");
    let report = build(&source, &image, &["--verity", "--verity-superblock"]);
    let v = check_report(&image, &report);
    e2fsck(&image);
    let root = v["root_hash"].as_str().unwrap();
    let offset = v["hash_offset"].as_u64().unwrap();
    let uuid = v["uuid"].as_str().unwrap();
    // With the superblock, the hash offset and root hash are all veritysetup needs.
    let hash_offset = format!("--hash-offset={offset}");
    ok(&veritysetup(&[
        "verify",
        s(&image),
        s(&image),
        root,
        &hash_offset,
    ]));
    let dump = veritysetup(&["dump", s(&image), &hash_offset]);
    ok(&dump);
    let dump = String::from_utf8_lossy(&dump.stdout).to_lowercase();
    assert!(dump.contains(uuid), "{dump}");
    assert!(dump.contains(v["salt"].as_str().unwrap()), "{dump}");

    let theirs = dir.path().join("theirs.img");
    data_copy(&image, &theirs, offset);
    let salt = format!("--salt={}", v["salt"].as_str().unwrap());
    let uuid_arg = format!("--uuid={uuid}");
    let o = veritysetup(&[
        "format",
        s(&theirs),
        s(&theirs),
        &hash_offset,
        &salt,
        &uuid_arg,
    ]);
    ok(&o);
    assert_eq!(root_hash_of(&o), root);
    assert!(
        fs::read(&image).unwrap() == fs::read(&theirs).unwrap(),
        "the image differs from veritysetup format's with its superblock"
    );

    // The same input gives the same bytes, tree and superblock included; and the same root
    // hash as without the superblock.
    let again = dir.path().join("again.img");
    build(&source, &again, &["--verity", "--verity-superblock"]);
    assert!(
        fs::read(&image).unwrap() == fs::read(&again).unwrap(),
        "not reproducible"
    );
    let plain = dir.path().join("plain.img");
    let r = build(&source, &plain, &["--verity"]);
    assert_eq!(r["verity"]["root_hash"].as_str().unwrap(), root);
    // The tree reads the file data back: without --fsync it goes through the page cache.
    assert_eq!(r["summary"]["direct_written_bytes"], 0);
    // With --fsync, past it (where the filesystem allows): the same bytes all the same, the
    // tree's unaligned writes included.
    let durable = dir.path().join("durable.img");
    let r = build(
        &source,
        &durable,
        &["--verity", "--verity-superblock", "--fsync"],
    );
    eprintln!(
        "--fsync: {} bytes written past the page cache",
        r["summary"]["direct_written_bytes"]
    );
    assert!(
        fs::read(&image).unwrap() == fs::read(&durable).unwrap(),
        "--fsync changed the image"
    );

    mount_verified(&image, root, &[&hash_offset], &want);
}

#[test]
fn given_salt_and_block_sizes_keep_the_filesystem_on_4096_byte_blocks() {
    let dir = scratch();
    let (source, _) = layout(dir.path());
    for (bs, size) in [("1024", "100003K"), ("2048", "70002K"), ("4096", "66M")] {
        let image = dir.path().join(format!("bs{bs}.img"));
        let report = build(
            &source,
            &image,
            &[
                "--verity",
                "--block-size",
                bs,
                "--size",
                size,
                "--verity-salt",
                "00ff10",
            ],
        );
        let v = check_report(&image, &report);
        assert_eq!(
            report["summary"]["block_size"]
                .as_u64()
                .unwrap()
                .to_string(),
            bs
        );
        assert_eq!(v["salt"], "00ff10");
        e2fsck(&image);
        if have_veritysetup() {
            let offset = format!("--hash-offset={}", v["hash_offset"]);
            let blocks = format!("--data-blocks={}", v["data_blocks"]);
            let root = v["root_hash"].as_str().unwrap();
            ok(&veritysetup(&[
                "verify",
                s(&image),
                s(&image),
                root,
                &offset,
                &blocks,
                "--no-superblock",
                "--salt=00ff10",
            ]));
        }
    }
    // Sized to the content with 1 KiB blocks: rounded up to a multiple of four blocks.
    let image = dir.path().join("auto.img");
    let report = build(
        &source,
        &image,
        &["--verity", "--verity-salt", "-", "--block-size", "auto"],
    );
    assert_eq!(report["summary"]["block_size"], 1024);
    let v = check_report(&image, &report);
    assert_eq!(v["salt"], "-");
    e2fsck(&image);
    // --journal asks for one.
    let image = dir.path().join("journal.img");
    let report = build(&source, &image, &["--verity", "--journal"]);
    assert!(report["summary"]["journal_blocks"].as_u64().unwrap() > 0);
    e2fsck(&image);
}

#[test]
fn bad_salts_are_refused_without_output() {
    let dir = scratch();
    let (source, _) = layout(dir.path());
    let long = "ab".repeat(257);
    for salt in ["xyz", "abc", long.as_str()] {
        let image = dir.path().join("bad.img");
        let o = Command::new(common::bin())
            .arg("build")
            .arg(&source)
            .arg("-o")
            .arg(&image)
            .args(["--verity", "--verity-salt", salt])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{salt}: {err}");
        assert!(err.contains("salt"), "{err}");
        assert!(!image.exists());
    }
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn library_builds_report_the_root_hash() {
    let dir = scratch();
    let image = dir.path().join("lib.img");
    let mut opts = BuildOptions::default();
    opts.block_size = BlockSize::K1;
    opts.journal = false;
    // Not a multiple of 4096: rounded down.
    opts.size = Some((80 << 20) + 1024);
    let mut v = VerityOptions::default();
    v.salt = Some(vec![7; 16]);
    opts.verity = Some(v);
    let mut b = ImageBuilder::create(&image, opts).unwrap();
    b.add_dir("etc", common::meta(0o755)).unwrap();
    b.add_file("etc/hostname", common::meta(0o644), &mut &b"vm\n"[..])
        .unwrap();
    let summary = b.finish().unwrap();
    let info = summary.verity.expect("verity info in the summary");
    assert_eq!(summary.image_bytes, 80 << 20);
    assert_eq!(info.hash_offset, 80 << 20);
    assert_eq!(info.salt, "07".repeat(16));
    let len = fs::metadata(&image).unwrap().len();
    assert_eq!(len, info.hash_offset + info.hash_blocks * 4096);
    e2fsck(&image);
    if have_veritysetup() {
        let o = veritysetup(&[
            "verify",
            s(&image),
            s(&image),
            &info.root_hash,
            &format!("--hash-offset={}", info.hash_offset),
            &format!("--data-blocks={}", info.data_blocks),
            "--no-superblock",
            &format!("--salt={}", info.salt),
        ]);
        ok(&o);
    }
}

/// A verity mapping, closed on drop.
struct Mapping(String);

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = Command::new("veritysetup")
            .args(["close", &self.0])
            .output();
    }
}

/// As root: mounts the image read-only through a loop device and compares the tree; then maps
/// it with `veritysetup open`, mounts the verified device read-only and compares again.
fn mount_verified(image: &Path, root: &str, opts: &[&str], want: &Tree) {
    if !common::can_mount() {
        skip("verity mount", "needs root and loop devices");
        return;
    }
    {
        let m = Mounted::new(image, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.path().join("lost+found").is_dir(), "lost+found missing");
        assert_same_tree(want, &snapshot(m.path()));
    }
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "oci2ext4-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut args = vec!["open", s(image), &name, s(image), root];
    args.extend(opts);
    let o = veritysetup(&args);
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        skip(
            "verity mount",
            &format!(
                "veritysetup open failed (no device-mapper or dm-verity in this kernel?): {err}"
            ),
        );
        return;
    }
    let mapping = Mapping(name);
    let dev = format!("/dev/mapper/{}", mapping.0);
    let mnt = tempfile::tempdir().unwrap();
    let o = Command::new("mount")
        .args(["-t", "ext4", "-o", "ro", &dev])
        .arg(mnt.path())
        .output()
        .unwrap();
    ok(&o);
    assert!(mnt.path().join("lost+found").is_dir(), "lost+found missing");
    let got = snapshot(mnt.path());
    let unmount = Command::new("umount").arg(mnt.path()).output().unwrap();
    ok(&unmount);
    assert_same_tree(want, &got);
    drop(mapping);
}

#[test]
fn append_checks_its_input_and_stops_when_cancelled() {
    use oci2ext4::verity::{append, HashTreeParams};
    use std::sync::atomic::AtomicBool;
    let dir = scratch();
    let path = dir.path().join("data");
    let mut data = vec![0u8; 8 << 20];
    Rng::new(3).fill(&mut data[..1 << 20]);
    fs::write(&path, &data).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut params = HashTreeParams::new(b"");
    let e = append(&f, 4095, &params).unwrap_err();
    assert_eq!(e.kind(), oci2ext4::ErrorKind::InvalidArgument, "{e}");
    let stop = AtomicBool::new(true);
    params.cancel = Some(&stop);
    let e = append(&f, 8 << 20, &params).unwrap_err();
    assert_eq!(e.kind(), oci2ext4::ErrorKind::Cancelled, "{e}");
    params.cancel = None;
    let info = append(&f, 8 << 20, &params).unwrap();
    assert_eq!(info.salt, "-");
    assert_eq!((info.data_blocks, info.hash_blocks), (2048, 17));
    assert_eq!(fs::metadata(&path).unwrap().len(), (8 << 20) + 17 * 4096);
    if have_veritysetup() {
        ok(&veritysetup(&[
            "verify",
            s(&path),
            s(&path),
            &info.root_hash,
            "--hash-offset=8388608",
            "--no-superblock",
            "--data-blocks=2048",
            "--salt=-",
        ]));
    }
}

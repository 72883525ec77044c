//! How the image reaches the disk: the ways file data of an uncompressed tar in a regular file
//! is moved (read through the layer stream, read in place, copied by the kernel, and the
//! kernel refusing) and written (past the page cache by default, through it when asked), all
//! giving the same image bytes; `--fsync` through the library and the command line; and a
//! source that ends early.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::tars::{Attrs, TarGen};
use common::{check_image, scratch, skip, Check, Rng};
use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::source::file_layer;
use oci2ext4::{BlockSize, BuildOptions, ImageBuilder, Summary};

/// Bytes that never hold a whole zero block.
fn busy(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| (rng.next() % 255) as u8 + 1).collect()
}

/// Writes a tar whose files exercise every case of the in-place copy: small files read from
/// the buffer, large ones with aligned and unaligned runs of zeros, one of zeros only, sizes on
/// and off block boundaries. Returns its model.
fn write_tar(path: &Path) -> common::model::Model {
    let mut g = TarGen::new(fs::File::create(path).unwrap());
    g.dir("data", Attrs::new(0o755));
    g.file("data/small.txt", Attrs::new(0o644), b"small\n");
    g.file("data/edge-64k", Attrs::new(0o644), &busy(64 << 10, 1));
    let mut holes = busy(3 << 20, 2);
    // Zeros on 4 KiB boundaries (holes at any block size), then zeros across boundaries.
    holes[64 << 10..192 << 10].fill(0);
    holes[(1 << 20) + 100..(1 << 20) + 9000].fill(0);
    holes[(2 << 20) - 4096..(2 << 20) + 4096].fill(0);
    g.file("data/holes.bin", Attrs::new(0o600), &holes);
    g.file("data/zeros", Attrs::new(0o644), &vec![0u8; 300 << 10]);
    g.file("data/blocks-exact", Attrs::new(0o644), &busy(256 << 10, 3));
    g.file(
        "data/odd-tail",
        Attrs::new(0o755),
        &busy((200 << 10) + 1, 4),
    );
    g.hardlink("data/link", "data/odd-tail");
    g.symlink("data/sym", Attrs::new(0o777), b"holes.bin");
    for i in 0..50 {
        g.file(
            &format!("data/many/{i:02}"),
            Attrs::new(0o644),
            &busy(1000 + i * 97, 10 + i as u64),
        );
    }
    g.file("last", Attrs::new(0o644), &busy(100 << 10, 5));
    g.finish().1
}

/// Builds the tar at `tar` into `image`, through the layer stream when `stream`, else in place.
fn build(tar: &Path, image: &Path, opts: BuildOptions, stream: bool) -> Summary {
    let mut layer = file_layer(tar);
    if stream {
        layer.file = None;
    }
    let mut b = ImageBuilder::create(image, opts).unwrap();
    apply_layers(&mut b, vec![layer], &mut NoProgress).unwrap();
    b.finish().unwrap()
}

/// Whether files in `dir` can be written past the page cache (`O_DIRECT`) at `align`-byte
/// offsets: one block of that size from a page-aligned buffer, at byte `align`.
fn direct_io_works(dir: &Path, align: usize) -> bool {
    use rustix::fs::{open, Mode, OFlags};
    use std::os::unix::fs::FileExt;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::DIRECT;
    let Ok(fd) = open(dir.join("direct.probe"), flags, Mode::from_raw_mode(0o600)) else {
        return false;
    };
    let raw = vec![0u8; 4096 + align];
    let at = raw.as_ptr().align_offset(4096);
    fs::File::from(fd)
        .write_all_at(&raw[at..at + align], align as u64)
        .is_ok()
}

fn opts(bs: BlockSize, kernel_copy: bool, fsync: bool) -> BuildOptions {
    let mut o = BuildOptions::default();
    o.block_size = bs;
    o.kernel_copy = kernel_copy;
    o.fsync = fsync;
    o
}

#[test]
fn every_copy_path_gives_the_same_image() {
    let dir = scratch();
    let tar = dir.path().join("in.tar");
    let model = write_tar(&tar);
    for bs in [BlockSize::K4, BlockSize::K1] {
        let n = bs.bytes();
        let streamed = dir.path().join(format!("streamed-{n}.ext4"));
        let s = build(&tar, &streamed, opts(bs, false, false), true);
        // Read before any check mounts it read-write.
        let want = fs::read(&streamed).unwrap();
        check_image(&streamed, &model.tree, Check::default());
        // By default file data goes past the page cache, where the filesystem allows it: all
        // of it here (too little for the device's speed to be judged).
        let direct = direct_io_works(dir.path(), n);
        eprintln!("O_DIRECT in the scratch directory: {direct}");
        let data_blocks = s.direct_written_bytes;
        if direct {
            assert!(
                data_blocks >= 3 << 20,
                "{data_blocks} bytes written with O_DIRECT"
            );
        } else {
            assert_eq!(data_blocks, 0);
        }

        let cached = dir.path().join(format!("cached-{n}.ext4"));
        let mut o = opts(bs, false, false);
        o.page_cache = true;
        let s = build(&tar, &cached, o, true);
        assert_eq!(s.direct_written_bytes, 0);
        assert!(
            fs::read(&cached).unwrap() == want,
            "page-cache image differs ({n})"
        );

        let read = dir.path().join(format!("read-{n}.ext4"));
        let s = build(&tar, &read, opts(bs, false, false), false);
        assert_eq!(s.kernel_copied_bytes + s.read_copied_bytes, 0);
        assert_eq!(s.direct_written_bytes, data_blocks);
        assert!(
            fs::read(&read).unwrap() == want,
            "in-place reads differ ({n})"
        );

        let kernel = dir.path().join(format!("kernel-{n}.ext4"));
        let s = build(&tar, &kernel, opts(bs, true, false), false);
        assert_eq!(
            s.direct_written_bytes, 0,
            "kernel copies go through the page cache"
        );
        eprintln!(
            "{n}-byte blocks: kernel copied {} bytes, {} read back",
            s.kernel_copied_bytes, s.read_copied_bytes
        );
        // Every whole non-zero block of files of 64 KiB and more goes through a copy job: all
        // of them but the zeros of holes.bin (128 KiB, 8 KiB, and of the run across block
        // boundaries the blocks it covers whole) and the last byte of odd-tail.
        let across = if n == 4096 { 4096 } else { 7 << 10 };
        let expected = [64 << 10, 3 << 20, 256 << 10, 200 << 10, 100 << 10]
            .iter()
            .sum::<u64>()
            - (128 << 10)
            - 8192
            - across;
        assert_eq!(s.kernel_copied_bytes + s.read_copied_bytes, expected);
        assert_eq!(
            s.read_copied_bytes, 0,
            "the kernel refused on one filesystem"
        );
        assert!(
            fs::read(&kernel).unwrap() == want,
            "kernel copies differ ({n})"
        );
        check_image(&kernel, &model.tree, Check::default());

        // Durable: the data bypasses the page cache, so the kernel does not copy it.
        let durable = dir.path().join(format!("durable-{n}.ext4"));
        let s = build(&tar, &durable, opts(bs, true, true), false);
        assert_eq!(s.kernel_copied_bytes + s.read_copied_bytes, 0);
        assert_eq!(s.direct_written_bytes, data_blocks);
        assert!(
            fs::read(&durable).unwrap() == want,
            "--fsync image differs ({n})"
        );
    }
}

#[test]
fn a_refused_kernel_copy_falls_back_to_reading() {
    // Since Linux 5.19, copy_file_range between filesystems of different types is refused
    // (EXDEV): a tar on a tmpfs copied into an image elsewhere.
    let shm = Path::new("/dev/shm");
    let dir = scratch();
    let Ok(tdir) = tempfile::tempdir_in(shm) else {
        skip("copy_file_range refusal", "no writable /dev/shm");
        return;
    };
    let tar = tdir.path().join("in.tar");
    let model = write_tar(&tar);
    let streamed = dir.path().join("streamed.ext4");
    build(&tar, &streamed, opts(BlockSize::K4, false, false), true);
    let image = dir.path().join("fallback.ext4");
    let s = build(&tar, &image, opts(BlockSize::K4, true, false), false);
    if s.read_copied_bytes == 0 {
        skip(
            "copy_file_range refusal",
            "the kernel copied between /dev/shm and the scratch directory",
        );
        return;
    }
    assert!(s.read_copied_bytes > 3 << 20);
    assert!(fs::read(&image).unwrap() == fs::read(&streamed).unwrap());
    check_image(&image, &model.tree, Check { read_write: false });
}

#[test]
fn fsync_and_page_cache_through_the_command_line() {
    let dir = scratch();
    let tar = dir.path().join("in.tar");
    let model = write_tar(&tar);
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let direct = direct_io_works(dir.path(), 4096);
    eprintln!("O_DIRECT in the scratch directory: {direct}");
    let names = ["default.ext4", "durable.ext4", "cached.ext4"];
    for (name, extra) in names
        .iter()
        .zip([None, Some("--fsync"), Some("--page-cache")])
    {
        let o = Command::new(common::bin())
            .arg("build")
            .arg(&tar)
            .arg("-o")
            .arg(out.join(name))
            .arg("--json")
            .args(extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let written = report["summary"]["direct_written_bytes"].as_u64().unwrap();
        if direct && extra != Some("--page-cache") {
            assert!(
                written >= 3 << 20,
                "{name}: {written} bytes past the page cache"
            );
        } else {
            assert_eq!(written, 0, "{name}");
        }
    }
    let mut found: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(found, want, "no temporary file left");
    let a = fs::read(out.join("default.ext4")).unwrap();
    assert!(a == fs::read(out.join("durable.ext4")).unwrap());
    assert!(a == fs::read(out.join("cached.ext4")).unwrap());
    for name in names {
        check_image(&out.join(name), &model.tree, Check::default());
    }
}

#[test]
fn a_source_that_ends_early_is_an_error_naming_the_entry() {
    let dir = scratch();
    let tar = dir.path().join("in.tar");
    write_tar(&tar);
    // Cut inside holes.bin's data (after the first 1 MiB of it).
    let bytes = fs::read(&tar).unwrap();
    let at = bytes
        .windows(b"data/holes.bin".len())
        .position(|w| w == b"data/holes.bin")
        .unwrap()
        + (1 << 20);
    fs::write(&tar, &bytes[..at]).unwrap();
    for kernel_copy in [false, true] {
        let image = dir.path().join("cut.ext4");
        let mut b = ImageBuilder::create(&image, opts(BlockSize::K4, kernel_copy, false)).unwrap();
        let err = apply_layers(&mut b, vec![file_layer(&tar)], &mut NoProgress).unwrap_err();
        drop(b);
        let msg = err.to_string();
        assert!(msg.contains("data/holes.bin"), "{msg}");
        assert_eq!(err.kind(), oci2ext4::ErrorKind::CorruptInput, "{msg}");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "in.tar")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

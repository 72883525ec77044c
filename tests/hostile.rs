//! Hostile and broken input, limits and interruption: a clear error of the documented class,
//! no panic, and no output file left behind.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::layers::LayerGen;
use common::tars::Attrs;
use common::{scratch, Rng};
use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::source::file_layer;
use oci2ext4::{BuildOptions, ErrorKind, ImageBuilder, Metadata, Timestamp};

/// Only the inputs a test made remain in `dir`: no image, no partial file.
fn assert_no_output(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".ext4") && !name.contains(".partial"),
            "left behind: {name}"
        );
    }
}

/// A tar holding one file of `size` zero bytes, gzip-compressed as it is written: a small file
/// that inflates to a lot.
fn zero_bomb(path: &Path, size: u64) {
    let mut h = tar::Header::new_ustar();
    h.set_path("bomb").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let gz =
        flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.append(&h, std::io::Read::take(std::io::repeat(0), size))
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn a_decompression_bomb_stops_at_the_size_limit() {
    let dir = scratch();
    let bomb = dir.path().join("bomb.tar.gz");
    zero_bomb(&bomb, 512 << 20);
    assert!(fs::metadata(&bomb).unwrap().len() < 4 << 20);
    let out = dir.path().join("bomb.ext4");
    let start = Instant::now();
    let o = Command::new(common::bin())
        .arg("build")
        .arg(&bomb)
        .arg("-o")
        .arg(&out)
        .args(["--max-size", "100M"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("maximum image size") && err.contains("bomb"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert_no_output(dir.path());
}

#[test]
fn cancelling_stops_and_removes_the_output() {
    let dir = scratch();
    let flag = Arc::new(AtomicBool::new(false));
    let mut opts = BuildOptions::default();
    opts.cancel = Some(flag.clone());
    let mut b = ImageBuilder::create(dir.path().join("c.ext4"), opts).unwrap();
    b.add_file(
        "a",
        Metadata::new(0o644, 0, 0, Timestamp::default()),
        &mut &b"x"[..],
    )
    .unwrap();
    flag.store(true, Ordering::Relaxed);
    let mut data = vec![0u8; 1 << 20];
    Rng::new(1).fill(&mut data);
    let e = b
        .add_file(
            "b",
            Metadata::new(0o644, 0, 0, Timestamp::default()),
            &mut &data[..],
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    drop(b);
    assert_no_output(dir.path());
    // Cancelled between the last entry and finishing.
    let flag = Arc::new(AtomicBool::new(false));
    let mut opts = BuildOptions::default();
    opts.cancel = Some(flag.clone());
    let b = ImageBuilder::create(dir.path().join("d.ext4"), opts).unwrap();
    flag.store(true, Ordering::Relaxed);
    assert_eq!(b.finish().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_no_output(dir.path());
}

/// Data that streams slowly, so a signal arrives mid-build.
struct Slow {
    left: u64,
    rng: Rng,
}

impl std::io::Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(5));
        let n = buf.len().min(64 << 10).min(self.left as usize);
        self.rng.fill(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// `oci2ext4 build --layer /dev/stdin -o out`, started with its stdin and stderr piped.
fn build_from_a_pipe(out: &Path) -> std::process::Child {
    Command::new(common::bin())
        .arg("build")
        .arg("--layer")
        .arg("/dev/stdin")
        .arg("-o")
        .arg(out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_sigint_and_sighup_remove_the_output() {
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let dir = scratch();
        let out = dir.path().join("sig.ext4");
        // Feed a layer through a pipe, slowly: the build is surely running when the signal comes.
        let mut child = build_from_a_pipe(&out);
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let mut g = LayerGen::new();
            let mut data = Vec::new();
            std::io::Read::read_to_end(
                &mut Slow {
                    left: 8 << 20,
                    rng: Rng::new(5),
                },
                &mut data,
            )
            .unwrap();
            g.file("big", Attrs::new(0o644), &data);
            let (tar, _) = g.finish();
            for chunk in tar.chunks(64 << 10) {
                if stdin.write_all(chunk).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        std::thread::sleep(Duration::from_millis(1500));
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let status = child.wait().unwrap();
        let _ = writer.join();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        assert_no_output(dir.path());
    }
}

/// Waits up to `limit` for `child` to exit; kills it and fails when it does not.
fn wait_at_most(child: &mut std::process::Child, limit: Duration, what: &str) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_signal_stops_a_build_reading_a_stalled_pipe() {
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let dir = scratch();
        let out = dir.path().join("stall.ext4");
        let mut child = build_from_a_pipe(&out);
        // The whole archive, then nothing: the pipe stays open, so the build waits for more.
        let mut g = LayerGen::new();
        g.file("f", Attrs::new(0o644), b"data");
        let (tar, _) = g.finish();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&tar[..tar.len() / 2]).unwrap();
        std::thread::sleep(Duration::from_millis(800));
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let got = wait_at_most(&mut child, Duration::from_secs(10), signal);
        drop(stdin);
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(got, code, "SIG{signal}: {err}");
        assert!(err.contains(&format!("SIG{signal}")), "{err}");
        assert_no_output(dir.path());
    }
}

#[test]
fn cancelling_while_finishing_does_not_commit() {
    let dir = scratch();
    let flag = Arc::new(AtomicBool::new(false));
    let mut opts = BuildOptions::default();
    opts.cancel = Some(flag.clone());
    let out = dir.path().join("f.ext4");
    let mut b = ImageBuilder::create(&out, opts).unwrap();
    let t = Timestamp::default();
    for d in 0..200 {
        for f in 0..500 {
            b.add_file(
                format!("d{d}/f{f}"),
                Metadata::new(0o644, 0, 0, t),
                &mut &b""[..],
            )
            .unwrap();
        }
    }
    // Finishing 100,000 entries takes far longer than the flag takes to come.
    let setter = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            flag.store(true, Ordering::Relaxed);
        })
    };
    let e = b.finish().unwrap_err();
    setter.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert_no_output(dir.path());
}

#[test]
fn limits_give_their_class() {
    let dir = scratch();
    let t = Timestamp::default();
    let mut opts = BuildOptions::default();
    opts.limits.max_depth = 10;
    opts.limits.max_symlink_follows = 3;
    let mut b = ImageBuilder::create(dir.path().join("l.ext4"), opts).unwrap();
    let deep = (0..11)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    assert_eq!(
        b.add_dir(&deep, Metadata::new(0o755, 0, 0, t))
            .unwrap_err()
            .kind(),
        ErrorKind::LimitExceeded
    );
    let long = "x".repeat(256);
    let e = b.add_dir(&long, Metadata::new(0o755, 0, 0, t)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    assert!(e.to_string().contains("255"), "{e}");
    for (name, target) in [("s1", "s2"), ("s2", "s3"), ("s3", "s4"), ("s4", "real")] {
        b.add_symlink(name, Metadata::new(0o777, 0, 0, t), target)
            .unwrap();
    }
    b.add_dir("real", Metadata::new(0o755, 0, 0, t)).unwrap();
    b.add_file("s3/ok", Metadata::new(0o644, 0, 0, t), &mut &b""[..])
        .unwrap();
    let e = b
        .add_file("s1/too-many", Metadata::new(0o644, 0, 0, t), &mut &b""[..])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    // Hard links up to ext4's limit of 65,000 names per file.
    b.add_file("target", Metadata::new(0o644, 0, 0, t), &mut &b"t"[..])
        .unwrap();
    for i in 1..65_000 {
        b.add_hard_link(format!("links/{i}"), "target").unwrap();
    }
    let e = b.add_hard_link("links/one-too-many", "target").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    b.finish().unwrap();
    common::e2fsck(&dir.path().join("l.ext4"));
}

#[test]
fn entry_sizes_that_run_past_the_stream() {
    let dir = scratch();
    let mut g = LayerGen::new();
    g.file("f", Attrs::new(0o644), &[1u8; 10_000]);
    let (mut tar, _) = g.finish();
    tar.truncate(1024 + 512 + 3000);
    let p = dir.path().join("short.tar");
    fs::write(&p, &tar).unwrap();
    let mut b = ImageBuilder::create(dir.path().join("s.ext4"), BuildOptions::default()).unwrap();
    let e = apply_layers(&mut b, vec![file_layer(&p)], &mut NoProgress).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CorruptInput);
    assert_eq!(e.entry(), Some("f"));
    assert!(e.to_string().contains("archive ends"), "{e}");
    drop(b);
    assert_no_output(dir.path());
}

/// Runs `oci2ext4 build --layer LAYER -o OUT` with `extra` options.
fn build_layer(layer: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .arg("build")
        .arg("--layer")
        .arg(layer)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn names_from_symlink_targets_are_held_to_255_bytes() {
    // `l -> A×len` then `l/f`: the walk through `l` makes a directory named by the target.
    // Lengths of 256 to 258 once wrapped to an empty name, `.` and `..`; 300 to 44 bytes; a
    // name longer than a 1 KiB block tripped the directory encoder.
    for len in [256, 257, 258, 300, 1000] {
        let dir = scratch();
        let mut g = LayerGen::new();
        g.symlink("l", &"A".repeat(len));
        g.file("l/f", Attrs::new(0o644), b"data");
        let (tar, _) = g.finish();
        let layer = dir.path().join("layer.tar");
        fs::write(&layer, &tar).unwrap();
        let out = dir.path().join("n.ext4");
        let o = build_layer(&layer, &out, &["--block-size", "1024"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(5), "len {len}: {err}");
        assert!(
            err.contains("\"l/f\"") && err.contains(&format!("{len} bytes")) && err.contains("255"),
            "len {len}: {err}"
        );
        assert_no_output(dir.path());
    }
    // At 255 bytes the name is kept whole.
    let dir = scratch();
    let long = "A".repeat(255);
    let mut g = LayerGen::new();
    g.symlink("l", &long);
    g.file("l/f", Attrs::new(0o644), b"data");
    let (tar, _) = g.finish();
    let mut want = LayerGen::new();
    want.symlink("l", &long);
    want.dir(&long, Attrs::new(0o755).mtime(0, 0));
    want.file(&format!("{long}/f"), Attrs::new(0o644), b"data");
    let layer = dir.path().join("layer.tar");
    fs::write(&layer, &tar).unwrap();
    let out = dir.path().join("n.ext4");
    let o = build_layer(&layer, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::check_image(
        &out,
        &common::layers::expected(&[want.finish().1]),
        common::Check::default(),
    );
}

#[test]
fn repeated_whiteouts_and_opaque_markers_in_one_layer() {
    // Each marker after the first in a layer finds nothing lower; the tree must still be the
    // model's, whatever the order.
    let mut lower = LayerGen::new();
    lower.dir("d", Attrs::new(0o700));
    lower.file("d/old", Attrs::new(0o644), b"old");
    lower.file("d/sub/x", Attrs::new(0o644), b"x");
    lower.file("e/old", Attrs::new(0o644), b"e");
    lower.file("g", Attrs::new(0o644), b"g");
    let mut upper = LayerGen::new();
    upper.file("d/f0", Attrs::new(0o644), b"0");
    upper.whiteout("d");
    upper.file("d/f1", Attrs::new(0o644), b"1");
    upper.whiteout("d");
    upper.file("d/sub/y", Attrs::new(0o644), b"y");
    upper.opaque("d");
    upper.whiteout("d");
    upper.opaque("d");
    upper.opaque("e");
    upper.file("e/new", Attrs::new(0o644), b"n");
    upper.opaque("e");
    upper.file("g/x", Attrs::new(0o644), b"gx");
    upper.whiteout("g");
    upper.whiteout("g");
    let dir = scratch();
    let (blobs, ops): (Vec<Vec<u8>>, Vec<_>) =
        [lower, upper].into_iter().map(LayerGen::finish).unzip();
    let mut inputs = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        let p = dir.path().join(format!("layer{i}.tar"));
        fs::write(&p, blob).unwrap();
        inputs.push(file_layer(&p));
    }
    let image = dir.path().join("w.ext4");
    let mut b = ImageBuilder::create(&image, BuildOptions::default()).unwrap();
    apply_layers(&mut b, inputs, &mut NoProgress).unwrap();
    b.finish().unwrap();
    common::check_image(
        &image,
        &common::layers::expected(&ops),
        common::Check::default(),
    );
}

/// Control characters (C0 but newline, DEL, C1) in `text`.
fn controls(text: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(text)
        .chars()
        .filter(|&c| c != '\n' && c.is_control())
        .collect()
}

#[test]
fn names_and_keys_from_the_input_are_printed_escaped() {
    let dir = scratch();
    let mut g = LayerGen::new();
    // An attribute ext4 cannot store gives a warning naming the entry and the key.
    g.file(
        "a\x1b[31mred\u{9b}2J",
        Attrs::new(0o644).xattr(b"bogus.\x1b]0;title\x07\x7f", b"v"),
        b"x",
    );
    let (tar, _) = g.finish();
    let layer = dir.path().join("layer.tar");
    fs::write(&layer, &tar).unwrap();
    let out = dir.path().join("e.ext4");
    let o = build_layer(&layer, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("\\x1b[31mred"),
        "{err}"
    );
    assert_eq!(controls(&o.stderr), Vec::<char>::new(), "{err}");
    fs::remove_file(&out).unwrap();
    let o = build_layer(&layer, &out, &["--json"]);
    assert!(o.status.success());
    assert_eq!(
        controls(&o.stdout),
        Vec::<char>::new(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["warnings"][0].as_str().unwrap().contains("\\x9b2J"),
        "{v}"
    );
    // An error naming such an entry.
    let mut g = LayerGen::new();
    g.hardlink("l\x1b[2J", "nowhere\u{85}");
    let (tar, _) = g.finish();
    fs::write(&layer, &tar).unwrap();
    fs::remove_file(&out).unwrap();
    let o = build_layer(&layer, &out, &[]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        controls(&o.stderr),
        Vec::<char>::new(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_no_output(dir.path());
    // The same error as a --json error object: escaped as on stderr.
    let o = build_layer(&layer, &out, &["--json"]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("l\\u{1b}[2J"), "{message}");
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert_no_output(dir.path());
}

#[test]
fn bytes_after_the_end_of_the_archive_count_toward_the_size_limit() {
    let dir = scratch();
    let mut g = LayerGen::new();
    g.file("f", Attrs::new(0o644), b"small");
    let (tar, _) = g.finish();
    // The archive, then 160 MiB of zeros: gzip makes them 160 KiB.
    let layer = dir.path().join("padded.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&layer).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&tar).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..160 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    let out = dir.path().join("p.ext4");
    let o = build_layer(&layer, &out, &["--max-size", "100M"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("maximum image size"), "{err}");
    assert_no_output(dir.path());
    // Within the limit the same layer builds.
    let o = build_layer(&layer, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::e2fsck(&out);
}

#[test]
fn zstd_windows_beyond_what_the_layer_needs_are_refused() {
    let dir = scratch();
    let mut g = LayerGen::new();
    let mut data = vec![0u8; 1 << 20];
    Rng::new(9).fill(&mut data);
    g.file("f", Attrs::new(0o644), &data);
    let (tar, _) = g.finish();
    // A streamed frame (no content size) asking for a 256 MiB window.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.window_log(28).unwrap();
    enc.long_distance_matching(true).unwrap();
    enc.write_all(&tar).unwrap();
    let big = enc.finish().unwrap();
    let layer = dir.path().join("wide.tar.zst");
    fs::write(&layer, &big).unwrap();
    let out = dir.path().join("z.ext4");
    let o = build_layer(&layer, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a 256 MiB window was accepted");
    assert!(err.contains("wide.tar.zst"), "{err}");
    assert_no_output(dir.path());
    // The 128 MiB of `zstd --long` is accepted.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.window_log(27).unwrap();
    enc.long_distance_matching(true).unwrap();
    enc.write_all(&tar).unwrap();
    fs::write(&layer, enc.finish().unwrap()).unwrap();
    let o = build_layer(&layer, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::e2fsck(&out);
}

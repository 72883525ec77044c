//! Replays the fuzz targets' seed inputs (`fuzz/seeds/<target>/`) and every input that once made
//! a target fail (`fuzz/regressions/<target>/`) through the targets' own code, compiled here
//! from `fuzz/src`, so that the normal test suite keeps them fixed. A failing file is named in
//! the test output.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let data = fs::read(&f).unwrap();
            eprintln!("replaying {}", f.display());
            run(&data);
            count += 1;
        }
    }
    assert!(count > 0, "no inputs for {target}");
}

#[test]
fn layer() {
    replay("layer", harness::layer);
}

#[test]
fn layer_ops() {
    replay("layer_ops", harness::layer_ops);
}

#[test]
fn oci_json() {
    replay("oci_json", harness::oci_json);
}

#[test]
fn docker_manifest() {
    replay("docker_manifest", harness::docker_manifest);
}

/// The `layer` target forgives ext4-view's refusal of times after 2038 only when the inode's
/// raw fields are valid: a nanosecond count of 10^9 or more is still a failure.
#[test]
fn late_times_are_forgiven_only_when_valid() {
    use oci2ext4::layer::{apply_layers, NoProgress};
    use oci2ext4::{BuildOptions, ImageBuilder};
    let input =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/layer/atime-after-2038-pax");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img.ext4");
    let mut builder = ImageBuilder::create(&out, BuildOptions::default()).unwrap();
    let layer = oci2ext4::source::file_layer(&input);
    apply_layers(&mut builder, vec![layer], &mut NoProgress).unwrap();
    builder.finish().unwrap();
    let err = harness::image::read(&out, harness::image::Contents::All).unwrap_err();
    assert!(err.contains("has invalid timestamp"), "{err}");
    assert!(harness::image::is_late_time_refusal(&out, &err));

    // The same inode with its atime's nanoseconds out of range (checksums aside: only the
    // raw fields are judged here).
    let mut img = fs::read(&out).unwrap();
    let ino: u64 = err
        .split("inode ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A small image: the inode is in group 0, whose descriptor opens block 1.
    let ipg = u32::from_le_bytes(img[1024 + 0x28..1024 + 0x2C].try_into().unwrap());
    assert!(ino <= u64::from(ipg));
    let bs = 4096u64;
    let table = u64::from(u32::from_le_bytes(
        img[4096 + 8..4096 + 12].try_into().unwrap(),
    ));
    let at = (table * bs + (ino - 1) * 256) as usize + 0x8C;
    img[at..at + 4].copy_from_slice(&(1_000_000_000u32 << 2).to_le_bytes());
    let bad = dir.path().join("bad.ext4");
    fs::write(&bad, &img).unwrap();
    assert!(!harness::image::is_late_time_refusal(&bad, &err));
}

/// The `layer` target's name check reads names as tar-rs does, with the real name of a PAX
/// sparse file, and does not take one layer's names for another's.
#[test]
fn layer_names_are_read_independently() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/layer");
    let names = |f: &str| harness::names::stated(&fs::read(seeds.join(f)).unwrap()).unwrap();
    let gnu = names("gnu.tar");
    assert!(gnu.contains(&b"etc/motd.link"[..]), "{gnu:?}");
    assert!(!gnu.contains(&b"etc/.wh.gone"[..]) && !gnu.contains(&b"sparse"[..]));
    assert_eq!(names("pax.tar.gz"), gnu);
    assert_eq!(names("pax.tar.zst"), gnu);
    assert!(names("pax-sparse.tar").contains(&b"sparse"[..]));
    assert!(names("gnu-sparse.tar").contains(&b"sparse"[..]));
}

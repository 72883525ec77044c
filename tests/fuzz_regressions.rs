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

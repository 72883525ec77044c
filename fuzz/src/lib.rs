//! The fuzz targets' code, shared with `tests/fuzz_regressions.rs`, which replays the seed and
//! regression inputs under `fuzz/seeds/` and `fuzz/regressions/` through these same functions
//! in the normal test suite.
//!
//! Each function takes the raw fuzz input and panics only when the crate misbehaves: a panic
//! inside the crate, or a result the checks here can tell is wrong. Errors from the crate are
//! fine wherever the input may be invalid.

// Included as a module by the tests too; not every item is used by each includer.
#![allow(dead_code)]

pub mod image;
mod json;
pub mod names;
mod ops;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci2ext4::layer::{apply_layers, LayerInput, NoProgress};
use oci2ext4::{BlockSize, BuildOptions, ImageBuilder};

pub use json::{docker_manifest, oci_json};
pub use ops::layer_ops;

/// Options for fuzz builds: small images, a bound on the size so that decompression bombs
/// stop early, and a small data buffer; 4 KiB blocks.
pub(crate) fn options() -> BuildOptions {
    options_with(BlockSize::K4)
}

/// The block size an input chooses: `choice % 3` picks 4, 1 or 2 KiB.
pub(crate) fn block_size(choice: usize) -> BlockSize {
    [BlockSize::K4, BlockSize::K1, BlockSize::K2][choice % 3]
}

/// [`options`] with blocks of `block_size`.
pub(crate) fn options_with(block_size: BlockSize) -> BuildOptions {
    let mut o = BuildOptions::default();
    o.block_size = block_size;
    o.min_size = 16 << 20;
    o.limits.max_size = 1 << 30;
    o.buffer_size = 1 << 20;
    o
}

/// A scratch directory, in memory where the machine has `/dev/shm`.
pub(crate) fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let b = {
        let mut b = tempfile::Builder::new();
        b.prefix("oci2ext4-fuzz");
        b
    };
    if shm.is_dir() {
        if let Ok(d) = b.tempdir_in(shm) {
            return d;
        }
    }
    b.tempdir().expect("create a scratch directory")
}

/// The names in a directory.
pub(crate) fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the scratch directory")
        .map(|e| e.expect("read the scratch directory").path())
        .collect();
    v.sort();
    v
}

/// A layer whose blob is `data`, held in memory.
pub(crate) fn memory_layer(name: &str, data: Vec<u8>) -> LayerInput {
    let data: Arc<[u8]> = data.into();
    let size = data.len() as u64;
    LayerInput::new(name, move || Ok(Cursor::new(ArcBytes(data.clone())))).with_size(size)
}

/// Shared bytes as a `Cursor` source.
struct ArcBytes(Arc<[u8]>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Target `layer`: one layer's bytes, compressed or not, through the whole builder, with
/// blocks of 4, 1 or 2 KiB as the input's length chooses ([`block_size`]; the bytes
/// themselves are all the layer's).
///
/// Checks: no panic; an error leaves no file behind; a success leaves exactly the image, the
/// image opens with an independent ext4 reader (`ext4-view`, which verifies the metadata
/// checksums) and every entry in it can be read, and every path in it is a name the layer
/// gives (an entry's, or a directory above one) as an independent tar reader (tar-rs) reads
/// the layer, when it can ([`names::stated`]).
pub fn layer(data: &[u8]) {
    let dir = scratch();
    let out = dir.path().join("out.ext4");
    let mut builder = ImageBuilder::create(&out, options_with(block_size(data.len())))
        .expect("create the builder");
    let mut input = memory_layer("fuzz layer", data.to_vec());
    // The blob digest is right: the check runs, and a failure to parse is not blamed on it.
    input.blob_digest = Some(oci2ext4::blob::Digest::of(data));
    let result =
        apply_layers(&mut builder, vec![input], &mut NoProgress).and_then(|_| builder.finish());
    match result {
        Ok(_) => {
            assert_eq!(
                listing(dir.path()),
                vec![out.clone()],
                "files beside the image"
            );
            match image::read(&out, image::Contents::Prefix(64 << 10)) {
                Ok(paths) => {
                    if let Some(stated) = names::stated(data) {
                        let foreign: Vec<String> = paths
                            .keys()
                            .filter(|p| !p.is_empty() && !stated.contains(*p))
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .collect();
                        assert!(
                            foreign.is_empty(),
                            "the image has names the layer does not give: {foreign:?}"
                        );
                    }
                }
                Err(e) => {
                    if !image::is_late_time_refusal(&out, &e) {
                        panic!("the image built cannot be read back: {e}");
                    }
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            assert!(
                listing(dir.path()).is_empty(),
                "a failed build ({msg}) left files behind: {:?}",
                listing(dir.path())
            );
        }
    }
}

//! Hostile shapes of input that once took time quadratic in their size, each at two sizes: the
//! time per element should stay flat from the smaller to the larger (linear growth).
//!
//! - `whiteouts`: one layer giving files `d/f_i`, each followed by a whiteout `.wh.d` of their
//!   directory (a directory whited out again and again in its own layer);
//! - `opaque`: the same with an opaque marker `d/.wh..wh..opq` after each file;
//! - `give-ways`: a lower layer of files `g_i`, then a layer putting `g_i/x` under each (a
//!   non-directory giving way to a directory, pending until the layer says why) and, at its
//!   end, a whiteout `.wh.g_i` of each;
//! - `xattrs`: one file given N extended attributes of distinct names (refused for space once
//!   they are sorted and de-duplicated: what is measured is the time to get there).
//!
//! Sizes are 10,000 and 100,000 elements; throughput counts elements. The layers are built in
//! memory, the images go to `BENCH_DIR` (else `target/bench-tmp`) and are deleted.
//!
//! `cargo bench --bench adversarial`

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oci2ext4::layer::{apply_layers, LayerInput, NoProgress};
use oci2ext4::{BuildOptions, ImageBuilder, Metadata, Timestamp, Xattr};

use common::{bench_dir, group};

const SIZES: [usize; 2] = [10_000, 100_000];

/// A tar of empty entries: `(path, type)`.
fn tar(entries: impl Iterator<Item = (String, tar::EntryType)>) -> Arc<[u8]> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    }
    b.into_inner().unwrap().into()
}

fn layer(name: &str, bytes: Arc<[u8]>) -> LayerInput {
    let size = bytes.len() as u64;
    LayerInput::new(name, move || Ok(std::io::Cursor::new(bytes.clone())))
        .with_size(size)
        .with_expanded_size(size)
}

/// The layers of each shape with `n` elements.
fn shape(name: &str, n: usize) -> Vec<Arc<[u8]>> {
    use tar::EntryType::{Directory, Regular};
    let file = |p: String| (p, Regular);
    match name {
        "whiteouts" | "opaque" => {
            let lower = tar([("d/".to_string(), Directory), file("d/old".into())].into_iter());
            let marker = if name == "opaque" {
                "d/.wh..wh..opq"
            } else {
                ".wh.d"
            };
            let upper =
                tar((0..n / 2)
                    .flat_map(move |i| [file(format!("d/f{i}")), file(marker.to_string())]));
            vec![lower, upper]
        }
        "give-ways" => {
            let lower = tar((0..n).map(move |i| file(format!("g{i}"))));
            let upper = tar((0..n)
                .map(move |i| file(format!("g{i}/x")))
                .chain((0..n).map(move |i| file(format!(".wh.g{i}")))));
            vec![lower, upper]
        }
        _ => unreachable!(),
    }
}

fn build(layers: &[Arc<[u8]>]) {
    let out = bench_dir().join("adversarial.ext4");
    let mut b = ImageBuilder::create(&out, BuildOptions::default()).unwrap();
    let inputs = layers
        .iter()
        .enumerate()
        .map(|(i, l)| layer(&format!("layer {i}"), l.clone()))
        .collect();
    apply_layers(&mut b, inputs, &mut NoProgress).unwrap();
    b.finish().unwrap();
    std::fs::remove_file(&out).unwrap();
}

fn xattrs(n: usize) {
    let out = bench_dir().join("adversarial-xattrs.ext4");
    let mut b = ImageBuilder::create(&out, BuildOptions::default()).unwrap();
    let mut meta = Metadata::new(0o644, 0, 0, Timestamp::from_secs(1_700_000_000));
    meta.xattrs = (0..n)
        .map(|i| Xattr {
            name: format!("user.a{i}").into_bytes(),
            value: b"v".to_vec(),
        })
        .collect();
    let e = b.add_file("f", meta, &mut &b""[..]).unwrap_err();
    assert_eq!(e.kind(), oci2ext4::ErrorKind::LimitExceeded, "{e}");
}

fn bench(c: &mut Criterion) {
    for name in ["whiteouts", "opaque", "give-ways"] {
        for n in SIZES {
            let layers = shape(name, n);
            let mut g = group(
                c,
                &format!("adversarial/{name}"),
                Throughput::Elements(n as u64),
                Duration::from_secs(5),
            );
            g.bench_function(n.to_string(), |bch| {
                bch.iter_batched(|| (), |()| build(&layers), BatchSize::PerIteration)
            });
            g.finish();
        }
    }
    for n in SIZES {
        let mut g = group(
            c,
            "adversarial/xattrs",
            Throughput::Elements(n as u64),
            Duration::from_secs(5),
        );
        g.bench_function(n.to_string(), |bch| bch.iter(|| xattrs(n)));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

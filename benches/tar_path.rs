//! The tar path (`oci2ext4::layer::apply_layers`, then `finish`) beside its floors, in one run:
//!
//! - `tar/*`: a flattened uncompressed tar into an image, beside copying the tar to a file as
//!   `cat` does (`common::cat_to_file`: 128 KiB reads and writes, then a sync, as the image is
//!   synced), the same floor as the writer benchmarks';
//! - `gzip/*`: the same tar gzip-compressed as one layer, beside decompressing it alone
//!   (`flate2::read::MultiGzDecoder` into `io::sink`, with the crate's flate2 backend).
//!
//! Each comes with two inputs: `small` (30,000 files of 100 B to 16 KiB in directories of 300)
//! and `large` (16 files of 16 MiB). Throughput is counted in bytes of uncompressed tar. The
//! inputs are generated once into `BENCH_DIR` (else `target/bench-tmp`) and kept for the next
//! run; images and copies are deleted outside the timing.
//!
//! `cargo bench --bench tar_path`

mod common;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flate2::read::MultiGzDecoder;
use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::source::file_layer;
use oci2ext4::{BuildOptions, ImageBuilder};

use common::{bench_dir, cat_to_file, group, pattern, PoolReader, Rng};

/// Bump when the generated content changes, so stale inputs are not reused.
const VERSION: u32 = 1;

fn header(path: &str, size: u64, kind: tar::EntryType, mode: u32) -> (tar::Header, String) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    (h, path.to_string())
}

/// Writes the tar `name` (and its gzip) unless they exist; returns their paths.
fn input(
    name: &str,
    entries: impl Fn(&mut tar::Builder<BufWriter<File>>, &[u8]) -> io::Result<()>,
) -> (PathBuf, PathBuf) {
    let dir = bench_dir();
    let tar_path = dir.join(format!("tar_path-v{VERSION}-{name}.tar"));
    let gz_path = dir.join(format!("tar_path-v{VERSION}-{name}.tar.gz"));
    if !tar_path.exists() || !gz_path.exists() {
        let pool = pattern();
        let tmp = tar_path.with_extension("partial");
        let mut b = tar::Builder::new(BufWriter::with_capacity(
            1 << 20,
            File::create(&tmp).unwrap(),
        ));
        entries(&mut b, &pool).unwrap();
        b.into_inner().unwrap().flush().unwrap();
        let gz_tmp = gz_path.with_extension("partial");
        let mut enc = flate2::write::GzEncoder::new(
            BufWriter::new(File::create(&gz_tmp).unwrap()),
            flate2::Compression::default(),
        );
        io::copy(&mut File::open(&tmp).unwrap(), &mut enc).unwrap();
        enc.finish().unwrap().flush().unwrap();
        std::fs::rename(&tmp, &tar_path).unwrap();
        std::fs::rename(&gz_tmp, &gz_path).unwrap();
    }
    (tar_path, gz_path)
}

fn small(b: &mut tar::Builder<BufWriter<File>>, pool: &[u8]) -> io::Result<()> {
    let mut rng = Rng(0x5_3a11);
    for i in 0..30_000u64 {
        if i % 300 == 0 {
            let (mut h, p) = header(
                &format!("dir{:03}/", i / 300),
                0,
                tar::EntryType::Directory,
                0o755,
            );
            b.append_data(&mut h, p, io::empty())?;
        }
        // log-uniform between 100 B and 16 KiB
        let size = (100f64 * (164f64).powf((rng.next() >> 11) as f64 / (1u64 << 53) as f64)) as u64;
        let (mut h, p) = header(
            &format!("dir{:03}/file{i:05}.js", i / 300),
            size,
            tar::EntryType::Regular,
            0o644,
        );
        let pos = rng.below(pool.len() as u64) as usize;
        b.append_data(&mut h, p, PoolReader::new(pool, pos, size))?;
    }
    Ok(())
}

fn large(b: &mut tar::Builder<BufWriter<File>>, pool: &[u8]) -> io::Result<()> {
    for i in 0..16u64 {
        let size = 16 << 20;
        let (mut h, p) = header(
            &format!("blobs/blob{i:02}.bin"),
            size,
            tar::EntryType::Regular,
            0o644,
        );
        b.append_data(
            &mut h,
            p,
            PoolReader::new(pool, (i as usize) * 4096 * 101, size),
        )?;
    }
    Ok(())
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tar_path-")
        .tempdir_in(bench_dir())
        .expect("scratch directory")
}

/// Builds an image from one layer file, as `oci2ext4 build --fsync --layer FILE` does (synced,
/// as the floor is).
fn build(layer: &Path, out: &Path) {
    let mut opts = BuildOptions::default();
    opts.fsync = true;
    let mut image = ImageBuilder::create(out, opts).unwrap();
    apply_layers(&mut image, vec![file_layer(layer)], &mut NoProgress).unwrap();
    image.finish().unwrap();
}

fn tar_path(c: &mut Criterion) {
    let inputs = [
        ("small", input("small", small), Duration::from_secs(12)),
        ("large", input("large", large), Duration::from_secs(25)),
    ];
    for (name, (tar, gz), time) in &inputs {
        let bytes = std::fs::metadata(tar).unwrap().len();
        let mut g = group(c, &format!("tar/{name}"), Throughput::Bytes(bytes), *time);
        g.bench_function("oci2ext4", |b| {
            b.iter_batched(
                scratch,
                |dir| {
                    build(tar, &dir.path().join("img.ext4"));
                    dir
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("copy_floor", |b| {
            b.iter_batched(
                scratch,
                |dir| {
                    let mut src = File::open(tar).unwrap();
                    cat_to_file(&mut src, &dir.path().join("copy")).unwrap();
                    dir
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();

        let mut g = group(c, &format!("gzip/{name}"), Throughput::Bytes(bytes), *time);
        g.bench_function("oci2ext4", |b| {
            b.iter_batched(
                scratch,
                |dir| {
                    build(gz, &dir.path().join("img.ext4"));
                    dir
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("gunzip_floor", |b| {
            b.iter(|| {
                let f = BufReader::with_capacity(256 << 10, File::open(gz).unwrap());
                let n = io::copy(&mut MultiGzDecoder::new(f), &mut io::sink()).unwrap();
                assert_eq!(n, bytes);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, tar_path);
criterion_main!(benches);

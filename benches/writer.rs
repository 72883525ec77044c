//! The library writer (`ImageBuilder`) beside a copy floor, in one run:
//!
//! - `1gib_8_files`: 1 GiB of file data in 8 files of 128 MiB (throughput in bytes/s);
//! - `100k_files_4kib`: 100,000 files of 4 KiB in directories of 1,000 (throughput in files/s).
//!
//! The floor, `copy_floor`, writes the same bytes into one file the way `cat` does (128 KiB
//! reads and writes) and syncs it, as `ImageBuilder::finish` syncs the image with
//! [`BuildOptions::fsync`], which the library runs here use. Data comes from an
//! 8 MiB non-zero pattern made before timing starts (all-zero blocks would become holes).
//! Outputs go to `BENCH_DIR`, else `target/bench-tmp`; each is deleted outside the timing.
//!
//! `cargo bench --bench writer`

mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oci2ext4::{BuildOptions, ImageBuilder, Metadata, Timestamp};

/// The options of the timed builds: synced, as the floor is.
fn durable() -> BuildOptions {
    let mut o = BuildOptions::default();
    o.fsync = true;
    o
}

use common::{bench_dir, cat_to_file, group, pattern, PoolReader};

const GIB: u64 = 1 << 30;
const BIG_FILES: u64 = 8;
const SMALL_FILES: u64 = 100_000;
const SMALL_SIZE: u64 = 4096;

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("writer-")
        .tempdir_in(bench_dir())
        .expect("scratch directory")
}

fn meta() -> Metadata {
    Metadata::new(0o644, 0, 0, Timestamp::from_secs(1_700_000_000))
}

fn large_files(c: &mut Criterion) {
    let pool = pattern();
    let mut g = group(
        c,
        "writer/1gib_8_files",
        Throughput::Bytes(GIB),
        Duration::from_secs(30),
    );
    g.bench_function("oci2ext4", |b| {
        b.iter_batched(
            scratch,
            |dir| {
                let mut image =
                    ImageBuilder::create(dir.path().join("img.ext4"), durable()).unwrap();
                for i in 0..BIG_FILES {
                    let size = GIB / BIG_FILES;
                    let mut r = PoolReader::new(&pool, (i as usize) * 4096 * 37, size);
                    image
                        .add_file(format!("data/file{i}"), meta(), &mut r)
                        .unwrap();
                }
                image.finish().unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("copy_floor", |b| {
        b.iter_batched(
            scratch,
            |dir| {
                let mut r = PoolReader::new(&pool, 0, GIB);
                cat_to_file(&mut r, &dir.path().join("copy")).unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn small_files(c: &mut Criterion) {
    let pool = pattern();
    let mut g = group(
        c,
        "writer/100k_files_4kib",
        Throughput::Elements(SMALL_FILES),
        Duration::from_secs(15),
    );
    g.bench_function("oci2ext4", |b| {
        b.iter_batched(
            scratch,
            |dir| {
                let mut image =
                    ImageBuilder::create(dir.path().join("img.ext4"), durable()).unwrap();
                for i in 0..SMALL_FILES {
                    let mut r = PoolReader::new(&pool, (i * SMALL_SIZE) as usize, SMALL_SIZE);
                    image
                        .add_file(format!("d{:03}/f{i:06}", i / 1000), meta(), &mut r)
                        .unwrap();
                }
                image.finish().unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("copy_floor", |b| {
        b.iter_batched(
            scratch,
            |dir| {
                let mut r = PoolReader::new(&pool, 0, SMALL_FILES * SMALL_SIZE);
                cat_to_file(&mut r, &dir.path().join("copy")).unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, large_files, small_files);
criterion_main!(benches);

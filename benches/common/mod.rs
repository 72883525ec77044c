//! What the criterion benchmarks share: where they write, and cheap deterministic data.

#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// The directory the benchmarks write to: `BENCH_DIR` if set, else `target/bench-tmp` of this
/// crate (on the same disk as the build, not a tmpfs like `/tmp` may be).
pub fn bench_dir() -> PathBuf {
    let dir = match std::env::var_os("BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-tmp"),
    };
    std::fs::create_dir_all(&dir).expect("create the benchmark directory");
    dir
}

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// 8 MiB of binary-like bytes with no all-zero 4 KiB block: 4 KiB blocks alternate between
/// random bytes, bytes from a small alphabet, and text, so gzip shrinks the data somewhat.
pub fn pattern() -> Vec<u8> {
    let mut rng = Rng(0x0b3e_9c41);
    let words: &[&[u8]] = &[
        b"function ",
        b"return ",
        b"const ",
        b"value",
        b"(",
        b");\n",
        b"{",
        b"}\n",
        b"the ",
        b"data ",
        b"options",
        b" = ",
        b"module.exports",
        b"require('",
        b"')",
        b"length",
    ];
    let mut out = vec![0u8; 8 << 20];
    for (i, block) in out.chunks_mut(4096).enumerate() {
        match i % 3 {
            0 => {
                for b in block.chunks_mut(8) {
                    let v = rng.next().to_le_bytes();
                    b.copy_from_slice(&v[..b.len()]);
                }
            }
            1 => {
                for b in block.iter_mut() {
                    *b = b"\x48\x89\x8b\xe8\xff\x0f\x85\x24"[(rng.next() % 8) as usize];
                }
            }
            _ => {
                let mut at = 0;
                while at < block.len() {
                    let w = words[rng.below(words.len() as u64) as usize];
                    let n = w.len().min(block.len() - at);
                    block[at..at + n].copy_from_slice(&w[..n]);
                    at += n;
                }
            }
        }
    }
    out
}

/// Yields `left` bytes of `pool`, from `pos` on, wrapping around.
pub struct PoolReader<'a> {
    pub pool: &'a [u8],
    pub pos: usize,
    pub left: u64,
}

impl<'a> PoolReader<'a> {
    pub fn new(pool: &'a [u8], pos: usize, left: u64) -> Self {
        PoolReader {
            pool,
            pos: pos % pool.len(),
            left,
        }
    }
}

impl Read for PoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.pool.len() - self.pos)
            .min(buf.len())
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.pool[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.pool.len();
        self.left -= n as u64;
        Ok(n)
    }
}

/// The copy floor: what `cat` does with the bytes `src` yields (reads into a 128 KiB buffer,
/// writes it out), into a new file, synced at the end as the image builder syncs its output.
pub fn cat_to_file(src: &mut dyn Read, dest: &std::path::Path) -> io::Result<u64> {
    let mut out = File::create(dest)?;
    let mut buf = vec![0u8; 128 << 10];
    let mut total = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    out.sync_all()?;
    Ok(total)
}

/// A criterion group as every benchmark here runs it: 10 samples, flat sampling (each
/// iteration builds or copies a whole input), 1 s of warm-up, `time` of measurement.
pub fn group<'a>(
    c: &'a mut criterion::Criterion,
    name: &str,
    throughput: criterion::Throughput,
    time: std::time::Duration,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(criterion::SamplingMode::Flat)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(time)
        .throughput(throughput);
    g
}

//! Generates the inputs of `benches/compare.sh` and `benches/growth.sh`: layer tars that look
//! like real images, made at run time from fixed seeds (the same arguments give the same bytes).
//!
//! ```text
//! cargo run --release --example bench_gen -- node   OUTDIR [SCALE]  # layer1.tar layer2.tar
//! cargo run --release --example bench_gen -- large  OUTDIR [SCALE]  # layer1.tar
//! cargo run --release --example bench_gen -- debian OUTDIR [SCALE]  # layer1.tar … layer5.tar
//! cargo run --release --example bench_gen -- entries N OUT          # flat tar of N entries
//! cargo run --release --example bench_gen -- data BYTES OUT         # flat tar of BYTES of data
//! ```
//!
//! - `node`: a node_modules-like tree, about 40,000 entries at SCALE 1, mostly small JavaScript
//!   files, in two layers (a base with npm, then the application's dependencies).
//! - `large`: 200 binary-like files, about 1.3 GB at SCALE 1, in one layer. The data mixes
//!   random bytes, code-like bytes, strings and sparse tables, so gzip shrinks it somewhat.
//! - `debian`: a Debian-like root filesystem, about 6,000 entries in five layers: a base, an
//!   `apt-get install`, a cleanup made of whiteouts, an application, and a configuration layer
//!   with opaque directories, a directory replaced by a symlink and whiteouts of whole trees.
//! - `entries`: N entries, small files in directories of 100 (for growth in entry count).
//! - `data`: files of 64 MiB of binary-like data adding up to BYTES (for growth in bytes).
//!
//! OUT may be `-` for standard output. The tars are plain; compress them as needed.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

#[path = "../benches/common/mod.rs"]
mod common;

use common::{PoolReader, Rng};

/// Every entry's modification time.
const MTIME: u64 = 1_700_000_000;

/// What the generator draws beyond `common::Rng`'s integers.
trait Draw {
    fn unit(&mut self) -> f64;
    fn chance(&mut self, p: f64) -> bool;
    /// A size between `lo` and `hi`, uniform on a log scale (many small, few large).
    fn log_size(&mut self, lo: u64, hi: u64) -> u64;
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str;
}

impl Draw for Rng {
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn log_size(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        (a + self.unit() * (b - a)).exp() as u64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const JS_WORDS: &[&str] = &[
    "function",
    "return",
    "const",
    "let",
    "var",
    "if",
    "else",
    "for",
    "while",
    "new",
    "this",
    "typeof",
    "undefined",
    "null",
    "true",
    "false",
    "require",
    "module",
    "exports",
    "async",
    "await",
    "Promise",
    "resolve",
    "reject",
    "then",
    "catch",
    "value",
    "options",
    "callback",
    "err",
    "result",
    "length",
    "push",
    "prototype",
    "Object",
    "keys",
    "Array",
    "isArray",
    "map",
    "filter",
    "reduce",
    "JSON",
    "stringify",
    "parse",
    "string",
    "number",
    "buffer",
    "stream",
    "emit",
    "on",
    "once",
    "path",
    "join",
    "name",
    "type",
    "key",
    "index",
    "data",
    "config",
];
const JS_PUNCT: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    ";",
    ",",
    ".",
    " = ",
    " === ",
    " !== ",
    " && ",
    " || ",
    "[",
    "]",
    " => ",
    ": ",
    "\n",
    "\n  ",
    "\n    ",
    "'use strict';\n",
    "// ",
    "0",
    "1",
    "'",
    "\"",
];
const TEXT_WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "for",
    "that",
    "with",
    "as",
    "package",
    "license",
    "software",
    "without",
    "warranty",
    "copyright",
    "version",
    "this",
    "file",
    "may",
    "be",
    "used",
    "under",
    "terms",
    "debian",
    "upstream",
    "changes",
    "fixed",
    "bug",
    "release",
    "security",
    "update",
    "new",
    "support",
    "library",
    "program",
    "data",
    "system",
    "user",
];
const SYLLABLES: &[&str] = &[
    "lo", "da", "sh", "ex", "pre", "ss", "co", "re", "act", "ui", "ba", "bel", "we", "pack", "es",
    "lint", "ty", "pe", "scr", "ipt", "mo", "ment", "ax", "ios", "chalk", "de", "bug", "glob",
    "yar", "gs", "semver", "uu", "id", "mime", "qs", "ws", "rx", "js", "core", "util",
];

/// A 4 MiB corpus of text made of `words` and `punct`, cut into files at random offsets.
fn corpus(seed: u64, words: &[&str], punct: &[&str]) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(4 << 20);
    while out.len() < 4 << 20 {
        out.extend_from_slice(rng.pick(words).as_bytes());
        if rng.chance(0.6) {
            out.extend_from_slice(rng.pick(punct).as_bytes());
        } else {
            out.push(b' ');
        }
        if rng.chance(0.03) {
            // identifiers and literals that do not repeat
            out.extend_from_slice(format!("_{:x}", rng.next() >> 40).as_bytes());
        }
    }
    out.truncate(4 << 20);
    out
}

/// A 16 MiB pool of binary-like 4 KiB blocks: random (like compressed sections), code-like
/// (skewed byte values), strings, and sparse tables (mostly zeros, never all zero).
fn binary_pool(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let text = corpus(
        seed ^ 0x55,
        TEXT_WORDS,
        &[" ", "\0", "\n", "%s", "/usr/lib/"],
    );
    const COMMON: &[u8] = &[
        0x00, 0x48, 0x89, 0x8b, 0xe8, 0xff, 0x0f, 0x85, 0x84, 0x24, 0x45, 0x31, 0xc0, 0x74, 0x75,
        0xc3, 0x41, 0x4c, 0x8d, 0x83, 0xf8, 0x01, 0x10, 0x20, 0x08, 0x44, 0x24, 0x28, 0x5d, 0x90,
    ];
    let mut pool = vec![0u8; 16 << 20];
    for block in pool.chunks_mut(4096) {
        let kind = rng.below(100);
        if kind < 45 {
            for b in block.chunks_mut(8) {
                let v = rng.next().to_le_bytes();
                b.copy_from_slice(&v[..b.len()]);
            }
        } else if kind < 75 {
            for b in block.iter_mut() {
                let r = rng.next();
                *b = if r.is_multiple_of(4) {
                    (r >> 8) as u8
                } else {
                    COMMON[((r >> 8) % COMMON.len() as u64) as usize]
                };
            }
        } else if kind < 90 {
            let at = rng.below((text.len() - 4096) as u64) as usize;
            block.copy_from_slice(&text[at..at + 4096]);
        } else {
            for (i, b) in block.iter_mut().enumerate() {
                if i % 16 == 0 || rng.chance(0.02) {
                    *b = rng.next() as u8 | 1;
                }
            }
        }
    }
    pool
}

/// One layer tar being written. Parent directories of every entry are written first, once per
/// layer, as image builders do.
struct Layer {
    tar: tar::Builder<BufWriter<File>>,
    dirs: BTreeSet<String>,
    entries: u64,
    bytes: u64,
}

fn open_out(out: &str) -> io::Result<File> {
    if out == "-" {
        use std::os::fd::AsFd;
        Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
    } else {
        File::create(out)
    }
}

impl Layer {
    fn create(out: &str) -> io::Result<Self> {
        let mut tar = tar::Builder::new(BufWriter::with_capacity(4 << 20, open_out(out)?));
        tar.mode(tar::HeaderMode::Complete);
        Ok(Layer {
            tar,
            dirs: BTreeSet::new(),
            entries: 0,
            bytes: 0,
        })
    }

    fn header(kind: tar::EntryType, mode: u32, owner: (u64, u64)) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let dir = &path[..at + i];
            at += i + 1;
            if !self.dirs.contains(dir) {
                self.dir(dir, 0o755, (0, 0))?;
            }
        }
        Ok(())
    }

    fn dir(&mut self, path: &str, mode: u32, owner: (u64, u64)) -> io::Result<()> {
        self.parents(path)?;
        if self.dirs.insert(path.to_string()) {
            let mut h = Self::header(tar::EntryType::Directory, mode, owner);
            self.tar
                .append_data(&mut h, format!("{path}/"), io::empty())?;
            self.entries += 1;
        }
        Ok(())
    }

    fn file(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u64, u64),
        data: impl Read,
        size: u64,
    ) -> io::Result<()> {
        self.parents(path)?;
        let mut h = Self::header(tar::EntryType::Regular, mode, owner);
        h.set_size(size);
        self.tar.append_data(&mut h, path, data)?;
        self.entries += 1;
        self.bytes += size;
        Ok(())
    }

    /// A file of `size` bytes cut from `pool` at a random offset.
    fn pooled(
        &mut self,
        path: &str,
        mode: u32,
        pool: &[u8],
        rng: &mut Rng,
        size: u64,
    ) -> io::Result<()> {
        let r = PoolReader::new(pool, rng.below(pool.len() as u64) as usize, size);
        self.file(path, mode, (0, 0), r, size)
    }

    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.parents(path)?;
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, (0, 0));
        self.tar.append_link(&mut h, path, target)?;
        self.entries += 1;
        Ok(())
    }

    fn hardlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.parents(path)?;
        let mut h = Self::header(tar::EntryType::Link, 0o755, (0, 0));
        self.tar.append_link(&mut h, path, target)?;
        self.entries += 1;
        Ok(())
    }

    /// Hides `path` of the lower layers.
    fn whiteout(&mut self, path: &str) -> io::Result<()> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let marker = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&marker, 0o644, (0, 0), io::empty(), 0)
    }

    /// Hides every lower child of `dir`.
    fn opaque(&mut self, dir: &str) -> io::Result<()> {
        self.dir(dir, 0o755, (0, 0))?;
        self.file(
            &format!("{dir}/.wh..wh..opq"),
            0o644,
            (0, 0),
            io::empty(),
            0,
        )
    }

    fn finish(self, what: &str) -> io::Result<(u64, u64)> {
        let mut w = self.tar.into_inner()?;
        w.flush()?;
        eprintln!(
            "{what}: {} entries, {} bytes of file data",
            self.entries, self.bytes
        );
        Ok((self.entries, self.bytes))
    }
}

fn package_name(rng: &mut Rng, taken: &mut BTreeSet<String>) -> String {
    loop {
        let mut name = String::new();
        for _ in 0..1 + rng.below(3) {
            name.push_str(rng.pick(SYLLABLES));
        }
        if rng.chance(0.3) {
            name.push('-');
            name.push_str(rng.pick(SYLLABLES));
        }
        if rng.chance(0.1) {
            name = format!("@{}/{name}", rng.pick(SYLLABLES));
        }
        if taken.insert(name.clone()) {
            return name;
        }
    }
}

/// One npm package under `root`: manifest, docs, sources in nested directories, sometimes a
/// bundle with its source map, type declarations and nested dependencies.
fn npm_package(
    l: &mut Layer,
    root: &str,
    rng: &mut Rng,
    js: &[u8],
    text: &[u8],
    taken: &mut BTreeSet<String>,
    depth: u32,
) -> io::Result<()> {
    let name = package_name(rng, taken);
    let dir = format!("{root}/{name}");
    let size = 300 + rng.below(2500);
    l.pooled(&format!("{dir}/package.json"), 0o644, js, rng, size)?;
    if rng.chance(0.8) {
        let size = rng.log_size(500, 30_000);
        l.pooled(&format!("{dir}/README.md"), 0o644, text, rng, size)?;
    }
    if rng.chance(0.7) {
        let size = 1_000 + rng.below(200);
        l.pooled(&format!("{dir}/LICENSE"), 0o644, text, rng, size)?;
    }
    let size = rng.log_size(100, 8_000);
    l.pooled(&format!("{dir}/index.js"), 0o644, js, rng, size)?;
    let subdirs = [
        "lib",
        "lib/internal",
        "src",
        "build",
        "lib/utils",
        "es",
        "cjs",
    ];
    for _ in 0..rng.log_size(2, 60) {
        let sub = subdirs[rng.below(subdirs.len() as u64) as usize];
        let file = format!("{dir}/{sub}/{}{}.js", rng.pick(JS_WORDS), rng.below(1000));
        let size = rng.log_size(150, 40_000);
        l.pooled(&file, 0o644, js, rng, size)?;
        if rng.chance(0.3) {
            let dts = file.replace(".js", ".d.ts");
            let size = rng.log_size(100, 6_000);
            l.pooled(&dts, 0o644, js, rng, size)?;
        }
    }
    if rng.chance(0.15) {
        let size = rng.log_size(20_000, 1_200_000);
        let base = name.rsplit('/').next().unwrap_or(&name);
        l.pooled(&format!("{dir}/dist/{base}.min.js"), 0o644, js, rng, size)?;
        let size = rng.log_size(40_000, 2_000_000);
        l.pooled(&format!("{dir}/dist/index.js.map"), 0o644, js, rng, size)?;
    }
    if rng.chance(0.1) {
        l.symlink(&format!("{dir}/.bin-{}", rng.below(1000)), "index.js")?;
    }
    if depth == 0 && rng.chance(0.08) {
        for _ in 0..1 + rng.below(3) {
            npm_package(
                l,
                &format!("{dir}/node_modules"),
                rng,
                js,
                text,
                taken,
                depth + 1,
            )?;
        }
    }
    Ok(())
}

fn node(out: &Path, scale: f64) -> io::Result<()> {
    let mut rng = Rng(0x6e6f6465);
    let js = corpus(1, JS_WORDS, JS_PUNCT);
    let text = corpus(2, TEXT_WORDS, &[" ", ". ", ",", "\n", "\n\n", "# ", "`"]);
    let bin = binary_pool(3);
    let mut taken = BTreeSet::new();
    // Layer 1: a slim base with node and npm.
    let mut l = Layer::create(&out.join("layer1.tar").to_string_lossy())?;
    for d in [
        "etc",
        "tmp",
        "root",
        "var/log",
        "usr/share/doc",
        "home/node",
    ] {
        l.dir(d, if d == "tmp" { 0o1777 } else { 0o755 }, (0, 0))?;
    }
    for i in 0..(200.0 * scale) as u64 {
        let size = rng.log_size(10_000, 2_000_000);
        l.pooled(&format!("usr/bin/tool{i}"), 0o755, &bin, &mut rng, size)?;
        l.pooled(
            &format!("usr/share/doc/tool{i}/copyright"),
            0o644,
            &text,
            &mut rng,
            1500,
        )?;
    }
    let size = (60_000_000.0 * scale) as u64;
    l.pooled("usr/local/bin/node", 0o755, &bin, &mut rng, size)?;
    l.symlink(
        "usr/local/bin/npm",
        "../lib/node_modules/npm/bin/npm-cli.js",
    )?;
    while l.entries < (5_500.0 * scale) as u64 {
        npm_package(
            &mut l,
            "usr/local/lib/node_modules/npm/node_modules",
            &mut rng,
            &js,
            &text,
            &mut taken,
            0,
        )?;
    }
    l.finish("node layer 1")?;
    // Layer 2: the application's dependencies.
    let mut l = Layer::create(&out.join("layer2.tar").to_string_lossy())?;
    l.pooled("app/package.json", 0o644, &js, &mut rng, 3_000)?;
    l.pooled("app/package-lock.json", 0o644, &js, &mut rng, 900_000)?;
    for i in 0..20 {
        l.pooled(&format!("app/src/route{i}.js"), 0o644, &js, &mut rng, 5_000)?;
    }
    while l.entries < (35_000.0 * scale) as u64 {
        npm_package(
            &mut l,
            "app/node_modules",
            &mut rng,
            &js,
            &text,
            &mut taken,
            0,
        )?;
    }
    l.finish("node layer 2")?;
    Ok(())
}

fn large(out: &Path, scale: f64) -> io::Result<()> {
    let mut rng = Rng(0x6c61726765);
    let bin = binary_pool(4);
    let total = (1_300_000_000.0 * scale) as u64;
    let weights: Vec<f64> = (0..200)
        .map(|_| 0.2 + rng.unit() * rng.unit() * 4.0)
        .collect();
    let sum: f64 = weights.iter().sum();
    let mut l = Layer::create(&out.join("layer1.tar").to_string_lossy())?;
    for (i, w) in weights.iter().enumerate() {
        let size = (total as f64 * w / sum) as u64;
        let dir = [
            "opt/models",
            "opt/app/lib",
            "usr/lib/x86_64-linux-gnu",
            "srv/assets",
        ][i % 4];
        l.pooled(
            &format!("{dir}/blob{i:03}.bin"),
            0o644,
            &bin,
            &mut rng,
            size,
        )?;
    }
    l.finish("large layer 1")?;
    Ok(())
}

/// One Debian-like package: binaries, libraries with their symlinks, docs, man pages, locale
/// files, conffiles and dpkg's bookkeeping.
fn deb_package(
    l: &mut Layer,
    name: &str,
    rng: &mut Rng,
    bin: &[u8],
    text: &[u8],
    scale: f64,
) -> io::Result<u64> {
    let mut bytes = 0;
    let mut put = |l: &mut Layer,
                   rng: &mut Rng,
                   path: String,
                   mode: u32,
                   pool: &[u8],
                   lo: u64,
                   hi: u64|
     -> io::Result<()> {
        let size = ((rng.log_size(lo, hi) as f64) * scale).max(1.0) as u64;
        bytes += size;
        l.pooled(&path, mode, pool, rng, size)
    };
    for i in 0..rng.below(5) {
        put(
            l,
            rng,
            format!(
                "usr/bin/{name}{}",
                if i == 0 {
                    String::new()
                } else {
                    format!("-{i}")
                }
            ),
            0o755,
            bin,
            8_000,
            1_500_000,
        )?;
    }
    for i in 0..rng.below(3) {
        let so = format!("lib{name}{i}.so");
        put(
            l,
            rng,
            format!("usr/lib/x86_64-linux-gnu/{so}.1.{i}.0"),
            0o644,
            bin,
            20_000,
            3_000_000,
        )?;
        l.symlink(
            &format!("usr/lib/x86_64-linux-gnu/{so}.1"),
            &format!("{so}.1.{i}.0"),
        )?;
    }
    put(
        l,
        rng,
        format!("usr/share/doc/{name}/copyright"),
        0o644,
        text,
        800,
        20_000,
    )?;
    put(
        l,
        rng,
        format!("usr/share/doc/{name}/changelog.Debian.gz"),
        0o644,
        bin,
        300,
        40_000,
    )?;
    for i in 0..rng.below(4) {
        put(
            l,
            rng,
            format!("usr/share/man/man1/{name}{i}.1.gz"),
            0o644,
            bin,
            500,
            12_000,
        )?;
    }
    for lang in ["de", "fr", "es", "ja", "pt_BR", "ru"] {
        if rng.chance(0.3) {
            put(
                l,
                rng,
                format!("usr/share/locale/{lang}/LC_MESSAGES/{name}.mo"),
                0o644,
                text,
                1_000,
                90_000,
            )?;
        }
    }
    if rng.chance(0.3) {
        put(
            l,
            rng,
            format!("etc/{name}/{name}.conf"),
            0o644,
            text,
            100,
            5_000,
        )?;
    }
    for ext in ["list", "md5sums"] {
        put(
            l,
            rng,
            format!("var/lib/dpkg/info/{name}.{ext}"),
            0o644,
            text,
            200,
            20_000,
        )?;
    }
    if rng.chance(0.4) {
        put(
            l,
            rng,
            format!("var/lib/dpkg/info/{name}.postinst"),
            0o755,
            text,
            200,
            4_000,
        )?;
    }
    Ok(bytes)
}

fn debian(out: &Path, scale: f64) -> io::Result<()> {
    // Package contents at a third of the size drawn: a base of about 160 MB at SCALE 1.
    let pkg_scale = scale * 0.35;
    let mut rng = Rng(0x64656269616e);
    let bin = binary_pool(5);
    let text = corpus(6, TEXT_WORDS, &[" ", ". ", ",", "\n", "\n\n", ": "]);
    let layer = |n: u32| Layer::create(&out.join(format!("layer{n}.tar")).to_string_lossy());
    let mut names = BTreeSet::new();

    // 1: the base system.
    let mut l = layer(1)?;
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        l.symlink(link, target)?;
    }
    for d in [
        "boot",
        "dev",
        "home",
        "media",
        "mnt",
        "opt",
        "proc",
        "run",
        "srv",
        "sys",
        "usr/local/bin",
        "usr/sbin",
        "var/cache/apt",
        "var/lib/apt/lists/partial",
        "var/log/apt",
        "var/mail",
        "var/tmp",
    ] {
        l.dir(d, 0o755, (0, 0))?;
    }
    l.dir("tmp", 0o1777, (0, 0))?;
    l.dir("root", 0o700, (0, 0))?;
    let mut base = Vec::new();
    while l.entries < 4_300 {
        let name = package_name(&mut rng, &mut names).replace(['@', '/'], "");
        deb_package(&mut l, &name, &mut rng, &bin, &text, pkg_scale)?;
        base.push(name);
    }
    for (p, mode) in [
        ("usr/bin/passwd", 0o4755),
        ("usr/bin/su", 0o4755),
        ("usr/bin/mount", 0o4755),
        ("usr/bin/chage", 0o2755),
    ] {
        l.pooled(p, mode, &bin, &mut rng, 60_000)?;
    }
    l.pooled("usr/bin/perl", 0o755, &bin, &mut rng, 3_500_000)?;
    l.hardlink("usr/bin/perl5.36.0", "usr/bin/perl")?;
    for f in ["passwd", "group", "shadow", "hostname", "os-release"] {
        l.pooled(
            &format!("etc/{f}"),
            if f == "shadow" { 0o640 } else { 0o644 },
            &text,
            &mut rng,
            900,
        )?;
    }
    l.pooled("var/lib/dpkg/status", 0o644, &text, &mut rng, 1_200_000)?;
    l.finish("debian layer 1")?;

    // 2: apt-get update && apt-get install.
    let mut l = layer(2)?;
    let lists: Vec<String> = [
        "bookworm_InRelease",
        "bookworm_main_binary-amd64_Packages.lz4",
        "bookworm-updates_InRelease",
        "bookworm-security_InRelease",
        "bookworm-security_main_binary-amd64_Packages.lz4",
        "lock",
    ]
    .iter()
    .map(|f| format!("var/lib/apt/lists/deb.debian.org_debian_dists_{f}"))
    .collect();
    for f in &lists {
        let size = (rng.log_size(50_000, 9_000_000) as f64 * scale) as u64;
        l.pooled(f, 0o644, &text, &mut rng, size)?;
    }
    for f in ["pkgcache.bin", "srcpkgcache.bin"] {
        let size = (25_000_000.0 * scale) as u64;
        l.pooled(&format!("var/cache/apt/{f}"), 0o644, &bin, &mut rng, size)?;
    }
    let mut added = Vec::new();
    while l.entries < 900 {
        let name = package_name(&mut rng, &mut names).replace(['@', '/'], "");
        deb_package(&mut l, &name, &mut rng, &bin, &text, pkg_scale)?;
        added.push(name);
    }
    l.pooled("var/lib/dpkg/status", 0o644, &text, &mut rng, 1_400_000)?;
    l.pooled("var/log/apt/history.log", 0o644, &text, &mut rng, 20_000)?;
    l.pooled("var/log/dpkg.log", 0o644, &text, &mut rng, 200_000)?;
    l.finish("debian layer 2")?;

    // 3: rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin, and docs of a few packages.
    let mut l = layer(3)?;
    for f in &lists {
        l.whiteout(f)?;
    }
    l.whiteout("var/lib/apt/lists/partial")?;
    for f in ["pkgcache.bin", "srcpkgcache.bin"] {
        l.whiteout(&format!("var/cache/apt/{f}"))?;
    }
    for name in base.iter().step_by(7) {
        l.whiteout(&format!("usr/share/doc/{name}"))?;
    }
    l.dir("var/lib/apt/lists/partial", 0o700, (0, 0))?;
    l.finish("debian layer 3")?;

    // 4: the application, its user and a changed /etc.
    let mut l = layer(4)?;
    l.dir("home/app", 0o750, (1000, 1000))?;
    for i in 0..450 {
        let path = format!(
            "opt/app/{}/{}_{i}.py",
            ["core", "api", "models", "tests", "util"][i % 5],
            rng.pick(JS_WORDS)
        );
        let size = rng.log_size(200, 60_000);
        let r = PoolReader::new(&text, rng.below(text.len() as u64) as usize, size);
        l.file(&path, 0o644, (1000, 1000), r, size)?;
    }
    for i in 0..30 {
        let size = (rng.log_size(100_000, 4_000_000) as f64 * scale) as u64;
        l.pooled(
            &format!("opt/app/native/_ext{i}.so"),
            0o755,
            &bin,
            &mut rng,
            size,
        )?;
    }
    l.pooled("usr/local/bin/app", 0o755, &bin, &mut rng, 2_000_000)?;
    for f in ["passwd", "group", "shadow"] {
        l.pooled(
            &format!("etc/{f}"),
            if f == "shadow" { 0o640 } else { 0o644 },
            &text,
            &mut rng,
            1_000,
        )?;
    }
    for i in 0..12 {
        l.pooled(
            &format!("etc/app/conf.d/{i:02}-default.conf"),
            0o644,
            &text,
            &mut rng,
            700,
        )?;
    }
    // a package upgraded: its binary replaced
    l.pooled(
        &format!("usr/bin/{}", added[0]),
        0o755,
        &bin,
        &mut rng,
        300_000,
    )?;
    l.finish("debian layer 4")?;

    // 5: configuration: opaque directories, a directory turned into a symlink, removed trees.
    let mut l = layer(5)?;
    l.opaque("etc/app/conf.d")?;
    l.pooled(
        "etc/app/conf.d/10-production.conf",
        0o644,
        &text,
        &mut rng,
        900,
    )?;
    l.opaque("var/log/apt")?;
    l.whiteout("opt/app/tests")?;
    l.whiteout("var/log/dpkg.log")?;
    let victim = &base[3];
    l.symlink(&format!("usr/share/doc/{victim}"), "../../../opt/app")?;
    l.pooled("etc/hostname", 0o644, &text, &mut rng, 12)?;
    l.finish("debian layer 5")?;
    Ok(())
}

/// `n` entries: directories of 100 and files of 0 to 2 KiB (a quarter of them empty).
fn entries(n: u64, out: &str) -> io::Result<()> {
    let mut rng = Rng(0x656e74);
    let js = corpus(7, JS_WORDS, JS_PUNCT);
    let mut l = Layer::create(out)?;
    let mut i = 0u64;
    while l.entries < n {
        let dir = format!("d{:03}/s{:05}", i / 100_000, i / 100);
        if !l.dirs.contains(&dir) && l.entries + 3 > n {
            break;
        }
        let size = if i.is_multiple_of(4) {
            0
        } else {
            rng.below(2048)
        };
        l.pooled(&format!("{dir}/f{i:08}.js"), 0o644, &js, &mut rng, size)?;
        i += 1;
    }
    l.finish(&format!("{n} entries"))?;
    Ok(())
}

/// Files of 64 MiB of binary-like data, `bytes` in all.
fn data(bytes: u64, out: &str) -> io::Result<()> {
    let mut rng = Rng(0x64617461);
    let bin = binary_pool(8);
    let mut l = Layer::create(out)?;
    let mut left = bytes;
    let mut i = 0;
    while left > 0 {
        let size = left.min(64 << 20);
        l.pooled(
            &format!("data/{:03}/file{i:05}.bin", i / 100),
            0o644,
            &bin,
            &mut rng,
            size,
        )?;
        left -= size;
        i += 1;
    }
    l.finish(&format!("{bytes} bytes"))?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: bench_gen node|large|debian OUTDIR [SCALE] | entries N OUT | data BYTES OUT";
    let num = |s: &str| -> u64 {
        s.parse()
            .unwrap_or_else(|_| panic!("{usage}: not a number: {s}"))
    };
    let scale = || -> f64 {
        args.get(2)
            .map_or(1.0, |s| s.parse().unwrap_or_else(|_| panic!("{usage}")))
    };
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("node"), Some(dir)) => node(Path::new(dir), scale()),
        (Some("large"), Some(dir)) => large(Path::new(dir), scale()),
        (Some("debian"), Some(dir)) => debian(Path::new(dir), scale()),
        (Some("entries"), Some(n)) if args.len() == 3 => entries(num(n), &args[2]),
        (Some("data"), Some(b)) if args.len() == 3 => data(num(b), &args[2]),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("bench_gen: {e}");
        std::process::exit(1);
    }
}

//! The judges of every image the tests make: `e2fsck -fn`, and where the test runs as root, a
//! read-only kernel mount compared file by file with the expected tree, then a read-write
//! session in the kernel followed by `e2fsck -fn` again.

#![allow(dead_code)]

pub mod layers;
pub mod model;
pub mod oci;
pub mod raw_tar;
#[cfg(feature = "registry")]
pub mod registry;
pub mod tars;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use model::{Kind, Node, Tree};

/// Prints why a check is skipped; the test goes on with what it can check.
pub fn skip(what: &str, why: &str) {
    eprintln!("SKIP {what}: {why}");
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-V").output().is_ok()
}

/// Whether e2fsprogs is installed.
pub fn have_e2fsprogs() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| have("e2fsck"))
}

/// Whether this process may loop-mount images (root, and a kernel that lets us).
pub fn can_mount() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            return false;
        }
        // Try once with a real image of ours.
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("probe.ext4");
        let b = oci2ext4::ImageBuilder::create(&img, oci2ext4::BuildOptions::default()).unwrap();
        b.finish().unwrap();
        match Mounted::new(&img, true) {
            Ok(_) => true,
            Err(e) => {
                eprintln!("loop mounts unavailable: {e}");
                false
            }
        }
    })
}

/// Runs `e2fsck -fn` and fails the test unless it exits 0.
pub fn e2fsck(image: &Path) {
    if !have_e2fsprogs() {
        skip("e2fsck", "e2fsprogs is not installed");
        return;
    }
    let out = Command::new("e2fsck")
        .args(["-fn"])
        .arg(image)
        .output()
        .expect("run e2fsck");
    assert!(
        out.status.success(),
        "e2fsck -fn {} failed ({}):\n{}{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dumpe2fs -h` output.
pub fn dumpe2fs(image: &Path) -> Option<String> {
    if !have_e2fsprogs() {
        skip("dumpe2fs", "e2fsprogs is not installed");
        return None;
    }
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(image)
        .output()
        .expect("run dumpe2fs");
    assert!(
        out.status.success(),
        "dumpe2fs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `debugfs -R CMD` output.
pub fn debugfs(image: &Path, cmd: &str) -> Option<String> {
    if !have_e2fsprogs() {
        skip("debugfs", "e2fsprogs is not installed");
        return None;
    }
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(cmd)
        .arg(image)
        .output()
        .expect("run debugfs");
    assert!(
        out.status.success(),
        "debugfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An image mounted through a loop device; unmounted on drop.
pub struct Mounted {
    pub dir: tempfile::TempDir,
}

impl Mounted {
    pub fn new(image: &Path, read_only: bool) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("oci2ext4-mnt")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let opts = if read_only { "loop,ro" } else { "loop" };
        let out = Command::new("mount")
            .args(["-t", "ext4", "-o", opts])
            .arg(image)
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let dmesg = Command::new("dmesg").output().map(|o| {
                let s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.lines().rev().take(10).collect::<Vec<_>>().join("\n")
            });
            return Err(format!(
                "mount failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                dmesg.unwrap_or_default()
            ));
        }
        Ok(Mounted { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(self.dir.path()).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .output();
        }
    }
}

/// sha256 of a file's content.
pub fn sha256_file(path: &Path) -> [u8; 32] {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().into()
}

/// The extended attributes of a path, ACLs normalized (ids of the owner, group, mask and
/// other entries carry no meaning).
pub fn read_xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let c = std::ffi::CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        let len = match rustix::fs::lgetxattr(path, c.as_c_str(), &mut value[..]) {
            Ok(len) => len,
            // The kernel lists user.* attributes of symlinks and devices but will not read
            // them; the model leaves them out too.
            Err(rustix::io::Errno::NODATA) if name.starts_with(b"user.") => continue,
            Err(e) => panic!(
                "getxattr {} {}: {e}",
                path.display(),
                String::from_utf8_lossy(name)
            ),
        };
        value.truncate(len);
        out.insert(name.to_vec(), normalize_xattr(name, value));
    }
    out
}

/// Sets the id of ACL entries that have none to -1, as the kernel reports them.
pub fn normalize_xattr(name: &[u8], mut value: Vec<u8>) -> Vec<u8> {
    if name == b"system.posix_acl_access" || name == b"system.posix_acl_default" {
        for e in value[4..].chunks_exact_mut(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            if tag != 0x02 && tag != 0x08 {
                e[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
            }
        }
    }
    value
}

/// Reads a mounted tree back: every path below `root` (but `lost+found`), with hard links
/// grouped by inode number.
pub fn snapshot(root: &Path) -> Tree {
    let mut tree = Tree::default();
    let mut by_ino: BTreeMap<u64, usize> = BTreeMap::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((path, rel)) = stack.pop() {
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let (major, minor) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File {
                size: md.len(),
                sha256: sha256_file(&path),
            }
        } else if ft.is_symlink() {
            Kind::Symlink(
                fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_char_device() {
            Kind::Char(major, minor)
        } else if ft.is_block_device() {
            Kind::Block(major, minor)
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        };
        let node = Node {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: (md.mtime(), md.mtime_nsec() as u32),
            xattrs: read_xattrs(&path),
        };
        let idx = match by_ino.get(&md.ino()).filter(|_| !ft.is_dir()) {
            Some(&i) => i,
            None => {
                tree.inodes.push(node);
                let i = tree.inodes.len() - 1;
                by_ino.insert(md.ino(), i);
                i
            }
        };
        tree.paths.insert(rel.clone(), idx);
        if ft.is_dir() {
            for e in fs::read_dir(&path).unwrap() {
                let e = e.unwrap();
                let name = e.file_name();
                if rel.is_empty() && name == "lost+found" {
                    continue;
                }
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(name.as_bytes());
                stack.push((e.path(), r));
            }
        }
    }
    tree
}

/// Fails with a readable list of differences unless `got` equals `want`.
pub fn assert_same_tree(want: &Tree, got: &Tree) {
    let mut diffs = Vec::new();
    let show = |p: &[u8]| format!("/{}", String::from_utf8_lossy(p));
    for p in want.paths.keys() {
        if !got.paths.contains_key(p) {
            diffs.push(format!("missing {}", show(p)));
        }
    }
    for p in got.paths.keys() {
        if !want.paths.contains_key(p) {
            diffs.push(format!("unexpected {}", show(p)));
        }
    }
    for p in want.paths.keys() {
        if let (Some(w), Some(g)) = (want.node(p), got.node(p)) {
            if w != g {
                diffs.push(format!("{}:\n    want {:?}\n    got  {:?}", show(p), w, g));
            }
        }
    }
    let (wl, gl) = (want.link_groups(), got.link_groups());
    if wl != gl {
        diffs.push(format!(
            "hard link groups differ:\n    want {wl:?}\n    got  {gl:?}"
        ));
    }
    if !diffs.is_empty() {
        let n = diffs.len();
        diffs.truncate(20);
        panic!(
            "{n} differences between the expected tree and the mounted image:\n{}",
            diffs.join("\n")
        );
    }
}

/// How thoroughly to check an image.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    /// Run a read-write session in the kernel, then e2fsck again.
    pub read_write: bool,
}

impl Default for Check {
    fn default() -> Self {
        Check { read_write: true }
    }
}

/// The full judgement: e2fsck; as root, the mounted tree against `want`, a read-write session
/// and e2fsck again.
pub fn check_image(image: &Path, want: &Tree, check: Check) {
    e2fsck(image);
    if !can_mount() {
        skip("kernel mount comparison", "needs root and loop devices");
        return;
    }
    {
        let m = Mounted::new(image, true).unwrap_or_else(|e| panic!("{e}"));
        let lf = m.path().join("lost+found");
        assert!(lf.is_dir(), "lost+found missing");
        let got = snapshot(m.path());
        assert_same_tree(want, &got);
    }
    if check.read_write {
        read_write_session(image);
        e2fsck(image);
    }
}

/// The time the library-built test images give their entries.
pub const T: oci2ext4::Timestamp = oci2ext4::Timestamp {
    sec: 1_700_000_000,
    nsec: 0,
};

/// Metadata of an entry owned by root with `mode`, at [`T`].
pub fn meta(mode: u32) -> oci2ext4::Metadata {
    oci2ext4::Metadata::new(mode, 0, 0, T)
}

/// The model node of an entry added with [`meta`].
pub fn node(kind: Kind, mode: u32) -> Node {
    Node {
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: (T.sec, T.nsec),
        xattrs: Default::default(),
    }
}

/// Deterministic bytes without holding them in memory.
pub struct Pattern(pub Rng);

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.fill(buf);
        Ok(buf.len())
    }
}

/// Hashes a sparse layout: `segments` of (offset, len) filled in order from
/// `Pattern(Rng::new(seed))`, zeros elsewhere, `size` bytes in all.
pub fn sparse_sha(size: u64, segments: &[(u64, u64)], seed: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut pos = 0u64;
    let zeros = vec![0u8; 1 << 20];
    let mut pattern = Pattern(Rng::new(seed));
    let mut buf = vec![0u8; 1 << 20];
    let zero_to = |h: &mut Sha256, pos: &mut u64, to: u64| {
        while *pos < to {
            let n = (to - *pos).min(zeros.len() as u64);
            h.update(&zeros[..n as usize]);
            *pos += n;
        }
    };
    for &(off, len) in segments {
        zero_to(&mut h, &mut pos, off);
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            pattern.read_exact(&mut buf[..n]).unwrap();
            h.update(&buf[..n]);
            left -= n as u64;
        }
        pos = off + len;
    }
    if size - pos > 1 << 36 {
        // Too many zeros to hash here: the caller compares sizes and segments instead.
        return [0; 32];
    }
    zero_to(&mut h, &mut pos, size);
    h.finalize().into()
}

/// A small deterministic generator for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn free_and_total(path: &Path) -> (u64, u64) {
    let s = rustix::fs::statvfs(path).unwrap();
    (s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize)
}

/// The directory under `root` with the most entries (the first found of equal ones), and
/// their number.
pub fn largest_directory(root: &Path) -> (PathBuf, usize) {
    let mut best = (root.to_path_buf(), 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut n = 0;
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            n += 1;
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
        if n > best.1 {
            best = (dir, n);
        }
    }
    best
}

/// Names that `read_write_session` adds to the largest directory of an image.
pub const NEW_NAMES: usize = 10_000;

/// Adds [`NEW_NAMES`] names of 8 to 60 bytes to the largest directory under `root`, as hard
/// links to one new file (names without inodes), and checks they are all there.
pub fn grow_largest_directory(root: &Path) {
    let (dir, before) = largest_directory(root);
    let file = dir.join("rw-grown");
    fs::write(&file, b"grown\n").unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut rng = Rng::new(before as u64);
    for i in 0..NEW_NAMES {
        let len = 8 + rng.below(53) as usize;
        let mut name = format!("rw{i}-");
        while name.len() < len {
            name.push((b'a' + rng.below(26) as u8) as char);
        }
        fs::hard_link(&file, dir.join(&name)).unwrap_or_else(|e| {
            panic!(
                "adding name {i} to {} ({before} entries): {e}",
                dir.display()
            )
        });
    }
    assert_eq!(fs::read_dir(&dir).unwrap().count(), before + 1 + NEW_NAMES);
}

/// Mounts the image read-write, adds [`NEW_NAMES`] names to its largest directory, and
/// creates, writes, appends, renames and deletes files until half of the free space is used,
/// then unmounts.
pub fn read_write_session(image: &Path) {
    let m = Mounted::new(image, false).unwrap_or_else(|e| panic!("read-write {e}"));
    grow_largest_directory(m.path());
    let root = m.path().join("rw-session");
    fs::create_dir_all(&root).unwrap();
    let (free0, _) = free_and_total(m.path());
    let target = free0 / 2;
    let mut rng = Rng::new(free0);
    let mut live: Vec<PathBuf> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut step = 0u64;
    while free0 - free_and_total(m.path()).0 < target && step < 100_000 {
        step += 1;
        match rng.below(10) {
            0..=4 => {
                let dir = root.join(format!("d{}", rng.below(20)));
                fs::create_dir_all(&dir).unwrap();
                let p = dir.join(format!("f{step}"));
                let size = match rng.below(4) {
                    0 => rng.below(100),
                    1 => rng.below(8192),
                    2 => rng.below(1 << 20),
                    _ => (target / 20).min(64 << 20),
                } as usize;
                let mut f = fs::File::create(&p).unwrap();
                let mut left = size;
                while left > 0 {
                    let n = left.min(buf.len());
                    rng.fill(&mut buf[..n]);
                    std::io::Write::write_all(&mut f, &buf[..n]).unwrap();
                    left -= n;
                }
                live.push(p);
            }
            5 | 6 if !live.is_empty() => {
                let p = &live[rng.below(live.len() as u64) as usize];
                let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
                rng.fill(&mut buf[..5000]);
                std::io::Write::write_all(&mut f, &buf[..5000]).unwrap();
            }
            7 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let to = live[i].with_file_name(format!("r{step}"));
                fs::rename(&live[i], &to).unwrap();
                live[i] = to;
            }
            8 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                fs::remove_file(live.swap_remove(i)).unwrap();
            }
            _ => {
                // Touch the image's own content too: rename and restore a top-level entry.
                if let Some(Ok(e)) = fs::read_dir(m.path()).unwrap().next() {
                    let from = e.path();
                    let to = m.path().join(".rw-moved");
                    if fs::rename(&from, &to).is_ok() {
                        fs::rename(&to, &from).unwrap();
                    }
                }
            }
        }
    }
    rustix::fs::sync();
    drop(m);
    if let Some(h) = dumpe2fs(image) {
        assert!(
            h.contains("Filesystem state:         clean"),
            "the kernel marked the filesystem with errors:\n{h}"
        );
    }
}

/// Zeroes what `umoci raw unpack` cannot be compared on: directory times (it stamps the
/// directories it makes with the time of unpacking) and the root's mode.
pub fn umoci_comparable(mut t: Tree) -> Tree {
    for i in 0..t.inodes.len() {
        if t.inodes[i].kind == Kind::Dir {
            t.inodes[i].mtime = (0, 0);
        }
    }
    let root = t.paths[&Vec::new()];
    t.inodes[root].mode = 0o755;
    t
}

/// The tree `umoci raw unpack` makes of `layout:tag` (made in `dir`, then removed), made
/// comparable with [`umoci_comparable`]; `None`, saying why, without umoci or root.
pub fn umoci_tree(layout: &Path, tag: &str, dir: &Path) -> Option<Tree> {
    if Command::new("umoci").arg("--version").output().is_err() || !can_mount() {
        skip("umoci comparison", "needs umoci and root");
        return None;
    }
    let rootfs = dir.join(format!("umoci-{tag}"));
    let o = Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&rootfs)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let t = umoci_comparable(snapshot(&rootfs));
    let _ = Command::new("rm").arg("-rf").arg(&rootfs).status();
    Some(t)
}

/// A scratch directory for a test's files.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("oci2ext4-test")
        .tempdir()
        .unwrap()
}

/// Path of the built command-line tool.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_oci2ext4")
}

/// Set of paths, for assertions.
pub fn path_set(t: &Tree) -> BTreeSet<String> {
    t.paths
        .keys()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

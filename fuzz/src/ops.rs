//! Target `layer_ops`: a structured sequence of layer operations (add a file, directory,
//! symlink or hard link, replace, whiteout, opaque marker, hard links across layers, symlinks in
//! parent paths; one to four layers, entries in any order) written as tars with the `tar` crate,
//! applied with the builder, and checked against a model of the expected tree written here.
//!
//! # What is checked, and how
//!
//! A fuzz target cannot mount the image, so it is read back in process with `ext4-view` (an
//! independent reader that also verifies the metadata checksums). The model gives one of:
//!
//! - **Valid(tree)**: the build must succeed, and the image must hold exactly the model's
//!   paths with the same kind, permission bits, owner, group, mtime, file content and symlink
//!   target. Every file the generator writes has content unique to its entry, so the groups of
//!   paths with equal content are the hard-link groups; they must be equal too, and the number
//!   of inodes the builder reports must match the model's.
//! - **Invalid**: the build must fail, with a corrupt-input or limit error, and leave no file.
//! - **Unspecified**: the OCI rules do not fix the result, or fix one that a streaming builder
//!   cannot produce without reading the layer twice (see below). Any outcome but a panic is
//!   accepted; a successful image must still read back whole.
//!
//! The model is the specification's: within a layer, whiteouts and opaque markers act on the
//! lower layers first, wherever they stand, then the layer's other entries apply in order. A
//! symlink in a parent path is followed inside the image (an absolute target starts at the
//! root, `..` stops at the root, more than 40 links is an error); missing parents are created
//! with the builder's implicit attributes; the last component is never followed; a hard link
//! whose target is not there yet is made at the end of the layer.
//!
//! A layer is **Unspecified** when it has whiteouts or opaque markers and
//! - an entry's parent path (or an opaque marker's directory) meets a lower symlink or file,
//!   or meets a symlink of the layer itself: which directory the entry lands in then depends on
//!   whether the builder met the marker first;
//! - a hard link names a lower file that a whiteout of the same layer removes: entry order
//!   decides whether the link got the old inode;
//! - a marker's path runs through something the layer itself makes a non-directory.
//!
//! For a lower *file* in a parent path the builder gives the same result in every order when
//! the layer whites it out or gives a directory entry for it (the file gives way to a
//! directory; `tests/layers.rs` checks both orders through a kernel mount), and fails when the
//! layer does neither. The model leaves the whiteout case open, as it does for the lower
//! *symlink*, which the builder follows when the entry comes, whether or not a later whiteout
//! removes it; and it leaves open a directory entry that comes after the entry that needs it,
//! where the in-order reading fails and the builder does not.
//!
//! Everything after an Unspecified layer is Unspecified too, but for errors the model can tell
//! from the names alone (`..` above the root, a non-directory at the root, a hard link of or to
//! the root), which make the build fail whatever the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::{BlockSize, ErrorKind, ImageBuilder};

use super::image::{self, Contents};
use super::{block_size, listing, memory_layer, options_with, scratch};

/// The component names paths are made of: few, so that entries collide often.
const NAMES: [&[u8]; 4] = [b"a", b"b", b"c", b"s"];
const MAX_LAYERS: usize = 4;
const MAX_OPS: usize = 12;
/// Symlinks followed in one walk before the builder gives up (its default limit).
const MAX_FOLLOWS: u32 = 40;

/// A path as a tar names it.
#[derive(Clone, Debug)]
struct PathSpec {
    comps: Vec<u8>,
    /// 0 plain, 10 `./` first, 11 `/` first, 12 a trailing `/` (directories only),
    /// 13 `c/../` first, 14 a `.` component inside, 15 `../` first (leaves the root).
    form: u8,
}

impl<'a> Arbitrary<'a> for PathSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // The root and `..` above it are rare: any entry naming them makes the whole build
        // fail, which would hide what the rest of the input does.
        // (Exhausted input reads as zeros: 0 is a plain, common case.)
        let n = match u.int_in_range(0u8..=127)? {
            0..=50 => 1,
            51..=100 => 2,
            101..=126 => 3,
            _ => 0,
        };
        let mut comps = Vec::with_capacity(n);
        for i in 0..n {
            // Parents are seldom `c`, the usual name of files (see `LeafPath`).
            let c = u.int_in_range(0..=(NAMES.len() as u8 - 1))?;
            let c = if c == 2 && i + 1 < n && u.ratio(7u8, 8)? {
                [0, 1, 3][usize::from(u.int_in_range(0u8..=2)?)]
            } else {
                c
            };
            comps.push(c);
        }
        let form = match u.int_in_range(0u8..=127)? {
            0..=100 => 0,
            101..=105 => 10,
            106..=110 => 11,
            111..=115 => 12,
            116..=120 => 13,
            121..=126 => 14,
            _ => 15,
        };
        Ok(PathSpec { comps, form })
    }
}

/// The path of a file or hard link (`LEAF` = `c`) or a symlink (`LEAF` = `s`): usually
/// deeper than a directory's and usually ending in its own name, so that fewer inputs fail
/// merely because a file stands where a later entry needs a directory, and symlinks are met in
/// parent paths that go through `s`.
#[derive(Clone, Debug)]
struct LeafPath<const LEAF: u8>(PathSpec);

impl<'a, const LEAF: u8> Arbitrary<'a> for LeafPath<LEAF> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut p = PathSpec::arbitrary(u)?;
        if p.comps.len() == 1 && u.ratio(2u8, 3)? {
            p.comps.push(u.int_in_range(0..=(NAMES.len() as u8 - 1))?);
        }
        if let Some(last) = p.comps.last_mut() {
            if u.ratio(3u8, 4)? {
                *last = LEAF;
            }
        }
        Ok(LeafPath(p))
    }
}

type FilePath = LeafPath<2>;
type SymlinkPath = LeafPath<3>;

/// A hard link's target: usually the path of an earlier file entry (of this layer or a lower
/// one), else any path.
#[derive(Clone, Debug)]
enum LinkTarget {
    Earlier(u8),
    Any(FilePath),
}

impl<'a> Arbitrary<'a> for LinkTarget {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if u.ratio(1u8, 8)? {
            LinkTarget::Any(FilePath::arbitrary(u)?)
        } else {
            LinkTarget::Earlier(u.arbitrary()?)
        })
    }
}

/// The path of a directory entry or opaque marker: its last component is seldom `c`, the
/// usual name of files.
#[derive(Clone, Debug)]
struct DirPath(PathSpec);

impl<'a> Arbitrary<'a> for DirPath {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut p = PathSpec::arbitrary(u)?;
        if let Some(last) = p.comps.last_mut() {
            if *last == 2 && u.ratio(7u8, 8)? {
                *last = [0, 1, 3][usize::from(u.int_in_range(0u8..=2)?)];
            }
        }
        Ok(DirPath(p))
    }
}

impl PathSpec {
    fn names(&self) -> Vec<&'static [u8]> {
        self.comps.iter().map(|&c| NAMES[c as usize]).collect()
    }

    /// The normalized path: `None` when it leaves the root.
    fn norm(&self) -> Option<Vec<u8>> {
        (self.form != 15).then(|| self.names().join(&b'/'))
    }

    /// The name as written in the tar; `dir` allows a trailing slash.
    fn render(&self, dir: bool) -> Vec<u8> {
        let names = self.names();
        let mut body = match (self.form, names.len()) {
            (14, n) if n >= 2 => {
                let mut v = names[0].to_vec();
                v.extend_from_slice(b"/./");
                v.extend_from_slice(&names[1..].join(&b'/'));
                v
            }
            _ => names.join(&b'/'),
        };
        let prefix: &[u8] = match self.form {
            10 => b"./",
            11 => b"/",
            13 => b"c/../",
            15 => b"../",
            _ => b"",
        };
        let mut out = prefix.to_vec();
        out.append(&mut body);
        if self.form == 12 && dir && !names.is_empty() {
            out.push(b'/');
        }
        if names.is_empty() && !dir {
            // A regular entry whose name ends in `/` is a directory to tar readers.
            while out.last() == Some(&b'/') {
                out.pop();
            }
            if out.is_empty() {
                out.push(b'.');
            }
        }
        if out.is_empty() {
            out.extend_from_slice(b"./");
        }
        out
    }

    /// The name of a marker `marker` in this directory.
    fn render_in(&self, marker: &[u8]) -> Vec<u8> {
        let mut out = self.render(true);
        if out == b"./" {
            out.clear();
        }
        if !out.is_empty() && out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(marker);
        out
    }
}

/// A symlink target.
#[derive(Clone, Debug)]
struct TargetSpec {
    comps: Vec<u8>,
    /// 0 relative, 1 absolute, 2 `../` first, 3 `../../` first, 4 trailing `/`.
    form: u8,
}

impl<'a> Arbitrary<'a> for TargetSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0u8..=3)?;
        let mut comps = Vec::new();
        for _ in 0..n {
            comps.push(u.int_in_range(0..=(NAMES.len() as u8 - 1))?);
        }
        Ok(TargetSpec {
            comps,
            form: u.int_in_range(0..=4)?,
        })
    }
}

impl TargetSpec {
    fn render(&self) -> Vec<u8> {
        let body = self
            .comps
            .iter()
            .map(|&c| NAMES[c as usize])
            .collect::<Vec<_>>()
            .join(&b'/');
        let mut out: Vec<u8> = match self.form {
            1 => b"/".to_vec(),
            2 => b"../".to_vec(),
            3 => b"../../".to_vec(),
            _ => Vec::new(),
        };
        out.extend_from_slice(&body);
        if self.form == 4 {
            out.push(b'/');
        }
        if out.is_empty() {
            out.push(b'.');
        }
        out
    }
}

/// Attributes of an entry.
#[derive(Clone, Copy, Debug, Arbitrary)]
struct AttrSpec {
    mode: u16,
    owner: u8,
    mtime: u8,
}

impl AttrSpec {
    fn mode(&self) -> u32 {
        u32::from(self.mode) & 0o7777
    }
    fn uid(&self) -> u32 {
        u32::from(self.owner & 0x0F)
    }
    fn gid(&self) -> u32 {
        u32::from(self.owner >> 4)
    }
    fn mtime(&self) -> i64 {
        1_600_000_000 + i64::from(self.mtime)
    }
}

#[derive(Clone, Debug, Arbitrary)]
enum OpSpec {
    File {
        path: FilePath,
        attrs: AttrSpec,
        /// Below 200: that many bytes after the entry's own tag; above: several blocks.
        len: u8,
        zeros: bool,
    },
    Dir {
        path: DirPath,
        attrs: AttrSpec,
    },
    Symlink {
        path: SymlinkPath,
        target: TargetSpec,
        attrs: AttrSpec,
    },
    HardLink {
        path: FilePath,
        target: LinkTarget,
    },
    Whiteout {
        path: PathSpec,
    },
    Opaque {
        dir: DirPath,
    },
}

#[derive(Clone, Copy, Debug, Arbitrary)]
enum Compress {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Debug, Arbitrary)]
struct LayerSpec {
    ops: Vec<OpSpec>,
    compression: Compress,
}

/// One operation, resolved to what the model and the tar need.
#[derive(Clone, Debug)]
enum Op {
    Put {
        raw: Vec<u8>,
        path: Option<Vec<u8>>,
        node: Node,
    },
    Link {
        raw: Vec<u8>,
        path: Option<Vec<u8>>,
        raw_target: Vec<u8>,
        target: Option<Vec<u8>>,
    },
    Whiteout {
        raw: Vec<u8>,
        /// The normalized path whited out (`None`: it leaves the root).
        path: Option<Vec<u8>>,
    },
    Opaque {
        raw: Vec<u8>,
        dir: Option<Vec<u8>>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

impl Node {
    /// A directory the builder makes itself (a missing parent): 0755, root, time 0.
    fn implicit_dir() -> Self {
        Node {
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }
}

fn content(layer: usize, op: usize, len: u8, zeros: bool) -> Vec<u8> {
    let mut c = format!("L{layer}O{op}:").into_bytes();
    let n = if len < 200 {
        usize::from(len)
    } else {
        4000 + usize::from(len - 200) * 300
    };
    let fill = if zeros { 0 } else { b'a' + (op % 26) as u8 };
    c.extend(std::iter::repeat_n(fill, n));
    c
}

fn lower(spec: &[LayerSpec]) -> Vec<Vec<Op>> {
    // Paths of the file entries of this layer and those below, for hard links to name (one
    // later in the same layer is linked at the end of the layer).
    let mut files: Vec<PathSpec> = Vec::new();
    spec.iter()
        .enumerate()
        .map(|(l, layer)| {
            files.extend(layer.ops.iter().filter_map(|op| match op {
                OpSpec::File { path, .. } => Some(path.0.clone()),
                _ => None,
            }));
            layer
                .ops
                .iter()
                .enumerate()
                .map(|(i, op)| match op {
                    OpSpec::File {
                        path,
                        attrs,
                        len,
                        zeros,
                    } => Op::Put {
                        raw: path.0.render(false),
                        path: path.0.norm(),
                        node: Node {
                            kind: Kind::File(content(l, i, *len, *zeros)),
                            mode: attrs.mode(),
                            uid: attrs.uid(),
                            gid: attrs.gid(),
                            mtime: attrs.mtime(),
                        },
                    },
                    OpSpec::Dir { path, attrs } => Op::Put {
                        raw: path.0.render(true),
                        path: path.0.norm(),
                        node: Node {
                            kind: Kind::Dir,
                            mode: attrs.mode(),
                            uid: attrs.uid(),
                            gid: attrs.gid(),
                            mtime: attrs.mtime(),
                        },
                    },
                    OpSpec::Symlink {
                        path,
                        target,
                        attrs,
                    } => Op::Put {
                        raw: path.0.render(false),
                        path: path.0.norm(),
                        node: Node {
                            kind: Kind::Symlink(target.render()),
                            mode: 0o777,
                            uid: attrs.uid(),
                            gid: attrs.gid(),
                            mtime: attrs.mtime(),
                        },
                    },
                    OpSpec::HardLink { path, target } => {
                        let target = match target {
                            LinkTarget::Earlier(n) if !files.is_empty() => {
                                files[usize::from(*n) % files.len()].clone()
                            }
                            LinkTarget::Earlier(_) => PathSpec {
                                comps: vec![2],
                                form: 0,
                            },
                            LinkTarget::Any(p) => p.0.clone(),
                        };
                        Op::Link {
                            raw: path.0.render(false),
                            path: path.0.norm(),
                            raw_target: target.render(false),
                            target: target.norm(),
                        }
                    }
                    OpSpec::Whiteout { path } => {
                        // A whiteout needs a name to hide; the root has none.
                        let mut p = path.clone();
                        if p.comps.is_empty() {
                            p.comps.push(0);
                        }
                        let (last, parent) = p.comps.split_last().expect("one component");
                        let dir = PathSpec {
                            comps: parent.to_vec(),
                            form: p.form,
                        };
                        let mut marker = b".wh.".to_vec();
                        marker.extend_from_slice(NAMES[*last as usize]);
                        Op::Whiteout {
                            raw: dir.render_in(&marker),
                            path: p.norm(),
                        }
                    }
                    OpSpec::Opaque { dir } => Op::Opaque {
                        raw: dir.0.render_in(b".wh..wh..opq"),
                        dir: dir.0.norm(),
                    },
                })
                .collect()
        })
        .collect()
}

/// Writes one layer's tar.
fn tar_of(ops: &[Op]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut append = |name: &[u8], kind: tar::EntryType, node: Option<&Node>, link: &[u8]| {
        let mut h = tar::Header::new_ustar();
        assert!(name.len() <= 100 && link.len() <= 100, "names fit in ustar");
        h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        let data: &[u8] = match node.map(|n| &n.kind) {
            Some(Kind::File(c)) => c,
            _ => b"",
        };
        h.set_size(data.len() as u64);
        match node {
            Some(n) => {
                h.set_mode(n.mode);
                h.set_uid(u64::from(n.uid));
                h.set_gid(u64::from(n.gid));
                h.set_mtime(n.mtime as u64);
            }
            None => {
                h.set_mode(0o644);
                h.set_mtime(1_600_000_000);
            }
        }
        h.set_cksum();
        b.append(&h, data).expect("write to memory");
    };
    for op in ops {
        match op {
            Op::Put { raw, node, .. } => {
                let (kind, link): (_, &[u8]) = match &node.kind {
                    Kind::Dir => (tar::EntryType::Directory, b""),
                    Kind::File(_) => (tar::EntryType::Regular, b""),
                    Kind::Symlink(t) => (tar::EntryType::Symlink, t),
                };
                append(raw, kind, Some(node), link);
            }
            Op::Link {
                raw, raw_target, ..
            } => append(raw, tar::EntryType::Link, None, raw_target),
            Op::Whiteout { raw, .. } | Op::Opaque { raw, .. } => {
                append(raw, tar::EntryType::Regular, None, b"")
            }
        }
    }
    b.into_inner().expect("write to memory")
}

/// The expected tree: paths (relative; the root is the empty path) to inodes.
#[derive(Clone, Debug)]
struct Tree {
    paths: BTreeMap<Vec<u8>, usize>,
    inodes: Vec<Node>,
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn comps(p: &[u8]) -> Vec<&[u8]> {
    p.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect()
}

/// The proper prefixes of a normalized path, shortest first (the root left out).
fn proper_prefixes(p: &[u8]) -> Vec<Vec<u8>> {
    let c = comps(p);
    (1..c.len()).map(|n| c[..n].join(&b'/')).collect()
}

/// Whether `p` is `q` or lies below it.
fn within(p: &[u8], q: &[u8]) -> bool {
    q.is_empty() || p == q || (p.starts_with(q) && p.get(q.len()) == Some(&b'/'))
}

/// Why the model stops.
enum Stop {
    Invalid(String),
    Unspecified(String),
}

impl Tree {
    fn new() -> Self {
        Tree {
            paths: BTreeMap::from([(Vec::new(), 0)]),
            inodes: vec![Node::implicit_dir()],
        }
    }

    fn get(&self, p: &[u8]) -> Option<&Node> {
        self.paths.get(p).map(|&i| &self.inodes[i])
    }

    fn is_non_dir(&self, p: &[u8]) -> bool {
        self.get(p).is_some_and(|n| n.kind != Kind::Dir)
    }

    /// Removes `p` and everything below it.
    fn remove(&mut self, p: &[u8]) {
        self.paths.retain(|q, _| !within(q, p) || q.is_empty());
    }

    /// Removes everything strictly below directory `p`.
    fn remove_below(&mut self, p: &[u8]) {
        self.paths.retain(|q, _| q == p || !within(q, p));
    }

    fn insert(&mut self, p: Vec<u8>, node: Node) {
        self.inodes.push(node);
        self.paths.insert(p, self.inodes.len() - 1);
    }

    /// Walks `walk` (components) as directories from the root, following symlinks inside the
    /// image, creating missing directories when `create`. `Ok(None)`: a directory is missing.
    fn walk(
        &mut self,
        walk: &[&[u8]],
        create: bool,
        crossed: &mut bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut pending: Vec<Vec<u8>> = walk.iter().rev().map(|c| c.to_vec()).collect();
        let mut follows = 0;
        while let Some(c) = pending.pop() {
            match &c[..] {
                b"" | b"." => {}
                b".." => {
                    cur.pop();
                }
                name => {
                    let mut next = cur.clone();
                    next.push(name.to_vec());
                    let key = next.join(&b'/');
                    match self.get(&key).map(|n| n.kind.clone()) {
                        Some(Kind::Dir) => cur = next,
                        Some(Kind::Symlink(t)) => {
                            *crossed = true;
                            follows += 1;
                            if follows > MAX_FOLLOWS {
                                return Err("symlink loop".into());
                            }
                            if t.first() == Some(&b'/') {
                                cur.clear();
                            }
                            pending.extend(t.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                        }
                        Some(Kind::File(_)) => {
                            return Err(format!(
                                "{} is not a directory",
                                String::from_utf8_lossy(&key)
                            ))
                        }
                        None if create => {
                            self.insert(key, Node::implicit_dir());
                            cur = next;
                        }
                        None => return Ok(None),
                    }
                }
            }
        }
        Ok(Some(cur.join(&b'/')))
    }

    /// Where entry `p` (normalized, not the root) lands: its parents resolved and created.
    fn place(&mut self, p: &[u8], crossed: &mut bool) -> Result<Vec<u8>, String> {
        let c = comps(p);
        let (name, parents) = c.split_last().expect("not the root");
        let dir = self.walk(parents, true, crossed)?.expect("created");
        Ok(join(&dir, name))
    }

    fn put(&mut self, p: &[u8], node: Node, crossed: &mut bool) -> Result<(), String> {
        if p.is_empty() {
            let root = self.paths[&Vec::new()];
            self.inodes[root] = node;
            return Ok(());
        }
        let full = self.place(p, crossed)?;
        if let Some(&old) = self.paths.get(&full) {
            if self.inodes[old].kind == Kind::Dir && node.kind == Kind::Dir {
                self.inodes[old] = node;
                return Ok(());
            }
            self.remove(&full);
        }
        self.insert(full, node);
        Ok(())
    }

    /// A hard link `p` to `t`; `Ok(false)` when the target is not there (yet).
    fn link(&mut self, p: &[u8], t: &[u8], crossed: &mut bool) -> Result<bool, String> {
        let tc = comps(t);
        let (tname, tparents) = tc.split_last().expect("not the root");
        let Some(tdir) = self.walk(tparents, false, crossed)? else {
            return Ok(false);
        };
        let tfull = join(&tdir, tname);
        let Some(&inode) = self.paths.get(&tfull) else {
            return Ok(false);
        };
        let full = self.place(p, crossed)?;
        if self.inodes[inode].kind == Kind::Dir {
            return Err("hard link to a directory".into());
        }
        if let Some(&old) = self.paths.get(&full) {
            if old == inode {
                return Ok(true);
            }
            if within(&tfull, &full) {
                return Err("hard link replaces the directory of its target".into());
            }
            self.remove(&full);
        }
        self.paths.insert(full, inode);
        Ok(true)
    }
}

/// Errors the names alone make certain, whatever the tree: the build fails on them.
fn invalid_by_name(layers: &[Vec<Op>]) -> Option<String> {
    for (l, ops) in layers.iter().enumerate() {
        for op in ops {
            let bad = match op {
                Op::Put { path: None, .. }
                | Op::Link { path: None, .. }
                | Op::Link { target: None, .. }
                | Op::Whiteout { path: None, .. }
                | Op::Opaque { dir: None, .. } => Some("a name leaves the root"),
                Op::Put {
                    path: Some(p),
                    node,
                    ..
                } if p.is_empty() && node.kind != Kind::Dir => Some("the root is not a directory"),
                Op::Link {
                    path: Some(p),
                    target: Some(t),
                    ..
                } if p.is_empty() || t.is_empty() => Some("a hard link of or to the root"),
                _ => None,
            };
            if let Some(why) = bad {
                return Some(format!("layer {l}: {why}"));
            }
        }
    }
    None
}

/// Whether a layer's markers make its result depend on entry order (see the module docs).
fn unspecified(lower: &Tree, ops: &[Op]) -> Option<&'static str> {
    let mut whiteouts: Vec<&[u8]> = Vec::new();
    let mut opaques: Vec<&[u8]> = Vec::new();
    for op in ops {
        match op {
            Op::Whiteout { path: Some(p), .. } => whiteouts.push(p),
            Op::Opaque { dir: Some(d), .. } => opaques.push(d),
            _ => {}
        }
    }
    let lower_non_dir_above = |p: &[u8], itself: bool| {
        let mut prefixes = proper_prefixes(p);
        if itself && !p.is_empty() {
            prefixes.push(p.to_vec());
        }
        prefixes.iter().any(|q| lower.is_non_dir(q))
    };
    // A lower non-directory in an entry's parent path that a directory entry later in the layer
    // replaces: in order, the entry fails; the builder lets the file give way, as it would for
    // the directory entry first.
    for (i, op) in ops.iter().enumerate() {
        let path = match op {
            Op::Put { path: Some(p), .. } | Op::Link { path: Some(p), .. } => p,
            _ => continue,
        };
        let dir_later = |q: &[u8]| {
            ops[i + 1..].iter().any(|later| {
                matches!(later, Op::Put { path: Some(d), node, .. }
                    if node.kind == Kind::Dir && d.as_slice() == q)
            })
        };
        if proper_prefixes(path)
            .iter()
            .any(|q| lower.is_non_dir(q) && dir_later(q))
        {
            return Some("a lower non-directory in a parent path is given as a directory later");
        }
    }
    if whiteouts.is_empty() && opaques.is_empty() {
        return None;
    }
    // Paths this layer makes non-directories, by name.
    let mut layer_non_dirs: BTreeSet<&[u8]> = BTreeSet::new();
    for op in ops {
        match op {
            Op::Put {
                path: Some(p),
                node,
                ..
            } if node.kind != Kind::Dir => {
                layer_non_dirs.insert(p);
            }
            Op::Link { path: Some(p), .. } => {
                layer_non_dirs.insert(p);
            }
            _ => {}
        }
    }
    for op in ops {
        match op {
            Op::Put { path: Some(p), .. } if lower_non_dir_above(p, false) => {
                return Some("an entry's parent is a lower non-directory");
            }
            Op::Link {
                path: Some(p),
                target: Some(t),
                ..
            } => {
                if lower_non_dir_above(p, false) || lower_non_dir_above(t, false) {
                    return Some("a hard link's parent is a lower non-directory");
                }
                let removed = whiteouts.iter().any(|w| within(t, w))
                    || opaques.iter().any(|o| within(t, o) && t != *o);
                if lower.get(t).is_some() && removed {
                    return Some("a hard link names a lower file this layer whites out");
                }
            }
            Op::Opaque { dir: Some(d), .. }
                if lower_non_dir_above(d, true)
                    || layer_non_dirs.iter().any(|n| within(d, n) && !n.is_empty()) =>
            {
                return Some("an opaque directory is or lies below a non-directory");
            }
            Op::Whiteout { path: Some(w), .. }
                if lower_non_dir_above(w, false)
                    || layer_non_dirs
                        .iter()
                        .any(|n| within(w, n) && w != *n && !n.is_empty()) =>
            {
                return Some("a whiteout lies below a non-directory");
            }
            _ => {}
        }
    }
    None
}

/// What the build must give.
#[derive(Debug)]
enum Expect {
    Valid(Tree),
    Invalid(String),
    Unspecified(String),
}

/// The model: the specification's result of applying `layers` in order.
fn model(layers: &[Vec<Op>]) -> Expect {
    if let Some(why) = invalid_by_name(layers) {
        return Expect::Invalid(why);
    }
    let mut t = Tree::new();
    for (l, ops) in layers.iter().enumerate() {
        let run = |t: &mut Tree| -> Result<(), Stop> {
            let markers = ops
                .iter()
                .any(|op| matches!(op, Op::Whiteout { .. } | Op::Opaque { .. }));
            if let Some(why) = unspecified(t, ops) {
                return Err(Stop::Unspecified(why.into()));
            }
            // Whiteouts and opaque markers act on the lower layers first.
            for op in ops {
                match op {
                    Op::Whiteout { path: Some(w), .. } => t.remove(w),
                    Op::Opaque { dir: Some(d), .. } if t.get(d).is_some() => t.remove_below(d),
                    _ => {}
                }
            }
            let mut crossed = false;
            let mut later = Vec::new();
            let check_crossed = |crossed: bool| {
                if markers && crossed {
                    Err(Stop::Unspecified(
                        "a symlink in a parent path in a layer with markers".into(),
                    ))
                } else {
                    Ok(())
                }
            };
            for op in ops {
                let r = match op {
                    Op::Put {
                        path: Some(p),
                        node,
                        ..
                    } => t.put(p, node.clone(), &mut crossed),
                    Op::Link {
                        path: Some(p),
                        target: Some(tg),
                        ..
                    } => match t.link(p, tg, &mut crossed) {
                        Ok(true) => Ok(()),
                        Ok(false) => {
                            later.push((p, tg));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                    Op::Opaque { dir: Some(d), .. } => {
                        t.walk(&comps(d), true, &mut crossed).map(|_| ())
                    }
                    _ => Ok(()),
                };
                check_crossed(crossed)?;
                r.map_err(Stop::Invalid)?;
            }
            for (p, tg) in later {
                let r = t.link(p, tg, &mut crossed);
                check_crossed(crossed)?;
                match r {
                    Ok(true) => {}
                    Ok(false) => return Err(Stop::Invalid("hard link to nothing".into())),
                    Err(e) => return Err(Stop::Invalid(e)),
                }
            }
            Ok(())
        };
        match run(&mut t) {
            Ok(()) => {}
            Err(Stop::Invalid(why)) => return Expect::Invalid(format!("layer {l}: {why}")),
            Err(Stop::Unspecified(why)) => return Expect::Unspecified(format!("layer {l}: {why}")),
        }
    }
    Expect::Valid(t)
}

fn compress(data: Vec<u8>, how: Compress) -> Vec<u8> {
    match how {
        Compress::None => data,
        Compress::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).expect("write to memory");
            e.finish().expect("write to memory")
        }
        Compress::Zstd => zstd::encode_all(&data[..], 1).expect("write to memory"),
    }
}

/// Inodes an empty build uses (the reserved ones, the root, `lost+found`).
fn base_inodes(block_size: BlockSize) -> u64 {
    static BASE: [OnceLock<u64>; 7] = [const { OnceLock::new() }; 7];
    let slot = usize::try_from(block_size.log()).unwrap_or(0).min(6);
    *BASE[slot].get_or_init(|| {
        let dir = scratch();
        let b = ImageBuilder::create(dir.path().join("empty.ext4"), options_with(block_size))
            .expect("create the builder");
        b.finish().expect("an empty image").inodes_used
    })
}

fn show(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

/// Differences between the model's tree and the image's.
fn compare(want: &Tree, got: &BTreeMap<Vec<u8>, image::Entry>) -> Vec<String> {
    let mut diffs = Vec::new();
    for p in want.paths.keys() {
        if !got.contains_key(p) {
            diffs.push(format!("missing {}", show(p)));
        }
    }
    for p in got.keys() {
        if !want.paths.contains_key(p) {
            diffs.push(format!("unexpected {}", show(p)));
        }
    }
    for (p, &i) in &want.paths {
        let (w, Some(g)) = (&want.inodes[i], got.get(p)) else {
            continue;
        };
        let same_kind = match (&w.kind, &g.kind) {
            (Kind::Dir, image::Kind::Dir) => true,
            (Kind::File(c), image::Kind::File { size, content }) => {
                *size == c.len() as u64 && content == c
            }
            (Kind::Symlink(t), image::Kind::Symlink(gt)) => t == gt,
            _ => false,
        };
        if !same_kind
            || w.mode != u32::from(g.mode)
            || w.uid != g.uid
            || w.gid != g.gid
            || w.mtime != g.mtime
        {
            diffs.push(format!("{}:\n    want {w:?}\n    got  {g:?}", show(p)));
        }
    }
    // Files: equal content means one inode (every file entry's content is its own).
    let mut want_groups: BTreeMap<usize, BTreeSet<&[u8]>> = BTreeMap::new();
    for (p, &i) in &want.paths {
        if matches!(want.inodes[i].kind, Kind::File(_)) {
            want_groups.entry(i).or_default().insert(p);
        }
    }
    let mut got_groups: BTreeMap<&[u8], BTreeSet<&[u8]>> = BTreeMap::new();
    for (p, e) in got {
        if let image::Kind::File { content, .. } = &e.kind {
            got_groups.entry(content).or_default().insert(p);
        }
    }
    let w: BTreeSet<_> = want_groups.into_values().collect();
    let g: BTreeSet<_> = got_groups.into_values().collect();
    if w != g {
        diffs.push(format!(
            "file link groups differ:\n    want {w:?}\n    got  {g:?}"
        ));
    }
    diffs
}

fn describe(layers: &[Vec<Op>]) -> String {
    let mut s = String::new();
    for (l, ops) in layers.iter().enumerate() {
        s.push_str(&format!("layer {l}:\n"));
        for op in ops {
            let line = match op {
                Op::Put { raw, node, .. } => match &node.kind {
                    Kind::Dir => format!("dir {:?} {:o}", show(raw), node.mode),
                    Kind::File(c) => format!("file {:?} ({} bytes)", show(raw), c.len()),
                    Kind::Symlink(t) => {
                        format!(
                            "symlink {:?} -> {:?}",
                            show(raw),
                            String::from_utf8_lossy(t)
                        )
                    }
                },
                Op::Link {
                    raw, raw_target, ..
                } => format!(
                    "hardlink {:?} -> {:?}",
                    show(raw),
                    String::from_utf8_lossy(raw_target)
                ),
                Op::Whiteout { raw, .. } => format!("whiteout entry {:?}", show(raw)),
                Op::Opaque { raw, .. } => format!("opaque entry {:?}", show(raw)),
            };
            s.push_str("  ");
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}

/// Decodes the fuzz input into layers of operations.
/// The layers an input gives, and the block size its bytes left after them choose
/// ([`block_size`]; 4 KiB when none are left).
fn decode(data: &[u8]) -> (Vec<LayerSpec>, BlockSize) {
    let mut u = Unstructured::new(data);
    let n = u.int_in_range(1..=MAX_LAYERS).unwrap_or(1);
    let mut layers = Vec::with_capacity(n);
    for _ in 0..n {
        let compression = Compress::arbitrary(&mut u).unwrap_or(Compress::None);
        let count = u.int_in_range(0..=MAX_OPS).unwrap_or(0);
        let mut ops = Vec::with_capacity(count);
        for _ in 0..count {
            if u.is_empty() {
                break;
            }
            match OpSpec::arbitrary(&mut u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        layers.push(LayerSpec { ops, compression });
    }
    let choice = u.int_in_range(0..=2u8).unwrap_or(0);
    (layers, block_size(usize::from(choice)))
}

/// Target `layer_ops`; see the module documentation.
pub fn layer_ops(data: &[u8]) {
    let (spec, block_size) = decode(data);
    let layers = lower(&spec);
    let expect = model(&layers);
    if std::env::var_os("OCI2EXT4_FUZZ_STATS").is_some() {
        let class = match &expect {
            Expect::Valid(_) => "valid".to_string(),
            Expect::Invalid(why) => format!("invalid: {why}"),
            Expect::Unspecified(why) => format!("unspecified: {why}"),
        };
        eprintln!("layer_ops model: {class}");
    }
    let dir = scratch();
    let out = dir.path().join("out.ext4");
    let mut builder =
        ImageBuilder::create(&out, options_with(block_size)).expect("create the builder");
    let inputs = layers
        .iter()
        .zip(&spec)
        .enumerate()
        .map(|(i, (ops, s))| {
            memory_layer(&format!("layer {i}"), compress(tar_of(ops), s.compression))
        })
        .collect();
    let result = apply_layers(&mut builder, inputs, &mut NoProgress).and_then(|_| builder.finish());
    let case = || describe(&layers);
    match (&expect, result) {
        (Expect::Valid(want), Ok(summary)) => {
            assert_eq!(
                listing(dir.path()),
                vec![out.clone()],
                "files beside the image"
            );
            let got = image::read(&out, Contents::All)
                .unwrap_or_else(|e| panic!("the image cannot be read back: {e}\n{}", case()));
            let diffs = compare(want, &got);
            assert!(
                diffs.is_empty(),
                "the image differs from the model:\n{}\n{}",
                diffs.join("\n"),
                case()
            );
            let inodes: BTreeSet<usize> = want
                .paths
                .iter()
                .filter(|(p, _)| !p.is_empty())
                .map(|(_, &i)| i)
                .collect();
            assert_eq!(
                summary.inodes_used - base_inodes(block_size),
                inodes.len() as u64,
                "inodes used differ from the model's\n{}",
                case()
            );
        }
        (Expect::Valid(_), Err(e)) => {
            panic!(
                "the model expects a valid image, the build failed: {e}\n{}",
                case()
            )
        }
        (Expect::Invalid(why), Ok(_)) => {
            panic!(
                "the model expects an error ({why}), the build succeeded\n{}",
                case()
            )
        }
        (Expect::Invalid(why), Err(e)) => {
            assert!(
                matches!(e.kind(), ErrorKind::CorruptInput | ErrorKind::LimitExceeded),
                "expected a corrupt-input or limit error ({why}), got {e:?}\n{}",
                case()
            );
            assert!(listing(dir.path()).is_empty(), "a failed build left files");
        }
        (Expect::Unspecified(_), Ok(_)) => {
            if let Err(e) = image::read(&out, Contents::All) {
                panic!("the image cannot be read back: {e}\n{}", case());
            }
        }
        (Expect::Unspecified(_), Err(_)) => {
            assert!(listing(dir.path()).is_empty(), "a failed build left files");
        }
    }
}

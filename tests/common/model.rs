//! The expected tree of an image, computed independently of the crate from the operations a
//! test performs, and the same tree read back from a kernel mount.

use std::collections::{BTreeMap, BTreeSet};

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Regular file: size and sha256 of the content.
    File { size: u64, sha256: [u8; 32] },
    /// Directory.
    Dir,
    /// Symlink with its target.
    Symlink(Vec<u8>),
    /// Character device.
    Char(u32, u32),
    /// Block device.
    Block(u32, u32),
    /// Fifo.
    Fifo,
    /// Socket.
    Socket,
}

/// Everything compared about one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits (0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, u32),
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Node {
    pub fn dir(mode: u32, uid: u32, gid: u32, mtime: (i64, u32)) -> Self {
        Node {
            kind: Kind::Dir,
            mode,
            uid,
            gid,
            mtime,
            xattrs: BTreeMap::new(),
        }
    }
}

/// A tree: paths (relative, no leading slash) to inodes; inodes shared by hard links.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub paths: BTreeMap<Vec<u8>, usize>,
    pub inodes: Vec<Node>,
}

impl Tree {
    pub fn node(&self, path: &[u8]) -> Option<&Node> {
        self.paths.get(path).map(|&i| &self.inodes[i])
    }

    /// Groups of paths that share an inode, for groups of two or more.
    pub fn link_groups(&self) -> BTreeSet<BTreeSet<Vec<u8>>> {
        let mut by_inode: BTreeMap<usize, BTreeSet<Vec<u8>>> = BTreeMap::new();
        for (p, &i) in &self.paths {
            by_inode.entry(i).or_default().insert(p.clone());
        }
        by_inode.into_values().filter(|g| g.len() > 1).collect()
    }
}

/// The model of a single-layer build: entries applied in order with the crate's documented
/// replacement rules, written here from scratch.
#[derive(Clone, Debug)]
pub struct Model {
    pub tree: Tree,
    /// Time given to directories created implicitly.
    pub implicit_time: (i64, u32),
}

/// Normalizes a tar path: no leading `/` or `./`, no trailing `/`, no `.` components.
pub fn norm(path: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    parts.join(&b'/')
}

fn parent(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|&b| b == b'/').map(|i| &path[..i])
}

impl Model {
    pub fn new(implicit_time: (i64, u32)) -> Self {
        let mut tree = Tree::default();
        tree.inodes.push(Node::dir(0o755, 0, 0, implicit_time));
        tree.paths.insert(Vec::new(), 0);
        Model {
            tree,
            implicit_time,
        }
    }

    /// Makes every parent of `path` a directory: missing ones are made, and a non-directory in
    /// the way gives way to one (an entry below it says a directory stands there).
    fn ensure_parents(&mut self, path: &[u8]) {
        if let Some(p) = parent(path) {
            if self.tree.node(p).is_some_and(|n| n.kind != Kind::Dir) {
                self.remove(p);
            }
            if !self.tree.paths.contains_key(p) {
                self.ensure_parents(p);
                let i = self.tree.inodes.len();
                self.tree
                    .inodes
                    .push(Node::dir(0o755, 0, 0, self.implicit_time));
                self.tree.paths.insert(p.to_vec(), i);
            }
        }
    }

    /// Removes `path` and everything below it.
    pub fn remove(&mut self, path: &[u8]) {
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        self.tree
            .paths
            .retain(|p, _| p != path && !p.starts_with(&prefix));
    }

    /// Adds or replaces an entry.
    pub fn put(&mut self, path: &[u8], node: Node) {
        let path = norm(path);
        if path.is_empty() {
            // The root takes new attributes and keeps its children.
            let i = self.tree.paths[&path];
            self.tree.inodes[i] = node;
            return;
        }
        self.ensure_parents(&path);
        if let Some(&old) = self.tree.paths.get(&path) {
            if self.tree.inodes[old].kind == Kind::Dir && node.kind == Kind::Dir {
                self.tree.inodes[old] = node;
                return;
            }
            self.remove(&path);
        }
        let i = self.tree.inodes.len();
        self.tree.inodes.push(node);
        self.tree.paths.insert(path, i);
    }

    /// Adds `path` as another name of `target`.
    pub fn link(&mut self, path: &[u8], target: &[u8]) {
        let (path, target) = (norm(path), norm(target));
        let i = self.tree.paths[&target];
        self.ensure_parents(&path);
        if self.tree.paths.get(&path) != Some(&i) {
            self.remove(&path);
            self.tree.paths.insert(path, i);
        }
    }
}

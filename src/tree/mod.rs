//! The in-memory tree of the image being built: names, inodes and what each inode holds.
//!
//! File data is not here: it is already in the output file, and a file's inode only records the
//! extents where it went. What stays in memory grows with the number of entries, never with
//! their bytes.
//!
//! Every node carries two layer stamps so that OCI whiteouts can tell entries of the layer being
//! applied from those of lower layers: `given`, the layer in which the node itself was given as
//! an entry, and `touched`, the layer in which it or anything below it was.

pub mod path;

use std::collections::{BTreeMap, HashSet};

use crate::entry::{Timestamp, Xattr};
use crate::error::{Error, Result};
use crate::ext4::dir::EXT4_NAME_LEN;
use crate::ext4::extent::Extent;
use crate::ext4::inode::EXT4_LINK_MAX;

/// Index of a name in the tree.
pub type NodeId = u32;
/// Index of an inode in the tree.
pub type InodeId = u32;

/// The root directory's node.
pub const ROOT: NodeId = 0;

/// What kind of file an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// Permissions, ownership, times and extended attributes of an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits (0o7777).
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Extended attributes, sorted by name, names unique.
    pub xattrs: Xattrs,
}

/// Extended attributes of an inode: most inodes have none, which costs no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Xattrs(Option<Box<[Xattr]>>);

impl Xattrs {
    /// Sorted, deduplicated attributes.
    pub fn new(list: Vec<Xattr>) -> Self {
        Xattrs(if list.is_empty() {
            None
        } else {
            Some(list.into_boxed_slice())
        })
    }
}

impl std::ops::Deref for Xattrs {
    type Target = [Xattr];

    fn deref(&self) -> &[Xattr] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// A file's data extents: most files have one, kept without an allocation of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Extents {
    /// No data (an empty file, or holes only).
    #[default]
    None,
    /// One extent.
    One(Extent),
    /// Several, sorted by logical block.
    Many(Box<[Extent]>),
}

impl From<Vec<Extent>> for Extents {
    fn from(v: Vec<Extent>) -> Self {
        match v.len() {
            0 => Extents::None,
            1 => Extents::One(v[0]),
            _ => Extents::Many(v.into_boxed_slice()),
        }
    }
}

impl std::ops::Deref for Extents {
    type Target = [Extent];

    fn deref(&self) -> &[Extent] {
        match self {
            Extents::None => &[],
            Extents::One(e) => std::slice::from_ref(e),
            Extents::Many(v) => v,
        }
    }
}

/// What an inode holds besides its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Directories, fifos and sockets.
    None,
    /// A regular file: its size and where its data went (holes are absent).
    File {
        /// Size in bytes.
        size: u64,
        /// Data extents, sorted by logical block.
        extents: Extents,
    },
    /// A symbolic link's target.
    Symlink(Box<[u8]>),
    /// A device number.
    Device {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// An inode: kind, attributes, content and the number of names it has.
#[derive(Clone, Debug)]
pub struct InodeData {
    /// The kind of file.
    pub kind: Kind,
    /// Attributes.
    pub attrs: Attrs,
    /// Content.
    pub content: Content,
    links: u32,
}

impl InodeData {
    /// A new inode with no names yet.
    pub fn new(kind: Kind, attrs: Attrs, content: Content) -> Self {
        InodeData {
            kind,
            attrs,
            content,
            links: 0,
        }
    }

    /// Number of names (hard links) the inode has in the tree.
    pub fn links(&self) -> u32 {
        self.links
    }
}

type Children = BTreeMap<Box<[u8]>, NodeId>;

struct Node {
    parent: NodeId,
    inode: InodeId,
    children: Option<Box<Children>>,
    given: u32,
    touched: u32,
}

/// A lower layer's non-directory that gave way to a directory in the current layer, waiting for
/// the layer to say why (see [`Tree::end_layer`]).
struct GiveWay {
    /// The name that was not a directory.
    name: Box<[u8]>,
    /// The entry that needed it as a directory (filled in by the caller of the walk).
    entry: Option<Box<[u8]>>,
}

/// The tree of names and inodes.
pub struct Tree {
    nodes: Vec<Node>,
    free_nodes: Vec<NodeId>,
    inodes: Vec<InodeData>,
    free_inodes: Vec<InodeId>,
    freed: Vec<Extent>,
    /// Directories made in the current layer where a lower non-directory stood, by node, until
    /// a whiteout, an opaque marker or a directory entry of the layer accounts for them.
    give_ways: BTreeMap<NodeId, GiveWay>,
    /// Give-ways whose directory went again before anything accounted for it.
    unjustified: Vec<GiveWay>,
    /// Give-ways made since the last [`Tree::label_give_ways`], waiting for their entry.
    unlabeled: Vec<NodeId>,
    /// Nodes a whiteout of the current layer already went through: nothing of a lower layer is
    /// left in or below them, so another whiteout there has nothing to do.
    whited: HashSet<NodeId>,
    /// Directories an opaque marker of the current layer already cleared of lower children.
    opaqued: HashSet<NodeId>,
}

/// The result of one step of a path walk.
enum Step {
    Dir(NodeId),
    Missing,
    Symlink(Vec<u8>),
}

impl Tree {
    /// A tree holding only the root directory.
    pub fn new(root: Attrs) -> Self {
        let root_inode = InodeData {
            kind: Kind::Dir,
            attrs: root,
            content: Content::None,
            links: 1,
        };
        let root_node = Node {
            parent: ROOT,
            inode: 0,
            children: Some(Box::default()),
            given: 0,
            touched: 0,
        };
        Tree {
            nodes: vec![root_node],
            free_nodes: Vec::new(),
            inodes: vec![root_inode],
            free_inodes: Vec::new(),
            freed: Vec::new(),
            give_ways: BTreeMap::new(),
            unjustified: Vec::new(),
            unlabeled: Vec::new(),
            whited: HashSet::new(),
            opaqued: HashSet::new(),
        }
    }

    /// The inode a node names.
    pub fn inode_id(&self, node: NodeId) -> InodeId {
        self.nodes[node as usize].inode
    }

    /// The inode a node names.
    pub fn inode(&self, node: NodeId) -> &InodeData {
        &self.inodes[self.inode_id(node) as usize]
    }

    /// The inode a node names, for changes.
    pub fn inode_mut(&mut self, node: NodeId) -> &mut InodeData {
        let id = self.inode_id(node);
        &mut self.inodes[id as usize]
    }

    /// Number of inode slots (live or free): an upper bound for inode ids.
    pub fn inode_slots(&self) -> usize {
        self.inodes.len()
    }

    /// The parent of a node (the root is its own parent).
    pub fn parent(&self, node: NodeId) -> NodeId {
        self.nodes[node as usize].parent
    }

    /// Whether a node is a directory.
    pub fn is_dir(&self, node: NodeId) -> bool {
        self.nodes[node as usize].children.is_some()
    }

    /// The children of a directory in name order (nothing for other nodes).
    pub fn children(&self, dir: NodeId) -> impl Iterator<Item = (&[u8], NodeId)> + '_ {
        self.nodes[dir as usize]
            .children
            .iter()
            .flat_map(|c| c.iter().map(|(k, &v)| (&k[..], v)))
    }

    /// The child called `name` of directory `dir`.
    pub fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.nodes[dir as usize]
            .children
            .as_ref()
            .and_then(|c| c.get(name).copied())
    }

    /// The layer in which the node was given as an entry (0: never explicitly).
    #[cfg(test)]
    pub fn given(&self, node: NodeId) -> u32 {
        self.nodes[node as usize].given
    }

    /// Extents of file data freed since the last call: their blocks must not keep old bytes.
    pub fn take_freed(&mut self) -> Vec<Extent> {
        std::mem::take(&mut self.freed)
    }

    /// Whether any freed extents wait to be taken.
    pub fn has_freed(&self) -> bool {
        !self.freed.is_empty()
    }

    fn new_inode(&mut self, data: InodeData) -> InodeId {
        match self.free_inodes.pop() {
            Some(id) => {
                self.inodes[id as usize] = data;
                id
            }
            None => {
                self.inodes.push(data);
                (self.inodes.len() - 1) as InodeId
            }
        }
    }

    fn new_node(&mut self, node: Node) -> NodeId {
        match self.free_nodes.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as NodeId
            }
        }
    }

    /// The children map of a directory. Every caller passes a node that `resolve_dir`,
    /// `children` or `attach` returned as a directory.
    fn children_mut(&mut self, dir: NodeId) -> &mut Children {
        self.nodes[dir as usize]
            .children
            .as_mut()
            .expect("caller passes a directory")
    }

    /// Marks `node` and its ancestors as touched in `layer`. A node touched in a layer always
    /// has its ancestors touched in it too, so the walk stops at the first one that is.
    fn mark_touched(&mut self, node: NodeId, layer: u32) {
        self.nodes[node as usize].touched = layer;
        let mut cur = node;
        while cur != ROOT {
            cur = self.nodes[cur as usize].parent;
            if self.nodes[cur as usize].touched == layer {
                return;
            }
            self.nodes[cur as usize].touched = layer;
        }
    }

    fn attach(
        &mut self,
        parent: NodeId,
        name: &[u8],
        inode: InodeId,
        is_dir: bool,
        given: u32,
        layer: u32,
    ) -> NodeId {
        let children = if is_dir { Some(Box::default()) } else { None };
        let id = self.new_node(Node {
            parent,
            inode,
            children,
            given,
            touched: layer,
        });
        self.inodes[inode as usize].links += 1;
        self.children_mut(parent).insert(name.into(), id);
        self.mark_touched(id, layer);
        id
    }

    /// One step of a walk from directory `cur` to its child `name`. When creating, a
    /// non-directory from a lower layer gives way to a directory: an entry below it in this
    /// layer says a directory stands there, whatever the order of the layer's entries (a
    /// whiteout of it, or a directory entry for it, may come later).
    fn step(&mut self, cur: NodeId, name: &[u8], create: Option<(&Attrs, u32)>) -> Result<Step> {
        let existing = self.child(cur, name);
        if let Some(n) = existing {
            if self.is_dir(n) {
                return Ok(Step::Dir(n));
            }
            if let Content::Symlink(target) = &self.inode(n).content {
                return Ok(Step::Symlink(target.to_vec()));
            }
            let lower = matches!(create, Some((_, layer)) if self.nodes[n as usize].given != layer);
            if !lower {
                return Err(Error::corrupt(format!(
                    "a parent component {:?} is not a directory",
                    String::from_utf8_lossy(name)
                )));
            }
            self.remove_child(cur, name);
        }
        match create {
            Some(_) if name.len() > EXT4_NAME_LEN => Err(Error::limit(format!(
                "a name of {} bytes in a parent path, from a symbolic link's target, is longer \
                 than ext4's limit of {EXT4_NAME_LEN}",
                name.len()
            ))),
            Some((attrs, layer)) => {
                let inode = self.new_inode(InodeData::new(Kind::Dir, attrs.clone(), Content::None));
                let dir = self.attach(cur, name, inode, true, 0, layer);
                if existing.is_some() {
                    let name = name.into();
                    self.give_ways.insert(dir, GiveWay { name, entry: None });
                    self.unlabeled.push(dir);
                }
                Ok(Step::Dir(dir))
            }
            None => Ok(Step::Missing),
        }
    }

    /// Walks `comps` from the root as directories, following symlinks met on the way inside the
    /// image (an absolute target starts again at the image root, `..` stops at the root).
    /// Missing directories are created with `create`'s attributes and layer, or end the walk
    /// with `None`. At most `max_follows` symlinks are followed.
    pub fn resolve_dir(
        &mut self,
        comps: &[&[u8]],
        create: Option<(&Attrs, u32)>,
        max_follows: u32,
    ) -> Result<Option<NodeId>> {
        let mut cur = ROOT;
        for (i, comp) in comps.iter().enumerate() {
            match self.step(cur, comp, create)? {
                Step::Dir(n) => cur = n,
                Step::Missing => return Ok(None),
                Step::Symlink(target) => {
                    let rest: Vec<Vec<u8>> =
                        comps[i + 1..].iter().rev().map(|c| c.to_vec()).collect();
                    return self.resolve_slow(cur, target, rest, create, max_follows);
                }
            }
        }
        Ok(Some(cur))
    }

    /// The walk once a symlink was met: `pending` holds the components still to walk, last
    /// first.
    fn resolve_slow(
        &mut self,
        mut cur: NodeId,
        first_target: Vec<u8>,
        mut pending: Vec<Vec<u8>>,
        create: Option<(&Attrs, u32)>,
        max_follows: u32,
    ) -> Result<Option<NodeId>> {
        let mut follows = 0u32;
        let mut target = Some(first_target);
        loop {
            if let Some(t) = target.take() {
                follows += 1;
                if follows > max_follows {
                    return Err(Error::limit(format!(
                        "more than {max_follows} symbolic links in a parent path (a loop?)"
                    )));
                }
                if t.first() == Some(&b'/') {
                    cur = ROOT;
                }
                pending.extend(t.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
            }
            let Some(comp) = pending.pop() else {
                return Ok(Some(cur));
            };
            match &comp[..] {
                b"" | b"." => {}
                b".." => cur = self.parent(cur),
                name => match self.step(cur, name, create)? {
                    Step::Dir(n) => cur = n,
                    Step::Missing => return Ok(None),
                    Step::Symlink(t) => target = Some(t),
                },
            }
        }
    }

    /// Adds `data` as `name` in directory `parent`, given in `layer`. An existing directory
    /// given again as a directory keeps its children and takes the new attributes; any other
    /// existing entry is removed first (a directory with everything below it).
    pub fn insert(&mut self, parent: NodeId, name: &[u8], data: InodeData, layer: u32) -> NodeId {
        if let Some(old) = self.child(parent, name) {
            if self.is_dir(old) && data.kind == Kind::Dir {
                self.give_ways.remove(&old);
                self.inode_mut(old).attrs = data.attrs;
                self.nodes[old as usize].given = layer;
                self.mark_touched(old, layer);
                return old;
            }
            self.remove_child(parent, name);
        }
        let is_dir = data.kind == Kind::Dir;
        let inode = self.new_inode(data);
        self.attach(parent, name, inode, is_dir, layer, layer)
    }

    /// Replaces the attributes of directory `dir` (used for the root entry).
    pub fn set_dir_attrs(&mut self, dir: NodeId, attrs: Attrs, layer: u32) {
        self.inode_mut(dir).attrs = attrs;
        self.nodes[dir as usize].given = layer;
        self.mark_touched(dir, layer);
    }

    /// Whether `node` is `ancestor` or lies below it.
    pub fn is_within(&self, mut node: NodeId, ancestor: NodeId) -> bool {
        loop {
            if node == ancestor {
                return true;
            }
            if node == ROOT {
                return false;
            }
            node = self.parent(node);
        }
    }

    /// Adds `name` in `parent` as another name of `target`'s inode, given in `layer`.
    pub fn link(
        &mut self,
        parent: NodeId,
        name: &[u8],
        target: NodeId,
        layer: u32,
    ) -> Result<NodeId> {
        if self.is_dir(target) {
            return Err(Error::corrupt("hard link to a directory"));
        }
        let inode = self.inode_id(target);
        if let Some(old) = self.child(parent, name) {
            if self.inode_id(old) == inode {
                self.nodes[old as usize].given = layer;
                self.mark_touched(old, layer);
                return Ok(old);
            }
            if self.is_within(target, old) {
                return Err(Error::corrupt(
                    "hard link would replace the directory holding its own target",
                ));
            }
        }
        if self.inodes[inode as usize].links >= EXT4_LINK_MAX {
            return Err(Error::limit(format!(
                "more than {EXT4_LINK_MAX} hard links to one file"
            )));
        }
        if self.child(parent, name).is_some() {
            self.remove_child(parent, name);
        }
        Ok(self.attach(parent, name, inode, false, layer, layer))
    }

    /// Drops one name of a node's inode; frees the inode (and queues its data extents) when it
    /// was the last.
    fn release(&mut self, node: NodeId) {
        if let Some(g) = self.give_ways.remove(&node) {
            self.unjustified.push(g);
        }
        // The id may be reused for another node of this layer.
        self.whited.remove(&node);
        self.opaqued.remove(&node);
        let inode = self.nodes[node as usize].inode;
        let data = &mut self.inodes[inode as usize];
        data.links -= 1;
        if data.links == 0 {
            if let Content::File { extents, .. } =
                std::mem::replace(&mut data.content, Content::None)
            {
                self.freed.extend(extents.iter().copied());
            }
            data.attrs.xattrs = Xattrs::default();
            self.free_inodes.push(inode);
        }
        self.nodes[node as usize].children = None;
        self.free_nodes.push(node);
    }

    /// Removes `name` from `parent` with everything below it. Returns whether it existed.
    pub fn remove_child(&mut self, parent: NodeId, name: &[u8]) -> bool {
        let Some(node) = self.children_mut(parent).remove(name) else {
            return false;
        };
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            if let Some(children) = self.nodes[n as usize].children.take() {
                stack.extend(children.values().copied());
            }
            self.release(n);
        }
        true
    }

    /// Applies a whiteout of `name` in `parent` for `layer`: everything there that came from
    /// lower layers goes, everything given in `layer` itself stays. A lower directory that holds
    /// entries of `layer` further down is kept as a fresh directory with `implicit` attributes.
    pub fn whiteout_child(&mut self, parent: NodeId, name: &[u8], layer: u32, implicit: &Attrs) {
        let mut work: Vec<(NodeId, Box<[u8]>)> = vec![(parent, name.into())];
        while let Some((dir, name)) = work.pop() {
            let Some(node) = self.child(dir, &name) else {
                continue;
            };
            if self.whited.contains(&node) {
                // Went through already in this layer: what is there now is all this layer's.
                continue;
            }
            let n = &self.nodes[node as usize];
            if n.touched == layer {
                self.give_ways.remove(&node);
                let n = &self.nodes[node as usize];
                if n.given != layer {
                    self.inode_mut(node).attrs = implicit.clone();
                }
                // Below a directory an opaque marker cleared, every child was gone through.
                if self.is_dir(node) && !self.opaqued.contains(&node) {
                    let names: Vec<Box<[u8]>> =
                        self.children(node).map(|(k, _)| k.into()).collect();
                    work.extend(names.into_iter().map(|k| (node, k)));
                }
                self.whited.insert(node);
            } else {
                self.remove_child(dir, &name);
            }
        }
    }

    /// Names `entry` as the one that needed the directories the last walk made where lower
    /// non-directories stood.
    pub fn label_give_ways(&mut self, entry: &[u8]) {
        for node in self.unlabeled.drain(..) {
            if let Some(g) = self.give_ways.get_mut(&node) {
                g.entry.get_or_insert_with(|| entry.into());
            }
        }
    }

    /// Ends a layer. A non-directory of a lower layer may give way to a directory that an entry
    /// of the layer needs above it only when the layer also whites it out (or an opaque marker
    /// hides it) or gives a directory entry for it, before or after; otherwise a parent is not
    /// a directory, an error naming the entry.
    pub fn end_layer(&mut self) -> Result<()> {
        let first = self
            .unjustified
            .drain(..)
            .chain(std::mem::take(&mut self.give_ways).into_values())
            .next();
        self.unjustified.clear();
        self.unlabeled.clear();
        self.whited.clear();
        self.opaqued.clear();
        match first {
            None => Ok(()),
            Some(g) => {
                let e = Error::corrupt(format!(
                    "a parent component {:?} is not a directory (a lower layer's non-directory \
                     that this layer neither whites out nor gives as a directory)",
                    String::from_utf8_lossy(&g.name)
                ));
                Err(match g.entry {
                    Some(entry) => e.with_entry(crate::error::show_path(&entry)),
                    None => e,
                })
            }
        }
    }

    /// Applies an opaque marker on directory `dir` for `layer`: every child from lower layers
    /// is whited out.
    pub fn make_opaque(&mut self, dir: NodeId, layer: u32, implicit: &Attrs) {
        // A second marker (or one in a directory a whiteout went through) finds nothing lower.
        if !self.opaqued.contains(&dir) && !self.whited.contains(&dir) {
            let names: Vec<Box<[u8]>> = self.children(dir).map(|(k, _)| k.into()).collect();
            for name in names {
                self.whiteout_child(dir, &name, layer, implicit);
            }
            self.opaqued.insert(dir);
        }
        self.mark_touched(dir, layer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(mode: u16) -> Attrs {
        Attrs {
            mode,
            uid: 0,
            gid: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            xattrs: Xattrs::default(),
        }
    }

    fn file(size: u64, start: u64) -> InodeData {
        let ext = Extent {
            ee_block: 0,
            ee_len: 1,
            ee_start: start,
        };
        InodeData::new(
            Kind::File,
            attrs(0o644),
            Content::File {
                size,
                extents: vec![ext].into(),
            },
        )
    }

    fn dir() -> InodeData {
        InodeData::new(Kind::Dir, attrs(0o755), Content::None)
    }

    fn symlink(target: &str) -> InodeData {
        InodeData::new(
            Kind::Symlink,
            attrs(0o777),
            Content::Symlink(target.as_bytes().into()),
        )
    }

    fn names(t: &Tree, dir: NodeId) -> Vec<String> {
        t.children(dir)
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn missing_parents_are_created() {
        let mut t = Tree::new(attrs(0o755));
        let implicit = attrs(0o755);
        let d = t
            .resolve_dir(&[b"a", b"b"], Some((&implicit, 1)), 40)
            .unwrap()
            .unwrap();
        t.insert(d, b"f", file(1, 100), 1);
        assert_eq!(names(&t, ROOT), ["a"]);
        let a = t.child(ROOT, b"a").unwrap();
        assert_eq!(t.given(a), 0);
        assert_eq!(t.resolve_dir(&[b"x"], None, 40).unwrap(), None);
    }

    #[test]
    fn dir_over_dir_keeps_children_other_replacements_do_not() {
        let mut t = Tree::new(attrs(0o755));
        let a = t.insert(ROOT, b"a", dir(), 1);
        t.insert(a, b"f", file(1, 100), 1);
        let mut newer = dir();
        newer.attrs.mode = 0o700;
        let a2 = t.insert(ROOT, b"a", newer, 2);
        assert_eq!(a, a2);
        assert_eq!(t.inode(a).attrs.mode, 0o700);
        assert_eq!(names(&t, a), ["f"]);
        t.insert(ROOT, b"a", file(2, 200), 3);
        assert!(!t.is_dir(t.child(ROOT, b"a").unwrap()));
        let freed = t.take_freed();
        assert_eq!(freed.len(), 1);
        assert_eq!(freed[0].ee_start, 100);
    }

    #[test]
    fn symlinks_in_parents_resolve_inside_the_root() {
        let mut t = Tree::new(attrs(0o755));
        let usr = t.insert(ROOT, b"usr", dir(), 1);
        let lib = t.insert(usr, b"lib", dir(), 1);
        t.insert(ROOT, b"lib", symlink("usr/lib"), 1);
        t.insert(ROOT, b"up", symlink("../../../usr"), 1);
        t.insert(ROOT, b"abs", symlink("/usr/lib"), 1);
        assert_eq!(t.resolve_dir(&[b"lib"], None, 40).unwrap(), Some(lib));
        assert_eq!(
            t.resolve_dir(&[b"up", b"lib"], None, 40).unwrap(),
            Some(lib)
        );
        assert_eq!(t.resolve_dir(&[b"abs"], None, 40).unwrap(), Some(lib));
    }

    #[test]
    fn symlink_loops_are_bounded() {
        let mut t = Tree::new(attrs(0o755));
        t.insert(ROOT, b"a", symlink("b"), 1);
        t.insert(ROOT, b"b", symlink("a"), 1);
        let err = t.resolve_dir(&[b"a", b"x"], None, 40).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded);
    }

    #[test]
    fn names_made_from_symlink_targets_are_held_to_255_bytes() {
        let mut t = Tree::new(attrs(0o755));
        let create = Some((&attrs(0o755), 1));
        for len in [256, 257, 258, 300] {
            t.insert(ROOT, b"l", symlink(&"A".repeat(len)), 1);
            let err = t.resolve_dir(&[b"l"], create, 40).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded, "{len}");
            assert!(err.to_string().contains(&format!("{len} bytes")), "{err}");
            assert_eq!(names(&t, ROOT), ["l"]);
        }
        t.insert(ROOT, b"l", symlink(&"A".repeat(255)), 1);
        assert!(t.resolve_dir(&[b"l"], create, 40).unwrap().is_some());
    }

    #[test]
    fn file_in_parent_is_an_error() {
        let mut t = Tree::new(attrs(0o755));
        t.insert(ROOT, b"f", file(1, 1), 1);
        assert!(t
            .resolve_dir(&[b"f", b"g"], Some((&attrs(0o755), 1)), 40)
            .is_err());
    }

    #[test]
    fn hard_links_share_the_inode_until_the_last_name_goes() {
        let mut t = Tree::new(attrs(0o755));
        let f = t.insert(ROOT, b"f", file(5, 10), 1);
        let g = t.link(ROOT, b"g", f, 1).unwrap();
        assert_eq!(t.inode_id(f), t.inode_id(g));
        assert_eq!(t.inode(f).links(), 2);
        t.remove_child(ROOT, b"f");
        assert!(!t.has_freed());
        assert_eq!(t.inode(g).links(), 1);
        t.remove_child(ROOT, b"g");
        assert_eq!(t.take_freed().len(), 1);
        let d = t.insert(ROOT, b"d", dir(), 1);
        assert!(t.link(ROOT, b"x", d, 1).is_err());
    }

    #[test]
    fn whiteout_spares_entries_of_its_own_layer() {
        let mut t = Tree::new(attrs(0o755));
        let implicit = attrs(0o755);
        // Layer 1: d/{old,keep-dir/x}
        let d = t.insert(ROOT, b"d", dir(), 1);
        t.insert(d, b"old", file(1, 1), 1);
        let kd = t.insert(d, b"keep-dir", dir(), 1);
        t.insert(kd, b"x", file(1, 2), 1);
        // Layer 2: d/keep-dir/new, then a whiteout of d.
        let mut lower_attrs = dir().attrs;
        lower_attrs.mode = 0o700;
        t.inode_mut(kd).attrs = lower_attrs;
        t.insert(kd, b"new", file(1, 3), 2);
        t.whiteout_child(ROOT, b"d", 2, &implicit);
        assert_eq!(names(&t, ROOT), ["d"]);
        assert_eq!(names(&t, d), ["keep-dir"]);
        assert_eq!(names(&t, kd), ["new"]);
        assert_eq!(
            t.inode(kd).attrs.mode,
            0o755,
            "a lower directory is recreated implicitly"
        );
        assert_eq!(t.take_freed().len(), 2);
    }

    #[test]
    fn opaque_hides_lower_children_only() {
        let mut t = Tree::new(attrs(0o755));
        let d = t.insert(ROOT, b"d", dir(), 1);
        t.insert(d, b"lower", file(1, 1), 1);
        t.insert(d, b"upper", file(1, 2), 2);
        t.make_opaque(d, 2, &attrs(0o755));
        assert_eq!(names(&t, d), ["upper"]);
    }
}

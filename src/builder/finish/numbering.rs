//! Inode numbers: the root is 2, `lost+found` 11 (as mke2fs gives them), then directory by
//! directory, each directory's children consecutively in name order.

use crate::error::{Error, Result};
use crate::ext4::inode::ino;
use crate::tree::{NodeId, Tree, ROOT};

/// Inode numbers in the order they are given: the root is 2, then from 11 on.
pub(super) struct Numbering {
    /// Inode number of each tree inode (0: not reached).
    ino_of: Vec<u32>,
    /// The node of inode `ino::FIRST + i`.
    pub(super) order: Vec<NodeId>,
    /// The highest inode number given (10 when only the root has one).
    max_ino: u32,
}

impl Numbering {
    pub(super) fn ino(&self, tree: &Tree, node: NodeId) -> u32 {
        self.ino_of[tree.inode_id(node) as usize]
    }

    pub(super) fn max_ino(&self) -> u32 {
        self.max_ino
    }

    /// Every numbered inode with its node: the root, then 11 on.
    pub(super) fn all(&self) -> impl Iterator<Item = (u32, NodeId)> + '_ {
        std::iter::once((ino::ROOT, ROOT))
            .chain((ino::FIRST..=u32::MAX).zip(self.order.iter().copied()))
    }
}

/// Gives inode numbers: `lost+found` first (11, as mke2fs does), then directory by directory,
/// each directory's children consecutively in name order.
pub(super) fn number(tree: &Tree) -> Result<Numbering> {
    let mut ino_of = vec![0u32; tree.inode_slots()];
    ino_of[tree.inode_id(ROOT) as usize] = ino::ROOT;
    let mut order = Vec::new();
    let mut next = u64::from(ino::FIRST);
    let mut give = |node: NodeId, ino_of: &mut Vec<u32>, order: &mut Vec<NodeId>| -> Result<()> {
        let slot = &mut ino_of[tree.inode_id(node) as usize];
        if *slot == 0 {
            *slot = u32::try_from(next)
                .map_err(|_| Error::limit("more inodes than ext4 can address"))?;
            order.push(node);
            next += 1;
        }
        Ok(())
    };
    if let Some(lf) = tree.child(ROOT, b"lost+found").filter(|&n| tree.is_dir(n)) {
        give(lf, &mut ino_of, &mut order)?;
    }
    let mut stack = vec![ROOT];
    let mut subdirs = Vec::new();
    while let Some(dir) = stack.pop() {
        subdirs.clear();
        for (_, child) in tree.children(dir) {
            give(child, &mut ino_of, &mut order)?;
            if tree.is_dir(child) {
                subdirs.push(child);
            }
        }
        stack.extend(subdirs.iter().rev());
    }
    // `next` is one past the last number given, which fit 32 bits.
    let max_ino =
        u32::try_from(next - 1).map_err(|_| Error::limit("more inodes than ext4 can address"))?;
    Ok(Numbering {
        ino_of,
        order,
        max_ino,
    })
}

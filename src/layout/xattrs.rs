//! Where an inode's extended attributes go: in the inode while they fit, the rest in one
//! external block.

use crate::entry::Xattr;
use crate::ext4::inode::{IBODY_XATTR_OFFSET, INODE_SIZE};
use crate::ext4::xattr::{fits, split_name, Attr, BLOCK_HEADER_SIZE, IBODY_HEADER_SIZE};

/// Space in the inode after `i_extra_isize`.
pub const IBODY_SPACE: usize = INODE_SIZE - IBODY_XATTR_OFFSET;

/// The attributes of `list` as ext4 stores them (name index, suffix, value); names of
/// namespaces ext4 cannot store are left out (the builder refuses them earlier).
pub fn stored(list: &[Xattr]) -> Vec<Attr<'_>> {
    list.iter()
        .filter_map(|x| {
            split_name(&x.name).map(|(index, name)| Attr {
                index,
                name,
                value: &x.value,
            })
        })
        .collect()
}

/// The attributes split into those in the inode and those in the block.
pub struct Placement<'a> {
    /// In the inode body.
    pub ibody: Vec<Attr<'a>>,
    /// In the external block (empty: no block).
    pub block: Vec<Attr<'a>>,
}

/// Places `attrs` (in the order given): each goes into the inode if it still fits there, else
/// into the block of `bs` bytes. `None` when they do not fit in both together.
pub fn place<'a>(attrs: &[Attr<'a>], bs: usize) -> Option<Placement<'a>> {
    let mut ibody = Vec::new();
    let mut block = Vec::new();
    for attr in attrs {
        ibody.push(*attr);
        if !fits(&ibody, IBODY_SPACE, IBODY_HEADER_SIZE) {
            ibody.pop();
            block.push(*attr);
        }
    }
    if !block.is_empty() && !fits(&block, bs, BLOCK_HEADER_SIZE) {
        return None;
    }
    Some(Placement { ibody, block })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext4::xattr::index;

    #[test]
    fn small_attrs_stay_in_the_inode() {
        let cap = [0u8; 20];
        let attrs = [Attr {
            index: index::SECURITY,
            name: b"capability",
            value: &cap,
        }];
        let p = place(&attrs, 4096).unwrap();
        assert_eq!(p.ibody.len(), 1);
        assert!(p.block.is_empty());
    }

    #[test]
    fn large_attrs_spill_to_the_block_or_fail() {
        let big = vec![1u8; 3000];
        let small = [2u8; 8];
        let attrs = [
            Attr {
                index: index::USER,
                name: b"big",
                value: &big,
            },
            Attr {
                index: index::USER,
                name: b"small",
                value: &small,
            },
        ];
        let p = place(&attrs, 4096).unwrap();
        assert_eq!(p.ibody.len(), 1);
        assert_eq!(p.block.len(), 1);
        let huge = vec![1u8; 5000];
        assert!(place(
            &[Attr {
                index: index::USER,
                name: b"huge",
                value: &huge
            }],
            4096
        )
        .is_none());
        // What spills into a 4 KiB block does not fit in a 1 KiB one.
        assert!(place(&attrs, 1024).is_none());
    }
}

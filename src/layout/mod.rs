//! Layout policy: where things go and how big the filesystem is. The encoders in
//! [`crate::ext4`] are told block numbers; this module decides them.

pub mod alloc;
pub mod directory;
pub mod geometry;
pub mod sizing;
pub mod xattrs;

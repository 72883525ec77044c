//! Turn container images into bootable ext4 filesystem images in one streaming pass, with no
//! `mkfs`, no root and no loop device.
//!
//! The pieces, from the bottom up:
//!
//! - `ext4` (private): the on-disk structures, one module each.
//! - `layout` (private): where things go: block allocation, geometry, sizing, directory shape.
//! - `acl` (private): POSIX ACLs in the generic xattr format, as tar and `listxattr` give them.
//! - `tree` (private): the in-memory tree of names and inodes.
//! - `tar` (private): the streaming tar reader, which reads as Go's `archive/tar` does.
//! - [`builder`]: [`ImageBuilder`], the public way to make an image from entries.
//! - [`blob`]: blob digests ([`blob::Digest`]) and compressions ([`blob::Compression`]); the
//!   threaded decompressing stream below both [`layer`] and [`source`] is internal.
//! - [`oci`]: image indexes, manifests and configs, as layouts and registries serve them.
//! - [`layer`] and [`source`]: layers applied with OCI whiteout rules ([`layer::apply_layers`]),
//!   from local sources ([`source::plan`]).
//! - `registry` (feature `registry`, on by default): pulling from registries into a blob
//!   cache, streaming the layers as they download.
//! - [`verity`]: dm-verity hash trees appended to an image.
//!
//! File data is written to the output once, as it streams in; the tree in memory grows with the
//! number of entries, never with their bytes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod acl;
pub mod blob;
pub mod builder;
pub mod entry;
pub mod error;
mod ext4;
pub mod layer;
mod layout;
pub mod oci;
#[cfg(feature = "registry")]
pub mod registry;
pub mod source;
mod tar;
mod tree;
pub mod verity;

pub use builder::{BlockSize, BuildOptions, FileSession, Headroom, ImageBuilder, Limits, Summary};
pub use entry::{Metadata, Special, Timestamp, Xattr};
pub use error::{Error, ErrorKind, Result};

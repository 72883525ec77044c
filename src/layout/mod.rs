//! Layout policy: where things go and how big the filesystem is. The encoders in
//! [`crate::ext4`] are told block numbers; this module decides them.

#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

pub mod alloc;
pub mod directory;
pub mod geometry;
pub mod sizing;
pub mod xattrs;

use crate::error::Error;
use crate::ext4::FieldOutOfRange;

/// A value an on-disk field cannot hold is a limit of the format.
impl From<FieldOutOfRange> for Error {
    fn from(e: FieldOutOfRange) -> Self {
        Error::limit(e.to_string())
    }
}

//! Blobs as both sides see them: content digests, compression recognised by magic bytes, and the
//! threaded stream that decompresses and hashes a layer while it is applied. Below both
//! [`crate::layer`] (which applies layers) and [`crate::source`] (which finds them), so the
//! dependencies run one way: `source` → `layer` → `blob`.

pub(crate) mod chunks;
pub(crate) mod compression;
pub(crate) mod digest;
pub(crate) mod read_ahead;
pub(crate) mod stream;

use crate::error::Error;

pub use compression::Compression;
pub use digest::Digest;
pub use stream::Opener;

/// An error from reading a layer's bytes as an error of this crate: one the source reported as
/// such (a download's, say) keeps its kind; any other is an I/O error, never taken for a corrupt
/// stream.
pub(crate) fn read_error(e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        e.into()
    } else {
        Error::io("cannot read the layer", e)
    }
}

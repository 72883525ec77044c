//! Blobs as both sides see them: content digests, compression recognised by magic bytes, and the
//! threaded stream that decompresses and hashes a layer while it is applied. Below both
//! [`crate::layer`] (which applies layers) and [`crate::source`] (which finds them), so the
//! dependencies run one way: `source` → `layer` → `blob`.

pub(crate) mod chunks;
pub(crate) mod compression;
pub(crate) mod digest;
pub(crate) mod read_ahead;
pub(crate) mod stream;

pub use compression::Compression;
pub use digest::Digest;
pub use stream::Opener;

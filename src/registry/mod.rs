//! Pulling images from registries (the `registry` feature): references as Docker reads them,
//! credentials where Docker, Podman and crane keep them, a verified blob cache in the OCI image
//! layout, and layers downloaded concurrently while they are applied in order.
//!
//! ```no_run
//! # async fn f() -> oci2ext4::Result<()> {
//! use oci2ext4::registry::{pull, PullOptions};
//! let summary = pull(
//!     "alpine:3.20",
//!     "rootfs.ext4",
//!     oci2ext4::BuildOptions::default(),
//!     PullOptions::default(),
//!     None,
//! )
//! .await?;
//! println!("{} from {}", summary.image.image_bytes, summary.manifest_digest);
//! # Ok(()) }
//! ```
//!
//! For progress and control, [`Puller::resolve`] gives the layers as [`LayerInput`]s for
//! [`apply_layers`] while their downloads run on the tokio runtime.
//!
//! [`LayerInput`]: crate::layer::LayerInput
//! [`apply_layers`]: crate::layer::apply_layers

pub mod auth;
pub mod cache;
mod download;
pub mod pull;
pub mod reference;
pub mod transport;

pub use auth::{AuthEnv, Credentials};
pub use cache::Cache;
pub use download::DownloadProgress;
pub use pull::{pull, LayerDownload, PullOptions, PullStats, PullSummary, PulledImage, Puller};
pub use reference::ImageReference;
pub use transport::TransportOptions;

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

pub(crate) mod auth;
pub(crate) mod cache;
mod download;
pub(crate) mod pull;
pub(crate) mod reference;
pub(crate) mod transport;

pub use auth::{AuthEnv, Credentials};
pub use cache::Cache;
pub use download::DownloadProgress;
pub use pull::{pull, LayerDownload, PullOptions, PullStats, PullSummary, PulledImage, Puller};
pub use reference::ImageReference;
pub use transport::TransportOptions;

impl PullOptions {
    /// Picks `platform` from an image index instead of the host's.
    pub fn with_platform(mut self, platform: crate::oci::Platform) -> Self {
        self.platform = platform;
        self
    }

    /// Keeps blobs in `dir` instead of the default cache directory.
    pub fn with_cache_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Uses only the cache, with no network at all, or not.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Authenticates with `credentials` instead of looking them up.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Looks credentials up in `env` instead of the process environment.
    pub fn with_auth_env(mut self, env: AuthEnv) -> Self {
        self.auth_env = Some(env);
        self
    }

    /// Reaches registries as `transport` says.
    pub fn with_transport(mut self, transport: TransportOptions) -> Self {
        self.transport = transport;
        self
    }

    /// Downloads up to `blobs` blobs at once (at least 1).
    pub fn with_concurrency(mut self, blobs: usize) -> Self {
        self.concurrency = blobs;
        self
    }

    /// Gives up waiting on downloads once `flag` is set.
    pub fn with_cancel(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Refuses a layer whose descriptor declares more than `bytes`.
    pub fn with_max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }
}

impl TransportOptions {
    /// Uses plain HTTP for every registry, or not.
    pub fn with_plain_http(mut self, plain: bool) -> Self {
        self.plain_http = plain;
        self
    }

    /// Reaches `registry` (`host[:port]`) over plain HTTP.
    pub fn with_insecure_registry(mut self, registry: impl Into<String>) -> Self {
        self.insecure_registries.push(registry.into());
        self
    }

    /// Trusts the CA certificates in the PEM file `path` too.
    pub fn with_ca_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_certs.push(path.into());
        self
    }

    /// Tries a failed request up to `retries` more times.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Bounds each layer's download, retries included, to `timeout`.
    pub fn with_layer_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.layer_timeout = timeout;
        self
    }
}

impl AuthEnv {
    /// Reads only the credentials file `path` (as `--authfile` does).
    pub fn with_auth_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.auth_file = Some(path.into());
        self
    }
}

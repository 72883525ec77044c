//! Pulling an image: resolving a reference to a manifest (through the registry or the cache),
//! fetching its config, and starting the layer downloads that feed [`apply_layers`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OnceCell, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::blob::compression::{estimate_expanded_by_type, expanded_size_of};
use crate::blob::digest::Digest;
use crate::builder::{BuildOptions, ImageBuilder, Summary};
use crate::error::{Error, ErrorKind, Result};
use crate::layer::{apply_layers, LayerInput, LayerReport, NoProgress, Progress};
use crate::oci::{
    self, document_media_type, parse_document, select_platform, Config, Descriptor, Document,
    Platform,
};
use crate::source::oci::image_layers;

use super::auth::{AuthEnv, Credentials, FoundCredentials};
use super::cache::Cache;
use super::download::{download, DownloadProgress, Slot};
use super::reference::ImageReference;
use super::transport::{Session, TransportOptions};

/// What to pull and how.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PullOptions {
    /// The platform to pick from an image index (default: the host's, [`Platform::host`]).
    pub platform: Platform,
    /// The cache directory; the default is `$XDG_CACHE_HOME/oci2ext4` or `~/.cache/oci2ext4`.
    pub cache_dir: Option<PathBuf>,
    /// Use only the cache: no network at all.
    pub offline: bool,
    /// Credentials to use; `None` looks them up where Docker, Podman and crane keep them.
    pub credentials: Option<Credentials>,
    /// Where credentials are looked up; `None` reads the process environment.
    pub auth_env: Option<AuthEnv>,
    /// How registries are reached.
    pub transport: TransportOptions,
    /// How many blobs download at once (at least 1).
    pub concurrency: usize,
    /// A flag that, once set, makes readers waiting on downloads give up.
    pub cancel: Option<Arc<AtomicBool>>,
    /// The largest layer blob a descriptor may declare (the image's maximum size: a layer
    /// declared larger is refused before its download).
    pub max_blob_size: u64,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            cache_dir: None,
            offline: false,
            credentials: None,
            auth_env: None,
            transport: TransportOptions::default(),
            concurrency: 3,
            cancel: None,
            max_blob_size: u64::MAX,
        }
    }
}

/// Pulls images into a cache and hands their layers over as streams.
pub struct Puller {
    options: PullOptions,
    cache: Arc<Cache>,
}

/// A layer's download, to watch its progress.
#[derive(Clone)]
pub struct LayerDownload(Arc<Slot>);

impl LayerDownload {
    /// How far the layer's blob has come.
    pub fn progress(&self) -> DownloadProgress {
        self.0.progress()
    }
}

/// What a pull fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullStats {
    /// Blobs (layers and config) downloaded.
    pub blobs_downloaded: usize,
    /// Bytes of blobs downloaded.
    pub bytes_downloaded: u64,
    /// Blobs (layers and config) found in the cache.
    pub blobs_cached: usize,
}

#[derive(Default)]
struct Counters {
    downloaded: AtomicUsize,
    bytes: AtomicU64,
    cached: AtomicUsize,
}

/// An image resolved to its layers, whose downloads are under way.
#[non_exhaustive]
pub struct PulledImage {
    /// The reference, fully qualified.
    pub reference: ImageReference,
    /// The digest of the image manifest (for the platform chosen).
    pub manifest_digest: String,
    /// The digest of the index the manifest was chosen from, if any.
    pub index_digest: Option<String>,
    /// The platform the config states.
    pub platform: Platform,
    layers: Vec<LayerInput>,
    /// Estimated bytes of uncompressed tar in the layers.
    tar_bytes: u64,
    downloads: Vec<LayerDownload>,
    slots: Vec<Arc<Slot>>,
    cache: Arc<Cache>,
    counters: Arc<Counters>,
    driver: Option<JoinHandle<Result<()>>>,
}

/// What [`pull`] made.
#[derive(Debug)]
#[non_exhaustive]
pub struct PullSummary {
    /// The reference, fully qualified.
    pub reference: ImageReference,
    /// The digest of the image manifest.
    pub manifest_digest: String,
    /// The image written.
    pub image: Summary,
    /// One report per layer.
    pub layers: Vec<LayerReport>,
    /// What was downloaded.
    pub stats: PullStats,
}

fn not_cached(what: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "{what} is not in the cache; pull it once without --offline"
    ))
}

impl Puller {
    /// Opens the cache (making it if needed).
    pub fn new(options: PullOptions) -> Result<Self> {
        let dir = match &options.cache_dir {
            Some(d) => d.clone(),
            None => Cache::default_dir()?,
        };
        let cache = Arc::new(Cache::open(&dir)?);
        Ok(Puller { options, cache })
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Resolves `reference` to an image's layers, from the registry or the cache, and starts
    /// downloading the layers the cache lacks on the current tokio runtime (which must keep
    /// running while the layers are read). The layers are read with blocking I/O: apply them
    /// outside the runtime's threads (a thread of your own, or `spawn_blocking`).
    pub async fn resolve(&self, reference: &str) -> Result<PulledImage> {
        let r = ImageReference::parse(reference)?;
        self.resolve_reference(&r)
            .await
            .map_err(|e| e.with_source(&r))
    }

    async fn resolve_reference(&self, r: &ImageReference) -> Result<PulledImage> {
        let counters = Arc::new(Counters::default());
        let ctx = Context {
            options: &self.options,
            reference: r,
            cache: &self.cache,
            session: OnceCell::new(),
            counters: &counters,
        };
        // The top: a manifest or an index.
        let (mut top, top_data) = ctx.top().await?;
        let mut doc = parse_document(&top.media_type, &top_data)?;
        top.media_type = document_media_type(&doc).to_string();
        top.size = top_data.len() as u64;
        let mut desc = top.clone();
        let mut index_digest = None;
        let mut depth = 0;
        let manifest = loop {
            match doc {
                Document::Manifest(m) => break m,
                Document::Index(index) => {
                    depth += 1;
                    if depth > 4 {
                        return Err(Error::corrupt("image indexes nested more than four deep"));
                    }
                    index_digest.get_or_insert_with(|| desc.digest.clone());
                    let child = select_platform(&index, &self.options.platform)?.clone();
                    let data = ctx.manifest_by_digest(&child).await?;
                    doc = parse_document(&child.media_type, &data)?;
                    desc = child;
                }
            }
        };
        let config_data = ctx.config(&manifest.config).await?;
        let config: Config = oci::parse_json("image config", &config_data)?;

        // One slot per distinct blob; those not cached are downloaded in manifest order.
        let mut slots: HashMap<Digest, Arc<Slot>> = HashMap::new();
        let mut order: Vec<Arc<Slot>> = Vec::new();
        let mut downloads = Vec::new();
        let mut missing = None;
        let mut tar_bytes = 0u64;
        let layers = image_layers(&manifest, &config, |d| {
            let digest = Digest::parse(&d.digest)?;
            // No layer is empty (an empty tar has 1,024 bytes); a size of 0 would leave the
            // download unbounded, and one beyond the image's limit would not fit.
            if d.size == 0 {
                return Err(Error::corrupt(format!(
                    "the manifest declares layer {} with a size of 0",
                    d.digest
                )));
            }
            if d.size > self.options.max_blob_size {
                return Err(Error::limit(format!(
                    "the manifest declares layer {} of {} bytes, more than the maximum image \
                     size of {} bytes",
                    d.digest, d.size, self.options.max_blob_size
                )));
            }

            let slot = slots
                .entry(digest)
                .or_insert_with(|| {
                    let cached = self.cache.has_blob(&digest, d.size);
                    let slot = Slot::new(
                        digest,
                        d.size,
                        self.cache.blob_path(&digest),
                        cached,
                        self.options.cancel.clone(),
                    );
                    if cached {
                        counters.cached.fetch_add(1, Ordering::Relaxed);
                    } else if missing.is_none() {
                        missing = Some(d.digest.clone());
                    }
                    order.push(slot.clone());
                    slot
                })
                .clone();
            downloads.push(LayerDownload(slot.clone()));
            // A cached blob states its size in its header or trailer; others are estimated.
            let expanded_size = if slot.cached() {
                expanded_size_of(&self.cache.blob_path(&digest))
            } else {
                None
            };
            tar_bytes = tar_bytes.saturating_add(
                expanded_size.unwrap_or_else(|| estimate_expanded_by_type(&d.media_type, d.size)),
            );
            let opener = slot.clone();
            let mut input = LayerInput::from_opener(String::new(), Arc::new(move || opener.open()))
                .with_blob_digest(digest)
                .with_size(d.size)
                // A download checks its digest before its stream ends; a cached blob is hashed here.
                .with_blob_verified(!slot.cached());
            input.expanded_size = expanded_size;
            Ok(input)
        })?;
        if self.options.offline {
            if let Some(m) = missing {
                return Err(not_cached(format!("layer {m}")));
            }
        }
        let to_fetch: Vec<Arc<Slot>> = order.iter().filter(|s| !s.cached()).cloned().collect();
        let driver = if self.options.offline {
            None
        } else {
            let session = if to_fetch.is_empty() {
                ctx.session.get().cloned()
            } else {
                Some(ctx.session().await?)
            };
            Some(tokio::spawn(drive(
                session,
                self.cache.clone(),
                to_fetch,
                counters.clone(),
                self.options.clone(),
                r.to_string(),
                top,
            )))
        };
        Ok(PulledImage {
            reference: r.clone(),
            manifest_digest: desc.digest,
            index_digest,
            platform: Platform {
                os: config.os,
                architecture: config.architecture,
                variant: config_variant(&config_data),
            },
            layers,
            tar_bytes,
            downloads,
            slots: order,
            cache: self.cache.clone(),
            counters,
            driver,
        })
    }
}

/// The `variant` a config states, if any (the crate's `Config` does not keep it).
fn config_variant(data: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            v.get("variant")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
}

/// Downloads the blobs, a few at a time, in order; then records the reference in the cache's
/// `index.json`.
async fn drive(
    session: Option<Arc<Session>>,
    cache: Arc<Cache>,
    slots: Vec<Arc<Slot>>,
    counters: Arc<Counters>,
    options: PullOptions,
    name: String,
    top: Descriptor,
) -> Result<()> {
    // Whatever ends this task (an error, or the pull being dropped), no reader waits for a
    // download that will not happen.
    let _abandon = Abandon(slots.clone());
    let semaphore = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut set = JoinSet::new();
    let mut first_error = None;
    for slot in slots {
        // After a failure, start nothing new: the pull fails at that layer, and the layers
        // before it (which are downloading) still get there.
        if first_error.is_some() {
            break;
        }
        let Some(session) = session.clone() else {
            return Err(Error::new(ErrorKind::Registry, "no registry session"));
        };
        let Ok(permit) = semaphore.clone().acquire_owned().await else {
            break;
        };
        let cache = cache.clone();
        let counters = counters.clone();
        let (retries, timeout) = (options.transport.retries, options.transport.layer_timeout);
        set.spawn(async move {
            let result = download(session, cache, slot, retries, timeout).await;
            if let Ok(n) = &result {
                counters.downloaded.fetch_add(1, Ordering::Relaxed);
                counters.bytes.fetch_add(*n, Ordering::Relaxed);
            }
            drop(permit);
            result
        });
        // Collect what has finished meanwhile, to notice a failure.
        while let Some(done) = set.try_join_next() {
            if let Err(e) = flatten(done) {
                first_error.get_or_insert(e);
            }
        }
    }
    while let Some(done) = set.join_next().await {
        if let Err(e) = flatten(done) {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    tokio::task::spawn_blocking(move || cache.record(&name, &top))
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("recording the image failed: {e}")))?
}

/// Fails the downloads of its slots that have not ended when it is dropped.
struct Abandon(Vec<Arc<Slot>>);

impl Drop for Abandon {
    fn drop(&mut self) {
        for s in &self.0 {
            s.abandon("not downloaded: the pull stopped before this blob's turn");
        }
    }
}

fn flatten(r: std::result::Result<Result<u64>, tokio::task::JoinError>) -> Result<u64> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => Err(Error::new(ErrorKind::Cancelled, "download cancelled")),
        Err(e) => Err(Error::new(
            ErrorKind::Registry,
            format!("a download failed: {e}"),
        )),
    }
}

/// What resolving one reference needs.
struct Context<'a> {
    options: &'a PullOptions,
    reference: &'a ImageReference,
    cache: &'a Cache,
    session: OnceCell<Arc<Session>>,
    counters: &'a Counters,
}

impl Context<'_> {
    /// The registry session, connected on first use.
    async fn session(&self) -> Result<Arc<Session>> {
        if self.options.offline {
            return Err(Error::invalid("--offline: the registry may not be asked"));
        }
        self.session
            .get_or_try_init(|| async {
                let credentials = match &self.options.credentials {
                    Some(c) => FoundCredentials {
                        credentials: c.clone(),
                        origin: Some("--username/--password-stdin".into()),
                    },
                    None => {
                        let env = self
                            .options
                            .auth_env
                            .clone()
                            .unwrap_or_else(AuthEnv::from_process);
                        let registry = self.reference.registry().to_string();
                        tokio::task::spawn_blocking(move || env.lookup(&registry))
                            .await
                            .map_err(|e| {
                                Error::new(ErrorKind::Io, format!("credential lookup failed: {e}"))
                            })??
                    }
                };
                // Where they came from, never what they are.
                tracing::info!(
                    registry = %self.reference.registry(),
                    credentials = credentials.origin.as_deref().unwrap_or("none (anonymous)"),
                    "credentials"
                );
                Session::connect(self.reference, &self.options.transport, credentials)
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The descriptor and bytes the reference names.
    async fn top(&self) -> Result<(Descriptor, Vec<u8>)> {
        let r = self.reference;
        if let Some(d) = r.digest() {
            let desc = Descriptor::of_digest(d);
            if let Some(data) = self.cache.read_document(&desc)? {
                return Ok((desc, data));
            }
            if self.options.offline {
                return Err(not_cached(format!("manifest {d}")));
            }
            let data = self.session().await?.manifest(r).await?;
            self.keep(d, &data, "manifest")?;
            return Ok((desc, data));
        }
        if self.options.offline {
            let desc = self
                .cache
                .lookup(&r.to_string())?
                .ok_or_else(|| not_cached("the image"))?;
            let data = self
                .cache
                .read_document(&desc)?
                .ok_or_else(|| not_cached(format!("manifest {}", desc.digest)))?;
            return Ok((desc, data));
        }
        let data = self.session().await?.manifest(r).await?;
        let digest = Digest::of(&data);
        self.cache.store_document(&digest, &data)?;
        Ok((Descriptor::of_digest(digest.to_string()), data))
    }

    /// Checks fetched bytes against the digest asked for, and caches them.
    fn keep(&self, digest: &str, data: &[u8], what: &str) -> Result<()> {
        let want = Digest::parse(digest)?;
        let got = Digest::of(data);
        if got != want {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!("{what} digest mismatch: asked for {want}, the registry sent {got}"),
            ));
        }
        self.cache.store_document(&want, data)
    }

    /// A manifest an index points to.
    async fn manifest_by_digest(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if let Some(data) = self.cache.read_document(desc)? {
            return Ok(data);
        }
        if self.options.offline {
            return Err(not_cached(format!("manifest {}", desc.digest)));
        }
        let r = self.reference.at_digest(&desc.digest);
        let data = self.session().await?.manifest(&r).await?;
        self.keep(&desc.digest, &data, "manifest")?;
        Ok(data)
    }

    /// The image config.
    async fn config(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if let Some(data) = self.cache.read_document(desc)? {
            self.counters.cached.fetch_add(1, Ordering::Relaxed);
            return Ok(data);
        }
        if self.options.offline {
            return Err(not_cached(format!("config {}", desc.digest)));
        }
        // A config is never empty, and is read whole: its declared size is checked before it
        // is asked for, and no more than that is read.
        if desc.size == 0 {
            return Err(Error::corrupt(format!(
                "the manifest declares config {} with a size of 0",
                desc.digest
            )));
        }
        if desc.size > oci::MAX_DOCUMENT {
            return Err(Error::limit(format!(
                "the manifest declares config {} of {} bytes, more than the {} bytes a config \
                 may have",
                desc.digest,
                desc.size,
                oci::MAX_DOCUMENT
            )));
        }
        let data = self
            .session()
            .await?
            .small_blob(&desc.digest, desc.size)
            .await?;
        self.keep(&desc.digest, &data, "config")?;
        self.counters.downloaded.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }
}

impl PulledImage {
    /// An estimate of the bytes of uncompressed tar in the layers, for choosing a block size
    /// before anything is downloaded: cached blobs are read for their stated size, the others
    /// estimated from their sizes and media types (a compressed layer at three times its size,
    /// a plain one at its size).
    pub fn estimated_tar_bytes(&self) -> u64 {
        self.tar_bytes
    }

    /// Takes the layers to apply, lowest first (once; later calls get none). Their readers block
    /// until the bytes they need have arrived.
    pub fn take_layers(&mut self) -> Vec<LayerInput> {
        std::mem::take(&mut self.layers)
    }

    /// One download per layer, in the order of the layers (a blob used by two layers appears
    /// twice).
    pub fn downloads(&self) -> &[LayerDownload] {
        &self.downloads
    }

    /// Call with an error from applying the layers: a cached blob that fails its digest check
    /// is removed from the cache (so that the next pull fetches it again), and the error says
    /// so. The error gets the reference as its source.
    pub fn explain(&self, err: Error) -> Error {
        let err = err.with_source(&self.reference);
        if err.kind() != ErrorKind::DigestMismatch {
            return err;
        }
        let evicted: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.cached() && self.cache.evict_if_corrupt(s.digest()))
            .map(|s| s.digest().to_string())
            .collect();
        if evicted.is_empty() {
            return err;
        }
        let message = format!(
            "{} (the cached blob {} was damaged and is removed from the cache; pull again)",
            err.message(),
            evicted.join(", ")
        );
        let mut e = Error::new(err.kind(), message).with_source(&self.reference);
        if let Some(l) = err.layer() {
            e = e.with_layer(l);
        }
        e
    }

    /// Waits for the downloads to end and the cache to record the reference; returns what was
    /// fetched.
    pub async fn finish(mut self) -> Result<PullStats> {
        if let Some(driver) = self.driver.take() {
            driver
                .await
                .map_err(|e| Error::new(ErrorKind::Registry, format!("the downloads failed: {e}")))?
                .map_err(|e| e.with_source(&self.reference))?;
        }
        Ok(PullStats {
            blobs_downloaded: self.counters.downloaded.load(Ordering::Relaxed),
            bytes_downloaded: self.counters.bytes.load(Ordering::Relaxed),
            blobs_cached: self.counters.cached.load(Ordering::Relaxed),
        })
    }
}

impl Drop for PulledImage {
    fn drop(&mut self) {
        // Stops the downloads; their temporary files go with them.
        if let Some(d) = self.driver.take() {
            d.abort();
        }
    }
}

/// Pulls `reference` and writes it as an ext4 image at `output`: the whole of `oci2ext4 pull`
/// as one call, on a tokio runtime. The image is written on a blocking thread while the layers
/// download.
pub async fn pull(
    reference: &str,
    output: impl AsRef<Path>,
    build: BuildOptions,
    options: PullOptions,
    progress: Option<Box<dyn Progress + Send>>,
) -> Result<PullSummary> {
    let puller = Puller::new(options)?;
    let mut image = puller.resolve(reference).await?;
    let layers = image.take_layers();
    let output = output.as_ref().to_path_buf();
    let built = tokio::task::spawn_blocking(move || -> Result<(Summary, Vec<LayerReport>)> {
        let mut progress = progress.unwrap_or_else(|| Box::new(NoProgress));
        let mut builder = ImageBuilder::create(&output, build)?;
        let reports = apply_layers(&mut builder, layers, progress.as_mut())?;
        Ok((builder.finish()?, reports))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Io, format!("writing the image failed: {e}")))?;
    let (summary, layers) = built.map_err(|e| image.explain(e))?;
    let reference = image.reference.clone();
    let manifest_digest = image.manifest_digest.clone();
    let stats = image.finish().await?;
    Ok(PullSummary {
        reference,
        manifest_digest,
        image: summary,
        layers,
        stats,
    })
}

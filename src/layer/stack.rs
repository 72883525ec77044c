//! Applying layers in order, each streamed, decompressed and verified against its digests.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{apply_layer, apply_layer_overlay, in_place, LayerStats, OverlayXattr};
use crate::blob::compression::Compression;
use crate::blob::digest::{verify, Digest, HashingReader};
use crate::blob::stream::{self, Hashing, Opener};
use crate::builder::ImageBuilder;
use crate::error::{Error, ErrorKind, Result};

/// One layer to apply: a name for messages, a way to open its blob, and what is known of it.
///
/// Made with [`LayerInput::new`] (or [`crate::source::file_layer`] for a file), then the
/// `with_*` methods for digests to check and sizes known:
///
/// ```
/// use oci2ext4::layer::LayerInput;
/// use std::sync::Arc;
///
/// let tar: Arc<[u8]> = Arc::from(&[0u8; 1024][..]); // an empty tar: two zero blocks
/// let layer = LayerInput::new("empty", move || Ok(std::io::Cursor::new(tar.clone())))
///     .with_size(1024)
///     .with_report_digests(true);
/// assert_eq!(layer.size, Some(1024));
/// ```
#[non_exhaustive]
pub struct LayerInput {
    /// A name for messages: the file, or the layer's position and digest.
    pub name: String,
    /// Opens the blob (compressed or not); called on the layer's reading thread.
    pub open: Opener,
    /// The blob's digest, checked when given.
    pub blob_digest: Option<Digest>,
    /// The digest of the uncompressed tar (`diff_id`), checked when given.
    pub diff_id: Option<Digest>,
    /// The blob's size, when known (for progress).
    pub size: Option<u64>,
    /// The size of the uncompressed tar, when the source could read it cheaply (a plain tar's
    /// size, a gzip trailer, a zstd frame header); used only to choose a block size.
    pub expanded_size: Option<u64>,
    /// Compute both digests even when none is given, to report them.
    pub report_digests: bool,
    /// The stream `open` returns checks `blob_digest` itself and fails instead of ending when
    /// the bytes do not match (a blob downloading into the cache), so the blob is not hashed a
    /// second time here; the report gives `blob_digest` as checked.
    pub blob_verified: bool,
    /// The blob as a regular file, when it is one. When no digest is to be computed and the
    /// file holds an uncompressed tar, it is applied in place: file data is copied from it
    /// by the kernel instead of being read through the stream.
    pub file: Option<std::path::PathBuf>,
}

impl LayerInput {
    /// A layer named `name` whose blob (a tar, plain or compressed) `open` opens; `open` is
    /// called on the layer's reading thread, once, or again to report a digest mismatch. Nothing
    /// is checked and no size is known until the `with_*` methods say otherwise.
    pub fn new<R, F>(name: impl Into<String>, open: F) -> Self
    where
        R: Read + Send + 'static,
        F: Fn() -> Result<R> + Send + Sync + 'static,
    {
        Self::from_opener(
            name,
            Arc::new(move || Ok(Box::new(open()?) as Box<dyn Read + Send>)),
        )
    }

    /// A layer named `name` whose blob `open` opens, as [`LayerInput::new`].
    pub fn from_opener(name: impl Into<String>, open: Opener) -> Self {
        LayerInput {
            name: name.into(),
            open,
            blob_digest: None,
            diff_id: None,
            size: None,
            expanded_size: None,
            report_digests: false,
            blob_verified: false,
            file: None,
        }
    }

    /// Checks the blob against `digest`.
    pub fn with_blob_digest(mut self, digest: Digest) -> Self {
        self.blob_digest = Some(digest);
        self
    }

    /// Checks the uncompressed tar against `digest` (the config's `diff_id`).
    pub fn with_diff_id(mut self, digest: Digest) -> Self {
        self.diff_id = Some(digest);
        self
    }

    /// The blob's size in bytes, for progress.
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// The uncompressed tar's size in bytes, when known cheaply; used to choose a block size.
    pub fn with_expanded_size(mut self, size: u64) -> Self {
        self.expanded_size = Some(size);
        self
    }

    /// Computes both digests even when none is to be checked, to report them.
    pub fn with_report_digests(mut self, report: bool) -> Self {
        self.report_digests = report;
        self
    }

    /// Says that the stream `open` returns checks the blob digest itself (see
    /// [`LayerInput::blob_verified`]).
    pub fn with_blob_verified(mut self, verified: bool) -> Self {
        self.blob_verified = verified;
        self
    }

    /// The blob is the regular file `path` (see [`LayerInput::file`]).
    pub fn with_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }
}

/// What applying one layer found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LayerReport {
    /// The layer's name.
    pub name: String,
    /// The blob's digest as computed (when checked or asked for).
    pub blob_digest: Option<Digest>,
    /// Bytes of the blob.
    pub blob_size: u64,
    /// The `diff_id` as computed (when checked or asked for).
    pub diff_id: Option<Digest>,
    /// Bytes of the uncompressed tar.
    pub diff_size: u64,
    /// The compression found.
    pub compression: Compression,
    /// Entry counts.
    pub stats: LayerStats,
}

/// Hears how layers are getting on.
pub trait Progress {
    /// Layer `index` (from 0) starts; `size` is its blob size when known.
    fn layer_started(&mut self, _index: usize, _name: &str, _size: Option<u64>) {}
    /// `bytes` of layer `index`'s blob have been read.
    fn layer_progress(&mut self, _index: usize, _bytes: u64) {}
    /// Layer `index` is applied and verified.
    fn layer_finished(&mut self, _index: usize, _report: &LayerReport) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Counts the bytes read from a blob (shared with the progress reporter).
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reports progress every so many reads, and stops a stream that decompresses to more than
/// the limit (a decompression bomb).
struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a mut dyn Progress,
    index: usize,
    count: Arc<AtomicU64>,
    reads: u32,
    /// Uncompressed bytes still allowed, over all layers.
    budget: &'a mut u64,
}

impl<R: std::io::Read> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads = self.reads.wrapping_add(1);
        if self.reads.is_multiple_of(64) {
            self.progress
                .layer_progress(self.index, self.count.load(Ordering::Relaxed));
        }
        let n = self.inner.read(buf)?;
        *self.budget = self.budget.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(Error::limit(
                "the layers decompress to more than the maximum image size; stopping",
            ))
        })?;
        Ok(n)
    }
}

/// Hashes a whole blob again. Used only when a layer failed to parse: a blob that does not
/// match its digest is reported as such rather than as whatever the parser tripped over.
fn blob_matches(open: &Opener, expected: &Digest) -> bool {
    let Ok(raw) = open() else { return true };
    let mut r = HashingReader::new(raw, true);
    if let Err(e) = std::io::copy(&mut r, &mut std::io::sink()) {
        // A source that checks digests itself (a download) may say so; otherwise we cannot tell.
        return Error::from(e).kind() != ErrorKind::DigestMismatch;
    }
    r.finish().0 == *expected
}

/// Applies the layer in `file` in place when it is an uncompressed tar in a regular file;
/// `None` when it is not.
fn apply_in_place(
    builder: &mut ImageBuilder,
    file: Option<&std::path::Path>,
    name: &str,
) -> Result<Option<LayerReport>> {
    let mut run = || -> Result<Option<LayerReport>> {
        let Some(plain) = file.map(in_place::open_plain).transpose()?.flatten() else {
            return Ok(None);
        };
        let (stats, trailing) = in_place::apply_file(builder, plain)?;
        if trailing > 0 {
            builder.warn(format!(
                "{name}: {trailing} non-zero bytes after the end of the archive were not read"
            ));
        }
        let size = file
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(stats.tar_bytes, |m| m.len());
        Ok(Some(LayerReport {
            name: name.to_string(),
            blob_digest: None,
            blob_size: size,
            diff_id: None,
            diff_size: size,
            compression: Compression::None,
            stats,
        }))
    };
    run().map_err(|e| e.with_layer(name))
}

/// Applies `layers` to `builder` in order. Each layer's blob is read, hashed and decompressed
/// on threads of its own while its entries are applied here; the digests are checked once the
/// whole blob (trailing bytes included) has been read.
pub fn apply_layers(
    builder: &mut ImageBuilder,
    layers: Vec<LayerInput>,
    progress: &mut dyn Progress,
) -> Result<Vec<LayerReport>> {
    apply_layers_as(builder, layers, progress, None)
}

/// [`apply_layers`], with whiteouts kept in overlay form when `overlay` is given.
pub(crate) fn apply_layers_as(
    builder: &mut ImageBuilder,
    layers: Vec<LayerInput>,
    progress: &mut dyn Progress,
    overlay: Option<OverlayXattr>,
) -> Result<Vec<LayerReport>> {
    let mut reports = Vec::with_capacity(layers.len());
    let mut budget = builder.limits().max_size;
    for (index, layer) in layers.into_iter().enumerate() {
        let LayerInput {
            name,
            open,
            blob_digest,
            diff_id,
            size,
            report_digests,
            blob_verified,
            expanded_size: _,
            file,
        } = layer;
        let hashing = Hashing {
            blob: report_digests || (blob_digest.is_some() && !blob_verified),
            diff: report_digests || diff_id.is_some(),
        };
        progress.layer_started(index, &name, size);
        if !hashing.blob && !hashing.diff && overlay.is_none() {
            if let Some(report) = apply_in_place(builder, file.as_deref(), &name)? {
                progress.layer_progress(index, report.blob_size);
                progress.layer_finished(index, &report);
                reports.push(report);
                continue;
            }
        }
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let inner = open.clone();
        let counted: Opener = Arc::new(move || {
            let raw = inner()?;
            Ok(Box::new(CountingReader {
                inner: raw,
                count: counter.clone(),
            }) as Box<dyn std::io::Read + Send>)
        });
        let result = (|| -> Result<LayerReport> {
            let mut stream = stream::spawn(counted, hashing);
            let reader = ProgressReader {
                inner: &mut stream,
                progress: &mut *progress,
                index,
                count: count.clone(),
                reads: 0,
                budget: &mut budget,
            };
            let (stats, mut reader) = match overlay {
                None => apply_layer(builder, reader)?,
                Some(x) => apply_layer_overlay(builder, reader, x)?,
            };
            // What follows the end of the archive is read here, within the size limit, so a
            // stream of padding cannot decompress without bound.
            let mut trailing = 0u64;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                builder.check_cancel()?;
                let n = std::io::Read::read(&mut reader, &mut buf)?;
                if n == 0 {
                    break;
                }
                trailing += buf[..n].iter().filter(|&&b| b != 0).count() as u64;
            }
            drop(reader);
            let (digests, rest) = stream.finish()?;
            let trailing = trailing + rest;
            if trailing > 0 {
                builder.warn(format!(
                    "{name}: {trailing} non-zero bytes after the end of the archive were hashed but not read"
                ));
            }
            if let (Some(expected), Some(actual)) = (&blob_digest, &digests.blob) {
                verify("blob", expected, actual)?;
            }
            if let (Some(expected), Some(actual)) = (&diff_id, &digests.diff_id) {
                verify("diff_id", expected, actual)?;
            }
            Ok(LayerReport {
                name: name.clone(),
                blob_digest: digests.blob.or(blob_digest.filter(|_| blob_verified)),
                blob_size: digests.blob_size,
                diff_id: digests.diff_id,
                diff_size: digests.diff_size,
                compression: digests.compression,
                stats,
            })
        })();
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let e = match &blob_digest {
                    Some(d) if e.kind() == ErrorKind::CorruptInput && !blob_matches(&open, d) => Error::new(
                        ErrorKind::DigestMismatch,
                        format!("blob digest mismatch: the blob is not {d} (reading it failed with: {e})"),
                    ),
                    _ => e,
                };
                return Err(e.with_layer(&name));
            }
        };
        progress.layer_progress(index, count.load(Ordering::Relaxed));
        progress.layer_finished(index, &report);
        reports.push(report);
    }
    Ok(reports)
}

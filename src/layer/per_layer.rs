//! One image per layer, in overlay form, for a guest that stacks them with overlayfs.
//!
//! Each layer is built alone, with no whiteout resolved against lower layers: a whiteout
//! `.wh.NAME` becomes a 0:0 character device NAME, an opaque marker gives its directory the
//! attribute `trusted.overlay.opaque="y"` (or `user.overlay.opaque`, for overlay mounts with
//! `userxattr`). The images are named by the layer's `diff_id` (`sha256-<hex>.ext4`); beside
//! each, `<file>.json` records the `diff_id` checked when it was made and the options it was
//! made with. A layer whose image is already there with the same `diff_id` and options is not
//! read again: its `diff_id` was checked against the stream when the image was made, and the
//! `diff_id` asked for now comes from the image's configuration, whose digest the source
//! checks. A layer whose `diff_id` the source does not give (a plain tar) is always read, and
//! its image named by the `diff_id` computed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::stack::apply_layers_as;
use super::{LayerInput, LayerReport, Progress};
use crate::builder::{BuildOptions, ImageBuilder, Summary};
use crate::error::{Error, Result};

/// The namespace of the overlayfs attributes written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlayXattr {
    /// `trusted.overlay.*`, read by overlayfs mounted as root (the default).
    #[default]
    Trusted,
    /// `user.overlay.*`, read by overlayfs mounted with `userxattr` (unprivileged mounts).
    User,
}

impl OverlayXattr {
    /// The attribute prefix: `trusted.overlay.` or `user.overlay.`.
    pub fn prefix(self) -> &'static str {
        match self {
            OverlayXattr::Trusted => "trusted.overlay.",
            OverlayXattr::User => "user.overlay.",
        }
    }

    /// The name of the opaque-directory attribute.
    pub fn opaque_name(self) -> String {
        format!("{}opaque", self.prefix())
    }

    /// `trusted` or `user`.
    pub fn name(self) -> &'static str {
        match self {
            OverlayXattr::Trusted => "trusted",
            OverlayXattr::User => "user",
        }
    }
}

/// How to build per-layer images.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PerLayerOptions {
    /// The directory the layer images go to (created when missing).
    pub dir: PathBuf,
    /// Where the manifest is written (a JSON file; usually in `dir`).
    pub manifest: PathBuf,
    /// Options of every layer image.
    pub build: BuildOptions,
    /// The namespace of the overlayfs attributes.
    pub xattr: OverlayXattr,
}

impl PerLayerOptions {
    /// Layer images in `dir`, their manifest at `manifest`, with default build options and
    /// `trusted.overlay.*` attributes.
    pub fn new(dir: impl Into<PathBuf>, manifest: impl Into<PathBuf>) -> Self {
        PerLayerOptions {
            dir: dir.into(),
            manifest: manifest.into(),
            build: BuildOptions::default(),
            xattr: OverlayXattr::default(),
        }
    }

    /// Builds every layer image with `build`.
    pub fn with_build(mut self, build: BuildOptions) -> Self {
        self.build = build;
        self
    }

    /// Writes overlayfs attributes in the `xattr` namespace.
    pub fn with_xattr(mut self, xattr: OverlayXattr) -> Self {
        self.xattr = xattr;
        self
    }
}

/// One layer's image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerLayerImage {
    /// The layer's `diff_id` (`sha256:<hex>`).
    pub diff_id: String,
    /// The image's file name in the directory.
    pub file: String,
    /// The dm-verity hash tree after the filesystem, when asked for.
    pub verity: Option<LayerVerity>,
    /// Size of the image file in bytes (the hash tree included).
    pub file_bytes: u64,
    /// Whether the image was there already and reused (the layer not applied).
    #[serde(skip)]
    pub reused: bool,
}

/// What opening a layer image's dm-verity hash tree takes (`veritysetup open IMAGE NAME IMAGE
/// ROOT_HASH --hash-offset=... --salt=... --data-blocks=...`, `--no-superblock` unless
/// `superblock`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerVerity {
    /// The root hash, in hex.
    pub root_hash: String,
    /// The salt, in hex.
    pub salt: String,
    /// Where the hash area starts (the superblock, with one), in bytes.
    pub hash_offset: u64,
    /// 4096-byte data blocks covered.
    pub data_blocks: u64,
    /// Whether veritysetup's superblock precedes the tree.
    pub superblock: bool,
}

/// What a per-layer build produced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PerLayerSummary {
    /// The layer images, base first.
    pub layers: Vec<PerLayerImage>,
    /// Reports of the layers applied (those not reused), in order.
    pub reports: Vec<LayerReport>,
    /// Summaries of the images made, in order (those not reused).
    pub built: Vec<Summary>,
    /// How many layers were reused from images already in the directory.
    pub reused: usize,
    /// Warnings of the layers applied, each prefixed with its layer's name.
    pub warnings: Vec<String>,
    /// Where the manifest was written.
    pub manifest: PathBuf,
    /// The overlayfs mount options for the layer images mounted at directories named like their
    /// files without `.ext4`: `lowerdir=top:...:base`, with `userxattr` for `user` attributes.
    pub mount_options: String,
}

/// What lies beside an image: the `diff_id` and options it was made with.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Sidecar {
    diff_id: String,
    options: String,
    image: PerLayerImage,
}

/// The manifest written into the directory.
#[derive(Serialize)]
struct Manifest<'a> {
    /// Layers, base first.
    layers: &'a [PerLayerImage],
    overlay_xattr: &'static str,
    mount_options: &'a str,
}

/// The options that make a layer image what it is, as text compared when reusing one.
fn fingerprint(opts: &BuildOptions, xattr: OverlayXattr) -> String {
    format!(
        "oci2ext4 {}; overlay {}; size {:?}; block {:?}; headroom {:?}; min {}; inodes {:?}; label {:?}; uuid {:?}; seed {:?}; journal {}; time {:?}; verity {:?}",
        env!("CARGO_PKG_VERSION"),
        xattr.name(),
        opts.size,
        opts.block_size,
        opts.headroom,
        opts.min_size,
        opts.inodes,
        opts.label,
        opts.uuid,
        opts.hash_seed,
        opts.journal,
        opts.time,
        opts.verity,
    )
}

fn file_name(diff_id: &crate::blob::digest::Digest) -> String {
    format!("sha256-{}.ext4", diff_id.hex())
}

fn sidecar_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(format!("{file}.json"))
}

/// The image made before for `diff_id` with these options, if it is there whole.
fn reusable(dir: &Path, diff_id: &str, file: &str, options: &str) -> Option<PerLayerImage> {
    let text = std::fs::read(sidecar_path(dir, file)).ok()?;
    let side: Sidecar = serde_json::from_slice(&text).ok()?;
    let len = std::fs::metadata(dir.join(file)).ok()?.len();
    (side.diff_id == diff_id
        && side.options == options
        && side.image.file == file
        && side.image.file_bytes == len)
        .then_some(side.image)
}

/// Writes `bytes` to `path` through a temporary file renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let run = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    run().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("cannot write {}", path.display()), e)
    })
}

/// Passes progress on with the layer's index in the whole list.
struct Offset<'a> {
    inner: &'a mut dyn Progress,
    index: usize,
}

impl Progress for Offset<'_> {
    fn layer_started(&mut self, _index: usize, name: &str, size: Option<u64>) {
        self.inner.layer_started(self.index, name, size);
    }
    fn layer_progress(&mut self, _index: usize, bytes: u64) {
        self.inner.layer_progress(self.index, bytes);
    }
    fn layer_finished(&mut self, _index: usize, report: &LayerReport) {
        self.inner.layer_finished(self.index, report);
    }
}

/// Builds one image per layer into `opts.dir`, reusing those already there for the same
/// `diff_id` and options, and writes the manifest. Each layer's blob and `diff_id` are checked
/// as when flattening; a layer that fails leaves the images of the layers before it (each
/// whole) and no manifest.
pub fn build_per_layer(
    layers: Vec<LayerInput>,
    opts: &PerLayerOptions,
    progress: &mut dyn Progress,
) -> Result<PerLayerSummary> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let options = fingerprint(&opts.build, opts.xattr);
    let mut images = Vec::with_capacity(layers.len());
    let mut reports = Vec::new();
    let mut built = Vec::new();
    let mut reused = 0;
    let mut warnings = Vec::new();
    for (index, mut layer) in layers.into_iter().enumerate() {
        if let Some(d) = &layer.diff_id {
            let file = file_name(d);
            if let Some(mut image) = reusable(dir, &d.to_string(), &file, &options) {
                image.reused = true;
                reused += 1;
                images.push(image);
                continue;
            }
        }
        // The name comes from the diff_id: computed when the source does not give it.
        layer.report_digests |= layer.diff_id.is_none();
        let name = layer.name.clone();
        let temp = dir.join(format!(".layer-{}-{index}.ext4", std::process::id()));
        let mut builder = ImageBuilder::create(&temp, opts.build.clone())?;
        let mut offset = Offset {
            inner: &mut *progress,
            index,
        };
        let report = apply_layers_as(&mut builder, vec![layer], &mut offset, Some(opts.xattr))?
            .pop()
            .ok_or_else(|| Error::corrupt("the layer gave no report").with_layer(&name))?;
        let diff_id = report.diff_id.ok_or_else(|| {
            Error::corrupt("the layer's diff_id was not computed").with_layer(&name)
        })?;
        let file = file_name(&diff_id);
        let path = dir.join(&file);
        // The record of an older image goes first: a stale one must never vouch for this file.
        let side = sidecar_path(dir, &file);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot remove {}", side.display()), e)),
        }
        warnings.extend(builder.warnings().iter().map(|w| format!("{name}: {w}")));
        let summary = builder.finish()?;
        std::fs::rename(&temp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            Error::io(format!("cannot move the image to {}", path.display()), e)
        })?;
        let file_bytes = std::fs::metadata(&path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
            .len();
        let image = PerLayerImage {
            diff_id: diff_id.to_string(),
            file,
            verity: summary.verity.as_ref().map(|v| LayerVerity {
                root_hash: v.root_hash.clone(),
                salt: v.salt.clone(),
                hash_offset: v.hash_offset,
                data_blocks: v.data_blocks,
                superblock: v.superblock,
            }),
            file_bytes,
            reused: false,
        };
        let record = Sidecar {
            diff_id: image.diff_id.clone(),
            options: options.clone(),
            image: image.clone(),
        };
        write_atomic(
            &side,
            &serde_json::to_vec_pretty(&record).unwrap_or_default(),
        )?;
        images.push(image);
        reports.push(report);
        built.push(summary);
    }
    let mount_options = mount_options(&images, opts.xattr);
    let manifest = Manifest {
        layers: &images,
        overlay_xattr: opts.xattr.name(),
        mount_options: &mount_options,
    };
    let mut text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    text.push(b'\n');
    write_atomic(&opts.manifest, &text)?;
    Ok(PerLayerSummary {
        layers: images,
        reports,
        built,
        reused,
        warnings,
        manifest: opts.manifest.clone(),
        mount_options,
    })
}

/// `lowerdir=top:...:base` for images mounted at their file names without `.ext4`.
fn mount_options(images: &[PerLayerImage], xattr: OverlayXattr) -> String {
    let lower: Vec<&str> = images
        .iter()
        .rev()
        .map(|i| i.file.strip_suffix(".ext4").unwrap_or(&i.file))
        .collect();
    let mut s = format!("lowerdir={}", lower.join(":"));
    if xattr == OverlayXattr::User {
        s.push_str(",userxattr");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(hex: char) -> PerLayerImage {
        PerLayerImage {
            diff_id: format!("sha256:{}", hex.to_string().repeat(64)),
            file: format!("sha256-{}.ext4", hex.to_string().repeat(64)),
            verity: None,
            file_bytes: 0,
            reused: false,
        }
    }

    #[test]
    fn lowerdir_lists_top_first() {
        let imgs = [image('a'), image('b')];
        let b = "b".repeat(64);
        let a = "a".repeat(64);
        assert_eq!(
            mount_options(&imgs, OverlayXattr::Trusted),
            format!("lowerdir=sha256-{b}:sha256-{a}")
        );
        assert!(mount_options(&imgs, OverlayXattr::User).ends_with(",userxattr"));
    }

    #[test]
    fn options_change_the_fingerprint() {
        let a = BuildOptions::default();
        let mut b = a.clone();
        b.journal = !a.journal;
        assert_ne!(
            fingerprint(&a, OverlayXattr::Trusted),
            fingerprint(&b, OverlayXattr::Trusted)
        );
        assert_ne!(
            fingerprint(&a, OverlayXattr::Trusted),
            fingerprint(&a, OverlayXattr::User)
        );
    }
}

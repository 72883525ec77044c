//! Where layers come from: OCI image layouts and archives, `docker save` archives, root
//! filesystem tars (files or streams), loose layer files and host directories; compressed or
//! not, with their digests checked. Tars are recognised by their content.

pub(crate) mod archive;
pub(crate) mod directory;
pub(crate) mod docker;
pub(crate) mod oci;
pub(crate) mod sniff;

pub use directory::add_tree;
pub use oci::{resolve, Image};

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

use crate::blob::compression;
use crate::error::{Error, Result};
use crate::layer::LayerInput;
use crate::oci::Platform;

/// What to build from, as [`plan`] decides it.
///
/// ```no_run
/// use oci2ext4::layer::{apply_layers, NoProgress};
/// use oci2ext4::source::{self, Plan, PlanOptions};
/// use oci2ext4::{BuildOptions, ImageBuilder};
///
/// # fn main() -> oci2ext4::Result<()> {
/// let plan = source::plan(Some("alpine.tar:3.20"), &[], &PlanOptions::default())?;
/// let mut image = ImageBuilder::create("rootfs.ext4", BuildOptions::default())?;
/// match plan {
///     Plan::Layers { layers, .. } => {
///         apply_layers(&mut image, layers, &mut NoProgress)?;
///     }
///     Plan::Directory { path, owner, .. } => source::add_tree(&mut image, &path, owner)?,
///     _ => unreachable!("no other plans yet"),
/// }
/// image.finish()?;
/// # Ok(()) }
/// ```
#[non_exhaustive]
pub enum Plan {
    /// Layers to apply in order.
    Layers {
        /// The layers.
        layers: Vec<LayerInput>,
        /// The image's digest (manifest, or config for `docker save` archives), when known.
        image_digest: Option<String>,
        /// How the source was read.
        origin: Origin,
    },
    /// A host directory.
    Directory {
        /// The directory.
        path: PathBuf,
        /// Owner to force on every entry.
        owner: Option<(u32, u32)>,
        /// How the source was read.
        origin: Origin,
    },
}

/// A layer read from a file (any compression).
pub fn file_layer(path: &Path) -> LayerInput {
    let p = path.to_path_buf();
    // Only a regular file has a size; a pipe (`/dev/stdin`) is read once, as it comes.
    let size = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let mut input = LayerInput::new(path.display().to_string(), move || {
        File::open(&p).map_err(|e| Error::io(format!("cannot open {}", p.display()), e))
    });
    input.size = size;
    input.expanded_size = compression::expanded_size_of(path);
    input.file = size.is_some().then(|| path.to_path_buf());
    input
}

/// An estimate of the bytes of uncompressed tar `layers` hold, for choosing a block size before
/// any layer is read: each layer's `expanded_size`, or else its blob size times
/// the typical compression ratio (3); a layer of unknown size (a pipe) counts nothing.
pub fn estimate_tar_bytes(layers: &[LayerInput]) -> u64 {
    layers
        .iter()
        .map(|l| {
            l.expanded_size.unwrap_or_else(|| {
                l.size
                    .unwrap_or(0)
                    .saturating_mul(compression::TYPICAL_RATIO)
            })
        })
        .fold(0u64, u64::saturating_add)
}

/// Parses `UID:GID`.
pub fn parse_owner(s: &str) -> Result<(u32, u32)> {
    let (u, g) = s
        .split_once(':')
        .ok_or_else(|| Error::invalid(format!("owner {s:?} is not UID:GID")))?;
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| Error::invalid(format!("owner {s:?} is not UID:GID")))
    };
    Ok((num(u)?, num(g)?))
}

/// The files and directories a build of `source` or `layers` (as [`plan`] takes them) reads:
/// what an output path must not overwrite.
pub fn input_paths(source: Option<&str>, layers: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths = layers.to_vec();
    if let Some(source) = source {
        let path = if Path::new(source).exists() {
            Some(source)
        } else {
            split_reference(source, |p| Path::new(p).exists()).map(|(p, _)| p)
        };
        paths.extend(path.map(PathBuf::from));
    }
    paths
}

/// Splits `PATH:REF` or `PATH@sha256:…` into an existing path and a reference. A reference may
/// itself hold colons (`archive.tar:alpine:3.20`), so the first split whose path exists wins.
fn split_reference(source: &str, exists: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
    if let Some(at) = source.find("@sha256:") {
        return Some((&source[..at], &source[at + 1..])).filter(|(p, _)| exists(p));
    }
    source
        .match_indices(':')
        .map(|(i, _)| (&source[..i], &source[i + 1..]))
        .find(|(path, r)| !path.is_empty() && !r.is_empty() && !r.contains('/') && exists(path))
}

/// How a source was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reading {
    /// An OCI image layout directory.
    OciLayout,
    /// A tar of an OCI image layout.
    OciArchive,
    /// A `docker save` or docker-archive tar (`manifest.json`).
    DockerArchive,
    /// A root filesystem tar.
    RootfsTar,
    /// A host directory.
    Directory,
    /// Layer files given one by one.
    Layers,
}

impl Reading {
    /// A short name, as the JSON summary gives it: `oci-layout`, `oci-archive`,
    /// `docker-archive`, `rootfs-tar`, `directory`, `layers`.
    pub fn name(self) -> &'static str {
        match self {
            Reading::OciLayout => "oci-layout",
            Reading::OciArchive => "oci-archive",
            Reading::DockerArchive => "docker-archive",
            Reading::RootfsTar => "rootfs-tar",
            Reading::Directory => "directory",
            Reading::Layers => "layers",
        }
    }

    /// Words for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Reading::OciLayout => "OCI image layout",
            Reading::OciArchive => "OCI archive",
            Reading::DockerArchive => "docker archive",
            Reading::RootfsTar => "root filesystem tar",
            Reading::Directory => "directory",
            Reading::Layers => "layer files",
        }
    }
}

/// What a plan says of its source.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Origin {
    /// How the source was read.
    pub reading: Reading,
    /// The image's platform (picked from an index, or else its config's), for images.
    pub platform: Option<Platform>,
    /// What the user should know about the reading: a tar that could have been read another
    /// way, an image for another platform than the one asked for, a spooled stream.
    pub notes: Vec<String>,
}

impl Origin {
    fn new(reading: Reading) -> Self {
        Origin {
            reading,
            platform: None,
            notes: Vec::new(),
        }
    }
}

/// How to plan: what to pick from an image, and where temporary files may go. The default
/// picks the host's platform and spools to the current directory.
///
/// ```
/// use oci2ext4::oci::Platform;
/// use oci2ext4::source::PlanOptions;
///
/// let options = PlanOptions::default()
///     .with_platform(Platform::parse("linux/arm64")?)
///     .with_spool_dir("/var/tmp");
/// # Ok::<(), oci2ext4::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PlanOptions {
    /// The platform to pick from an image index; `None` for the host's
    /// ([`Platform::host`]).
    pub platform: Option<Platform>,
    /// With a directory source: the owner to force on every entry.
    pub owner: Option<(u32, u32)>,
    /// Where an image archive that arrives as a stream (standard input, a pipe, a compressed
    /// file) is spooled: the output's directory. The current directory when empty.
    pub spool_dir: PathBuf,
    /// Stops spooling when set (Ctrl-C).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl PlanOptions {
    /// Picks `platform` from an image index instead of the host's.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Forces `uid:gid` on every entry of a directory source.
    pub fn with_owner(mut self, uid: u32, gid: u32) -> Self {
        self.owner = Some((uid, gid));
        self
    }

    /// Spools image archives that arrive as streams into `dir`.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = dir.into();
        self
    }

    /// Stops spooling when `flag` is set.
    pub fn with_cancel(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }
}

/// The source name that means standard input.
pub const STDIN: &str = "-";

/// Decides how to read `source`, or the `layers` given instead.
///
/// A tar is recognised by its members, wherever they are: `manifest.json` at its top makes
/// it a docker archive, `oci-layout` and `index.json` an OCI archive (a tar that has both, as
/// Docker 25 and later write, is read by `manifest.json`, or by `index.json` for a
/// `@sha256:` reference); anything else is a root filesystem tar. A regular file is indexed
/// in place. A compressed file is decompressed as far as its first member that no image
/// archive has: then it is a root filesystem tar, read again from its start; else it is an
/// image archive, decompressed to a temporary file in [`PlanOptions::spool_dir`]. Standard
/// input (`-`) and other streams are read once: a root filesystem tar is built from the bytes
/// read so far followed by the rest of the stream, an image archive is spooled whole.
pub fn plan(source: Option<&str>, layers: &[PathBuf], options: &PlanOptions) -> Result<Plan> {
    if !layers.is_empty() {
        if source.is_some() {
            return Err(Error::invalid(
                "give either a SOURCE or --layer files, not both",
            ));
        }
        return Ok(Plan::Layers {
            layers: layers.iter().map(|p| file_layer(p)).collect(),
            image_digest: None,
            origin: Origin::new(Reading::Layers),
        });
    }
    let source =
        source.ok_or_else(|| Error::invalid("nothing to build: give a SOURCE or --layer files"))?;
    let wanted = options.platform.clone().unwrap_or_else(Platform::host);
    if source == STDIN {
        use std::os::fd::AsFd;
        let stdin = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("cannot read standard input", e))?;
        return from_stream(File::from(stdin), "standard input", None, options, &wanted)
            .map_err(|e| e.with_source("standard input"));
    }
    let (path, reference) = if Path::new(source).exists() {
        (Path::new(source), None)
    } else {
        match split_reference(source, |p| Path::new(p).exists()) {
            Some((p, r)) => (Path::new(p), Some(r)),
            None => {
                return Err(Error::invalid(format!(
                    "{source}: no such file or directory"
                )))
            }
        }
    };
    let with_source = |e: Error| e.with_source(path.display());
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
        .map_err(with_source)?;
    if meta.is_dir() {
        if path.join("oci-layout").exists() {
            let image = oci::Layout::open(path)
                .and_then(|l| l.image(reference, &wanted))
                .map_err(with_source)?;
            return Ok(image_plan(image, Reading::OciLayout, &wanted, options));
        }
        if reference.is_some() {
            return Err(Error::invalid(format!(
                "{} is a plain directory; it has no tags",
                path.display()
            )));
        }
        return Ok(Plan::Directory {
            path: path.to_path_buf(),
            owner: options.owner,
            origin: Origin::new(Reading::Directory),
        });
    }
    let file =
        File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e));
    let file = file.map_err(with_source)?;
    if !meta.is_file() {
        // A pipe, FIFO or process substitution: read once, as it comes.
        let name = path.display().to_string();
        return from_stream(file, &name, reference, options, &wanted).map_err(with_source);
    }
    from_file(path, file, reference, options, &wanted).map_err(with_source)
}

/// A regular file: a plain tar is indexed in place; a compressed one is sniffed, and spooled
/// if it is an image archive.
fn from_file(
    path: &Path,
    file: File,
    reference: Option<&str>,
    options: &PlanOptions,
    wanted: &Platform,
) -> Result<Plan> {
    let mut head = BufReader::with_capacity(64, file);
    let compression = compression::detect(&mut head)?;
    if compression == compression::Compression::None {
        let index = match archive::TarIndex::open(path, None) {
            Ok(index) => index,
            // A tar that cannot be indexed is read as a root filesystem tar, whose build then
            // stops where the damage is and names the entry there.
            Err(e) if e.kind() != crate::ErrorKind::Io => {
                return rootfs_plan(vec![file_layer(path)], reference)
            }
            Err(e) => return Err(e),
        };
        return from_index(index, reference, options, wanted, || {
            Ok(vec![file_layer(path)])
        });
    }
    // The sniffing reads the file from its first byte again.
    let mut file = head.into_inner();
    file.rewind()
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let raw = Box::new(file);
    match sniff::sniff(raw, true, &spool_dir(options), options.cancel.as_deref())? {
        sniff::Sniffed::Rootfs { .. } => rootfs_plan(vec![file_layer(path)], reference),
        sniff::Sniffed::Archive { tar, .. } => spooled_plan(
            tar,
            reference,
            options,
            wanted,
            format!(
                "the {} archive was decompressed to a temporary file beside the output",
                compression.name()
            ),
        ),
    }
}

/// A stream read once: sniffed, replayed as a root filesystem tar or spooled as an archive.
fn from_stream(
    file: File,
    name: &str,
    reference: Option<&str>,
    options: &PlanOptions,
    wanted: &Platform,
) -> Result<Plan> {
    match sniff::sniff(
        Box::new(file),
        false,
        &spool_dir(options),
        options.cancel.as_deref(),
    )? {
        sniff::Sniffed::Rootfs { replay } => {
            let open = replay.ok_or_else(|| Error::invalid("a stream without its bytes"))?;
            rootfs_plan(vec![LayerInput::from_opener(name, open)], reference)
        }
        sniff::Sniffed::Archive { tar, .. } => spooled_plan(
            tar,
            reference,
            options,
            wanted,
            "the stream was spooled to a temporary file beside the output".into(),
        ),
    }
}

/// The plan of an image archive spooled to the temporary file `tar` (removed when the plan's
/// layers are dropped), with `note` said of it.
fn spooled_plan(
    tar: tempfile::TempPath,
    reference: Option<&str>,
    options: &PlanOptions,
    wanted: &Platform,
    note: String,
) -> Result<Plan> {
    let spooled = tar.to_path_buf();
    let index = archive::TarIndex::open(&spooled, Some(tar))?;
    let mut plan = from_index(index, reference, options, wanted, || {
        Err(Error::corrupt(
            "the spooled archive no longer reads as the image it was",
        ))
    })?;
    plan.origin_mut().notes.push(note);
    Ok(plan)
}

fn spool_dir(options: &PlanOptions) -> PathBuf {
    if options.spool_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        options.spool_dir.clone()
    }
}

/// A root filesystem tar (which has no tags).
fn rootfs_plan(layers: Vec<LayerInput>, reference: Option<&str>) -> Result<Plan> {
    if let Some(r) = reference {
        return Err(Error::invalid(format!(
            "this is a root filesystem tar; it has no tag or digest {r:?}"
        )));
    }
    Ok(Plan::Layers {
        layers,
        image_digest: None,
        origin: Origin::new(Reading::RootfsTar),
    })
}

/// An indexed tar: the image it holds, or else a root filesystem tar (`rootfs` makes its layer).
fn from_index(
    index: std::sync::Arc<archive::TarIndex>,
    reference: Option<&str>,
    options: &PlanOptions,
    wanted: &Platform,
    rootfs: impl FnOnce() -> Result<Vec<LayerInput>>,
) -> Result<Plan> {
    let by_digest = reference.is_some_and(|r| r.starts_with("sha256:"));
    let reading = match index.shape() {
        archive::Shape::Rootfs => return rootfs_plan(rootfs()?, reference),
        archive::Shape::Docker { oci: true } if by_digest => Reading::OciArchive,
        archive::Shape::Docker { .. } => Reading::DockerArchive,
        archive::Shape::Oci => Reading::OciArchive,
    };
    let (foreign, first) = index.foreign_members();
    let first = first.map(str::to_string);
    let image = match reading {
        Reading::DockerArchive => docker::Archive::from_index(index).image(reference),
        _ => oci::Layout::from_archive(index).and_then(|l| l.image(reference, wanted)),
    };
    // A tar that also holds what no image archive has could be meant as a root filesystem.
    let hint = || {
        format!(
            "{foreign} member(s) no image archive has (the first: {}); give it with --layer \
             to build it as a root filesystem tar",
            first.as_deref().unwrap_or("?")
        )
    };
    let image = image.map_err(|e| {
        if foreign == 0 {
            return e;
        }
        let mut again = Error::new(
            e.kind(),
            format!(
                "{}; read as a {} because of its {}, it also has {}",
                e.message(),
                reading.describe(),
                if reading == Reading::DockerArchive {
                    "manifest.json"
                } else {
                    "oci-layout and index.json"
                },
                hint()
            ),
        );
        if let Some(l) = e.layer() {
            again = again.with_layer(l);
        }
        again
    })?;
    let mut plan = image_plan(image, reading, wanted, options);
    if foreign > 0 {
        plan.origin_mut().notes.push(format!(
            "read as a {}, although it also has {}",
            reading.describe(),
            hint()
        ));
    }
    Ok(plan)
}

/// The plan of an image, with notes on its platform.
fn image_plan(
    image: oci::Image,
    reading: Reading,
    wanted: &Platform,
    options: &PlanOptions,
) -> Plan {
    let mut origin = Origin::new(reading);
    let p = &image.platform;
    if !image.from_index && !p.architecture.is_empty() && !wanted.matches(p) {
        origin.notes.push(format!(
            "the image is for {p}, not {wanted} ({})",
            if options.platform.is_some() {
                "as --platform asked"
            } else {
                "the host's"
            }
        ));
    }
    origin.platform = Some(image.platform);
    Plan::Layers {
        layers: image.layers,
        image_digest: Some(image.manifest_digest),
        origin,
    }
}

impl Plan {
    /// What the plan says of its source.
    pub fn origin(&self) -> &Origin {
        match self {
            Plan::Layers { origin, .. } | Plan::Directory { origin, .. } => origin,
        }
    }

    /// An estimate of the bytes the plan's content takes, for choosing a block size before
    /// anything is read: [`estimate_tar_bytes`] of its layers, or the sizes of a directory's
    /// files.
    pub fn estimated_bytes(&self) -> u64 {
        match self {
            Plan::Layers { layers, .. } => estimate_tar_bytes(layers),
            Plan::Directory { path, .. } => directory::estimate_bytes(path),
        }
    }

    fn origin_mut(&mut self) -> &mut Origin {
        match self {
            Plan::Layers { origin, .. } | Plan::Directory { origin, .. } => origin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        let all = |_: &str| true;
        assert_eq!(split_reference("img:latest", all), Some(("img", "latest")));
        assert_eq!(
            split_reference("dir/img@sha256:abc", all),
            Some(("dir/img", "sha256:abc"))
        );
        assert_eq!(split_reference("./a:b/c", all), None);
        assert_eq!(split_reference(":x", all), None);
        let only = |p: &str| p == "a.tar";
        assert_eq!(
            split_reference("a.tar:alpine:3.20", only),
            Some(("a.tar", "alpine:3.20"))
        );
        assert_eq!(split_reference("b.tar:alpine:3.20", only), None);
        assert!(parse_owner("1000:100").is_ok());
        assert!(parse_owner("1000").is_err());
    }
}

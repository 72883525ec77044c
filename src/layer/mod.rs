//! Applying a layer — a tar stream — to an image with the OCI whiteout rules.
//!
//! - `.wh.NAME` removes NAME (and what is below it) as it came from lower layers, wherever the
//!   marker stands in its layer; entries of the same layer stay. It is never written out.
//! - `.wh..wh..opq` in a directory hides every child from lower layers; the directory and its
//!   children from this layer stay. Other `.wh..wh.` names are ignored.
//! - A hard link naming a target that comes later in the same layer is resolved when the layer
//!   ends.
//!
//! The result is the same whatever the order of entries within a layer: the lower layers with
//! this layer's whiteouts applied, then this layer's entries on top. A non-directory of a lower
//! layer that stands where an entry of this layer needs a parent directory gives way to one when
//! the layer whites it out (or hides it with an opaque marker) or gives a directory entry for
//! it, before or after; otherwise the entry is an error, as a parent that is not a directory
//! always is. The exception: a symlink of a lower layer in a parent path is followed when the entry comes,
//! even if a whiteout of that symlink comes later in the same layer (knowing that would take
//! reading the layer twice).

mod in_place;
mod per_layer;
mod stack;

use std::io::Read;

pub use per_layer::{
    build_per_layer, LayerVerity, OverlayXattr, PerLayerImage, PerLayerOptions, PerLayerSummary,
};
pub use stack::{apply_layers, LayerInput, LayerReport, NoProgress, Progress};

use crate::builder::{FileSession, ImageBuilder};
use crate::entry::{Metadata, Special, Xattr};
use crate::error::{show_path, Error, Result};
use crate::tar::{Entry, EntryKind, TarReader};

/// Prefix of whiteout names.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the opaque-directory marker.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of other special whiteout-namespace names, which are ignored.
pub const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// Counts for one applied layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Entries read from the tar (whiteouts included).
    pub entries: u64,
    /// Regular files added.
    pub files: u64,
    /// Bytes of regular file data.
    pub file_bytes: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// Bytes of the tar stream read.
    pub tar_bytes: u64,
}

/// What kind of name an entry has.
enum Name<'a> {
    Plain,
    Whiteout { dir: &'a [u8], target: &'a [u8] },
    Opaque { dir: &'a [u8] },
    Ignored,
}

/// Splits off the last component of `path` (trailing slashes ignored).
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = {
        let mut end = path.len();
        while end > 1 && path[end - 1] == b'/' {
            end -= 1;
        }
        &path[..end]
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    }
}

fn classify(path: &[u8]) -> Result<Name<'_>> {
    let (dir, base) = split_last(path);
    if base == OPAQUE_MARKER {
        return Ok(Name::Opaque { dir });
    }
    if base.starts_with(WHITEOUT_META_PREFIX) {
        return Ok(Name::Ignored);
    }
    if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty() || target == b"." || target == b".." {
            return Err(Error::corrupt(format!(
                "whiteout {:?} names no file",
                show_path(base)
            )));
        }
        return Ok(Name::Whiteout { dir, target });
    }
    Ok(Name::Plain)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The metadata of a tar entry; extended attributes ext4 cannot store are dropped with a warning.
fn metadata(entry: &Entry, warnings: &mut Vec<String>) -> Metadata {
    let mut xattrs: Vec<Xattr> = Vec::with_capacity(entry.xattrs.len());
    for x in &entry.xattrs {
        if crate::builder::storable_xattr(&x.name) {
            xattrs.push(x.clone());
        } else {
            warnings.push(format!(
                "{}: extended attribute {:?} is in a namespace ext4 cannot store; dropped",
                show_path(&entry.path),
                show_path(&x.name)
            ));
        }
    }
    Metadata {
        mode: entry.mode & 0o7777,
        uid: entry.uid,
        gid: entry.gid,
        atime: entry.atime.unwrap_or(entry.mtime),
        mtime: entry.mtime,
        ctime: entry.ctime.unwrap_or(entry.mtime),
        xattrs,
    }
}

/// Applies one layer from `tar` to `builder`. Returns the layer's counts and the reader, so the
/// caller can read what follows the end of the archive (for digests).
pub fn apply_layer<R: Read>(builder: &mut ImageBuilder, tar: R) -> Result<(LayerStats, R)> {
    let mut reader = TarReader::new(tar);
    let stats = apply_entries(builder, &mut reader, &mut |_, _, _| Ok(false), None)?;
    Ok((stats, reader.into_inner()))
}

/// Adds one layer from `tar` to `builder` in overlay form, alone: a whiteout becomes a 0:0
/// character device, an opaque marker an `overlay.opaque` attribute on its directory.
pub(crate) fn apply_layer_overlay<R: Read>(
    builder: &mut ImageBuilder,
    tar: R,
    xattr: OverlayXattr,
) -> Result<(LayerStats, R)> {
    let mut reader = TarReader::new(tar);
    let stats = apply_entries(builder, &mut reader, &mut |_, _, _| Ok(false), Some(xattr))?;
    Ok((stats, reader.into_inner()))
}

/// Whiteouts and opaque markers of a layer kept in overlay form, written when the layer ends
/// (an entry of the same layer by the same name wins over a whiteout, whatever the order).
#[derive(Default)]
struct OverlayMarks {
    whiteouts: Vec<(Vec<u8>, Metadata)>,
    opaque: Vec<Vec<u8>>,
}

impl OverlayMarks {
    fn write(self, builder: &mut ImageBuilder, xattr: OverlayXattr) -> Result<()> {
        let mut opaque = self.opaque;
        for (path, meta) in self.whiteouts {
            match builder.lookup_kind(&path)? {
                None => {
                    builder.add_special(&path, meta, Special::CharDevice { major: 0, minor: 0 })?
                }
                // A directory of this layer by a whited-out name: what was below is gone, so
                // nothing of a lower directory by that name may show through.
                Some(true) => opaque.push(path),
                Some(false) => {}
            }
        }
        for dir in opaque {
            builder
                .set_dir_xattr(&dir, xattr.opaque_name().as_bytes(), b"y")
                .map_err(|e| e.with_entry(show_path(&dir)))?;
        }
        Ok(())
    }
}

/// Copies a regular file's data (of the size given) in some other way than reading it from
/// the tar stream; false when it did not, and the data is to be read.
type InPlace<'a, R> = dyn FnMut(&mut TarReader<R>, &mut FileSession<'_>, u64) -> Result<bool> + 'a;

/// Applies every entry of `reader`, ending the layer.
fn apply_entries<R: Read>(
    builder: &mut ImageBuilder,
    reader: &mut TarReader<R>,
    in_place: &mut InPlace<'_, R>,
    overlay: Option<OverlayXattr>,
) -> Result<LayerStats> {
    builder.begin_layer();
    let mut stats = LayerStats::default();
    let mut marks = overlay.map(|_| OverlayMarks::default());
    let mut pending_links: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut warnings = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        builder.check_cancel()?;
        stats.entries += 1;
        let result = apply_entry(
            builder,
            reader,
            &entry,
            &mut stats,
            &mut pending_links,
            &mut warnings,
            in_place,
            marks.as_mut().zip(overlay),
        );
        result.map_err(|e| e.with_entry(show_path(&entry.path)))?;
        for w in warnings.drain(..) {
            builder.warn(w);
        }
    }
    for w in reader.take_warnings() {
        builder.warn(w);
    }
    for (path, target) in pending_links {
        if !builder
            .try_hard_link(&path, &target)
            .map_err(|e| e.with_entry(show_path(&path)))?
        {
            return Err(Error::corrupt(format!(
                "hard link target {:?} exists neither in this layer nor below",
                show_path(&target)
            ))
            .with_entry(show_path(&path)));
        }
    }
    if let (Some(marks), Some(xattr)) = (marks, overlay) {
        marks.write(builder, xattr)?;
    }
    builder.end_layer()?;
    stats.tar_bytes = reader.position();
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn apply_entry<R: Read>(
    builder: &mut ImageBuilder,
    reader: &mut TarReader<R>,
    entry: &Entry,
    stats: &mut LayerStats,
    pending_links: &mut Vec<(Vec<u8>, Vec<u8>)>,
    warnings: &mut Vec<String>,
    in_place: &mut InPlace<'_, R>,
    overlay: Option<(&mut OverlayMarks, OverlayXattr)>,
) -> Result<()> {
    match (classify(&entry.path)?, overlay.as_ref()) {
        (Name::Opaque { dir }, None) => {
            stats.whiteouts += 1;
            return builder.opaque(dir);
        }
        (Name::Whiteout { dir, target }, None) => {
            stats.whiteouts += 1;
            return builder.whiteout(&join(dir, target));
        }
        (Name::Opaque { .. } | Name::Whiteout { .. }, Some(_)) => {}
        (Name::Ignored, _) => return Ok(()),
        (Name::Plain, _) => {}
    }
    let mut meta = metadata(entry, warnings);
    if let Some((marks, xattr)) = overlay {
        // The layer's own attributes in the overlay namespace would steer the kernel's
        // overlayfs (redirects, metacopy, opaque); they are not the layer's content.
        let prefix = xattr.prefix().as_bytes();
        let before = meta.xattrs.len();
        meta.xattrs.retain(|x| !x.name.starts_with(prefix));
        if meta.xattrs.len() != before {
            warnings.push(format!(
                "{}: extended attributes in {} are overlayfs's own; dropped",
                show_path(&entry.path),
                xattr.prefix()
            ));
        }
        match classify(&entry.path)? {
            Name::Opaque { dir } => {
                stats.whiteouts += 1;
                marks.opaque.push(dir.to_vec());
                return Ok(());
            }
            Name::Whiteout { dir, target } => {
                stats.whiteouts += 1;
                meta.mode &= 0o7777;
                marks.whiteouts.push((join(dir, target), meta));
                return Ok(());
            }
            _ => {}
        }
    }
    match entry.kind {
        EntryKind::Dir => builder.add_dir(&entry.path, meta),
        EntryKind::File => {
            let size = entry.size;
            let sparse = entry.sparse.clone();
            builder.add_file_with(&entry.path, meta, |w| {
                match &sparse {
                    None if in_place(reader, w, size)? => {}
                    None => {
                        let n = w.copy(&mut reader.data(), Some(size))?;
                        if n != size {
                            return Err(Error::corrupt(format!(
                                "entry data ends after {n} of {size} bytes"
                            )));
                        }
                    }
                    Some(map) => {
                        let mut data = reader.data();
                        for &(offset, len) in map {
                            w.skip_to(offset)?;
                            let n = w.copy(&mut data, Some(len))?;
                            if n != len {
                                return Err(Error::corrupt(format!(
                                    "sparse segment ends after {n} of {len} bytes"
                                )));
                            }
                        }
                    }
                }
                Ok(size)
            })?;
            stats.files += 1;
            stats.file_bytes += size;
            Ok(())
        }
        EntryKind::Symlink => {
            builder.add_special(&entry.path, meta, Special::Symlink(entry.link_name.clone()))
        }
        EntryKind::HardLink => {
            if !builder
                .try_hard_link(&entry.path, &entry.link_name)
                .map_err(|e| e.with_entry(show_path(&entry.path)))?
            {
                pending_links.push((entry.path.clone(), entry.link_name.clone()));
            }
            Ok(())
        }
        EntryKind::CharDevice => builder.add_special(
            &entry.path,
            meta,
            Special::CharDevice {
                major: entry.dev_major,
                minor: entry.dev_minor,
            },
        ),
        EntryKind::BlockDevice => builder.add_special(
            &entry.path,
            meta,
            Special::BlockDevice {
                major: entry.dev_major,
                minor: entry.dev_minor,
            },
        ),
        EntryKind::Fifo => builder.add_special(&entry.path, meta, Special::Fifo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified() {
        assert!(matches!(
            classify(b"a/b/.wh.c").unwrap(),
            Name::Whiteout {
                dir: b"a/b",
                target: b"c"
            }
        ));
        assert!(matches!(
            classify(b".wh.top").unwrap(),
            Name::Whiteout {
                dir: b"",
                target: b"top"
            }
        ));
        assert!(matches!(
            classify(b"a/.wh..wh..opq").unwrap(),
            Name::Opaque { dir: b"a" }
        ));
        assert!(matches!(
            classify(b"a/.wh..wh.plnk").unwrap(),
            Name::Ignored
        ));
        assert!(matches!(classify(b"a/b.wh.c").unwrap(), Name::Plain));
        assert!(matches!(classify(b"a/dir/").unwrap(), Name::Plain));
        assert!(classify(b"a/.wh.").is_err());
        assert!(classify(b"a/.wh..").is_err());
        assert!(classify(b".wh...").is_err());
    }
}

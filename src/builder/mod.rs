//! Building an image: entries in, an ext4 image out.
//!
//! ```no_run
//! use oci2ext4::{BuildOptions, ImageBuilder, Metadata, Special, Timestamp};
//!
//! # fn main() -> oci2ext4::Result<()> {
//! let t = Timestamp::from_secs(1_700_000_000);
//! let mut image = ImageBuilder::create("rootfs.ext4", BuildOptions::default())?;
//! image.add_dir("etc", Metadata::new(0o755, 0, 0, t))?;
//! image.add_file("etc/hostname", Metadata::new(0o644, 0, 0, t), &mut &b"vm\n"[..])?;
//! image.add_special("bin/sh", Metadata::new(0o777, 0, 0, t), Special::Symlink(b"busybox".to_vec()))?;
//! image.add_hard_link("etc/hostname.bak", "etc/hostname")?;
//! let summary = image.finish()?;
//! println!("{} bytes, {} inodes used", summary.image_bytes, summary.inodes_used);
//! # Ok(())
//! # }
//! ```

#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

mod data;
mod finish;
mod options;
mod output;
mod writer;

use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;

use serde::Serialize;

pub use data::FileSession;
pub use options::{BlockSize, BuildOptions, Headroom, Limits};
pub use output::check_destination;

use crate::acl;
use crate::entry::{Metadata, Special, Timestamp, Xattr};
use crate::error::{show_path, Error, ErrorKind, Result};
use crate::ext4::acl::{encode_disk, DiskAclEntry};
use crate::ext4::inode::{mode, PATH_MAX, TIME_MAX, TIME_MIN};
use crate::ext4::superblock::VOLUME_NAME_LEN;
use crate::ext4::xattr::{self, index, Attr};
use crate::layout::alloc::BlockAllocator;
use crate::layout::geometry::{descs_per_block, gdt_blocks, groups_for};
use crate::layout::xattrs;
use crate::tree::path::normalize;
use crate::tree::{Attrs, Content, InodeData, Kind, NodeId, Tree, Xattrs, ROOT};
use data::DataWriter;
use output::Output;

/// What a finished build produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Size of the image file in bytes (its apparent size; unwritten blocks are holes). With
    /// [`BuildOptions::verity`], the filesystem's part: the hash tree follows it.
    pub image_bytes: u64,
    /// Filesystem block size.
    pub block_size: u64,
    /// Blocks in the filesystem.
    pub blocks_count: u64,
    /// Blocks in use (data and metadata).
    pub blocks_used: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Inodes in the filesystem.
    pub inodes_count: u64,
    /// Inodes in use, the reserved ones included.
    pub inodes_used: u64,
    /// Free inodes.
    pub inodes_free: u64,
    /// Block groups.
    pub groups: u32,
    /// Journal size in blocks (0: no journal).
    pub journal_blocks: u64,
    /// Filesystem UUID.
    pub uuid: String,
    /// Bytes of regular file data taken in.
    pub data_bytes: u64,
    /// Entries added (every call that added or replaced an entry).
    pub entries: u64,
    /// The dm-verity hash tree appended after the filesystem, if asked for
    /// ([`BuildOptions::verity`]); `image_bytes` is then the filesystem's part.
    pub verity: Option<crate::verity::VerityInfo>,
    /// Bytes of file data copied into the image by the kernel (`copy_file_range`) from an
    /// uncompressed tar in a regular file, instead of being read and written here.
    pub kernel_copied_bytes: u64,
    /// Bytes of file data that were to be copied by the kernel but were read and written
    /// here because it refused (another filesystem, say).
    pub read_copied_bytes: u64,
    /// Bytes of file data (and zeros for freed blocks where holes cannot be punched) written
    /// with `O_DIRECT`: all of them by default, where the filesystem allows it and the device is
    /// fast enough (see [`BuildOptions::page_cache`]). A filesystem may still route such a
    /// write through its cache (ext4 with `data=journal`, say).
    pub direct_written_bytes: u64,
}

/// Builds one ext4 image. Entries can come in any order; a later entry for a path replaces the
/// earlier one. File data goes to the output as it is read; everything else is written by
/// [`ImageBuilder::finish`]. Dropping the builder without finishing removes the output.
pub struct ImageBuilder {
    output: Output,
    data: DataWriter,
    tree: Tree,
    opts: BuildOptions,
    layer: u32,
    implicit: Attrs,
    warnings: Vec<String>,
    data_bytes: u64,
    entries: u64,
}

/// Whether ext4 can store an extended attribute of this name (its namespace has a name index).
pub(crate) fn storable_xattr(name: &[u8]) -> bool {
    xattr::split_name(name).is_some()
}

/// Most warnings kept; later ones are counted only.
const MAX_WARNINGS: usize = 100;

fn attrs_at(mode: u16, time: Timestamp) -> Attrs {
    Attrs {
        mode,
        uid: 0,
        gid: 0,
        atime: time,
        mtime: time,
        ctime: time,
        xattrs: Xattrs::default(),
    }
}

impl ImageBuilder {
    /// Starts an image at `path`. The file appears there only when [`ImageBuilder::finish`]
    /// succeeds; until then it is written under a temporary name in the same directory.
    pub fn create(path: impl AsRef<Path>, mut opts: BuildOptions) -> Result<Self> {
        let path = path.as_ref();
        if let Some(v) = &opts.verity {
            if let Some(salt) = &v.salt {
                crate::verity::check_salt(salt)?;
            }
            // dm-verity covers whole 4096-byte blocks, the filesystem ends on one.
            let unit = crate::verity::VERITY_BLOCK_SIZE;
            opts.size = opts.size.map(|s| s / unit * unit);
        }
        if let Some(label) = &opts.label {
            if label.len() > VOLUME_NAME_LEN {
                return Err(Error::invalid(format!(
                    "label {label:?} is longer than {VOLUME_NAME_LEN} bytes"
                )));
            }
        }
        let bs = opts.block_size;
        let bsz = bs.bytes_u64();
        let bpg = u64::from(bs.blocks_per_group());
        let max_blocks = opts.limits.max_size / bsz;
        // Room for the largest descriptor table is held in every group with a superblock copy
        // from the start; without a fixed size, at most a sixteenth of a group is held (16 TiB
        // at 4 KiB blocks, 64 GiB at 1 KiB).
        let largest = bs.first_data_block() + bpg * (bpg / 16) * descs_per_block(bs);
        let (limit, limit_reason) = match opts.size {
            Some(size) if size < opts.limits.max_size => {
                (size / bsz, format!("the size given ({size} bytes)"))
            }
            _ if max_blocks > largest => (
                largest,
                format!(
                    "the largest image of {bsz}-byte blocks, {} bytes (choose larger blocks)",
                    largest * bsz
                ),
            ),
            _ => (
                max_blocks,
                format!(
                    "its maximum size of {} bytes (see the max_size option)",
                    opts.limits.max_size
                ),
            ),
        };
        if limit * bsz < 8 << 20 {
            return Err(Error::invalid(format!(
                "an image of {} bytes is too small (at least 8 MiB)",
                limit * bsz
            )));
        }
        let reserved = gdt_blocks(groups_for(limit, bs), bs);
        if reserved + 1 >= bpg {
            return Err(Error::invalid(
                "the image size is too large for a descriptor table in group 0",
            ));
        }
        let output = Output::create(path).map_err(|e| e.with_source(path.display()))?;
        let alloc = BlockAllocator::new(bs, reserved, limit);
        let data = DataWriter::new(
            output.file(),
            alloc,
            opts.buffer_size,
            opts.cancel.clone(),
            limit_reason,
            opts.limits.max_size,
            data::Writes {
                direct: direct_writes(&opts),
                kernel_copy: opts.kernel_copy,
            },
        )?;
        let implicit = attrs_at(0o755, opts.time);
        Ok(ImageBuilder {
            output,
            data,
            tree: Tree::new(implicit.clone()),
            implicit,
            opts,
            layer: 1,
            warnings: Vec::new(),
            data_bytes: 0,
            entries: 0,
        })
    }

    /// The temporary path the image is written to until it is finished.
    pub fn temp_path(&self) -> &Path {
        self.output.temp_path()
    }

    /// Warnings so far: input that was accepted with a change (a time outside ext4's range, say).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Records a warning (kept up to a bound).
    pub fn warn(&mut self, message: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(message);
        } else if self.warnings.len() == MAX_WARNINGS {
            self.warnings.push("further warnings omitted".into());
        }
    }

    /// The options' limits.
    pub fn limits(&self) -> &Limits {
        &self.opts.limits
    }

    /// Fails with [`ErrorKind::Cancelled`] once the cancel flag of the options is set.
    pub fn check_cancel(&self) -> Result<()> {
        match &self.opts.cancel {
            Some(flag) if flag.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(Error::new(ErrorKind::Cancelled, "build cancelled"))
            }
            _ => Ok(()),
        }
    }

    /// Layer stamps for whiteouts: entries from now on belong to a new layer.
    pub(crate) fn begin_layer(&mut self) {
        self.layer += 1;
    }

    /// Ends the current layer: checks that every lower non-directory that gave way to a
    /// directory for an entry of the layer was whited out or given as a directory by it.
    pub(crate) fn end_layer(&mut self) -> Result<()> {
        self.tree.end_layer()
    }

    /// Converts API metadata to stored attributes: checks times, namespaces, ACLs and space.
    fn attrs(&mut self, meta: Metadata, path: &[u8]) -> Result<Attrs> {
        let mut clamp = |t: Timestamp, what: &str| -> Timestamp {
            let sec = t.sec.clamp(TIME_MIN, TIME_MAX);
            let nsec = t.nsec.min(999_999_999);
            if sec != t.sec || nsec != t.nsec {
                let msg = format!(
                    "{}: {what} {}.{:09} is outside ext4's range, stored as {sec}.{nsec:09}",
                    show_path(path),
                    t.sec,
                    t.nsec
                );
                self.warn(msg);
            }
            Timestamp { sec, nsec }
        };
        let (atime, mtime, ctime) = (
            clamp(meta.atime, "atime"),
            clamp(meta.mtime, "mtime"),
            clamp(meta.ctime, "ctime"),
        );
        let mut xattrs: Vec<Xattr> = Vec::with_capacity(meta.xattrs.len());
        for x in meta.xattrs {
            let Some((idx, suffix)) = xattr::split_name(&x.name) else {
                return Err(Error::unsupported(format!(
                    "extended attribute {:?} is in a namespace ext4 cannot store",
                    show_path(&x.name)
                )));
            };
            if suffix.len() > xattr::NAME_MAX {
                return Err(Error::limit(format!(
                    "extended attribute name {:?} is longer than {} bytes",
                    show_path(&x.name),
                    xattr::NAME_MAX
                )));
            }
            let value = if idx == index::POSIX_ACL_ACCESS || idx == index::POSIX_ACL_DEFAULT {
                acl_to_disk(&x.value)
                    .map_err(|m| Error::corrupt(format!("{}: {m}", show_path(&x.name))))?
            } else {
                x.value
            };
            xattrs.push(Xattr {
                name: x.name,
                value,
            });
        }
        // The last value given for a name wins: a stable sort keeps the order of equal names,
        // so after reversing, the first of each run is the last given.
        xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        xattrs.reverse();
        xattrs.dedup_by(|later, first| later.name == first.name);
        xattrs.reverse();
        if !xattrs.is_empty() {
            let list = xattrs::stored(&xattrs);
            let bs = self.opts.block_size.bytes();
            if xattrs::place(&list, bs).is_none() {
                let total: usize = list.iter().map(Attr::footprint).sum();
                return Err(Error::limit(format!(
                    "extended attributes take {total} bytes, more than fit in the inode and one {bs}-byte block"
                )));
            }
        }
        Ok(Attrs {
            // Masked to the 12 permission bits.
            mode: crate::ext4::lo16(meta.mode & u32::from(mode::PERMISSIONS)),
            uid: meta.uid,
            gid: meta.gid,
            atime,
            mtime,
            ctime,
            xattrs: Xattrs::new(xattrs),
        })
    }

    /// Resolves the parent directory of `path`, creating missing ones. `None` for the root.
    fn parent_of<'p>(&mut self, path: &'p [u8]) -> Result<Option<(NodeId, &'p [u8])>> {
        let comps = normalize(path, self.opts.limits.max_depth).map_err(|e| {
            let kind = match e {
                crate::tree::path::PathError::NameTooLong(_)
                | crate::tree::path::PathError::TooDeep(_) => ErrorKind::LimitExceeded,
                _ => ErrorKind::CorruptInput,
            };
            Error::new(kind, e.to_string())
        })?;
        let Some((name, parents)) = comps.split_last() else {
            return Ok(None);
        };
        let implicit = self.implicit.clone();
        let dir = self
            .tree
            .resolve_dir(
                parents,
                Some((&implicit, self.layer)),
                self.opts.limits.max_symlink_follows,
            )?
            .ok_or_else(|| Error::corrupt("parent directory cannot be created"))?;
        self.tree.label_give_ways(path);
        Ok(Some((dir, name)))
    }

    fn discard_freed(&mut self) -> Result<()> {
        if self.tree.has_freed() {
            let freed = self.tree.take_freed();
            self.data.discard(&freed)?;
        }
        Ok(())
    }

    fn insert(&mut self, path: &[u8], data: InodeData) -> Result<NodeId> {
        let node = match self.parent_of(path)? {
            Some((dir, name)) => self.tree.insert(dir, name, data, self.layer),
            None => {
                if data.kind != Kind::Dir {
                    return Err(Error::corrupt("the root of the image must be a directory"));
                }
                self.tree.set_dir_attrs(ROOT, data.attrs, self.layer);
                ROOT
            }
        };
        self.entries += 1;
        self.discard_freed()?;
        Ok(node)
    }

    /// Adds a directory, or gives an existing one new attributes (keeping what is in it).
    pub fn add_dir(&mut self, path: impl AsRef<[u8]>, meta: Metadata) -> Result<()> {
        let path = path.as_ref();
        self.add_dir_inner(path, meta)
            .map_err(|e| e.with_entry(show_path(path)))
    }

    fn add_dir_inner(&mut self, path: &[u8], meta: Metadata) -> Result<()> {
        let attrs = self.attrs(meta, path)?;
        self.insert(path, InodeData::new(Kind::Dir, attrs, Content::None))?;
        Ok(())
    }

    /// Adds a regular file whose bytes are everything `data` yields. Returns the size.
    pub fn add_file(
        &mut self,
        path: impl AsRef<[u8]>,
        meta: Metadata,
        data: &mut dyn Read,
    ) -> Result<u64> {
        self.add_file_with(path, meta, |w| {
            w.copy(data, None)?;
            Ok(w.position())
        })
    }

    /// Adds a regular file whose data `write` produces through a [`FileSession`]: copies from
    /// readers, with jumps forward that leave holes (for sparse files). `write` returns the file
    /// size, at least the position it reached.
    pub fn add_file_with(
        &mut self,
        path: impl AsRef<[u8]>,
        meta: Metadata,
        write: impl FnOnce(&mut FileSession<'_>) -> Result<u64>,
    ) -> Result<u64> {
        let path = path.as_ref();
        self.add_file_inner(path, meta, write)
            .map_err(|e| e.with_entry(show_path(path)))
    }

    fn add_file_inner(
        &mut self,
        path: &[u8],
        meta: Metadata,
        write: impl FnOnce(&mut FileSession<'_>) -> Result<u64>,
    ) -> Result<u64> {
        let attrs = self.attrs(meta, path)?;
        // Resolve first: a bad name fails before any data is written.
        if self.parent_of(path)?.is_none() {
            return Err(Error::corrupt("the root of the image must be a directory"));
        }
        let mut session = self.data.begin();
        let size = write(&mut session)?;
        let extents = session.finish(size)?;
        self.data_bytes += size;
        self.insert(
            path,
            InodeData::new(
                Kind::File,
                attrs,
                Content::File {
                    size,
                    extents: extents.into(),
                },
            ),
        )?;
        Ok(size)
    }

    /// Adds a symbolic link, device, fifo or socket.
    pub fn add_special(
        &mut self,
        path: impl AsRef<[u8]>,
        meta: Metadata,
        special: Special,
    ) -> Result<()> {
        let path = path.as_ref();
        self.add_special_inner(path, meta, special)
            .map_err(|e| e.with_entry(show_path(path)))
    }

    fn add_special_inner(&mut self, path: &[u8], meta: Metadata, special: Special) -> Result<()> {
        let attrs = self.attrs(meta, path)?;
        let check_dev = |major: u32, minor: u32| {
            if major > 0xFFF || minor > 0xF_FFFF {
                Err(Error::limit(format!(
                    "device number {major}:{minor} is beyond Linux's 12-bit major, 20-bit minor"
                )))
            } else {
                Ok(Content::Device { major, minor })
            }
        };
        let (kind, content) = match special {
            Special::Symlink(target) => {
                if target.is_empty() || target.len() >= PATH_MAX || target.contains(&0) {
                    return Err(Error::corrupt(format!(
                        "symlink target of {} bytes is not 1 to {} bytes without NUL",
                        target.len(),
                        PATH_MAX - 1
                    )));
                }
                let bs = self.opts.block_size.bytes();
                if target.len() >= bs {
                    return Err(Error::limit(format!(
                        "symlink target of {} bytes does not fit in a {bs}-byte block (choose larger blocks)",
                        target.len()
                    )));
                }
                (Kind::Symlink, Content::Symlink(target.into()))
            }
            Special::CharDevice { major, minor } => (Kind::CharDev, check_dev(major, minor)?),
            Special::BlockDevice { major, minor } => (Kind::BlockDev, check_dev(major, minor)?),
            Special::Fifo => (Kind::Fifo, Content::None),
            Special::Socket => (Kind::Socket, Content::None),
        };
        self.insert(path, InodeData::new(kind, attrs, content))?;
        Ok(())
    }

    /// Adds a symbolic link: shorthand for [`ImageBuilder::add_special`].
    pub fn add_symlink(
        &mut self,
        path: impl AsRef<[u8]>,
        meta: Metadata,
        target: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.add_special(path, meta, Special::Symlink(target.as_ref().to_vec()))
    }

    /// Adds `path` as another name of the file at `target` (a path from the image root, whose
    /// last component is not followed). The target must exist and not be a directory.
    pub fn add_hard_link(
        &mut self,
        path: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> Result<()> {
        let path = path.as_ref();
        match self.try_hard_link(path, target.as_ref()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::corrupt(format!(
                "hard link target {:?} does not exist",
                show_path(target.as_ref())
            ))
            .with_entry(show_path(path))),
            Err(e) => Err(e.with_entry(show_path(path))),
        }
    }

    /// Links `path` to `target` if the target exists; `Ok(false)` if it does not.
    pub(crate) fn try_hard_link(&mut self, path: &[u8], target: &[u8]) -> Result<bool> {
        let Some(target_node) = self.lookup(target)? else {
            return Ok(false);
        };
        let Some((dir, name)) = self.parent_of(path)? else {
            return Err(Error::corrupt(
                "the root of the image cannot be a hard link",
            ));
        };
        self.tree.link(dir, name, target_node, self.layer)?;
        self.entries += 1;
        self.discard_freed()?;
        Ok(true)
    }

    /// The node at `path` without creating anything; the last component is not followed.
    pub(crate) fn lookup(&mut self, path: &[u8]) -> Result<Option<NodeId>> {
        let comps = normalize(path, self.opts.limits.max_depth)
            .map_err(|e| Error::corrupt(e.to_string()))?;
        let Some((name, parents)) = comps.split_last() else {
            return Ok(Some(ROOT));
        };
        let Some(dir) =
            self.tree
                .resolve_dir(parents, None, self.opts.limits.max_symlink_follows)?
        else {
            return Ok(None);
        };
        Ok(self.tree.child(dir, name))
    }

    /// Whether `path` exists and is a directory (`Some(true)`) or something else; the last
    /// component is not followed.
    pub(crate) fn lookup_kind(&mut self, path: &[u8]) -> Result<Option<bool>> {
        Ok(self.lookup(path)?.map(|n| self.tree.is_dir(n)))
    }

    /// Removes `path` (with everything below it). Returns whether it existed.
    pub fn remove(&mut self, path: impl AsRef<[u8]>) -> Result<bool> {
        let path = path.as_ref();
        self.remove_inner(path)
            .map_err(|e| e.with_entry(show_path(path)))
    }

    fn remove_inner(&mut self, path: &[u8]) -> Result<bool> {
        let comps = normalize(path, self.opts.limits.max_depth)
            .map_err(|e| Error::corrupt(e.to_string()))?;
        let Some((name, parents)) = comps.split_last() else {
            return Err(Error::invalid("the root of the image cannot be removed"));
        };
        let Some(dir) =
            self.tree
                .resolve_dir(parents, None, self.opts.limits.max_symlink_follows)?
        else {
            return Ok(false);
        };
        let removed = self.tree.remove_child(dir, name);
        self.discard_freed()?;
        Ok(removed)
    }

    /// Applies an OCI whiteout of `path` for the current layer.
    pub(crate) fn whiteout(&mut self, path: &[u8]) -> Result<()> {
        let comps = normalize(path, self.opts.limits.max_depth)
            .map_err(|e| Error::corrupt(e.to_string()))?;
        let Some((name, parents)) = comps.split_last() else {
            return Err(Error::corrupt("whiteout of the image root"));
        };
        if let Some(dir) =
            self.tree
                .resolve_dir(parents, None, self.opts.limits.max_symlink_follows)?
        {
            let implicit = self.implicit.clone();
            self.tree.whiteout_child(dir, name, self.layer, &implicit);
        }
        self.discard_freed()
    }

    /// The directory `dir`, created (with its parents) for the current layer when missing;
    /// `refusal` is the error's message when the path does not lead to a directory.
    fn layer_dir(&mut self, dir: &[u8], refusal: &str) -> Result<NodeId> {
        let comps = normalize(dir, self.opts.limits.max_depth)
            .map_err(|e| Error::corrupt(e.to_string()))?;
        let implicit = self.implicit.clone();
        self.tree
            .resolve_dir(
                &comps,
                Some((&implicit, self.layer)),
                self.opts.limits.max_symlink_follows,
            )?
            .ok_or_else(|| Error::corrupt(refusal))
    }

    /// Applies an OCI opaque marker in directory `dir` for the current layer.
    pub(crate) fn opaque(&mut self, dir: &[u8]) -> Result<()> {
        let node = self.layer_dir(dir, "opaque directory cannot be created")?;
        let implicit = self.implicit.clone();
        self.tree.label_give_ways(dir);
        self.tree.make_opaque(node, self.layer, &implicit);
        self.discard_freed()
    }

    /// Sets the extended attribute `name` of directory `dir` to `value`, creating the directory
    /// (and its parents) with default attributes when it is missing.
    pub(crate) fn set_dir_xattr(&mut self, dir: &[u8], name: &[u8], value: &[u8]) -> Result<()> {
        let node = self.layer_dir(dir, "not a directory")?;
        let mut list: Vec<Xattr> = self.tree.inode(node).attrs.xattrs.to_vec();
        list.retain(|x| x.name != name);
        list.push(Xattr {
            name: name.to_vec(),
            value: value.to_vec(),
        });
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let bs = self.opts.block_size.bytes();
        if xattrs::place(&xattrs::stored(&list), bs).is_none() {
            return Err(Error::limit(format!(
                "extended attributes do not fit in the inode and one {bs}-byte block"
            )));
        }
        self.tree.inode_mut(node).attrs.xattrs = Xattrs::new(list);
        Ok(())
    }

    /// Writes the metadata and moves the image into place; with [`BuildOptions::fsync`], makes
    /// it durable first.
    pub fn finish(self) -> Result<Summary> {
        self.check_cancel()?;
        let ImageBuilder {
            output,
            data,
            mut tree,
            opts,
            layer,
            data_bytes,
            entries,
            ..
        } = self;
        let dest = output.dest().display().to_string();
        let run = || -> Result<Summary> {
            // lost+found, as mke2fs makes it, unless the input has one.
            let lost_found = match tree.child(ROOT, b"lost+found") {
                Some(_) => None,
                None => {
                    let attrs = attrs_at(0o700, opts.time);
                    Some(tree.insert(
                        ROOT,
                        b"lost+found",
                        InodeData::new(Kind::Dir, attrs, Content::None),
                        layer,
                    ))
                }
            };
            let done = data.finish()?;
            let file = output.file();
            let mut summary = finish::finish(&tree, file, done.alloc, &opts, done.crc, lost_found)?;
            summary.data_bytes = data_bytes;
            summary.kernel_copied_bytes = done.kernel_copied;
            summary.read_copied_bytes = done.read_copied;
            summary.direct_written_bytes = done.direct_written;
            summary.entries = entries;
            // Cancelled while finishing: the image is not committed.
            if opts
                .cancel
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
            {
                return Err(Error::new(ErrorKind::Cancelled, "build cancelled"));
            }
            output.commit(opts.fsync)?;
            Ok(summary)
        };
        run().map_err(|e| e.with_source(dest))
    }
}

/// How file data is written, from the options: past the page cache unless it is asked for, or
/// the data is to be read again soon, which is faster from the page cache (the kernel's copies
/// go through it, and a verity tree reads the image back); when the image is to be durable,
/// past it whatever the device's speed, as the bytes have to reach the device anyway.
fn direct_writes(opts: &BuildOptions) -> writer::Direct {
    use writer::Direct;
    if opts.page_cache {
        Direct::Off
    } else if opts.fsync {
        Direct::On
    } else if opts.kernel_copy || opts.verity.is_some() {
        Direct::Off
    } else {
        Direct::UnlessSlow
    }
}

/// Converts a POSIX ACL from the xattr wire format to ext4's on-disk format.
fn acl_to_disk(value: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let entries: Vec<DiskAclEntry> = acl::parse_xattr(value)?
        .into_iter()
        .map(|e| DiskAclEntry {
            tag: e.tag,
            perm: e.perm,
            id: e.id,
        })
        .collect();
    Ok(encode_disk(&entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use writer::Direct;

    #[test]
    fn file_data_goes_past_the_page_cache_unless_it_is_read_again() {
        let with = |f: fn(&mut BuildOptions)| {
            let mut o = BuildOptions::default();
            f(&mut o);
            direct_writes(&o)
        };
        assert_eq!(with(|_| {}), Direct::UnlessSlow);
        assert_eq!(with(|o| o.fsync = true), Direct::On);
        assert_eq!(with(|o| o.page_cache = true), Direct::Off);
        assert_eq!(
            with(|o| {
                o.page_cache = true;
                o.fsync = true;
            }),
            Direct::Off
        );
        // Read again: by the kernel's copies, by the hash tree; unless it must reach the disk.
        assert_eq!(with(|o| o.kernel_copy = true), Direct::Off);
        assert_eq!(
            with(|o| o.verity = Some(crate::verity::VerityOptions::default())),
            Direct::Off
        );
        assert_eq!(
            with(|o| {
                o.verity = Some(crate::verity::VerityOptions::default());
                o.fsync = true;
            }),
            Direct::On
        );
    }
}

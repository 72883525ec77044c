//! A host directory as the source, like `mkfs.ext4 -d`: every entry below it with its mode,
//! owner, times, extended attributes and hard links; sparse files keep their holes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::builder::{storable_xattr, ImageBuilder};
use crate::entry::{Metadata, Special, Timestamp, Xattr};
use crate::error::{Error, Result};

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::io(format!("cannot {what} {}", path.display()), e)
}

/// Reads the extended attributes of `path` (not following a symlink).
fn xattrs(path: &Path, warn: &mut Vec<String>) -> Result<Vec<Xattr>> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(io_err(path, "list the extended attributes of", e.into())),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        if !storable_xattr(name) {
            warn.push(format!(
                "{}: extended attribute {:?} cannot be stored in ext4; dropped",
                path.display(),
                String::from_utf8_lossy(name)
            ));
            continue;
        }
        let cname =
            std::ffi::CString::new(name).map_err(|_| Error::corrupt("xattr name with NUL"))?;
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value[..]) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                Err(e) => return Err(io_err(path, "read an extended attribute of", e.into())),
            }
            if value.len() > 1 << 20 {
                return Err(Error::limit(format!(
                    "{}: extended attribute larger than 1 MiB",
                    path.display()
                )));
            }
        };
        value.truncate(len);
        out.push(Xattr {
            name: name.to_vec(),
            value,
        });
    }
    Ok(out)
}

fn metadata(md: &fs::Metadata, owner: Option<(u32, u32)>, xattrs: Vec<Xattr>) -> Metadata {
    let ts = |sec: i64, nsec: i64| Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    };
    let (uid, gid) = owner.unwrap_or((md.uid(), md.gid()));
    Metadata {
        mode: md.mode() & 0o7777,
        uid,
        gid,
        atime: ts(md.atime(), md.atime_nsec()),
        mtime: ts(md.mtime(), md.mtime_nsec()),
        ctime: ts(md.ctime(), md.ctime_nsec()),
        xattrs,
    }
}

/// Copies a regular file, keeping holes: data regions are found with `SEEK_DATA`/`SEEK_HOLE`.
fn copy_file(
    builder: &mut ImageBuilder,
    image_path: &[u8],
    path: &Path,
    meta: Metadata,
    size: u64,
) -> Result<()> {
    use rustix::fs::{seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| io_err(path, "open", e))?;
    builder.add_file_with(image_path, meta, |w| {
        let mut offset = 0u64;
        while offset < size {
            let data = match seek(&file, SeekFrom::Data(offset)) {
                Ok(d) => d,
                Err(rustix::io::Errno::NXIO) => break,
                // No hole support: copy everything.
                Err(_) => offset,
            };
            let hole = seek(&file, SeekFrom::Hole(data)).unwrap_or(size).min(size);
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(data))
                .map_err(|e| io_err(path, "seek in", e))?;
            w.skip_to(data)?;
            let n = w
                .copy(&mut file, Some(hole - data))
                .map_err(|e| e.with_source(path.display()))?;
            if n < hole - data {
                return Err(Error::corrupt(format!(
                    "{} shrank while being read",
                    path.display()
                )));
            }
            offset = hole;
        }
        Ok(size)
    })?;
    Ok(())
}

/// An estimate of the bytes the tree under `root` puts in an image, for choosing a block size
/// before it is read: the bytes of its regular files (allocated bytes, for sparse ones) and a
/// directory entry's worth per entry. Unreadable parts count nothing (the build reports them).
pub fn estimate_bytes(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(md) = entry.metadata() else { continue };
            total = total.saturating_add(256);
            if md.is_dir() {
                stack.push(entry.path());
            } else if md.is_file() {
                total = total.saturating_add(md.len().min(md.blocks() * 512));
            }
        }
    }
    total
}

/// Adds everything below `root` to `builder`, `root` itself becoming the image root. With
/// `owner`, every entry gets that uid and gid.
pub fn add_tree(builder: &mut ImageBuilder, root: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    let mut warnings = Vec::new();
    let root_md = fs::metadata(root).map_err(|e| io_err(root, "read", e))?;
    if !root_md.is_dir() {
        return Err(Error::invalid(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    builder.add_dir("", metadata(&root_md, owner, xattrs(root, &mut warnings)?))?;
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, image_dir)) = stack.pop() {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(&dir)
            .map_err(|e| io_err(&dir, "read the directory", e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| io_err(&dir, "read the directory", e))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            builder.check_cancel()?;
            let path = dir.join(&name);
            let mut image_path = image_dir.clone();
            if !image_path.is_empty() {
                image_path.push(b'/');
            }
            image_path.extend_from_slice(name.as_bytes());
            let md = fs::symlink_metadata(&path).map_err(|e| io_err(&path, "read", e))?;
            let ft = md.file_type();
            if !ft.is_dir() && md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = links.get(&key) {
                    builder.add_hard_link(&image_path, first)?;
                    continue;
                }
                links.insert(key, image_path.clone());
            }
            let meta = metadata(&md, owner, xattrs(&path, &mut warnings)?);
            if ft.is_dir() {
                builder.add_dir(&image_path, meta)?;
                subdirs.push((path, image_path));
            } else if ft.is_file() {
                copy_file(builder, &image_path, &path, meta, md.len())?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| io_err(&path, "read the link", e))?;
                builder.add_special(
                    &image_path,
                    meta,
                    Special::Symlink(target.as_os_str().as_bytes().to_vec()),
                )?;
            } else {
                let rdev = md.rdev();
                let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
                let special = if ft.is_char_device() {
                    Special::CharDevice { major, minor }
                } else if ft.is_block_device() {
                    Special::BlockDevice { major, minor }
                } else if ft.is_fifo() {
                    Special::Fifo
                } else if ft.is_socket() {
                    Special::Socket
                } else {
                    return Err(Error::unsupported(format!(
                        "{} has an unknown file type",
                        path.display()
                    )));
                };
                builder.add_special(&image_path, meta, special)?;
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    for w in warnings {
        builder.warn(w);
    }
    Ok(())
}

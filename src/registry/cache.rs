//! The blob cache: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) that
//! other tools can read, shared safely by processes pulling at the same time.
//!
//! A blob is written to a temporary file in `ingest/` (same filesystem), checked against its
//! digest, and renamed into `blobs/sha256/`: a file there is always complete and always has the
//! digest it is named by, unless something else damaged it, in which case the digest check
//! where it is used finds out and the file is removed. `index.json` names each pulled
//! reference (annotation `org.opencontainers.image.ref.name` = the full reference) and is
//! rewritten whole, under an advisory lock, through a temporary file and a rename.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

use crate::blob::digest::{Digest, HashingReader};
use crate::error::{Error, ErrorKind, Result};
use crate::oci::{self, Descriptor, MAX_DOCUMENT};
use crate::source::oci::Layout;

/// The annotation naming a reference in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Temporary files older than this are left over from a process that died; they are removed.
const STALE: Duration = Duration::from_secs(24 * 3600);

/// The cache directory.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |e| Error::io(what, e)
}

impl Cache {
    /// The default directory: `$XDG_CACHE_HOME/oci2ext4`, else `~/.cache/oci2ext4`.
    pub fn default_dir() -> Result<PathBuf> {
        let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
        if let Some(x) = var("XDG_CACHE_HOME") {
            return Ok(PathBuf::from(x).join("oci2ext4"));
        }
        if let Some(h) = var("HOME") {
            return Ok(PathBuf::from(h).join(".cache").join("oci2ext4"));
        }
        Err(Error::invalid(
            "no cache directory: neither XDG_CACHE_HOME nor HOME is set; give one with --cache-dir",
        ))
    }

    /// Opens the cache in `dir`, making it an OCI image layout if it is not one yet.
    pub fn open(dir: &Path) -> Result<Self> {
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err(format!(
            "cannot create the cache {}",
            blobs.display()
        )))?;
        let ingest = dir.join("ingest");
        fs::create_dir_all(&ingest)
            .map_err(io_err(format!("cannot create {}", ingest.display())))?;
        let cache = Cache {
            dir: dir.to_path_buf(),
        };
        if !dir.join("oci-layout").exists() {
            cache.write_atomically(
                &dir.join("oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            )?;
        }
        if !dir.join("index.json").exists() {
            // Under the lock, so that a concurrent first write is not lost.
            let _lock = cache.lock()?;
            if !dir.join("index.json").exists() {
                cache.write_atomically(
                    &dir.join("index.json"),
                    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                )?;
            }
        }
        // Check that it is a layout we can read.
        Layout::open(dir)?;
        cache.remove_stale_temporaries();
        Ok(cache)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether blob `digest` is present with `size` bytes (any size when `size` is 0).
    pub fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(digest))
            .is_ok_and(|m| m.is_file() && (size == 0 || m.len() == size))
    }

    /// A new temporary file for a blob being written.
    pub fn temporary(&self) -> Result<NamedTempFile> {
        tempfile::Builder::new()
            .prefix("blob-")
            .suffix(".partial")
            .permissions(shared())
            .tempfile_in(self.dir.join("ingest"))
            .map_err(io_err(format!(
                "cannot create a temporary file in {}",
                self.dir.join("ingest").display()
            )))
    }

    /// Moves a complete, verified temporary file into place as blob `digest`.
    pub fn commit(&self, temp: NamedTempFile, digest: &Digest) -> Result<File> {
        let target = self.blob_path(digest);
        temp.persist(&target).map_err(|e| {
            Error::io(
                format!("cannot move a blob into the cache as {}", target.display()),
                e.error,
            )
        })
    }

    /// Reads a small blob (a manifest or config) from the cache, checking its digest and size.
    /// `None` when it is not there; a file that does not match is removed and `None` returned.
    pub fn read_document(&self, desc: &Descriptor) -> Result<Option<Vec<u8>>> {
        let digest = Digest::parse(&desc.digest)?;
        let path = self.blob_path(&digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
        };
        let mut data = Vec::new();
        file.take(MAX_DOCUMENT + 1)
            .read_to_end(&mut data)
            .map_err(io_err(format!("cannot read {}", path.display())))?;
        if Digest::of(&data) != digest || (desc.size != 0 && data.len() as u64 != desc.size) {
            self.remove_blob(&digest);
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// Stores a small blob already in memory; `data` must have `digest`.
    pub fn store_document(&self, digest: &Digest, data: &[u8]) -> Result<()> {
        if Digest::of(data) != *digest {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!("blob {digest} does not match its digest; not cached"),
            ));
        }
        if self.has_blob(digest, data.len() as u64) {
            return Ok(());
        }
        let mut temp = self.temporary()?;
        temp.write_all(data)
            .map_err(io_err("cannot write to the cache"))?;
        self.commit(temp, digest)?;
        Ok(())
    }

    /// Hashes blob `digest` as stored and removes it if it does not match. Returns whether it
    /// was removed.
    pub fn evict_if_corrupt(&self, digest: &Digest) -> bool {
        let path = self.blob_path(digest);
        let Ok(f) = File::open(&path) else {
            return false;
        };
        let mut r = HashingReader::new(f, true);
        if std::io::copy(&mut r, &mut std::io::sink()).is_err() {
            return false;
        }
        if r.finish().0 != *digest {
            self.remove_blob(digest);
            return true;
        }
        false
    }

    /// Removes blob `digest`, if present.
    pub fn remove_blob(&self, digest: &Digest) {
        let _ = fs::remove_file(self.blob_path(digest));
    }

    /// The descriptor `index.json` records for reference `name`, if any.
    pub fn lookup(&self, name: &str) -> Result<Option<Descriptor>> {
        let index = Layout::open(&self.dir)?.index()?;
        Ok(index
            .manifests
            .into_iter()
            .find(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == name)))
    }

    /// Records in `index.json` that reference `name` is the image `desc` (replacing what the
    /// name pointed to before). Other entries and fields are kept as they are.
    pub fn record(&self, name: &str, desc: &Descriptor) -> Result<()> {
        let _lock = self.lock()?;
        let path = self.dir.join("index.json");
        let data = fs::read(&path).map_err(io_err(format!("cannot read {}", path.display())))?;
        let mut index: serde_json::Value = oci::parse_json("index.json", &data)?;
        let Some(obj) = index.as_object_mut() else {
            return Err(Error::corrupt(format!(
                "{} is not a JSON object",
                path.display()
            )));
        };
        let entry = Descriptor {
            annotations: HashMap::from([(REF_NAME.to_string(), name.to_string())]),
            platform: None,
            ..desc.clone()
        };
        let entry = serde_json::to_value(&entry)
            .map_err(|e| Error::corrupt(format!("cannot encode a descriptor: {e}")))?;
        let manifests = obj
            .entry("manifests")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        let Some(list) = manifests.as_array_mut() else {
            return Err(Error::corrupt(format!(
                "{}: \"manifests\" is not a list",
                path.display()
            )));
        };
        list.retain(|d| d["annotations"][REF_NAME].as_str() != Some(name));
        list.push(entry);
        let text = serde_json::to_vec_pretty(&index)
            .map_err(|e| Error::corrupt(format!("cannot encode index.json: {e}")))?;
        self.write_atomically(&path, &text)
    }

    /// Writes `path` through a temporary file beside it and a rename.
    fn write_atomically(&self, path: &Path, data: &[u8]) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.dir);
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(shared())
            .tempfile_in(dir)
            .map_err(io_err(format!("cannot write in {}", dir.display())))?;
        temp.write_all(data)
            .map_err(io_err(format!("cannot write {}", path.display())))?;
        temp.persist(path)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e.error))?;
        Ok(())
    }

    /// Takes the cache's advisory lock (held until the file is dropped).
    fn lock(&self) -> Result<File> {
        let path = self.dir.join("ingest").join("index.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            Error::io(
                format!("cannot lock {}", path.display()),
                std::io::Error::from(e),
            )
        })?;
        Ok(f)
    }

    /// Removes temporary blobs that a process left behind long ago.
    fn remove_stale_temporaries(&self) {
        let Ok(entries) = fs::read_dir(self.dir.join("ingest")) else {
            return;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let name = e.file_name();
            let partial = name.to_string_lossy().ends_with(".partial");
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE);
            if partial && old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Mode of what the cache writes: 0644 less the umask, as other OCI tools write their layouts,
/// so they can read it too (a temporary file alone would be 0600).
fn shared() -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    fs::Permissions::from_mode(0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_blobs_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert!(dir.path().join("oci-layout").is_file());
        let data = b"{\"a\":1}";
        let d = Digest::of(data);
        cache.store_document(&d, data).unwrap();
        assert!(cache.has_blob(&d, data.len() as u64));
        assert!(!cache.has_blob(&d, 3));
        let desc = Descriptor {
            media_type: oci::media::OCI_MANIFEST.into(),
            size: data.len() as u64,
            ..Descriptor::of_digest(d.to_string())
        };
        assert_eq!(cache.read_document(&desc).unwrap().unwrap(), data);
        cache.record("r.io/a:1", &desc).unwrap();
        cache.record("r.io/a:2", &desc).unwrap();
        cache.record("r.io/a:1", &desc).unwrap();
        let index = Layout::open(dir.path()).unwrap().index().unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(
            cache.lookup("r.io/a:2").unwrap().unwrap().digest,
            desc.digest
        );
        assert!(cache.lookup("r.io/a:3").unwrap().is_none());
        // A damaged blob is found and removed.
        fs::write(cache.blob_path(&d), b"{\"a\":2}").unwrap();
        assert!(cache.read_document(&desc).unwrap().is_none());
        assert!(!cache.blob_path(&d).exists());
        assert!(cache.store_document(&d, b"other").is_err());
        fs::write(cache.blob_path(&d), b"x").unwrap();
        assert!(cache.evict_if_corrupt(&d));
        // The layout reads back through the local source too.
        assert!(Cache::open(dir.path()).is_ok());
    }

    /// The process's umask, from /proc (reading it through umask(2) would change it).
    fn umask() -> u32 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
    }

    #[test]
    fn blobs_and_the_index_are_readable_by_other_tools() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let data = b"{\"b\":1}";
        let d = Digest::of(data);
        cache.store_document(&d, data).unwrap();
        let desc = Descriptor {
            media_type: oci::media::OCI_MANIFEST.into(),
            size: data.len() as u64,
            ..Descriptor::of_digest(d.to_string())
        };
        cache.record("r.io/b:1", &desc).unwrap();
        let want = 0o644 & !umask();
        for path in [cache.blob_path(&d), dir.path().join("index.json")] {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{}: {mode:o}", path.display());
        }
    }
}

//! Downloading layer blobs into the cache while they are being read.
//!
//! Each blob has a [`Slot`]. A download task writes the blob to a temporary file in the cache,
//! hashing it as it goes, and publishes how many bytes are written; a reader (on the layer's
//! reading thread) reads the same file up to that point, waits when it catches up, and
//! ends only when the download is complete and its digest checked, or reports its error.
//! A complete download is renamed into `blobs/sha256/`; a failed one is deleted.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::blob::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

use super::cache::Cache;
use super::transport::{backoff, is_digest_error, retryable, Session};
use oci_client::errors::OciDistributionError;

/// Bytes gathered before a write to the temporary file.
const WRITE_BATCH: usize = 32 << 10;

/// How a download ended.
#[derive(Clone, Debug)]
enum Outcome {
    Done,
    Failed(ErrorKind, String),
}

#[derive(Default)]
struct State {
    /// The file being written (or written): a temporary file, later renamed.
    file: Option<Arc<File>>,
    /// Bytes written and readable.
    written: u64,
    /// Set when the download ends.
    outcome: Option<Outcome>,
}

/// One blob: in the cache already, or being downloaded into it.
pub struct Slot {
    digest: Digest,
    size: u64,
    path: PathBuf,
    cached: bool,
    state: Mutex<State>,
    changed: Condvar,
    cancel: Option<Arc<AtomicBool>>,
}

/// How far a blob has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes received so far (all of them for a cached blob).
    pub received: u64,
    /// The blob's size, from its descriptor.
    pub total: u64,
    /// The blob was in the cache; nothing was downloaded.
    pub cached: bool,
    /// The download ended (successfully or not), or the blob was cached.
    pub finished: bool,
}

impl Slot {
    /// A slot for blob `digest` of `size` bytes at `path` in the cache; `cached` when it is
    /// there already.
    pub fn new(
        digest: Digest,
        size: u64,
        path: PathBuf,
        cached: bool,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Arc<Self> {
        Arc::new(Slot {
            digest,
            size,
            path,
            cached,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cancel,
        })
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Whether the blob came from the cache.
    pub fn cached(&self) -> bool {
        self.cached
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How far the blob has come.
    pub fn progress(&self) -> DownloadProgress {
        if self.cached {
            return DownloadProgress {
                received: self.size,
                total: self.size,
                cached: true,
                finished: true,
            };
        }
        let s = self.lock();
        DownloadProgress {
            received: s.written,
            total: self.size,
            cached: false,
            finished: s.outcome.is_some(),
        }
    }

    fn start(&self, file: Arc<File>) {
        self.lock().file = Some(file);
    }

    fn publish(&self, written: u64) {
        self.lock().written = written;
        self.changed.notify_all();
    }

    /// Records how the download ended (the first word counts) and wakes the readers.
    fn finish(&self, outcome: Outcome) {
        let mut s = self.lock();
        if s.outcome.is_none() {
            s.outcome = Some(outcome);
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Marks a download that never started as failed, so that no reader waits for it.
    pub fn abandon(&self, why: &str) {
        if !self.cached {
            self.finish(Outcome::Failed(ErrorKind::Registry, why.to_string()));
        }
    }

    /// Opens the blob for reading from its start: the cached file, or the download in
    /// progress.
    pub fn open(self: &Arc<Self>) -> Result<Box<dyn Read + Send>> {
        if self.cached {
            let f = File::open(&self.path)
                .map_err(|e| Error::io(format!("cannot open {}", self.path.display()), e))?;
            return Ok(Box::new(f));
        }
        Ok(Box::new(SlotReader {
            slot: self.clone(),
            pos: 0,
        }))
    }
}

/// Reads a blob while it downloads.
struct SlotReader {
    slot: Arc<Slot>,
    pos: u64,
}

impl Read for SlotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let slot = &self.slot;
        let mut s = slot.lock();
        loop {
            if self.pos < s.written {
                let Some(file) = s.file.clone() else {
                    return Err(io::Error::other(Error::new(
                        ErrorKind::Io,
                        "download has no file",
                    )));
                };
                let n = (s.written - self.pos).min(buf.len() as u64) as usize;
                drop(s);
                let got = file.read_at(&mut buf[..n], self.pos)?;
                if got == 0 {
                    return Err(io::Error::other(Error::new(
                        ErrorKind::Io,
                        "the downloaded file is shorter than was written",
                    )));
                }
                self.pos += got as u64;
                return Ok(got);
            }
            match &s.outcome {
                Some(Outcome::Done) => return Ok(0),
                Some(Outcome::Failed(kind, m)) => {
                    return Err(io::Error::other(Error::new(*kind, m.clone())))
                }
                None => {}
            }
            if slot
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
            {
                return Err(io::Error::other(Error::new(
                    ErrorKind::Cancelled,
                    "cancelled",
                )));
            }
            s = slot
                .changed
                .wait_timeout(s, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Marks the slot failed if the download task is dropped (cancelled) before it ended, so no
/// reader waits forever.
struct EndGuard(Arc<Slot>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.finish(Outcome::Failed(
            ErrorKind::Cancelled,
            "the download was cancelled".into(),
        ));
    }
}

/// Writes what the stream delivers to the temporary file, hashing it.
struct Sink {
    file: Arc<File>,
    hasher: Sha256,
    written: u64,
    batch: Vec<u8>,
}

impl Sink {
    fn push(&mut self, data: &[u8], slot: &Slot) -> io::Result<()> {
        self.batch.extend_from_slice(data);
        if self.batch.len() >= WRITE_BATCH {
            self.flush(slot)?;
        }
        Ok(())
    }

    fn flush(&mut self, slot: &Slot) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.batch, self.written)?;
        self.hasher.update(&self.batch);
        self.written += self.batch.len() as u64;
        self.batch.clear();
        slot.publish(self.written);
        Ok(())
    }
}

/// Downloads the blob of `slot` into the cache, retrying what is worth retrying and resuming
/// where a cut connection stopped, within `timeout`. The slot is told how it ended.
pub async fn download(
    session: Arc<Session>,
    cache: Arc<Cache>,
    slot: Arc<Slot>,
    retries: u32,
    timeout: Duration,
) -> Result<u64> {
    let guard = EndGuard(slot.clone());
    let result = match tokio::time::timeout(timeout, fetch(&session, &cache, &slot, retries)).await
    {
        Ok(r) => r,
        Err(_) => {
            let got = slot.progress().received;
            Err(Error::new(
                ErrorKind::Registry,
                format!(
                    "download of blob {} from {} timed out after {} s ({got} of {} bytes received)",
                    slot.digest,
                    session.registry(),
                    timeout.as_secs(),
                    slot.size
                ),
            ))
        }
    };
    match &result {
        Ok(_) => slot.finish(Outcome::Done),
        Err(e) => slot.finish(Outcome::Failed(e.kind(), e.message().to_string())),
    }
    drop(guard);
    result
}

async fn fetch(session: &Session, cache: &Cache, slot: &Slot, retries: u32) -> Result<u64> {
    let temp = cache.temporary()?;
    let file = Arc::new(
        temp.as_file()
            .try_clone()
            .map_err(|e| Error::io("cannot reopen a temporary file", e))?,
    );
    slot.start(file.clone());
    let mut sink = Sink {
        file,
        hasher: Sha256::new(),
        written: 0,
        batch: Vec::with_capacity(WRITE_BATCH),
    };
    let digest = slot.digest.to_string();
    let what = format!("blob {digest}");
    let mut attempt = 0u32;
    loop {
        let result = async {
            let (mut stream, mut skip) = session.open_blob(&digest, sink.written).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                let mut data = &chunk[..];
                if skip > 0 {
                    let n = skip.min(data.len() as u64) as usize;
                    data = &data[n..];
                    skip -= n as u64;
                }
                // Never past the declared size: what a registry sends beyond it is not read.
                let room = slot
                    .size
                    .saturating_sub(sink.written + sink.batch.len() as u64);
                let full = data.len() as u64 >= room;
                if full {
                    data = &data[..usize::try_from(room).unwrap_or(data.len())];
                }
                if !data.is_empty() {
                    sink.push(data, slot)?;
                }
                if full {
                    break;
                }
            }
            sink.flush(slot)?;
            Ok::<(), OciDistributionError>(())
        }
        .await;
        match result {
            Ok(()) => break,
            // oci-client's own digest check failed at the end of the stream; every byte has
            // arrived, and the check below says what came.
            Err(OciDistributionError::IoError(io)) if is_digest_error(&io) => {
                sink.flush(slot)
                    .map_err(|e| Error::io("cannot write to the cache", e))?;
                break;
            }
            Err(e) if attempt < retries && retryable(&e) => {
                // Keep what arrived; the next request asks for the rest.
                sink.flush(slot)
                    .map_err(|e| Error::io("cannot write to the cache", e))?;
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => {
                let err = session.describe(&e, &what);
                return Err(if attempt > 0 {
                    Error::new(
                        err.kind(),
                        format!("{} (after {} attempts)", err.message(), attempt + 1),
                    )
                } else {
                    err
                });
            }
        }
    }
    let got = Digest::parse(&format!("sha256:{}", hex(&sink.hasher.clone().finalize())))?;
    if slot.size != 0 && sink.written != slot.size {
        return Err(Error::new(
            ErrorKind::DigestMismatch,
            format!(
                "blob {digest} from {} has {} bytes, its descriptor says {}; not kept",
                session.registry(),
                sink.written,
                slot.size
            ),
        ));
    }
    if got != slot.digest {
        return Err(Error::new(
            ErrorKind::DigestMismatch,
            format!(
                "blob digest mismatch: {} sent {got} for {digest}; it is not kept",
                session.registry()
            ),
        ));
    }
    cache.commit(temp, &slot.digest)?;
    Ok(sink.written)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reader_follows_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let slot = Slot::new(
            Digest::of(&data),
            data.len() as u64,
            dir.path().join("final"),
            false,
            None,
        );
        slot.start(Arc::new(temp.as_file().try_clone().unwrap()));
        let mut reader = slot.open().unwrap();
        let writer = {
            let slot = slot.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                let mut written = 0;
                for chunk in data.chunks(7000) {
                    temp.write_all(chunk).unwrap();
                    written += chunk.len() as u64;
                    slot.publish(written);
                    std::thread::sleep(Duration::from_millis(1));
                }
                slot.finish(Outcome::Done);
            })
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        writer.join().unwrap();
        assert_eq!(out, data);
        assert!(slot.progress().finished);
    }

    #[test]
    fn reader_reports_the_failure() {
        let dir = tempfile::tempdir().unwrap();
        let temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        temp.as_file().write_all_at(b"abc", 0).unwrap();
        let slot = Slot::new(Digest::of(b"x"), 10, dir.path().join("f"), false, None);
        slot.start(Arc::new(temp.as_file().try_clone().unwrap()));
        slot.publish(3);
        let guard = EndGuard(slot.clone());
        let mut r = slot.open().unwrap();
        let mut b = [0u8; 10];
        assert_eq!(r.read(&mut b).unwrap(), 3);
        drop(guard);
        let e: Error = r.read(&mut b).unwrap_err().into();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
        assert!(slot.progress().finished);
    }
}

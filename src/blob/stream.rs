//! A layer stream decompressed on its own thread.
//!
//! The blob is read and hashed (the blob digest) ahead by [`ReadAhead`] on a thread of its own;
//! this module's thread decompresses it and hands the result over in large chunks through a
//! bounded channel ([`super::chunks`]). The consuming thread hashes each chunk as it arrives
//! (the `diff_id`), parses the tar and writes the image meanwhile: on two cores the inflating,
//! the slowest stage, has one to itself while the rest share the other. Memory in flight is
//! bounded by each stage's channel depth plus two, times its chunk size (1.5 MiB read ahead,
//! 3 MiB inflated).

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use super::compression::{self, Compression};
use sha2::{Digest as _, Sha256};

use super::chunks::{self, Current, Spare};
use super::digest::Digest;
use super::read_ahead::ReadAhead;
use crate::error::{Error, Result};

/// Bytes per chunk handed over.
const CHUNK: usize = 512 << 10;
/// Chunks in flight.
const DEPTH: usize = 4;

/// Which digests a stream computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashing {
    /// The blob's digest (of the bytes as read).
    pub blob: bool,
    /// The `diff_id` (of the decompressed bytes).
    pub diff: bool,
}

/// What a finished stream measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamDigests {
    /// Digest of the bytes as read (the blob), if computed.
    pub blob: Option<Digest>,
    /// Bytes as read.
    pub blob_size: u64,
    /// Digest of the decompressed bytes (the `diff_id`), if computed.
    pub diff_id: Option<Digest>,
    /// Decompressed bytes.
    pub diff_size: u64,
    /// The compression found.
    pub compression: Compression,
}

/// What the decompressing thread measured.
struct Produced {
    blob: Option<Digest>,
    blob_size: u64,
    compression: Compression,
}

enum Msg {
    /// The compression found, before any data.
    Start(Compression),
    Data(Vec<u8>),
    End(Result<Produced>),
}

/// Opens the raw blob stream; runs on the layer's reading thread, and again to check a blob's
/// digest when its content could not be parsed.
pub type Opener = Arc<dyn Fn() -> Result<Box<dyn Read + Send>> + Send + Sync>;

/// The consuming end: decompressed bytes in order.
pub struct LayerStream {
    rx: Receiver<Msg>,
    recycle: Sender<Vec<u8>>,
    current: Current,
    hashing: Hashing,
    diff: Option<Sha256>,
    diff_size: u64,
    end: Option<Result<Produced>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a thread that streams the blob `open` returns, computing the digests `hashing` asks
/// for.
pub fn spawn(open: Opener, hashing: Hashing) -> LayerStream {
    let (tx, rx) = mpsc::sync_channel(DEPTH);
    let (recycle, spare) = chunks::recycling();
    let thread = thread::Builder::new()
        .name("layer-decompress".into())
        .spawn(move || {
            let result = produce(open, hashing.blob, &tx, &spare);
            // The consumer may have gone; nothing to tell then.
            let _ = tx.send(Msg::End(result));
        })
        .ok();
    LayerStream {
        rx,
        recycle,
        current: Current::default(),
        hashing,
        diff: None,
        diff_size: 0,
        end: None,
        thread,
    }
}

/// The thread's work. Returns the blob's digest once every byte was read.
fn produce(open: Opener, hash_blob: bool, tx: &SyncSender<Msg>, spare: &Spare) -> Result<Produced> {
    let mut blob = ReadAhead::open(open, hash_blob)?;
    let compression = compression::detect(&mut blob)?;
    if tx.send(Msg::Start(compression)).is_err() {
        return Err(Error::new(
            crate::ErrorKind::Cancelled,
            "layer stream abandoned",
        ));
    }
    let mut diff = compression::decoder(&mut blob, compression)?;
    loop {
        let mut buf = spare.take(CHUNK);
        match chunks::fill(&mut diff, &mut buf) {
            Ok(()) => {}
            // Failures to read the blob arrive as this crate's I/O errors; anything else is
            // the decoder finding the stream corrupt.
            Err(e) if e.get_ref().is_some_and(|i| i.is::<Error>()) => return Err(e.into()),
            Err(e) => {
                return Err(
                    Error::corrupt(format!("{} stream is corrupt", compression.name()))
                        .with_cause(e),
                )
            }
        }
        let last = buf.len() < CHUNK;
        if !buf.is_empty() && tx.send(Msg::Data(buf)).is_err() {
            return Err(Error::new(
                crate::ErrorKind::Cancelled,
                "layer stream abandoned",
            ));
        }
        if last {
            break;
        }
    }
    drop(diff);
    // Bytes after the compressed stream still belong to the blob.
    io::copy(&mut blob, &mut io::sink()).map_err(super::read_error)?;
    let (blob_digest, blob_size) = blob.finish()?;
    Ok(Produced {
        blob: blob_digest,
        blob_size,
        compression,
    })
}

impl LayerStream {
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.end.is_some() {
            return Ok(false);
        }
        self.current.replace(Vec::new(), &self.recycle);
        match self.rx.recv() {
            Ok(Msg::Start(c)) => {
                // Uncompressed, the diff_id is the blob digest: hash the bytes once.
                let shared = c == Compression::None && self.hashing.blob;
                if self.hashing.diff && !shared {
                    self.diff = Some(Sha256::new());
                }
                self.next_chunk()
            }
            Ok(Msg::Data(c)) => {
                if let Some(h) = &mut self.diff {
                    h.update(&c);
                }
                self.diff_size += c.len() as u64;
                self.current.replace(c, &self.recycle);
                Ok(true)
            }
            Ok(Msg::End(Ok(d))) => {
                self.end = Some(Ok(d));
                Ok(false)
            }
            Ok(Msg::End(Err(e))) => Err(io::Error::other(e)),
            Err(_) => Err(io::Error::other(Error::new(
                crate::ErrorKind::Io,
                "the layer decompression thread stopped",
            ))),
        }
    }

    /// Reads the rest of the stream and returns its digests and the count of non-zero bytes
    /// found after what the consumer read (data after the end of the archive).
    pub fn finish(mut self) -> Result<(StreamDigests, u64)> {
        let mut trailing_nonzero = self.current.rest().iter().filter(|&&b| b != 0).count() as u64;
        while self.next_chunk()? {
            trailing_nonzero += self.current.rest().iter().filter(|&&b| b != 0).count() as u64;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let diff_id = self
            .diff
            .take()
            .map(|h| Digest::from_bytes(h.finalize().into()));
        match self.end.take() {
            Some(Ok(p)) => {
                let diff_id = match diff_id {
                    None if self.hashing.diff && p.compression == Compression::None => p.blob,
                    d => d,
                };
                let digests = StreamDigests {
                    blob: p.blob,
                    blob_size: p.blob_size,
                    diff_id,
                    diff_size: self.diff_size,
                    compression: p.compression,
                };
                Ok((digests, trailing_nonzero))
            }
            Some(Err(e)) => Err(e),
            None => Err(Error::new(
                crate::ErrorKind::Io,
                "layer stream ended without digests",
            )),
        }
    }
}

impl Read for LayerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.rest().is_empty() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        Ok(self.current.copy_to(buf))
    }
}

impl Drop for LayerStream {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next send.
        let (_, rx) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Hashing = Hashing {
        blob: true,
        diff: true,
    };
    use std::io::Write;

    #[test]
    fn streams_and_digests() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let blob = gz.finish().unwrap();
        let expect_blob = Digest::of(&blob);
        let mut s = spawn(
            Arc::new(move || {
                Ok(Box::new(std::io::Cursor::new(blob.clone())) as Box<dyn Read + Send>)
            }),
            ALL,
        );
        let mut head = vec![0u8; 1000];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head[..], &data[..1000]);
        let (d, trailing) = s.finish().unwrap();
        assert_eq!(d.diff_id, Some(Digest::of(&data)));
        assert_eq!(d.blob, Some(expect_blob));
        assert_eq!(d.diff_size, data.len() as u64);
        assert_eq!(d.compression, Compression::Gzip);
        assert!(trailing > 0);
    }

    #[test]
    fn corrupt_streams_fail() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[1u8; 100_000]).unwrap();
        let mut blob = gz.finish().unwrap();
        blob.truncate(blob.len() / 2);
        let mut s = spawn(
            Arc::new(move || {
                Ok(Box::new(std::io::Cursor::new(blob.clone())) as Box<dyn Read + Send>)
            }),
            ALL,
        );
        let mut out = Vec::new();
        let err = s.read_to_end(&mut out).unwrap_err();
        let err: Error = err.into();
        assert_eq!(err.kind(), crate::ErrorKind::CorruptInput, "{err}");
    }

    #[test]
    fn a_read_failure_inside_a_gzip_stream_is_an_io_error_not_corruption() {
        // Incompressible, so that the failure comes chunks into the compressed stream.
        let mut x = 0x9e37_79b9_u32;
        let data: Vec<u8> = (0..2_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let blob = gz.finish().unwrap();
        let half = blob.len() / 2;
        let mut s = spawn(
            Arc::new(move || {
                let head = std::io::Cursor::new(blob[..half].to_vec());
                Ok(Box::new(head.chain(Failing)) as Box<dyn Read + Send>)
            }),
            ALL,
        );
        let err: Error = s.read_to_end(&mut Vec::new()).unwrap_err().into();
        assert_eq!(err.kind(), crate::ErrorKind::Io, "{err}");

        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let data = vec![5u8; 50 << 20];
        let mut s = spawn(
            Arc::new(move || {
                Ok(Box::new(std::io::Cursor::new(data.clone())) as Box<dyn Read + Send>)
            }),
            ALL,
        );
        let mut b = [0u8; 10];
        s.read_exact(&mut b).unwrap();
        drop(s);
    }

    #[test]
    fn uncompressed_streams_share_one_hash() {
        let data = b"plain tar bytes".repeat(100_000);
        let expect = Digest::of(&data);
        for hashing in [
            ALL,
            Hashing {
                blob: false,
                diff: true,
            },
            Hashing {
                blob: true,
                diff: false,
            },
        ] {
            let d2 = data.clone();
            let mut s = spawn(
                Arc::new(move || {
                    Ok(Box::new(std::io::Cursor::new(d2.clone())) as Box<dyn Read + Send>)
                }),
                hashing,
            );
            std::io::copy(&mut s, &mut std::io::sink()).unwrap();
            let (d, _) = s.finish().unwrap();
            assert_eq!(d.compression, Compression::None);
            assert_eq!(d.diff_id, hashing.diff.then_some(expect), "{hashing:?}");
            assert_eq!(d.blob, hashing.blob.then_some(expect), "{hashing:?}");
        }
    }
}

//! The compressed side of a layer stream, read and hashed on a thread of its own.
//!
//! Hashing a blob costs a fraction of inflating it (a fifth on the nearly incompressible
//! large-file benchmark image). Done on the decompressing thread, the slowest stage of a gzip
//! build, it adds that fraction to the whole build; on a thread of its own it overlaps the
//! inflating. The thread opens the blob, fills whole chunks (so the first one
//! holds the compression's magic bytes unless the blob is shorter), hashes each and hands it over
//! through a bounded channel ([`super::chunks`]).

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, JoinHandle};

use super::chunks::{self, Current, Spare};
use super::digest::{Digest, HashingReader};
use super::stream::Opener;
use crate::error::{Error, Result};

/// Bytes per chunk.
const CHUNK: usize = 256 << 10;
/// Chunks in flight.
const DEPTH: usize = 4;

enum Raw {
    /// The blob was opened (or could not be), before any data.
    Opened(Result<()>),
    /// The next chunk of the blob, full unless it is the last.
    Data(Vec<u8>),
    /// A read failed; nothing follows.
    Failed(io::Error),
    /// The end of the blob: its digest (when hashing) and size.
    End(Option<Digest>, u64),
}

/// The consuming end: the blob's bytes in order, as a buffered reader.
pub struct ReadAhead {
    rx: Receiver<Raw>,
    recycle: Sender<Vec<u8>>,
    current: Current,
    end: Option<(Option<Digest>, u64)>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts a thread that opens the blob with `open` and reads it ahead, hashing it if `hash`.
    /// Returns once the blob is open, with the opener's error if it could not be.
    pub fn open(open: Opener, hash: bool) -> Result<ReadAhead> {
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (recycle, spare) = chunks::recycling();
        let thread = thread::Builder::new()
            .name("layer-read".into())
            .spawn(move || read_blob(&open, hash, &tx, &spare))
            .map_err(|e| Error::io("cannot start a thread to read the layer", e))?;
        let this = ReadAhead {
            rx,
            recycle,
            current: Current::default(),
            end: None,
            thread: Some(thread),
        };
        match this.rx.recv() {
            Ok(Raw::Opened(opened)) => opened?,
            _ => return Err(this.stopped()),
        }
        Ok(this)
    }

    /// The blob's digest (when hashing) and size, once every byte was read. Called earlier, it
    /// fails: with an internal error if bytes are left, or with the reading thread's error if
    /// the next chunk could not be read.
    pub fn finish(mut self) -> Result<(Option<Digest>, u64)> {
        if !self.current.rest().is_empty() || self.next_chunk()? {
            return Err(Error::new(
                crate::ErrorKind::Internal,
                "blob digest asked for before the blob was read to its end",
            ));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.end.take().ok_or_else(|| self.stopped())
    }

    /// Moves to the next chunk; false at the end of the blob.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.end.is_some() {
            return Ok(false);
        }
        self.current.replace(Vec::new(), &self.recycle);
        match self.rx.recv() {
            Ok(Raw::Data(c)) => {
                self.current.replace(c, &self.recycle);
                Ok(true)
            }
            Ok(Raw::End(digest, size)) => {
                self.end = Some((digest, size));
                Ok(false)
            }
            Ok(Raw::Failed(e)) => Err(e),
            Ok(Raw::Opened(_)) | Err(_) => Err(io::Error::other(self.stopped())),
        }
    }

    fn stopped(&self) -> Error {
        Error::new(crate::ErrorKind::Io, "the layer reading thread stopped")
    }
}

/// The thread's work: open, then read whole chunks until the end or a failure, each sent on.
fn read_blob(open: &Opener, hash: bool, tx: &SyncSender<Raw>, spare: &Spare) {
    let raw = match open() {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Raw::Opened(Err(e)));
            return;
        }
    };
    if tx.send(Raw::Opened(Ok(()))).is_err() {
        return;
    }
    let mut raw = HashingReader::new(raw, hash);
    loop {
        let mut buf = spare.take(CHUNK);
        if let Err(e) = chunks::fill(&mut raw, &mut buf) {
            let _ = tx.send(Raw::Failed(io::Error::other(super::read_error(e))));
            return;
        }
        let last = buf.len() < CHUNK;
        // A closed channel means the consumer has gone: nothing more to do.
        if !buf.is_empty() && tx.send(Raw::Data(buf)).is_err() {
            return;
        }
        if last {
            break;
        }
    }
    let (digest, size) = raw.finish();
    let _ = tx.send(Raw::End(hash.then_some(digest), size));
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.rest().is_empty() {
            if !self.next_chunk()? {
                break;
            }
        }
        Ok(self.current.rest())
    }

    fn consume(&mut self, amt: usize) {
        self.current.advance(amt);
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fill_buf()?;
        Ok(self.current.copy_to(buf))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next send; it is waited for, so that
        // what its reader holds (a spooled temporary file, say) is gone when this returns.
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
    use std::sync::Arc;

    fn opener(data: Vec<u8>) -> Opener {
        Arc::new(move || Ok(Box::new(std::io::Cursor::new(data.clone())) as Box<dyn Read + Send>))
    }

    #[test]
    fn reads_every_byte_in_order_and_hashes_them() {
        // Sizes around the chunk size, and none.
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 77] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut r = ReadAhead::open(opener(data.clone()), true).unwrap();
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert_eq!(got, data, "len {len}");
            let (digest, size) = r.finish().unwrap();
            assert_eq!(digest, Some(Digest::of(&data)), "len {len}");
            assert_eq!(size, len as u64);
        }
        let mut r = ReadAhead::open(opener(vec![1; 10]), false).unwrap();
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(r.finish().unwrap(), (None, 10));
    }

    #[test]
    fn finishing_before_the_end_is_an_error() {
        let mut r = ReadAhead::open(opener(vec![1; 3 * CHUNK]), true).unwrap();
        let mut head = [0u8; 100];
        r.read_exact(&mut head).unwrap();
        assert_eq!(r.finish().unwrap_err().kind(), crate::ErrorKind::Internal);
    }

    #[test]
    fn open_and_read_errors_keep_their_kind() {
        let refused: Opener =
            Arc::new(|| Err(Error::new(crate::ErrorKind::Registry, "no such blob")));
        let Err(e) = ReadAhead::open(refused, true) else {
            panic!("opened a blob that cannot be opened");
        };
        assert_eq!(e.kind(), crate::ErrorKind::Registry);

        struct FailsAfter(usize);
        impl Read for FailsAfter {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::from(io::ErrorKind::ConnectionReset));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(9);
                self.0 -= n;
                Ok(n)
            }
        }
        let failing: Opener =
            Arc::new(|| Ok(Box::new(FailsAfter(CHUNK + 5)) as Box<dyn Read + Send>));
        let mut r = ReadAhead::open(failing, true).unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        let e: Error = e.into();
        assert_eq!(e.kind(), crate::ErrorKind::Io, "{e}");
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let data = vec![5u8; 64 * CHUNK];
        let mut r = ReadAhead::open(opener(data), true).unwrap();
        let mut b = [0u8; 10];
        r.read_exact(&mut b).unwrap();
        let thread = r.thread.take().unwrap();
        drop(r);
        // The thread ends at its next send into the closed channel.
        thread.join().unwrap();
    }
}

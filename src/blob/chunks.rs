//! Chunks handed from a producing thread to a consumer and back, the one mechanism under both
//! stages of a layer stream ([`super::read_ahead`] and [`super::stream`]).
//!
//! The producer fills whole chunks (so a consumer peeking at the start sees enough bytes) and
//! sends them through a bounded channel; the consumer returns each emptied chunk, and the
//! producer takes a returned one before allocating. At most the channel's depth plus two
//! chunks exist at once: those queued, the one being filled and the one being read.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

/// The producer's end of the returned chunks.
pub struct Spare(Receiver<Vec<u8>>);

/// The way back for emptied chunks: the consumer's end (to [`Current::replace`]) and the
/// producer's.
pub fn recycling() -> (Sender<Vec<u8>>, Spare) {
    let (tx, rx) = mpsc::channel();
    (tx, Spare(rx))
}

impl Spare {
    /// A chunk `len` bytes long: a returned one if any, else a new one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = match self.0.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(len),
        };
        buf.resize(len, 0);
        buf
    }
}

/// Reads until `buf` is full or `r` ends, retrying interrupted reads; returns the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Fills `chunk` from `r` with [`read_full`] and cuts it to what was read.
pub fn fill(r: &mut impl Read, chunk: &mut Vec<u8>) -> io::Result<()> {
    let n = read_full(r, chunk)?;
    chunk.truncate(n);
    Ok(())
}

/// The consumer's current chunk and its read position.
#[derive(Default)]
pub struct Current {
    chunk: Vec<u8>,
    pos: usize,
}

impl Current {
    /// Returns the current chunk to the producer (dropped if the producer has gone) and
    /// starts on `next`.
    pub fn replace(&mut self, next: Vec<u8>, recycle: &Sender<Vec<u8>>) {
        let old = std::mem::replace(&mut self.chunk, next);
        if old.capacity() > 0 {
            let _ = recycle.send(old);
        }
        self.pos = 0;
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &[u8] {
        &self.chunk[self.pos..]
    }

    /// Marks `n` more bytes read (at most the rest).
    pub fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.chunk.len());
    }

    /// Copies unread bytes into `buf`; returns how many.
    pub fn copy_to(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_reads_to_full_or_end_through_short_and_interrupted_reads() {
        struct Awkward {
            data: Vec<u8>,
            at: usize,
            calls: usize,
        }
        impl Read for Awkward {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.calls += 1;
                if self.calls.is_multiple_of(3) {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                let n = buf.len().min(7).min(self.data.len() - self.at);
                buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
                self.at += n;
                Ok(n)
            }
        }
        let data: Vec<u8> = (0..100u8).collect();
        let mut r = Awkward {
            data: data.clone(),
            at: 0,
            calls: 0,
        };
        let mut buf = vec![0u8; 64];
        fill(&mut r, &mut buf).unwrap();
        assert_eq!(buf, data[..64]);
        let mut buf = vec![0u8; 64];
        fill(&mut r, &mut buf).unwrap();
        assert_eq!(buf, data[64..]);
    }

    #[test]
    fn chunks_come_back_for_reuse() {
        let (recycle, spare) = recycling();
        let mut current = Current::default();
        let first = spare.take(16);
        let first_at = first.as_ptr();
        current.replace(first, &recycle);
        let mut out = [0u8; 10];
        assert_eq!(current.copy_to(&mut out), 10);
        assert_eq!(current.rest().len(), 6);
        current.replace(Vec::new(), &recycle);
        // The returned chunk is the one handed out next.
        let again = spare.take(16);
        assert_eq!(again.as_ptr(), first_at);
        assert!(current.rest().is_empty());
    }
}

//! Chunks handed from a producing thread to a consumer and back, the one mechanism under both
//! stages of a layer stream ([`super::read_ahead`] and [`super::stream`]).
//!
//! The producer fills whole chunks (so a consumer peeking at the start sees enough bytes) and
//! sends them through a bounded channel; the consumer returns each emptied chunk, and the
//! producer takes a returned one before allocating. Memory in flight is bounded by the
//! channel's depth times the chunk length.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

/// The producer's end of the returned chunks.
pub struct Spare(pub Receiver<Vec<u8>>);

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

/// Reads into `buf` until it is full or `r` ends, retrying interrupted reads; `buf` is cut to
/// what was read. On an error `buf` is left as it is.
pub fn fill(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(())
}

/// The consumer's current chunk and its read position.
#[derive(Default)]
pub struct Current {
    /// The chunk being read.
    pub chunk: Vec<u8>,
    /// Bytes of it read so far.
    pub pos: usize,
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
    use std::sync::mpsc;

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
        let (recycle, rx) = mpsc::channel();
        let spare = Spare(rx);
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
        assert_eq!(current.pos, 0);
    }
}

//! dm-verity hash trees appended to an image, in the format `veritysetup format` writes:
//! format 1, sha256, 4096-byte data and hash blocks. The kernel's dm-verity target then refuses
//! any block of the image whose hash does not lead to the root hash it was given.
//!
//! [`append`] reads the image once, skipping its holes (a block of zeros has one hash, computed
//! once), and writes the tree after the data, optionally behind veritysetup's superblock.
//! `superblock` is that superblock's encoding; `tree` computes the tree as the data streams.

mod superblock;
mod tree;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
pub use superblock::VERITY_MAX_SALT;
use superblock::{VeritySuperblock, VERITY_SB_SIZE};
use tree::{hash_block, TreeBuilder};

/// Data and hash block size in bytes.
pub const VERITY_BLOCK_SIZE: u64 = 4096;

/// The hash algorithm, by the name dm-verity and veritysetup give it.
pub const VERITY_ALGORITHM: &str = "sha256";

/// The hash format: 1, the salt hashed before each block (0 is Chrome OS's older format).
pub const VERITY_FORMAT: u32 = 1;

/// Bytes read at a time.
const CHUNK: usize = 4 << 20;

/// Bytes of hash blocks gathered before a write.
const WRITE_RUN: usize = 1 << 20;

/// How a build appends a hash tree (see [`crate::BuildOptions::verity`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerityOptions {
    /// The salt (at most [`VERITY_MAX_SALT`] bytes; empty for none). Default: 32 bytes derived
    /// from the image's content, so equal input gives equal images.
    pub salt: Option<Vec<u8>>,
    /// Write veritysetup's superblock before the tree, as `veritysetup format` does by
    /// default; then `veritysetup open` needs only the hash offset and the root hash.
    pub superblock: bool,
    /// UUID in the superblock. Default: derived from the root hash.
    pub uuid: Option<[u8; 16]>,
}

impl VerityOptions {
    /// Uses `salt` (at most [`VERITY_MAX_SALT`] bytes; empty for none) instead of a derived one.
    pub fn with_salt(mut self, salt: impl Into<Vec<u8>>) -> Self {
        self.salt = Some(salt.into());
        self
    }

    /// Writes veritysetup's superblock before the tree, or not.
    pub fn with_superblock(mut self, superblock: bool) -> Self {
        self.superblock = superblock;
        self
    }

    /// Puts `uuid` in the superblock instead of one derived from the root hash.
    pub fn with_uuid(mut self, uuid: [u8; 16]) -> Self {
        self.uuid = Some(uuid);
        self
    }
}

/// Parameters of [`append`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct HashTreeParams<'a> {
    /// The salt, at most [`VERITY_MAX_SALT`] bytes.
    pub salt: &'a [u8],
    /// Write veritysetup's superblock before the tree.
    pub superblock: bool,
    /// UUID in the superblock; `None` derives one from the root hash.
    pub uuid: Option<[u8; 16]>,
    /// When set to true, [`append`] stops with [`crate::ErrorKind::Cancelled`].
    pub cancel: Option<&'a AtomicBool>,
}

impl<'a> HashTreeParams<'a> {
    /// A tree salted with `salt`, without a superblock, its UUID derived, not cancellable.
    pub fn new(salt: &'a [u8]) -> Self {
        HashTreeParams {
            salt,
            superblock: false,
            uuid: None,
            cancel: None,
        }
    }
}

/// The hash tree that was appended, and how to use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerityInfo {
    /// Root hash, in hex.
    pub root_hash: String,
    /// Salt, in hex (`-` for none, as veritysetup and the kernel write it).
    pub salt: String,
    /// Hash algorithm.
    pub algorithm: &'static str,
    /// Hash format version.
    pub format: u32,
    /// Data block size in bytes.
    pub data_block_size: u64,
    /// Hash block size in bytes.
    pub hash_block_size: u64,
    /// Data blocks covered: the whole filesystem, from byte 0.
    pub data_blocks: u64,
    /// Byte offset of the hash area in the image (veritysetup's `--hash-offset`): the end of
    /// the data.
    pub hash_offset: u64,
    /// Hash block where the tree starts, counted from the image's start (the dm-verity table's
    /// `hash_start_block`: past the superblock when there is one).
    pub hash_start_block: u64,
    /// Hash blocks in the tree.
    pub hash_blocks: u64,
    /// Whether veritysetup's superblock is at the hash offset.
    pub superblock: bool,
    /// UUID written in the superblock, when there is one.
    pub uuid: Option<String>,
}

impl VerityInfo {
    /// The `veritysetup open` command that maps `image` as `/dev/mapper/NAME`.
    pub fn veritysetup_open(&self, image: &str, name: &str) -> String {
        let image = shell_word(image);
        if self.superblock {
            format!(
                "veritysetup open {image} {name} {image} {} --hash-offset={}",
                self.root_hash, self.hash_offset
            )
        } else {
            format!(
                "veritysetup open {image} {name} {image} {} --hash-offset={} --no-superblock \
                 --format={} --hash={} --data-block-size={} --hash-block-size={} \
                 --data-blocks={} --salt={}",
                self.root_hash,
                self.hash_offset,
                self.format,
                self.algorithm,
                self.data_block_size,
                self.hash_block_size,
                self.data_blocks,
                self.salt
            )
        }
    }

    /// The dm-verity table line for the image on `device` (data and hash on the same device).
    pub fn dm_table(&self, device: &str) -> String {
        format!(
            "0 {} verity {} {device} {device} {} {} {} {} {} {} {}",
            self.data_blocks * (self.data_block_size / 512),
            self.format,
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            self.hash_start_block,
            self.algorithm,
            self.root_hash,
            self.salt
        )
    }

    /// The kernel command line that maps the image on `device` read-only as the verified
    /// device `name` at boot (`dm-mod.create=`, built-in dm-verity needed) and mounts it as the
    /// root filesystem.
    pub fn kernel_cmdline(&self, device: &str, name: &str) -> String {
        format!(
            "dm-mod.create=\"{name},,,ro,{}\" root=/dev/dm-0 ro",
            self.dm_table(device)
        )
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b));
    if plain && !s.is_empty() {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a salt given in hex (`-` or nothing for none).
pub fn parse_salt(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if s == "-" || s.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || {
        Error::invalid(format!(
            "verity salt {s:?} is not an even number of hex digits"
        ))
    };
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let salt = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()?;
    check_salt(&salt)?;
    Ok(salt)
}

/// Fails for a salt longer than veritysetup allows.
pub fn check_salt(salt: &[u8]) -> Result<()> {
    if salt.len() > VERITY_MAX_SALT {
        return Err(Error::invalid(format!(
            "a verity salt of {} bytes is longer than {VERITY_MAX_SALT} bytes",
            salt.len()
        )));
    }
    Ok(())
}

/// The salt of an image whose content digest is `digest`: 32 bytes, stable for equal input.
pub(crate) fn derive_salt(digest: &[u8; 32]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"oci2ext4 dm-verity salt\0");
    h.update(digest);
    h.finalize().to_vec()
}

/// A UUID derived from the root hash (version 8, RFC 9562 variant).
fn derive_uuid(root: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"oci2ext4 dm-verity uuid\0");
    h.update(root);
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0F) | 0x80;
    u[8] = (u[8] & 0x3F) | 0x80;
    u
}

/// Holes shorter than this between two data ranges are read rather than skipped: a read of
/// zeros costs less than another round of seeks, reads and hand-overs.
const SMALL_HOLE: u64 = 1 << 20;

/// The byte ranges of `file` below `end` that may hold data, widened to whole verity blocks
/// and joined across small holes; the rest is holes, which read as zeros.
fn data_ranges(file: &File, end: u64) -> Vec<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    let bs = VERITY_BLOCK_SIZE;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut at = 0u64;
    while at < end {
        let start = match seek(file, SeekFrom::Data(at)) {
            Ok(s) => s,
            // ENXIO: no data past `at`.
            Err(rustix::io::Errno::NXIO) => break,
            // A filesystem without SEEK_DATA: read everything.
            Err(_) => return vec![(0, end)],
        };
        if start >= end {
            break;
        }
        let stop = seek(file, SeekFrom::Hole(start)).unwrap_or(end).min(end);
        let (s, e) = (start / bs * bs, stop.div_ceil(bs) * bs);
        match ranges.last_mut() {
            Some(last) if last.1 + SMALL_HOLE >= s => last.1 = last.1.max(e),
            _ => ranges.push((s, e)),
        }
        at = stop.max(start + 1);
    }
    ranges
}

/// Hash blocks on their way to the file: consecutive ones are gathered into runs.
struct TreeWriter<'f> {
    file: &'f File,
    offset: u64,
    runs: Vec<(u64, Vec<u8>)>,
}

impl TreeWriter<'_> {
    fn put(&mut self, at: u64, block: &[u8]) -> std::io::Result<()> {
        let bs = VERITY_BLOCK_SIZE;
        let i = match self
            .runs
            .iter()
            .position(|(start, buf)| start + buf.len() as u64 / bs == at)
        {
            Some(i) => i,
            None => {
                self.runs.push((at, Vec::with_capacity(WRITE_RUN)));
                self.runs.len() - 1
            }
        };
        self.runs[i].1.extend_from_slice(block);
        if self.runs[i].1.len() >= WRITE_RUN {
            let (start, buf) = self.runs.swap_remove(i);
            self.file.write_all_at(&buf, self.offset + start * bs)?;
        }
        Ok(())
    }

    fn finish(self) -> std::io::Result<()> {
        for (start, buf) in self.runs {
            self.file
                .write_all_at(&buf, self.offset + start * VERITY_BLOCK_SIZE)?;
        }
        Ok(())
    }
}

/// Hashes each 4096-byte block of `data` into `out`, on up to `workers` threads.
fn hash_blocks_into(salt: &[u8], data: &[u8], out: &mut [[u8; 32]], workers: usize) {
    let bs = VERITY_BLOCK_SIZE as usize;
    let per = out.len().div_ceil(workers.max(1)).max(1);
    if workers <= 1 || out.len() < 64 {
        for (d, block) in out.iter_mut().zip(data.chunks(bs)) {
            *d = hash_block(salt, block);
        }
        return;
    }
    std::thread::scope(|s| {
        let mut parts = out.chunks_mut(per).zip(data.chunks(per * bs));
        let first = parts.next();
        for (digests, data) in parts {
            s.spawn(move || hash_blocks_into(salt, data, digests, 1));
        }
        if let Some((digests, data)) = first {
            hash_blocks_into(salt, data, digests, 1);
        }
    });
}

/// Appends a dm-verity hash tree over the first `data_bytes` bytes of `file` (a multiple of
/// 4096), at `data_bytes`: the superblock first if asked, then the tree. The file ends with
/// the tree. Reads the data once, on a thread of its own while the hashing goes on; holes are
/// not read.
pub fn append(file: &File, data_bytes: u64, params: &HashTreeParams<'_>) -> Result<VerityInfo> {
    let bs = VERITY_BLOCK_SIZE;
    if data_bytes == 0 || !data_bytes.is_multiple_of(bs) {
        return Err(Error::invalid(format!(
            "dm-verity needs data of whole {bs}-byte blocks, not {data_bytes} bytes"
        )));
    }
    check_salt(params.salt)?;
    let data_blocks = data_bytes / bs;
    let tree_offset = data_bytes + if params.superblock { bs } else { 0 };
    let salt = params.salt;
    let zero_digest = hash_block(salt, &[0u8; VERITY_BLOCK_SIZE as usize]);
    let ranges = data_ranges(file, data_bytes);
    let write_err = |e: std::io::Error| Error::io("cannot write the dm-verity hash tree", e);

    let mut writer = TreeWriter {
        file,
        offset: tree_offset,
        runs: Vec::new(),
    };
    let mut builder = TreeBuilder::new(data_blocks, bs as usize, salt, |at, block: &[u8]| {
        writer.put(at, block)
    });
    let hash_blocks = builder.levels().total();
    // Chunks read go one way, emptied buffers the other; two buffers take turns.
    let (full_tx, full_rx) = mpsc::sync_channel::<(u64, usize, Vec<u8>)>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    for _ in 0..2 {
        // Cannot fail: the receiver is alive and the channel has room for both.
        let _ = empty_tx.send(vec![0u8; CHUNK]);
    }
    std::thread::scope(|s| -> Result<()> {
        let reader = s.spawn(move || -> std::io::Result<()> {
            for &(start, end) in &ranges {
                let mut at = start;
                while at < end {
                    let Ok(mut buf) = empty_rx.recv() else {
                        return Ok(());
                    };
                    let n = (end - at).min(CHUNK as u64) as usize;
                    // The file data may have been written past the page cache (with
                    // `--fsync`): ask for the next chunk while this one is read. Only advice;
                    // it may be ignored.
                    let ahead = at + n as u64;
                    if ahead < end {
                        let len = (end - ahead).min(CHUNK as u64);
                        let _ = rustix::fs::fadvise(
                            file,
                            ahead,
                            std::num::NonZeroU64::new(len),
                            rustix::fs::Advice::WillNeed,
                        );
                    }
                    file.read_exact_at(&mut buf[..n], at)?;
                    if full_tx.send((at, n, buf)).is_err() {
                        return Ok(());
                    }
                    at += n as u64;
                }
            }
            Ok(())
        });
        let mut next = 0u64;
        let mut digests: Vec<[u8; 32]> = Vec::new();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mut cancelled = false;
        let mut hashed = || -> std::io::Result<()> {
            for (at, len, buf) in full_rx.iter() {
                if params.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    cancelled = true;
                    break;
                }
                for _ in next..at / bs {
                    builder.push(&zero_digest)?;
                }
                digests.clear();
                digests.resize(len / bs as usize, [0u8; 32]);
                hash_blocks_into(salt, &buf[..len], &mut digests, workers);
                for d in &digests {
                    builder.push(d)?;
                }
                next = (at + len as u64) / bs;
                // The reader may be gone after an error; its result says why.
                let _ = empty_tx.send(buf);
            }
            Ok(())
        };
        let hashed = hashed();
        drop(empty_tx);
        drop(full_rx);
        reader
            .join()
            .map_err(|_| {
                Error::io(
                    "cannot read the image back for dm-verity",
                    std::io::Error::other("the reader panicked"),
                )
            })?
            .map_err(|e| Error::io("cannot read the image back for dm-verity", e))?;
        hashed.map_err(write_err)?;
        if cancelled {
            return Err(Error::new(ErrorKind::Cancelled, "build cancelled"));
        }
        for _ in next..data_blocks {
            builder.push(&zero_digest).map_err(write_err)?;
        }
        Ok(())
    })?;
    let root = builder
        .finish()
        .map_err(write_err)?
        .ok_or_else(|| Error::invalid("dm-verity needs at least one data block"))?;
    writer.finish().map_err(write_err)?;
    let uuid = params.uuid.unwrap_or_else(|| derive_uuid(&root));
    if params.superblock {
        let mut block = vec![0u8; bs as usize];
        VeritySuperblock {
            hash_type: VERITY_FORMAT,
            uuid,
            algorithm: VERITY_ALGORITHM,
            data_block_size: bs as u32,
            hash_block_size: bs as u32,
            data_blocks,
            salt,
        }
        .encode(&mut block[..VERITY_SB_SIZE]);
        file.write_all_at(&block, data_bytes).map_err(write_err)?;
    }
    file.set_len(tree_offset + hash_blocks * bs)
        .map_err(write_err)?;
    Ok(VerityInfo {
        root_hash: hex(&root),
        salt: if salt.is_empty() {
            "-".into()
        } else {
            hex(salt)
        },
        algorithm: VERITY_ALGORITHM,
        format: VERITY_FORMAT,
        data_block_size: bs,
        hash_block_size: bs,
        data_blocks,
        hash_offset: data_bytes,
        hash_start_block: tree_offset / bs,
        hash_blocks,
        superblock: params.superblock,
        uuid: params
            .superblock
            .then(|| uuid::Uuid::from_bytes(uuid).hyphenated().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_hash_each_block_in_its_place() {
        let data: Vec<u8> = (0..1000u32 * 4096)
            .map(|i| (i / 4096 + i % 251) as u8)
            .collect();
        let n = data.len() / 4096;
        let mut one = vec![[0u8; 32]; n];
        let mut three = vec![[0u8; 32]; n];
        hash_blocks_into(b"s", &data, &mut one, 1);
        hash_blocks_into(b"s", &data, &mut three, 3);
        assert_eq!(one, three);
        assert_eq!(one[999], hash_block(b"s", &data[999 * 4096..]));
    }

    #[test]
    fn salts_parse_as_hex() {
        assert_eq!(parse_salt("00ff1A").unwrap(), vec![0, 255, 26]);
        assert_eq!(parse_salt("-").unwrap(), Vec::<u8>::new());
        assert!(parse_salt("abc").is_err());
        assert!(parse_salt("zz").is_err());
        assert!(parse_salt("é1").is_err());
        assert!(parse_salt(&"00".repeat(257)).is_err());
    }
}

//! Compressed layer streams, recognised by their magic bytes rather than by file name or media
//! type alone.

use std::io::{self, BufRead, Read};

use crate::error::{Error, Result};

/// How a stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (one or more members).
    Gzip,
    /// Zstandard (one or more frames).
    Zstd,
}

impl Compression {
    /// Recognises the compression from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Result<Self> {
        match head {
            [0x1F, 0x8B, ..] => Ok(Compression::Gzip),
            [0x28, 0xB5, 0x2F, 0xFD, ..] => Ok(Compression::Zstd),
            // A zstd skippable frame (magic 0x184D2A50 to 0x184D2A5F), which a decoder passes
            // over to the frames that follow.
            [0x50..=0x5F, 0x2A, 0x4D, 0x18, ..] => Ok(Compression::Zstd),
            [0xFD, b'7', b'z', b'X', b'Z', 0x00, ..] => {
                Err(Error::unsupported("xz-compressed layers are not supported"))
            }
            [b'B', b'Z', b'h', ..] => Err(Error::unsupported(
                "bzip2-compressed layers are not supported",
            )),
            _ => Ok(Compression::None),
        }
    }

    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Peeks at `reader`'s first bytes to find the compression.
pub fn detect<R: BufRead>(reader: &mut R) -> Result<Compression> {
    let head = loop {
        match reader.fill_buf() {
            Ok(b) => break b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(super::read_error(e)),
        }
    };
    // A buffered reader returns at least the magic's six bytes unless the stream is shorter.
    Compression::detect(head)
}

/// How much a compressed container layer typically expands (gzip and zstd alike), for
/// estimates where the stream does not state its size.
pub const TYPICAL_RATIO: u64 = 3;

/// The content size a zstd frame header states, if it does (`Frame_Content_Size`).
pub fn zstd_content_size(head: &[u8]) -> Option<u64> {
    let [0x28, 0xB5, 0x2F, 0xFD, fhd, rest @ ..] = head else {
        return None;
    };
    let single_segment = fhd & 0x20 != 0;
    let skip = usize::from(!single_segment) + [0, 1, 2, 4][usize::from(fhd & 3)];
    let (len, add) = match fhd >> 6 {
        0 if single_segment => (1, 0),
        0 => return None,
        1 => (2, 256),
        2 => (4, 0),
        _ => (8, 0),
    };
    let field = rest.get(skip..skip + len)?;
    let mut v = [0u8; 8];
    v[..len].copy_from_slice(field);
    Some(u64::from_le_bytes(v) + add)
}

/// An estimate of the uncompressed size of a blob of `size` bytes that starts with `head`:
/// its own size when it is not compressed, the content size a zstd frame states (when that is
/// at least the blob's size: a blob of several frames states only the first's), else
/// [`TYPICAL_RATIO`] times its size.
pub fn estimate_expanded(head: &[u8], size: u64) -> u64 {
    match Compression::detect(head) {
        Ok(Compression::None) => size,
        Ok(Compression::Zstd) => zstd_content_size(head)
            .filter(|&n| n >= size)
            .unwrap_or(size.saturating_mul(TYPICAL_RATIO)),
        _ => size.saturating_mul(TYPICAL_RATIO),
    }
}

/// The uncompressed size of a gzip blob of `size` bytes whose trailer holds `isize` (the size
/// modulo 2^32): the smallest such size that is not far below the blob's own (deflate grows
/// incompressible data by a few per cent at most). A blob of several members states only its
/// last member's size, so this is an estimate, never less than the blob.
pub fn gzip_expanded(isize: u32, size: u64) -> u64 {
    let floor = size - size / 4;
    let mut n = u64::from(isize);
    while n < floor {
        n += 1 << 32;
    }
    n.max(size)
}

/// The uncompressed size of the blob of `size` bytes at `offset` in `file`, read from its first
/// bytes and, for gzip, its trailer: exact for plain tars, single-frame zstd blobs that state
/// their size and single-member gzip blobs; `None` when it cannot be read.
pub fn expanded_size_at(file: &std::fs::File, offset: u64, size: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 18];
    let got = (size as usize).min(head.len());
    file.read_exact_at(&mut head[..got], offset).ok()?;
    match Compression::detect(&head[..got]).ok()? {
        Compression::Gzip if size >= 18 => {
            let mut tail = [0u8; 4];
            file.read_exact_at(&mut tail, offset + size - 4).ok()?;
            Some(gzip_expanded(u32::from_le_bytes(tail), size))
        }
        _ => Some(estimate_expanded(&head[..got], size)),
    }
}

/// The uncompressed size of the blob in the file at `path` (see [`expanded_size_at`]); `None`
/// unless it is a regular file (a pipe or FIFO is neither opened nor read here: it can be read
/// only once, by the build).
pub fn expanded_size_of(path: &std::path::Path) -> Option<u64> {
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    expanded_size_at(&file, 0, size)
}

/// An estimate of the uncompressed size of a blob of `size` bytes of the OCI or Docker media
/// type `media_type` (for registry layers, which are sized before they download).
#[cfg(feature = "registry")]
pub fn estimate_expanded_by_type(media_type: &str, size: u64) -> u64 {
    if media_type.contains("gzip") || media_type.contains("zstd") {
        size.saturating_mul(TYPICAL_RATIO)
    } else {
        size
    }
}

/// The largest zstd window accepted when the frame does not state its content size (128 MiB,
/// what `zstd --long` uses).
const ZSTD_WINDOW_LOG_UNSIZED: u32 = 27;

/// The zstd window (as a power of two) a stream starting with `head` may use: what its stated
/// content size needs (at least 8 MiB, a level-19 window), else [`ZSTD_WINDOW_LOG_UNSIZED`].
fn zstd_window_log_max(head: &[u8]) -> u32 {
    match zstd_content_size(head) {
        Some(size) => (u64::BITS - size.saturating_sub(1).leading_zeros()).clamp(23, 31),
        None => ZSTD_WINDOW_LOG_UNSIZED,
    }
}

/// Wraps `reader` in the decoder for `compression`.
pub fn decoder<'a, R: BufRead + 'a>(
    mut reader: R,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => {
            let window_log = zstd_window_log_max(
                reader
                    .fill_buf()
                    .map_err(|e| Error::io("cannot read the layer", e))?,
            );
            let mut d = zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| Error::io("cannot start zstd", e))?;
            // The format allows windows of up to 2 GiB: no more memory than the content needs.
            d.window_log_max(window_log)
                .map_err(|e| Error::io("cannot configure zstd", e))?;
            Box::new(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn magic_numbers() {
        assert_eq!(
            Compression::detect(&[0x1F, 0x8B, 8]).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xB5, 0x2F, 0xFD]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"ustar").unwrap(), Compression::None);
        assert_eq!(Compression::detect(b"").unwrap(), Compression::None);
        assert!(Compression::detect(&[0xFD, b'7', b'z', b'X', b'Z', 0]).is_err());
        assert_eq!(
            Compression::detect(&[0x5A, 0x2A, 0x4D, 0x18]).unwrap(),
            Compression::Zstd
        );
    }

    #[test]
    fn zstd_skippable_frames_first() {
        let data = b"layer after a skippable frame".repeat(1000);
        for magic in [0x50u8, 0x5F] {
            let mut blob = vec![magic, 0x2A, 0x4D, 0x18, 5, 0, 0, 0];
            blob.extend_from_slice(b"skip!");
            blob.extend(zstd::bulk::compress(&data[..], 3).unwrap());
            let mut r = std::io::BufReader::new(&blob[..]);
            assert_eq!(detect(&mut r).unwrap(), Compression::Zstd);
            let mut out = Vec::new();
            decoder(r, Compression::Zstd)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data);
            // No content size is read from a skippable frame: the estimate is the ratio's.
            assert_eq!(estimate_expanded(&blob[..18], 100), 300);
        }
    }

    #[test]
    fn round_trips() {
        let data = b"some layer bytes".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for (blob, want) in [
            (gz, Compression::Gzip),
            (zs, Compression::Zstd),
            (data.clone(), Compression::None),
        ] {
            let mut r = std::io::BufReader::new(&blob[..]);
            let c = detect(&mut r).unwrap();
            assert_eq!(c, want);
            let mut out = Vec::new();
            decoder(r, c).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn gzip_trailers_give_the_size() {
        let data = b"some layer bytes".repeat(100_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"prefix").unwrap();
        f.write_all(&gz).unwrap();
        assert_eq!(
            expanded_size_at(&f, 6, gz.len() as u64),
            Some(data.len() as u64)
        );
        // Past 4 GiB the trailer wraps: the size is found near or above the blob's.
        assert_eq!(gzip_expanded(100, 5 << 30), 5 << 30);
        assert_eq!(gzip_expanded(100, 6 << 30), (1 << 33) + 100);
        assert_eq!(gzip_expanded(7_000_000, 1_000_000), 7_000_000);
        // Incompressible data: about the blob's size, a little less or the blob's.
        assert_eq!(gzip_expanded(999_900, 1_000_000), 1_000_000);
        assert_eq!(gzip_expanded(950_000, 1_000_000), 1_000_000);
    }

    #[test]
    fn expanded_sizes_are_estimated() {
        let data = b"some layer bytes".repeat(100_000);
        // One-shot compression states the content size (as the zstd tool does for files).
        let zs = zstd::bulk::compress(&data[..], 3).unwrap();
        assert_eq!(zstd_content_size(&zs[..18]), Some(data.len() as u64));
        assert_eq!(
            estimate_expanded(&zs[..18], zs.len() as u64),
            data.len() as u64
        );
        // A streamed frame states no size; nor does a blob that is not zstd.
        let unsized_frame = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(zstd_content_size(&unsized_frame), None);
        assert_eq!(estimate_expanded(&unsized_frame[..18], 100), 300);
        assert_eq!(zstd_content_size(b"ustar"), None);
        assert_eq!(estimate_expanded(&[0x1F, 0x8B, 8], 1000), 3000);
        assert_eq!(estimate_expanded(b"plain tar", 1000), 1000);
        assert_eq!(
            estimate_expanded_by_type("application/vnd.oci.image.layer.v1.tar+zstd", 10),
            30
        );
        assert_eq!(
            estimate_expanded_by_type("application/vnd.oci.image.layer.v1.tar", 10),
            10
        );
    }
}

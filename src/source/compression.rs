//! Compressed layer streams, recognised by their magic bytes rather than by file name or media
//! type alone.

use std::io::{self, BufRead, Read};

use crate::error::{Error, Result};

/// How a stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
            // A source that reports its own errors (a download) keeps their kind.
            Err(e) if e.get_ref().is_some_and(|i| i.is::<Error>()) => return Err(e.into()),
            Err(e) => return Err(Error::io("cannot read the layer", e)),
        }
    };
    // A buffered reader returns at least the magic's six bytes unless the stream is shorter.
    Compression::detect(head)
}

/// Wraps `reader` in the decoder for `compression`.
pub fn decoder<'a, R: BufRead + 'a>(
    reader: R,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| Error::io("cannot start zstd", e))?;
            // Layers are one stream; window sizes up to 2 GiB are allowed by the format.
            d.window_log_max(31)
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
}

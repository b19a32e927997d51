//! Compression of an import source, detected from its first bytes (never its name).

use std::io::{self, BufRead, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Looks at the first bytes of `input` without consuming them.
pub(crate) fn detect(input: &mut impl BufRead) -> io::Result<Compression> {
    let head = input.fill_buf()?;
    let unsupported = |what: &str| {
        Err(io::Error::other(format!(
            "{what} compression is not supported (use gzip or zstd)"
        )))
    };
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        unsupported("xz")
    } else if head.starts_with(b"BZh") {
        unsupported("bzip2")
    } else {
        Ok(Compression::None)
    }
}

/// The decompressed stream of `input`.
pub(crate) fn decoder<'a, R: BufRead + 'a>(
    input: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(ZstdReader::new(input)?),
    })
}

/// All zstd frames of a stream one after another (ruzstd's StreamingDecoder
/// reads one), skipping skippable frames and checking each frame's checksum.
struct ZstdReader<R: BufRead> {
    input: R,
    decoder: FrameDecoder,
    /// A frame is being decoded.
    in_frame: bool,
}

impl<R: BufRead> ZstdReader<R> {
    fn new(input: R) -> io::Result<Self> {
        Ok(ZstdReader {
            input,
            decoder: FrameDecoder::new(),
            in_frame: false,
        })
    }

    /// Reads the next frame's header; false at the end of the stream.
    fn start_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.input.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.input) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.input).take(length.into()), &mut io::sink())?;
                    if skipped < u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd: truncated skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(zstd_error(e)),
            }
        }
    }

    fn end_frame(&mut self) -> io::Result<()> {
        self.in_frame = false;
        if let Some(expected) = self.decoder.get_checksum_from_data() {
            if self.decoder.get_calculated_checksum() != Some(expected) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "zstd: checksum mismatch",
                ));
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.start_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            if self.decoder.can_collect() > 0 {
                return self.decoder.read(buf);
            }
            if self.decoder.is_finished() {
                self.end_frame()?;
                continue;
            }
            self.decoder
                .decode_blocks(&mut self.input, BlockDecodingStrategy::UptoBlocks(1))
                .map_err(zstd_error)?;
        }
    }
}

fn zstd_error(e: FrameDecoderError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};

    fn decode(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut input = io::BufReader::new(data);
        let compression = detect(&mut input)?;
        let mut out = Vec::new();
        decoder(input, compression)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn zstd_frames_are_read_one_after_another_skipping_skippable_ones() {
        let mut data = compress_to_vec(&b"first "[..], CompressionLevel::Fastest);
        // A skippable frame: magic 0x184D2A50, length 3, payload.
        data.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        data.extend(compress_to_vec(&b"second"[..], CompressionLevel::Fastest));
        assert_eq!(decode(&data).unwrap(), b"first second");
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        let data = compress_to_vec(&[7u8; 100_000][..], CompressionLevel::Fastest);
        assert!(decode(&data[..data.len() / 2]).is_err());
    }

    #[test]
    fn detection_is_by_content() {
        assert_eq!(decode(b"plain").unwrap(), b"plain");
        assert!(decode(b"BZh91AY&SY")
            .unwrap_err()
            .to_string()
            .contains("bzip2"));
    }
}

//! gzip framing (RFC 1952) around miniz_oxide's deflate. The header carries
//! no name and a zero mtime, so the same input always gives the same bytes.

use alloc::vec::Vec;
use core::fmt;

const MAGIC: [u8; 2] = [0x1f, 0x8b];
const CM_DEFLATE: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const OS_UNIX: u8 = 3;
const HEADER_LEN: usize = 10;
const TRAILER_LEN: usize = 8;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadMagic,
    /// Compression method other than deflate, or reserved flags set.
    Unsupported,
    BadDeflate,
    /// CRC32 or length in the trailer does not match the data.
    BadTrailer,
    /// The data would exceed the caller's limit (a gzip bomb, or simply
    /// too large): inflating stopped there.
    TooLarge(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::TooLarge(limit) => return write!(f, "gzip data larger than {limit} bytes"),
            Error::Truncated => "gzip stream truncated",
            Error::BadMagic => "not a gzip stream",
            Error::Unsupported => "gzip stream uses an unsupported method or flags",
            Error::BadDeflate => "gzip stream has corrupt deflate data",
            Error::BadTrailer => "gzip trailer (CRC32 or length) does not match the data",
        })
    }
}

/// Compresses `data` into one gzip member at `level` (0–10, miniz's scale).
pub fn compress(data: &[u8], level: u8) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, level);
    let mut out = Vec::with_capacity(HEADER_LEN + deflated.len() + TRAILER_LEN);
    let xfl = if level >= 9 { 2 } else { 0 };
    out.extend_from_slice(&[MAGIC[0], MAGIC[1], CM_DEFLATE, 0, 0, 0, 0, 0, xfl, OS_UNIX]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&CRC32.checksum(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Decompresses a single gzip member.
pub fn decompress(stream: &[u8]) -> Result<Vec<u8>, Error> {
    decompress_limited(stream, usize::MAX)
}

/// Decompresses a single gzip member, stopping with [`Error::TooLarge`]
/// as soon as the output would pass `limit` bytes: memory stays bounded by
/// the limit whatever the stream claims.
pub fn decompress_limited(stream: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    if stream.len() < 2 {
        return Err(Error::Truncated);
    }
    if stream[..2] != MAGIC {
        return Err(Error::BadMagic);
    }
    if stream.len() < HEADER_LEN + TRAILER_LEN {
        return Err(Error::Truncated);
    }
    let flags = stream[3];
    if stream[2] != CM_DEFLATE || flags & 0xe0 != 0 {
        return Err(Error::Unsupported);
    }
    let mut at = HEADER_LEN;
    if flags & FEXTRA != 0 {
        let len = stream.get(at..at + 2).ok_or(Error::Truncated)?;
        at += 2 + u16::from_le_bytes([len[0], len[1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = stream.get(at..).ok_or(Error::Truncated)?;
            at += rest.iter().position(|&b| b == 0).ok_or(Error::Truncated)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let body_end = stream.len() - TRAILER_LEN;
    if at > body_end {
        return Err(Error::Truncated);
    }
    let data = miniz_oxide::inflate::decompress_to_vec_with_limit(&stream[at..body_end], limit)
        .map_err(|e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => Error::TooLarge(limit),
            _ => Error::BadDeflate,
        })?;
    let t = &stream[body_end..];
    let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    if crc != CRC32.checksum(&data) || isize != data.len() as u32 {
        return Err(Error::BadTrailer);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf hello | gzip -n` (GNU gzip 1.12).
    const HELLO_GZ: [u8; 25] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0x07, 0x00, 0x86, 0xa6, 0x10, 0x36, 0x05, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn decompresses_gnu_gzip_output() {
        assert_eq!(decompress(&HELLO_GZ).unwrap(), b"hello");
    }

    #[test]
    fn header_is_fixed_and_round_trips() {
        let data = b"rivet rivet rivet rivet".repeat(100);
        let gz = compress(&data, 9);
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
        assert_eq!(decompress(&gz).unwrap(), data);
        assert_eq!(compress(&data, 9), gz, "same input, same bytes");
    }

    #[test]
    fn corruption_is_detected() {
        let mut bad_crc = HELLO_GZ;
        bad_crc[17] ^= 1;
        assert_eq!(decompress(&bad_crc), Err(Error::BadTrailer));
        let mut bad_method = HELLO_GZ;
        bad_method[2] = 7;
        assert_eq!(decompress(&bad_method), Err(Error::Unsupported));
        assert_eq!(decompress(b"BZh9"), Err(Error::BadMagic));
        for len in 0..HELLO_GZ.len() {
            assert!(
                decompress(&HELLO_GZ[..len]).is_err(),
                "prefix {len} accepted"
            );
        }
    }
}

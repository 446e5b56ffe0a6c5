//! Ironic's config drive string: base64 of a gzip-compressed ISO 9660 image
//! (or, when downloaded from a URL, possibly the raw image).
//!
//! It is held as it came, compressed, with the size it inflates to (one
//! counting pass, which stops at Ironic's limit, so a gzip bomb costs no
//! memory); the partition is then written by inflating again, a buffer at a
//! time. A 64 MiB config drive of mostly zeros is a few hundred KB held.

use crate::wire::{base64, gzip};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Decompressed size beyond which a config drive is refused: Ironic's own
/// limit (a config drive partition is 64 MiB).
pub const MAX_DECODED: usize = (crate::layout::MAX_CONFIGDRIVE_MB << 20) as usize;

/// A config drive image, held compressed (or raw, if it came raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDrive {
    body: Body,
    len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Gzip(Vec<u8>),
    Raw(Vec<u8>),
}

impl ConfigDrive {
    /// An inline config drive: base64, then gzip.
    pub fn from_inline(text: &str) -> Result<ConfigDrive, String> {
        let compressed = base64::decode(text.as_bytes())
            .map_err(|e| format!("config drive is not base64: {e}"))?;
        ConfigDrive::gzip(compressed)
    }

    /// Downloaded config drive bytes, taken the way ironic-python-agent
    /// takes them: base64 + gzip if they are base64, else the bytes as they
    /// are (a raw image, which always has bytes base64 lacks: an ISO starts
    /// with 32 KiB of zeros). Decoded in place: held once, not twice.
    pub fn from_downloaded(mut bytes: Vec<u8>) -> Result<ConfigDrive, String> {
        if !base64::is_text(&bytes) {
            return ConfigDrive::raw(bytes);
        }
        base64::decode_in_place(&mut bytes)
            .map_err(|e| format!("config drive is not base64: {e}"))?;
        ConfigDrive::gzip(bytes)
    }

    /// An image as it is (tests, raw downloads).
    pub fn raw(bytes: Vec<u8>) -> Result<ConfigDrive, String> {
        if bytes.len() > MAX_DECODED {
            return Err(too_large());
        }
        Ok(ConfigDrive {
            len: bytes.len() as u64,
            body: Body::Raw(bytes),
        })
    }

    fn gzip(compressed: Vec<u8>) -> Result<ConfigDrive, String> {
        if compressed.len() < 2 || compressed[..2] != [0x1f, 0x8b] {
            return Err("config drive is not gzip-compressed (Ironic sends base64 of gzip)".into());
        }
        let mut inflater = gzip::Inflater::new(&compressed).map_err(inflate_error)?;
        let mut scratch = alloc::vec![0u8; 64 << 10];
        let mut len = 0u64;
        loop {
            let n = inflater.read(&mut scratch).map_err(inflate_error)?;
            if n == 0 {
                break;
            }
            len += n as u64;
            if len > MAX_DECODED as u64 {
                return Err(too_large());
            }
        }
        Ok(ConfigDrive {
            body: Body::Gzip(compressed),
            len,
        })
    }

    /// Bytes of the image, inflated.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hands the inflated image to `sink` in order, a full `buf` at a time
    /// (the last piece shorter), with each piece's offset in the image.
    pub fn write_pieces<E>(
        &self,
        buf: &mut [u8],
        mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
        error: impl Fn(String) -> E,
    ) -> Result<(), E> {
        let mut at = 0u64;
        match &self.body {
            Body::Raw(bytes) => {
                for piece in bytes.chunks(buf.len()) {
                    buf[..piece.len()].copy_from_slice(piece);
                    sink(at, &buf[..piece.len()])?;
                    at += piece.len() as u64;
                }
            }
            Body::Gzip(compressed) => {
                let mut inflater =
                    gzip::Inflater::new(compressed).map_err(|e| error(inflate_error(e)))?;
                loop {
                    let n = inflater.read(buf).map_err(|e| error(inflate_error(e)))?;
                    if n == 0 {
                        break;
                    }
                    sink(at, &buf[..n])?;
                    at += n as u64;
                }
            }
        }
        Ok(())
    }

    /// The whole image in memory, for tests.
    #[cfg(test)]
    pub fn to_vec(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.len as usize);
        let mut buf = alloc::vec![0u8; 64 << 10];
        self.write_pieces(
            &mut buf,
            |_, piece| {
                out.extend_from_slice(piece);
                Ok(())
            },
            |e| e,
        )?;
        Ok(out)
    }
}

fn too_large() -> String {
    format!(
        "config drive decompresses to more than {MAX_DECODED} bytes (Ironic's limit is {} MiB)",
        crate::layout::MAX_CONFIGDRIVE_MB
    )
}

fn inflate_error(e: gzip::Error) -> String {
    format!("config drive: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_gzip_round_trip() {
        // printf 'config-2 image' | gzip -n | base64
        let text = "H4sIAAAAAAAAA0vOz0vLTNc1UsjMTUxPBQBsyUo9DgAAAA==";
        let cd = ConfigDrive::from_inline(text).unwrap();
        assert_eq!(cd.len(), 14);
        assert_eq!(cd.to_vec().unwrap(), b"config-2 image");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_and_is_never_held_inflated() {
        // 700 MB of zeros compress to under a megabyte; counting must stop
        // at 64 MiB, and nothing inflated is kept.
        let zeros = alloc::vec![0u8; MAX_DECODED + 1];
        let bomb = gzip::compress(&zeros, 9);
        drop(zeros);
        assert!(bomb.len() < 1 << 20);
        let err = ConfigDrive::from_inline(&base64::encode(&bomb)).unwrap_err();
        assert!(err.contains("more than 67108864 bytes"), "{err}");
        // Exactly the limit is fine, and held compressed.
        let ok = gzip::compress(&alloc::vec![7u8; MAX_DECODED], 9);
        let cd = ConfigDrive::from_downloaded(base64::encode(&ok).into_bytes()).unwrap();
        assert_eq!(cd.len(), MAX_DECODED as u64);
        assert!(matches!(&cd.body, Body::Gzip(g) if g.len() < 1 << 20));
    }

    #[test]
    fn pieces_are_full_buffers_at_their_offsets() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 249) as u8).collect();
        let cd = ConfigDrive::from_inline(&base64::encode(&gzip::compress(&data, 6))).unwrap();
        let mut buf = alloc::vec![0u8; 65_536];
        let mut seen = Vec::new();
        cd.write_pieces(
            &mut buf,
            |at, piece| {
                assert_eq!(at as usize, seen.len());
                assert!(piece.len() == 65_536 || seen.len() + piece.len() == data.len());
                seen.extend_from_slice(piece);
                Ok::<(), String>(())
            },
            |e| e,
        )
        .unwrap();
        assert_eq!(seen, data);
        let raw = ConfigDrive::from_downloaded(b"\x00\x01raw iso".to_vec()).unwrap();
        assert_eq!(raw.to_vec().unwrap(), b"\x00\x01raw iso");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(ConfigDrive::from_inline("not base64!")
            .unwrap_err()
            .contains("not base64"));
        assert!(ConfigDrive::from_inline("aGVsbG8=")
            .unwrap_err()
            .contains("not gzip"));
        let mut cut = gzip::compress(&[5u8; 100_000], 6);
        cut.truncate(cut.len() / 2);
        assert!(ConfigDrive::from_inline(&base64::encode(&cut))
            .unwrap_err()
            .starts_with("config drive: "));
    }
}

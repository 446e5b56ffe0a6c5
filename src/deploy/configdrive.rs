//! Ironic's config drive string: base64 of a gzip-compressed ISO 9660 image
//! (or, when downloaded from a URL, possibly the raw image).

use crate::wire::{base64, gzip};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Decompressed size beyond which a config drive is refused: Ironic's own
/// limit (a config drive partition is 64 MiB). Inflating stops there, so a
/// gzip bomb costs at most this much memory.
pub const MAX_DECODED: usize = (crate::layout::MAX_CONFIGDRIVE_MB << 20) as usize;

/// Decodes an inline config drive: base64, then gunzip.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let compressed =
        base64::decode(text.as_bytes()).map_err(|e| format!("config drive is not base64: {e}"))?;
    gunzip_limited(&compressed)
}

/// Decodes downloaded config drive bytes the way ironic-python-agent does:
/// base64 + gzip if they decode as base64, else the bytes as they are.
pub fn decode_downloaded(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    match base64::decode(&bytes) {
        Ok(compressed) => gunzip_limited(&compressed),
        Err(_) => Ok(bytes),
    }
}

fn gunzip_limited(compressed: &[u8]) -> Result<Vec<u8>, String> {
    if compressed.len() < 2 || compressed[..2] != [0x1f, 0x8b] {
        return Err("config drive is not gzip-compressed (Ironic sends base64 of gzip)".into());
    }
    gzip::decompress_limited(compressed, MAX_DECODED).map_err(|e| match e {
        gzip::Error::TooLarge(_) => format!(
            "config drive decompresses to more than {MAX_DECODED} bytes (Ironic's limit is {} MiB)",
            crate::layout::MAX_CONFIGDRIVE_MB
        ),
        e => format!("config drive: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_gzip_round_trip() {
        // printf 'config-2 image' | gzip -n | base64
        let text = "H4sIAAAAAAAAA0vOz0vLTNc1UsjMTUxPBQBsyUo9DgAAAA==";
        assert_eq!(decode(text).unwrap(), b"config-2 image");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 700 MB of zeros compress to under a megabyte; inflating must stop
        // at 64 MiB instead of allocating it all.
        let zeros = alloc::vec![0u8; MAX_DECODED + 1];
        let bomb = gzip::compress(&zeros, 9);
        drop(zeros);
        assert!(bomb.len() < 1 << 20);
        let err = decode(&base64::encode(&bomb)).unwrap_err();
        assert!(err.contains("more than 67108864 bytes"), "{err}");
        // Exactly the limit is fine.
        let ok = gzip::compress(&alloc::vec![7u8; MAX_DECODED], 9);
        assert_eq!(
            decode_downloaded(base64::encode(&ok).into_bytes())
                .unwrap()
                .len(),
            MAX_DECODED
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(decode("not base64!").unwrap_err().contains("not base64"));
        assert!(decode("aGVsbG8=").unwrap_err().contains("not gzip"));
        assert_eq!(
            decode_downloaded(b"\x00\x01raw iso".to_vec()).unwrap(),
            b"\x00\x01raw iso"
        );
    }
}

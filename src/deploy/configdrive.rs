//! Ironic's config drive string: base64 of a gzip-compressed ISO 9660 image
//! (or, when downloaded from a URL, possibly the raw image).

use crate::wire::{base64, gzip};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Decompressed size beyond which a config drive is refused (a guard
/// against gzip bombs; Ironic's own whole-disk limit is 64 MiB).
pub const MAX_DECODED: usize = 256 << 20;

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
    let data = gzip::decompress(compressed).map_err(|e| format!("config drive: {e}"))?;
    if data.len() > MAX_DECODED {
        return Err(format!(
            "config drive decompresses to {} bytes, more than {MAX_DECODED}",
            data.len()
        ));
    }
    Ok(data)
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
    fn garbage_is_refused_with_a_reason() {
        assert!(decode("not base64!").unwrap_err().contains("not base64"));
        assert!(decode("aGVsbG8=").unwrap_err().contains("not gzip"));
        assert_eq!(
            decode_downloaded(b"\x00\x01raw iso".to_vec()).unwrap(),
            b"\x00\x01raw iso"
        );
    }
}

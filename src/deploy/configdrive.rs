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

/// Bytes a downloaded config drive may have: base64 of gzip of at most
/// [`MAX_DECODED`] bytes is at most 4/3 of a little more than it.
pub const MAX_DOWNLOAD: u64 = MAX_DECODED as u64 / 3 * 4 + (1 << 20);

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
    /// Downloaded while it is written, through the image's own connection
    /// ([`crate::io::ImageSource::fetch_other`]); a first pass measured it.
    Remote {
        url: String,
        digest: String,
    },
}

/// Fetches `url`, handing the body to the sink as it arrives; `None` when
/// nothing can fetch it (an image that is no download).
pub type Fetch<'f> =
    dyn FnMut(&str, &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Option<Result<(), String>> + 'f;

/// Downloaded config drive bytes decoded as they arrive, as
/// [`ConfigDrive::from_downloaded`] takes them whole: base64 text is
/// gzip (a member inflated as it comes), anything else the image as it
/// is. The first 512 bytes decide (an ISO starts with 32 KiB of zeros);
/// text that turns to other bytes later is refused. What is made is
/// counted against Ironic's 64 MiB and hashed (SHA-256), never held.
pub struct StreamDecoder {
    mode: Mode,
    produced: u64,
    hasher: crate::stream::Hasher,
}

enum Mode {
    Undecided(Vec<u8>),
    Raw,
    Text(base64::Decoder, gzip::PushInflater, Vec<u8>),
}

const DECIDE_ON: usize = 512;

impl Default for StreamDecoder {
    fn default() -> StreamDecoder {
        StreamDecoder {
            mode: Mode::Undecided(Vec::new()),
            produced: 0,
            hasher: crate::stream::Hasher::new(crate::plan::HashAlgo::Sha256),
        }
    }
}

impl StreamDecoder {
    /// Takes the next downloaded bytes; what they decode to goes to `out`.
    pub fn push(
        &mut self,
        input: &[u8],
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        if let Mode::Undecided(head) = &mut self.mode {
            head.extend_from_slice(input);
            if head.len() < DECIDE_ON {
                return Ok(());
            }
            let head = core::mem::take(head);
            self.decide(&head[..DECIDE_ON]);
            return self.push(&head, out);
        }
        let (produced, hasher) = (&mut self.produced, &mut self.hasher);
        let mut made = |piece: &[u8]| -> Result<(), String> {
            *produced += piece.len() as u64;
            if *produced > MAX_DECODED as u64 {
                return Err(too_large());
            }
            hasher.update(piece);
            out(piece)
        };
        match &mut self.mode {
            Mode::Raw => made(input),
            Mode::Text(text, inflater, bytes) => {
                bytes.clear();
                text.push(input, bytes)
                    .map_err(|e| format!("config drive is not base64: {e}"))?;
                inflater.push::<String>(bytes, &mut made)
            }
            Mode::Undecided(_) => unreachable!("decided above"),
        }
    }

    fn decide(&mut self, head: &[u8]) {
        self.mode = if base64::is_text(head) {
            Mode::Text(
                base64::Decoder::default(),
                gzip::PushInflater::default(),
                Vec::new(),
            )
        } else {
            Mode::Raw
        };
    }

    /// The download has ended: the image's length and SHA-256.
    pub fn finish(
        mut self,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(u64, String), String> {
        if let Mode::Undecided(head) = &mut self.mode {
            let head = core::mem::take(head);
            self.decide(&head);
            self.push(&head, out)?;
        }
        if let Mode::Text(text, inflater, _) = self.mode {
            text.finish()
                .map_err(|e| format!("config drive is not base64: {e}"))?;
            inflater.finish().map_err(inflate_error)?;
        }
        Ok((self.produced, self.hasher.finish_hex()))
    }
}

impl From<gzip::Error> for String {
    fn from(e: gzip::Error) -> String {
        inflate_error(e)
    }
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

    /// A downloaded config drive measured by streaming it once through a
    /// [`StreamDecoder`] (`fetch` runs the GET into the sink), to be
    /// downloaded again while it is written: nothing of it is held.
    pub fn measure_remote(
        url: &str,
        fetch: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<(), String>,
    ) -> Result<ConfigDrive, String> {
        let mut d = StreamDecoder::default();
        let mut nothing = |_: &[u8]| Ok(());
        fetch(&mut |piece| d.push(piece, &mut nothing))?;
        let (len, digest) = d.finish(&mut nothing)?;
        Ok(ConfigDrive {
            body: Body::Remote {
                url: url.into(),
                digest,
            },
            len,
        })
    }

    /// Hands the inflated image to `sink` in order, a full `buf` at a time
    /// (the last piece shorter), with each piece's offset in the image.
    /// A remote one is downloaded again through `fetch` and must be what
    /// it was when measured.
    pub fn write_pieces<E>(
        &self,
        buf: &mut [u8],
        fetch: &mut Fetch,
        mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
        error: impl Fn(String) -> E,
    ) -> Result<(), E> {
        let mut at = 0u64;
        match &self.body {
            Body::Remote { url, digest } => {
                let mut d = StreamDecoder::default();
                let mut filled = 0;
                let mut failed = None;
                let finished = {
                    // Decoded bytes fill `buf`; each full buffer goes to the sink.
                    let mut put = |piece: &[u8]| -> Result<(), String> {
                        let mut piece = piece;
                        while !piece.is_empty() {
                            let n = piece.len().min(buf.len() - filled);
                            buf[filled..filled + n].copy_from_slice(&piece[..n]);
                            (filled, piece) = (filled + n, &piece[n..]);
                            if filled == buf.len() {
                                sink(at, buf).map_err(|e| {
                                    failed = Some(e);
                                    String::from("the disk write failed")
                                })?;
                                (at, filled) = (at + filled as u64, 0);
                            }
                        }
                        Ok(())
                    };
                    let fetched =
                        fetch(url, &mut |piece| d.push(piece, &mut put)).unwrap_or_else(|| {
                            Err(format!("config drive {url}: nothing can download it here"))
                        });
                    fetched.and_then(|()| d.finish(&mut put))
                };
                if let Some(e) = failed {
                    return Err(e);
                }
                let (len, again) =
                    finished.map_err(|e| error(format!("config drive {url}: {e}")))?;
                if len != self.len || again != *digest {
                    return Err(error(format!(
                        "config drive {url} changed between its two downloads: {} bytes with \
                         sha256 {digest}, then {len} bytes with sha256 {again}",
                        self.len
                    )));
                }
                if filled > 0 {
                    sink(at, &buf[..filled])?;
                }
            }
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
            &mut |_, _| None,
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
            &mut |_, _| None,
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

    /// What the stream decoder makes of downloaded bytes in pieces of any
    /// size is what from_downloaded makes of them whole.
    fn streamed(bytes: &[u8], piece: usize) -> Result<(u64, String, Vec<u8>), String> {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            d.push(chunk, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })?;
        }
        let (len, digest) = d.finish(&mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok((len, digest, out))
    }

    #[test]
    fn downloads_decode_in_pieces_as_they_would_whole() {
        let mut iso = alloc::vec![0u8; 32 << 10];
        iso.extend((0..100_000u32).map(|i| (i % 241) as u8));
        let text = base64::encode(&gzip::compress(&iso, 6)).into_bytes();
        for bytes in [&iso, &text] {
            let whole = ConfigDrive::from_downloaded(bytes.clone())
                .unwrap()
                .to_vec()
                .unwrap();
            for piece in [1, 3, 511, 4096, bytes.len()] {
                let (len, _, out) = streamed(bytes, piece).unwrap();
                assert_eq!(len, whole.len() as u64);
                assert!(out == whole, "pieces of {piece}");
            }
        }
        // Short ones decide at the end.
        assert_eq!(streamed(b"\x00raw", 2).unwrap().2, b"\x00raw");
        // Text that turns into other bytes, a cut member.
        let mut bad = text.clone();
        bad[text.len() - 100] = 0;
        assert!(streamed(&bad, 4096).unwrap_err().contains("not base64"));
        let cut = &text[..text.len() - 40];
        assert!(streamed(cut, 4096)
            .unwrap_err()
            .starts_with("config drive: "));
        // A bomb stops at Ironic's limit, nothing held.
        let bomb =
            base64::encode(&gzip::compress(&alloc::vec![0u8; MAX_DECODED + 1], 9)).into_bytes();
        let err = streamed(&bomb, 65_536).unwrap_err();
        assert!(err.contains("more than 67108864 bytes"), "{err}");
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

//! Standard base64 (RFC 4648 §4), as Python's b64encode writes it: decoding
//! (Ironic's inline config drive; whitespace is skipped) and encoding (the
//! logs the conductor collects).

use alloc::vec::Vec;
use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A byte outside the alphabet, at this offset.
    BadChar(usize),
    /// Length not a multiple of 4, or padding in the wrong place.
    BadLength,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadChar(at) => write!(f, "invalid base64 character at offset {at}"),
            Error::BadLength => f.write_str("base64 length or padding is invalid"),
        }
    }
}

fn value(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes with padding, no line breaks.
pub fn encode(data: &[u8]) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether every byte is of the alphabet, padding or whitespace.
pub fn is_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&c| value(c).is_some() || c == b'=' || c.is_ascii_whitespace())
}

pub fn decode(text: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = text.to_vec();
    decode_in_place(&mut out)?;
    Ok(out)
}

/// Decodes `buf` into itself (the bytes never outrun the text they come
/// from), so a large downloaded config drive is held once, not twice.
/// On error `buf` holds garbage.
pub fn decode_in_place(buf: &mut Vec<u8>) -> Result<(), Error> {
    let mut d = Decoder::default();
    let mut w = 0;
    for at in 0..buf.len() {
        if let Some((bytes, n)) = d.step(buf[at])? {
            // Four characters read, at most three bytes written: w < at.
            buf[w..w + n].copy_from_slice(&bytes[..n]);
            w += n;
        }
    }
    d.finish()?;
    buf.truncate(w);
    buf.shrink_to_fit();
    Ok(())
}

/// Base64 text decoded as it arrives, in pieces of any length (whitespace
/// skipped, padding only at the end): a downloaded config drive is never
/// held as text.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    quad: [u8; 4],
    n: usize,
    padding: usize,
    /// Characters seen, for [`Error::BadChar`]'s offset.
    at: usize,
}

impl Decoder {
    /// One character: a decoded group (bytes, how many) when it completes one.
    fn step(&mut self, c: u8) -> Result<Option<([u8; 3], usize)>, Error> {
        let at = self.at;
        self.at += 1;
        if c.is_ascii_whitespace() {
            return Ok(None);
        }
        if c == b'=' {
            if self.n < 2 {
                return Err(Error::BadLength);
            }
            self.padding += 1;
            self.quad[self.n] = 0;
        } else {
            if self.padding > 0 {
                return Err(Error::BadLength);
            }
            self.quad[self.n] = value(c).ok_or(Error::BadChar(at))?;
        }
        self.n += 1;
        if self.n < 4 {
            return Ok(None);
        }
        let q = self.quad.map(u32::from);
        let v = q[0] << 18 | q[1] << 12 | q[2] << 6 | q[3];
        if self.padding > 2 {
            return Err(Error::BadLength);
        }
        let out = ([(v >> 16) as u8, (v >> 8) as u8, v as u8], 3 - self.padding);
        self.n = 0;
        if self.padding > 0 {
            self.padding = 3; // nothing may follow a padded quad
        }
        Ok(Some(out))
    }

    /// Decodes `text`, appending the bytes to `out`.
    pub fn push(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        for &c in text {
            if let Some((bytes, n)) = self.step(c)? {
                out.extend_from_slice(&bytes[..n]);
            }
        }
        Ok(())
    }

    /// The text has ended: no group may be left half done.
    pub fn finish(&self) -> Result<(), Error> {
        if self.n != 0 {
            return Err(Error::BadLength);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_in_pieces_of_any_length_decodes_as_whole_text() {
        let text = b"Zm9v\nYmFy\r\nYg==";
        for cut in 0..text.len() {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            d.push(&text[..cut], &mut out).unwrap();
            d.push(&text[cut..], &mut out).unwrap();
            d.finish().unwrap();
            assert_eq!(out, b"foobarb", "cut at {cut}");
        }
        let mut d = Decoder::default();
        assert_eq!(d.push(b"Zm9vY", &mut Vec::new()), Ok(()));
        assert_eq!(d.finish(), Err(Error::BadLength));
        assert_eq!(
            Decoder::default().push(b"Zm9v!", &mut Vec::new()),
            Err(Error::BadChar(4))
        );
    }

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(decode(enc.as_bytes()).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode(b"Zm9v\nYmFy\n").unwrap(), b"foobar");
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode(b"Zm9v!"), Err(Error::BadChar(4)));
        assert_eq!(decode(b"Zm9"), Err(Error::BadLength));
        assert_eq!(decode(b"Z==="), Err(Error::BadLength));
        assert_eq!(decode(b"Zg==Zm9v"), Err(Error::BadLength));
        assert_eq!(decode(b"Zg=a"), Err(Error::BadLength));
    }

    #[test]
    fn encode_matches_rfc4648_vectors_and_round_trips() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded.as_bytes()).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(encode(&all).as_bytes()).unwrap(), all);
    }
}

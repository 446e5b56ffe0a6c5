//! gzip framing (RFC 1952) around miniz_oxide's deflate. The header carries
//! no name and a zero mtime, so the same input always gives the same bytes.

use alloc::vec::Vec;
use core::fmt;
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

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
    let member = Member::parse(stream)?;
    let data =
        miniz_oxide::inflate::decompress_to_vec_with_limit(member.deflate, limit).map_err(|e| {
            match e.status {
                miniz_oxide::inflate::TINFLStatus::HasMoreOutput => Error::TooLarge(limit),
                _ => Error::BadDeflate,
            }
        })?;
    if member.crc != CRC32.checksum(&data) || member.isize != data.len() as u32 {
        return Err(Error::BadTrailer);
    }
    Ok(data)
}

/// Bytes of the member header at the start of `stream` (its optional
/// fields included): `Truncated` until all of it is there.
pub fn header_len(stream: &[u8]) -> Result<usize, Error> {
    if stream.len() < 2 {
        return Err(Error::Truncated);
    }
    if stream[..2] != MAGIC {
        return Err(Error::BadMagic);
    }
    if stream.len() < HEADER_LEN {
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
    if at > stream.len() {
        return Err(Error::Truncated);
    }
    Ok(at)
}

/// One gzip member: its deflate data and what the trailer says of it.
struct Member<'a> {
    deflate: &'a [u8],
    crc: u32,
    isize: u32,
}

impl<'a> Member<'a> {
    fn parse(stream: &'a [u8]) -> Result<Member<'a>, Error> {
        let at = header_len(stream)?;
        if stream.len() < at + TRAILER_LEN {
            return Err(Error::Truncated);
        }
        let body_end = stream.len() - TRAILER_LEN;
        let t = &stream[body_end..];
        Ok(Member {
            deflate: &stream[at..body_end],
            crc: u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
            isize: u32::from_le_bytes([t[4], t[5], t[6], t[7]]),
        })
    }
}

/// Inflates a gzip member piece by piece into the caller's buffer, so the
/// data never has to be held whole; the trailer is checked at the end.
pub struct Inflater<'a> {
    state: alloc::boxed::Box<InflateState>,
    member: Member<'a>,
    digest: crc::Digest<'static, u32>,
    produced: u64,
    done: bool,
    checked: bool,
}

static CRC32_STATIC: crc::Crc<u32> = CRC32;

impl<'a> Inflater<'a> {
    pub fn new(stream: &'a [u8]) -> Result<Inflater<'a>, Error> {
        Ok(Inflater {
            state: InflateState::new_boxed(DataFormat::Raw),
            member: Member::parse(stream)?,
            digest: CRC32_STATIC.digest(),
            produced: 0,
            done: false,
            checked: false,
        })
    }

    /// Fills `out` (less only at the end); 0 once all is out. The trailer
    /// is checked with the last bytes: a mismatch is an error then.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let mut filled = 0;
        while filled < out.len() && !self.done {
            let r = inflate(
                &mut self.state,
                self.member.deflate,
                &mut out[filled..],
                MZFlush::None,
            );
            self.member.deflate = &self.member.deflate[r.bytes_consumed..];
            filled += r.bytes_written;
            match r.status {
                Ok(MZStatus::StreamEnd) => self.done = true,
                Ok(_) if r.bytes_consumed > 0 || r.bytes_written > 0 => {}
                // No progress with all the input there: it ends too soon.
                Ok(_) | Err(MZError::Buf) => return Err(Error::Truncated),
                Err(_) => return Err(Error::BadDeflate),
            }
        }
        self.digest.update(&out[..filled]);
        self.produced += filled as u64;
        if self.done && !self.checked {
            self.checked = true;
            let digest = core::mem::replace(&mut self.digest, CRC32_STATIC.digest());
            if digest.finalize() != self.member.crc || self.produced as u32 != self.member.isize {
                return Err(Error::BadTrailer);
            }
        }
        Ok(filled)
    }
}

/// A gzip member inflated as its bytes arrive, in pieces of any length:
/// the header gathered first (at most 64 KiB of optional fields), the
/// deflate data inflated through a 32 KiB window into `out`, the trailer
/// checked at [`PushInflater::finish`]. Nothing of the member is held.
pub struct PushInflater {
    header: Vec<u8>,
    state: Option<alloc::boxed::Box<InflateState>>,
    digest: crc::Digest<'static, u32>,
    produced: u64,
    trailer: Vec<u8>,
    ended: bool,
    scratch: Vec<u8>,
}

/// Most header bytes gathered (FEXTRA, FNAME, FCOMMENT) before giving up.
const MAX_HEADER: usize = 64 << 10;

impl Default for PushInflater {
    fn default() -> PushInflater {
        PushInflater {
            header: Vec::new(),
            state: None,
            digest: CRC32_STATIC.digest(),
            produced: 0,
            trailer: Vec::new(),
            ended: false,
            scratch: Vec::new(),
        }
    }
}

impl PushInflater {
    /// Takes the next `input` bytes, handing what they inflate to to `out`.
    pub fn push<E: From<Error>>(
        &mut self,
        mut input: &[u8],
        out: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.state.is_none() {
            let take = input
                .len()
                .min(MAX_HEADER + 1 - self.header.len().min(MAX_HEADER));
            self.header.extend_from_slice(&input[..take]);
            match header_len(&self.header) {
                Ok(at) => {
                    // What came past the header is deflate data.
                    let past = self.header.split_off(at);
                    self.header.clear();
                    self.state = Some(InflateState::new_boxed(DataFormat::Raw));
                    self.scratch = alloc::vec![0u8; 32 << 10];
                    self.push(&past, out)?;
                    input = &input[take..];
                }
                Err(Error::Truncated) if self.header.len() <= MAX_HEADER => return Ok(()),
                Err(Error::Truncated) => return Err(Error::Unsupported.into()),
                Err(e) => return Err(e.into()),
            }
        }
        while !self.ended && !input.is_empty() {
            let state = self.state.as_mut().expect("past the header");
            let r = inflate(state, input, &mut self.scratch, MZFlush::None);
            input = &input[r.bytes_consumed..];
            let made = &self.scratch[..r.bytes_written];
            self.digest.update(made);
            self.produced += made.len() as u64;
            out(made)?;
            match r.status {
                Ok(MZStatus::StreamEnd) => self.ended = true,
                Ok(_) if r.bytes_consumed > 0 || r.bytes_written > 0 => {}
                Ok(_) | Err(MZError::Buf) => break, // wants more input
                Err(_) => return Err(Error::BadDeflate.into()),
            }
        }
        // Output still inside the inflater after the input ran out.
        while !self.ended && input.is_empty() {
            let Some(state) = self.state.as_mut() else {
                break;
            };
            let r = inflate(state, &[], &mut self.scratch, MZFlush::None);
            if r.bytes_written == 0 {
                if r.status == Ok(MZStatus::StreamEnd) {
                    self.ended = true;
                }
                break;
            }
            let made = &self.scratch[..r.bytes_written];
            self.digest.update(made);
            self.produced += made.len() as u64;
            out(made)?;
            if r.status == Ok(MZStatus::StreamEnd) {
                self.ended = true;
            }
        }
        if self.ended {
            if self.trailer.len() + input.len() > TRAILER_LEN {
                return Err(Error::BadTrailer.into()); // data after the member
            }
            self.trailer.extend_from_slice(input);
        }
        Ok(())
    }

    /// The input has ended: the member must be whole, its trailer right.
    pub fn finish(self) -> Result<u64, Error> {
        if !self.ended || self.trailer.len() < TRAILER_LEN {
            return Err(Error::Truncated);
        }
        let t = &self.trailer;
        let (crc, isize) = (
            u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
            u32::from_le_bytes([t[4], t[5], t[6], t[7]]),
        );
        if self.digest.finalize() != crc || self.produced as u32 != isize {
            return Err(Error::BadTrailer);
        }
        Ok(self.produced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_in_pieces_of_any_length_inflates_as_held_whole() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        let z = compress(&data, 6);
        for piece in [1usize, 7, 4096, 65_536, z.len()] {
            let mut p = PushInflater::default();
            let mut out = Vec::new();
            for chunk in z.chunks(piece) {
                p.push::<Error>(chunk, &mut |b| {
                    out.extend_from_slice(b);
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(p.finish(), Ok(data.len() as u64), "pieces of {piece}");
            assert!(out == data, "pieces of {piece}");
        }
        let run = |bytes: &[u8]| {
            let mut p = PushInflater::default();
            p.push::<Error>(bytes, &mut |_| Ok(()))?;
            p.finish()
        };
        assert_eq!(run(&z[..z.len() - 3]), Err(Error::Truncated));
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        assert_eq!(run(&bad), Err(Error::BadTrailer));
        assert_eq!(run(&[&z[..], &[0]].concat()), Err(Error::BadTrailer));
        assert_eq!(run(b"PK\x03\x04"), Err(Error::BadMagic));
    }

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

    #[test]
    fn the_inflater_gives_the_data_in_pieces_and_checks_the_trailer() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7000) as u8)
            .collect();
        let gz = compress(&data, 6);
        for piece in [1usize, 4096, 65_536, 1 << 20] {
            let mut inf = Inflater::new(&gz).unwrap();
            let mut out = Vec::new();
            let mut buf = alloc::vec![0u8; piece];
            loop {
                let n = inf.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                assert!(n == piece || out.len() + n == data.len());
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, data, "piece {piece}");
            assert_eq!(inf.read(&mut buf), Ok(0));
        }
        // A flipped trailer bit, and a cut stream.
        let mut bad = gz.clone();
        let last = bad.len() - 5;
        bad[last] ^= 1;
        let mut buf = alloc::vec![0u8; 1 << 20];
        assert_eq!(
            Inflater::new(&bad).unwrap().read(&mut buf),
            Err(Error::BadTrailer)
        );
        let cut = [&gz[..gz.len() / 2], &gz[gz.len() - 8..]].concat();
        let mut inf = Inflater::new(&cut).unwrap();
        let err = loop {
            match inf.read(&mut buf) {
                Ok(0) => panic!("a cut stream inflated"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, Error::Truncated | Error::BadDeflate),
            "{err:?}"
        );
    }
}

//! Raw images compressed as a whole (gzip, zstd), inflated while they
//! stream: readers over the served bytes that yield the disk image, in
//! fixed memory (an input buffer, the decoder's state and, for zstd, its
//! window, at most [`ZSTD_MAX_WINDOW`]).

use crate::io::ImageSource;
use crate::stream::fill;
use crate::wire::gzip;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use embedded_io::Read;
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

/// zstd frames that need a larger window (`zstd --long=28` and up) are
/// refused: the window is held in memory.
pub const ZSTD_MAX_WINDOW: u64 = 32 << 20;

/// The source failed, or its bytes are not a valid stream.
#[derive(Debug)]
pub enum DecodeError<E> {
    Source(E),
    Data(String),
}

impl<E: fmt::Display> fmt::Display for DecodeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Source(e) => e.fmt(f),
            DecodeError::Data(why) => f.write_str(why),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for DecodeError<E> {}

impl<E: fmt::Debug + fmt::Display> embedded_io::Error for DecodeError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::InvalidData
    }
}

/// Compressed bytes read ahead of the decoder.
struct Input<'a, S: ?Sized> {
    src: &'a mut S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    ended: bool,
    /// Compressed bytes consumed, for messages.
    consumed: u64,
}

impl<'a, S: ImageSource + ?Sized> Input<'a, S> {
    fn new(src: &'a mut S, len: usize) -> Self {
        Input {
            src,
            buf: vec![0u8; len],
            start: 0,
            end: 0,
            ended: false,
            consumed: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.consumed += n as u64;
    }

    /// Reads more after what is buffered; false at the end of the source.
    fn refill(&mut self) -> Result<bool, DecodeError<S::Error>> {
        if self.ended {
            return Ok(false);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let n = fill(self.src, &mut self.buf[self.end..]).map_err(DecodeError::Source)?;
        self.end += n;
        self.ended = n == 0;
        Ok(n > 0)
    }

    /// At least `n` bytes buffered, unless the source ends first.
    fn need(&mut self, n: usize) -> Result<bool, DecodeError<S::Error>> {
        while self.end - self.start < n {
            if !self.refill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// What both decoders are besides their `Read`: an image source whose
/// size is unknown until the end, named after what it reads.
macro_rules! decoded_source {
    ($decoder:ident) => {
        impl<S: ImageSource + ?Sized> embedded_io::ErrorType for $decoder<'_, S>
        where
            S::Error: fmt::Display,
        {
            type Error = DecodeError<S::Error>;
        }

        impl<S: ImageSource + ?Sized> ImageSource for $decoder<'_, S>
        where
            S::Error: fmt::Display,
        {
            fn size(&self) -> Option<u64> {
                None
            }
            fn describe(&self) -> String {
                self.input.src.describe()
            }
        }
    };
}

decoded_source!(Gunzip);
decoded_source!(Unzstd);

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

enum GzPhase {
    Header,
    Body,
    Trailer,
    Done,
}

/// A gzip stream (RFC 1952, concatenated members as pigz makes them).
pub struct Gunzip<'a, S: ?Sized> {
    input: Input<'a, S>,
    state: Box<InflateState>,
    phase: GzPhase,
    crc: crc::Digest<'static, u32>,
    len: u32,
}

impl<'a, S: ImageSource + ?Sized> Gunzip<'a, S> {
    pub fn new(src: &'a mut S) -> Self {
        Gunzip {
            input: Input::new(src, 64 * 1024),
            state: InflateState::new_boxed(DataFormat::Raw),
            phase: GzPhase::Header,
            crc: CRC32.digest(),
            len: 0,
        }
    }

    fn bad(&self, why: &str) -> DecodeError<S::Error> {
        DecodeError::Data(format!(
            "gzip: {why} (at compressed byte {})",
            self.input.consumed
        ))
    }

    /// Skips a member's header: the fixed part and the optional fields.
    fn header(&mut self) -> Result<(), DecodeError<S::Error>> {
        loop {
            match gzip::header_len(self.input.bytes()) {
                Ok(n) => {
                    self.input.consume(n);
                    return Ok(());
                }
                Err(gzip::Error::Truncated) => {
                    // A header larger than the input buffer is no image's.
                    let full = self.input.bytes().len() == self.input.buf.len();
                    if full || !self.input.refill()? {
                        return Err(self.bad("truncated header"));
                    }
                }
                Err(_) => return Err(self.bad("not a deflate gzip member")),
            }
        }
    }

    fn trailer(&mut self) -> Result<(), DecodeError<S::Error>> {
        if !self.input.need(8)? {
            return Err(self.bad("truncated trailer"));
        }
        let t = self.input.bytes();
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let digest = core::mem::replace(&mut self.crc, CRC32.digest());
        if crc != digest.finalize() || len != self.len {
            return Err(self.bad("CRC32 or length in the trailer does not match the data"));
        }
        self.input.consume(8);
        self.len = 0;
        Ok(())
    }
}

impl<S: ImageSource + ?Sized> Read for Gunzip<'_, S>
where
    S::Error: fmt::Display,
{
    fn read(&mut self, out: &mut [u8]) -> Result<usize, Self::Error> {
        loop {
            match self.phase {
                GzPhase::Header => {
                    self.header()?;
                    self.state.reset(DataFormat::Raw);
                    self.phase = GzPhase::Body;
                }
                GzPhase::Body => {
                    if self.input.bytes().is_empty() && !self.input.refill()? {
                        return Err(self.bad("the stream ends inside compressed data"));
                    }
                    let r = inflate(&mut self.state, self.input.bytes(), out, MZFlush::None);
                    self.input.consume(r.bytes_consumed);
                    self.crc.update(&out[..r.bytes_written]);
                    self.len = self.len.wrapping_add(r.bytes_written as u32);
                    match r.status {
                        Ok(MZStatus::StreamEnd) => self.phase = GzPhase::Trailer,
                        Ok(_) => {}
                        Err(_) => return Err(self.bad("bad deflate data")),
                    }
                    if r.bytes_written > 0 {
                        return Ok(r.bytes_written);
                    }
                }
                GzPhase::Trailer => {
                    self.trailer()?;
                    // Another member, or the end; nothing else may follow.
                    self.phase = if self.input.need(1)? {
                        GzPhase::Header
                    } else {
                        GzPhase::Done
                    };
                }
                GzPhase::Done => return Ok(0),
            }
        }
    }
}

/// A zstd stream: one frame or several (`pzstd`), skippable frames skipped.
pub struct Unzstd<'a, S: ?Sized> {
    input: Input<'a, S>,
    decoder: Box<ruzstd::decoding::FrameDecoder>,
    in_frame: bool,
    done: bool,
    /// What the frame's header promised, checked at its end.
    promise: FramePromise,
    /// Bytes this frame has produced so far.
    produced: u64,
}

/// What a zstd frame header promises about its content: its size (when
/// the header carries one) and whether a checksum of it follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramePromise {
    pub content_size: Option<u64>,
    pub checksum: bool,
}

impl FramePromise {
    /// From the frame header's descriptor byte (after the magic) and the
    /// decoder that read the header.
    pub fn read(descriptor: u8, d: &ruzstd::decoding::FrameDecoder) -> FramePromise {
        let (fcs_flag, single_segment) = (descriptor >> 6, descriptor & 0x20 != 0);
        FramePromise {
            content_size: (fcs_flag != 0 || single_segment).then(|| d.content_size()),
            checksum: descriptor & 0x04 != 0,
        }
    }

    /// At the frame's end: the size made and the checksum read against
    /// what the header said (zstd writes both for exactly this).
    pub fn check(&self, produced: u64, d: &ruzstd::decoding::FrameDecoder) -> Result<(), String> {
        if let Some(size) = self.content_size.filter(|&s| s != produced) {
            return Err(format!(
                "the frame made {produced} bytes, its header says {size}"
            ));
        }
        if self.checksum {
            let (read, made) = (d.get_checksum_from_data(), d.get_calculated_checksum());
            if read.is_none() || read != made {
                return Err(format!(
                    "content checksum {:08x?} in the frame, {:08x?} of the bytes made",
                    read, made
                ));
            }
        }
        Ok(())
    }
}

/// The next zstd block from its 3-byte header: the bytes to hand the
/// decoder (header and content) and whether it is the frame's last. The
/// decoder inflates every complete block it is handed before it yields
/// any, and a 128 KiB block of one repeated byte takes 4 bytes: callers
/// hand it one block at a time and bound what it made after each.
pub fn zstd_block(header: [u8; 3]) -> Result<(usize, bool), String> {
    let h = u32::from_le_bytes([header[0], header[1], header[2], 0]);
    let content = match (h >> 1) & 3 {
        1 => 1, // RLE: one byte, repeated
        3 => return Err("a reserved block type".into()),
        _ => (h >> 3) as usize,
    };
    if content > 128 * 1024 {
        return Err(format!("a block of {content} bytes (128 KiB at most)"));
    }
    Ok((3 + content, h & 1 != 0))
}

impl<'a, S: ImageSource + ?Sized> Unzstd<'a, S> {
    pub fn new(src: &'a mut S) -> Self {
        // A block is at most 128 KiB; the buffer holds two.
        Unzstd {
            input: Input::new(src, 256 * 1024),
            decoder: Box::new(ruzstd::decoding::FrameDecoder::new()),
            in_frame: false,
            done: false,
            promise: FramePromise::default(),
            produced: 0,
        }
    }

    fn bad(&self, why: String) -> DecodeError<S::Error> {
        DecodeError::Data(format!(
            "zstd: {why} (at compressed byte {})",
            self.input.consumed
        ))
    }

    /// Starts the next frame; false at the end of the stream.
    fn next_frame(&mut self) -> Result<bool, DecodeError<S::Error>> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        loop {
            if !self.input.need(1)? {
                return Ok(false);
            }
            // The largest frame header is 18 bytes.
            self.input.need(18)?;
            let mut d = ruzstd::decoding::FrameDecoder::new();
            d.set_max_window_size(ZSTD_MAX_WINDOW);
            let mut header = self.input.bytes();
            let before = header.len();
            let descriptor = header.get(4).copied().unwrap_or(0);
            match d.init(&mut header) {
                Ok(()) => {
                    let used = before - header.len();
                    self.input.consume(used);
                    self.promise = FramePromise::read(descriptor, &d);
                    self.produced = 0;
                    *self.decoder = d;
                    return Ok(true);
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let mut left = length as usize + 8;
                    while left > 0 {
                        if self.input.bytes().is_empty() && !self.input.refill()? {
                            return Err(self.bad("truncated skippable frame".into()));
                        }
                        let n = left.min(self.input.bytes().len());
                        self.input.consume(n);
                        left -= n;
                    }
                }
                Err(e) => return Err(self.bad(format!("{e}"))),
            }
        }
    }
}

impl<S: ImageSource + ?Sized> Read for Unzstd<'_, S>
where
    S::Error: fmt::Display,
{
    fn read(&mut self, out: &mut [u8]) -> Result<usize, Self::Error> {
        loop {
            if self.done {
                return Ok(0);
            }
            if self.decoder.can_collect() > 0 {
                let (_, written) = self
                    .decoder
                    .decode_from_to(&[], out)
                    .map_err(|e| self.bad(format!("{e}")))?;
                self.produced += written as u64;
                return Ok(written);
            }
            if self.in_frame && self.decoder.is_finished() {
                let checked = self.promise.check(self.produced, &self.decoder);
                checked.map_err(|e| self.bad(e))?;
            }
            if !self.in_frame || self.decoder.is_finished() {
                self.in_frame = self.next_frame()?;
                self.done = !self.in_frame;
                continue;
            }
            // One block at a time: the decoder inflates every complete
            // block it is handed before it yields any, and a block of
            // zeros takes a few bytes.
            if !self.input.need(3)? {
                return Err(self.bad("the stream ends inside a frame".into()));
            }
            let h = self.input.bytes();
            let (mut len, last) = zstd_block([h[0], h[1], h[2]]).map_err(|e| self.bad(e))?;
            if !self.input.need(len)? {
                return Err(self.bad("the stream ends inside a block".into()));
            }
            if last && self.input.need(len + 4)? {
                len += 4; // the frame's checksum, if it has one
            }
            let (read, written) = self
                .decoder
                .decode_from_to(&self.input.bytes()[..len], out)
                .map_err(|e| self.bad(format!("{e}")))?;
            self.input.consume(read);
            if read == 0 && written == 0 {
                return Err(self.bad("a block the decoder does not take".into()));
            }
            if written > 0 {
                self.produced += written as u64;
                return Ok(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SliceImage;

    fn zstd(args: &[&str], data: &[u8]) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("rivet-unzstd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join(format!("in-{}", args.join("")));
        std::fs::write(&input, data).unwrap();
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .args(["-q", "-c"])
            .arg(&input)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let _ = std::fs::remove_file(&input);
        out.stdout
    }

    fn unzstd(stream: &[u8]) -> Result<Vec<u8>, String> {
        let mut src = SliceImage::new(stream);
        let mut z = Unzstd::new(&mut src);
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match z.read(&mut chunk) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn data() -> Vec<u8> {
        (0..3u32 << 20)
            .map(|i| {
                if i % 4096 < 3000 {
                    (i.wrapping_mul(2654435761) >> 24) as u8
                } else {
                    0
                }
            })
            .collect()
    }

    /// The frame header's content size field: where and how wide.
    fn fcs(frame: &[u8]) -> (usize, usize) {
        let fhd = frame[4];
        let single = fhd & 0x20 != 0;
        let dict = [0, 1, 2, 4][usize::from(fhd & 3)];
        let width = [usize::from(single), 2, 4, 8][usize::from(fhd >> 6)];
        (5 + usize::from(!single) + dict, width)
    }

    /// Issue 33, item 11: pzstd's frames, each behind a skippable frame,
    /// inflate whole; a content checksum or a content size that does not
    /// match what the frame made is refused (neither was checked).
    #[test]
    fn pzstd_frames_checksums_and_content_sizes() {
        let data = data();
        let pz = zstd(&["pzstd", "-p", "2"], &data);
        assert_eq!(
            &pz[..4],
            &[0x50, 0x2a, 0x4d, 0x18],
            "pzstd starts with a skippable frame"
        );
        assert!(unzstd(&pz).unwrap() == data);
        let plain = zstd(&["zstd"], &data);
        assert!(unzstd(&plain).unwrap() == data);
        assert_eq!(plain[4] & 0x04, 0x04, "zstd writes a checksum by default");

        let mut bad = plain.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x5a;
        let err = unzstd(&bad).unwrap_err();
        assert!(err.contains("content checksum"), "{err}");

        let mut bad = plain.clone();
        let (at, width) = fcs(&bad);
        assert!(width >= 2, "zstd -c FILE records the size");
        bad[at] = bad[at].wrapping_add(1);
        let err = unzstd(&bad).unwrap_err();
        assert!(
            err.contains(&format!("made {} bytes, its header says", data.len())),
            "{err}"
        );
    }
}

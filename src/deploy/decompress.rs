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

/// libzstd's streaming decoder, its window bounded by `max_window`. Its
/// memory is the decoder's state, the window and one block, allocated by
/// libzstd when a frame's header asks (`ZSTD_sizeof_DStream` reports it:
/// [`Unzstd::decoder_memory`]).
pub fn zstd_decoder(max_window: u64) -> Result<zstd_safe::DCtx<'static>, String> {
    let mut d = zstd_safe::DCtx::try_create().ok_or("no memory for a zstd decoder")?;
    let log = 63 - max_window.max(1 << 10).leading_zeros();
    d.set_parameter(zstd_safe::DParameter::WindowLogMax(log))
        .map_err(|code| zstd_error(code, max_window))?;
    Ok(d)
}

/// What a libzstd error code means, where the error is a limit of
/// rivet's with the limit. libzstd is built without its own table of
/// messages (.cargo/config.toml: 1.6 KB); these are the errors a decoder
/// meets.
pub fn zstd_error(code: usize, max_window: u64) -> String {
    use zstd_safe::zstd_sys::ZSTD_ErrorCode as E;
    // An error is the code negated (zstd_errors.h).
    let code = code.wrapping_neg();
    let is = |e: E| code == e as usize;
    let what = if is(E::ZSTD_error_frameParameter_windowTooLarge) {
        return format!(
            "a window over the {} KiB rivet allows here",
            max_window >> 10
        );
    } else if is(E::ZSTD_error_prefix_unknown) {
        "not a zstd frame (unknown magic number)"
    } else if is(E::ZSTD_error_version_unsupported) || is(E::ZSTD_error_frameParameter_unsupported)
    {
        "a frame header this decoder does not support"
    } else if is(E::ZSTD_error_checksum_wrong) {
        "the content checksum does not match the bytes made"
    } else if is(E::ZSTD_error_dictionary_wrong) || is(E::ZSTD_error_dictionary_corrupted) {
        "a frame made with a dictionary"
    } else if is(E::ZSTD_error_memory_allocation) {
        "out of memory"
    } else if is(E::ZSTD_error_srcSize_wrong) {
        "the input ends inside a frame"
    } else if code < E::ZSTD_error_maxCode as usize {
        "corrupt data"
    } else {
        "not an error code"
    };
    format!("{what} (libzstd error {code})")
}

/// One zstd frame held whole in memory (a qcow2 cluster, a kernel
/// module), inflated a piece at a time into the caller's buffers; what
/// follows the frame is left alone ([`ZstdFrame::rest`]).
pub struct ZstdFrame<'a> {
    decoder: zstd_safe::DCtx<'static>,
    input: &'a [u8],
    max_window: u64,
}

impl<'a> ZstdFrame<'a> {
    pub fn new(input: &'a [u8], max_window: u64) -> Result<Self, String> {
        Ok(ZstdFrame {
            decoder: zstd_decoder(max_window)?,
            input,
            max_window,
        })
    }

    /// Fills `out` from the frame: the bytes made and whether the frame
    /// ended. Short of `out` only at the frame's end; an input that ends
    /// inside the frame is an error.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(usize, bool), String> {
        let mut o = zstd_safe::OutBuffer::around(out);
        loop {
            let mut i = zstd_safe::InBuffer::around(self.input);
            let hint = self
                .decoder
                .decompress_stream(&mut o, &mut i)
                .map_err(|code| zstd_error(code, self.max_window))?;
            let read = i.pos;
            self.input = &self.input[read..];
            match hint {
                0 => return Ok((o.pos(), true)),
                _ if o.pos() == o.capacity() => return Ok((o.pos(), false)),
                _ if read == 0 => return Err("the input ends inside the frame".into()),
                _ => {}
            }
        }
    }

    /// The input after what the decoder took.
    pub fn rest(&self) -> &'a [u8] {
        self.input
    }
}

/// A zstd stream: one frame or several (`pzstd`), skippable frames skipped,
/// each frame's content size and checksum checked (by libzstd).
pub struct Unzstd<'a, S: ?Sized> {
    input: Input<'a, S>,
    decoder: Result<zstd_safe::DCtx<'static>, String>,
    /// The last frame (or skippable frame) ended and every byte it made
    /// was handed out: the stream may end here.
    between_frames: bool,
    done: bool,
    /// The content size the current frame's header gives, if it gives
    /// one, and the bytes it has made: named when libzstd refuses a frame.
    promised: Option<u64>,
    made: u64,
}

impl<'a, S: ImageSource + ?Sized> Unzstd<'a, S> {
    pub fn new(src: &'a mut S) -> Self {
        Unzstd {
            // A block and its header (libzstd's ZSTD_DStreamInSize): the
            // input it decodes from stays in cache. Reads of twice that,
            // measured (tests/bench/zstd-inflate.rs on the 1 GiB image):
            // the kernel's copies into the buffer took 0.38 s instead of
            // 0.10 s, the inflate 1.13 s instead of 0.78 s.
            input: Input::new(src, 128 * 1024 + 3),
            decoder: zstd_decoder(ZSTD_MAX_WINDOW),
            between_frames: true,
            done: false,
            promised: None,
            made: 0,
        }
    }

    /// The bytes libzstd holds now (its state, window and buffers).
    pub fn decoder_memory(&self) -> usize {
        self.decoder.as_ref().map_or(0, |d| d.sizeof())
    }

    fn bad(&self, why: String) -> DecodeError<S::Error> {
        DecodeError::Data(format!(
            "zstd: {why} (at compressed byte {})",
            self.input.consumed
        ))
    }

    /// libzstd's error, with what the frame's header promised.
    fn refused(&self, code: usize) -> DecodeError<S::Error> {
        let mut why = zstd_error(code, ZSTD_MAX_WINDOW);
        if let Some(size) = self.promised {
            why += &format!(
                " (its header promises {size} bytes; {} were made)",
                self.made
            );
        }
        self.bad(why)
    }

    /// Between frames: what the next frame's header promises.
    fn next_frame(&mut self) -> Result<(), DecodeError<S::Error>> {
        // The largest frame header is 18 bytes.
        self.input.need(18)?;
        self.made = 0;
        self.promised = match zstd_safe::get_frame_header(self.input.bytes()) {
            // "Unknown" is u64::MAX (ZSTD_CONTENTSIZE_UNKNOWN).
            Ok(zstd_safe::FrameHeaderStatus::Complete(h))
                if h.frameType == zstd_safe::zstd_sys::ZSTD_FrameType_e::ZSTD_frame
                    && h.frameContentSize != u64::MAX =>
            {
                Some(h.frameContentSize)
            }
            _ => None,
        };
        Ok(())
    }
}

impl<S: ImageSource + ?Sized> Read for Unzstd<'_, S>
where
    S::Error: fmt::Display,
{
    fn read(&mut self, out: &mut [u8]) -> Result<usize, Self::Error> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.between_frames && !self.input.bytes().is_empty() {
                self.next_frame()?;
            }
            let decoded = match &mut self.decoder {
                Ok(d) => {
                    let mut o = zstd_safe::OutBuffer::around(&mut *out);
                    let mut i = zstd_safe::InBuffer::around(
                        &self.input.buf[self.input.start..self.input.end],
                    );
                    d.decompress_stream(&mut o, &mut i)
                        .map(|hint| (hint, i.pos, o.pos()))
                }
                Err(e) => return Err(DecodeError::Data(format!("zstd: {e}"))),
            };
            let (hint, read, written) = decoded.map_err(|code| self.refused(code))?;
            self.input.consume(read);
            self.made += written as u64;
            // 0: a frame ended and all it made is out (libzstd keeps a
            // byte of input back until then). Asked with nothing to read
            // between frames, it answers with the next header's size.
            if read > 0 || written > 0 {
                self.between_frames = hint == 0;
            }
            if written > 0 {
                return Ok(written);
            }
            if read == 0 && !self.input.refill()? {
                if self.between_frames {
                    self.done = true;
                    return Ok(0);
                }
                return Err(self.bad("the stream ends inside a frame".into()));
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
    /// match what the frame made is refused (neither was checked), and
    /// the refusal names the size the header promised.
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
        assert!(err.contains("the content checksum does not match"), "{err}");

        let mut bad = plain.clone();
        let (at, width) = fcs(&bad);
        assert!(width >= 2, "zstd -c FILE records the size");
        bad[at] = bad[at].wrapping_add(1);
        let err = unzstd(&bad).unwrap_err();
        assert!(
            err.contains(&format!(
                "corrupt data (libzstd error 20) (its header promises {} bytes;",
                data.len() + 1
            )),
            "{err}"
        );
    }
}

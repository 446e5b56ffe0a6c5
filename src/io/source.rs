//! An image source: the bytes to deploy, streamed (embedded-io's Read)
//! with what is known of them; and a double that serves them from memory.

use alloc::string::String;
use core::convert::Infallible;
use embedded_io::Read;

/// A source of image bytes: embedded-io's Read, plus what we know of it.
pub trait ImageSource: Read {
    /// Total bytes, when known before reading (Content-Length, file size).
    fn size(&self) -> Option<u64>;
    /// Where the bytes come from (URL or path), for messages.
    fn describe(&self) -> alloc::string::String;
    /// Reads `buf.len()` bytes at `offset` apart from the stream, which
    /// goes on where it was (a file's pread, an HTTP `Range` request).
    /// `None`: this source cannot (a server that ignores `Range`).
    fn read_at(
        &mut self,
        _offset: u64,
        _buf: &mut [u8],
    ) -> Option<Result<(), alloc::string::String>> {
        None
    }
    /// GETs another resource (a config drive) over the image's own network
    /// and hands its body to `sink` as it arrives. `None`: this source has
    /// no network (a file).
    fn fetch_other(
        &mut self,
        _url: &str,
        _sink: &mut dyn FnMut(&[u8]) -> Result<(), alloc::string::String>,
    ) -> Option<Result<(), alloc::string::String>> {
        None
    }
    /// Whether reading it leaves the reading thread's core mostly free (a
    /// file: the page cache or a disk does the work), so that thread can
    /// hash what it reads; rivet's own network stack keeps its core busy.
    fn reads_cheaply(&self) -> bool {
        false
    }
    /// Whether this source hashes its own stream by `algo` as it reads it
    /// (a file read ahead on a thread with time to spare), so the deploy
    /// need not; the digest comes from [`ImageSource::stream_digest`].
    fn hashes_stream(&self, _algo: crate::plan::HashAlgo) -> bool {
        false
    }
    /// Once the stream has been read to its end, the hex digest of every
    /// byte it gave, when [`ImageSource::hashes_stream`] said yes; `None`
    /// before the end, so a deploy that stopped short never verifies.
    fn stream_digest(&mut self) -> Option<String> {
        None
    }
}

/// Image bytes from memory, optionally hiding their size (as a chunked
/// HTTP response would).
pub struct SliceImage<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub size_known: bool,
    /// Serves reads at an offset (as a file or a server with Range would).
    pub ranges: bool,
    /// What reads at an offset return instead of `data`: a server that
    /// answers range requests with other bytes than it streams.
    pub ranged_from: Option<&'a [u8]>,
}

impl<'a> SliceImage<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        SliceImage {
            data,
            pos: 0,
            size_known: true,
            ranges: false,
            ranged_from: None,
        }
    }
}

impl embedded_io::ErrorType for SliceImage<'_> {
    type Error = Infallible;
}

impl embedded_io::Read for SliceImage<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        // Short reads on purpose: at most 100 000 bytes a call.
        let n = buf.len().min(self.data.len() - self.pos).min(100_000);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ImageSource for SliceImage<'_> {
    fn size(&self) -> Option<u64> {
        self.size_known.then_some(self.data.len() as u64)
    }
    fn describe(&self) -> String {
        String::from("memory")
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        if !self.ranges {
            return None;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let data = self.ranged_from.unwrap_or(self.data);
        Some(match data.get(start..start.saturating_add(buf.len())) {
            Some(part) => {
                buf.copy_from_slice(part);
                Ok(())
            }
            None => Err(alloc::format!(
                "{} bytes at {offset}: past the end",
                buf.len()
            )),
        })
    }
}

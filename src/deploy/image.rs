//! Streaming the image onto the disk through one aligned buffer, hashing on
//! the way, with the first MiB held back until the checksum has passed: a
//! failed or interrupted deploy never leaves a recognisable filesystem or a
//! bootable disk behind.

use super::table::write;
use super::{Env, Error};
use crate::io::{BlockDevice, ImageSource};
use crate::plan::HashAlgo;
use crate::stream::{fill, Meter};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use embedded_io::Read;

/// How much of the image's start is written only after verification.
pub const HOLD_BACK: usize = 1 << 20;

/// Any image source, its error turned to text: the engine below
/// [`super::deploy`] is compiled once, not once per kind of source and
/// format (each copy cost /init tens of KB).
pub struct Erased<'a> {
    inner: &'a mut dyn ErasedSource,
}

/// The object-safe face of an [`ImageSource`].
pub trait ErasedSource {
    fn read_text(&mut self, buf: &mut [u8]) -> Result<usize, String>;
    fn size(&self) -> Option<u64>;
    fn describe(&self) -> String;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>>;
    fn fetch_other(
        &mut self,
        url: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Option<Result<(), String>>;
    fn hashes_stream(&self, algo: HashAlgo) -> bool;
    fn stream_digest(&mut self) -> Option<String>;
}

impl<S: ImageSource + ?Sized> ErasedSource for S
where
    S::Error: core::fmt::Display,
{
    fn read_text(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        self.read(buf).map_err(|e| alloc::format!("{e}"))
    }
    fn size(&self) -> Option<u64> {
        ImageSource::size(self)
    }
    fn describe(&self) -> String {
        ImageSource::describe(self)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        ImageSource::read_at(self, offset, buf)
    }
    fn fetch_other(
        &mut self,
        url: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Option<Result<(), String>> {
        ImageSource::fetch_other(self, url, sink)
    }
    fn hashes_stream(&self, algo: HashAlgo) -> bool {
        ImageSource::hashes_stream(self, algo)
    }
    fn stream_digest(&mut self) -> Option<String> {
        ImageSource::stream_digest(self)
    }
}

impl<'a> Erased<'a> {
    pub fn new(inner: &'a mut dyn ErasedSource) -> Self {
        Erased { inner }
    }
}

/// A source's error, as text.
#[derive(Debug)]
pub struct SourceError(pub String);

impl core::fmt::Display for SourceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for SourceError {}

impl embedded_io::Error for SourceError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

impl embedded_io::ErrorType for Erased<'_> {
    type Error = SourceError;
}

impl Read for Erased<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        self.inner.read_text(buf).map_err(SourceError)
    }
}

impl ImageSource for Erased<'_> {
    fn size(&self) -> Option<u64> {
        self.inner.size()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        self.inner.read_at(offset, buf)
    }
    fn fetch_other(
        &mut self,
        url: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Option<Result<(), String>> {
        self.inner.fetch_other(url, sink)
    }
    fn hashes_stream(&self, algo: HashAlgo) -> bool {
        self.inner.hashes_stream(algo)
    }
    fn stream_digest(&mut self) -> Option<String> {
        self.inner.stream_digest()
    }
}

/// The image as the engine reads it: erased, its head sniffed.
pub type Image<'a, 'b> = Sniffed<'a, Erased<'b>>;

/// An image source whose first bytes were read ahead, before anything is
/// written, to check what format it is in; they are replayed to the deploy.
pub struct Sniffed<'a, S: ?Sized> {
    inner: &'a mut S,
    head: Vec<u8>,
    at: usize,
}

impl<'a, S: ImageSource + ?Sized> Sniffed<'a, S> {
    /// Reads up to `len` bytes of `inner` (fewer if it is shorter).
    pub fn new(inner: &'a mut S, len: usize) -> Result<Self, S::Error> {
        let mut head = vec![0u8; len];
        let n = fill(inner, &mut head)?;
        head.truncate(n);
        Ok(Sniffed { inner, head, at: 0 })
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }
}

impl<S: ImageSource + ?Sized> embedded_io::ErrorType for Sniffed<'_, S> {
    type Error = S::Error;
}

impl<S: ImageSource + ?Sized> Read for Sniffed<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, S::Error> {
        if self.at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.at);
            buf[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<S: ImageSource + ?Sized> ImageSource for Sniffed<'_, S> {
    fn size(&self) -> Option<u64> {
        self.inner.size()
    }
    fn describe(&self) -> alloc::string::String {
        self.inner.describe()
    }
    fn read_at(
        &mut self,
        offset: u64,
        buf: &mut [u8],
    ) -> Option<Result<(), alloc::string::String>> {
        self.inner.read_at(offset, buf)
    }
    fn fetch_other(
        &mut self,
        url: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Option<Result<(), String>> {
        self.inner.fetch_other(url, sink)
    }
    fn hashes_stream(&self, algo: HashAlgo) -> bool {
        self.inner.hashes_stream(algo)
    }
    fn stream_digest(&mut self) -> Option<String> {
        self.inner.stream_digest()
    }
}

/// Writes `data` at `offset` (a multiple of the block size); a tail that is
/// not a whole block is merged with what the disk holds there.
pub fn write_any_len(dev: &mut dyn BlockDevice, offset: u64, data: &[u8]) -> Result<(), Error> {
    let b = dev.logical_block() as usize;
    let whole = data.len() / b * b;
    if whole > 0 {
        write(dev, offset, &data[..whole])?;
    }
    let tail = &data[whole..];
    if !tail.is_empty() {
        let at = offset + whole as u64;
        let mut block = vec![0u8; b];
        dev.read_at(at, &mut block)
            .map_err(|e| Error::device(dev, "read", at, e))?;
        block[..tail.len()].copy_from_slice(tail);
        write(dev, at, &block)?;
    }
    Ok(())
}

/// Writes `data` at any byte `offset`: a partial block at either end is
/// merged with what the disk holds there.
pub fn write_at_any(dev: &mut dyn BlockDevice, offset: u64, data: &[u8]) -> Result<(), Error> {
    let b = dev.logical_block() as u64;
    let lead = (offset % b) as usize;
    if lead == 0 {
        return write_any_len(dev, offset, data);
    }
    let at = offset - lead as u64;
    let mut block = vec![0u8; b as usize];
    dev.read_at(at, &mut block)
        .map_err(|e| Error::device(dev, "read", at, e))?;
    let n = data.len().min(b as usize - lead);
    block[lead..lead + n].copy_from_slice(&data[..n]);
    write(dev, at, &block)?;
    if n < data.len() {
        write_any_len(dev, at + b, &data[n..])?;
    }
    Ok(())
}

#[derive(Debug)]
pub struct Streamed {
    /// Bytes as served (compressed, or the qcow2 file).
    pub bytes: u64,
    /// Of the bytes as served (filled in by `format::stream`).
    pub digest: alloc::string::String,
    /// The first bytes of the image, not yet on the disk.
    pub held: Vec<u8>,
    pub elapsed_ms: u64,
}

/// Copies the image to `offset`, refusing to write past `limit` bytes.
/// Returns with the first [`HOLD_BACK`] bytes held in memory.
/// Runs once the first [`HOLD_BACK`] bytes are held (or the whole image,
/// if shorter), before anything is written: a last check of the image's
/// head, and what must happen only when it passes.
pub type BeforeWrite<'a> = &'a mut dyn FnMut(&mut dyn BlockDevice, &[u8]) -> Result<(), Error>;

#[allow(clippy::too_many_arguments)]
pub fn stream<S: ImageSource + ?Sized>(
    dev: &mut dyn BlockDevice,
    env: &mut dyn Env,
    src: &mut S,
    offset: u64,
    limit: u64,
    buf: &mut [u8],
    before_write: BeforeWrite<'_>,
) -> Result<Streamed, Error>
where
    S::Error: core::fmt::Display,
{
    let start_ms = env.now_ms();
    let mut meter = Meter::new(start_ms, 5_000, src.size());
    let mut held = Vec::new();
    let mut pos = 0u64;
    let mut checked = false;
    loop {
        let n = fill(src, buf).map_err(|e| Error::Image {
            source: src.describe(),
            offset: pos,
            message: alloc::format!("{e}"),
        })?;
        if n == 0 {
            break;
        }
        if pos + n as u64 > limit {
            return Err(Error::ImageTooLarge {
                limit,
                image: src.size(),
                source: src.describe(),
            });
        }
        let mut skip = 0;
        if (pos as usize) < HOLD_BACK {
            skip = (HOLD_BACK - pos as usize).min(n);
            held.extend_from_slice(&buf[..skip]);
        }
        if skip < n {
            if !checked {
                before_write(dev, &held)?;
                checked = true;
            }
            write_any_len(dev, offset + pos + skip as u64, &buf[skip..n])?;
        }
        pos += n as u64;
        if let Some(line) = meter.advance(n as u64, env.now_ms()) {
            log::info!("image: {line}");
        }
        if n < buf.len() {
            break; // the source ended inside this buffer
        }
    }
    if !checked {
        before_write(dev, &held)?;
    }
    let elapsed_ms = env.now_ms().saturating_sub(start_ms);
    Ok(Streamed {
        bytes: pos,
        digest: String::new(),
        held,
        elapsed_ms,
    })
}

//! What the image is (raw, qcow2, a compressed raw stream), decided from
//! its first bytes and the plan's `disk_format` before the disk is touched,
//! and the pipeline that takes each kind onto the disk: the checksum is
//! always of the bytes as served.

use super::decompress::{Gunzip, Unzstd};
use super::image::{self, BeforeWrite, ImageSource, Streamed};
use super::qcow2::{self, Limits};
use super::{BlockDevice, Env, Error};
use crate::plan::{DiskFormat, HashAlgo};
use crate::stream::Hasher;
use crate::wire::{magic, qcow2 as wire};
use alloc::format;
use alloc::string::String;
use embedded_io::Read;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2(wire::Header),
    /// A raw image compressed as a whole.
    Gzip,
    Zstd,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2(_) => "qcow2",
            Format::Gzip => "gzip-compressed raw",
            Format::Zstd => "zstd-compressed raw",
        }
    }

    /// Bytes the image occupies on the disk, when known before the pass:
    /// the virtual size of a qcow2, the file size of a raw image.
    pub fn disk_bytes(&self, file_size: Option<u64>) -> Option<u64> {
        match self {
            Format::Raw => file_size,
            Format::Qcow2(h) => Some(h.size),
            Format::Gzip | Format::Zstd => None,
        }
    }

    /// Decides from `head` (the image's first bytes) and what the plan
    /// declared. A declared format the bytes contradict is refused, as
    /// Ironic's format inspector refuses it; `permitted` is Ironic's
    /// `permitted_image_formats` (empty: no restriction).
    pub fn decide(
        declared: Option<DiskFormat>,
        head: &[u8],
        permitted: &[String],
        name: &str,
    ) -> Result<Format, Error> {
        let found = match magic::sniff(head) {
            None => Format::Raw,
            Some(m) if m.name == "qcow2" => {
                let h = wire::Header::parse(head).map_err(|e| {
                    Error::Refused(format!(
                        "the image {name} is a qcow2 rivet cannot read: {e}"
                    ))
                })?;
                Format::Qcow2(h)
            }
            Some(m) if m.name == "gzip" => {
                check_gzip_start(head).map_err(|e| {
                    Error::Refused(format!("the image {name} is not valid gzip: {e}"))
                })?;
                Format::Gzip
            }
            Some(m) if m.name == "zstd" => {
                check_zstd_start(head).map_err(|e| {
                    Error::Refused(format!("the image {name} is not usable zstd: {e}"))
                })?;
                Format::Zstd
            }
            Some(m) => {
                return Err(Error::Refused(format!(
                    "the image {name} is {}, which rivet does not write ({})",
                    m.name, m.hint
                )))
            }
        };
        let inspected = match found {
            Format::Qcow2(_) => "qcow2",
            _ => "raw",
        };
        let agrees = match (declared, &found) {
            (None, _) | (Some(DiskFormat::Qcow2), Format::Qcow2(_)) => true,
            (Some(DiskFormat::Raw), found) => !matches!(found, Format::Qcow2(_)),
            (Some(DiskFormat::Qcow2), _) => false,
        };
        if let (false, Some(d)) = (agrees, declared) {
            return Err(Error::Refused(format!(
                "the image {name} is declared {} but its bytes are {}",
                d.name(),
                found.name()
            )));
        }
        let allowed = |p: &String| p == inspected || (inspected == "raw" && p == "gpt");
        if !permitted.is_empty() && !permitted.iter().any(allowed) {
            return Err(Error::Refused(format!(
                "the image {name} is {inspected}, not among the permitted image formats ({})",
                permitted.join(", ")
            )));
        }
        Ok(found)
    }
}

/// What the first bytes of a gzip stream can say: the header's fields and
/// the start of the deflate data.
fn check_gzip_start(head: &[u8]) -> Result<(), String> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    if head.len() < 10 || head[3] & 0xe0 != 0 {
        return Err("reserved header flags set".into());
    }
    if head[3] & 0x1c != 0 {
        return Ok(()); // optional fields: the stream reader skips them
    }
    let mut d = alloc::boxed::Box::new(DecompressorOxide::new());
    let mut out = alloc::vec![0u8; 32 * 1024];
    let flags = inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
    let (status, _, _) = decompress(&mut d, &head[10..], &mut out, 0, flags);
    match status {
        TINFLStatus::Failed | TINFLStatus::BadParam | TINFLStatus::Adler32Mismatch => {
            Err(format!("the deflate data does not decode ({status:?})"))
        }
        _ => Ok(()),
    }
}

/// A zstd frame header can be read whole from the first bytes; its window
/// must fit the memory rivet allows it.
fn check_zstd_start(head: &[u8]) -> Result<(), String> {
    let mut d = ruzstd::decoding::FrameDecoder::new();
    d.set_max_window_size(super::decompress::ZSTD_MAX_WINDOW);
    let mut input = head;
    match d.init(&mut input) {
        Ok(()) => Ok(()),
        Err(e) => Err(format!(
            "{e} (rivet decodes frames with windows up to {} MiB)",
            super::decompress::ZSTD_MAX_WINDOW >> 20
        )),
    }
}

/// An image source whose bytes are hashed as they are read (not those
/// read at an offset, which the stream reads again).
pub struct Hashed<'a, S: ?Sized> {
    inner: &'a mut S,
    hasher: Hasher,
    bytes: u64,
}

impl<'a, S: ImageSource + ?Sized> Hashed<'a, S> {
    pub fn new(inner: &'a mut S, algo: HashAlgo) -> Self {
        Hashed {
            inner,
            hasher: Hasher::new(algo),
            bytes: 0,
        }
    }
}

impl<S: ImageSource + ?Sized> embedded_io::ErrorType for Hashed<'_, S> {
    type Error = S::Error;
}

impl<S: ImageSource + ?Sized> Read for Hashed<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, S::Error> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<S: ImageSource + ?Sized> ImageSource for Hashed<'_, S> {
    fn size(&self) -> Option<u64> {
        self.inner.size()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        self.inner.read_at(offset, buf)
    }
}

/// An image checked for its target before the disk is touched.
pub struct Ready {
    format: Format,
    qcow2: Option<qcow2::Prepared>,
}

impl Format {
    /// Checks what can be checked for a target of `limit` bytes without
    /// writing: a qcow2's header and, where the source reads at offsets,
    /// all its tables.
    pub fn prepare(self, src: &mut image::Image<'_, '_>, limit: u64) -> Result<Ready, Error> {
        let qcow2 = match &self {
            Format::Qcow2(h) => Some(qcow2::prepare(src, h, limit, Limits::default())?),
            _ => None,
        };
        Ok(Ready {
            format: self,
            qcow2,
        })
    }
}

/// Writes the image, whatever its format, to `offset`, refusing to go past
/// `limit` bytes; the digest is of the bytes as served.
#[allow(clippy::too_many_arguments)]
pub fn stream(
    ready: Ready,
    dev: &mut dyn BlockDevice,
    env: &mut dyn Env,
    src: &mut image::Image<'_, '_>,
    offset: u64,
    limit: u64,
    buf: &mut [u8],
    algo: HashAlgo,
    before_write: BeforeWrite<'_>,
) -> Result<Streamed, Error> {
    let Ready { format, qcow2 } = ready;
    let format = &format;
    let mut hashed = Hashed::new(src, algo);
    let mut streamed = match (format, qcow2) {
        (Format::Qcow2(_), Some(prepared)) => {
            qcow2::stream(prepared, dev, env, &mut hashed, offset, buf, before_write)?
        }
        (Format::Gzip, _) => {
            let mut raw = Gunzip::new(&mut hashed);
            image::stream(dev, env, &mut raw, offset, limit, buf, before_write)?
        }
        (Format::Zstd, _) => {
            let mut raw = Unzstd::new(&mut hashed);
            image::stream(dev, env, &mut raw, offset, limit, buf, before_write)?
        }
        _ => image::stream(dev, env, &mut hashed, offset, limit, buf, before_write)?,
    };
    if !matches!(format, Format::Raw) {
        log::info!(
            "{}: {} bytes served, {} bytes of disk image",
            format.name(),
            hashed.bytes,
            match format {
                Format::Qcow2(h) => h.size,
                _ => streamed.bytes,
            }
        );
    }
    streamed.bytes = hashed.bytes;
    streamed.digest = core::mem::replace(&mut hashed.hasher, Hasher::new(algo)).finish_hex();
    Ok(streamed)
}

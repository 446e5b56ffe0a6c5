//! What the image is (raw, qcow2, a compressed raw stream), decided from
//! its first bytes and the plan's `disk_format` before the disk is touched,
//! and the pipeline that takes each kind onto the disk: the checksum is
//! always of the bytes as served.

use super::decompress::{Gunzip, Unzstd};
use super::image::{self, BeforeWrite, Erased, ErasedSource, Streamed};
use super::qcow2::{self, Limits};
use super::{Env, Error};
use crate::io::BlockDevice;
use crate::io::ImageSource;
use crate::plan::{DiskFormat, HashAlgo};
use crate::stream::Hasher;
use crate::wire::{magic, qcow2 as wire};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use embedded_io::Read;

/// Ironic's image checks, from the lookup's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// `permitted_image_formats` (empty: any format rivet writes).
    pub permitted: Vec<String>,
    /// Not `disable_deep_image_inspection`: the bytes must agree with the
    /// declared format. Without it a declared format is taken as given,
    /// as ironic-python-agent takes it.
    pub inspect: bool,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            permitted: Vec::new(),
            inspect: true,
        }
    }
}

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
    /// Ironic's format inspector refuses it, and so is a format outside
    /// `checks.permitted` — unless `checks.inspect` is off.
    pub fn decide(
        declared: Option<DiskFormat>,
        head: &[u8],
        checks: &Checks,
        name: &str,
    ) -> Result<Format, Error> {
        if let (false, Some(DiskFormat::Raw)) = (checks.inspect, declared) {
            if let Some(m) = magic::sniff(head) {
                log::warn!(
                    "the image {name} looks like {}, but image inspection is disabled and it \
                     is declared raw: written byte for byte",
                    m.name
                );
            }
            return Ok(Format::Raw);
        }
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
        if let (false, Some(d), true) = (agrees, declared, checks.inspect) {
            return Err(Error::Refused(format!(
                "the image {name} is declared {} but its bytes are {}",
                d.name(),
                found.name()
            )));
        }
        let allowed = |p: &String| p == inspected || (inspected == "raw" && p == "gpt");
        let permitted = &checks.permitted;
        if checks.inspect && !permitted.is_empty() && !permitted.iter().any(allowed) {
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
    let at = match crate::wire::gzip::header_len(head) {
        Ok(at) => at,
        // Optional fields past the sniffed bytes: the stream reader sees.
        Err(crate::wire::gzip::Error::Truncated) => return Ok(()),
        Err(_) => return Err("reserved header flags set, or not deflate".into()),
    };
    let mut d = alloc::boxed::Box::new(DecompressorOxide::new());
    let mut out = alloc::vec![0u8; 32 * 1024];
    let flags = inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
    let (status, _, _) = decompress(&mut d, &head[at..], &mut out, 0, flags);
    match status {
        TINFLStatus::Failed | TINFLStatus::BadParam | TINFLStatus::Adler32Mismatch => {
            Err("the deflate data does not decode".into())
        }
        _ => Ok(()),
    }
}

/// A zstd frame header can be read whole from the first bytes; its window
/// must fit the memory rivet allows it.
fn check_zstd_start(head: &[u8]) -> Result<(), String> {
    use super::decompress::{zstd_error, ZSTD_MAX_WINDOW};
    let input = crate::wire::magic::past_skippable(head);
    if input.is_empty() {
        return Ok(()); // skippable frames past the sniffed bytes: the stream sees
    }
    let header = zstd_safe::get_frame_header(input);
    match header.map_err(|code| zstd_error(code, ZSTD_MAX_WINDOW))? {
        zstd_safe::FrameHeaderStatus::Complete(h) if h.windowSize > ZSTD_MAX_WINDOW => {
            Err(format!(
                "a frame with a window of {} MiB (rivet decodes frames with windows up to {} MiB)",
                h.windowSize >> 20,
                ZSTD_MAX_WINDOW >> 20
            ))
        }
        _ => Ok(()),
    }
}

/// An image source whose bytes are hashed as they are read (not those
/// read at an offset, which the stream reads again).
/// When the source hashes its stream itself (on the thread that reads it
/// ahead), this only counts.
pub struct Hashed<'a, S: ?Sized> {
    inner: &'a mut S,
    hasher: Option<Hasher>,
    bytes: u64,
}

impl<'a, S: ImageSource + ?Sized> Hashed<'a, S> {
    pub fn new(inner: &'a mut S, algo: HashAlgo) -> Self {
        let hasher = (!inner.hashes_stream(algo)).then(|| Hasher::new(algo));
        Hashed {
            inner,
            hasher,
            bytes: 0,
        }
    }

    /// The digest of every byte read; `None` when the source hashed them
    /// and its stream did not end.
    fn digest(&mut self) -> Option<String> {
        match self.hasher.take() {
            Some(h) => Some(h.finish_hex()),
            None => self.inner.stream_digest(),
        }
    }
}

impl<S: ImageSource + ?Sized> embedded_io::ErrorType for Hashed<'_, S> {
    type Error = S::Error;
}

impl<S: ImageSource + ?Sized> Read for Hashed<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, S::Error> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
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
    // Each reader erased: one copy of each writer, whatever reads for it.
    let mut gunzip;
    let mut unzstd;
    let raw: &mut dyn ErasedSource = match format {
        Format::Gzip => {
            gunzip = Gunzip::new(&mut hashed);
            &mut gunzip
        }
        Format::Zstd => {
            unzstd = Unzstd::new(&mut hashed);
            &mut unzstd
        }
        _ => &mut hashed,
    };
    let mut raw = Erased::new(raw);
    let mut streamed = match qcow2 {
        Some(prepared) => qcow2::stream(prepared, dev, env, &mut raw, offset, buf, before_write)?,
        None => image::stream(dev, env, &mut raw, offset, limit, buf, before_write)?,
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
    streamed.digest = match hashed.digest() {
        Some(digest) => digest,
        None => {
            return Err(Error::Image {
                source: ImageSource::describe(hashed.inner),
                offset: streamed.bytes,
                message: "the image was not read to its end, so its checksum is unknown".into(),
            })
        }
    };
    Ok(streamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// qemu-img's v3 header for a 1 MiB image (wire/qcow2's literal).
    fn qcow2_head() -> Vec<u8> {
        let mut h = alloc::vec![0u8; 512];
        h[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03");
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
    }

    fn decide(
        declared: Option<DiskFormat>,
        head: &[u8],
        checks: &Checks,
    ) -> Result<&'static str, String> {
        Format::decide(declared, head, checks, "img")
            .map(|f| f.name())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_bytes_decide_and_must_agree_with_what_is_declared() {
        let on = Checks::default();
        let raw = [0u8; 512];
        let q = qcow2_head();
        assert_eq!(decide(None, &raw, &on), Ok("raw"));
        assert_eq!(decide(None, &q, &on), Ok("qcow2"));
        assert_eq!(decide(Some(DiskFormat::Qcow2), &q, &on), Ok("qcow2"));
        assert!(decide(Some(DiskFormat::Raw), &q, &on)
            .unwrap_err()
            .contains("declared raw but its bytes are qcow2"));
        assert!(decide(Some(DiskFormat::Qcow2), &raw, &on)
            .unwrap_err()
            .contains("declared qcow2 but its bytes are raw"));
        // A gzip of a raw image is raw to Ironic.
        let gz = crate::wire::gzip::compress(&raw, 6);
        assert_eq!(
            decide(Some(DiskFormat::Raw), &gz, &on),
            Ok("gzip-compressed raw")
        );
    }

    #[test]
    fn permitted_formats_and_disabled_inspection_as_ironic_sends_them() {
        let q = qcow2_head();
        let raw_only = Checks {
            permitted: alloc::vec!["raw".into(), "gpt".into()],
            inspect: true,
        };
        assert!(decide(None, &q, &raw_only)
            .unwrap_err()
            .contains("not among the permitted image formats (raw, gpt)"));
        assert_eq!(decide(None, &[0u8; 512], &raw_only), Ok("raw"));
        let gpt_only = Checks {
            permitted: alloc::vec!["gpt".into()],
            inspect: true,
        };
        assert_eq!(decide(None, &[0u8; 512], &gpt_only), Ok("raw"));
        // Inspection off: the declared format is taken as given.
        let off = Checks {
            permitted: alloc::vec!["raw".into()],
            inspect: false,
        };
        assert_eq!(decide(Some(DiskFormat::Raw), &q, &off), Ok("raw"));
        assert_eq!(decide(None, &q, &off), Ok("qcow2"));
    }
}

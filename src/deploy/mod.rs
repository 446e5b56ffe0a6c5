//! The deploy engine: plan + disk + image stream → Ironic's result.
//! Written against traits ([`BlockDevice`], [`ImageSource`], [`Env`]) so it
//! runs the same on a host file, a block device, or inside the initramfs.
//!
//! Order of writes (partition image): validate everything → wipe old
//! metadata → partition table → config drive → image (first MiB held back)
//! → verify checksum → swap, ESP, ephemeral → the held MiB → flush. A failed
//! checksum therefore leaves a root partition without a filesystem signature.
//! Whole-disk image: validate → the image's first MiB held and its table
//! checked (room for a config drive) → wipe old metadata → the rest of the
//! image → verify → backup GPT / config drive → the held MiB → flush; a
//! refusal on the image's table leaves the disk untouched.

pub mod configdrive;
pub mod decompress;
pub mod erase;
pub mod format;
pub mod image;
mod partition;
pub mod qcow2;
pub mod result;
pub mod table;
pub mod testing;
pub mod whole_disk;

#[cfg(test)]
mod tests;

use crate::io::{BlockDevice, ImageSource, IoError};
use crate::layout::{self, Layout, Role, MIB};
use crate::plan::{BootMode, Checksum, EphemeralFormat, HashAlgo, ImageType, Plan};
use crate::stream::AlignedBuf;
use crate::wire::superblock::{self, Filesystem, PROBE_LEN};
use crate::wire::swap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// The streaming buffer, whatever the RAM. With the image read ahead on a
/// thread of its own, a buffer that stays in the CPU's cache between being
/// hashed and being handed to the writer beats a larger one:
/// tests/bench/disk-stream, 1 GiB, best of 3: 1 MiB 1278 MB/s, 4 MiB 1130,
/// 8 MiB 1107 (6 MiB more resident). Small enough for a 128 MiB machine.
pub const DEFAULT_BUFFER: usize = 1 << 20;
pub use partition::ext_kind;

/// Filesystems the environment may be asked to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mkfs {
    /// FAT32 (ESP) or FAT (ephemeral), with a label.
    Vfat { label: &'static str },
    Ext {
        kind: EphemeralFormat,
        label: &'static str,
    },
}

/// What the engine needs from its surroundings: time, randomness, and the
/// filesystem formatters that live outside the no_std core.
pub trait Env {
    fn now_ms(&mut self) -> u64;
    fn random(&mut self, buf: &mut [u8]);
    /// Whether `mkfs` can make this filesystem (checked before any write).
    fn can_mkfs(&self, fs: Mkfs) -> bool;
    fn mkfs(
        &mut self,
        dev: &mut dyn BlockDevice,
        offset: u64,
        len: u64,
        fs: Mkfs,
    ) -> Result<(), String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The plan cannot work on this disk (found before writing anything).
    Refused(String),
    Layout(layout::Error),
    Device {
        disk: String,
        op: &'static str,
        offset: u64,
        error: IoError,
    },
    Image {
        source: String,
        offset: u64,
        message: String,
    },
    ImageTooLarge {
        limit: u64,
        image: Option<u64>,
        source: String,
    },
    Checksum {
        algo: HashAlgo,
        expected: String,
        actual: String,
        source: String,
    },
    Table(String),
    ConfigDrive(String),
    Filesystem {
        partition: &'static str,
        message: String,
    },
}

impl Error {
    /// `offset` is where the caller was; a write that failed behind it
    /// (queued earlier) names its own.
    pub fn device(dev: &dyn BlockDevice, op: &'static str, offset: u64, error: IoError) -> Error {
        Error::Device {
            disk: dev.name().to_string(),
            op,
            offset: error.at.unwrap_or(offset),
            error,
        }
    }

    /// The failing step, for reports.
    pub fn step(&self) -> &'static str {
        match self {
            Error::Refused(_) | Error::Layout(_) => "validate",
            Error::Device { .. } => "write",
            Error::Image { .. } | Error::ImageTooLarge { .. } => "image",
            Error::Checksum { .. } => "checksum",
            Error::Table(_) => "partition",
            Error::ConfigDrive(_) => "configdrive",
            Error::Filesystem { .. } => "format",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(why) => write!(f, "refused before writing: {why}"),
            Error::Layout(e) => write!(f, "refused before writing: {e}"),
            Error::Device {
                disk,
                op,
                offset,
                error,
            } => write!(f, "{disk}: {op} at byte {offset}: {error}"),
            Error::Image {
                source,
                offset,
                message,
            } => {
                write!(
                    f,
                    "image {source}: read failed after {offset} bytes: {message}"
                )
            }
            Error::ImageTooLarge {
                limit,
                image,
                source,
            } => match image {
                Some(size) => write!(
                    f,
                    "image {source} is {size} bytes, larger than its {limit}-byte target"
                ),
                None => write!(
                    f,
                    "image {source} ran past its {limit}-byte target; stopped at the boundary"
                ),
            },
            Error::Checksum {
                algo,
                expected,
                actual,
                source,
            } => write!(
                f,
                "image {source}: {} checksum mismatch: expected {expected}, got {actual}",
                algo.name()
            ),
            Error::Table(e) => write!(f, "partition table: {e}"),
            Error::ConfigDrive(e) => write!(f, "config drive: {e}"),
            Error::Filesystem { partition, message } => {
                write!(f, "{partition} partition: {message}")
            }
        }
    }
}

/// Everything about one deploy besides the disk and the image stream.
pub struct Request<'a> {
    pub plan: &'a Plan,
    /// Resolved boot mode (the plan's, or the firmware's, or the default).
    pub boot_mode: BootMode,
    /// The config drive image, held compressed (see [`configdrive`]).
    pub configdrive: Option<configdrive::ConfigDrive>,
    /// Device path used in the `partitions` result (`/dev/sda`).
    pub disk_path: String,
    /// Bytes of the one streaming buffer (a multiple of 1 MiB is best).
    pub buffer_size: usize,
    /// What the lookup said about checking images.
    pub image_checks: format::Checks,
}

/// One partition in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    pub role: Role,
    pub number: u32,
    pub path: String,
    pub partuuid: String,
    pub filesystem: Option<Filesystem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub image_type: ImageType,
    pub boot_mode: BootMode,
    pub label: Option<crate::plan::Label>,
    /// What Ironic calls "root uuid": the root filesystem's UUID (partition
    /// image; its PARTUUID if no filesystem was recognised) or the MBR disk
    /// signature as 0x%08x (whole disk).
    pub root_uuid: String,
    pub root_filesystem: Option<Filesystem>,
    pub efi_uuid: Option<String>,
    pub partitions: Vec<PartitionReport>,
    pub disk_id: String,
    pub image_bytes: u64,
    pub checksum_algo: HashAlgo,
    pub checksum: String,
    pub image_ms: u64,
    pub total_ms: u64,
    /// Where the time went, phase by phase.
    pub phases: Phases,
}

/// Where a deploy's time went: each phase's name and milliseconds, in the
/// order they ran (the log's `time:` line, the result's `phases_ms`), so a
/// slow deploy says which step was slow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phases {
    pub list: Vec<(&'static str, u64)>,
    since: u64,
}

impl Phases {
    pub fn start(env: &mut dyn Env) -> Phases {
        Phases {
            list: Vec::new(),
            since: env.now_ms(),
        }
    }

    /// Ends the phase `name`: the time since the last mark is its own
    /// (added to it when it ran before).
    pub fn mark(&mut self, env: &mut dyn Env, name: &'static str) {
        let now = env.now_ms();
        let ms = now.saturating_sub(self.since);
        self.since = now;
        match self.list.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += ms,
            None => self.list.push((name, ms)),
        }
    }
}

impl core::fmt::Display for Phases {
    /// `checks 3 ms, tables 12 ms, stream 1234 ms, …`
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (name, ms)) in self.list.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {ms} ms")?;
        }
        Ok(())
    }
}

fn checksum_of(plan: &Plan) -> Result<(HashAlgo, String), Error> {
    match &plan.checksum {
        Checksum::Value(algo, hex) => Ok((*algo, hex.clone())),
        Checksum::Url(_, url) => Err(Error::Refused(format!(
            "the checksum is a URL ({url}); resolve it to a value before deploying"
        ))),
    }
}

fn buffer_for(dev: &dyn BlockDevice, size: usize) -> Result<AlignedBuf, Error> {
    let align = (dev.logical_block() as usize).max(4096);
    if size < align || size % align != 0 || size > 256 << 20 {
        return Err(Error::Refused(format!(
            "buffer size {size} must be a multiple of {align} bytes, at most 256 MiB"
        )));
    }
    Ok(AlignedBuf::new(size, align))
}

/// The filesystem (if any) whose superblock starts at `offset`.
pub fn probe_at(
    dev: &mut dyn BlockDevice,
    offset: u64,
    len: u64,
) -> Result<Option<Filesystem>, Error> {
    let b = dev.logical_block() as u64;
    let n = (PROBE_LEN as u64).min(len) / b * b;
    let mut head = vec![0u8; n as usize];
    dev.read_at(offset, &mut head)
        .map_err(|e| Error::device(dev, "read", offset, e))?;
    Ok(superblock::probe(&head))
}

/// Writes `data` into a partition through the aligned buffer.
fn write_through(
    dev: &mut dyn BlockDevice,
    buf: &mut [u8],
    offset: u64,
    data: &[u8],
) -> Result<(), Error> {
    for (i, chunk) in data.chunks(buf.len()).enumerate() {
        buf[..chunk.len()].copy_from_slice(chunk);
        image::write_any_len(dev, offset + (i * buf.len()) as u64, &buf[..chunk.len()])?;
    }
    Ok(())
}

/// Inflates the config drive onto the disk at `offset`, a buffer at a
/// time; a downloaded one comes again through the image's connection.
fn write_configdrive(
    dev: &mut dyn BlockDevice,
    buf: &mut [u8],
    offset: u64,
    cd: &configdrive::ConfigDrive,
    image: &mut image::Image<'_, '_>,
) -> Result<(), Error> {
    cd.write_pieces(
        buf,
        &mut |url, sink| image.fetch_other(url, sink),
        |at, piece| image::write_any_len(dev, offset + at, piece),
        Error::ConfigDrive,
    )
}

fn verify(
    plan_digest: &(HashAlgo, String),
    streamed: &image::Streamed,
    source: &str,
) -> Result<(), Error> {
    if streamed.digest != plan_digest.1 {
        return Err(Error::Checksum {
            algo: plan_digest.0,
            expected: plan_digest.1.clone(),
            actual: streamed.digest.clone(),
            source: source.to_string(),
        });
    }
    log::info!(
        "checksum verified: {} {}",
        plan_digest.0.name(),
        streamed.digest
    );
    Ok(())
}

/// Runs the deploy. `image` streams the image's bytes.
pub fn deploy<S: ImageSource>(
    dev: &mut dyn BlockDevice,
    image: &mut S,
    env: &mut dyn Env,
    req: &Request,
) -> Result<Outcome, Error>
where
    S::Error: fmt::Display,
{
    deploy_erased(dev, &mut image::Erased::new(image), env, req)
}

fn deploy_erased(
    dev: &mut dyn BlockDevice,
    image: &mut image::Erased<'_>,
    env: &mut dyn Env,
    req: &Request,
) -> Result<Outcome, Error> {
    let start = env.now_ms();
    let mut phases = Phases::start(env);
    let digest = checksum_of(req.plan)?;
    let mut buf = buffer_for(dev, req.buffer_size)?;
    // What the image really is, before the disk is touched.
    let mut image =
        image::Sniffed::new(image, crate::wire::magic::SNIFF_BYTES).map_err(|e| Error::Image {
            source: image_name(req),
            offset: 0,
            message: alloc::format!("{e}"),
        })?;
    let format = format::Format::decide(
        req.plan.disk_format,
        image.head(),
        &req.image_checks,
        &image.describe(),
    )?;
    if format != format::Format::Raw {
        log::info!("{}: {} image", image.describe(), format.name());
    }
    let image = &mut image;
    let write = match req.plan.image_type {
        ImageType::Partition => partition::partition_image,
        ImageType::WholeDisk => whole_disk::whole_disk_image,
    };
    let mut outcome = write(dev, image, format, env, req, &digest, &mut buf, &mut phases)?;
    dev.flush().map_err(|e| Error::device(dev, "flush", 0, e))?;
    if let Err(e) = dev.reread_partitions() {
        log::warn!(
            "{}: the kernel did not re-read the partition table: {e}",
            dev.name()
        );
    }
    phases.mark(env, "sync");
    outcome.total_ms = env.now_ms().saturating_sub(start);
    log::info!("time: {phases}; total {} ms", outcome.total_ms);
    outcome.phases = phases;
    Ok(outcome)
}

/// The image's name for messages before its source has been asked.
fn image_name(req: &Request) -> alloc::string::String {
    req.plan
        .urls
        .first()
        .cloned()
        .unwrap_or_else(|| "the image".into())
}

/// Erases a disk's metadata as Ironic's `erase_devices_metadata` clean
/// step does: both partition tables, the MBR, whole-disk signatures, and the
/// signatures at both ends of every partition the old table listed.
pub fn erase_metadata(dev: &mut dyn BlockDevice) -> Result<(), Error> {
    let existing = table::read_existing(dev)?;
    let zeros = AlignedBuf::new(MIB as usize, dev.logical_block().max(512) as usize);
    table::wipe(dev, zeros.as_slice(), existing.as_ref(), &[])?;
    dev.flush().map_err(|e| Error::device(dev, "flush", 0, e))?;
    if let Err(e) = dev.reread_partitions() {
        log::warn!("{}: re-reading the partition table: {e}", dev.name());
    }
    Ok(())
}

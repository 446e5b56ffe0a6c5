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

pub mod bootchain;
pub mod configdrive;
pub mod device;
pub mod image;
pub mod result;
pub mod table;
pub mod testing;
pub mod uefi;
pub mod whole_disk;

#[cfg(test)]
mod tests;

use crate::layout::{self, Layout, Role, MIB};
use crate::plan::{BootMode, Checksum, EphemeralFormat, HashAlgo, ImageType, Plan};
use crate::stream::{AlignedBuf, Hasher};
use crate::wire::superblock::{self, Filesystem, PROBE_LEN};
use crate::wire::swap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
pub use device::{BlockDevice, IoError};
pub use image::ImageSource;

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
    /// The config drive image, decoded (see [`configdrive::decode`]).
    pub configdrive: Option<Vec<u8>>,
    /// Device path used in the `partitions` result (`/dev/sda`).
    pub disk_path: String,
    /// Bytes of the one streaming buffer (a multiple of 1 MiB is best).
    pub buffer_size: usize,
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
pub fn deploy<S: ImageSource + ?Sized>(
    dev: &mut dyn BlockDevice,
    image: &mut S,
    env: &mut dyn Env,
    req: &Request,
) -> Result<Outcome, Error>
where
    S::Error: fmt::Display,
{
    let start = env.now_ms();
    let digest = checksum_of(req.plan)?;
    let mut buf = buffer_for(dev, req.buffer_size)?;
    let mut outcome = match req.plan.image_type {
        ImageType::Partition => partition_image(dev, image, env, req, &digest, &mut buf)?,
        ImageType::WholeDisk => whole_disk_image(dev, image, env, req, &digest, &mut buf)?,
    };
    dev.flush().map_err(|e| Error::device(dev, "flush", 0, e))?;
    if let Err(e) = dev.reread_partitions() {
        log::warn!(
            "{}: the kernel did not re-read the partition table: {e}",
            dev.name()
        );
    }
    outcome.total_ms = env.now_ms().saturating_sub(start);
    Ok(outcome)
}

fn partition_image<S: ImageSource + ?Sized>(
    dev: &mut dyn BlockDevice,
    image: &mut S,
    env: &mut dyn Env,
    req: &Request,
    digest: &(HashAlgo, String),
    buf: &mut AlignedBuf,
) -> Result<Outcome, Error>
where
    S::Error: fmt::Display,
{
    let plan = req.plan;
    let label = plan.label(req.boot_mode);
    let configdrive_mb = req
        .configdrive
        .as_ref()
        .map(|c| (c.len() as u64).div_ceil(MIB))
        .unwrap_or(0);
    let lreq = layout::Request {
        boot_mode: req.boot_mode,
        label,
        root_mb: plan.root_mb,
        swap_mb: plan.swap_mb,
        ephemeral_mb: plan.ephemeral_mb,
        configdrive_mb,
    };
    let ss = dev.logical_block();
    let layout: Layout = layout::plan(&lreq, dev.size(), ss).map_err(Error::Layout)?;
    let root = *layout.root();
    if let Some(size) = image.size() {
        if size > root.len() {
            return Err(Error::Refused(format!(
                "image {} is {size} bytes, larger than the {} MiB root partition",
                image.describe(),
                root.size_mib
            )));
        }
    }
    let esp_fs = Mkfs::Vfat { label: "efi-part" };
    let eph_fs = match plan.ephemeral_format {
        Some(EphemeralFormat::Vfat) => Mkfs::Vfat {
            label: "ephemeral0",
        },
        Some(kind) => Mkfs::Ext {
            kind,
            label: "ephemeral0",
        },
        None => Mkfs::Ext {
            kind: EphemeralFormat::Ext4,
            label: "ephemeral0",
        },
    };
    if layout.get(Role::Esp).is_some() && !env.can_mkfs(esp_fs) {
        return Err(Error::Refused(
            "this build cannot format the EFI system partition".into(),
        ));
    }
    if layout.get(Role::Ephemeral).is_some() && !plan.preserve_ephemeral && !env.can_mkfs(eph_fs) {
        return Err(Error::Refused(format!(
            "ephemeral_format {} is not supported by this build (use vfat)",
            plan.ephemeral_format.map(|f| f.name()).unwrap_or("ext4")
        )));
    }
    for p in &layout.parts {
        log::info!(
            "partition {} {}: {} MiB at {} MiB",
            p.number,
            p.role.ironic_name(),
            p.size_mib,
            p.start_mib
        );
    }

    // Until here nothing was written.
    let existing = table::read_existing(dev)?;
    let (disk_id, partuuids) = if plan.preserve_ephemeral {
        let existing = existing.ok_or_else(|| {
            Error::Refused("preserve_ephemeral: the disk has no partition table to preserve".into())
        })?;
        table::matches(&existing, &layout).map_err(|why| {
            Error::Refused(format!(
                "preserve_ephemeral: the table on the disk differs: {why}"
            ))
        })?;
        log::info!("preserve_ephemeral: keeping the partition table and the ephemeral partition");
        let uuids = existing.parts.iter().map(|p| p.partuuid.clone()).collect();
        (existing.disk_id, uuids)
    } else {
        buf.as_mut_slice().fill(0);
        let new: Vec<(u64, u64)> = layout.parts.iter().map(|p| (p.offset(), p.len())).collect();
        table::wipe(dev, buf.as_slice(), existing.as_ref(), &new)?;
        let written = table::write_layout(dev, env, &layout)?;
        log::info!(
            "{} table written ({} partitions)",
            label.name(),
            layout.parts.len()
        );
        (written.disk_id, written.partuuids)
    };
    if plan.preserve_ephemeral {
        // Only root's signature area is cleared: the ephemeral stays untouched.
        buf.as_mut_slice().fill(0);
        let span = (image::HOLD_BACK as u64).min(root.len());
        write_through(
            dev,
            buf.as_mut_slice(),
            root.offset(),
            &vec![0u8; span as usize],
        )?;
    }
    if let (Some(cd), Some(part)) = (&req.configdrive, layout.get(Role::ConfigDrive)) {
        write_through(dev, buf.as_mut_slice(), part.offset(), cd)?;
        log::info!("config drive written ({} bytes)", cd.len());
    }

    log::info!(
        "streaming {} into partition {} at byte {}",
        image.describe(),
        root.number,
        root.offset()
    );
    let mut streamed = image::stream(
        dev,
        env,
        image,
        root.offset(),
        root.len(),
        buf.as_mut_slice(),
        Hasher::new(digest.0),
        &mut |_, _| Ok(()),
    )?;
    verify(digest, &streamed, &image.describe())?;

    if let Some(p) = layout.get(Role::Swap) {
        let uuid = table::random_guid(env);
        let page = swap::header(p.len(), uuid, "swap1").map_err(|e| Error::Filesystem {
            partition: "swap",
            message: format!("{e}"),
        })?;
        write_through(dev, buf.as_mut_slice(), p.offset(), &page)?;
    }
    if let Some(p) = layout.get(Role::Esp) {
        env.mkfs(dev, p.offset(), p.len(), esp_fs)
            .map_err(|message| Error::Filesystem {
                partition: "efi system",
                message,
            })?;
    }
    if let (Some(p), false) = (layout.get(Role::Ephemeral), plan.preserve_ephemeral) {
        env.mkfs(dev, p.offset(), p.len(), eph_fs)
            .map_err(|message| Error::Filesystem {
                partition: "ephemeral",
                message,
            })?;
    }
    let held = core::mem::take(&mut streamed.held);
    write_through(dev, buf.as_mut_slice(), root.offset(), &held)?;

    let mut partitions = Vec::new();
    for (p, partuuid) in layout.parts.iter().zip(partuuids) {
        let filesystem = probe_at(dev, p.offset(), p.len())?;
        partitions.push(PartitionReport {
            role: p.role,
            number: p.number,
            path: layout::partition_path(&req.disk_path, p.number),
            partuuid,
            filesystem,
        });
    }
    let root_report = partitions.iter().find(|p| p.role == Role::Root).cloned();
    let root_filesystem = root_report.as_ref().and_then(|r| r.filesystem.clone());
    let root_uuid = match (&root_filesystem, &root_report) {
        (Some(fs), _) => fs.uuid.clone(),
        (None, Some(r)) => {
            log::warn!(
                "the root partition holds no filesystem rivet recognises (ext2/3/4, xfs, btrfs, vfat); \
                 reporting its PARTUUID {} as root uuid, as ironic-python-agent does",
                r.partuuid
            );
            r.partuuid.clone()
        }
        (None, None) => String::new(),
    };
    let efi_uuid = partitions
        .iter()
        .find(|p| p.role == Role::Esp)
        .and_then(|p| p.filesystem.as_ref().map(|f| f.uuid.clone()));
    Ok(Outcome {
        image_type: ImageType::Partition,
        boot_mode: req.boot_mode,
        label: Some(label),
        root_uuid,
        root_filesystem,
        efi_uuid,
        partitions,
        disk_id,
        image_bytes: streamed.bytes,
        checksum_algo: digest.0,
        checksum: streamed.digest,
        image_ms: streamed.elapsed_ms,
        total_ms: 0,
    })
}

fn whole_disk_image<S: ImageSource + ?Sized>(
    dev: &mut dyn BlockDevice,
    image: &mut S,
    env: &mut dyn Env,
    req: &Request,
    digest: &(HashAlgo, String),
    buf: &mut AlignedBuf,
) -> Result<Outcome, Error>
where
    S::Error: fmt::Display,
{
    let size = dev.size();
    if let Some(n) = image.size() {
        if n > size {
            return Err(Error::Refused(format!(
                "image {} is {n} bytes, larger than the disk {} ({size} bytes)",
                image.describe(),
                dev.name()
            )));
        }
    }
    if let Some(cd) = &req.configdrive {
        if cd.len() as u64 > layout::MAX_CONFIGDRIVE_MB * MIB {
            return Err(Error::Refused(format!(
                "the config drive is {} bytes, more than Ironic's 64 MiB limit for whole-disk images",
                cd.len()
            )));
        }
    }
    let existing = table::read_existing(dev)?;
    log::info!(
        "streaming {} onto {} from byte 0",
        image.describe(),
        dev.name()
    );
    // The image's own table decides whether a config drive can be added:
    // check it in the held first MiB, and wipe the old metadata only then,
    // so a refusal leaves the disk as it was.
    let wants_configdrive = req.configdrive.is_some();
    let mut before_write = |dev: &mut dyn BlockDevice, head: &[u8]| -> Result<(), Error> {
        if wants_configdrive && find_config2(dev, head)?.is_none() {
            whole_disk::configdrive_precheck(dev, head)?;
        }
        let zeros = AlignedBuf::new(MIB as usize, dev.logical_block().max(512) as usize);
        table::wipe(dev, zeros.as_slice(), existing.as_ref(), &[])
    };
    let mut streamed = image::stream(
        dev,
        env,
        image,
        0,
        size,
        buf.as_mut_slice(),
        Hasher::new(digest.0),
        &mut before_write,
    )?;
    verify(digest, &streamed, &image.describe())?;

    let ss = dev.logical_block();
    let mut held = core::mem::take(&mut streamed.held);
    let mut configdrive_part = None;
    let mut label = None;
    match whole_disk::image_table(&held, ss) {
        whole_disk::ImageTable::Gpt { header, entries } => {
            label = Some(crate::plan::Label::Gpt);
            let reuse = if req.configdrive.is_some() {
                find_config2(dev, &held)?
            } else {
                None
            };
            let add = req.configdrive.is_some() && reuse.is_none();
            let added = whole_disk::finish_gpt(dev, env, &mut held, header, entries, add)?;
            configdrive_part = reuse.or(added);
            log::info!("GPT backup moved to the end of the disk");
        }
        whole_disk::ImageTable::Mbr => {
            label = Some(crate::plan::Label::Msdos);
            if req.configdrive.is_some() {
                configdrive_part = match find_config2(dev, &held)? {
                    Some(found) => Some(found),
                    None => Some(whole_disk::add_mbr_configdrive(dev, &mut held)?),
                };
            }
        }
        whole_disk::ImageTable::None => {
            if ss != 512
                && held.len() >= 1024
                && crate::wire::gpt::Header::new_checked(&held[512..1024]).is_ok()
            {
                log::warn!("the image's GPT was made for 512-byte sectors; this disk has {ss}-byte sectors");
            }
            if req.configdrive.is_some() {
                return Err(Error::ConfigDrive(
                    "the image has no partition table to add a config drive partition to".into(),
                ));
            }
        }
    }
    if let (Some(cd), Some((number, offset, len))) = (&req.configdrive, configdrive_part) {
        if cd.len() as u64 > len {
            return Err(Error::ConfigDrive(format!(
                "{} bytes do not fit in partition {number} ({len} bytes)",
                cd.len()
            )));
        }
        write_through(dev, buf.as_mut_slice(), offset, cd)?;
        log::info!("config drive written to partition {number}");
    }
    write_through(dev, buf.as_mut_slice(), 0, &held)?;

    let signature = if held.len() >= 444 {
        u32::from_le_bytes([held[440], held[441], held[442], held[443]])
    } else {
        0
    };
    let mut partitions = Vec::new();
    if let Some(found) = table::read_existing(dev)? {
        for p in &found.parts {
            let filesystem = probe_at(dev, p.offset, p.len)?;
            let role = if Some(p.number) == configdrive_part.map(|c| c.0) {
                Role::ConfigDrive
            } else {
                Role::Root
            };
            partitions.push(PartitionReport {
                role,
                number: p.number,
                path: layout::partition_path(&req.disk_path, p.number),
                partuuid: p.partuuid.clone(),
                filesystem,
            });
        }
    }
    Ok(Outcome {
        image_type: ImageType::WholeDisk,
        boot_mode: req.boot_mode,
        label,
        root_uuid: format!("0x{signature:08x}"),
        root_filesystem: None,
        efi_uuid: None,
        partitions,
        disk_id: format!("0x{signature:08x}"),
        image_bytes: streamed.bytes,
        checksum_algo: digest.0,
        checksum: streamed.digest,
        image_ms: streamed.elapsed_ms,
        total_ms: 0,
    })
}

/// An existing partition labelled `config-2` (ironic-python-agent reuses it).
fn find_config2(dev: &mut dyn BlockDevice, held: &[u8]) -> Result<Option<(u32, u64, u64)>, Error> {
    // The table lives in `held`, not yet on the disk: read it from there.
    let mut mem = device::MemDisk::new(dev.size(), dev.logical_block());
    let n = held.len() / dev.logical_block() as usize * dev.logical_block() as usize;
    mem.write_at(0, &held[..n])
        .map_err(|e| Error::device(&mem, "write", 0, e))?;
    let Some(found) = table::read_existing(&mut mem)? else {
        return Ok(None);
    };
    for p in &found.parts {
        let fs = if p.offset < held.len() as u64 {
            let end = (p.offset + PROBE_LEN as u64).min(held.len() as u64) as usize;
            superblock::probe(&held[p.offset as usize..end])
        } else {
            probe_at(dev, p.offset, p.len)?
        };
        if fs
            .and_then(|f| f.label)
            .is_some_and(|l| l.eq_ignore_ascii_case("config-2"))
        {
            return Ok(Some((p.number, p.offset, p.len)));
        }
    }
    Ok(None)
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

//! Boot files for a deployed partition image under UEFI: read the root
//! filesystem rivet wrote (ext2/3/4 or XFS, read-only), take the
//! distribution's signed shim and grub from it ([`bootchain`]), and write
//! them onto the disk's ESP. The firmware entry is the caller's (PID 1 with
//! efivarfs); the removable path `EFI/BOOT/BOOTX64.EFI` boots the disk
//! without one. Shared by `image.install_bootloader` and
//! `rivet install-bootloader`.

use crate::boot::bootchain::{self, BootChain};
use crate::boot::uefi;
use crate::deploy::probe_at;
use crate::deploy::table::{self, Existing, Found};
use crate::fs::ext4::Ext4Root;
use crate::fs::fat::Fat;
use crate::fs::partition::Partition;
use crate::fs::xfs::Xfs;
use crate::fs::RootFs;
use crate::io::BlockDevice;
use crate::linux::blockdev::Disk;
use crate::linux::fat;
use crate::wire::superblock::Kind;

/// Why the boot files could not be installed, in Ironic's error classes.
#[derive(Debug)]
pub enum Failure {
    /// The disk, the root partition or the ESP is not there.
    DeviceNotFound(String),
    /// The image gives nothing rivet can boot.
    InvalidImage(String),
    /// Reading or writing failed.
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::DeviceNotFound(m) | Failure::InvalidImage(m) | Failure::Failed(m) => {
                f.write_str(m)
            }
        }
    }
}

/// What was installed where, for the log and the command result.
pub struct Installed {
    pub chain: BootChain,
    pub root_partition: u32,
    pub filesystem: &'static str,
    pub esp_partition: u32,
}

impl Installed {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "vendor": self.chain.vendor,
            "layout": self.chain.layout,
            "root_partition": self.root_partition,
            "root_filesystem": self.filesystem,
            "efi_system_partition": self.esp_partition,
            "files": self.chain.files.iter().map(|f| serde_json::json!({
                "path": f.path, "from": f.from, "bytes": f.data.len(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The partition carrying `uuid` as its PARTUUID or its filesystem's UUID.
pub fn partition_by_uuid<'t>(
    disk: &mut dyn BlockDevice,
    table: &'t Existing,
    uuid: &str,
) -> Option<&'t Found> {
    table.parts.iter().find(|p| {
        if p.partuuid.eq_ignore_ascii_case(uuid) {
            return true;
        }
        matches!(probe_at(disk, p.offset, p.len),
                 Ok(Some(fs)) if fs.uuid.eq_ignore_ascii_case(uuid))
    })
}

/// Installs the boot files of the root filesystem `root_uuid` on `path`
/// onto its ESP (`efi_uuid`, its FAT serial or PARTUUID, else the
/// partition typed ESP).
/// `file_sector`: the sector size when `path` is a file (block devices
/// know their own).
pub fn install(
    path: &str,
    root_uuid: &str,
    efi_uuid: Option<&str>,
    file_sector: u32,
) -> Result<Installed, Failure> {
    let mut disk = Disk::open_read_only(path, file_sector).map_err(Failure::DeviceNotFound)?;
    let table = table::read_existing(&mut disk)
        .map_err(|e| Failure::Failed(format!("{path}: {e}")))?
        .ok_or_else(|| Failure::DeviceNotFound(format!("{path} has no partition table")))?;
    let root = partition_by_uuid(&mut disk, &table, root_uuid).ok_or_else(|| {
        Failure::DeviceNotFound(format!(
            "no partition of {path} holds the root filesystem {root_uuid}"
        ))
    })?;
    let esp = match efi_uuid {
        // Ironic hands back what get_partition_uuids said: the ESP's FAT
        // serial (or, from other agents, its PARTUUID).
        Some(uuid) => partition_by_uuid(&mut disk, &table, uuid).ok_or_else(|| {
            Failure::DeviceNotFound(format!("no partition of {path} has the UUID {uuid}"))
        })?,
        None => uefi::find_esp(&table).ok_or_else(|| {
            Failure::DeviceNotFound(format!(
                "{path} has no EFI system partition (deploy with boot mode uefi: rivet makes one)"
            ))
        })?,
    };
    let kind = probe_at(&mut disk, root.offset, root.len)
        .map_err(|e| Failure::Failed(e.to_string()))?
        .map(|fs| fs.kind);
    // A second handle, owned by the reader: the filesystem crate keeps it.
    let reader = Disk::open_read_only(path, file_sector).map_err(Failure::DeviceNotFound)?;
    let part = Partition::new(Box::new(reader), root.offset, root.len)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let at = format!("{path} partition {}", root.number);
    let mut fs: Box<dyn RootFs> = match kind {
        Some(Kind::Ext2 | Kind::Ext3 | Kind::Ext4) => Box::new(
            Ext4Root::load(Box::new(part))
                .map_err(|e| Failure::InvalidImage(format!("{at}: {e}")))?,
        ),
        Some(Kind::Xfs) => Box::new(
            Xfs::load(Box::new(part)).map_err(|e| Failure::InvalidImage(format!("{at}: {e}")))?,
        ),
        Some(other) => {
            return Err(Failure::InvalidImage(format!(
            "{at}: the root filesystem is {}; rivet reads ext2/3/4 and XFS root filesystems for \
                 their boot loaders",
            other.name()
        )))
        }
        None => {
            return Err(Failure::InvalidImage(format!(
                "{at}: no filesystem rivet recognises"
            )))
        }
    };
    let chain = bootchain::find(fs.as_mut(), root_uuid).map_err(|e| match e {
        bootchain::Error::Fs(e) => Failure::InvalidImage(format!("{at}: {e}")),
        e => Failure::InvalidImage(format!("{at}: {e}")),
    })?;
    log::info!(
        "boot loader: {} ({}), from {} root filesystem on {at}",
        chain.vendor,
        chain.layout,
        fs.kind_name()
    );
    // fatfs writes the files and trusts the volume: check it first (an
    // image's own ESP is a tenant's bytes; one rivet formatted passes).
    let esp_reader = Disk::open_read_only(path, file_sector).map_err(Failure::DeviceNotFound)?;
    Partition::new(Box::new(esp_reader), esp.offset, esp.len)
        .and_then(|p| Fat::open(Box::new(p)))
        .and_then(|mut fat| fat.verify())
        .map_err(|e| {
            Failure::InvalidImage(format!(
                "{path} partition {} (the ESP): {e}; rivet writes boot files only onto a FAT it \
                 could check",
                esp.number
            ))
        })?;
    drop(disk);
    let mut out = Disk::open(path, file_sector).map_err(Failure::DeviceNotFound)?;
    fat::write_files(&mut out, esp.offset, esp.len, &chain.files)
        .map_err(|e| Failure::Failed(format!("writing the ESP (partition {}): {e}", esp.number)))?;
    for f in &chain.files {
        log::info!(
            "ESP partition {}: {} ({} bytes) from {}",
            esp.number,
            f.path,
            f.data.len(),
            f.from
        );
    }
    Ok(Installed {
        filesystem: fs.kind_name(),
        chain,
        root_partition: root.number,
        esp_partition: esp.number,
    })
}

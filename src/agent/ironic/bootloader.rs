//! `image.install_bootloader`, as ironic-python-agent 13 runs it
//! (`extensions/image.py`, `efi_utils.manage_uefi`): on a machine booted
//! by UEFI, register the image's loaders in the firmware's boot entries.
//! A partition image's ESP is empty: where IPA 13 would run grub-install
//! in a chroot of the image (disabled on stock Ironic 39), rivet first
//! copies the distribution's signed shim and grub onto it
//! ([`partition_boot`]). BIOS partition images stay refused, as there.

use super::errors::{IpaError, RestError};
use super::raid_boot;
use crate::agent::partition_boot::{self, Failure};
use crate::boot::uefi;
use crate::fs::partition::Partition;
use crate::io::BlockDevice;
use crate::linux::blockdev::Disk;
use crate::linux::efivars::{self, Efivarfs};
use serde_json::Value;
use std::path::Path;

fn device_not_found(details: String) -> RestError {
    IpaError::DeviceNotFound.with(details)
}

/// Registers the ESP's loaders; `Ok(false)` when the ESP has none.
fn manage_uefi(path: &str, efi_uuid: Option<&str>, nvram_dir: &Path) -> Result<bool, RestError> {
    let failed = |e: String| {
        RestError::execution(format!(
            "Could not configure UEFI boot on device {path}: {e}"
        ))
    };
    let mut disk = Disk::open_read_only(path, 512).map_err(device_not_found)?;
    let (table, esp) = raid_boot::locate_esp(&mut disk, path, efi_uuid)?;
    let esp = &esp;
    let where_ = format!("{path} at offset {}", esp.offset);
    let esp_dev = Disk::open_read_only(path, 512).map_err(device_not_found)?;
    let part = Partition::new(Box::new(esp_dev), esp.offset, esp.len)
        .map_err(|e| failed(e.to_string()))?;
    let loaders =
        uefi::esp_loaders(Box::new(part)).map_err(|e| failed(format!("{where_}: {e}")))?;
    if loaders.is_empty() {
        log::warn!(
            "Empty EFI partition detected ({path} partition {}).",
            esp.number
        );
        return Ok(false);
    }
    let hd = uefi::hard_drive(&table, esp, disk.logical_block()).map_err(failed)?;
    let mut nvram = Efivarfs::open(nvram_dir).map_err(failed)?;
    uefi::register(&mut nvram, &hd, &loaders).map_err(failed)?;
    Ok(true)
}

fn invalid_image(details: impl Into<String>) -> RestError {
    IpaError::InvalidImage.with(details)
}

impl From<Failure> for RestError {
    fn from(f: Failure) -> RestError {
        match f {
            Failure::DeviceNotFound(m) => device_not_found(m),
            Failure::InvalidImage(m) => invalid_image(m),
            Failure::Failed(m) => RestError::execution(m),
        }
    }
}

/// Runs the command on the disk the last image went to. `uuids` is what
/// get_partition_uuids answers (its `partitions` key marks a partition
/// image); `bios_asked` is the lookup's enable_bios_bootloader_install.
pub fn install(
    disk: Option<&str>,
    uuids: &Value,
    params: &Value,
    bios_asked: bool,
) -> Result<Value, RestError> {
    let ignore = params["ignore_bootloader_failure"]
        .as_bool()
        .unwrap_or(false);
    match install_strict(disk, uuids, params, bios_asked) {
        Err(e) if ignore => {
            log::error!(
                "Error setting up bootloader. Error {}; ignored (ignore_bootloader_failure)",
                e.details
            );
            Ok(Value::Null)
        }
        other => other,
    }
}

fn install_strict(
    disk: Option<&str>,
    uuids: &Value,
    params: &Value,
    bios_asked: bool,
) -> Result<Value, RestError> {
    let Some(disk) = disk else {
        return Err(RestError::execution(
            "no image has been written by this agent",
        ));
    };
    let partition_image = uuids.get("partitions").is_some();
    let uefi = efivars::booted_uefi();
    let current = if uefi { "uefi" } else { "bios" };
    if let Some(target) = params["target_boot_mode"].as_str() {
        if target != current {
            log::warn!(
                "Boot mode mismatch: target boot mode is {target}, current boot mode is {current}. \
                 Installing boot loader may fail or work incorrectly."
            );
        }
    }
    let root_uuid = params["root_uuid"]
        .as_str()
        .filter(|u| !u.is_empty() && *u != "0x00000000");
    let efi_uuid = params["efi_system_part_uuid"].as_str();
    let mut installed = Value::Null;
    if disk.starts_with("/dev/md") {
        if !uefi {
            return Err(raid_boot::refuse_bios(disk));
        }
        if raid_boot::install(disk, efi_uuid, Path::new(efivars::MOUNT_POINT))? {
            return Ok(installed);
        }
        return Err(invalid_image(format!(
            "the image's ESP inside {disk} has no boot loader: nothing the firmware could start \
             from the software RAID's ESP mirror"
        )));
    }
    if uefi {
        if let (true, Some(root)) = (partition_image, root_uuid) {
            let done = partition_boot::install(disk, root, efi_uuid, 512)?;
            installed = done.to_json();
        }
        if manage_uefi(disk, efi_uuid, Path::new(efivars::MOUNT_POINT))? {
            return Ok(installed);
        }
    }
    if partition_image {
        let why = if bios_asked {
            "enable_bios_bootloader_install is set, but rivet never runs grub-install from an image"
        } else {
            "Install of legacy BIOS bootloaders disabled by CONF.enable_bios_bootloader_install as \
             part of CVE-2026-43003 mitigation"
        };
        return Err(invalid_image(format!(
            "{why}: a partition image boots with rivet only under UEFI (the distribution's signed \
             shim and grub are copied to the ESP); deploy BIOS machines with a whole-disk image"
        )));
    }
    log::info!("whole-disk image, {current} boot: the image's own boot loader is used");
    Ok(Value::Null)
}

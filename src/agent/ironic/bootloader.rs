//! `image.install_bootloader`, as ironic-python-agent 13 runs it
//! (`extensions/image.py`, `efi_utils.manage_uefi`): on a machine booted
//! by UEFI, register the image's loaders in the firmware's boot entries;
//! then, for partition images, refuse (rivet installs no GRUB — IPA 13
//! does so only with `[agent]enable_bios_bootloader_install`).

use super::commands::RestError;
use crate::deploy::table::{self, Existing, Found};
use crate::deploy::{uefi, BlockDevice};
use crate::linux::blockdev::Disk;
use crate::linux::efivars::{self, Efivarfs};
use crate::linux::fat;
use serde_json::Value;
use std::path::Path;

fn device_not_found(details: String) -> RestError {
    RestError::new(
        "DeviceNotFound",
        404,
        "Error finding the disk or partition device to deploy the image onto",
        details,
    )
}

/// The partition carrying `uuid` as its PARTUUID or its filesystem's UUID.
fn partition_by_uuid<'t>(disk: &mut Disk, table: &'t Existing, uuid: &str) -> Option<&'t Found> {
    table.parts.iter().find(|p| {
        if p.partuuid.eq_ignore_ascii_case(uuid) {
            return true;
        }
        matches!(crate::deploy::probe_at(disk, p.offset, p.len),
                 Ok(Some(fs)) if fs.uuid.eq_ignore_ascii_case(uuid))
    })
}

/// Registers the ESP's loaders; `Ok(false)` when the ESP has none.
fn manage_uefi(path: &str, efi_uuid: Option<&str>, nvram_dir: &Path) -> Result<bool, RestError> {
    let failed = |e: String| {
        RestError::execution(format!(
            "Could not configure UEFI boot on device {path}: {e}"
        ))
    };
    let mut disk = Disk::open_read_only(path, 512).map_err(device_not_found)?;
    let table = table::read_existing(&mut disk)
        .map_err(|e| failed(e.to_string()))?
        .unwrap_or(Existing {
            label: crate::plan::Label::Gpt,
            disk_id: String::new(),
            parts: Vec::new(),
        });
    let esp = match (uefi::find_esp(&table), efi_uuid) {
        (Some(esp), _) => esp,
        (None, Some(uuid)) => partition_by_uuid(&mut disk, &table, uuid)
            .ok_or_else(|| device_not_found(format!("no partition of {path} has the UUID {uuid}")))?,
        (None, None) => {
            return Err(device_not_found(format!(
                "No EFI partition could be detected on device {path} and EFI partition UUID has not been \
                 recorded during deployment (which is often the case for whole disk images). Are you using \
                 a UEFI-compatible image?"
            )))
        }
    };
    let loaders = fat::esp_loaders(&mut disk, esp.offset, esp.len).map_err(failed)?;
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

/// Runs the command on the disk the last image went to. `uuids` is what
/// get_partition_uuids answers (its `partitions` key marks a partition image).
pub fn install(disk: Option<&str>, uuids: &Value, params: &Value) -> Result<Value, RestError> {
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
    if uefi {
        let efi_uuid = params["efi_system_part_uuid"].as_str();
        if manage_uefi(disk, efi_uuid, Path::new(efivars::MOUNT_POINT))? {
            return Ok(Value::Null);
        }
    }
    if partition_image {
        return Err(RestError::new(
            "InvalidImage",
            500,
            "The provided image is not valid for use",
            "rivet does not install a boot loader into a partition image (ironic-python-agent 13 does so only \
             with [agent]enable_bios_bootloader_install); deploy a whole-disk image, which carries its own",
        ));
    }
    log::info!("whole-disk image, {current} boot: the image's own boot loader is used");
    Ok(Value::Null)
}

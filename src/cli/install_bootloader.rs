//! `rivet install-bootloader`: what `image.install_bootloader` does for a
//! partition image under UEFI, on a disk or disk file of this host: the
//! distribution's signed shim and grub, read from the image's root
//! filesystem, written onto the disk's ESP (also as the removable path
//! `EFI/BOOT/BOOTX64.EFI`). No firmware entry: this host is not the machine
//! the disk will boot in.

use super::args::Args;
use rivet::agent::partition_boot;
use serde_json::Value;

const HELP: &str = "\
rivet install-bootloader - put a partition image's UEFI boot loader on the disk's ESP

USAGE:
    rivet install-bootloader --disk PATH --params PARAMS.json [--sector-size 512|4096]

PARAMS.json holds the parameters Ironic sends with image.install_bootloader:
    {\"root_uuid\": \"…\", \"efi_system_part_uuid\": \"…\", \"target_boot_mode\": \"uefi\"}
root_uuid is the root filesystem's UUID (what rivet deploy reports as
\"root uuid\"); efi_system_part_uuid the ESP's PARTUUID (optional: else the
partition typed ESP). The files come from the image itself: /boot/efi/EFI/
(RHEL, Fedora, SUSE) or Debian's and Ubuntu's signed shim and grub packages.
Nothing from the image is run. No firmware boot entry is written on a host:
the disk boots through EFI/BOOT/BOOTX64.EFI, or through the entry rivet's
agent writes on the machine itself.
";

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &["disk", "params", "sector-size"], &[])?;
    if args.help {
        print!("{HELP}");
        return Ok(());
    }
    let path = args.required("disk")?;
    let params_path = args.required("params")?;
    let sector = match args.get("sector-size").unwrap_or("512") {
        "512" => 512,
        "4096" => 4096,
        other => return Err(format!("--sector-size {other}: 512 or 4096")),
    };
    let text = std::fs::read(params_path).map_err(|e| format!("{params_path}: {e}"))?;
    let params: Value =
        serde_json::from_slice(&text).map_err(|e| format!("{params_path}: not JSON: {e}"))?;
    let root_uuid = params["root_uuid"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("{params_path}: no root_uuid (the root filesystem's UUID)"))?;
    match params["target_boot_mode"].as_str().unwrap_or("uefi") {
        "uefi" => {}
        "bios" => {
            return Err(
                "target_boot_mode bios: rivet installs no BIOS boot loader into a partition image \
                 (stock Ironic 39 refuses it too); use a whole-disk image for BIOS machines"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "{params_path}: target_boot_mode {other}: uefi or bios"
            ))
        }
    }
    let efi_uuid = params["efi_system_part_uuid"]
        .as_str()
        .filter(|u| !u.is_empty());
    let done =
        partition_boot::install(path, root_uuid, efi_uuid, sector).map_err(|e| e.to_string())?;
    log::info!(
        "no firmware boot entry written: this host is not the machine {path} boots in; \
         the firmware finds EFI/BOOT/BOOTX64.EFI by itself"
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&done.to_json()).expect("JSON")
    );
    Ok(())
}

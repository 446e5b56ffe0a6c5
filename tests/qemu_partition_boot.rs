//! Partition images that boot under UEFI, the real thing: a Debian 12 root
//! filesystem built with debootstrap from Debian's archive (linux-image,
//! shim-signed, grub-efi-amd64-signed, systemd; tests/fixtures/debian-root,
//! cached in .cache/debian12), deployed by rivet, then booted by OVMF from
//! the disk alone: firmware → shim → grub → the Debian kernel with the
//! reported root UUID → systemd. Here with the host CLI (rivet deploy,
//! rivet install-bootloader) through the removable path with a fresh
//! variable store; Ironic's own deploys of the ext4 (Debian layout) and XFS
//! (RHEL family's layout) images, boot entry included, are in
//! tests/qemu_real_ironic.rs, driven by a real Ironic.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 100 s (debootstrap is cached in .cache/debian12 after the first run, which takes minutes).

mod common;
use common::disk::{plan_file, rivet_deploy, sha256_file, sparse};
use common::scratch;
use common::uefi::{assert_boots_debian, debian_image, ROOT_UUID};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// OVMF and systemd want more than the 128 MiB rivet needs.
const MEM: u32 = 512;

fn fresh_vars(dir: &Path) -> PathBuf {
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
    vars
}

/// Powers the machine on with `disk` and no kernel; returns the console
/// once the installed system greets (or fails).
fn boot_from_disk(dir: &Path, vars: &Path, disk: &Path) -> String {
    common::uefi::boot_from_disk(
        &dir.join("second-boot"),
        vars,
        disk,
        MEM,
        300,
        "Welcome to .*Debian|Kernel panic|grub>|BdsDxe: failed",
    )
}

/// `rivet install-bootloader` on the host.
fn install_bootloader(disk: &Path, params: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(["install-bootloader", "--disk", disk.to_str().unwrap()])
        .args(["--params", params.to_str().unwrap()])
        .output()
        .unwrap()
}

fn files(result: &Value) -> Vec<(String, String)> {
    result["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["from"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn host_deploy_and_install_bootloader_boot_through_the_removable_path() {
    let dir = scratch("partition-boot-host");
    let image = debian_image("ext4");
    let disk = dir.join("disk.img");
    sparse(&disk, 3 << 30);
    let root_mb = std::fs::metadata(&image).unwrap().len().div_ceil(1 << 20);
    let plan = plan_file(
        &dir,
        "plan.json",
        json!({"image_type": "partition", "urls": [format!("file://{}", image.display())],
            "os_hash_algo": "sha256", "os_hash_value": sha256_file(&image), "disk_format": "raw",
            "root_mb": root_mb, "deploy_boot_mode": "uefi"}),
    );
    let deployed = rivet_deploy(&disk, &plan, &[]);
    assert!(deployed.ok, "{}", deployed.stderr);
    let result = deployed.result;
    assert_eq!(result["root uuid"], ROOT_UUID);

    // The parameters Ironic sends, from what the deploy reported.
    let params = dir.join("params.json");
    std::fs::write(
        &params,
        json!({"root_uuid": result["root uuid"], "efi_system_part_uuid": result["efi system partition uuid"],
            "target_boot_mode": "uefi"})
        .to_string(),
    )
    .unwrap();
    let out = install_bootloader(&disk, &params);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("no firmware boot entry written"), "{log}");
    let installed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(files(&installed).contains(&(
        "EFI/BOOT/BOOTX64.EFI".into(),
        "/usr/lib/shim/shimx64.efi.signed".into()
    )));
    // The ESP is a clean FAT filesystem (it starts at 1 MiB, 550 MiB long).
    let esp = dir.join("esp.img");
    let copy = Command::new("dd")
        .args([
            &format!("if={}", disk.display()),
            &format!("of={}", esp.display()),
        ])
        .args(["bs=1M", "skip=1", "count=550", "status=none"])
        .status()
        .unwrap();
    assert!(copy.success());
    let fsck = Command::new("fsck.vfat")
        .arg("-n")
        .arg(&esp)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );

    // Bad input: a BIOS target and a root UUID that is not on the disk.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        json!({"root_uuid": ROOT_UUID, "target_boot_mode": "bios"}).to_string(),
    )
    .unwrap();
    let out = install_bootloader(&disk, &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("target_boot_mode bios"));
    std::fs::write(
        &bad,
        json!({"root_uuid": "0b9e2b9c-0000-4000-8000-000000000000"}).to_string(),
    )
    .unwrap();
    let out = install_bootloader(&disk, &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds the root filesystem 0b9e2b9c"));

    // A fresh variable store: no entry, the firmware takes EFI/BOOT/BOOTX64.EFI.
    let vars = fresh_vars(&dir);
    let firmware = boot_from_disk(&dir, &vars, &disk);
    assert_boots_debian(&firmware, "\"UEFI Misc Device\"", "");
    let _ = std::fs::remove_dir_all(dir);
}

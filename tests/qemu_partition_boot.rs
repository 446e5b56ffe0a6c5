//! Partition images that boot under UEFI, the real thing: a Debian 12 root
//! filesystem built with debootstrap from Debian's archive (linux-image,
//! shim-signed, grub-efi-amd64-signed, systemd; tests/fixtures/debian-root,
//! cached in .cache/debian12), deployed by rivet, then booted by OVMF from
//! the disk alone: firmware → shim → grub → the Debian kernel with the
//! reported root UUID → systemd. Once through Ironic mode (the conductor
//! stand-in sends image.install_bootloader as Ironic 39 does) for an ext4
//! root in Debian's layout and an XFS root in the RHEL family's layout, and
//! once with the host CLI (rivet deploy, rivet install-bootloader) through
//! the removable path with a fresh variable store.

mod common;
use common::disk::{ok, plan_file, rivet_deploy, sha256_file, sparse};
use common::ironic::{first_line_with, session};
use common::{assert_logged, repo, rivet_lines, scratch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// tests/fixtures/debian-image's fixed root UUID.
const ROOT_UUID: &str = "5e1f2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
/// OVMF and systemd want more than the 128 MiB rivet needs.
const MEM: &str = "512";

/// The cached image (the first test to ask builds the tree; the others wait).
fn debian_image(kind: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let script = repo().join("tests/fixtures/debian-image");
    PathBuf::from(ok(script.to_str().unwrap(), &[kind]).trim())
}

fn fresh_vars(dir: &Path) -> PathBuf {
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
    vars
}

/// Powers the machine on with `disk` and no kernel; returns the console
/// once the installed system greets (or fails).
fn boot_from_disk(dir: &Path, vars: &Path, disk: &Path) -> String {
    let again = dir.join("second-boot");
    std::fs::create_dir_all(&again).unwrap();
    let log = again.join("console.log");
    let out = Command::new(repo().join("qemu/boot"))
        .args([
            "--from-disk",
            "--uefi",
            vars.to_str().unwrap(),
            "--mem",
            MEM,
        ])
        .args(["--timeout", "300", "--disk", disk.to_str().unwrap()])
        .args(["--log", log.to_str().unwrap()])
        .args([
            "--until",
            "Welcome to .*Debian|Kernel panic|grub>|BdsDxe: failed",
        ])
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    assert!(
        out.status.success(),
        "{}\n{console}",
        String::from_utf8_lossy(&out.stderr)
    );
    console
}

/// The chain a user would watch on the serial line: the firmware's entry,
/// GRUB, the kernel with the root UUID rivet reported, and systemd.
fn assert_boots_debian(console: &str, entry: &str) {
    // What a user watching the serial line sees (cargo test -- --nocapture).
    for l in console.lines().filter(|l| {
        [
            "BdsDxe:",
            "Welcome to GRUB",
            "Linux version",
            "Command line:",
            "Run /init",
            "Welcome to",
        ]
        .iter()
        .any(|k| l.contains(k))
    }) {
        println!("second boot: {}", l.trim_start_matches(['\u{1b}', '[']));
    }
    let loading = first_line_with(console, "BdsDxe: loading Boot");
    assert!(
        loading.contains(entry),
        "firmware's first choice: {loading}\n{console}"
    );
    assert!(
        console.contains("Welcome to GRUB!"),
        "grub did not start:\n{console}"
    );
    let cmdline = first_line_with(console, "Command line:");
    assert!(
        cmdline.contains(&format!("root=UUID={ROOT_UUID}")),
        "kernel command line: {cmdline}\n{console}"
    );
    assert!(console.contains("Run /init as init process"), "{console}");
    assert!(
        console.contains("Welcome to \u{1b}[1mDebian GNU/Linux 12 (bookworm)")
            || console.contains("Welcome to Debian GNU/Linux 12 (bookworm)"),
        "systemd did not greet:\n{console}"
    );
}

/// An Ironic-mode deploy of `kind`'s image under OVMF, install_bootloader
/// included; then the second boot. Returns the record and both consoles.
fn ironic_deploy_and_boot(kind: &str) -> (Value, String, String) {
    let dir = scratch(&format!("partition-boot-{kind}"));
    let image = debian_image(kind);
    std::fs::hard_link(&image, dir.join("root.img"))
        .or_else(|_| std::fs::copy(&image, dir.join("root.img")).map(|_| ()))
        .unwrap();
    let sum = sha256_file(&dir.join("root.img"));
    let root_mb = std::fs::metadata(&image).unwrap().len().div_ceil(1 << 20);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let vars = fresh_vars(&dir);
    let info = json!({"id": format!("debian-{kind}"), "urls": ["root.img"], "disk_format": "raw",
        "container_format": "bare", "os_hash_algo": "sha256", "os_hash_value": sum,
        "image_type": "partition", "root_mb": root_mb, "swap_mb": 0, "ephemeral_mb": 0,
        "preserve_ephemeral": false, "configdrive": null, "deploy_boot_mode": "uefi",
        "boot_option": "local"});
    let uefi = [
        ("--uefi", vars.display().to_string()),
        ("--mem", MEM.into()),
    ];
    let (record, console) = session(&dir, "deploy", Some(info), &[&target], &[], &uefi, None);
    let write = &record["write_image"];
    assert_eq!(write["command_status"], "SUCCEEDED", "{write}");
    assert_eq!(record["partition_uuids"]["root uuid"], ROOT_UUID);
    let boot = &record["install_bootloader"];
    assert_eq!(boot["command_status"], "SUCCEEDED", "{boot}");
    let firmware = boot_from_disk(&dir, &vars, &target);
    let _ = std::fs::remove_dir_all(&dir);
    (record, console, firmware)
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
fn ironic_deploys_a_debian_ext4_partition_image_that_boots_under_uefi() {
    let (record, console, firmware) = ironic_deploy_and_boot("ext4");
    let result = &record["install_bootloader"]["command_result"];
    assert_eq!(result["vendor"], "debian");
    assert_eq!(result["root_filesystem"], "ext4");
    let files = files(result);
    for (path, from) in [
        ("EFI/debian/shimx64.efi", "/usr/lib/shim/shimx64.efi.signed"),
        (
            "EFI/debian/grubx64.efi",
            "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        ),
        ("EFI/debian/grub.cfg", "generated"),
        ("EFI/BOOT/BOOTX64.EFI", "/usr/lib/shim/shimx64.efi.signed"),
    ] {
        assert!(
            files.contains(&(path.into(), from.into())),
            "{path}: {files:?}"
        );
    }
    let lines = rivet_lines(&console);
    assert_logged(
        &lines,
        "boot loader: debian (Debian's signed shim and grub packages), from ext4",
    );
    assert_logged(&lines, "'debian': HD(1,GPT,");
    assert_logged(&lines, "File(\\EFI\\debian\\shimx64.efi)");
    assert_boots_debian(&firmware, "\"debian\"");
    assert!(
        first_line_with(&firmware, "BdsDxe: loading Boot").contains("\\EFI\\debian\\shimx64.efi")
    );
}

#[test]
fn ironic_deploys_an_xfs_partition_image_with_a_rhel_style_esp_tree_that_boots() {
    let (record, console, firmware) = ironic_deploy_and_boot("xfs");
    let result = &record["install_bootloader"]["command_result"];
    assert_eq!(result["vendor"], "rocky");
    assert_eq!(result["root_filesystem"], "xfs");
    let files = files(result);
    for (path, from) in [
        ("EFI/rocky/shimx64.efi", "/boot/efi/EFI/rocky/shimx64.efi"),
        ("EFI/rocky/BOOTX64.CSV", "/boot/efi/EFI/rocky/BOOTX64.CSV"),
        ("EFI/rocky/grub.cfg", "/boot/efi/EFI/rocky/grub.cfg"),
        ("EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/rocky/shimx64.efi"),
    ] {
        assert!(
            files.contains(&(path.into(), from.into())),
            "{path}: {files:?}"
        );
    }
    assert_logged(
        &rivet_lines(&console),
        "installed under /boot/efi in the image), from xfs",
    );
    assert_boots_debian(&firmware, "\"rocky\"");
    assert!(
        first_line_with(&firmware, "BdsDxe: loading Boot").contains("\\EFI\\rocky\\shimx64.efi")
    );
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
    assert_boots_debian(&firmware, "\"UEFI Misc Device\"");
    let _ = std::fs::remove_dir_all(dir);
}

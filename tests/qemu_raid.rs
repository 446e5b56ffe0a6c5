//! Software RAID (issue 32) in QEMU with three virtio disks: the conductor
//! stand-in runs the clean steps `raid.delete_configuration` then
//! `raid.create_configuration` with a node's `target_raid_config` (a 1 GiB
//! RAID-1 `root` volume and a RAID-0 `data` volume of MAX size); the machine
//! powers off; on the next boot (no fast track) rivet assembles the arrays
//! itself from the members' superblocks, and a whole-disk image is deployed
//! onto `/dev/md0`. Judged from the host: `mdadm --examine` of each member,
//! and the image's bytes in each mirror member's data area. A third boot
//! without one disk runs the mirror degraded and deploys again; a fourth's
//! `raid.delete_configuration` leaves nothing `wipefs` or `mdadm --examine`
//! finds, the stale member's superblock included.
//!
//! And under UEFI with two disks (the second test): the mirrored ESP that
//! install_bootloader makes, judged by OVMF booting a real Debian image
//! from each disk alone.
//!
//! Cost on 2 cores under TCG: the BIOS test's four boots about 50 s, the
//! UEFI test about three minutes; they run side by side.

mod common;
use common::disk::{ok, read_at, sfdisk_parts, sha256_file, sparse, Loop};
use common::ironic::{finished_record, Conductor};
use common::{assert_logged, rivet_lines, scratch};
use serde_json::{json, Value};
use std::path::Path;

const MIB: u64 = 1 << 20;

/// `mdadm --examine` of a member: its fields by name.
fn examine(dev: &str) -> std::collections::BTreeMap<String, String> {
    ok("mdadm", &["--examine", dev])
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One boot against the conductor stand-in with the md initramfs, to the
/// agent's power-off: the stand-in's record and rivet's console lines.
/// Under OVMF with the variable store `uefi` when given; `inspect`: the
/// agent also sends inspection data (fast track needs it).
#[allow(clippy::too_many_arguments)]
fn session(
    dir: &Path,
    mode: &str,
    info: Option<Value>,
    extra: &[&str],
    initrd: &Path,
    disks: &[&Path],
    uefi: Option<&Path>,
    inspect: bool,
) -> (Value, Vec<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut conductor = Conductor::start(dir, mode, info, extra, None);
    conductor.initrd = initrd.to_path_buf();
    let append = match inspect {
        true => format!(
            "ipa-inspection-callback-url={}/v1/continue_inspection",
            conductor.api_url
        ),
        false => String::new(),
    };
    let mut boot = conductor.boot(dir, disks, &append);
    if let Some(vars) = uefi {
        // OVMF and the kernel's EFI stub need more than rivet's 128 MiB.
        boot = boot.arg("--uefi", vars.display()).arg("--mem", 192);
    }
    let console = boot.run("reboot: Power down");
    (finished_record(dir), rivet_lines(&console))
}

/// The members' partitions of a disk (start and length in bytes).
fn partitions(disk: &Path) -> Vec<(u64, u64)> {
    sfdisk_parts(disk)
        .1
        .iter()
        .map(|p| (p.0 * 512, p.1 * 512))
        .collect()
}

#[test]
fn clean_steps_make_arrays_a_deploy_after_a_reboot_writes_onto_one_and_delete_removes_them() {
    let dir = scratch("raid");
    let disks = [dir.join("a.img"), dir.join("b.img"), dir.join("c.img")];
    for d in &disks {
        sparse(d, 2048 * MIB);
    }
    let disk_refs: Vec<&Path> = disks.iter().map(|d| d.as_path()).collect();
    let initrd = dir.join("initrd-md.img");
    let summary = common::initramfs_built("virtio", &initrd, &["--modules", "md_mod,raid0,raid1"]);
    eprint!("{summary}");
    // A 1 GiB three-way mirror for the OS and a stripe over the rest.
    let target_raid_config = json!({"logical_disks": [
        {"size_gb": 1, "raid_level": "1", "controller": "software", "volume_name": "root"},
        {"size_gb": "MAX", "raid_level": "0", "controller": "software", "volume_name": "data"}]});
    let node = json!({"target_raid_config": target_raid_config}).to_string();

    // Boot 1: manual cleaning, delete then create.
    let clean = [
        "--clean-step",
        "delete_configuration,create_configuration",
        "--node-json",
        &node,
    ];
    let (record, lines) = session(
        &dir.join("clean"),
        "clean",
        None,
        &clean,
        &initrd,
        &disk_refs,
        None,
        false,
    );
    let cleans = record["cleans"].as_array().unwrap();
    assert_eq!(cleans.len(), 2, "{record:#}");
    for c in cleans {
        assert_eq!(c["command_status"], "SUCCEEDED", "{c:#}");
    }
    assert_eq!(
        cleans[1]["command_result"]["clean_result"],
        target_raid_config
    );
    assert_eq!(
        cleans[1]["command_result"]["clean_step"]["interface"],
        "raid"
    );
    assert_logged(&lines, "module raid1 loaded (for software RAID)");
    assert_logged(
        &lines,
        "software RAID: /dev/md0 running (3 members: vda1, vdb1, vdc1)",
    );
    assert_logged(
        &lines,
        "software RAID: /dev/md1 running (3 members: vda2, vdb2, vdc2)",
    );

    // The host's mdadm reads the members: msdos tables (a BIOS node), the
    // mirror from 1 MiB to 1 GiB, the stripe from there to 1 MiB before the end (parted's "-1").
    let mut uuids = Vec::new();
    for (slot, d) in disks.iter().enumerate() {
        let parts = partitions(d);
        assert_eq!(
            parts,
            [(MIB, 1023 * MIB), (1024 * MIB, 1023 * MIB)],
            "{}",
            d.display()
        );
        for (n, (level, name)) in [("raid1", "root"), ("raid0", "data")].iter().enumerate() {
            let lo = Loop::range(d, parts[n].0, parts[n].1);
            let e = examine(&lo.dev);
            eprintln!(
                "mdadm --examine {} part {} (slot {slot}): {e:?}",
                d.display(),
                n + 1
            );
            assert_eq!(e["Version"], "1.2");
            assert_eq!(&e["Raid Level"], level);
            assert_eq!(e["Raid Devices"], "3");
            assert_eq!(&e["Name"], name);
            assert!(e["Checksum"].ends_with("- correct"), "{e:?}");
            assert_eq!(e["Device Role"], format!("Active device {slot}"));
            uuids.push((n, e["Array UUID"].clone()));
        }
    }
    for n in 0..2 {
        let of: Vec<&String> = uuids.iter().filter(|u| u.0 == n).map(|u| &u.1).collect();
        assert!(
            of.iter().all(|u| *u == of[0]),
            "one array per partition number: {uuids:?}"
        );
    }
    assert_ne!(uuids[0].1, uuids[1].1);

    // Boot 2: a fresh agent; the arrays are assembled from disk and the
    // whole-disk image goes onto the mirror (the root device hint names md0).
    let img = common::disk::gpt_whole_disk_image(&dir);
    let info = json!({"id": "whole-1", "urls": ["whole.img"], "disk_format": "raw", "container_format": "bare",
        "stream_raw_images": true, "node_uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
        "checksum": sha256_file(&img), "deploy_boot_mode": "bios"});
    let hint = ["--root-device", "/dev/md0"];
    let (record, lines) = session(
        &dir,
        "deploy",
        Some(info.clone()),
        &hint,
        &initrd,
        &disk_refs,
        None,
        false,
    );
    let written = &record["write_image"];
    assert_eq!(written["command_status"], "SUCCEEDED", "{written:#}");
    let result = written["command_result"]["deploy_result"]["result"]
        .as_str()
        .unwrap_or_default();
    assert!(result.contains("written to device /dev/md0"), "{written:#}");
    assert_logged(&lines, "software RAID: assembled /dev/md0, /dev/md1");
    assert_logged(&lines, "target disk /dev/md0");

    // Each mirror member's data area holds the image (past its GPT, which
    // the deploy rewrote for md0's size).
    let image: Vec<u8> = read_at(&img, MIB, (40 * MIB) as usize);
    for d in &disks {
        let (start, len) = partitions(d)[0];
        let lo = Loop::range(d, start, len);
        let offset: u64 = examine(&lo.dev)["Data Offset"]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        drop(lo);
        let at = start + offset * 512 + MIB;
        assert!(
            read_at(d, at, (40 * MIB) as usize) == image,
            "{}: the image is not in the member's data area",
            d.display()
        );
    }

    // Boot 3: a disk has died. The mirror runs on the other two (as mdadm
    // --assemble starts a degraded array) and takes the image again; the
    // stripe cannot run without its third member and is left alone.
    let degraded_dir = dir.join("degraded");
    std::fs::create_dir_all(&degraded_dir).unwrap();
    std::fs::copy(&img, degraded_dir.join("whole.img")).unwrap();
    let (record, lines) = session(
        &degraded_dir,
        "deploy",
        Some(info.clone()),
        &hint,
        &initrd,
        &disk_refs[..2],
        None,
        false,
    );
    assert_eq!(
        record["write_image"]["command_status"], "SUCCEEDED",
        "{record:#}"
    );
    assert_logged(
        &lines,
        "software RAID: array \"root\" is degraded: 2 of 3 members",
    );
    assert_logged(
        &lines,
        "software RAID: array \"data\" (raid0) has 2 of its 3 members",
    );
    assert_logged(&lines, "software RAID: assembled /dev/md0");

    // Boot 4, all three disks again: delete_configuration leaves no table
    // and no md superblock, the stale member's included.
    let old: Vec<Vec<(u64, u64)>> = disks.iter().map(|d| partitions(d)).collect();
    let delete = ["--clean-step", "delete_configuration", "--node-json", &node];
    let (record, lines) = session(
        &dir.join("delete"),
        "clean",
        None,
        &delete,
        &initrd,
        &disk_refs,
        None,
        false,
    );
    assert_eq!(record["clean"]["command_status"], "SUCCEEDED", "{record:#}");
    assert_logged(&lines, "software RAID: deleting /dev/md0");
    assert_logged(&lines, "software RAID: deleting /dev/md1");
    for (d, parts) in disks.iter().zip(&old) {
        let listed = ok("wipefs", &["--no-act", d.to_str().unwrap()]);
        assert!(
            listed.trim().is_empty(),
            "{}: wipefs finds {listed}",
            d.display()
        );
        for &(start, len) in parts {
            let lo = Loop::range(d, start, len);
            let out = common::disk::run("mdadm", &["--examine", &lo.dev]);
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && said.contains("No md superblock detected"),
                "{said}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The FAT filesystem blkid finds on `dev` (probing filesystems only: a
/// 1.0 member also carries md's superblock at its end).
fn fat_of(dev: &str) -> std::collections::BTreeMap<String, String> {
    ok("blkid", &["-p", "-u", "filesystem", "-o", "export", dev])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The real thing under UEFI: a RAID-1 root made by create_configuration
/// on two disks, a real Debian 12 whole-disk image (mdadm in its initramfs,
/// tests/fixtures/debian-image whole) deployed onto md0 in the same boot
/// (fast track: `is_root_volume` chooses the array), install_bootloader
/// moving its ESP to a 1.0 mirror on the holders with one boot entry per
/// disk; a second deploy after a reboot (a rebuild) reuses that mirror. Then OVMF boots
/// each disk alone, the other removed: firmware → the mirror's shim → GRUB
/// (reading the degraded md) → Debian's kernel → its initramfs running the
/// array degraded → systemd.
///
/// Cost on 2 cores under TCG: two agent boots and two Debian boots,
/// about three minutes (175–202 s here).
#[test]
fn uefi_mirrored_esp_boots_debian_from_either_disk_alone() {
    let dir = scratch("raid-uefi");
    let disks = [dir.join("a.img"), dir.join("b.img")];
    for d in &disks {
        sparse(d, 3072 * MIB);
    }
    let disk_refs: Vec<&Path> = disks.iter().map(|d| d.as_path()).collect();
    let initrd = dir.join("initrd-md.img");
    common::initramfs_built("virtio", &initrd, &["--modules", "md_mod,raid1"]);
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
    let image = common::uefi::debian_image("whole");
    let served = dir.join("debian-whole.img");
    std::os::unix::fs::symlink(&image, &served).unwrap();

    // Boot 1, Metal3's fast track: inspection, then the clean steps make
    // the mirror (the node's boot mode is the firmware's: UEFI, so GPT
    // holders with 551 MiB left for the ESP), then the same agent deploys.
    // No root device hint: is_root_volume names md0 (no disk here has the
    // 4 GiB the default choice wants).
    let target = json!({"logical_disks": [
        {"size_gb": "MAX", "raid_level": "1", "controller": "software", "volume_name": "root",
         "is_root_volume": true}]});
    let node = json!({"target_raid_config": target}).to_string();
    let clean = [
        "--clean-step",
        "delete_configuration,create_configuration",
        "--node-json",
        &node,
    ];
    let info = json!({"id": "debian-whole", "urls": ["debian-whole.img"], "disk_format": "raw",
        "container_format": "bare", "stream_raw_images": true,
        "node_uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "checksum": sha256_file(&image),
        "deploy_boot_mode": "uefi"});
    let started = std::time::Instant::now();
    let (record, lines) = session(
        &dir,
        "fasttrack",
        Some(info.clone()),
        &clean,
        &initrd,
        &disk_refs,
        Some(&vars),
        true,
    );
    eprintln!(
        "fast-track boot (clean, deploy, install_bootloader): {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for c in record["cleans"].as_array().unwrap() {
        assert_eq!(c["command_status"], "SUCCEEDED", "{c:#}");
    }
    assert_logged(
        &lines,
        "software RAID: /dev/md0 running (2 members: vda1, vdb1)",
    );
    assert_logged(
        &lines,
        "Using root volume, /dev/md0, from target raid config.",
    );
    assert_eq!(
        record["write_image"]["command_status"], "SUCCEEDED",
        "{record:#}"
    );
    let boot = &record["install_bootloader"];
    assert_eq!(boot["command_status"], "SUCCEEDED", "{boot:#}");
    assert_logged(
        &lines,
        "Creating EFI partitions on software RAID holder disks",
    );
    assert_logged(
        &lines,
        "Relocating EFI /dev/md0 partition 1 to the ESP mirror on vda, vdb (FAT 1E5A-0C42 'EFI')",
    );
    assert_logged(&lines, "'debian (RAID, part0)': HD(2,GPT,");
    assert_logged(&lines, "'debian (RAID, part1)': HD(2,GPT,");

    // From the host: each holder's second partition is the ESP
    // uefi-holder-<n> in the 550 MiB before the RAID partition, a 1.0
    // member of the RAID-1 "esp" that reads as the image ESP's FAT.
    let mut esp_uuids = Vec::new();
    for (n, d) in disks.iter().enumerate() {
        let p = d.to_str().unwrap();
        let info = ok("sgdisk", &["-i", "2", p]);
        assert!(info.contains("First sector: 2048 "), "{info}");
        assert!(info.contains("Last sector: 1128447 "), "{info}");
        assert!(
            info.contains(&format!("Partition name: 'uefi-holder-{n}'")),
            "{info}"
        );
        assert!(
            info.contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
            "{info}"
        );
        assert!(ok("sgdisk", &["-v", p]).contains("No problems found"));
        let lo = Loop::range(d, MIB, 550 * MIB);
        let e = examine(&lo.dev);
        eprintln!("mdadm --examine {} part 2: {e:?}", d.display());
        assert_eq!(e["Version"], "1.0");
        assert_eq!(e["Raid Level"], "raid1");
        assert_eq!(e["Name"], "esp");
        assert_eq!(e["State"], "clean");
        assert!(e["Checksum"].ends_with("- correct"), "{e:?}");
        assert_eq!(e["Device Role"], format!("Active device {n}"));
        esp_uuids.push(e["Array UUID"].clone());
        let fat = fat_of(&lo.dev);
        assert_eq!(fat.get("TYPE").map(String::as_str), Some("vfat"), "{fat:?}");
        assert_eq!(
            fat.get("UUID").map(String::as_str),
            Some("1E5A-0C42"),
            "{fat:?}"
        );
        assert_eq!(fat.get("LABEL").map(String::as_str), Some("EFI"), "{fat:?}");
        let listing = ok("mdir", &["-i", &format!("{p}@@1M"), "-/", "::EFI"]);
        // The image ESP's files, under their long names.
        for f in [
            "debian/shimx64.efi",
            "debian/grubx64.efi",
            "debian/mmx64.efi",
            "debian/BOOTX64.CSV",
            "debian/grub.cfg",
            "BOOT/BOOTX64.EFI",
        ] {
            let (dir, name) = f.split_once('/').unwrap();
            let section = listing
                .split("Directory for ")
                .find(|s| s.starts_with(&format!("::/EFI/{dir}")))
                .unwrap_or_default();
            assert!(
                section.lines().any(|l| l.ends_with(&format!(" {name}"))),
                "EFI/{f} missing from the mirror:\n{listing}"
            );
        }
        let fsck = common::disk::run("fsck.vfat", &["-n", &lo.dev]);
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
    }
    assert_eq!(esp_uuids[0], esp_uuids[1]);
    // The image's own ESP inside the array is wiped: only the mirror is
    // ever found (md0's partition 1 starts 1 MiB into md0's data).
    let (member_start, member_len) = partitions(&disks[0])[0];
    assert_eq!(member_start, 551 * MIB);
    let offset: u64 = {
        let lo = Loop::range(&disks[0], member_start, member_len);
        examine(&lo.dev)["Data Offset"]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let old_esp = Loop::range(&disks[0], member_start + offset * 512 + MIB, 100 * MIB);
    let found = ok("wipefs", &["--no-act", &old_esp.dev]);
    assert!(
        found.trim().is_empty(),
        "the image's ESP still has: {found}"
    );
    drop(old_esp);
    let store = std::fs::read(&vars).unwrap();
    for n in 0..2 {
        let label: Vec<u8> = format!("debian (RAID, part{n})")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(
            store.windows(label.len()).any(|w| w == label),
            "no entry for holder {n} in OVMF's store"
        );
    }

    // Boot 2, a rebuild after a reboot (no fast track, so the root device
    // hint names the array): the mirror on the holders is found and reused.
    let hint = ["--root-device", "/dev/md0"];
    let again = dir.join("rebuild");
    std::fs::create_dir_all(&again).unwrap();
    std::os::unix::fs::symlink(&image, again.join("debian-whole.img")).unwrap();
    let (record, lines) = session(
        &again,
        "deploy",
        Some(info),
        &hint,
        &initrd,
        &disk_refs,
        Some(&vars),
        false,
    );
    assert_eq!(
        record["install_bootloader"]["command_status"], "SUCCEEDED",
        "{record:#}"
    );
    assert_logged(&lines, "Found RAIDed ESP on vda, vdb, skip creation");
    for d in &disks {
        let lo = Loop::range(d, MIB, 550 * MIB);
        let e = examine(&lo.dev);
        assert_eq!(e["Array UUID"], esp_uuids[0]);
        assert!(e["Checksum"].ends_with("- correct"), "{e:?}");
        // The new FAT ends where the array's data does, before the
        // superblock (FAT32's total sectors at 0x20).
        let boot = read_at(d, MIB, 512);
        let fat_sectors = u32::from_le_bytes(boot[0x20..0x24].try_into().unwrap());
        let data: u32 = e["Used Dev Size"]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(fat_sectors, data, "{e:?}");
    }

    // Each disk alone: the firmware starts that disk's entry, GRUB reads
    // the degraded mirror, Debian's initramfs runs it, systemd greets.
    for (n, d) in disks.iter().enumerate() {
        let started = std::time::Instant::now();
        let console = common::uefi::boot_from_disk(
            &dir.join(format!("alone-{n}")),
            &vars,
            d,
            512,
            400,
            "Welcome to .*Debian|Kernel panic|grub>|emergency mode",
        );
        eprintln!(
            "disk {n} alone: {:.0} s to systemd",
            started.elapsed().as_secs_f64()
        );
        // The firmware passes over the other disk's entry (Not Found) and
        // starts this disk's own; Debian's initramfs runs both mirrors
        // (root and esp) on one member.
        for l in console
            .lines()
            .filter(|l| l.contains("md/raid1") || l.contains("md127"))
        {
            println!("disk {n} alone: {}", l.trim());
        }
        common::uefi::assert_boots_debian(
            &console,
            &format!("\"debian (RAID, part{n})\""),
            "\\EFI\\debian\\shimx64.efi",
        );
    }
    // Debian's md driver ran each mirror degraded and wrote the root
    // array's superblocks (events, the missing member; the ESP mirror was
    // never written to): rivet's parser reads what the kernel wrote, as the
    // host's mdadm does.
    for d in &disks {
        for (n, (start, len)) in partitions(d).into_iter().enumerate() {
            let mut dev =
                rivet::linux::blockdev::Disk::open_read_only(d.to_str().unwrap(), 512).unwrap();
            let (_, raw) = rivet::raid::members::find(&mut dev, start, len)
                .unwrap()
                .expect("an md superblock");
            let sb = rivet::wire::md::Superblock::new_checked(&raw[..]).unwrap();
            let lo = Loop::range(d, start, len);
            let e = examine(&lo.dev);
            assert_eq!(sb.events().to_string(), e["Events"], "{e:?}");
            assert!(n == 1 || sb.events() > 1, "the kernel never updated {e:?}");
            let uuid: String = sb
                .set_uuid()
                .chunks(4)
                .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .collect::<Vec<_>>()
                .join(":");
            assert_eq!(uuid, e["Array UUID"]);
            assert_eq!(
                format!("Active device {}", sb.slot().unwrap()),
                e["Device Role"]
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

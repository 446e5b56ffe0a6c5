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
//! Cost on 2 cores under TCG: four boots, about 50 s.

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
fn session(
    dir: &Path,
    mode: &str,
    info: Option<Value>,
    extra: &[&str],
    initrd: &Path,
    disks: &[&Path],
) -> (Value, Vec<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut conductor = Conductor::start(dir, mode, info, extra, None);
    conductor.initrd = initrd.to_path_buf();
    let console = conductor.boot(dir, disks, "").run("reboot: Power down");
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

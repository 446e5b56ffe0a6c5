//! `rivet deploy` and `rivet inspect` on the host, onto sparse files and
//! loop devices, checked with the real tools: sfdisk, sgdisk, blkid,
//! fsck.vfat, cmp.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 18 s.

mod common;
use common::disk::*;
use common::scratch;
use serde_json::json;
use std::path::Path;

/// A real ext4 root image with a file in it, and its sha256.
fn root_image(dir: &std::path::Path, mib: u64) -> (std::path::PathBuf, String) {
    let img = mkfs_image(dir, "ext4", mib, "cloudimg-rootfs");
    ext4_put(&img, "hello.txt", b"deployed by rivet\n");
    let sum = sha256_file(&img);
    (img, sum)
}

fn partition_plan(img: &std::path::Path, sum: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut plan = json!({
        "id": "img-1", "node_uuid": "node-1", "image_type": "partition", "disk_format": "raw",
        "urls": [format!("file://{}", img.display())],
        "os_hash_algo": "sha256", "os_hash_value": sum,
        "root_mb": 64, "swap_mb": 0, "ephemeral_mb": 0, "ephemeral_format": null,
        "preserve_ephemeral": false, "configdrive": null,
    });
    for (k, v) in extra.as_object().unwrap() {
        plan[k] = v.clone();
    }
    plan
}

#[test]
fn bios_msdos_with_swap_and_ephemeral_matches_ironic_layout() {
    let dir = scratch("bios-msdos");
    let (img, sum) = root_image(&dir, 40);
    let disk = dir.join("disk.img");
    sparse(&disk, 1 << 30);
    let plan = plan_file(
        &dir,
        "plan.json",
        partition_plan(
            &img,
            &sum,
            json!({"deploy_boot_mode": "bios", "swap_mb": 32, "ephemeral_mb": 48, "ephemeral_format": "vfat"}),
        ),
    );
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(d.ok, "{}", d.stderr);

    let (_, parts) = sfdisk_parts(&disk);
    // ironic-python-agent: ephemeral, swap, root (bootable), from 1 MiB, in MiB.
    assert_eq!(
        parts,
        vec![
            (2048, 48 * 2048, "83".to_string(), false),
            (49 * 2048, 32 * 2048, "82".to_string(), false),
            (81 * 2048, 64 * 2048, "83".to_string(), true),
        ]
    );
    ok("sfdisk", &["--verify", disk.to_str().unwrap()]);
    let root = blkid_at(&disk, 81 * MIB);
    assert_eq!(root["TYPE"], "ext4");
    assert_eq!(d.result["root uuid"], root["UUID"].as_str());
    assert_eq!(
        d.result["partitions"]["root"],
        format!("{}3", disk.display())
    );
    assert_eq!(
        d.result["partitions"]["swap"],
        format!("{}2", disk.display())
    );
    assert!(d.result["efi system partition uuid"].is_null());
    assert!(
        files_equal_at(&img, &disk, 81 * MIB, 40 * MIB),
        "root partition differs from the image"
    );
    let swap = blkid_at(&disk, 49 * MIB);
    assert_eq!(
        (swap["TYPE"].as_str(), swap["LABEL"].as_str()),
        ("swap", "swap1")
    );
    let eph = blkid_at(&disk, MIB);
    assert_eq!(
        (eph["TYPE"].as_str(), eph["LABEL"].as_str()),
        ("vfat", "ephemeral0")
    );
    let eph_loop = Loop::range(&disk, MIB, 48 * MIB);
    ok("fsck.vfat", &["-n", &eph_loop.dev]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn uefi_gpt_with_config_drive_passes_sgdisk_and_fsck() {
    let dir = scratch("uefi-gpt");
    let (img, sum) = root_image(&dir, 40);
    let cd_src = mkfs_image(&dir, "vfat", 2, "config-2");
    let disk = dir.join("disk.img");
    sparse(&disk, 2 << 30);
    // disk_label msdos is ignored for uefi, as on Ironic's agent path.
    let plan = plan_file(
        &dir,
        "plan.json",
        partition_plan(
            &img,
            &sum,
            json!({"deploy_boot_mode": "uefi", "disk_label": "msdos", "swap_mb": 16, "configdrive": ironic_configdrive(&cd_src)}),
        ),
    );
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(d.ok, "{}", d.stderr);
    assert_sgdisk_clean(&disk);
    let (v, parts) = sfdisk_parts(&disk);
    assert_eq!(v["partitiontable"]["label"], "gpt");
    let types: Vec<&str> = parts.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        ]
    );
    let starts: Vec<u64> = parts.iter().map(|p| p.0 / 2048).collect();
    assert_eq!(
        starts,
        vec![1, 551, 567, 569],
        "ESP 550, swap 16, config drive 2, then root"
    );
    let esp = blkid_at(&disk, MIB);
    assert_eq!(
        (esp["TYPE"].as_str(), esp["LABEL"].as_str()),
        ("vfat", "efi-part")
    );
    assert_eq!(d.result["efi system partition uuid"], esp["UUID"].as_str());
    let esp_loop = Loop::range(&disk, MIB, 550 * MIB);
    ok("fsck.vfat", &["-n", &esp_loop.dev]);
    let cd = blkid_at(&disk, 567 * MIB);
    assert_eq!(cd["LABEL"], "config-2");
    assert_eq!(
        d.result["root uuid"],
        blkid_at(&disk, 569 * MIB)["UUID"].as_str()
    );
    assert!(files_equal_at(&img, &disk, 569 * MIB, 40 * MIB));
    // inspect reads back what deploy wrote.
    let inspected = rivet_inspect(&disk);
    assert_eq!(inspected["partition_table"], "gpt");
    assert_eq!(
        inspected["partitions"][3]["filesystem"]["uuid"],
        d.result["root uuid"]
    );
    assert_eq!(inspected["partitions"][0]["name"], "primary");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bios_gpt_gets_a_bios_boot_partition() {
    let dir = scratch("bios-gpt");
    let (img, sum) = root_image(&dir, 16);
    let disk = dir.join("disk.img");
    sparse(&disk, 256 * MIB);
    let plan = plan_file(
        &dir,
        "plan.json",
        partition_plan(
            &img,
            &sum,
            json!({"deploy_boot_mode": "bios", "disk_label": "gpt"}),
        ),
    );
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(d.ok, "{}", d.stderr);
    assert_sgdisk_clean(&disk);
    let (_, parts) = sfdisk_parts(&disk);
    assert_eq!(
        parts[0],
        (
            2048,
            2048,
            "21686148-6449-6E6F-744E-656564454649".to_string(),
            false
        )
    );
    assert_eq!(parts[1].0, 2 * 2048);
    assert_eq!(
        d.result["partitions"]["BIOS Boot partition"],
        format!("{}1", disk.display())
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn loop_devices_with_512_and_4096_byte_sectors() {
    for sector in [512u32, 4096] {
        let dir = scratch(&format!("loop-{sector}"));
        let (img, _) = root_image(&dir, 24);
        // An unaligned tail: the image is not a whole number of 4 KiB blocks.
        let odd = dir.join("odd.img");
        let mut bytes = std::fs::read(&img).unwrap();
        bytes.extend_from_slice(&[0xab; 1000]);
        std::fs::write(&odd, &bytes).unwrap();
        let odd_sum = sha256_file(&odd);
        let backing = dir.join("disk.img");
        sparse(&backing, 1 << 30);
        let lo = Loop::attach(&backing, sector, true);
        let plan = plan_file(
            &dir,
            "plan.json",
            partition_plan(
                &odd,
                &odd_sum,
                json!({"deploy_boot_mode": "uefi", "swap_mb": 8}),
            ),
        );
        let d = rivet_deploy(std::path::Path::new(&lo.dev), &plan, &["--buffer", "1M"]);
        assert!(d.ok, "sector {sector}: {}", d.stderr);
        assert_sgdisk_clean(std::path::Path::new(&lo.dev));
        let (_, parts) = sfdisk_parts(std::path::Path::new(&lo.dev));
        let per_mib = MIB / sector as u64;
        assert_eq!(
            parts.iter().map(|p| p.0 / per_mib).collect::<Vec<_>>(),
            vec![1, 551, 559],
            "sector {sector}"
        );
        // Checked through the loop device itself: partition nodes for loop
        // devices do not appear in every sandbox, even after BLKRRPART.
        let dev = std::path::Path::new(&lo.dev);
        let root_offset = 559 * MIB;
        assert_eq!(
            d.result["root uuid"],
            blkid_at(dev, root_offset)["UUID"].as_str(),
            "sector {sector}"
        );
        assert_eq!(d.result["partitions"]["root"], format!("{}p3", lo.dev));
        let out = run(
            "cmp",
            &[
                "-n",
                &bytes.len().to_string(),
                odd.to_str().unwrap(),
                &lo.dev,
                "0",
                &root_offset.to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "sector {sector}: root differs: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(blkid_at(dev, MIB)["LABEL"], "efi-part");
        let esp = Loop::range(&backing, MIB, 550 * MIB);
        ok("fsck.vfat", &["-n", &esp.dev]);
        drop(esp);
        drop(lo);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn superblock_probes_agree_with_blkid() {
    let dir = scratch("probes");
    for (kind, mib) in [
        ("ext2", 8),
        ("ext3", 8),
        ("ext4", 8),
        ("xfs", 300),
        ("btrfs", 128),
        ("vfat", 8),
    ] {
        let img = mkfs_image(&dir, kind, mib, "probe-me");
        let v = rivet_inspect(&img);
        let want = blkid_at(&img, 0);
        assert_eq!(v["filesystem"]["type"], want["TYPE"].as_str(), "{kind}");
        assert_eq!(v["filesystem"]["uuid"], want["UUID"].as_str(), "{kind}");
        let label = if kind == "vfat" {
            "PROBE-ME"
        } else {
            "probe-me"
        };
        assert_eq!(
            v["filesystem"]["label"].as_str().map(str::to_uppercase),
            Some(label.to_uppercase()),
            "{kind}"
        );
        std::fs::remove_file(img).unwrap();
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn whole_disk_gpt_image_gets_backup_at_the_end_and_a_config_drive() {
    let dir = scratch("whole-gpt");
    let img = gpt_whole_disk_image(&dir);
    let cd_src = mkfs_image(&dir, "vfat", 4, "config-2");
    let disk = dir.join("disk.img");
    sparse(&disk, 2 << 30);
    let plan = plan_file(
        &dir,
        "plan.json",
        json!({"urls": [format!("file://{}", img.display())], "disk_format": "raw",
               "checksum": md5_file(&img), "configdrive": ironic_configdrive(&cd_src)}),
    );
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(d.ok, "{}", d.stderr);
    assert_sgdisk_clean(&disk);
    let (_, parts) = sfdisk_parts(&disk);
    assert_eq!(parts.len(), 2);
    // sgdisk -n 0:-64MB:0 on a 2 GiB disk: from 1983 MiB to the last usable sector.
    assert_eq!(parts[1].0, 1983 * 2048);
    assert_eq!(parts[1].0 + parts[1].1, (2u64 << 30) / 512 - 33);
    assert_eq!(blkid_at(&disk, 1983 * MIB)["LABEL"], "config-2");
    assert_eq!(
        d.result["root uuid"], "0x00000000",
        "Ironic's whole-disk root uuid is the MBR signature"
    );
    assert_eq!(
        d.result["partitions"]["configdrive"],
        format!("{}2", disk.display())
    );
    assert_eq!(blkid_at(&disk, MIB)["LABEL"], "whole-root");
    // Past the primary GPT (whose header now points at the disk's end) the
    // image is on the disk as it was.
    let out = run(
        "cmp",
        &[
            "-n",
            &(63 * MIB).to_string(),
            img.to_str().unwrap(),
            disk.to_str().unwrap(),
            "17408",
            "17408",
        ],
    );
    assert!(
        out.status.success(),
        "image differs on disk: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn whole_disk_mbr_image_reports_its_signature_and_takes_a_config_drive() {
    let dir = scratch("whole-mbr");
    let img = dir.join("whole.img");
    sparse(&img, 32 * MIB);
    let script = "label: dos\nlabel-id: 0x1badcafe\nstart=2048, size=40960, type=83, bootable\n";
    let mut child = std::process::Command::new("sfdisk")
        .args(["-q", img.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let cd_src = mkfs_image(&dir, "vfat", 1, "config-2");
    let disk = dir.join("disk.img");
    sparse(&disk, 512 * MIB);
    let plan = plan_file(
        &dir,
        "plan.json",
        json!({"urls": [format!("file://{}", img.display())], "checksum": sha256_file(&img),
               "configdrive": ironic_configdrive(&cd_src)}),
    );
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(d.ok, "{}", d.stderr);
    assert_eq!(d.result["root uuid"], "0x1badcafe");
    let (v, parts) = sfdisk_parts(&disk);
    assert_eq!(v["partitiontable"]["id"], "0x1badcafe");
    assert_eq!(parts[1], (448 * 2048, 64 * 2048, "c".to_string(), false));
    ok("sfdisk", &["--verify", disk.to_str().unwrap()]);
    assert_eq!(blkid_at(&disk, 448 * MIB)["LABEL"], "config-2");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_is_refused_before_the_disk_is_touched() {
    let dir = scratch("bad-input");
    let (img, sum) = root_image(&dir, 8);
    let disk = dir.join("disk.img");
    sparse(&disk, 256 * MIB);
    write_at(&disk, 0, &[0x5a; 4096]);
    write_at(&disk, 100 * MIB, b"precious");
    let before = sha256_file(&disk);
    let good = partition_plan(&img, &sum, json!({"deploy_boot_mode": "bios"}));
    let with = |k: &str, v: serde_json::Value| {
        let mut p = good.clone();
        p[k] = v;
        p
    };
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            with("image_type", json!("floppy")),
            "'floppy' is not partition or whole-disk",
        ),
        (
            with("disk_label", json!("sun")),
            "'sun' is not msdos or gpt",
        ),
        (
            with("deploy_boot_mode", json!("coreboot")),
            "'coreboot' is not bios or uefi",
        ),
        (with("root_mb", json!(-1)), "\"root_mb\""),
        (with("swap_mb", json!("lots")), "\"lots\""),
        (with("root_mb", json!(4096)), "partitions from root_mb"),
        (with("root_mb", json!(4096)), "the disk has 256 MiB"),
        (with("os_hash_value", json!("abc")), "not a sha256 digest"),
        (
            with("disk_format", json!("qcow2")),
            "declared qcow2 but its bytes are raw",
        ),
        (
            with("disk_format", json!("vdi")),
            "'vdi' images are not supported",
        ),
        (
            with("urls", json!(["file:///nonexistent/root.img"])),
            "/nonexistent/root.img",
        ),
        (with("urls", json!(["gopher://host/x"])), "only http://"),
        (
            with("ephemeral_mb", json!(1)),
            "the 1 MiB ephemeral partition cannot hold ext4",
        ),
        (with("configdrive", json!("%%%not base64%%%")), "not base64"),
        (
            with("preserve_ephemeral", json!(true)),
            "no partition table to preserve",
        ),
    ];
    for (plan, want) in cases {
        let path = plan_file(&dir, "bad.json", plan.clone());
        let d = rivet_deploy(&disk, &path, &[]);
        assert!(!d.ok, "accepted: {plan}");
        assert!(
            d.stderr.contains(want),
            "for {plan}\nwanted {want:?} in:\n{}",
            d.stderr
        );
        assert_eq!(sha256_file(&disk), before, "disk changed by: {plan}");
    }
    std::fs::write(dir.join("garbage.json"), b"{\"image_type\": partition}").unwrap();
    let d = rivet_deploy(&disk, &dir.join("garbage.json"), &[]);
    assert!(!d.ok && d.stderr.contains("not valid JSON"), "{}", d.stderr);
    assert_eq!(sha256_file(&disk), before);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn checksum_mismatch_fails_with_both_values_and_no_root_filesystem() {
    let dir = scratch("mismatch");
    let (img, sum) = root_image(&dir, 8);
    let disk = dir.join("disk.img");
    sparse(&disk, 256 * MIB);
    let wrong = "1".repeat(64);
    let plan = plan_file(
        &dir,
        "plan.json",
        partition_plan(&img, &wrong, json!({"deploy_boot_mode": "bios"})),
    );
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(!d.ok);
    assert!(
        d.stderr.contains(&wrong) && d.stderr.contains(&sum),
        "{}",
        d.stderr
    );
    assert!(d.stderr.contains("checksum step"), "{}", d.stderr);
    assert!(
        !blkid_at(&disk, MIB).contains_key("TYPE"),
        "a half-written root filesystem is recognisable"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn preserve_ephemeral_keeps_every_byte() {
    let dir = scratch("preserve");
    let (img, sum) = root_image(&dir, 16);
    let disk = dir.join("disk.img");
    sparse(&disk, 512 * MIB);
    let extra = json!({"deploy_boot_mode": "bios", "ephemeral_mb": 32, "ephemeral_format": "vfat", "swap_mb": 8});
    let d = rivet_deploy(
        &disk,
        &plan_file(&dir, "p1.json", partition_plan(&img, &sum, extra.clone())),
        &[],
    );
    assert!(d.ok, "{}", d.stderr);
    // The user's data on the ephemeral partition (1 MiB .. 33 MiB).
    let noise: Vec<u8> = (0..32 * MIB as usize)
        .map(|i| ((i * 2654435761usize) >> 13) as u8)
        .collect();
    write_at(&disk, MIB, &noise);
    let eph = dir.join("eph.before");
    std::fs::write(&eph, &noise).unwrap();

    let img2 = mkfs_image(&dir, "ext4", 12, "second-root");
    let sum2 = sha256_file(&img2);
    let mut p2 = partition_plan(&img2, &sum2, extra);
    p2["preserve_ephemeral"] = json!(true);
    let d2 = rivet_deploy(&disk, &plan_file(&dir, "p2.json", p2.clone()), &[]);
    assert!(d2.ok, "{}", d2.stderr);
    assert!(
        files_equal_at(&eph, &disk, MIB, 32 * MIB),
        "ephemeral partition changed"
    );
    assert_eq!(blkid_at(&disk, 41 * MIB)["LABEL"], "second-root");
    assert_eq!(
        d2.result["root uuid"],
        blkid_at(&disk, 41 * MIB)["UUID"].as_str()
    );

    // A plan whose layout differs from the disk's is refused, disk unchanged.
    let before = sha256_file(&disk);
    p2["swap_mb"] = json!(16);
    let d3 = rivet_deploy(&disk, &plan_file(&dir, "p3.json", p2), &[]);
    assert!(!d3.ok && d3.stderr.contains("differs"), "{}", d3.stderr);
    assert_eq!(sha256_file(&disk), before);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn old_signatures_are_wiped() {
    let dir = scratch("wipe");
    let (img, sum) = root_image(&dir, 8);
    let disk = dir.join("disk.img");
    sparse(&disk, 512 * MIB);
    // An old GPT with an xfs filesystem where the new swap will start, and
    // an old btrfs in what becomes free space.
    ok(
        "sgdisk",
        &[
            "-n",
            "1:2048:+300M",
            "-n",
            "2:0:+120M",
            disk.to_str().unwrap(),
        ],
    );
    let xfs = mkfs_image(&dir, "xfs", 300, "old-xfs");
    copy_into(&xfs, &disk, 1);
    let btrfs = mkfs_image(&dir, "btrfs", 120, "old-btrfs");
    copy_into(&btrfs, &disk, 301);
    assert_eq!(blkid_at(&disk, 301 * MIB)["TYPE"], "btrfs");
    let plan = plan_file(
        &dir,
        "plan.json",
        partition_plan(&img, &sum, json!({"deploy_boot_mode": "bios"})),
    );
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(d.ok, "{}", d.stderr);
    assert!(
        !blkid_at(&disk, 301 * MIB).contains_key("TYPE"),
        "stale btrfs survived"
    );
    let (v, parts) = sfdisk_parts(&disk);
    assert_eq!(v["partitiontable"]["label"], "dos", "the old GPT is gone");
    assert_eq!(parts.len(), 1);
    assert_ne!(
        &read_at(&disk, 512, 8)[..],
        b"EFI PART",
        "primary GPT left behind"
    );
    assert_ne!(
        &read_at(&disk, 512 * MIB - 512, 8)[..],
        b"EFI PART",
        "backup GPT left behind"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_read_only_device_and_an_endless_plan_are_refused_before_anything_is_written() {
    let dir = scratch("read-only");
    let (img, sum) = root_image(&dir, 24);
    let backing = dir.join("disk.img");
    sparse(&backing, 256 << 20);
    common::disk::write_at(&backing, 0, b"a disk that must not change");
    let before = sha256_file(&backing);
    let plan = plan_file(&dir, "plan.json", partition_plan(&img, &sum, json!({})));
    let lo = Loop::read_only(&backing);
    let d = rivet_deploy(Path::new(&lo.dev), &plan, &[]);
    assert!(!d.ok);
    assert!(d.stderr.contains("the device is read-only"), "{}", d.stderr);
    drop(lo);
    assert_eq!(sha256_file(&backing), before);
    // A plan that never ends is not read until memory runs out.
    let d = rivet_deploy(&backing, Path::new("/dev/zero"), &[]);
    assert!(!d.ok);
    assert!(d.stderr.contains("not an image_info plan"), "{}", d.stderr);
    assert_eq!(sha256_file(&backing), before);
    let _ = std::fs::remove_dir_all(dir);
}

/// `dumpe2fs -h` of a device or file, as field → value.
fn dumpe2fs(dev: &str) -> std::collections::BTreeMap<String, String> {
    ok("dumpe2fs", &["-h", dev])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Deploys a partition image with an ephemeral partition of `eph_mib` in
/// `kind` onto `disk` (a file or a loop device) and returns the result.
fn deploy_with_ephemeral(dir: &Path, disk: &Path, kind: &str, eph_mib: u64) -> serde_json::Value {
    let (img, sum) = root_image(dir, 16);
    let plan = plan_file(
        dir,
        &format!("plan-{kind}.json"),
        partition_plan(
            &img,
            &sum,
            json!({"deploy_boot_mode": "bios", "root_mb": 32, "ephemeral_mb": eph_mib, "ephemeral_format": kind}),
        ),
    );
    let d = rivet_deploy(disk, &plan, &[]);
    assert!(d.ok, "{kind} {eph_mib} MiB: {}", d.stderr);
    d.result
}

/// e2fsck -fn must find nothing to fix (exit status 0).
fn assert_e2fsck_clean(dev: &str, what: &str) -> String {
    let out = run("e2fsck", &["-fn", dev]);
    // The version line (stderr) first, the summary (stdout) last.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.success(), "{what}: e2fsck -fn:\n{text}");
    text
}

#[test]
fn ephemeral_ext4_ext3_ext2_pass_e2fsck_and_match_what_mkfs_makes() {
    let dir = scratch("eph-ext");
    for kind in ["ext4", "ext3", "ext2"] {
        for eph_mib in [8u64, 64, 2048] {
            let disk = dir.join(format!("disk-{kind}-{eph_mib}.img"));
            sparse(&disk, (eph_mib + 64) << 20);
            deploy_with_ephemeral(&dir, &disk, kind, eph_mib);
            // The ephemeral partition is the first, at 1 MiB.
            let eph = Loop::range(&disk, MIB, eph_mib * MIB);
            let what = format!("{kind} on {eph_mib} MiB");
            let fsck = assert_e2fsck_clean(&eph.dev, &what);
            eprintln!("{what}: {}", fsck.lines().last().unwrap_or(""));
            let probe = ok("blkid", &["-p", "-o", "export", &eph.dev]);
            assert!(probe.contains(&format!("TYPE={kind}\n")), "{what}: {probe}");
            assert!(probe.contains("LABEL=ephemeral0\n"), "{what}: {probe}");
            // What mkfs makes on the same size, with e2fsprogs' defaults.
            let reference = dir.join(format!("ref-{kind}-{eph_mib}.img"));
            sparse(&reference, eph_mib * MIB);
            ok(
                &format!("mkfs.{kind}"),
                &["-q", "-F", "-L", "ephemeral0", reference.to_str().unwrap()],
            );
            let (ours, theirs) = (dumpe2fs(&eph.dev), dumpe2fs(reference.to_str().unwrap()));
            for field in [
                "Block size",
                "Block count",
                "Inode count",
                "Inode size",
                "Blocks per group",
                "Reserved block count",
                "Filesystem volume name",
            ] {
                assert_eq!(ours.get(field), theirs.get(field), "{what}: {field}");
            }
            // The same features, but resize_inode (room for online growth).
            let features = |m: &std::collections::BTreeMap<String, String>| {
                let mut f: Vec<String> = m["Filesystem features"]
                    .split_whitespace()
                    .filter(|f| *f != "resize_inode")
                    .map(str::to_string)
                    .collect();
                f.sort();
                f
            };
            assert_eq!(features(&ours), features(&theirs), "{what}");
            if eph_mib == 64 {
                // The kernel mounts it read-write; e2fsck is still content after.
                let mnt = dir.join(format!("mnt-{kind}"));
                std::fs::create_dir_all(&mnt).unwrap();
                ok("mount", &["-t", kind, &eph.dev, mnt.to_str().unwrap()]);
                let wrote = std::fs::write(mnt.join("data"), vec![0xa5; 4 << 20]);
                ok("umount", &[mnt.to_str().unwrap()]);
                wrote.unwrap();
                assert_e2fsck_clean(&eph.dev, &format!("{what}, after a read-write mount"));
            }
            drop(eph);
            let _ = std::fs::remove_file(&disk);
            let _ = std::fs::remove_file(&reference);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ext4_ephemeral_mounts_read_write_on_4k_sectors_and_formats_2_tib() {
    let dir = scratch("eph-ext4-mount");
    // 1 KiB filesystem blocks on a disk of 4 KiB sectors.
    let backing = dir.join("disk.img");
    sparse(&backing, 256 * MIB);
    let lo = Loop::attach(&backing, 4096, false);
    let result = deploy_with_ephemeral(&dir, Path::new(&lo.dev), "ext4", 64);
    drop(lo);
    let eph = Loop::range(&backing, MIB, 64 * MIB);
    assert_e2fsck_clean(&eph.dev, "ext4 on 4 KiB sectors");
    let uuid = ok("blkid", &["-p", "-s", "UUID", "-o", "value", &eph.dev]);
    // The random UUID rivet gave it is the one reported.
    assert_eq!(
        result["filesystems"]["ephemeral"]["uuid"].as_str(),
        Some(uuid.trim()),
        "{result:#}"
    );
    assert_eq!(result["filesystems"]["ephemeral"]["type"], "ext4");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    ok("mount", &["-t", "ext4", &eph.dev, mnt.to_str().unwrap()]);
    std::fs::write(mnt.join("data"), vec![0x5a; 8 << 20]).unwrap();
    std::fs::create_dir(mnt.join("dir")).unwrap();
    let lost_found = mnt.join("lost+found").is_dir();
    ok("umount", &[mnt.to_str().unwrap()]);
    assert!(lost_found, "lost+found is there");
    assert_e2fsck_clean(&eph.dev, "ext4 after a read-write mount");
    drop(eph);
    // 2 TiB (less 64 MiB: the MBR's reach), sparse: 16,383 groups, a
    // 1 GiB journal in several extents.
    let eph_mib = (2 << 20) - 64;
    let big = dir.join("big.img");
    sparse(&big, (eph_mib + 64) * MIB);
    deploy_with_ephemeral(&dir, &big, "ext4", eph_mib);
    let eph = Loop::range(&big, MIB, eph_mib * MIB);
    assert_e2fsck_clean(&eph.dev, "ext4 on 2 TiB");
    let h = dumpe2fs(&eph.dev);
    assert_eq!(h["Block count"], (eph_mib * 256).to_string());
    assert_eq!(h["Total journal size"], "1024M");
    drop(eph);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 33, item 7: `rivet install-bootloader` on a whole-disk image
/// whose own ESP has a directory without end. fatfs, which writes the boot
/// files, searched it for ever; rivet now checks the volume with its own
/// reader first and says what is wrong. The same disk with a sound ESP takes the boot files.
#[test]
fn install_bootloader_refuses_an_esp_it_cannot_check() {
    let dir = scratch("hostile-esp");
    // Root: a RHEL-style tree with its ESP files under /boot/efi.
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("boot/efi/EFI/rocky")).unwrap();
    std::fs::write(tree.join("etc/os-release"), "ID=rocky\n").unwrap();
    std::fs::write(
        tree.join("boot/efi/EFI/rocky/shimx64.efi"),
        vec![0x4d; 9000],
    )
    .unwrap();
    let root_uuid = "0b8f3c1e-57d2-4d1e-9c43-6f1d2a7e5b90";
    let root = dir.join("root.img");
    sparse(&root, 32 * MIB);
    let (r, t) = (root.to_str().unwrap(), tree.to_str().unwrap());
    ok("mkfs.ext4", &["-q", "-F", "-U", root_uuid, "-d", t, r]);
    // ESP: FAT16 with a BOOTX64.EFI of two clusters (the file to replace).
    let esp = dir.join("esp.img");
    let e = esp.to_str().unwrap();
    ok("mkfs.vfat", &["-C", "-F", "16", "-s", "4", e, "32768"]);
    let loader = dir.join("loader");
    std::fs::write(&loader, vec![0x5a; 3000]).unwrap();
    ok("mmd", &["-i", e, "::EFI", "::EFI/BOOT"]);
    ok(
        "mcopy",
        &["-i", e, loader.to_str().unwrap(), "::EFI/BOOT/BOOTX64.EFI"],
    );
    let sound = std::fs::read(&esp).unwrap();
    let disk = dir.join("disk.img");
    let params = dir.join("params.json");
    std::fs::write(&params, json!({"root_uuid": root_uuid}).to_string()).unwrap();
    let install = |esp_bytes: &[u8]| {
        sparse(&disk, 80 * MIB);
        let d = disk.to_str().unwrap();
        ok(
            "sgdisk",
            &["-o", "-n", "1:2048:+32M", "-t", "1:ef00", "-n", "2:0:0", d],
        );
        let mut f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        use std::io::{Seek, SeekFrom, Write};
        f.seek(SeekFrom::Start(MIB)).unwrap();
        f.write_all(esp_bytes).unwrap();
        f.seek(SeekFrom::Start(33 * MIB)).unwrap();
        f.write_all(&std::fs::read(&root).unwrap()).unwrap();
        drop(f);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rivet"))
            .args([
                "install-bootloader",
                "--disk",
                d,
                "--params",
                params.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A hang is the fault this test is for: give up after a minute.
        for _ in 0..600 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            panic!("rivet install-bootloader still running after 60 s");
        }
        child.wait_with_output().unwrap()
    };
    let out = install(&sound);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The EFI directory (FAT16, sectors of 512, 4 per cluster: the root
    // directory entry says where) made endless: its free entries marked
    // deleted, so no end marker stops a scan, and its cluster's FAT entry
    // pointed at itself. Looking in it for a name it lacks (rocky) went
    // round for ever.
    let mut bad = sound.clone();
    let (reserved, fats, fat_sectors) = (
        u16::from_le_bytes([bad[14], bad[15]]) as usize,
        bad[16] as usize,
        u16::from_le_bytes([bad[22], bad[23]]) as usize,
    );
    let root_dir = (reserved + fats * fat_sectors) * 512;
    let data = root_dir + 512 * 32;
    let at = (0..16)
        .find(|i| &bad[root_dir + i * 32..][..3] == b"EFI")
        .unwrap()
        * 32;
    let efi = u16::from_le_bytes([bad[root_dir + at + 26], bad[root_dir + at + 27]]) as usize;
    let efi_at = data + (efi - 2) * 2048;
    for entry in bad[efi_at..efi_at + 2048].chunks_mut(32) {
        if entry[0] == 0 {
            entry[0] = 0xe5;
        }
    }
    for copy in 0..fats {
        let fat = (reserved + copy * fat_sectors) * 512 + efi * 2;
        bad[fat..fat + 2].copy_from_slice(&(efi as u16).to_le_bytes());
    }
    let out = install(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("(the ESP)") && err.contains(&format!("loops at cluster {efi}")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

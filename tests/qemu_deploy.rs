//! The whole job in QEMU: rivet as PID 1 gets a DHCP lease from QEMU, fetches
//! its plan and image from an HTTP server on the host's loopback (10.0.2.2),
//! deploys onto a disk and POSTs the result: virtio, and the controllers
//! and NICs real machines carry (MegaRAID, SAS, 53c8xx, PVSCSI, virtio-scsi,
//! AHCI, NVMe; vmxnet3, RTL8139, e1000, e1000e), DHCP-less from virtual
//! media (SATA and USB CDs), IPv6, VLANs, failures. Judged by the callback
//! and by the disk file read from the host afterwards.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 130 s (14 guests, 4 at a time).

mod common;
use common::disk::{blkid_at, ext4_put, files_equal_at, mkfs_image, sha256_file, sparse, MIB};
use common::{initramfs, rivet_lines, scratch, Boot};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The host-side server (tests/fixtures/deploy_server.py).
struct Server {
    fixture: common::Fixture,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--dir", dir.to_str().unwrap(), "--lifetime", "600"];
        args.extend_from_slice(extra);
        Server {
            fixture: common::Fixture::start("deploy_server.py", &args, &dir.join("server.log")),
            dir: dir.to_path_buf(),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("http://10.0.2.2:{}/{name}", self.fixture.port)
    }

    /// The command line of a standalone deploy from this server: its
    /// plan.json, the result posted back to it.
    fn standalone(&self) -> String {
        format!(
            "rivet.plan={} rivet.callback={}",
            self.url("plan.json"),
            self.url("callback")
        )
    }

    fn callback(&self) -> Value {
        let text =
            std::fs::read(self.dir.join("posted-callback.json")).expect("no callback was posted");
        serde_json::from_slice(&text).unwrap()
    }
}

fn root_image(dir: &Path) -> (PathBuf, String) {
    let img = mkfs_image(dir, "ext4", 48, "qemu-root");
    ext4_put(&img, "etc-hostname", b"deployed-by-rivet\n");
    let sum = sha256_file(&img);
    let path = dir.join("root.img");
    std::fs::rename(&img, &path).unwrap();
    (path, sum)
}

fn write_plan(dir: &Path, plan: Value) {
    std::fs::write(dir.join("plan.json"), serde_json::to_vec(&plan).unwrap()).unwrap();
}

#[test]
fn pid1_deploys_a_partition_image_from_http_and_calls_back() {
    let dir = scratch("qemu-deploy");
    let (img, sum) = root_image(&dir);
    // A small disk first (not chosen: Ironic's default is the smallest ≥ 4 GiB).
    let small = dir.join("small.img");
    sparse(&small, 64 * MIB);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    // The server cuts the image connection twice.
    let cut = (5 * MIB).to_string();
    let (console, cb) = deploy_in_qemu(
        &dir,
        &["--cut", &cut, "--times", "2"],
        |s| {
            json!({"image_type": "partition", "root_mb": 64, "swap_mb": 16, "ephemeral_mb": 32, "ephemeral_format": "vfat",
                   "deploy_boot_mode": "bios", "disk_label": "msdos",
                   "urls": [s.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": sum})
        },
        &[small.display().to_string(), target.display().to_string()],
        128,
        "",
    );
    let lines = rivet_lines(&console);
    common::assert_logged(&lines, "DHCP: 10.0.2.15/24");
    common::assert_logged(&lines, "target disk /dev/vdb");
    common::assert_logged(&lines, "resumed at byte 5242880");
    common::assert_logged(&lines, "resumed at byte 10485760");
    common::assert_logged(&lines, "checksum verified: sha256");
    common::assert_logged(&lines, "result posted to");
    assert_eq!(cb["status"], "succeeded", "{cb}");
    assert_eq!(cb["partitions"]["root"], "/dev/vdb3");
    // Read back from the host: ephemeral (1 MiB), swap (33 MiB), root (49 MiB).
    let root = blkid_at(&target, 49 * MIB);
    assert_eq!(cb["root uuid"], root["UUID"].as_str(), "{cb}");
    assert!(
        files_equal_at(&img, &target, 49 * MIB, 48 * MIB),
        "root partition differs from the image"
    );
    assert_eq!(blkid_at(&target, 33 * MIB)["LABEL"], "swap1");
    assert_eq!(blkid_at(&target, MIB)["LABEL"], "ephemeral0");
    let (_, parts) = common::disk::sfdisk_parts(&target);
    assert_eq!(
        parts.iter().map(|p| (p.0 / 2048, p.3)).collect::<Vec<_>>(),
        vec![(1, false), (33, false), (49, true)]
    );
    assert_eq!(
        std::fs::read(&small)
            .unwrap()
            .iter()
            .filter(|&&b| b != 0)
            .count(),
        0,
        "the small disk was touched"
    );
    eprintln!(
        "deploy in QEMU: {} MB/s, boot to report {} s",
        cb["mb_per_s"], cb["boot_to_report_seconds"]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn checksum_mismatch_is_reported_to_the_callback() {
    let dir = scratch("qemu-mismatch");
    let (_img, sum) = root_image(&dir);
    let wrong = "0".repeat(64);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let (console, cb) = deploy_in_qemu(
        &dir,
        &[],
        |s| {
            json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
                   "urls": [s.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": wrong})
        },
        &[target.display().to_string()],
        128,
        "",
    );
    assert_eq!(cb["status"], "failed", "{cb}");
    assert_eq!(cb["step"], "checksum");
    let error = cb["error"].as_str().unwrap();
    assert!(error.contains(&wrong) && error.contains(&sum), "{error}");
    assert!(rivet_lines(&console)
        .iter()
        .any(|l| l.contains("deploy failed in step checksum")));
    assert!(
        !blkid_at(&target, MIB).contains_key("TYPE"),
        "a half-deployed root filesystem is visible"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Boots rivet with a plan served from `dir`; returns the console and the callback.
fn deploy_in_qemu(
    dir: &Path,
    server_args: &[&str],
    plan: impl FnOnce(&Server) -> Value,
    disks: &[String],
    mem: u32,
    append: &str,
) -> (String, Value) {
    let server = Server::start(dir, server_args);
    write_plan(dir, plan(&server));
    let mut boot = Boot::new(dir, &initramfs("virtio")).arg("--mem", mem);
    for d in disks {
        boot = boot.arg("--disk", d);
    }
    let console = boot
        .arg(
            "--append",
            format!(
                "rivet.plan={} rivet.callback={} {append}",
                server.url("plan.json"),
                server.url("callback")
            ),
        )
        .run("reboot: Power down");
    let cb = server.callback();
    (console, cb)
}

#[test]
fn uefi_gpt_with_esp_and_config_drive() {
    let dir = scratch("qemu-uefi");
    let (img, sum) = root_image(&dir);
    let cd = common::disk::mkfs_image(&dir, "vfat", 2, "config-2");
    let configdrive = common::disk::ironic_configdrive(&cd);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let (_console, cb) = deploy_in_qemu(
        &dir,
        &[],
        |s| {
            json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "uefi",
                   "urls": [s.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": sum, "configdrive": configdrive})
        },
        &[target.display().to_string()],
        128,
        "",
    );
    assert_eq!(cb["status"], "succeeded", "{cb}");
    common::disk::assert_sgdisk_clean(&target);
    let esp = blkid_at(&target, MIB);
    assert_eq!(
        (esp["TYPE"].as_str(), esp["LABEL"].as_str()),
        ("vfat", "efi-part")
    );
    assert_eq!(cb["efi system partition uuid"], esp["UUID"].as_str());
    let esp_loop = common::disk::Loop::range(&target, MIB, 550 * MIB);
    common::disk::ok("fsck.vfat", &["-n", &esp_loop.dev]);
    drop(esp_loop);
    assert_eq!(blkid_at(&target, 551 * MIB)["LABEL"], "config-2");
    assert_eq!(
        cb["root uuid"],
        blkid_at(&target, 553 * MIB)["UUID"].as_str()
    );
    assert!(files_equal_at(&img, &target, 553 * MIB, 48 * MIB));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn whole_disk_gpt_image_with_config_drive() {
    let dir = scratch("qemu-whole");
    let img = common::disk::gpt_whole_disk_image(&dir);
    let sum = sha256_file(&img);
    let cd = common::disk::mkfs_image(&dir, "vfat", 2, "config-2");
    // By URL this time, as Ironic hands it over from an object store: PID 1
    // measures it with one GET, then streams it onto its partition with a
    // second through the image's connection (never held).
    std::fs::write(
        dir.join("configdrive.b64"),
        common::disk::ironic_configdrive(&cd),
    )
    .unwrap();
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let (console, cb) = deploy_in_qemu(
        &dir,
        &[],
        |s| json!({"urls": [s.url("whole.img")], "disk_format": "raw", "os_hash_algo": "sha256", "os_hash_value": sum, "configdrive": s.url("configdrive.b64")}),
        &[target.display().to_string()],
        128,
        "",
    );
    assert_eq!(cb["status"], "succeeded", "{cb}");
    assert_eq!(cb["root uuid"], "0x00000000");
    common::disk::assert_sgdisk_clean(&target);
    let (_, parts) = common::disk::sfdisk_parts(&target);
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[1].0 + parts[1].1,
        (4u64 << 30) / 512 - 33,
        "config drive must end at the last usable sector"
    );
    assert_eq!(blkid_at(&target, parts[1].0 * 512)["LABEL"], "config-2");
    assert!(
        files_equal_at(&cd, &target, parts[1].0 * 512, 2 * MIB),
        "the config drive as served"
    );
    assert!(
        console.contains("config drive written to partition 2"),
        "{console}"
    );
    assert_eq!(blkid_at(&target, MIB)["LABEL"], "whole-root");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn four_k_sector_disk_and_a_hint_that_leaves_the_other_disk_alone() {
    let dir = scratch("qemu-4k");
    let (img, sum) = root_image(&dir);
    // Both disks are candidates for Ironic's default; the hint picks the second.
    let other = dir.join("other.img");
    sparse(&other, 4 << 30);
    common::disk::write_at(&other, 0, &[0xa5; 4096]);
    let blocks_before = std::fs::metadata(&other)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m))
        .unwrap();
    let target = dir.join("target.img");
    sparse(&target, 8 << 30);
    let (console, cb) = deploy_in_qemu(
        &dir,
        &[],
        |s| {
            json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "uefi",
                   "urls": [s.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": sum})
        },
        &[
            format!("{},serial=other", other.display()),
            format!(
                "{},serial=target,logical_block_size=4096,physical_block_size=4096",
                target.display()
            ),
        ],
        128,
        "rivet.disk=serial=target",
    );
    assert_eq!(cb["status"], "succeeded", "{cb}");
    assert!(rivet_lines(&console)
        .iter()
        .any(|l| l.contains("onto /dev/vdb (8589934592 bytes, 4096-byte sectors)")));
    assert_eq!(
        cb["root uuid"],
        blkid_at(&target, 551 * MIB)["UUID"].as_str()
    );
    assert!(files_equal_at(&img, &target, 551 * MIB, 48 * MIB));
    // The GPT is in 4096-byte sectors: the header sits at byte 4096.
    assert_eq!(&common::disk::read_at(&target, 4096, 8)[..], b"EFI PART");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args([
            "inspect",
            "--disk",
            target.to_str().unwrap(),
            "--sector-size",
            "4096",
        ])
        .output()
        .unwrap();
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        inspected["partitions"][1]["filesystem"]["uuid"],
        cb["root uuid"]
    );
    // The other disk: same allocated blocks, marker intact.
    let blocks_after = std::fs::metadata(&other)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m))
        .unwrap();
    assert_eq!(
        blocks_before, blocks_after,
        "something was written to the other disk"
    );
    assert_eq!(common::disk::read_at(&other, 0, 4096), vec![0xa5; 4096]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_1_gib_image_deploys_in_96_mib_of_ram() {
    let dir = scratch("qemu-96m");
    let img = dir.join("big.img");
    sparse(&img, 1 << 30);
    common::disk::ok(
        "mkfs.ext4",
        &["-q", "-F", "-L", "big-root", img.to_str().unwrap()],
    );
    // Non-zero data spread over the image, so it is not all holes.
    for i in 0..16u64 {
        common::disk::write_at(&img, (i * 64 + 32) << 20, &vec![(i as u8) | 1; 1 << 20]);
    }
    let sum = common::disk::md5_file(&img);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let (_console, cb) = deploy_in_qemu(
        &dir,
        &[],
        |s| {
            json!({"image_type": "partition", "root_mb": 1100, "deploy_boot_mode": "bios",
                   "urls": [s.url("big.img")], "checksum": sum})
        },
        &[target.display().to_string()],
        96,
        "",
    );
    assert_eq!(cb["status"], "succeeded", "{cb}");
    assert_eq!(cb["image_bytes"], 1u64 << 30);
    assert_eq!(cb["checksum"]["algorithm"], "md5");
    assert_eq!(cb["root uuid"], blkid_at(&target, MIB)["UUID"].as_str());
    assert!(files_equal_at(&img, &target, MIB, 1 << 30));
    eprintln!(
        "1 GiB in 96 MiB: {} MB/s, boot to report {} s",
        cb["mb_per_s"], cb["boot_to_report_seconds"]
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes `mib` MiB of non-zero data into `img` from `from_mib` on, in
/// 8 MiB runs with 8 MiB holes between them (a qcow2 of it is about
/// half the image, and has holes to zero).
fn fill_runs(img: &Path, from_mib: u64, mib: u64) {
    for i in 0..mib / 8 {
        let run: Vec<u8> = (0..8 << 20)
            .map(|b: usize| (b * 13 + i as usize) as u8 | 1)
            .collect();
        common::disk::write_at(img, (from_mib + i * 16) << 20, &run);
    }
}

#[test]
fn qcow2_images_larger_than_the_ram_deploy_in_128_mib() {
    let dir = scratch("qemu-qcow2");
    let qemu_img = |args: &[&str]| common::disk::ok("qemu-img", args);
    // A partition image: 400 MiB of ext4 with 176 MiB of data.
    let fs = dir.join("root.raw");
    sparse(&fs, 400 * MIB);
    common::disk::ok(
        "mkfs.ext4",
        &["-q", "-F", "-L", "qcow2-root", fs.to_str().unwrap()],
    );
    fill_runs(&fs, 32, 176);
    let part = dir.join("root.qcow2");
    qemu_img(&[
        "convert",
        "-q",
        "-O",
        "qcow2",
        fs.to_str().unwrap(),
        part.to_str().unwrap(),
    ]);
    // A whole-disk image: GPT, 300 MiB partition, 152 MiB of data, zstd clusters
    // (the data does not compress: the file stays larger than the RAM).
    let whole = dir.join("whole.raw");
    sparse(&whole, 320 * MIB);
    common::disk::ok(
        "sgdisk",
        &[
            "-n",
            "1:2048:+300M",
            "-c",
            "1:root",
            whole.to_str().unwrap(),
        ],
    );
    let wfs = mkfs_image(&dir, "ext4", 300, "qcow2-whole");
    common::disk::copy_into(&wfs, &whole, 1);
    common::disk::ok(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}", whole.display()),
            "bs=1M",
            "seek=40",
            "count=152",
            "conv=notrunc",
            "status=none",
        ],
    );
    let disk_qcow2 = dir.join("whole.qcow2");
    qemu_img(&[
        "convert",
        "-q",
        "-c",
        "-O",
        "qcow2",
        "-o",
        "compression_type=zstd",
        whole.to_str().unwrap(),
        disk_qcow2.to_str().unwrap(),
    ]);
    for q in [&part, &disk_qcow2] {
        let len = std::fs::metadata(q).unwrap().len();
        assert!(
            len > 128 * MIB,
            "{q:?} is {len} bytes, not larger than the guest's RAM"
        );
    }
    let reference = |q: &Path| {
        let raw = q.with_extension("ref");
        qemu_img(&[
            "convert",
            "-q",
            "-O",
            "raw",
            q.to_str().unwrap(),
            raw.to_str().unwrap(),
        ]);
        raw
    };

    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    common::disk::write_at(&target, 100 * MIB, &vec![0xee; 8 << 20]);
    let sum = sha256_file(&part);
    let (console, cb) = deploy_in_qemu(
        &dir,
        &[],
        |s| {
            json!({"image_type": "partition", "root_mb": 512, "deploy_boot_mode": "bios",
                   "disk_format": "qcow2", "urls": [s.url("root.qcow2")],
                   "os_hash_algo": "sha256", "os_hash_value": sum})
        },
        &[target.display().to_string()],
        128,
        "",
    );
    assert_eq!(cb["status"], "succeeded", "{cb}\n{console}");
    assert!(console.contains("tables read and checked"), "{console}");
    assert_eq!(cb["root uuid"], blkid_at(&target, MIB)["UUID"].as_str());
    assert!(
        files_equal_at(&reference(&part), &target, MIB, 400 * MIB),
        "the root partition differs from qemu-img's"
    );
    eprintln!("qcow2 partition image in 128 MiB: {} MB/s", cb["mb_per_s"]);

    let target = dir.join("target2.img");
    sparse(&target, 4 << 30);
    common::disk::write_at(&target, 200 * MIB, &vec![0xee; 8 << 20]);
    let sum = sha256_file(&disk_qcow2);
    let (console, cb) = deploy_in_qemu(
        &dir,
        &[],
        |s| json!({"urls": [s.url("whole.qcow2")], "os_hash_algo": "sha256", "os_hash_value": sum}),
        &[target.display().to_string()],
        128,
        "",
    );
    assert_eq!(cb["status"], "succeeded", "{cb}\n{console}");
    assert!(console.contains("zstd-compressed clusters"), "{console}");
    common::disk::assert_sgdisk_clean(&target);
    assert_eq!(blkid_at(&target, MIB)["LABEL"], "qcow2-whole");
    // The partition, 1 MiB to 301 MiB, at the same offset on both.
    let same = common::disk::run(
        "cmp",
        &[
            "-n",
            &(300 * MIB).to_string(),
            reference(&disk_qcow2).to_str().unwrap(),
            target.to_str().unwrap(),
            &MIB.to_string(),
            &MIB.to_string(),
        ],
    );
    assert!(
        same.status.success(),
        "the partition differs from qemu-img's"
    );
    eprintln!(
        "qcow2 (zstd) whole-disk image in 128 MiB: {} MB/s",
        cb["mb_per_s"]
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A config drive holding `network_data`, made as Ironic makes one
/// (ironic/common/images.py's genisoimage options).
fn config_drive(dir: &Path, network_data: &[u8]) -> PathBuf {
    let tree = dir.join("cd/openstack/latest");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("network_data.json"), network_data).unwrap();
    let iso = dir.join("config-2.iso");
    let _ = std::fs::remove_file(&iso);
    common::disk::ok(
        "genisoimage",
        &[
            "-o",
            iso.to_str().unwrap(),
            "-ldots",
            "-allow-lowercase",
            "-allow-multidot",
            "-l",
            "-publisher",
            "ironic-config-drive",
            "-quiet",
            "-J",
            "-r",
            "-V",
            "config-2",
            dir.join("cd").to_str().unwrap(),
        ],
    );
    iso
}

/// The callback the deploy server recorded in `dir`, checked as a user
/// would check it: the deploy succeeded and its root uuid is the
/// filesystem now on `target`. rivet's console lines holding any of `show`
/// go to the test's output.
fn succeeded(dir: &Path, target: &Path, console: &str, show: &[&str]) -> Value {
    let posted = std::fs::read(dir.join("posted-callback.json"))
        .unwrap_or_else(|_| panic!("no callback:\n{console}"));
    let cb: Value = serde_json::from_slice(&posted).unwrap();
    assert_eq!(cb["status"], "succeeded", "{cb}\n{console}");
    assert_eq!(cb["root uuid"], blkid_at(target, MIB)["UUID"].as_str());
    // The figures the README's hardware table quotes.
    eprintln!(
        "deployed onto {}: {} s from kernel start to the report, image {} s",
        cb["disk"], cb["boot_to_report_seconds"], cb["image_seconds"]
    );
    for l in rivet_lines(console)
        .iter()
        .filter(|l| show.iter().any(|s| l.contains(s)))
    {
        eprintln!("{l}");
    }
    cb
}

/// Raw QEMU arguments for qemu/boot, in order.
fn qemu_args<S: ToString>(boot: Boot, args: impl IntoIterator<Item = S>) -> Boot {
    args.into_iter().fold(boot, |b, a| b.arg("--qemu-arg", a))
}

/// The CD as iDRAC and iLO present theirs: a USB mass-storage CD-ROM
/// (QEMU's usb-bot with a scsi-cd) on an xHCI controller.
fn with_usb_virtual_media(boot: Boot, iso: &Path) -> Boot {
    let drive = format!(
        "id=vmedia,if=none,media=cdrom,readonly=on,file={}",
        iso.display()
    );
    qemu_args(
        boot,
        [
            "-device",
            "qemu-xhci,id=xhci",
            "-drive",
            &drive,
            "-device",
            "usb-bot,id=bot,bus=xhci.0",
            "-device",
            "scsi-cd,drive=vmedia,bus=bot.0",
        ],
    )
}

/// `iso` as a BMC's virtual media shows up: a CD on a SATA controller.
fn with_virtual_media(boot: Boot, iso: &Path) -> Boot {
    let drive = format!(
        "id=vmedia,if=none,media=cdrom,readonly=on,file={}",
        iso.display()
    );
    qemu_args(
        boot,
        [
            "-device",
            "ahci,id=sata",
            "-drive",
            &drive,
            "-device",
            "ide-cd,drive=vmedia,bus=sata.0",
        ],
    )
}

/// DHCP-less on a tagged VLAN from virtual media: the config drive (a CD)
/// puts the NIC's static address on a `vlan` link, VLAN 100. The NIC is on
/// a trunk; the deploy server sits on VLAN 100's access port behind a
/// switch (tests/fixtures/vlan_switch.py), so only tagged frames reach it.
#[test]
fn a_virtual_media_config_drive_puts_the_address_on_a_tagged_vlan() {
    let dir = scratch("qemu-cd-vlan");
    let (_img, sum) = root_image(&dir);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let mut net = common::netns::Net::with_tap(68, &dir);
    net.behind_vlan(100);
    let network_data = serde_json::to_vec(&json!({
        "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"},
                  {"id": "vlan100", "type": "vlan", "vlan_link": "port0", "vlan_id": 100,
                   "vlan_mac_address": "52:54:00:12:34:56"}],
        "networks": [{"id": "prov-vlan", "type": "ipv4", "link": "vlan100",
                      "ip_address": "10.77.68.42", "netmask": "255.255.255.0"}]
    }))
    .unwrap();
    let iso = config_drive(&dir, &network_data);
    // What the previous tenant left on a disk of the machine (NVMe, as on
    // real servers: nvme0n1 and sda sort before sr0): a config-2 ISO whose
    // network is the tenant's. PID 1 must not read it.
    let tenant = dir.join("tenant");
    std::fs::create_dir_all(&tenant).unwrap();
    let planted = config_drive(
        &tenant,
        &serde_json::to_vec(&json!({
            "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
            "networks": [{"id": "tenant", "type": "ipv4", "link": "port0",
                          "ip_address": "10.77.68.66", "netmask": "255.255.255.0"}]
        }))
        .unwrap(),
    );
    let tenant_disk = dir.join("tenant-disk.img");
    sparse(&tenant_disk, 8 << 30);
    common::disk::write_at(&tenant_disk, 0, &std::fs::read(&planted).unwrap());
    let server = common::Fixture::start_in(
        Some(&net.srv),
        "deploy_server.py",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--bind",
            &net.server_ip,
            "--lifetime",
            "600",
        ],
        &dir.join("server.log"),
    );
    let base = format!("http://{}:{}", net.server_ip, server.port);
    write_plan(
        &dir,
        json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
               "urls": [format!("{base}/root.img")], "os_hash_algo": "sha256", "os_hash_value": sum}),
    );
    let nvme = format!(
        "id=tenant,if=none,format=raw,file={}",
        tenant_disk.display()
    );
    let console = with_virtual_media(Boot::new(&dir, &initramfs("full")), &iso)
        .arg("--qemu-arg", "-drive")
        .arg("--qemu-arg", &nvme)
        .arg("--qemu-arg", "-device")
        .arg("--qemu-arg", "nvme,drive=tenant,serial=disk-2")
        .arg("--mem", 192)
        .arg("--tap", format!("{}:rvtap", net.srv))
        // Intel's classic NIC, which strips the 802.1Q tag in hardware as
        // server NICs do: the tag reaches rivet in the ring's metadata.
        .arg("--nic", "e1000")
        .arg("--disk", target.display())
        .arg(
            "--append",
            format!("rivet.network_data=config-2 rivet.plan={base}/plan.json rivet.callback={base}/callback"),
        )
        .run("reboot: Power down");
    if !dir.join("posted-callback.json").exists() {
        eprintln!("the switch's log:\n{}", net.log("vlan-switch.log"));
    }
    succeeded(&dir, &target, &console, &["config-2", "network", "VLAN"]);
    assert!(console.contains("carrier up, driver e1000"), "{console}");
    assert!(
        console.contains("/dev/sr0 (config-2): network 'prov-vlan' on eth0 VLAN 100"),
        "{console}"
    );
    assert!(!console.contains("network 'tenant'"), "{console}");
    assert!(
        console.contains("eth0: VLAN 100: frames tagged 802.1Q"),
        "{console}"
    );
    assert!(
        console.contains("network up: eth0 10.77.68.42/24"),
        "{console}"
    );
    drop(server);
    drop(net);
}

/// DHCP-less over IPv6 from virtual media: the config drive is a USB CD
/// (as iDRAC and iLO present virtual media; the `default` class carries
/// xHCI, usb-storage and sr_mod), and its network_data.json gives the NIC
/// a static IPv6 address.
/// QEMU's user network is the provisioning network: fec0::/64, the host as
/// fec0::2 (its ::1, where the deploy server listens), DNS fec0::3. The CD
/// is made as Ironic makes its virtual-media deploy ISO when it injects
/// network_data.json (image_utils.prepare_deploy_iso → `mkisofs -r -V
/// config-2`: Rock Ridge only, no Joliet).
#[test]
fn a_virtual_media_config_drive_gives_a_static_ipv6_address() {
    let dir = scratch("qemu-cd6");
    let (_img, sum) = root_image(&dir);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let network_data = serde_json::to_vec(&json!({
        "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
        "networks": [{"id": "provisioning-v6", "type": "ipv6", "link": "port0",
                      "ip_address": "fec0::42", "netmask": "ffff:ffff:ffff:ffff::",
                      "routes": [{"network": "::", "netmask": "::", "gateway": "fec0::2"}]}],
        "services": [{"type": "dns", "address": "fec0::3"}, {"type": "dns", "address": "10.0.2.3"}]
    }))
    .unwrap();
    let tree = dir.join("iso/openstack/latest");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("network_data.json"), &network_data).unwrap();
    let iso = dir.join("deploy.iso");
    common::disk::ok(
        "genisoimage",
        &[
            "-quiet",
            "-r",
            "-V",
            "config-2",
            "-o",
            iso.to_str().unwrap(),
            dir.join("iso").to_str().unwrap(),
        ],
    );
    let server = Server::start(&dir, &["--bind", "::1"]);
    let base = format!("http://[fec0::2]:{}", server.fixture.port);
    write_plan(
        &dir,
        json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
               "urls": [format!("{base}/root.img")], "os_hash_algo": "sha256", "os_hash_value": sum}),
    );
    let console = with_usb_virtual_media(Boot::new(&dir, &initramfs("default")), &iso)
        .arg("--mem", 192)
        // An Intel I217/I219-class NIC and an NVMe target disk.
        .arg("--nic", "e1000e")
        .arg("--qemu-arg", "-drive")
        .arg(
            "--qemu-arg",
            format!("id=target,if=none,format=raw,file={}", target.display()),
        )
        .arg("--qemu-arg", "-device")
        .arg("--qemu-arg", "nvme,drive=target,serial=nvme-target")
        .arg(
            "--append",
            format!("rivet.network_data=config-2 rivet.plan={base}/plan.json rivet.callback={base}/callback"),
        )
        .run("reboot: Power down");
    drop(server);
    succeeded(&dir, &target, &console, &["config-2", "network", "sr0"]);
    assert!(
        console.contains("target disk /dev/nvme0n1")
            && console.contains("carrier up, driver e1000e"),
        "{console}"
    );
    for module in ["xhci_pci", "usb_storage", "sr_mod"] {
        assert!(
            console.contains(&format!("module {module} loaded")),
            "{module} not loaded:\n{console}"
        );
    }
    assert!(
        console.contains("/dev/sr0 (config-2): network 'provisioning-v6' on eth0"),
        "{console}"
    );
    assert!(
        console.contains("network up: eth0 fec0::42/64 via fec0::2"),
        "{console}"
    );
    assert!(!console.contains("DHCP: "), "DHCP was used:\n{console}");
    let _ = std::fs::remove_dir_all(dir);
}

/// IPv6 only: the machine's NIC on a tap whose other side runs dnsmasq as
/// Metal3 does for IPv6 (router advertisements, stateful DHCPv6, a router
/// lifetime of 0) and the deploy server on fd00:77:66::1; no IPv4 at all.
/// The plan comes from a literal `http://[…]` URL, the image by a name
/// answered with AAAA, the callback goes back over IPv6.
#[test]
fn an_ipv6_only_network_deploys_with_dhcpv6() {
    let dir = scratch("qemu-ipv6");
    let (_img, sum) = root_image(&dir);
    let mut net = common::netns::Net::with_tap(66, &dir);
    let ip6 = net.ipv6();
    net.dhcp6(true);
    let server = common::Fixture::start_in(
        Some(&net.srv),
        "deploy_server.py",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--bind",
            &ip6,
            "--lifetime",
            "600",
        ],
        &dir.join("server.log"),
    );
    let base = format!("http://[{ip6}]:{}", server.port);
    write_plan(
        &dir,
        json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
               "urls": [format!("http://images.test:{}/root.img", server.port)],
               "os_hash_algo": "sha256", "os_hash_value": sum}),
    );
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--mem", 128)
        .arg("--tap", format!("{}:{}", net.srv, net.link))
        .arg("--disk", target.display())
        .arg(
            "--append",
            format!("rivet.plan={base}/plan.json rivet.callback={base}/callback"),
        )
        .run("reboot: Power down");
    succeeded(
        &dir,
        &target,
        &console,
        &["IPv6", "network", "image written"],
    );
    assert!(console.contains("DHCPv6: fd00:77:66::1"), "{console}");
    assert!(
        console.contains("network up: eth0 fd00:77:66::1"),
        "{console}"
    );
    assert!(!console.contains("DHCP: "), "no IPv4 here:\n{console}");
    drop(server);
    drop(net);
}

/// DHCP-less: `rivet.network_data=config-2`, and a config drive on virtual
/// media (a SATA CD, with the default class) whose network_data.json gives
/// the NIC, by its MAC, a static address; QEMU's DHCP is never asked.
#[test]
fn a_dhcp_less_deploy_takes_its_address_from_the_config_drive() {
    let dir = scratch("qemu-config2");
    let (_img, sum) = root_image(&dir);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let boot = |iso: &Path| {
        let server = Server::start(&dir, &[]);
        write_plan(
            &dir,
            json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
                   "urls": [server.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": sum}),
        );
        let console = with_virtual_media(Boot::new(&dir, &initramfs("default")), iso)
            .arg("--mem", 128)
            .arg("--disk", target.display())
            .arg(
                "--append",
                format!(
                    "rivet.plan={} rivet.callback={} rivet.network_data=config-2",
                    server.url("plan.json"),
                    server.url("callback")
                ),
            )
            .run("reboot: Power down");
        (console, server.callback())
    };
    let good = serde_json::to_vec(&json!({
        "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
        "networks": [{"id": "provisioning", "type": "ipv4", "link": "port0",
                      "ip_address": "10.0.2.42", "netmask": "255.255.255.0",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}]}],
        "services": [{"type": "dns", "address": "10.0.2.3"}]
    }))
    .unwrap();
    let (console, cb) = boot(&config_drive(&dir, &good));
    assert_eq!(cb["status"], "succeeded", "{cb}\n{console}");
    assert!(
        console.contains("(config-2): network 'provisioning' on eth0"),
        "{console}"
    );
    assert!(console.contains("network: eth0, static"), "{console}");
    assert!(
        console.contains("network up: eth0 10.0.2.42/24"),
        "{console}"
    );
    assert!(!console.contains("DHCP:"), "DHCP was used:\n{console}");
    for line in console
        .lines()
        .filter(|l| l.contains("config-2") || l.contains("network"))
    {
        eprintln!("{line}");
    }
    assert_eq!(cb["root uuid"], blkid_at(&target, MIB)["UUID"].as_str());

    // A network_data.json that cannot be applied: reported with the key at
    // fault, on the console and in the callback; DHCP carries the deploy.
    let bad = br#"{"links": [{"id": "b", "type": "bond", "bond_mode": "802.3ad", "bond_links": ["p"]},
                            {"id": "p", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
                 "networks": [{"id": "n", "type": "ipv4", "link": "b", "ip_address": "10.0.2.42/24"}]}"#;
    let (console, cb) = boot(&config_drive(&dir, bad));
    assert_eq!(cb["status"], "succeeded", "{cb}\n{console}");
    let warning = cb["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("\"links[0].bond_mode\": '802.3ad' is not supported"),
        "{cb}"
    );
    assert!(console.contains("DHCP: 10.0.2.15/24"), "{console}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plan_and_disk_failures_are_reported_and_the_machine_still_powers_off() {
    let dir = scratch("qemu-failures");
    let small = dir.join("small.img");
    sparse(&small, 64 * MIB);
    // (what the plan is, the step that must be named, a phrase of the error)
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"image_type": "floppy", "checksum": "d41d8cd98f00b204e9800998ecf8427e"}),
            "plan",
            "'floppy' is not partition or whole-disk",
        ),
        // Valid plan, but the only disk is smaller than Ironic's 4 GiB minimum.
        (
            json!({"image_type": "partition", "root_mb": 16, "urls": ["http://10.0.2.2:1/x.img"],
                   "checksum": "d41d8cd98f00b204e9800998ecf8427e"}),
            "disk",
            "no disk of at least 4 GiB",
        ),
    ];
    for (plan, step, phrase) in cases {
        let (console, cb) = deploy_in_qemu(
            &dir,
            &[],
            |_| plan.clone(),
            &[small.display().to_string()],
            128,
            "rivet.after=poweroff",
        );
        assert_eq!(cb["status"], "failed", "{cb}");
        assert_eq!(cb["step"], step, "{cb}");
        assert!(cb["error"].as_str().unwrap().contains(phrase), "{cb}");
        assert!(console.contains("reboot: Power down"));
        let _ = std::fs::remove_file(dir.join("posted-callback.json"));
    }
    // A plan URL that does not exist: the failure still reaches the callback.
    let server = Server::start(&dir, &[]);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--disk", small.display())
        .arg(
            "--append",
            format!(
                "rivet.plan={} rivet.callback={}",
                server.url("missing.json"),
                server.url("callback")
            ),
        )
        .run("reboot: Power down");
    let cb = server.callback();
    assert_eq!(
        (cb["status"].as_str(), cb["step"].as_str()),
        (Some("failed"), Some("plan")),
        "{cb}"
    );
    assert!(cb["error"].as_str().unwrap().contains("404"), "{cb}");
    assert!(rivet_lines(&console)
        .iter()
        .any(|l| l.contains("deploy failed in step plan")));
    assert_eq!(
        std::fs::read(&small)
            .unwrap()
            .iter()
            .filter(|&&b| b != 0)
            .count(),
        0,
        "a disk was touched"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Benchmark, not a test (tests/bench/qemu-stream runs it): a 256 MiB
/// whole-disk image deployed in PID 1 under TCG from nginx on a tap, over
/// plain HTTP and over HTTPS, in 128 MiB of RAM. Prints the guest's own
/// MB/s and the TLS suite it negotiated: QEMU's default CPU has no AES-NI,
/// so rivet offers ChaCha20-Poly1305 first and nginx takes it.
#[test]
#[ignore]
fn stream_benchmark_in_qemu() {
    use common::netns::Net;
    use common::tls::TestCa;
    let dir = scratch("qemu-stream");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let img = www.join("image.raw");
    let mib = std::env::var("RIVET_STREAM_MIB").map_or(256, |v| v.parse().unwrap());
    common::disk::ok(
        "sh",
        &[
            "-c",
            &format!("head -c {}M /dev/urandom > {}", mib, img.display()),
        ],
    );
    let sum = sha256_file(&img);
    let mut rows = Vec::new();
    for (n, https) in [(64u8, false), (65, true)] {
        let net_dir = dir.join(format!("net{n}"));
        std::fs::create_dir_all(&net_dir).unwrap();
        let mut net = Net::with_tap(n, &net_dir);
        net.dhcp();
        let (base, initrd) = if https {
            let ca = TestCa::new(&dir, "stream");
            let cert = ca.server(&dir, "stream-srv", &[&net.server_ip]);
            (
                net.nginx_tls(&www, &cert),
                common::initramfs_with_ca(&dir, &ca.pem),
            )
        } else {
            (net.nginx(&www), initramfs("virtio"))
        };
        let plan = json!({"urls": [format!("{base}/image.raw")], "disk_format": "raw",
                          "os_hash_algo": "sha256", "os_hash_value": sum});
        std::fs::write(www.join("plan.json"), plan.to_string()).unwrap();
        let target = dir.join("target.img");
        sparse(&target, 4 << 30);
        let console = Boot::new(&dir, &initrd)
            .arg("--mem", 128)
            .arg("--tap", format!("{}:{}", net.srv, net.link))
            .arg("--disk", target.display())
            .arg("--append", format!("rivet.plan={base}/plan.json"))
            .run("reboot: Power down");
        let lines = rivet_lines(&console);
        let written = lines
            .iter()
            .find(|l| l.starts_with("image written:"))
            .unwrap_or_else(|| panic!("no deploy:\n{}", lines.join("\n")))
            .clone();
        let mbps = written
            .split('(')
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .to_string();
        let suite = lines
            .iter()
            .find(|l| l.starts_with("TLS: TLS"))
            .cloned()
            .unwrap_or_else(|| "no TLS".into());
        assert!(files_equal_at(&img, &target, 0, mib << 20));
        rows.push((if https { "https" } else { "http" }, mbps, suite));
        drop(net);
    }
    println!(
        "qemu-stream: {mib} MiB whole-disk image, PID 1 under TCG, 128 MiB RAM, nginx on a tap:"
    );
    for (scheme, mbps, suite) in &rows {
        println!("  {scheme:<5} {mbps:>7} MB/s  {suite}");
    }
    let ratio: f64 = rows[1].1.parse::<f64>().unwrap() / rows[0].1.parse::<f64>().unwrap();
    println!("qemu-stream: https/http ratio {ratio:.2}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The storage controllers QEMU emulates that real machines carry, all in
/// one guest, each with a disk (serial and WWN set, as a SAS or SATA disk
/// reports them), and a VMware vmxnet3 NIC instead of virtio: the `full`
/// class finds a driver for each, the inventory shows each disk's model,
/// serial and WWN, and a standalone deploy goes onto the MegaRAID disk the
/// plan names by serial.
#[test]
fn deploys_through_the_scsi_controllers_and_nic_real_machines_carry() {
    let dir = scratch("qemu-hbas");
    let (_img, sum) = root_image(&dir);
    let target = dir.join("perc.img");
    sparse(&target, 4 << 30);
    // (QEMU controller, its driver, the disk's serial, WWN)
    let hbas = [
        (
            "megasas-gen2",
            "megaraid_sas",
            "perc-0",
            "0x5000c500a1b2c300",
        ),
        ("mptsas1068", "mptsas", "sas1068-0", "0x5000c500a1b2c301"),
        ("lsi53c895a", "sym53c8xx", "sym-0", "0x5000c500a1b2c302"),
        ("pvscsi", "vmw_pvscsi", "pvscsi-0", "0x5000c500a1b2c303"),
        (
            "virtio-scsi-pci",
            "virtio_scsi",
            "vscsi-0",
            "0x5000c500a1b2c304",
        ),
    ];
    let server = Server::start(&dir, &[]);
    write_plan(
        &dir,
        json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
               "urls": [server.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": sum,
               "target_disk": "serial=perc-0"}),
    );
    let mut boot = Boot::new(&dir, &initramfs("full"))
        .arg("--mem", 256)
        .arg("--nic", "vmxnet3");
    for (i, (hba, _, serial, wwn)) in hbas.iter().enumerate() {
        let file = if i == 0 {
            target.clone()
        } else {
            let f = dir.join(format!("{serial}.img"));
            sparse(&f, 64 * MIB);
            f
        };
        boot = qemu_args(
            boot,
            [
                "-device".to_string(),
                format!("{hba},id=hba{i}"),
                "-drive".into(),
                format!("if=none,id=hd{i},format=raw,file={}", file.display()),
                "-device".into(),
                format!("scsi-hd,drive=hd{i},bus=hba{i}.0,serial={serial},wwn={wwn}"),
            ],
        );
    }
    let console = boot
        .arg("--append", server.standalone())
        .run("reboot: Power down");
    let cb = succeeded(
        &dir,
        &target,
        &console,
        &["module", "disk sd", "nic", "target disk"],
    );
    assert_eq!(cb["status"], "succeeded");
    let lines = rivet_lines(&console);
    for (_, driver, serial, wwn) in hbas {
        common::assert_logged(&lines, &format!("module {driver} loaded (for "));
        let disk = lines
            .iter()
            .find(|l| l.starts_with("disk sd") && l.contains(&format!("serial {serial},")))
            .unwrap_or_else(|| panic!("no disk with serial {serial}:\n{}", lines.join("\n")));
        assert!(disk.contains(&format!("wwn {wwn}")), "{disk}");
        assert!(disk.contains("model QEMU HARDDISK"), "{disk}");
    }
    common::assert_logged(&lines, "module vmxnet3 loaded (for pci:");
    common::assert_logged(&lines, "driver vmxnet3");
    let chosen = lines
        .iter()
        .find(|l| l.starts_with("target disk /dev/sd"))
        .unwrap_or_else(|| panic!("{}", lines.join("\n")));
    let perc = lines
        .iter()
        .find(|l| l.contains("serial perc-0,"))
        .and_then(|l| l.strip_prefix("disk ")?.split(':').next())
        .unwrap();
    assert!(
        chosen.starts_with(&format!("target disk /dev/{perc} ")),
        "{chosen}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// SATA and NVMe, the boot disks of most servers, behind a Realtek RTL8139
/// NIC (8139cp/8139too, the `full` class): the plan's hint (`wwn=`) picks
/// the AHCI disk, and the NVMe disk beside it is listed with its serial
/// and left alone.
#[test]
fn deploys_to_an_ahci_disk_chosen_by_wwn_beside_nvme_through_an_rtl8139() {
    let dir = scratch("qemu-ahci");
    let (_img, sum) = root_image(&dir);
    let target = dir.join("sata.img");
    sparse(&target, 4 << 30);
    let nvme = dir.join("nvme.img");
    sparse(&nvme, 5 << 30);
    let server = Server::start(&dir, &[]);
    write_plan(
        &dir,
        json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
               "urls": [server.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": sum,
               "target_disk": "wwn=0x5000c500a1b2c310"}),
    );
    let boot = qemu_args(
        Boot::new(&dir, &initramfs("full")).arg("--nic", "rtl8139"),
        [
            "-device".to_string(),
            "ahci,id=sata".into(),
            "-drive".into(),
            format!("if=none,id=sata0,format=raw,file={}", target.display()),
            "-device".into(),
            "ide-hd,drive=sata0,bus=sata.0,serial=sata-0,wwn=0x5000c500a1b2c310".into(),
            "-drive".into(),
            format!("if=none,id=nvme0,format=raw,file={}", nvme.display()),
            "-device".into(),
            "nvme,drive=nvme0,serial=nvme-0".into(),
        ],
    );
    let console = boot
        .arg("--append", server.standalone())
        .run("reboot: Power down");
    succeeded(
        &dir,
        &target,
        &console,
        &["module", "disk ", "nic", "target disk"],
    );
    let lines = rivet_lines(&console);
    for module in ["ahci", "nvme", "8139"] {
        common::assert_logged(&lines, &format!("module {module}"));
    }
    common::assert_logged(&lines, "carrier up, driver 8139");
    let sata = lines
        .iter()
        .find(|l| l.starts_with("disk sd") && l.contains("serial sata-0,"))
        .unwrap_or_else(|| panic!("no SATA disk:\n{}", lines.join("\n")));
    assert!(sata.contains("wwn 0x5000c500a1b2c310"), "{sata}");
    let name = sata
        .strip_prefix("disk ")
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    common::assert_logged(&lines, &format!("target disk /dev/{name} "));
    common::assert_logged(&lines, "disk nvme0n1: 5368709120 bytes");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("disk nvme0n1") && l.contains("serial nvme-0")),
        "{}",
        lines.join("\n")
    );
    let mut head = vec![0u8; MIB as usize];
    std::io::Read::read_exact(&mut std::fs::File::open(&nvme).unwrap(), &mut head).unwrap();
    assert!(head.iter().all(|&b| b == 0), "the NVMe disk was written");
    let _ = std::fs::remove_dir_all(dir);
}

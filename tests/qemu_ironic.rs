//! Ironic mode in QEMU: rivet PXE-less boots with `ipa-api-url=`, looks
//! itself up at a conductor stand-in (tests/fixtures/conductor.py, speaking
//! what ironic 39's agent_client.py and agent_base.py send), heartbeats,
//! and is driven through its agent API (QEMU forwards a host port to 9999):
//! a partition-image deploy, a whole-disk deploy, and cleaning. Judged by
//! what the stand-in recorded and by the disk files afterwards.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 90 s (10 guests).

mod common;
use common::disk::{blkid_at, files_equal_at, mkfs_image, sha256_file, sparse, MIB};
use common::ironic::{first_line_with, record, session, Conductor, Https, MAC};
use common::netns::Net;
use common::tls::TestCa;
use common::{assert_logged, rivet_lines, scratch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Lookup, heartbeats and the power-off every session shares.
fn assert_protocol(record: &Value) {
    let lookup = &record["lookups"][0];
    assert_eq!(lookup["version"], "1.62");
    assert!(
        lookup["addresses"]
            .as_array()
            .unwrap()
            .contains(&json!(MAC)),
        "{lookup}"
    );
    let beats = record["heartbeats"].as_array().unwrap();
    assert!(!beats.is_empty());
    for hb in beats {
        assert_eq!(hb["refused"], Value::Null, "{hb}");
        assert_eq!(hb["version"], "1.68");
        // Auto-TLS, as a stock conductor (require_tls=True) insists.
        assert_eq!(hb["body"]["callback_url"], "https://10.0.2.15:9999");
        assert!(
            hb["body"]["agent_verify_ca"]
                .as_str()
                .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")),
            "{hb}"
        );
        assert_eq!(hb["body"]["agent_token"].as_str().map(str::len), Some(43));
        assert_eq!(hb["body"]["agent_version"], env!("CARGO_PKG_VERSION"));
    }
    assert_eq!(record["power_off"]["command_name"], "power_off");
    // Every command went over TLS 1.3, verified against agent_verify_ca
    // with the advertised IP as the name.
    let versions = record["tls_versions"].as_array().unwrap();
    assert!(!versions.is_empty());
    assert!(versions.iter().all(|v| v == "TLSv1.3"), "{versions:?}");
}

fn root_image(dir: &Path) -> (PathBuf, String) {
    let img = mkfs_image(dir, "ext4", 48, "ironic-root");
    let path = dir.join("root.img");
    std::fs::rename(&img, &path).unwrap();
    let sum = sha256_file(&path);
    (path, sum)
}

#[test]
fn conductor_deploys_a_partition_image_and_refusals_leave_the_agent_serving() {
    let dir = scratch("ironic-partition");
    let (img, sum) = root_image(&dir);
    let decoy = dir.join("decoy.img");
    sparse(&decoy, 4 << 30);
    common::disk::write_at(&decoy, 0, b"decoy disk: must stay as it is");
    let decoy_sum = sha256_file(&decoy);
    let target = dir.join("target.img");
    sparse(&target, 5 << 30);
    // What ironic's AgentDeploy.write_image sends for a partition image.
    let info = json!({"id": "5f3c8a1e-image", "urls": ["root.img"], "disk_format": "raw", "container_format": "bare",
        "stream_raw_images": true, "node_uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
        "os_hash_algo": "sha256", "os_hash_value": sum, "image_type": "partition",
        "root_gb": 0, "root_mb": 64, "swap_mb": 16, "ephemeral_mb": 0, "ephemeral_format": null,
        "preserve_ephemeral": false, "configdrive": null, "deploy_boot_mode": "bios", "boot_option": "local"});
    // Throttled so the stream outlasts a heartbeat interval (4 s × 0.3–0.6).
    // The API and the image over HTTPS, verified against the bundle the
    // initramfs carries.
    let https = Https::new(&dir);
    let (record, console) = session(
        &dir,
        "deploy",
        Some(info),
        &[&decoy, &target],
        &["--root-device", "/dev/vdb", "--throttle", "6"],
        &[],
        Some(&https),
    );
    assert_protocol(&record);
    let lines = rivet_lines(&console);
    assert_logged(
        &lines,
        "TLS: 1 CA trust anchors from /etc/ssl/certs/rivet-trust-anchors",
    );
    assert_logged(&lines, "heartbeat accepted by https://10.0.2.2:");

    let r = &record["refusals"];
    let token_refusal =
        json!([401, {"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."}]);
    assert_eq!(r["missing_token"], token_refusal);
    assert_eq!(r["wrong_token"], token_refusal);
    assert_eq!(r["malformed_json"][0], 400);
    assert!(
        r["malformed_json"][1]["faultstring"]
            .as_str()
            .unwrap()
            .starts_with("400 Bad Request: Failed to decode JSON object"),
        "{r}"
    );
    assert_eq!(
        r["no_params"],
        json!([400, {"faultcode": "Client", "faultstring": "400 Bad Request: Missing or invalid name or params"}])
    );
    assert_eq!(
        r["unknown_command"],
        json!([400, {"faultcode": "Client", "faultstring": "Invalid command: Unknown command: teleport"}])
    );
    assert_eq!(r["unknown_extension"][0], 404);
    assert_eq!(r["oversized"][0], 413, "{}", r["oversized"]);
    assert_eq!(
        r["large_command"],
        json!([400, {"faultcode": "Client", "faultstring": "400 Bad Request: Missing or invalid name or params"}]),
        "a 2 MiB command body with the token is read"
    );
    assert_eq!(r["status"][1]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["root"][1]["default_version"]["id"], "v1");
    assert_eq!(
        r["commands_after"],
        json!([200, {"commands": []}]),
        "refusals leave no record"
    );
    assert_eq!(
        r["busy"],
        json!([409, {"faultcode": "Client", "faultstring": "Agent is busy: executing command execute_deploy_step"}])
    );

    assert!(
        record["running_seen_at_heartbeat"].as_u64().unwrap() >= 1,
        "heartbeats continue while the image streams: {:?}",
        record["heartbeats"]
    );
    let write = &record["write_image"];
    assert_eq!(write["command_status"], "SUCCEEDED", "{write}");
    let root_uuid = blkid_at(&target, 17 * MIB)["UUID"].clone();
    assert_eq!(
        write["command_result"]["deploy_result"]["result"],
        format!("prepare_image: image (5f3c8a1e-image) written to device /dev/vdb root_uuid={root_uuid}")
    );
    let uuids = &record["partition_uuids"];
    assert_eq!(uuids["root uuid"], root_uuid.as_str());
    assert_eq!(
        uuids["partitions"],
        json!({"swap": "/dev/vdb1", "root": "/dev/vdb2"})
    );
    assert!(files_equal_at(&img, &target, 17 * MIB, 48 * MIB));
    assert_eq!(blkid_at(&target, MIB)["TYPE"], "swap");
    assert_eq!(
        sha256_file(&decoy),
        decoy_sum,
        "the disk the hint did not name is untouched"
    );

    let boot = &record["install_bootloader"];
    assert_eq!(boot["command_status"], "FAILED");
    assert!(
        boot["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("partition image"),
        "{boot}"
    );
    let logs = &record["logs"];
    assert!(
        logs["names"]
            .as_array()
            .unwrap()
            .contains(&json!("rivet.log")),
        "{logs}"
    );
    assert!(
        logs["rivet.log"]
            .as_str()
            .unwrap()
            .contains("command image.install_bootloader"),
        "{logs}"
    );
    assert!(rivet_lines(&console)
        .iter()
        .any(|l| l.contains("poweroff requested by the conductor")));
    let _ = std::fs::remove_dir_all(dir);
}

/// devstack, Bifrost and metal3-dev-env run Ironic next to its VMs: the
/// machine's NIC on a tap with QEMU's default virtio-net offloads. The
/// host's TCP and UDP then reach the guest with partial checksums, and
/// virtio would merge segments into frames past the MTU unless rivet turns
/// that off. DHCP (dnsmasq), lookup, heartbeats, the agent API and the image
/// download must all go through.
#[test]
fn a_conductor_on_the_same_host_reaches_rivet_over_a_tap_with_default_offloads() {
    let (lines, callback_urls, net) = deploy_through_a_conductor_on_a_tap(61, false);
    for url in callback_urls {
        assert!(
            url.starts_with("https://10.77.61.1") && url.ends_with(":9999"),
            "{url}"
        );
    }
    assert_logged(&lines, "DHCP: 10.77.61.1");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("wrong TCP/UDP checksum") || l.contains("larger than the ring")),
        "every frame was taken whole:\n{}",
        lines.join("\n")
    );
    drop(net);
}

/// IPv6 only, as Metal3 provisions when Ironic's address is IPv6: dnsmasq
/// sends router advertisements and leases addresses by DHCPv6; the
/// conductor listens on IPv6 only. Lookup, heartbeats (the callback URL
/// bracketed), the agent API over TLS and the image download all go over
/// IPv6.
#[test]
fn a_conductor_on_ipv6_only_looks_up_and_deploys_rivet() {
    let (lines, callback_urls, net) = deploy_through_a_conductor_on_a_tap(67, true);
    for url in callback_urls {
        assert!(
            url.starts_with("https://[fd00:77:67::1") && url.ends_with("]:9999"),
            "{url}"
        );
    }
    assert_logged(&lines, "DHCPv6: fd00:77:67::1");
    assert!(
        !lines.iter().any(|l| l.starts_with("DHCP: ")),
        "no IPv4 here:\n{}",
        lines.join("\n")
    );
    for l in lines
        .iter()
        .filter(|l| l.contains("IPv6") || l.contains("network up") || l.contains("agent API"))
    {
        eprintln!("{l}");
    }
    drop(net);
}

/// A partition image deployed by the conductor stand-in next to the
/// machine's tap (`n`: the namespace's number), over IPv6 only if `ipv6`;
/// returns rivet's console lines, the heartbeats' callback URLs, and the
/// network (kept until the caller is done).
fn deploy_through_a_conductor_on_a_tap(n: u8, ipv6: bool) -> (Vec<String>, Vec<String>, Net) {
    let dir = scratch(&format!("ironic-tap{n}"));
    let mut net = Net::with_tap(n, &dir);
    if ipv6 {
        net.ipv6();
        net.dhcp6(true);
    } else {
        net.dhcp();
    }
    let (img, sum) = root_image(&dir);
    let target = dir.join("target.img");
    sparse(&target, 5 << 30);
    let info = json!({"id": "tap-image", "urls": ["root.img"], "disk_format": "raw", "container_format": "bare",
        "os_hash_algo": "sha256", "os_hash_value": sum, "image_type": "partition",
        "root_mb": 64, "swap_mb": 0, "ephemeral_mb": 0, "preserve_ephemeral": false,
        "configdrive": null, "deploy_boot_mode": "bios", "boot_option": "local"});
    let conductor = Conductor::start_on_tap(&dir, &net, "deploy", info, &[]);
    let console = conductor
        .boot(&dir, &[&target], "")
        .run("reboot: Power down");
    let record = record(&dir);
    assert_eq!(record["errors"], json!([]), "{record:#}\n{console}");
    assert_eq!(record["done"], true, "{record:#}");
    assert!(!record["lookups"].as_array().unwrap().is_empty());
    let beats = record["heartbeats"].as_array().unwrap();
    assert!(!beats.is_empty());
    let mut urls = Vec::new();
    for hb in beats {
        assert_eq!(hb["refused"], Value::Null, "{hb}");
        urls.push(hb["body"]["callback_url"].as_str().unwrap().to_string());
    }
    let write = &record["write_image"];
    assert_eq!(write["command_status"], "SUCCEEDED", "{write}");
    // Root is the only partition: it starts at 1 MiB.
    assert!(files_equal_at(&img, &target, MIB, 48 * MIB));
    (rivet_lines(&console), urls, net)
}

/// The project's GPT whole-disk image, a 4 GiB target, and the image_info
/// ironic sends for it (whole-disk images carry no image_type).
fn whole_disk(dir: &Path, boot_mode: &str) -> (PathBuf, PathBuf, Value) {
    let img = common::disk::gpt_whole_disk_image(dir);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let info = json!({"id": "whole-1", "urls": ["whole.img"], "disk_format": "raw", "container_format": "bare",
        "stream_raw_images": true, "node_uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
        "checksum": sha256_file(&img), "deploy_boot_mode": boot_mode});
    (img, target, info)
}

#[test]
fn conductor_deploys_a_whole_disk_image_then_cleaning_erases_it() {
    let dir = scratch("ironic-whole");
    // A UEFI node makes the conductor call install_bootloader.
    let (img, target, info) = whole_disk(&dir, "uefi");
    let (record, _) = session(&dir, "deploy", Some(info), &[&target], &[], &[], None);
    assert_protocol(&record);
    assert_eq!(
        record["write_image"]["command_status"], "SUCCEEDED",
        "{}",
        record["write_image"]
    );
    let sig = common::disk::read_at(&target, 440, 4);
    let disk_id = format!("0x{:08x}", u32::from_le_bytes(sig.try_into().unwrap()));
    assert_eq!(record["partition_uuids"], json!({"root uuid": disk_id}));
    // The image brings its own boot loader; this guest's firmware is BIOS.
    let boot = &record["install_bootloader"];
    assert_eq!(boot["command_status"], "SUCCEEDED", "{boot}");
    assert_eq!(boot["command_error"], Value::Null);
    // The partition's bytes are the image's (its GPT header was rewritten
    // to put the backup table at the disk's end).
    let read = |f: &Path| common::disk::read_at(f, MIB, (40 * MIB) as usize);
    assert!(read(&img) == read(&target));
    assert_eq!(blkid_at(&target, MIB)["LABEL"], "whole-root");
    common::disk::assert_sgdisk_clean(&target);

    // Automated cleaning on the same machine: the metadata is gone after.
    let clean_dir = dir.join("clean");
    std::fs::create_dir_all(&clean_dir).unwrap();
    let (record, _) = session(&clean_dir, "clean", None, &[&target], &[], &[], None);
    assert_protocol(&record);
    assert_eq!(record["clean_steps"][0]["step"], "erase_devices_metadata");
    assert_eq!(record["clean_steps"][0]["priority"], 99);
    let clean = &record["clean"];
    assert_eq!(clean["command_status"], "SUCCEEDED", "{clean}");
    assert_eq!(
        clean["command_result"]["clean_step"]["step"],
        "erase_devices_metadata"
    );
    let out = common::disk::run("sfdisk", &["--dump", target.to_str().unwrap()]);
    assert!(!out.status.success(), "no partition table is left");
    assert!(
        blkid_at(&target, MIB).is_empty(),
        "no filesystem signature where the root was"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// UEFI end to end: rivet runs under OVMF, the conductor deploys a
/// whole-disk image whose ESP carries a shim-style BOOTX64.CSV, and
/// install_bootloader writes the firmware entry (iPXE stands in for the
/// image's loader). Then the machine is
/// started again with the same variable store and no kernel: the judge is
/// OVMF itself, which must load and start the entry rivet wrote.
#[test]
fn uefi_whole_disk_deploy_writes_the_boot_entry_the_firmware_boots() {
    let dir = scratch("ironic-uefi");
    // iPXE's EFI build: a real loader that says on the console that it runs.
    let loader = Path::new("/usr/lib/ipxe/ipxe.efi");
    let (img, esp_partuuid) = common::disk::uefi_whole_disk_image(&dir, loader);
    let sum = sha256_file(&img);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
    let info = json!({"id": "uefi-1", "urls": ["uefi-whole.img"], "disk_format": "raw",
        "container_format": "bare", "stream_raw_images": true,
        "node_uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "checksum": sum, "deploy_boot_mode": "uefi"});
    // OVMF (with the kernel's EFI stub) needs more than the 128 MiB rivet does.
    let uefi = [
        ("--uefi", vars.display().to_string()),
        ("--mem", "192".into()),
    ];

    // First an image with no ESP: install_bootloader fails as the real
    // agent's does, and the firmware's variables are left alone.
    let no_esp_dir = dir.join("no-esp");
    std::fs::create_dir_all(&no_esp_dir).unwrap();
    let plain = common::disk::gpt_whole_disk_image(&no_esp_dir);
    std::fs::rename(&plain, no_esp_dir.join("uefi-whole.img")).unwrap();
    let mut no_esp_info = info.clone();
    no_esp_info["checksum"] = json!(sha256_file(&no_esp_dir.join("uefi-whole.img")));
    let (record, _) = session(
        &no_esp_dir,
        "deploy",
        Some(no_esp_info),
        &[&target],
        &[],
        &uefi,
        None,
    );
    let boot = &record["install_bootloader"];
    assert_eq!(boot["command_status"], "FAILED", "{boot}");
    assert_eq!(boot["command_error"]["type"], "DeviceNotFound", "{boot}");
    assert!(
        boot["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("No EFI partition could be detected on device /dev/vda"),
        "{boot}"
    );
    assert!(record["logs"]["rivet.log"]
        .as_str()
        .unwrap()
        .contains("No EFI partition"));
    let label: Vec<u8> = "rivet-test"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let has_label = |store: &[u8]| store.windows(label.len()).any(|w| w == label);
    assert!(
        !has_label(&std::fs::read(&vars).unwrap()),
        "no entry was written"
    );

    let (record, console) = session(&dir, "deploy", Some(info), &[&target], &[], &uefi, None);
    assert_protocol(&record);
    assert_eq!(
        record["write_image"]["command_status"], "SUCCEEDED",
        "{}",
        record["write_image"]
    );
    let boot = &record["install_bootloader"];
    assert_eq!(boot["command_status"], "SUCCEEDED", "{boot}");
    let lines = rivet_lines(&console);
    common::assert_logged(&lines, "efivarfs mounted on /sys/firmware/efi/efivars");
    let written = format!(
        "'rivet-test': HD(1,GPT,{esp_partuuid},0x800,0x14000)/File(\\EFI\\rivet\\ipxe.efi)"
    );
    common::assert_logged(&lines, &written);
    assert!(
        has_label(&std::fs::read(&vars).unwrap()),
        "the entry is in OVMF's store"
    );

    // Power on again: the firmware must pick rivet's entry (first in
    // BootOrder) over the disk's removable-media path, and start the kernel.
    let firmware = common::uefi::boot_from_disk(
        &dir.join("firmware"),
        &vars,
        &target,
        192,
        180,
        "iPXE initialising|BdsDxe: failed",
    );
    let loading = first_line_with(&firmware, "BdsDxe: loading Boot");
    assert!(
        loading.contains("\"rivet-test\"")
            && loading
                .to_lowercase()
                .contains(&format!("hd(1,gpt,{esp_partuuid},0x800,0x14000)"))
            && loading.contains("\\EFI\\rivet\\ipxe.efi"),
        "the firmware's first choice: {loading}\n{firmware}"
    );
    assert!(
        firmware.contains("BdsDxe: starting Boot") && firmware.contains("iPXE initialising"),
        "the entry's loader did not start:\n{firmware}"
    );

    // Manual cleaning with clean_uefi_nvram and its default patterns
    // (issue 31): rivet's entry goes, the firmware's own (its network and
    // shell entries) stay; read and deleted through efivarfs in OVMF.
    let clean_dir = dir.join("clean-nvram");
    std::fs::create_dir_all(&clean_dir).unwrap();
    let extra = ["--clean-step", "clean_uefi_nvram"];
    let (record, console) = session(&clean_dir, "clean", None, &[&target], &extra, &uefi, None);
    let clean = &record["clean"];
    assert_eq!(clean["command_status"], "SUCCEEDED", "{clean}");
    let lines = rivet_lines(&console);
    let removed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("clean_uefi_nvram: removed"))
        .collect();
    assert!(
        removed
            .iter()
            .any(|l| l.contains("\"rivet-test\" HD(1,GPT,")),
        "{lines:#?}"
    );
    assert!(
        removed
            .iter()
            .all(|l| l.contains(" HD(") || l.contains("shim") || l.contains("grub")),
        "only what the default patterns name: {removed:#?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Boots against a conductor that refuses the agent's heartbeats; stops
/// once rivet has logged the refusal. Returns the record and rivet's lines.
fn refused(dir: &Path, conductor_extra: &[&str], append: &str) -> (Value, Vec<String>) {
    let conductor = Conductor::start(dir, "deploy", None, conductor_extra, None);
    let console = conductor
        .boot(dir, &[], append)
        .arg("--until", "heartbeat refused")
        .run("heartbeat refused \\(400\\)");
    (record(dir), rivet_lines(&console))
}

#[test]
fn a_stock_conductor_refuses_a_plain_http_callback_and_rivet_says_why() {
    let dir = scratch("ironic-http-refused");
    let (record, lines) = refused(&dir, &[], "ipa-advertise-protocol=http");
    let hb = &record["heartbeats"][0];
    assert_eq!(hb["body"]["callback_url"], "http://10.0.2.15:9999");
    assert_eq!(hb["refused"], "TLS is required by configuration");
    assert_logged(
        &lines,
        "heartbeat refused (400): TLS is required by configuration (the conductor requires TLS: drop ipa-advertise-protocol=http",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_conductor_holding_an_earlier_agents_certificate_refuses_and_rivet_says_why() {
    let dir = scratch("ironic-old-cert");
    // The certificate an earlier agent on this node sent (any other key).
    let old = TestCa::new(&dir, "earlier-agent");
    let (record, lines) = refused(
        &dir,
        &[
            "--stored-verify-ca",
            old.pem.to_str().unwrap(),
            "--stored-agent-url",
            "https://10.0.2.15:9999",
        ],
        "",
    );
    let hb = &record["heartbeats"][0];
    assert_eq!(hb["body"]["callback_url"], "https://10.0.2.15:9999");
    let sent = hb["body"]["agent_verify_ca"].as_str().unwrap();
    assert!(sent.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_ne!(
        sent.trim(),
        std::fs::read_to_string(&old.pem).unwrap().trim()
    );
    assert_eq!(
        hb["refused"],
        "Detected change in ramdisk provided \"agent_verify_ca\""
    );
    // The conductor's side: talking to the agent with the PEM it holds
    // fails the TLS check.
    let call = record["old_pem_call"].to_string();
    assert!(call.contains("CERTIFICATE_VERIFY_FAILED"), "{call}");
    assert_logged(
        &lines,
        "heartbeat refused (400): Detected change in ramdisk provided \"agent_verify_ca\" (the conductor holds the certificate of an earlier agent",
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A disk image of `mib` MiB filled with a non-zero pattern.
fn patterned(dir: &Path, name: &str, mib: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    let chunk: Vec<u8> = (0..MIB as usize).map(|i| (i % 251) as u8 | 1).collect();
    let mut data = Vec::with_capacity(mib * MIB as usize);
    for _ in 0..mib {
        data.extend_from_slice(&chunk);
    }
    std::fs::write(&path, data).unwrap();
    path
}

fn all_zero(path: &Path) -> bool {
    std::fs::read(path).unwrap().iter().all(|&b| b == 0)
}

/// Cleaning's erase_devices on a virtio disk, an NVMe disk and an AHCI
/// (SATA) disk, two at a time; a disk skip_block_devices names and a
/// read-only disk (agent_erase_skip_read_only) are left as they were.
#[test]
fn erase_devices_erases_virtio_nvme_and_sata_disks_and_spares_the_rest() {
    let dir = scratch("erase-devices");
    let virtio = patterned(&dir, "virtio.img", 160);
    let nvme = patterned(&dir, "nvme.img", 48);
    let sata = patterned(&dir, "sata.img", 160);
    let kept = patterned(&dir, "kept.img", 8);
    let ro = patterned(&dir, "ro.img", 8);
    let node = json!({
        "driver_internal_info": {"agent_erase_devices_iterations": 1, "agent_erase_devices_zeroize": true,
                                 "disk_erasure_concurrency": 2, "agent_erase_skip_read_only": true},
        "properties": {"skip_block_devices": [{"serial": "keepme"}]}});
    let node_json = node.to_string();
    let mut conductor = Conductor::start(
        &dir,
        "clean",
        None,
        &["--clean-step", "erase_devices", "--node-json", &node_json],
        None,
    );
    conductor.initrd = common::initramfs("default");
    let qemu_args = [
        format!("-drive file={},if=none,id=nv0,format=raw -device nvme,serial=rivetnvme,drive=nv0", nvme.display()),
        format!("-device ahci,id=ahci0 -drive file={},if=none,id=sata0,format=raw -device ide-hd,drive=sata0,bus=ahci0.0", sata.display()),
        format!("-drive file={},if=none,id=ro0,format=raw,readonly=on -device virtio-blk-pci,drive=ro0,serial=rodisk", ro.display()),
    ];
    let mut boot = conductor
        .boot(&dir, &[&virtio], "")
        .arg("--disk", format!("{},serial=keepme", kept.display()))
        .arg("--timeout", 600);
    for token in qemu_args.iter().flat_map(|a| a.split_whitespace()) {
        boot = boot.arg("--qemu-arg", token);
    }
    let console = boot.run("reboot: Power down");
    let record = common::ironic::finished_record(&dir);
    let clean = &record["clean"];
    assert_eq!(clean["command_status"], "SUCCEEDED", "{clean:#}");
    let erased = clean["command_result"]["clean_result"].as_object().unwrap();
    let mut names: Vec<&str> = erased.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["/dev/nvme0n1", "/dev/sda", "/dev/vda"], "{clean:#}");
    for (disk, what) in [(&virtio, "virtio"), (&nvme, "NVMe"), (&sata, "SATA")] {
        assert!(all_zero(disk), "{what} disk not all zero");
    }
    let pattern = patterned(&dir, "pattern.img", 8);
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        std::fs::read(&pattern).unwrap(),
        "skipped disk changed"
    );
    assert_eq!(
        std::fs::read(&ro).unwrap(),
        std::fs::read(&pattern).unwrap(),
        "read-only disk changed"
    );
    let lines = rivet_lines(&console);
    assert_logged(&lines, "/dev/nvme0n1: Format NVM done");
    assert_logged(&lines, "skipping read-only /dev/vdc");
    assert_logged(&lines, "skip_block_devices");
    assert_logged(&lines, "read back zero");
    // Two at a time: two disks started before the first finished.
    let first_done = lines.iter().position(|l| l.contains(": done (")).unwrap();
    let started = lines[..first_done]
        .iter()
        .filter(|l| l.ends_with(": started"))
        .count();
    assert_eq!(started, 2, "{}", lines.join("\n"));
    // The conductor saw progress in the running command's result.
    assert!(
        record["progress_seen"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{record:#}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Without agent_erase_skip_read_only, a read-only disk fails the step
/// before any disk is erased, as in the real agent.
#[test]
fn erase_devices_fails_on_a_read_only_disk_before_erasing_anything() {
    let dir = scratch("erase-ro");
    let disk = patterned(&dir, "disk.img", 8);
    let ro = patterned(&dir, "ro.img", 8);
    let mut conductor = Conductor::start(
        &dir,
        "clean",
        None,
        &["--clean-step", "erase_devices"],
        None,
    );
    conductor.initrd = common::initramfs("default");
    let mut boot = conductor.boot(&dir, &[&disk], "");
    let ro_drive = format!(
        "file={},if=none,id=ro0,format=raw,readonly=on",
        ro.display()
    );
    for token in ["-drive", &ro_drive, "-device", "virtio-blk-pci,drive=ro0"] {
        boot = boot.arg("--qemu-arg", token);
    }
    boot.run("reboot: Power down");
    let record = common::ironic::finished_record(&dir);
    let clean = &record["clean"];
    assert_eq!(clean["command_status"], "FAILED", "{clean:#}");
    assert_eq!(clean["command_error"]["type"], "BlockDeviceEraseError");
    let details = clean["command_error"]["details"].as_str().unwrap();
    assert!(
        details.contains("/dev/vdb: the device is read-only"),
        "{details}"
    );
    let pattern = patterned(&dir, "pattern.img", 8);
    assert_eq!(
        std::fs::read(&disk).unwrap(),
        std::fs::read(&pattern).unwrap(),
        "erased anyway"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// erase_devices_express: Format NVM on the NVMe disk, the metadata wipe
/// on the other (its partition table and filesystem signatures go, the
/// rest of it stays).
#[test]
fn erase_devices_express_formats_nvme_and_wipes_metadata_elsewhere() {
    let dir = scratch("erase-express");
    let nvme = patterned(&dir, "nvme.img", 16);
    let disk = common::disk::gpt_whole_disk_image(&dir);
    let before = std::fs::read(&disk).unwrap();
    let mut conductor = Conductor::start(
        &dir,
        "clean",
        None,
        &["--clean-step", "erase_devices_express"],
        None,
    );
    conductor.initrd = common::initramfs("default");
    let nvme_drive = format!("file={},if=none,id=nv0,format=raw", nvme.display());
    let mut boot = conductor.boot(&dir, &[&disk], "");
    for token in [
        "-drive",
        &nvme_drive,
        "-device",
        "nvme,serial=rivetnvme,drive=nv0",
    ] {
        boot = boot.arg("--qemu-arg", token);
    }
    let console = boot.run("reboot: Power down");
    let record = common::ironic::finished_record(&dir);
    let clean = &record["clean"];
    assert_eq!(clean["command_status"], "SUCCEEDED", "{clean:#}");
    assert!(all_zero(&nvme), "NVMe disk not formatted");
    let after = std::fs::read(&disk).unwrap();
    assert!(after[..1 << 20].iter().all(|&b| b == 0), "the GPT is gone");
    let out = common::disk::run("blkid", &["-p", "-o", "export", disk.to_str().unwrap()]);
    let probe = String::from_utf8_lossy(&out.stdout);
    assert!(
        !probe.contains("PTTYPE"),
        "a partition table is left: {probe}"
    );
    assert_ne!(after, before);
    assert!(
        after != vec![0u8; after.len()],
        "a metadata wipe, not an overwrite"
    );
    assert_logged(&rivet_lines(&console), "/dev/nvme0n1: Format NVM done");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 31: a node with disable_power_off (Metal3's disablePowerOff,
/// NC-SI hardware): at the end of the deploy the conductor sends
/// standby.sync and system.lockdown instead of power_off, then polls until
/// the agent is unreachable. rivet answers, closes its API, stops its
/// heartbeats, takes its links down, and stays up: no power-off.
#[test]
fn a_lockdown_closes_the_api_stops_heartbeats_and_keeps_the_node_up() {
    let dir = scratch("ironic-lockdown");
    let (img, target, info) = whole_disk(&dir, "bios");
    let conductor = Conductor::start(&dir, "deploy", Some(info), &["--lockdown"], None);
    let done = || {
        std::fs::read(dir.join("conductor.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|r| {
                r["done"] == true || r["errors"].as_array().is_some_and(|e| !e.is_empty())
            })
    };
    let console = conductor.boot(&dir, &[&target], "").run_until(done);
    let record = common::ironic::finished_record(&dir);
    let lockdown = &record["lockdown"];
    assert_eq!(lockdown["command_name"], "lockdown", "{lockdown}");
    assert_ne!(lockdown["command_status"], "FAILED", "{lockdown}");
    let closed = record["api_closed_after_s"].as_f64().unwrap();
    assert!(
        closed < 10.0,
        "the API answered for {closed} s after the lockdown"
    );
    eprintln!(
        "lockdown: API unreachable {closed} s after, {}",
        record["api_closed_with"]
    );
    assert_eq!(record["heartbeats_after_lockdown"], 0, "{record:#}");
    assert_eq!(record["power_off"], Value::Null);
    let lines = rivet_lines(&console);
    assert_logged(
        &lines,
        "locked down by the conductor: agent API closed, heartbeats stopped, every link down",
    );
    assert!(
        !console.contains("reboot: Power down"),
        "the node powered off"
    );
    let read = |f: &Path| common::disk::read_at(f, MIB, (40 * MIB) as usize);
    assert!(read(&img) == read(&target), "the image was written before");
    let _ = std::fs::remove_dir_all(dir);
}

/// Servicing (issue 31): an active node re-imaged through service steps —
/// the stand-in asks service.get_service_steps and runs write_image with
/// service.execute_service_step onto a disk holding another image; the
/// result comes back under service_result and service_step.
#[test]
fn servicing_reimages_an_active_node() {
    let dir = scratch("ironic-service");
    let (img, target, info) = whole_disk(&dir, "bios");
    // The instance it replaces: another filesystem where the root will go.
    let old = mkfs_image(&dir, "ext4", 8, "old-instance");
    common::disk::write_at(&target, MIB, &std::fs::read(&old).unwrap());
    assert_eq!(blkid_at(&target, MIB)["LABEL"], "old-instance");
    let (record, _) = session(
        &dir,
        "deploy",
        Some(info),
        &[&target],
        &["--service"],
        &[],
        None,
    );
    assert_protocol(&record);
    let offered: Vec<&str> = record["steps_offered"]["RivetHardwareManager"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    // The real agent's service steps: no disk burn-in, which would destroy
    // the node's data; software RAID's apply_configuration (issue 32).
    assert_eq!(
        offered,
        [
            "burnin_cpu",
            "burnin_memory",
            "burnin_network",
            "write_image",
            "inject_files",
            "apply_configuration"
        ]
    );
    let written = &record["write_image"];
    assert_eq!(written["command_name"], "execute_service_step", "{written}");
    assert_eq!(written["command_status"], "SUCCEEDED", "{written}");
    assert!(
        written["command_result"]["service_result"]["result"]
            .as_str()
            .is_some_and(
                |r| r.starts_with("prepare_image: image (whole-1) written to device /dev/vda")
            ),
        "{written}"
    );
    let read = |f: &Path| common::disk::read_at(f, MIB, (40 * MIB) as usize);
    assert!(
        read(&img) == read(&target),
        "the new image replaced the old"
    );
    assert_eq!(blkid_at(&target, MIB)["LABEL"], "whole-root");
    let _ = std::fs::remove_dir_all(dir);
}

/// inject_files (issue 31) after a partition-image deploy, as a deploy
/// template asks for it: a new file in a new directory (mode, owner,
/// group, the leaf directory's mode), a file fetched by a URL filled in
/// from the node, a file replaced, one deleted, one by partition number
/// in the filesystem's root. Judged by e2fsck and debugfs on the disk.
#[test]
fn inject_files_writes_into_the_deployed_ext4() {
    let dir = scratch("ironic-inject");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc/ssh")).unwrap();
    std::fs::create_dir_all(tree.join("root")).unwrap();
    std::fs::write(tree.join("etc/hostname"), "image\n").unwrap();
    std::fs::write(tree.join("etc/ssh/banner"), "old banner\n").unwrap();
    let img = dir.join("root.img");
    common::disk::ok(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "ironic-root",
            "-d",
            tree.to_str().unwrap(),
            img.to_str().unwrap(),
            "48M",
        ],
    );
    let sum = sha256_file(&img);
    let node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";
    std::fs::write(
        dir.join(format!("{node}.keys")),
        "ssh-ed25519 AAAA rivet@test\n",
    )
    .unwrap();
    let target = dir.join("target.img");
    sparse(&target, 5 << 30);
    let info = json!({"id": "inject-image", "urls": ["root.img"], "disk_format": "raw", "container_format": "bare",
        "os_hash_algo": "sha256", "os_hash_value": sum, "image_type": "partition",
        "root_mb": 64, "swap_mb": 0, "ephemeral_mb": 0, "preserve_ephemeral": false,
        "configdrive": null, "deploy_boot_mode": "bios", "boot_option": "local"});
    // @API@: the stand-in's own address, as the guest reaches it.
    let files = json!([
        {"path": "/etc/rivet/injected.conf", "content": "aW5qZWN0ZWQgYnkgcml2ZXQK",
         "mode": 0o600, "owner": 1000, "group": 1000, "dirmode": 0o700},
        {"path": "/root/.ssh/authorized_keys", "content": "@API@/images/{node[uuid]}.keys", "mode": 0o600},
        {"path": "/etc/ssh/banner", "content": "bmV3IGJhbm5lcgo="},
        {"path": "/etc/hostname", "deleted": true},
        {"path": "/motd", "partition": 1, "content": "aGVsbG8K"},
    ]);
    let conductor = Conductor::start(
        &dir,
        "deploy",
        Some(info),
        &["--inject-files", &files.to_string()],
        None,
    );
    let console = conductor
        .boot(&dir, &[&target], "")
        .run("reboot: Power down");
    let record = common::ironic::finished_record(&dir);
    let inject = &record["inject_files"];
    assert_eq!(
        inject["command_status"], "SUCCEEDED",
        "{inject:#}\n{console}"
    );
    assert_eq!(
        inject["command_result"]["deploy_step"]["step"],
        "inject_files"
    );
    // The root filesystem, as written: partition 1 at 1 MiB.
    let root = dir.join("root-after.img");
    std::fs::write(
        &root,
        common::disk::read_at(&target, MIB, (48 * MIB) as usize),
    )
    .unwrap();
    common::disk::ok("e2fsck", &["-fn", root.to_str().unwrap()]);
    let debugfs =
        |request: &str| common::disk::ok("debugfs", &["-R", request, root.to_str().unwrap()]);
    assert_eq!(
        debugfs("cat /etc/rivet/injected.conf"),
        "injected by rivet\n"
    );
    let stat = debugfs("stat /etc/rivet/injected.conf");
    assert!(
        stat.contains("Mode:  0600")
            && stat.contains("User:  1000")
            && stat.contains("Group:  1000"),
        "{stat}"
    );
    assert!(debugfs("stat /etc/rivet").contains("Mode:  0700"));
    assert_eq!(
        debugfs("cat /root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA rivet@test\n"
    );
    assert_eq!(debugfs("cat /etc/ssh/banner"), "new banner\n");
    assert_eq!(debugfs("cat /motd"), "hello\n");
    assert!(!debugfs("ls /etc").contains("hostname"));
    let lines = rivet_lines(&console);
    assert_logged(
        &lines,
        "inject_files: /root/.ssh/authorized_keys from http://10.0.2.2:",
    );
    assert_logged(&lines, "inject_files: /etc/hostname deleted");
    let _ = std::fs::remove_dir_all(dir);
}

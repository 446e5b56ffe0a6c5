//! Inspection and fast track in QEMU, as Metal3 runs a BareMetalHost: one
//! boot of rivet is inspected, cleaned and deployed. The machine has real
//! DMI (SeaBIOS with `-smbios`), a virtio disk and an AHCI SSD, its boot NIC
//! on a tap next to the conductor stand-in (which also plays the switch and
//! sends LLDP into the tap) and a second NIC on QEMU's user network. The
//! stand-in validates what it receives as Ironic's schema, hooks and
//! Metal3's Go types would.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 90 s (2 guests).

mod common;
use common::disk::{files_equal_at, mkfs_image, sha256_file, sparse, MIB};
use common::ironic::{finished_record, Conductor, MAC};
use common::netns::Net;
use common::{assert_logged, initramfs, kernel_dir, rivet_lines, scratch};
use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;

fn partition_info(dir: &Path) -> (std::path::PathBuf, Value) {
    let img = mkfs_image(dir, "ext4", 48, "fast-root");
    let path = dir.join("root.img");
    std::fs::rename(&img, &path).unwrap();
    let info = json!({"id": "fast-1", "urls": ["root.img"], "disk_format": "raw", "container_format": "bare",
        "os_hash_algo": "sha256", "os_hash_value": sha256_file(&path), "image_type": "partition",
        "root_mb": 64, "swap_mb": 0, "ephemeral_mb": 0, "preserve_ephemeral": false,
        "configdrive": null, "deploy_boot_mode": "bios", "boot_option": "local"});
    (path, info)
}

fn hex(s: &[u8]) -> String {
    s.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn one_boot_is_inspected_cleaned_and_deployed_with_dmi_lldp_and_root_device_hints() {
    let dir = scratch("inspection");
    let mut net = Net::with_tap(62, &dir);
    net.dhcp();
    let (img, info) = partition_info(&dir);
    let vda = dir.join("virtio.img");
    sparse(&vda, 5 << 30);
    let ssd = dir.join("ssd.img");
    sparse(&ssd, 6 << 30);
    let untouched = sha256_file(&vda);
    // Metal3's rootDeviceHints: the non-rotational disk of at least 5 GiB.
    let hints = r#"{"rotational": false, "size": ">= 5"}"#;
    let mut conductor = Conductor::start_on_tap(
        &dir,
        &net,
        "fasttrack",
        info,
        &["--root-device-json", hints, "--lldp-iface", "rvtap"],
    );
    conductor.initrd = initramfs("default");
    let callback = format!("{}/v1/continue_inspection", conductor.api_url);
    let append = format!(
        "ipa-inspection-callback-url={callback} ipa-inspection-collectors=default,logs \
         ipa-collect-lldp=1 ipa-lldp-timeout=8 ipa-inspection-dhcp-all-interfaces=1 \
         ipa-enable-vlan-interfaces=all"
    );
    let qemu = [
        "-smbios",
        "type=1,manufacturer=Rivet Labs,product=rivet-inspect,serial=SN-4242",
        "-netdev",
        "user,id=n1",
        "-device",
        "virtio-net-pci,netdev=n1,mac=52:54:00:00:00:02",
        "-device",
        "ahci,id=ahci0",
        "-drive",
        &format!("if=none,id=sata0,file={},format=raw", ssd.display()),
        "-device",
        "ide-hd,drive=sata0,bus=ahci0.0,rotation_rate=1,serial=SSD-77",
    ];
    let mut boot = conductor
        .boot(&dir, &[&vda], &append)
        // The bzImage through SeaBIOS: firmware tables (DMI) exist; PVH has none.
        .arg("--kernel", kernel_dir().join("vmlinuz").display())
        .arg("--mem", 192);
    for a in qemu {
        boot = boot.arg("--qemu-arg", a);
    }
    let console = boot.run("reboot: Power down");
    let record = finished_record(&dir);

    // What Ironic stored, validated as Ironic and Metal3 read it.
    let inspection = &record["inspection"];
    assert_eq!(inspection["problems"], json!([]), "{inspection:#}");
    assert_eq!(inspection["version"], "1.84");
    let data = &inspection["data"];
    let inv = &data["inventory"];
    let eth0 = &inv["interfaces"][0];
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["mac_address"], MAC);
    assert!(
        eth0["ipv4_address"]
            .as_str()
            .unwrap()
            .starts_with("10.77.62."),
        "{eth0}"
    );
    assert_eq!(eth0["vendor"], "0x1af4");
    assert_eq!(eth0["driver"], "virtio_net");
    let leaf = json!([5, hex(b"leaf-1")]);
    let port = json!([2, hex(b"\x05Ethernet1")]);
    let lldp = eth0["lldp"].as_array().expect("LLDP on the boot NIC");
    assert!(lldp.contains(&leaf) && lldp.contains(&port), "{eth0}");
    assert_eq!(data["lldp_raw"]["eth0"], eth0["lldp"]);
    // Metal3's ipa-enable-vlan-interfaces=all: the VLAN the switch names in
    // LLDP (802.1 VLAN Name, 100) is listed as the real agent lists it.
    let vlan = inv["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0.100")
        .unwrap_or_else(|| panic!("no eth0.100: {:#}", inv["interfaces"]));
    assert_eq!(vlan["mac_address"], MAC);
    assert_eq!(vlan["driver"], "8021q");
    assert_eq!(vlan["lldp"], Value::Null);
    let eth1 = &inv["interfaces"][1];
    assert_eq!(eth1["mac_address"], "52:54:00:00:00:02");
    assert_eq!(
        eth1["ipv4_address"], "10.0.2.15",
        "leased by dhcp-all-interfaces"
    );
    assert_eq!(eth1["lldp"], Value::Null);
    let sv = &inv["system_vendor"];
    assert_eq!(
        (
            &sv["manufacturer"],
            &sv["product_name"],
            &sv["serial_number"]
        ),
        (
            &json!("Rivet Labs"),
            &json!("rivet-inspect"),
            &json!("SN-4242")
        )
    );
    assert_eq!(sv["firmware"]["vendor"], "SeaBIOS");
    assert_eq!(inv["memory"]["physical_mb"], 192, "SMBIOS memory devices");
    assert!(inv["memory"]["total"].as_u64().unwrap() > 100 * MIB);
    assert_eq!(inv["cpu"]["architecture"], "x86_64");
    assert!(inv["cpu"]["frequency"].is_string() && inv["cpu"]["count"].as_u64() >= Some(1));
    assert_eq!(
        inv["boot"],
        json!({"current_boot_mode": "bios", "pxe_interface": MAC})
    );
    let disks = inv["disks"].as_array().unwrap();
    let disk = |name: &str| {
        disks
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {disks:?}"))
    };
    let sda = disk("/dev/sda");
    assert_eq!(
        (
            &sda["rotational"],
            &sda["tran"],
            &sda["serial"],
            &sda["size"]
        ),
        (
            &json!(false),
            &json!("sata"),
            &json!("SSD-77"),
            &json!(6u64 << 30)
        )
    );
    assert!(
        sda["hctl"]
            .as_str()
            .is_some_and(|h| h.split(':').count() == 4),
        "{sda}"
    );
    let vda_json = disk("/dev/vda");
    assert_eq!(vda_json["rotational"], true);
    assert!(vda_json["by_path"]
        .as_str()
        .unwrap()
        .starts_with("/dev/disk/by-path/pci-0000:00:"));
    assert_eq!(
        data["root_disk"]["name"], "/dev/vda",
        "smallest disk of 4 GiB or more"
    );
    // The logs collector: base64 of a gzip'd tar with rivet's log.
    let logs = data["logs"].as_str().unwrap();
    let tgz = base64_decode(logs);
    let mut tar = Vec::new();
    flate2_free_gunzip(&tgz, &mut tar);
    assert!(String::from_utf8_lossy(&tar)
        .contains("inspection is enabled with collectors default, logs"));

    // Fast track: the token came with the inspection answer, no lookup.
    assert_eq!(record["lookups"], json!([]));
    let beats = record["heartbeats"].as_array().unwrap();
    assert!(!beats.is_empty() && beats.iter().all(|h| h["refused"].is_null()));
    assert_eq!(
        record["clean"]["command_status"], "SUCCEEDED",
        "{}",
        record["clean"]
    );
    assert_eq!(
        record["write_image"]["command_status"], "SUCCEEDED",
        "{}",
        record["write_image"]
    );
    // The hints chose the SSD; the virtio disk is as it was.
    assert!(files_equal_at(&img, &ssd, MIB, 48 * MIB));
    assert_eq!(sha256_file(&vda), untouched);
    let lines = rivet_lines(&console);
    assert_logged(&lines, "inspection finished: node");
    assert_logged(&lines, "LLDP: eth0:");
    drop(net);
    println!(
        "inventory rivet posted:\n{}",
        serde_json::to_string_pretty(inv).unwrap()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_older_api_answers_with_the_uuid_and_a_lookup_follows() {
    let dir = scratch("inspection-uuid");
    let mut net = Net::with_tap(63, &dir);
    net.dhcp();
    let (_img, info) = partition_info(&dir);
    let vda = dir.join("virtio.img");
    sparse(&vda, 5 << 30);
    // An API whose continue_inspection predates the lookup answer (1.84).
    let conductor = Conductor::start_on_tap(&dir, &net, "clean", info, &["--max-version", "1.83"]);
    let append = format!(
        "ipa-inspection-callback-url={}/v1/continue_inspection",
        conductor.api_url
    );
    let console = conductor
        .boot(&dir, &[&vda], &append)
        .run("reboot: Power down");
    let record = finished_record(&dir);
    let inspection = &record["inspection"];
    assert_eq!(inspection["problems"], json!([]), "{inspection:#}");
    assert_eq!(
        inspection["version"],
        Value::Null,
        "no version header below 1.84"
    );
    // QEMU's own SMBIOS tables, without -smbios.
    assert_eq!(
        inspection["data"]["inventory"]["system_vendor"]["manufacturer"],
        "QEMU"
    );
    assert_eq!(inspection["data"].get("lldp_raw"), None, "not asked for");
    assert_eq!(
        record["lookups"].as_array().unwrap().len(),
        1,
        "lookup after {{uuid}}"
    );
    assert_eq!(record["clean"]["command_status"], "SUCCEEDED");
    assert_logged(&rivet_lines(&console), "inspection finished: node 1be26c0b");
    drop(net);
    let _ = std::fs::remove_dir_all(dir);
}

fn base64_decode(s: &str) -> Vec<u8> {
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// gunzip with the system's tool (the test crate has no inflater).
fn flate2_free_gunzip(gz: &[u8], out: &mut Vec<u8>) {
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(gz).unwrap();
    }
    child.stdout.take().unwrap().read_to_end(out).unwrap();
    assert!(child.wait().unwrap().success());
}

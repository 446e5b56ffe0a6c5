//! rivet under a real Ironic: the all-in-one `ironic` service from PyPI
//! (the version `tests/setup` pins, in `.cache/ironic-venv`), sqlite,
//! noauth, driving one QEMU machine through OVMF → iPXE (dnsmasq and nginx
//! as an operator runs them, on a tap in a network namespace) into rivet,
//! with the kernel command line Ironic writes itself. The test plays only
//! the BMC of a manual-management node (fake power; tests/fixtures/
//! ironic_lab.py says how) and a user of Ironic's REST API; it judges by
//! Ironic's own view of the node and by the disk afterwards.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 300 s (3 labs side by side, each a real Ironic and several boots).

mod common;
use common::disk::{blkid_at, ok, sha256_file, sparse, MIB};
use common::netns::Net;
use common::tls::TestCa;
use common::uefi::{assert_boots_debian, ROOT_UUID};
use common::{
    initramfs, initramfs_built, initramfs_with_ca, kernel_dir, repo, rivet_lines, scratch,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const MAC: &str = "52:54:00:12:34:56";
/// What systemd prints once the deployed image is up.
const DEBIAN_UP: &str = "Welcome to .*Debian";

fn venv() -> PathBuf {
    let v = repo().join(".cache/ironic-venv");
    assert!(
        v.join("bin/ironic").exists(),
        "no Ironic in {}: run tests/setup",
        v.display()
    );
    v
}

/// A Debian 12 UEFI partition image (tests/fixtures/debian-image: `ext4`
/// in Debian's layout, `xfs` in the RHEL family's) and its sha256, made
/// once for all tests.
fn debian_image(kind: &str) -> (PathBuf, String) {
    static SUMS: std::sync::Mutex<Vec<(String, PathBuf, String)>> =
        std::sync::Mutex::new(Vec::new());
    let path = common::uefi::debian_image(kind);
    let mut sums = SUMS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p, sum)) = sums.iter().find(|(k, _, _)| k == kind) {
        return (p.clone(), sum.clone());
    }
    let sum = sha256_file(&path);
    sums.push((kind.to_string(), path.clone(), sum.clone()));
    (path, sum)
}

/// One machine, its disks and a real Ironic, for one plan.
struct Lab {
    dir: PathBuf,
    net: Net,
    http: PathBuf,
    http_url: String,
    disks: Vec<PathBuf>,
    /// The QEMU SCSI controller each disk hangs on (None: virtio-blk).
    controllers: Vec<Option<&'static str>>,
    tls: Option<TestCa>,
}

impl Lab {
    fn new(n: u8, name: &str, disks_gib: &[u64], tls: bool) -> Lab {
        let dir = scratch(name);
        let mut net = Net::with_tap(n, &dir);
        let http = dir.join("http");
        std::fs::create_dir_all(http.join("rivet")).unwrap();
        let http_url = net.nginx(&http);
        net.pxe_dhcp(&format!("{http_url}/ironic/boot.ipxe"));
        let disks = disks_gib
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let d = dir.join(format!("disk{i}.img"));
                sparse(&d, g << 30);
                d
            })
            .collect();
        let tls = tls.then(|| TestCa::new(&dir, "ironic"));
        Lab {
            dir,
            net,
            http,
            http_url,
            controllers: vec![None; disks_gib.len()],
            disks,
            tls,
        }
    }

    /// Puts disk `i` on a SCSI controller of its own: the ramdisk then
    /// carries the virtio class and that controller's driver.
    fn on_controller(mut self, i: usize, controller: &'static str) -> Lab {
        self.controllers[i] = Some(controller);
        self
    }

    /// Puts `file` where nginx serves it; returns its URL.
    fn serve(&self, file: &Path, name: &str) -> String {
        let to = self.http.join(name);
        // The kernel is a relative symlink: link what it points at.
        let file = file.canonicalize().unwrap();
        if std::fs::hard_link(&file, &to).is_err() {
            std::fs::copy(file, &to).unwrap();
        }
        format!("{}/{name}", self.http_url)
    }

    /// Runs the plan to its end; the lab's report. At each `pause` step
    /// `at_pause` gets the step's name and checks what it likes.
    fn run(&self, mut plan: Value, mut at_pause: impl FnMut(&str)) -> Value {
        let kernel = self.serve(&kernel_dir().join("vmlinuz"), "rivet/vmlinuz");
        let initrd = match &self.tls {
            Some(ca) => {
                let cert = ca.server(&self.dir, "ironic-api", &[&self.net.server_ip]);
                plan["tls"] = json!({"cert": cert.cert, "key": cert.key, "ca": ca.pem});
                initramfs_with_ca(&self.dir, &ca.pem)
            }
            None if self.controllers.iter().all(Option::is_none) => initramfs("virtio"),
            None => {
                let out = self.dir.join("initrd-scsi.img");
                initramfs_built(
                    "virtio",
                    &out,
                    &["--modules", "virtio_scsi,megaraid_sas,sd_mod"],
                );
                out
            }
        };
        let ramdisk = self.serve(&initrd, "rivet/initrd.img");
        let plan_path = self.dir.join("plan.json");
        std::fs::write(&plan_path, plan.to_string()).unwrap();
        let vars = self.dir.join("OVMF_VARS.fd");
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
        let python = venv().join("bin/python3");
        let log = self.dir.join("lab.log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.net.srv, "timeout", "2400"])
            .arg(&python)
            .arg(repo().join("tests/fixtures/ironic_lab.py"))
            .arg("--dir")
            .arg(&self.dir)
            .arg("--venv")
            .arg(venv())
            .args(["--server-ip", &self.net.server_ip, "--tap", &self.net.link])
            .arg("--http-dir")
            .arg(&self.http)
            .args(["--http-url", &self.http_url, "--kernel", &kernel])
            .args(["--ramdisk", &ramdisk, "--mac", MAC])
            .arg("--vars")
            .arg(&vars)
            .arg("--plan")
            .arg(&plan_path);
        for (d, controller) in self.disks.iter().zip(&self.controllers) {
            match controller {
                Some(hba) => cmd.arg("--disk").arg(format!("{}@{hba}", d.display())),
                None => cmd.arg("--disk").arg(d),
            };
        }
        let mut child = cmd
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let pauses: Vec<String> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["do"] == "pause")
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        let mut next = 0;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if let Some(name) = pauses.get(next) {
                if self.dir.join(format!("paused-{name}")).exists() {
                    at_pause(name);
                    std::fs::write(self.dir.join(format!("resume-{name}")), b"").unwrap();
                    next += 1;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let report: Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("report.json")).unwrap_or_default(),
        )
        .unwrap_or(Value::Null);
        let lab_log = std::fs::read_to_string(&log).unwrap_or_default();
        // What a user watching `baremetal node show` would have seen.
        eprintln!("{lab_log}");
        assert!(
            status.success() && report["errors"] == json!([]),
            "the lab failed ({status}): {}\nsee {}",
            report["errors"],
            self.dir.display()
        );
        report
    }

    fn console(&self, name: &str) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join(name)).unwrap_or_default())
            .into_owned()
    }

    /// The consoles of every boot, in order, with what each booted from.
    fn boots(&self, report: &Value) -> Vec<(String, String)> {
        report["boots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["from"].as_str().unwrap().to_string(),
                    self.console(b["console"].as_str().unwrap()),
                )
            })
            .collect()
    }
}

/// The provision states the node passed through, in order, without repeats.
fn states(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in report["transitions"].as_array().unwrap() {
        if let Some(s) = t["provision_state"].as_str() {
            if out.last().map(String::as_str) != Some(s) {
                out.push(s.to_string());
            }
        }
    }
    out
}

fn step<'a>(report: &'a Value, name: &str, nth: usize) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["do"] == name)
        .nth(nth)
        .unwrap_or_else(|| panic!("no step {name} #{nth}"))
}

/// Partitions of a GPT disk (sfdisk's JSON): (start, size) in bytes, name.
fn partitions(disk: &Path) -> Vec<(u64, u64, String)> {
    let j: Value =
        serde_json::from_str(&ok("sfdisk", &["--json", disk.to_str().unwrap()])).unwrap();
    j["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap() * 512,
                p["size"].as_u64().unwrap() * 512,
                p["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Whether sfdisk finds a partition table.
fn has_table(disk: &Path) -> bool {
    common::disk::run("sfdisk", &["-d", disk.to_str().unwrap()])
        .status
        .success()
}

/// The UEFI partition image's deploy, as a user checks it from the host:
/// the table (ESP, config drive, root last), the root filesystem Ironic
/// was told of (`fs`), the config drive Ironic built, and on the ESP the
/// boot loaders install_bootloader put in `EFI/<vendor>/` and the
/// removable path (listed with mtools).
fn assert_partition_deploy(disk: &Path, fs: &str, vendor: &str) {
    let out = ok("sgdisk", &["-v", disk.to_str().unwrap()]);
    assert!(out.contains("No problems found"), "{out}");
    let parts = partitions(disk);
    assert_eq!(parts.len(), 3, "ESP, config drive, root: {parts:?}");
    assert_eq!(parts[0].0, MIB);
    assert_eq!(parts[0].1, 550 * MIB);
    let esp = blkid_at(disk, parts[0].0);
    assert_eq!(
        (esp["TYPE"].as_str(), esp["LABEL"].as_str()),
        ("vfat", "efi-part"),
        "{esp:?}"
    );
    let cd = blkid_at(disk, parts[1].0);
    assert_eq!(
        (cd["TYPE"].as_str(), cd["LABEL"].as_str()),
        ("iso9660", "config-2"),
        "{cd:?}"
    );
    let root = blkid_at(disk, parts[2].0);
    assert_eq!(
        (root["TYPE"].as_str(), root["UUID"].as_str()),
        (fs, ROOT_UUID),
        "{root:?}"
    );
    let esp = format!("{}@@{}", disk.display(), parts[0].0);
    let listed = |dir: &str| ok("mdir", &["-b", "-i", &esp, dir]).to_lowercase();
    let vendor_dir = listed(&format!("::/EFI/{vendor}"));
    for f in ["shimx64.efi", "grubx64.efi", "grub.cfg", "bootx64.csv"] {
        assert!(vendor_dir.contains(f), "EFI/{vendor}/{f}: {vendor_dir}");
    }
    assert!(listed("::/EFI/BOOT").contains("bootx64.efi"));
}

/// What Ironic's user sends for a Debian partition image over HTTP.
fn debian_instance(lab: &Lab, kind: &str) -> Value {
    let (image, sum) = debian_image(kind);
    json!({"image_source": lab.serve(&image, &format!("debian12-{kind}.img")), "image_os_hash_algo": "sha256",
        "image_os_hash_value": sum, "image_type": "partition", "root_gb": 1,
        "image_disk_format": "raw"})
}

fn configdrive() -> Value {
    json!({"meta_data": {"uuid": "a5c1f1d0-7a44-4c8f-9a8e-1b2c3d4e5f60", "hostname": "rivet-lab"},
           "user_data": "#cloud-config\n"})
}

/// Prints the node's provision-state transitions with their times, as a
/// user following `baremetal node show` saw them.
fn print_transitions(report: &Value) {
    for t in report["transitions"].as_array().unwrap() {
        match t["provision_state"].as_str() {
            Some(s) => eprintln!(
                "{:>7.1} s  {s}{}",
                t["t"].as_f64().unwrap(),
                t["target"]
                    .as_str()
                    .map(|x| format!(" → {x}"))
                    .unwrap_or_default()
            ),
            None => eprintln!(
                "{:>7.1} s  ({})",
                t["t"].as_f64().unwrap(),
                t["power"].as_str().unwrap()
            ),
        }
    }
}

/// Inspection as Ironic's hooks recorded it for this QEMU machine.
fn assert_inspected(report: &Value) {
    let props = &step(report, "inspect", 0)["node"]["properties"];
    assert_eq!(props["cpu_arch"], "x86_64", "{props:#}");
    assert_eq!(props["memory_mb"], 512, "{props:#}");
    assert_eq!(props["cpus"], 1, "{props:#}");
    // The root device (the smallest disk of at least 4 GiB), less 1 GiB.
    assert_eq!(props["local_gb"], 4, "{props:#}");
}

#[test]
fn a_real_ironic_inspects_cleans_deploys_and_undeploys_with_fast_track_over_tls() {
    let lab = Lab::new(71, "real-ironic-fast", &[5], true);
    // The deploy as for a node that must never be powered off (Ironic's
    // `disable_power_off`, Metal3's `disablePowerOff`): Ironic ends it with
    // system.lockdown instead of a power-off, waits for the agent to
    // become unreachable, then reboots the machine into the instance.
    let plan = json!({"fast_track": true, "steps": [
        {"do": "manage"},
        {"do": "inspect"},
        {"do": "provide"},
        {"do": "patch", "path": "/disable_power_off", "value": true},
        {"do": "deploy", "instance_info": debian_instance(&lab, "ext4"), "configdrive": configdrive(),
         "expect": "active"},
        {"do": "pause", "name": "active"},
        {"do": "boot_instance", "until": DEBIAN_UP},
        {"do": "patch", "path": "/disable_power_off", "value": false},
        {"do": "deleted"},
    ]});
    let disk = lab.disks[0].clone();
    let report = lab.run(plan, |_| assert_partition_deploy(&disk, "ext4", "debian"));
    print_transitions(&report);
    assert_inspected(&report);
    assert_eq!(report["api_root"]["default_version"]["version"], "1.115");
    let deployed = &step(&report, "deploy", 0)["node"];
    assert_eq!(deployed["last_error"], Value::Null);
    assert_eq!(
        deployed["driver_internal_info"]["root_uuid_or_disk_id"],
        ROOT_UUID
    );
    assert_eq!(
        deployed["driver_internal_info"]["is_whole_disk_image"],
        false
    );
    assert_eq!(
        step(&report, "deleted", 0)["node"]["provision_state"],
        "available"
    );
    let seen = states(&report);
    for s in [
        "manageable",
        "inspecting",
        "inspect wait",
        "cleaning",
        "clean wait",
        "available",
        "deploying",
        "wait call-back",
        "active",
        "deleting",
    ] {
        assert!(seen.iter().any(|x| x == s), "{s} not in {seen:?}");
    }

    // One ramdisk boot served inspection, cleaning and the deploy (fast
    // track); the disk booted Debian by itself; undeploy booted the
    // ramdisk again for cleaning.
    let boots = lab.boots(&report);
    let from: Vec<&str> = boots.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(from, ["network", "disk", "network"]);
    let agent = rivet_lines(&boots[0].1);
    common::assert_logged(&agent, "version 1.115");
    common::assert_logged(&agent, "(lookup in the answer)");
    common::assert_logged(&agent, "checksum verified: sha256");
    common::assert_logged(
        &agent,
        "boot loader: debian (Debian's signed shim and grub packages), from ext4",
    );
    common::assert_logged(&agent, "'debian': HD(1,GPT,");
    // disable_power_off: the agent was locked down, never powered off, and
    // Ironic rebooted the machine into the instance.
    common::assert_logged(&agent, "agent API: command system.lockdown");
    common::assert_logged(&agent, "locked down by the conductor");
    assert!(
        !agent.iter().any(|l| l.contains("poweroff requested")),
        "the agent powered off a node that must stay on"
    );
    let deployed_at = step(&report, "deploy", 0)["t"].as_f64().unwrap();
    let powers: Vec<&str> = report["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["t"].as_f64().unwrap_or(0.0) >= deployed_at)
        .filter_map(|t| t["power"].as_str())
        .collect();
    assert_eq!(
        powers.first().copied(),
        Some("power on by rebooting"),
        "Ironic's first power action after the deploy: {powers:?}"
    );
    // The firmware's first choice is the entry rivet wrote.
    assert_boots_debian(&boots[1].1, "\"debian\"", "\\EFI\\debian\\shimx64.efi");
    // Ironic's default cleaning (erase_devices: a random pass and zeros)
    // left nothing of the deploy.
    let cleaning = rivet_lines(&boots[2].1);
    common::assert_logged(&cleaning, "erase /dev/vda: done (2 overwrite pass(es))");
    assert!(!has_table(&disk), "a partition table survived cleaning");
}

#[test]
fn a_real_ironic_without_fast_track_deploys_a_partition_image_then_a_whole_disk_image_by_hint() {
    // The whole-disk image goes to a SCSI disk (virtio-scsi: OVMF boots
    // from it), and a Dell PERC's controller (QEMU's megasas-gen2) holds a
    // third disk: both must reach Ironic's inventory with serial and WWN.
    let lab = Lab::new(72, "real-ironic-slow", &[5, 6, 1], false)
        .on_controller(1, "virtio-scsi-pci")
        .on_controller(2, "megasas-gen2");
    // A UEFI whole-disk image (a UEFI image without an ESP is refused by
    // install_bootloader, as by the real agent): an ESP whose shim-style
    // CSV names iPXE as `rivet-test`, and an ext4 root at 41 MiB.
    let (whole, _) =
        common::disk::uefi_whole_disk_image(&lab.dir, Path::new("/usr/lib/ipxe/ipxe.efi"));
    let fs_uuid = blkid_at(&whole, 41 * MIB)["UUID"].clone();
    let whole_url = lab.serve(&whole, "whole-disk.img");
    let plan = json!({"fast_track": false,
        // Metal3's choice: clean only the metadata (ironic-image sets this).
        "ironic": {"deploy": {"erase_devices_priority": "0"}},
        "steps": [
        {"do": "manage"},
        {"do": "inspect"},
        {"do": "provide"},
        {"do": "deploy", "instance_info": debian_instance(&lab, "xfs"), "configdrive": configdrive(),
         "expect": "active"},
        {"do": "pause", "name": "partition"},
        {"do": "boot_instance", "until": DEBIAN_UP},
        {"do": "deleted"},
        {"do": "patch", "path": "/properties/root_device", "value": {"serial": "disk1"}},
        {"do": "deploy", "instance_info": {"image_source": whole_url, "image_os_hash_algo": "sha256",
            "image_os_hash_value": sha256_file(&whole), "image_type": "whole-disk",
            "image_disk_format": "raw", "root_gb": 0}, "expect": "active"},
        {"do": "pause", "name": "whole-disk"},
        // The firmware's first choice: the entry rivet wrote from the
        // image's CSV (its loader, iPXE, then has nothing to boot).
        {"do": "boot_instance", "until": "BdsDxe: loading Boot[0-9A-F]+ \"rivet-test\""},
        {"do": "deleted"},
    ]});
    let (d0, d1) = (lab.disks[0].clone(), lab.disks[1].clone());
    let report = lab.run(plan, |name| match name {
        "partition" => assert_partition_deploy(&d0, "xfs", "rocky"),
        _ => {
            // The hint chose the larger disk; the smaller one, where the
            // partition image was, was cleaned and stays empty.
            let out = ok("sgdisk", &["-v", d1.to_str().unwrap()]);
            assert!(out.contains("No problems found"), "{out}");
            let parts = partitions(&d1);
            assert_eq!(parts.len(), 2, "{parts:?}");
            assert_eq!(parts[1].2, "root");
            assert_eq!(blkid_at(&d1, parts[1].0)["UUID"], fs_uuid);
            assert!(!has_table(&d0), "the first disk was cleaned");
        }
    });
    print_transitions(&report);
    assert_inspected(&report);
    let whole_node = &step(&report, "deploy", 1)["node"];
    assert_eq!(
        whole_node["driver_internal_info"]["is_whole_disk_image"],
        true
    );
    assert_eq!(
        whole_node["instance_info"]["root_device"],
        Value::Null,
        "the hint is the node's own property"
    );
    // Without fast track every phase boots the ramdisk anew, and Ironic
    // powers the machine off between them.
    let boots = lab.boots(&report);
    let from: Vec<&str> = boots.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        from,
        ["network", "network", "network", "disk", "network", "network", "disk", "network"],
        "{:?}",
        report["boots"]
    );
    // Inspection without fast track gets only the callback URL; every
    // other ramdisk boot found the API's version.
    let agents: Vec<Vec<String>> = boots
        .iter()
        .filter(|(f, _)| f == "network")
        .map(|(_, console)| rivet_lines(console))
        .collect();
    common::assert_logged(&agents[0], "No ipa-api-url configured");
    for agent in &agents[1..] {
        common::assert_logged(agent, "version 1.115");
        assert!(
            !agent.iter().any(|l| l.contains("discovery failed")),
            "{agent:#?}"
        );
    }
    // The RHEL family's layout: shim and grub from the image's own
    // /boot/efi/EFI/rocky, the entry named by its BOOTX64.CSV.
    common::assert_logged(
        &agents[2],
        "installed under /boot/efi in the image), from xfs",
    );
    assert_boots_debian(&boots[3].1, "\"rocky\"", "\\EFI\\rocky\\shimx64.efi");
    let whole_boot = rivet_lines(&boots[5].1);
    common::assert_logged(&whole_boot, "module megaraid_sas loaded (for pci:");
    let target = common::ironic::first_line_with(&boots[5].1, "target disk /dev/");
    assert!(target.contains("target disk /dev/sd"), "{target}");
    // Ironic's stored inventory: the SCSI disks as the hints see them.
    let disks = report["inventory"]["inventory"]["disks"]
        .as_array()
        .unwrap();
    for (serial, wwn, size) in [
        ("disk1", "0x5000c500a1b2c301", 6u64 << 30),
        ("disk2", "0x5000c500a1b2c302", 1 << 30),
    ] {
        let disk = disks
            .iter()
            .find(|d| d["serial"] == serial)
            .unwrap_or_else(|| panic!("no disk {serial} in Ironic's inventory: {disks:#?}"));
        assert_eq!(disk["wwn"], wwn, "{disk:#}");
        assert_eq!(disk["size"], size, "{disk:#}");
        assert_eq!(disk["model"], "QEMU HARDDISK", "{disk:#}");
        assert!(
            disk["name"].as_str().unwrap().starts_with("/dev/sd"),
            "{disk:#}"
        );
        assert!(disk["hctl"].is_string(), "{disk:#}");
    }
    // The whole-disk image's ESP named its loader in a CSV: the firmware's
    // first choice after that deploy is the entry rivet wrote for it.
    let loading = common::ironic::first_line_with(&boots[6].1, "BdsDxe: loading Boot");
    assert!(loading.contains("\"rivet-test\""), "{loading}");
    assert_eq!(
        step(&report, "boot_instance", 1)["console"],
        "console-7-disk.log"
    );
}

#[test]
fn a_real_ironic_sees_each_failure_with_the_agents_reason() {
    let lab = Lab::new(73, "real-ironic-fail", &[5], false);
    let good = common::disk::mkfs_image(&lab.dir, "ext4", 48, "no-loader");
    let plain = json!({"image_source": lab.serve(&good, "plain.img"), "image_os_hash_algo": "sha256",
        "image_os_hash_value": sha256_file(&good), "image_type": "partition", "root_gb": 1,
        "image_disk_format": "raw"});
    let mut wrong = plain.clone();
    wrong["image_os_hash_value"] = json!("0".repeat(64));
    let plan = json!({"fast_track": true,
        "ironic": {"deploy": {"erase_devices_priority": "0"},
                   // The conductor's timeout for an agent gone silent.
                   "conductor": {"deploy_callback_timeout": "120"}},
        "steps": [
        {"do": "manage"},
        {"do": "provide"},
        {"do": "deploy", "instance_info": wrong, "expect": "deploy failed"},
        {"do": "pause", "name": "checksum"},
        {"do": "deploy", "instance_info": plain, "expect": "deploy failed"},
        {"do": "cut_network_when", "console": "rivet: image: [0-9.]+ MiB"},
        {"do": "deploy", "instance_info": debian_instance(&lab, "ext4"), "expect": "deploy failed",
         "timeout": 600},
    ]});
    let disk = lab.disks[0].clone();
    let report = lab.run(plan, |_| {
        // The wrong checksum was found after the stream: the root
        // partition holds no filesystem (its first MiB was held back).
        let parts = partitions(&disk);
        let root = parts.last().unwrap();
        let found = blkid_at(&disk, root.0);
        assert!(!found.contains_key("TYPE"), "{found:?}");
    });
    print_transitions(&report);
    let errors: Vec<String> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["do"] == "deploy")
        .map(|s| s["node"]["last_error"].as_str().unwrap_or("").to_string())
        .collect();
    for e in &errors {
        eprintln!("last_error: {e}");
    }
    assert!(errors[0].contains("checksum"), "{}", errors[0]);
    assert!(errors[0].contains(&"0".repeat(64)), "{}", errors[0]);
    assert!(
        errors[1].contains("Failed to install a bootloader")
            && errors[1].contains("no UEFI boot loader in the image's ext4 root filesystem"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("Timeout reached while waiting for callback"),
        "{}",
        errors[2]
    );
    assert!(report["network_cut_at"].as_f64().is_some());
}

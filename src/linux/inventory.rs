//! What hardware rivet sees: disks from /sys/block, NICs from
//! /sys/class/net. Read from sysfs only, so it works the same on the host.

use crate::cmdline::Mac;
use std::fmt;
use std::fs;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    pub size_bytes: u64,
    pub logical_block: u32,
    pub physical_block: u32,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// PCI address of the controller (`0000:00:04.0`), for by-path hints.
    pub pci: Option<String>,
    /// The rest of what inspection reports and root device hints match.
    pub extra: DiskExtra,
}

/// Disk facts for inspection and root device hints, as ironic-python-agent
/// reads them from lsblk and udev (rivet from sysfs: there is no udev).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskExtra {
    pub rotational: Option<bool>,
    pub vendor: Option<String>,
    /// SCSI host:channel:target:lun (SCSI, SATA and USB disks).
    pub hctl: Option<String>,
    /// lsblk's TRAN: sata, nvme, usb, … (none for virtio).
    pub tran: Option<String>,
    /// udev's /dev/disk/by-path/ name.
    pub by_path: Option<String>,
}

/// The unit serial number of a SCSI VPD page 0x80 (SATA and SAS disks
/// have no sysfs `serial` file).
fn vpd_serial(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let text = String::from_utf8_lossy(page.get(4..4 + len)?)
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// A WWN as udev's ID_WWN gives it (`0x5000c500…`) from sysfs's `wwid`:
/// NAA and EUI-64 identifiers; a T10 vendor id is not a WWN.
fn wwn_from_wwid(wwid: &str) -> Option<String> {
    let w = wwid.trim();
    ["naa.", "eui."]
        .iter()
        .find_map(|p| w.strip_prefix(p))
        .map(|hex| format!("0x{}", hex.to_ascii_lowercase()))
}

/// The `hctl` and transport of a disk from its canonical sysfs path.
fn scsi_facts(canonical: &str, name: &str) -> (Option<String>, Option<String>) {
    let hctl = canonical
        .split('/')
        .rfind(|c| {
            let parts: Vec<&str> = c.split(':').collect();
            parts.len() == 4
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string);
    let tran = if name.starts_with("nvme") {
        Some("nvme")
    } else if canonical.contains("/usb") {
        Some("usb")
    } else if canonical.contains("/ata") {
        Some("sata")
    } else {
        None
    };
    (hctl, tran.map(str::to_string))
}

/// udev's path_id for the disk: `pci-ADDR` (virtio), `pci-ADDR-nvme-N`,
/// `pci-ADDR-ata-N` (AHCI port N).
fn by_path(canonical: &str, name: &str, pci: Option<&str>) -> Option<String> {
    let pci = pci?;
    let base = format!("/dev/disk/by-path/pci-{pci}");
    if let Some(ns) = name
        .strip_prefix("nvme")
        .and_then(|r| r.split_once('n'))
        .map(|(_, n)| n)
    {
        return Some(format!("{base}-nvme-{ns}"));
    }
    if let Some(port) = canonical.split('/').find_map(|c| {
        c.strip_prefix("ata")
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
    }) {
        return Some(format!("{base}-ata-{port}"));
    }
    if canonical.contains("/virtio") {
        return Some(base);
    }
    None
}

/// The last PCI address (`dddd:bb:dd.f`) in a sysfs device path.
pub fn pci_address(path: &str) -> Option<String> {
    let is_pci = |c: &&str| {
        let b = c.as_bytes();
        b.len() == 12
            && b[4] == b':'
            && b[7] == b':'
            && b[10] == b'.'
            && c.replace([':', '.'], "")
                .bytes()
                .all(|x| x.is_ascii_hexdigit())
    };
    path.split('/').rev().find(is_pci).map(str::to_string)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub mac: Option<Mac>,
    /// None when the kernel cannot tell (link down).
    pub carrier: Option<bool>,
    pub driver: Option<String>,
    /// PCI vendor and device ids as sysfs prints them (`0x1af4`).
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub speed_mbps: Option<u64>,
    pub pci: Option<String>,
}

/// A sysfs or procfs value, trimmed; `None` when missing or empty.
pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn read_number(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// A CD/DVD drive: SCSI peripheral type 5, which lsblk shows as TYPE
/// "rom" (sr0 on SATA, SAS, USB and a BMC's virtual media alike).
pub fn is_optical(block_dir: &Path) -> bool {
    read_trimmed(&block_dir.join("device/type")).as_deref() == Some("5")
}

/// Media a BMC attaches (virtual media): optical, or removable and
/// write-protected. What is on them was put there for this boot; a fixed
/// or writable disk may hold what a previous tenant left.
pub fn is_attached_media(block_dir: &Path) -> bool {
    is_optical(block_dir)
        || (read_number(&block_dir.join("removable")) == Some(1)
            && read_number(&block_dir.join("ro")) == Some(1))
}

/// Block devices that can be deploy targets: not loop, RAM, floppy,
/// optical (ironic-python-agent lists lsblk's TYPE "disk" only: a CD with
/// a disc is no target) or empty.
pub fn disks(sys: &Path) -> Vec<Disk> {
    let Ok(entries) = fs::read_dir(sys.join("block")) else {
        return Vec::new();
    };
    let mut disks: Vec<Disk> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ["loop", "ram", "zram", "fd"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                return None;
            }
            let dir = entry.path();
            let size_bytes = read_number(&dir.join("size"))? * 512;
            if size_bytes == 0 || is_optical(&dir) {
                return None;
            }
            let queue = dir.join("queue");
            let first = |names: &[&str]| names.iter().find_map(|n| read_trimmed(&dir.join(n)));
            let canonical = fs::canonicalize(&dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let pci = pci_address(&canonical);
            let (hctl, tran) = scsi_facts(&canonical, &name);
            let extra = DiskExtra {
                rotational: read_number(&queue.join("rotational")).map(|r| r == 1),
                vendor: first(&["device/vendor"]),
                hctl,
                tran,
                by_path: by_path(&canonical, &name, pci.as_deref()),
            };
            Some(Disk {
                size_bytes,
                logical_block: read_number(&queue.join("logical_block_size")).unwrap_or(512) as u32,
                physical_block: read_number(&queue.join("physical_block_size")).unwrap_or(512)
                    as u32,
                model: first(&["device/model"]),
                serial: first(&["serial", "device/serial"]).or_else(|| {
                    fs::read(dir.join("device/vpd_pg80"))
                        .ok()
                        .and_then(|p| vpd_serial(&p))
                }),
                wwn: first(&["wwid", "device/wwid"]).and_then(|w| wwn_from_wwid(&w)),
                pci,
                extra,
                name,
            })
        })
        .collect();
    disks.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    disks
}

/// A PCI network or storage controller that no driver has bound: on real
/// hardware the reason "no NIC" or "no disk" was found, named so that an
/// operator knows which module to add (`rivet mkinitramfs --modules`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undriven {
    pub address: String,
    pub vendor: String,
    pub device: String,
    pub class: u32,
}

impl fmt::Display for Undriven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.class >> 16 {
            1 => "storage controller",
            _ => "network controller",
        };
        write!(
            f,
            "PCI {} [{}:{}] {what} (class {:#08x}): no carried module drives it",
            self.address, self.vendor, self.device, self.class
        )
    }
}

/// PCI network (class 0x02) and mass-storage (0x01) controllers without a
/// bound driver.
pub fn undriven_pci(sys: &Path) -> Vec<Undriven> {
    let Ok(entries) = fs::read_dir(sys.join("bus/pci/devices")) else {
        return Vec::new();
    };
    let hex = |text: Option<String>| text.map(|t| t.trim_start_matches("0x").to_string());
    let mut found: Vec<Undriven> = entries
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let class = u32::from_str_radix(
                read_trimmed(&dir.join("class"))?.trim_start_matches("0x"),
                16,
            )
            .ok()?;
            if !matches!(class >> 16, 1 | 2) || dir.join("driver").exists() {
                return None;
            }
            Some(Undriven {
                address: e.file_name().to_string_lossy().into_owned(),
                vendor: hex(read_trimmed(&dir.join("vendor")))?,
                device: hex(read_trimmed(&dir.join("device")))?,
                class,
            })
        })
        .collect();
    found.sort_unstable_by(|a, b| a.address.cmp(&b.address));
    found
}

/// Network interfaces other than loopback.
/// The NICs with a MAC address, as `network_data.json` names them.
pub fn netdata_nics(sys: &Path) -> Vec<crate::netdata::Nic> {
    nics(sys)
        .into_iter()
        .filter_map(|n| {
            Some(crate::netdata::Nic {
                mac: n.mac?.0,
                name: n.name,
                carrier: n.carrier,
            })
        })
        .collect()
}

pub fn nics(sys: &Path) -> Vec<Nic> {
    let Ok(entries) = fs::read_dir(sys.join("class/net")) else {
        return Vec::new();
    };
    let mut nics: Vec<Nic> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            // ARPHRD_ETHER = 1; skips loopback (772) and tunnels.
            if read_number(&dir.join("type")) != Some(1) {
                return None;
            }
            let driver = fs::read_link(dir.join("device/driver"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            Some(Nic {
                mac: read_trimmed(&dir.join("address")).and_then(|a| Mac::parse(&a)),
                carrier: read_trimmed(&dir.join("carrier")).map(|c| c == "1"),
                driver,
                vendor: read_trimmed(&dir.join("device/vendor")),
                product: read_trimmed(&dir.join("device/device")),
                // -1 or an error while the link is down: unknown.
                speed_mbps: read_number(&dir.join("speed"))
                    .filter(|&s| s > 0 && s < u32::MAX as u64),
                pci: fs::canonicalize(dir.join("device"))
                    .ok()
                    .and_then(|p| pci_address(&p.to_string_lossy())),
                name,
            })
        })
        .collect();
    nics.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    nics
}

/// `1073741824` → `1.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{} {}", crate::stream::Fixed(value, 1), UNITS[unit])
    }
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

impl fmt::Display for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "disk {}: {} bytes ({}), sectors {}/{} (logical/physical), model {}, serial {}, wwn {}, pci {}",
            self.name,
            self.size_bytes,
            human_bytes(self.size_bytes),
            self.logical_block,
            self.physical_block,
            or_dash(&self.model),
            or_dash(&self.serial),
            or_dash(&self.wwn),
            or_dash(&self.pci),
        )
    }
}

impl fmt::Display for Nic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mac = self
            .mac
            .map(|m| m.to_string())
            .unwrap_or_else(|| "-".into());
        let carrier = match self.carrier {
            Some(true) => "up",
            Some(false) => "down",
            None => "unknown",
        };
        write!(
            f,
            "nic {}: mac {mac}, carrier {carrier}, driver {}",
            self.name,
            or_dash(&self.driver)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs tree in a temporary directory.
    fn fake_sys() -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("rivet-inventory-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let put = |rel: &str, text: &str| {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        put("block/vda/size", "2097152\n");
        put("block/vda/queue/logical_block_size", "4096\n");
        put("block/vda/queue/physical_block_size", "4096\n");
        put("block/vda/serial", "disk-one\n");
        put("block/loop0/size", "100\n");
        put("block/sr0/size", "0\n");
        // A virtual media CD with a disc in it.
        put("block/sr1/size", "1400\n");
        put("block/sr1/device/type", "5\n");
        put("block/nvme0n1/size", "8\n");
        put("block/nvme0n1/device/model", "QEMU NVMe Ctrl  \n");
        put("class/net/lo/type", "772\n");
        put("class/net/eth0/type", "1\n");
        put("class/net/eth0/address", "52:54:00:12:34:56\n");
        put("class/net/eth0/carrier", "1\n");
        root
    }

    #[test]
    fn reads_disks_and_nics_from_sysfs() {
        let sys = fake_sys();
        let disks = disks(&sys);
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0].name, "nvme0n1");
        assert_eq!(disks[0].model.as_deref(), Some("QEMU NVMe Ctrl"));
        assert_eq!(disks[1].size_bytes, 1 << 30);
        assert_eq!(disks[1].logical_block, 4096);
        assert_eq!(
            disks[1].to_string(),
            "disk vda: 1073741824 bytes (1.0 GiB), sectors 4096/4096 (logical/physical), \
             model -, serial disk-one, wwn -, pci -"
        );
        let nics = nics(&sys);
        assert_eq!(nics.len(), 1);
        assert_eq!(
            nics[0].to_string(),
            "nic eth0: mac 52:54:00:12:34:56, carrier up, driver -"
        );
        fs::remove_dir_all(sys).unwrap();
    }

    #[test]
    fn pci_network_and_storage_controllers_without_a_driver_are_named() {
        let root = std::env::temp_dir().join(format!("rivet-pci-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let put = |rel: &str, text: &str| {
            let p = root.join("bus/pci/devices").join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        // An E810 (ice) and a PERC (megaraid_sas) nobody drives, a bound
        // virtio NIC, an unbound USB controller (not a NIC or disk).
        for (addr, vendor, device, class, bound) in [
            ("0000:3b:00.0", "0x8086", "0x1593", "0x020000", false),
            ("0000:18:00.0", "0x1000", "0x10e2", "0x010400", false),
            ("0000:00:02.0", "0x1af4", "0x1000", "0x020000", true),
            ("0000:00:14.0", "0x8086", "0xa36d", "0x0c0330", false),
        ] {
            put(&format!("{addr}/vendor"), &format!("{vendor}\n"));
            put(&format!("{addr}/device"), &format!("{device}\n"));
            put(&format!("{addr}/class"), &format!("{class}\n"));
            if bound {
                put(&format!("{addr}/driver/bind"), "");
            }
        }
        let found: Vec<String> = undriven_pci(&root).iter().map(|u| u.to_string()).collect();
        assert_eq!(
            found,
            [
                "PCI 0000:18:00.0 [1000:10e2] storage controller (class 0x010400): no carried module drives it",
                "PCI 0000:3b:00.0 [8086:1593] network controller (class 0x020000): no carried module drives it",
            ]
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn pci_addresses_from_sysfs_paths() {
        assert_eq!(
            pci_address("/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda").as_deref(),
            Some("0000:00:04.0")
        );
        assert_eq!(
            pci_address("/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/nvme/nvme0/nvme0n1")
                .as_deref(),
            Some("0000:02:00.0")
        );
        assert_eq!(pci_address("/sys/devices/virtual/block/loop0"), None);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(1536 << 30), "1.5 TiB");
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn serials_from_vpd_and_wwns_from_wwid() {
        let mut page = vec![0, 0x80, 0, 8];
        page.extend_from_slice(b"  SSD-77");
        assert_eq!(vpd_serial(&page).as_deref(), Some("SSD-77"));
        assert_eq!(vpd_serial(&[0, 0x83, 0, 0]), None);
        assert_eq!(
            vpd_serial(&[0, 0x80, 0, 9, b'x']),
            None,
            "length past the page"
        );
        assert_eq!(
            wwn_from_wwid("naa.5000C500A1B2C3D4").as_deref(),
            Some("0x5000c500a1b2c3d4")
        );
        assert_eq!(
            wwn_from_wwid("eui.0025388b71b2c3d4\n").as_deref(),
            Some("0x0025388b71b2c3d4")
        );
        assert_eq!(wwn_from_wwid("t10.ATA     QEMU HARDDISK   SSD-77"), None);
    }

    #[test]
    fn hctl_transport_and_by_path_from_sysfs_paths() {
        let sata = "/sys/devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sda";
        assert_eq!(
            scsi_facts(sata, "sda"),
            (Some("2:0:0:0".into()), Some("sata".into()))
        );
        assert_eq!(
            by_path(sata, "sda", Some("0000:00:1f.2")).as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-3")
        );
        let virtio = "/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda";
        assert_eq!(scsi_facts(virtio, "vda"), (None, None));
        assert_eq!(
            by_path(virtio, "vda", Some("0000:00:04.0")).as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:04.0")
        );
        let nvme = "/sys/devices/pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1";
        assert_eq!(scsi_facts(nvme, "nvme0n1").1.as_deref(), Some("nvme"));
        assert_eq!(
            by_path(nvme, "nvme0n1", Some("0000:00:05.0")).as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:05.0-nvme-1")
        );
        assert_eq!(by_path("/sys/devices/virtual/block/md0", "md0", None), None);
    }
}

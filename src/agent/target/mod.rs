//! Choosing the target disk as PID 1: by a hint (`vda`, `/dev/vda`,
//! `serial=…`, `wwn=…`, `by-path=pci-0000:00:04.0`), by Ironic's root
//! device hints ([`hints`]), else Ironic's default: the smallest disk of
//! at least 4 GiB (`ironic_python_agent.utils.guess_root_disk`).

pub mod hints;

use crate::linux::inventory::Disk;

pub const MIN_ROOT_DISK: u64 = 4 << 30;

pub fn choose<'a>(hint: Option<&str>, disks: &'a [Disk]) -> Result<&'a Disk, String> {
    let names = || {
        disks
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match hint {
        Some(h) => {
            let found = if let Some(serial) = h.strip_prefix("serial=") {
                disks.iter().find(|d| d.serial.as_deref() == Some(serial))
            } else if let Some(wwn) = h.strip_prefix("wwn=") {
                disks.iter().find(|d| d.wwn.as_deref() == Some(wwn))
            } else if let Some(path) = h.strip_prefix("by-path=") {
                // udev's path_id: pci-ADDR for virtio, pci-ADDR-scsi-…/-nvme-… below it.
                disks.iter().find(|d| {
                    d.pci.as_ref().is_some_and(|a| {
                        let base = format!("pci-{a}");
                        path == base || path.starts_with(&format!("{base}-"))
                    })
                })
            } else {
                let name = h.strip_prefix("/dev/").unwrap_or(h);
                disks.iter().find(|d| d.name == name)
            };
            found.ok_or_else(|| format!("no disk matches '{h}' (disks: {})", names()))
        }
        None => {
            let mut big: Vec<&Disk> = disks
                .iter()
                .filter(|d| d.size_bytes >= MIN_ROOT_DISK)
                .collect();
            big.sort_unstable_by(|a, b| a.size_bytes.cmp(&b.size_bytes).then(a.name.cmp(&b.name)));
            big.first()
                .copied()
                .ok_or_else(|| format!("no disk of at least 4 GiB (disks: {})", names()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, gib: u64, serial: &str) -> Disk {
        Disk {
            name: name.into(),
            size_bytes: gib << 30,
            logical_block: 512,
            physical_block: 512,
            model: None,
            extra: Default::default(),
            serial: Some(serial.into()),
            wwn: None,
            pci: Some(format!("0000:00:0{}.0", name.len() % 10)),
        }
    }

    #[test]
    fn hints_and_ironic_default() {
        let disks = [
            disk("vda", 2, "small"),
            disk("vdb", 20, "big"),
            disk("vdc", 8, "mid"),
            disk("vdd", 8, "mid2"),
        ];
        assert_eq!(
            choose(None, &disks).unwrap().name,
            "vdc",
            "smallest ≥ 4 GiB, then by name"
        );
        assert_eq!(choose(Some("vdb"), &disks).unwrap().name, "vdb");
        assert_eq!(choose(Some("/dev/vda"), &disks).unwrap().name, "vda");
        assert_eq!(choose(Some("serial=big"), &disks).unwrap().name, "vdb");
        assert!(choose(Some("serial=nope"), &disks)
            .unwrap_err()
            .contains("no disk matches 'serial=nope'"));
        assert!(choose(None, &disks[..1])
            .unwrap_err()
            .contains("no disk of at least 4 GiB"));
    }
}

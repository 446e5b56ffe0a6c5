//! The config-2 medium of a DHCP-less boot: a whole block device with an
//! ISO 9660 filesystem labelled `config-2` (in either case, as cloud-init
//! and glean accept it) — the virtual media CD Ironic attaches (its deploy
//! ISO carries network_data.json), or the same image on write-protected
//! removable virtual media. Never a fixed or writable disk: those are what
//! rivet deploys to and cleans, and a previous tenant may have left a
//! config-2 filesystem there to choose this boot's address, gateway, DNS
//! and VLAN (they sort before `sr0`, so the first one found would win).
//! FAT media are not read: fatfs panics on hostile directory entries
//! (the `config_drive` fuzz target found one). Partitions labelled config-2 are not
//! looked at: every deployed disk carries one with the instance's network,
//! which is not the provisioning network.

use super::blockdev::Disk;
use super::inventory;
use crate::io::BlockDevice;
use crate::wire::superblock::{self, Kind};
use std::path::Path;

/// Where network_data.json lives on a config drive.
pub const NETWORK_DATA: &str = "openstack/latest/network_data.json";
const MAX_BYTES: u32 = 1 << 20;

/// The block devices a config-2 medium is taken from, in the order they
/// are tried: optical drives, then write-protected removable media.
pub fn candidates(sys: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys.join("block")) else {
        return Vec::new();
    };
    let mut found: Vec<(bool, String)> = entries
        .flatten()
        .filter(|e| inventory::is_attached_media(&e.path()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!inventory::is_optical(&e.path()), name)
        })
        .collect();
    found.sort_unstable();
    found.into_iter().map(|(_, name)| name).collect()
}

/// The first config-2 medium's network_data.json: the device and the bytes.
pub fn network_data(sys: &Path) -> Option<(String, Vec<u8>)> {
    for name in candidates(sys) {
        let path = format!("/dev/{name}");
        let Ok(mut dev) = Disk::open_read_only(&path, 512) else {
            continue;
        };
        let mut head = vec![0u8; (superblock::PROBE_LEN as u64).min(dev.size()) as usize];
        if dev.read_at(0, &mut head).is_err() {
            continue;
        }
        let Some(fs) = superblock::probe(&head) else {
            continue;
        };
        if !fs
            .label
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case("config-2"))
        {
            continue;
        }
        let found = match fs.kind {
            Kind::Iso9660 => crate::fs::iso9660::read_file(&mut dev, NETWORK_DATA, MAX_BYTES)
                .map_err(|e| e.to_string()),
            _ => continue,
        };
        match found {
            Ok(Some(bytes)) => return Some((path, bytes)),
            Ok(None) => log::info!("{path}: config-2 without {NETWORK_DATA}"),
            Err(e) => log::warn!("{path}: config-2: {e}"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's /sys/block as real hardware names it: SATA and NVMe
    /// disks, a BMC's virtual CD, write-protected virtual USB media, a
    /// writable USB stick, a loop device.
    #[test]
    fn config_2_is_read_only_from_attached_media_never_from_disks() {
        let sys = std::env::temp_dir().join(format!("rivet-config2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&sys);
        let put = |rel: &str, text: &str| {
            let p = sys.join("block").join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        for (dev, kind, removable, ro) in [
            ("sda", "0", "0", "0"),
            ("sdb", "0", "1", "1"),
            ("sdc", "0", "1", "0"),
            ("sr0", "5", "1", "1"),
            ("sr1", "5", "1", "0"),
        ] {
            put(&format!("{dev}/device/type"), kind);
            put(&format!("{dev}/removable"), removable);
            put(&format!("{dev}/ro"), ro);
        }
        put("nvme0n1/removable", "0");
        put("nvme0n1/ro", "0");
        put("loop0/removable", "0");
        assert_eq!(candidates(&sys), ["sr0", "sr1", "sdb"]);
        std::fs::remove_dir_all(&sys).unwrap();
    }
}

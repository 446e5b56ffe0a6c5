//! The config-2 medium of a DHCP-less boot: a whole block device with an
//! ISO 9660 filesystem labelled `config-2` (in either case, as cloud-init
//! and glean accept it) — the virtual media CD Ironic attaches (its deploy
//! ISO carries network_data.json), or the same image attached as a disk.
//! FAT media are not read: fatfs panics on hostile directory entries
//! (fuzz/config_drive found one). Partitions labelled config-2 are not
//! looked at: every deployed disk carries one with the instance's network,
//! which is not the provisioning network.

use super::blockdev::Disk;
use crate::deploy::BlockDevice;
use crate::wire::superblock::{self, Kind};
use std::path::Path;

/// Where network_data.json lives on a config drive.
pub const NETWORK_DATA: &str = "openstack/latest/network_data.json";
const MAX_BYTES: u32 = 1 << 20;

/// The first config-2 medium's network_data.json: the device and the bytes.
pub fn network_data(sys: &Path) -> Option<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(sys.join("block"))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "dm-", "md"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort_unstable();
    for name in names {
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

//! The config-2 medium of a DHCP-less boot: a whole block device with an
//! ISO 9660 filesystem labelled `config-2` (in either case, as cloud-init
//! and glean accept it) — the virtual media CD Ironic attaches (its deploy
//! ISO carries network_data.json), or the same image on write-protected
//! removable virtual media. Never a fixed or writable disk: those are what
//! rivet deploys to and cleans, and a previous tenant may have left a
//! config-2 filesystem there to choose this boot's address, gateway, DNS
//! and VLAN (they sort before `sr0`, so the first one found would win).
//! FAT media (a vfat image on virtual USB) are read through rivet's own
//! FAT reader, bounded and fuzzed (fatfs panicked on hostile directory
//! entries: the `config_drive` fuzz target found one). Partitions labelled config-2 are not
//! looked at: every deployed disk carries one with the instance's network,
//! which is not the provisioning network.

use super::blockdev::Disk;
use super::inventory;
use crate::fs::fat::Fat;
use crate::fs::partition::Partition;
use crate::fs::FsError;
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
        match read_medium(&path) {
            Ok(Some(bytes)) => return Some((path, bytes)),
            Ok(None) => {}
            Err(e) => log::warn!("{path}: config-2: {e}"),
        }
    }
    None
}

/// network_data.json of the medium at `path` if it is labelled config-2
/// (ISO 9660, or FAT through rivet's own bounded reader); `None` for any
/// other medium.
pub fn read_medium(path: &str) -> Result<Option<Vec<u8>>, String> {
    let Ok(mut dev) = Disk::open_read_only(path, 512) else {
        return Ok(None);
    };
    let mut head = vec![0u8; (superblock::PROBE_LEN as u64).min(dev.size()) as usize];
    if dev.read_at(0, &mut head).is_err() {
        return Ok(None);
    }
    let Some(fs) = superblock::probe(&head) else {
        return Ok(None);
    };
    if !fs
        .label
        .as_deref()
        .is_some_and(|l| l.eq_ignore_ascii_case("config-2"))
    {
        return Ok(None);
    }
    let found = match fs.kind {
        Kind::Iso9660 => crate::fs::iso9660::read_file(&mut dev, NETWORK_DATA, MAX_BYTES)?,
        Kind::Vfat => {
            let size = dev.size();
            let part = Partition::new(Box::new(dev), 0, size).map_err(|e| e.to_string())?;
            let mut fat = Fat::open(Box::new(part)).map_err(|e| e.to_string())?;
            match fat.read(NETWORK_DATA, u64::from(MAX_BYTES)) {
                Ok(bytes) => Some(bytes),
                Err(FsError::NotFound(_)) => None,
                Err(e) => return Err(e.to_string()),
            }
        }
        _ => return Ok(None),
    };
    if found.is_none() {
        log::info!("{path}: config-2 without {NETWORK_DATA}");
    }
    Ok(found)
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

#[cfg(test)]
mod media {
    use super::*;
    use std::process::Command;

    fn run(cmd: &str, args: &[&str]) {
        let out = Command::new(cmd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A vfat config drive (cloud-init's other form, virtual USB media) and
    /// an ISO one, made by the real tools: both read; a vfat one labelled
    /// otherwise, or without the file, is nothing; one whose file's chain
    /// loops is an error, not a hang.
    #[test]
    fn network_data_from_fat_and_iso_config_drives() {
        let dir = std::env::temp_dir().join(format!("rivet-config2-media-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cd/openstack/latest")).unwrap();
        let json = br#"{"links": [], "networks": []}"#;
        std::fs::write(dir.join("cd/openstack/latest/network_data.json"), json).unwrap();
        let fat = dir.join("fat.img");
        let f = fat.to_str().unwrap();
        run("mkfs.vfat", &["-C", "-n", "CONFIG-2", f, "2048"]);
        run("mmd", &["-i", f, "::openstack", "::openstack/latest"]);
        let nd = dir.join("cd/openstack/latest/network_data.json");
        run(
            "mcopy",
            &[
                "-i",
                f,
                nd.to_str().unwrap(),
                "::openstack/latest/network_data.json",
            ],
        );
        assert_eq!(read_medium(f).unwrap().as_deref(), Some(&json[..]));
        let iso = dir.join("cd.iso");
        run(
            "genisoimage",
            &[
                "-quiet",
                "-r",
                "-V",
                "config-2",
                "-o",
                iso.to_str().unwrap(),
                dir.join("cd").to_str().unwrap(),
            ],
        );
        assert_eq!(
            read_medium(iso.to_str().unwrap()).unwrap().as_deref(),
            Some(&json[..])
        );
        let other = dir.join("other.img");
        run(
            "mkfs.vfat",
            &["-C", "-n", "DATA", other.to_str().unwrap(), "2048"],
        );
        assert_eq!(read_medium(other.to_str().unwrap()), Ok(None));
        let empty = dir.join("empty.img");
        run(
            "mkfs.vfat",
            &["-C", "-n", "config-2", empty.to_str().unwrap(), "2048"],
        );
        assert_eq!(read_medium(empty.to_str().unwrap()), Ok(None));
        // The directory openstack/ made endless: its cluster's FAT entry
        // pointed at itself (FAT12: two entries share three bytes).
        let mut bytes = std::fs::read(&fat).unwrap();
        let (reserved, sectors) = (
            u16::from_le_bytes([bytes[14], bytes[15]]) as usize,
            u16::from_le_bytes([bytes[22], bytes[23]]) as usize,
        );
        let root = (reserved + 2 * sectors) * 512;
        let mut reader = Fat::open(Box::new(bytes.clone())).unwrap();
        let c = reader
            .list(0)
            .unwrap()
            .into_iter()
            .find(|e| e.name == "openstack")
            .unwrap()
            .cluster as usize;
        for copy in 0..2 {
            let e = (reserved + copy * sectors) * 512 + c * 3 / 2;
            let v = u16::from_le_bytes([bytes[e], bytes[e + 1]]);
            let v = if c % 2 == 1 {
                (v & 0x000f) | ((c as u16) << 4)
            } else {
                (v & 0xf000) | c as u16
            };
            bytes[e..e + 2].copy_from_slice(&v.to_le_bytes());
        }
        // Fill the directory so no end marker stops the scan.
        let data = root + 512 * 16;
        let spc = bytes[13] as usize;
        let dir_at = data + (c - 2) * spc * 512;
        for e in bytes[dir_at..dir_at + spc * 512].chunks_mut(32) {
            if e[0] == 0 {
                e[0] = 0xe5;
            }
        }
        let looping = dir.join("loop.img");
        std::fs::write(&looping, &bytes).unwrap();
        let err = read_medium(looping.to_str().unwrap()).unwrap_err();
        assert!(err.contains("loops"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The config-2 medium of a DHCP-less boot: a whole block device with an
//! ISO 9660 or FAT filesystem labelled `config-2` (in either case, as
//! cloud-init and glean accept it) — the virtual media CD Ironic attaches
//! (its deploy ISO carries network_data.json), the same image attached as a
//! disk, or a vfat image on virtual USB. Partitions labelled config-2 are
//! not looked at: every deployed disk carries one with the instance's
//! network, which is not the provisioning network.

use super::blockdev::Disk;
use crate::deploy::BlockDevice;
use crate::wire::superblock::{self, Kind};
use std::io::Read;
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
            Kind::Vfat => fat_file(&mut dev, NETWORK_DATA, MAX_BYTES),
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

/// `path` from the FAT filesystem on `dev`, read only (nothing is flushed
/// back), refused past `max` bytes; `Ok(None)` if it is not there.
pub fn fat_file(
    dev: &mut dyn BlockDevice,
    path: &str,
    max: u32,
) -> Result<Option<Vec<u8>>, String> {
    let size = dev.size();
    // By reference, as the ESP code passes it: one copy of fatfs in /init.
    // Twice the medium: enough for any honest walk, an end to a looping one.
    let mut window = super::fat::Window::new(dev, 0, size).with_read_budget(size.saturating_mul(2));
    let fs = fatfs::FileSystem::new(&mut window, fatfs::FsOptions::new())
        .map_err(|e| format!("not a readable FAT filesystem: {e}"))?;
    let mut file = match fs.root_dir().open_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    let mut out = Vec::new();
    (&mut file)
        .take(u64::from(max) + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{path}: {e}"))?;
    if out.len() > max as usize {
        return Err(format!("{path}: larger than {max} bytes"));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::device::MemDisk;

    /// A vfat config drive as `mkfs.vfat -n config-2` and mtools make one
    /// (a virtual USB stick's image), holding `network_data`.
    fn vfat_config_drive(network_data: &[u8]) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("rivet-vfat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("c.img");
        let json = dir.join("network_data.json");
        std::fs::write(&json, network_data).unwrap();
        let run = |cmd: &str, args: &[&str]| {
            let status = std::process::Command::new(cmd)
                .args(args)
                .env("MTOOLS_SKIP_CHECK", "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("{cmd} (tests/setup installs it): {e}"));
            assert!(status.success(), "{cmd} {args:?}");
        };
        let i = img.to_str().unwrap();
        run("mkfs.vfat", &["-C", "-n", "config-2", i, "2048"]);
        run("mmd", &["-i", i, "::openstack", "::openstack/latest"]);
        let to = format!("::{NETWORK_DATA}");
        run("mcopy", &["-i", i, json.to_str().unwrap(), &to]);
        let bytes = std::fs::read(&img).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }

    fn disk(bytes: &[u8]) -> MemDisk {
        let mut d = MemDisk::new(bytes.len() as u64, 512);
        d.write_at(0, bytes).unwrap();
        d
    }

    #[test]
    fn a_vfat_config_drive_is_read_without_a_write() {
        let json = br#"{"links": [], "networks": []}"#;
        let image = vfat_config_drive(json);
        let fs = superblock::probe(&image[..superblock::PROBE_LEN]).unwrap();
        assert_eq!(fs.kind, Kind::Vfat);
        assert!(fs.label.unwrap().eq_ignore_ascii_case("config-2"));
        let mut d = disk(&image);
        assert_eq!(
            fat_file(&mut d, NETWORK_DATA, MAX_BYTES)
                .unwrap()
                .as_deref(),
            Some(&json[..])
        );
        assert_eq!(
            fat_file(&mut d, "openstack/latest/meta_data.json", MAX_BYTES),
            Ok(None)
        );
        assert!(fat_file(&mut d, NETWORK_DATA, 8)
            .unwrap_err()
            .contains("larger than 8 bytes"));
        let mut after = vec![0u8; image.len()];
        d.read_at(0, &mut after).unwrap();
        assert!(after == image, "the medium was written to");
    }

    #[test]
    fn a_window_past_its_read_budget_fails_instead_of_reading_on() {
        use std::io::{Read, Seek, SeekFrom};
        let mut d = disk(&vec![7u8; 64 << 10]);
        let mut w = crate::linux::fat::Window::new(&mut d, 0, 64 << 10).with_read_budget(8 << 10);
        let mut buf = vec![0u8; 8 << 10];
        w.read_exact(&mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 7));
        w.seek(SeekFrom::Start(32 << 10)).unwrap();
        let e = w.read_exact(&mut buf).unwrap_err();
        assert!(e.to_string().contains("read budget spent"), "{e}");
    }
}

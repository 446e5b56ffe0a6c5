//! Reading one file of an ISO 9660 filesystem (a config drive) through a
//! block device: the volume label, then the path walked directory by
//! directory, every size bounded.

use crate::io::BlockDevice;
use crate::wire::iso9660::{lookup, Extent, Volume, PVD_SECTOR, SECTOR};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// Directories larger than this are not a config drive's.
const MAX_DIR: u32 = 1 << 20;

fn read(dev: &mut dyn BlockDevice, e: Extent, max: u32) -> Result<Vec<u8>, String> {
    if e.len > max {
        return Err(format!(
            "{} bytes at sector {}: more than {max}",
            e.len, e.sector
        ));
    }
    let b = dev.logical_block() as u64;
    let at = e.sector as u64 * SECTOR as u64;
    let end = at + e.len as u64;
    if end > dev.size() {
        return Err(format!(
            "sector {} lies past the end of {}",
            e.sector,
            dev.name()
        ));
    }
    let start = at / b * b;
    let mut buf = vec![0u8; (end.div_ceil(b) * b - start) as usize];
    dev.read_at(start, &mut buf)
        .map_err(|err| err.to_string())?;
    Ok(buf[(at - start) as usize..(end - start) as usize].to_vec())
}

/// The label of the ISO 9660 filesystem on `dev`, if there is one.
pub fn label(dev: &mut dyn BlockDevice) -> Option<String> {
    let pvd = read(
        dev,
        Extent {
            sector: PVD_SECTOR as u32,
            len: SECTOR as u32,
            directory: false,
        },
        SECTOR as u32,
    )
    .ok()?;
    Volume::new_checked(&pvd)
        .ok()
        .map(|v| v.label().to_string())
}

/// The file at `path` (`openstack/latest/network_data.json`), at most
/// `max` bytes; `Ok(None)` if it is not there.
pub fn read_file(
    dev: &mut dyn BlockDevice,
    path: &str,
    max: u32,
) -> Result<Option<Vec<u8>>, String> {
    let pvd_extent = Extent {
        sector: PVD_SECTOR as u32,
        len: SECTOR as u32,
        directory: false,
    };
    let pvd = read(dev, pvd_extent, SECTOR as u32)?;
    let volume = Volume::new_checked(&pvd).map_err(|e| e.to_string())?;
    let mut here = volume.root().map_err(|e| e.to_string())?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        if !here.directory {
            return Ok(None);
        }
        let dir = read(dev, here, MAX_DIR)?;
        match lookup(&dir, part).map_err(|e| e.to_string())? {
            Some(next) => here = next,
            None => return Ok(None),
        }
        if i + 1 == parts.len() {
            return if here.directory {
                Ok(None)
            } else {
                read(dev, here, max).map(Some)
            };
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::MemDisk;

    /// A config drive as Ironic makes one (ironic/common/images.py:
    /// `genisoimage ... -ldots -allow-lowercase -allow-multidot -l -J -r -V config-2`).
    fn ironic_config_drive(files: &[(&str, &[u8])]) -> Vec<u8> {
        extern crate std;
        let dir = std::env::temp_dir().join(format!("rivet-iso-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, data) in files {
            let p = dir.join("tree").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let iso = dir.join("cd.iso");
        let status = std::process::Command::new("genisoimage")
            .args([
                "-o",
                iso.to_str().unwrap(),
                "-ldots",
                "-allow-lowercase",
                "-allow-multidot",
                "-l",
            ])
            .args([
                "-publisher",
                "ironic-config-drive 2026.1",
                "-quiet",
                "-J",
                "-r",
                "-V",
                "config-2",
            ])
            .arg(dir.join("tree"))
            .status()
            .expect("genisoimage (tests/setup installs it)");
        assert!(status.success());
        let bytes = std::fs::read(&iso).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }

    fn disk(bytes: &[u8], block: u32) -> MemDisk {
        let size = (bytes.len() as u64).div_ceil(4096) * 4096;
        let mut d = MemDisk::new(size, block);
        let mut padded = bytes.to_vec();
        padded.resize(size as usize, 0);
        d.write_at(0, &padded).unwrap();
        d
    }

    #[test]
    fn reads_network_data_from_a_config_drive_genisoimage_made() {
        let json = br#"{"links": [], "networks": []}"#;
        let iso = ironic_config_drive(&[
            ("openstack/latest/meta_data.json", b"{}"),
            ("openstack/latest/network_data.json", json),
            ("openstack/2015-10-15/network_data.json", b"old"),
        ]);
        for block in [512, 4096] {
            let mut d = disk(&iso, block);
            assert_eq!(label(&mut d).as_deref(), Some("config-2"));
            let got = read_file(&mut d, "openstack/latest/network_data.json", 1 << 20).unwrap();
            assert_eq!(got.as_deref(), Some(&json[..]));
            assert_eq!(
                read_file(&mut d, "openstack/latest/user_data", 1 << 20).unwrap(),
                None
            );
            assert_eq!(
                read_file(&mut d, "openstack/latest", 1 << 20).unwrap(),
                None
            );
            assert!(read_file(&mut d, "openstack/latest/network_data.json", 10).is_err());
        }
        let mut blank = MemDisk::new(1 << 20, 512);
        assert_eq!(label(&mut blank), None);
    }
}

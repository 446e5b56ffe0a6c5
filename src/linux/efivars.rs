//! The firmware's variables through efivarfs: each variable is a file
//! `NAME-VENDORGUID` holding the 4-byte attribute word, then the data. A
//! write must be one write(2) of both; the kernel checks `Boot####` and
//! `BootOrder` contents before it hands them to the firmware.

use super::sys;
use crate::boot::uefi::Nvram;
use crate::wire::efi::{BOOT_VARIABLE_ATTRIBUTES, GLOBAL_VARIABLE};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the kernel exposes efivarfs; present only when booted by UEFI.
pub const MOUNT_POINT: &str = "/sys/firmware/efi/efivars";

/// Whether the firmware that started this kernel was UEFI.
pub fn booted_uefi() -> bool {
    Path::new("/sys/firmware/efi").is_dir()
}

/// `EFI_GLOBAL_VARIABLE`'s variables in an efivarfs directory.
pub struct Efivarfs {
    dir: PathBuf,
}

impl Efivarfs {
    /// Opens the efivarfs at `dir`; an empty directory means it is not
    /// mounted (or the efivarfs module is missing).
    pub fn open(dir: &Path) -> Result<Efivarfs, String> {
        let mut entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if entries.next().is_none() {
            return Err(format!(
                "{}: no EFI variables (efivarfs not mounted?)",
                dir.display()
            ));
        }
        Ok(Efivarfs {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-{GLOBAL_VARIABLE}"))
    }
}

fn context(path: &Path, e: io::Error) -> String {
    format!("{}: {e}", path.display())
}

impl Nvram for Efivarfs {
    fn names(&mut self) -> Result<Vec<String>, String> {
        let suffix = format!("-{GLOBAL_VARIABLE}");
        let entries = std::fs::read_dir(&self.dir).map_err(|e| context(&self.dir, e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(&suffix))
                    .map(str::to_string)
            })
            .collect())
    }

    fn get(&mut self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(data) if data.len() >= 4 => Ok(Some(data[4..].to_vec())),
            Ok(_) => Err(format!("{}: shorter than its attributes", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(context(&path, e)),
        }
    }

    fn set(&mut self, name: &str, data: &[u8]) -> Result<(), String> {
        let path = self.path(name);
        if path.exists() {
            sys::clear_immutable(&path).map_err(|e| context(&path, e))?;
        }
        let mut record = BOOT_VARIABLE_ATTRIBUTES.to_le_bytes().to_vec();
        record.extend_from_slice(data);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| context(&path, e))?;
        match file.write(&record) {
            Ok(n) if n == record.len() => {
                // efivarfs sizes the file to what was written; a plain file
                // (the unit tests' stand-in) keeps a longer old tail.
                if file.metadata().map(|m| m.len()).unwrap_or(0) > n as u64 {
                    file.set_len(n as u64).map_err(|e| context(&path, e))?;
                }
                Ok(())
            }
            Ok(n) => Err(format!(
                "{}: short write ({n} of {} bytes)",
                path.display(),
                record.len()
            )),
            Err(e) => Err(context(&path, e)),
        }
    }

    fn delete(&mut self, name: &str) -> Result<(), String> {
        let path = self.path(name);
        match sys::clear_immutable(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(context(&path, e)),
            Ok(()) => {}
        }
        std::fs::remove_file(&path).map_err(|e| context(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::uefi;
    use crate::wire::efi;

    /// A directory standing in for efivarfs (same file format; a real
    /// efivarfs is exercised by the OVMF test in tests/qemu_ironic.rs).
    #[test]
    fn variables_round_trip_through_files() {
        let dir = std::env::temp_dir().join(format!("rivet-efivars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let order = dir.join(format!("BootOrder-{GLOBAL_VARIABLE}"));
        std::fs::write(&order, [7, 0, 0, 0, 0, 0]).unwrap();
        std::fs::write(
            dir.join("Other-00000000-0000-0000-0000-000000000000"),
            [7, 0, 0, 0],
        )
        .unwrap();
        let mut nv = Efivarfs::open(&dir).unwrap();
        assert_eq!(nv.names().unwrap(), vec!["BootOrder"]);
        let hd = efi::HardDrive {
            number: 1,
            start_lba: 2048,
            size_lba: 2048,
            signature: efi::DiskSignature::Mbr(1),
        };
        let loader = uefi::Loader {
            path: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
            label: "ironic1".into(),
        };
        // BootOrder names 0 but no Boot0000 exists: 0 is the first free number.
        assert_eq!(uefi::register(&mut nv, &hd, &[loader]), Ok(vec![0]));
        assert_eq!(std::fs::read(&order).unwrap(), [7, 0, 0, 0, 0, 0]);
        std::fs::write(&order, [7, 0, 0, 0, 5, 0, 0, 0]).unwrap();
        let loader = uefi::Loader {
            path: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
            label: "ironic1".into(),
        };
        // The same label again: Boot0000 is replaced, not duplicated.
        assert_eq!(uefi::register(&mut nv, &hd, &[loader]), Ok(vec![0]));
        assert_eq!(std::fs::read(&order).unwrap(), [7, 0, 0, 0, 0, 0, 5, 0]);
        let entry = std::fs::read(dir.join(format!("Boot0000-{GLOBAL_VARIABLE}"))).unwrap();
        assert_eq!(&entry[..4], &[7, 0, 0, 0]);
        assert_eq!(
            efi::LoadOption::new_checked(&entry[4..])
                .unwrap()
                .description(),
            "ironic1"
        );
        uefi::remove_entry(&mut nv, 0).unwrap();
        assert_eq!(nv.get("Boot0000"), Ok(None));
        assert_eq!(std::fs::read(&order).unwrap(), [7, 0, 0, 0, 5, 0]);
        assert_eq!(nv.delete("Boot0009"), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
        let err = Efivarfs::open(&dir).err().unwrap();
        assert!(err.contains("rivet-efivars"), "{err}");
    }
}

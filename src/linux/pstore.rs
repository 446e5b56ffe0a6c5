//! The kernel's persistent store (`pstore`: oops and panic records kept by
//! the firmware, EFI variables or ERST across boots), emptied by the
//! `erase_pstore` clean step as ironic-python-agent does: the records of a
//! previous tenant's crashes are its data. The filesystem is found in the
//! mount table, else mounted where the kernel expects it.

use std::path::{Path, PathBuf};

/// Where the kernel offers pstore (sysfs makes the directory).
pub const MOUNT_POINT: &str = "/sys/fs/pstore";

/// The pstore mount point named in a mount table (`/proc/mounts` lines:
/// device, mount point, type …).
pub fn mounted_at(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        match (f.next(), f.next(), f.next()) {
            (Some(_), Some(at), Some("pstore")) => Some(PathBuf::from(at)),
            _ => None,
        }
    })
}

/// Removes every record in `dir`; the names removed.
pub fn empty(dir: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut removed = Vec::new();
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = e.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|err| format!("{}: {err}", path.display()))?;
        removed.push(e.file_name().to_string_lossy().into_owned());
    }
    removed.sort();
    Ok(removed)
}

/// The step on this machine: the mounted pstore emptied, mounting it
/// first when it is not (PID 1 only); nothing to do where the kernel has
/// none.
pub fn erase() -> Result<Vec<String>, String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let dir = match mounted_at(&mounts) {
        Some(dir) => dir,
        None if std::process::id() == 1 && Path::new(MOUNT_POINT).is_dir() => {
            if let Err(e) = super::sys::mount("pstore", MOUNT_POINT, "pstore") {
                log::info!("erase_pstore: no pstore ({e})");
                return Ok(Vec::new());
            }
            PathBuf::from(MOUNT_POINT)
        }
        None => {
            log::info!("erase_pstore: no pstore found");
            return Ok(Vec::new());
        }
    };
    let removed = empty(&dir)?;
    log::info!(
        "erase_pstore: {} records removed from {}",
        removed.len(),
        dir.display()
    );
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_table_names_it_and_every_record_goes() {
        let mounts = "sysfs /sys sysfs rw 0 0\nproc /proc proc rw 0 0\npstore /sys/fs/pstore pstore rw,nosuid 0 0\n";
        assert_eq!(mounted_at(mounts), Some(PathBuf::from("/sys/fs/pstore")));
        assert_eq!(mounted_at("sysfs /sys sysfs rw 0 0\n"), None);
        let dir = std::env::temp_dir().join(format!("rivet-pstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in [
            "dmesg-efi-172583473501001",
            "dmesg-efi-172583473501002",
            "sub/x",
        ] {
            std::fs::write(dir.join(f), b"Oops: ...").unwrap();
        }
        assert_eq!(
            empty(&dir).unwrap(),
            [
                "dmesg-efi-172583473501001",
                "dmesg-efi-172583473501002",
                "sub"
            ]
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

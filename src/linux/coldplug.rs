//! Coldplug: load the carried modules whose aliases match the `modalias` of
//! the devices present, dependencies first, and repeat while loading one
//! module brings new devices (virtio_pci → virtio devices → virtio_blk).

use super::sys;
use crate::kmod::Index;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Coldplug<'a> {
    index: &'a Index,
    module_dir: PathBuf,
    loaded: BTreeSet<String>,
    failed: BTreeSet<String>,
}

/// Every `modalias` under `root`, without following symlinks (sysfs is full
/// of loops through them).
pub fn modaliases(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name() == "modalias" {
                if let Ok(text) = fs::read_to_string(entry.path()) {
                    let alias = text.trim();
                    if !alias.is_empty() {
                        found.push(alias.to_string());
                    }
                }
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

impl<'a> Coldplug<'a> {
    pub fn new(index: &'a Index, module_dir: &Path) -> Self {
        Coldplug {
            index,
            module_dir: module_dir.to_path_buf(),
            loaded: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    pub fn loaded(&self) -> &BTreeSet<String> {
        &self.loaded
    }

    /// One scan of `/sys/devices`; returns how many modules it loaded.
    pub fn pass(&mut self, sys_devices: &Path) -> usize {
        let mut count = 0;
        for alias in modaliases(sys_devices) {
            for wanted in self.index.matching(&alias) {
                if self.loaded.contains(wanted) || self.failed.contains(wanted) {
                    continue;
                }
                count += self.load_with_deps(wanted, &alias);
            }
        }
        count
    }

    /// Scans until a pass loads nothing.
    pub fn settle(&mut self, sys_devices: &Path) -> usize {
        let mut total = 0;
        loop {
            let n = self.pass(sys_devices);
            total += n;
            if n == 0 {
                return total;
            }
        }
    }

    /// Loads `name` and its dependencies whatever the devices say (for
    /// filesystems such as efivarfs, which no modalias names).
    pub fn load(&mut self, name: &str, reason: &str) -> usize {
        if self.loaded.contains(name) {
            return 0;
        }
        self.load_with_deps(name, reason)
    }

    fn load_with_deps(&mut self, wanted: &str, alias: &str) -> usize {
        let mut count = 0;
        for name in self.index.load_order(wanted) {
            if self.loaded.contains(name) {
                continue;
            }
            if self.failed.contains(name) {
                log::warn!("module {wanted} skipped: its dependency {name} failed to load");
                self.failed.insert(wanted.to_string());
                return count;
            }
            let file = &self.index.modules[name].file;
            match load_file(&self.module_dir.join(file)) {
                Ok(()) => {
                    if name == wanted {
                        log::info!("module {name} loaded (for {alias})");
                    } else {
                        log::info!("module {name} loaded (needed by {wanted})");
                    }
                    self.loaded.insert(name.to_string());
                    count += 1;
                }
                Err(errno) => {
                    log::error!(
                        "module {name} failed to load: errno {} ({errno})",
                        errno.raw_os_error()
                    );
                    self.failed.insert(name.to_string());
                    self.failed.insert(wanted.to_string());
                    return count;
                }
            }
        }
        count
    }
}

/// Coldplugs again, as PID 1, for devices that came after boot's coldplug
/// settled (a BMC's USB CD attached or enumerated late): what they need is
/// loaded; modules already in the kernel (`/sys/module/*/initstate`) are
/// left alone. Returns how many it loaded.
pub fn late_pass() -> usize {
    let Some(index) = carried_index() else {
        return 0;
    };
    let mut coldplug = Coldplug::new(&index, &Path::new("/").join(crate::initramfs::MODULE_DIR));
    coldplug.loaded = in_kernel();
    coldplug.settle(Path::new("/sys/devices"))
}

/// Loads a carried module and its dependencies by name, as PID 1, for a
/// job that needs one no device names (md's RAID personalities). Nothing
/// to do when the kernel has it already, loaded or built in (a built-in
/// module has a /sys/module directory without `initstate`).
pub fn load_named(name: &str, reason: &str) -> Result<(), String> {
    if Path::new("/sys/module").join(name).exists() {
        return Ok(());
    }
    let index = carried_index().ok_or("this system has no rivet module index")?;
    if !index.modules.contains_key(name) {
        return Err(format!(
            "{name} is not carried by this ramdisk (rivet mkinitramfs --modules {name} adds it)"
        ));
    }
    let mut coldplug = Coldplug::new(&index, &Path::new("/").join(crate::initramfs::MODULE_DIR));
    coldplug.loaded = in_kernel();
    coldplug.load(name, reason);
    match coldplug.loaded.contains(name) {
        true => Ok(()),
        false => Err(format!("{name} failed to load (see the log above)")),
    }
}

/// The ramdisk's module index; None where there is none (not a ramdisk).
fn carried_index() -> Option<Index> {
    let text = fs::read_to_string(Path::new("/").join(crate::initramfs::INDEX_PATH)).ok()?;
    Index::parse(&text).ok()
}

/// Modules the kernel has already (`/sys/module/*/initstate`).
fn in_kernel() -> BTreeSet<String> {
    let mut loaded = BTreeSet::new();
    if let Ok(entries) = fs::read_dir("/sys/module") {
        for e in entries.flatten() {
            if e.path().join("initstate").exists() {
                loaded.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    loaded
}

/// The largest module rivet inflates (Debian's largest, amdgpu, is 10 MB).
const MAX_MODULE: usize = 64 << 20;

/// Loads a module file: plain (`NAME.ko`, handed to the kernel as a file)
/// or zstd-compressed (`NAME.ko.zst`, inflated here: the kernels rivet
/// targets are built without CONFIG_MODULE_DECOMPRESS).
fn load_file(path: &Path) -> Result<(), sys::Errno> {
    if path.extension().is_some_and(|e| e == "zst") {
        let image = inflate(path).map_err(|e| {
            log::error!("{e}");
            sys::Errno::NOEXEC
        })?;
        return sys::load_module_image(&image);
    }
    sys::load_module(path)
}

/// The module inside a zstd file (one frame, as `zstd` and rivet's
/// mkinitramfs write it), at most [`MAX_MODULE`] bytes.
fn inflate(path: &Path) -> Result<Vec<u8>, String> {
    use crate::deploy::decompress::{ZstdFrame, ZSTD_MAX_WINDOW};
    let shown = path.display().to_string();
    // The initramfs holds the file already: its size is bounded by it.
    let packed = fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut frame =
        ZstdFrame::new(&packed, ZSTD_MAX_WINDOW).map_err(|e| format!("{shown}: zstd: {e}"))?;
    let mut image = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (n, ended) = frame
            .fill(&mut chunk)
            .map_err(|e| format!("{shown}: zstd: {e}"))?;
        if image.len() + n > MAX_MODULE {
            return Err(format!("{shown}: inflates past {MAX_MODULE} bytes"));
        }
        image.extend_from_slice(&chunk[..n]);
        if ended && frame.rest().is_empty() {
            return Ok(image);
        }
        if ended {
            return Err(format!("{shown}: bytes after the zstd frame"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_modules_inflate_and_bad_ones_are_named() {
        let dir = std::env::temp_dir().join(format!("rivet-coldplug-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let plain: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let packed = std::process::Command::new("zstd")
            .args(["-19", "-q", "-c", "--check"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&plain)?;
                child.wait_with_output()
            })
            .unwrap()
            .stdout;
        assert!(packed.len() < plain.len() / 4);
        let good = dir.join("m.ko.zst");
        fs::write(&good, &packed).unwrap();
        assert_eq!(inflate(&good).unwrap(), plain);
        let cut = dir.join("cut.ko.zst");
        fs::write(&cut, &packed[..packed.len() / 2]).unwrap();
        let e = inflate(&cut).unwrap_err();
        assert!(e.starts_with(&format!("{}: zstd: ", cut.display())), "{e}");
        let junk = dir.join("junk.ko.zst");
        fs::write(&junk, b"\x7fELF not zstd at all").unwrap();
        assert!(inflate(&junk).unwrap_err().contains("zstd"));
        // What the loader hands the kernel when it cannot inflate.
        assert_eq!(load_file(&junk), Err(sys::Errno::NOEXEC));
        let _ = fs::remove_dir_all(dir);
    }
}

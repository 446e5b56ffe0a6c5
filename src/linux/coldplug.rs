//! Coldplug: load the carried modules whose aliases match the `modalias` of
//! the devices present, dependencies first, and repeat while loading one
//! module brings new devices (virtio_pci → virtio devices → virtio_blk).

use super::sys;
use crate::modules::Index;
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
            match sys::load_module(&self.module_dir.join(file)) {
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

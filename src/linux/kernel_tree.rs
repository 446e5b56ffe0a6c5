//! An extracted kernel package on the build host: `DIR/lib/modules/<version>`
//! with `.ko` files somewhere below, as Debian ships it (no modules.dep: each
//! module's `.modinfo` is read instead).

use crate::modules::normalize;
use crate::wire::{elf::Elf, modinfo::ModInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub struct KernelTree {
    pub version: String,
    pub root: PathBuf,
    /// Normalized module name → path of its `.ko`.
    files: BTreeMap<String, PathBuf>,
    /// Modules compressed in a form rivet cannot read (`.ko.xz`, …).
    compressed: BTreeSet<String>,
    /// Modules built into the kernel (`modules.builtin`): nothing to carry.
    builtin: BTreeSet<String>,
}

fn module_name_of(path: &Path) -> Option<(String, bool)> {
    let file = path.file_name()?.to_str()?;
    if let Some(stem) = file.strip_suffix(".ko") {
        return Some((normalize(stem), false));
    }
    for ext in [".ko.xz", ".ko.zst", ".ko.gz"] {
        if let Some(stem) = file.strip_suffix(ext) {
            return Some((normalize(stem), true));
        }
    }
    None
}

impl KernelTree {
    /// Opens `dir/lib/modules/<version>`; `version` may be omitted when
    /// there is exactly one.
    pub fn open(dir: &Path, version: Option<&str>) -> Result<KernelTree, String> {
        let base = dir.join("lib/modules");
        let version = match version {
            Some(v) => v.to_string(),
            None => {
                let mut versions: Vec<String> = fs::read_dir(&base)
                    .map_err(|e| {
                        format!(
                            "{}: {e} (expected an extracted kernel package)",
                            base.display()
                        )
                    })?
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                versions.sort_unstable();
                match versions.len() {
                    1 => versions.remove(0),
                    0 => return Err(format!("{}: no kernel version directory", base.display())),
                    _ => {
                        return Err(format!(
                            "{}: several kernel versions ({}); choose one with --kver",
                            base.display(),
                            versions.join(", ")
                        ))
                    }
                }
            }
        };
        let root = base.join(&version);
        if !root.is_dir() {
            return Err(format!("{}: not a directory", root.display()));
        }
        let mut tree = KernelTree {
            version,
            root: root.clone(),
            files: BTreeMap::new(),
            compressed: BTreeSet::new(),
            builtin: BTreeSet::new(),
        };
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d)
                .map_err(|e| format!("{}: {e}", d.display()))?
                .flatten()
            {
                let path = entry.path();
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(path);
                } else if let Some((name, compressed)) = module_name_of(&path) {
                    if compressed {
                        tree.compressed.insert(name);
                    } else {
                        tree.files.insert(name, path);
                    }
                }
            }
        }
        if let Ok(text) = fs::read_to_string(root.join("modules.builtin")) {
            tree.builtin = text
                .lines()
                .filter_map(|l| module_name_of(Path::new(l)))
                .map(|(n, _)| n)
                .collect();
        }
        Ok(tree)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// Reads a module file and its `.modinfo`.
    pub fn read(&self, name: &str) -> Result<(ModInfo, Vec<u8>), String> {
        let name = normalize(name);
        let Some(path) = self.files.get(&name) else {
            if self.compressed.contains(&name) {
                return Err(format!(
                    "module {name} is compressed (.ko.xz/.zst/.gz) in {}; rivet carries only plain .ko files",
                    self.root.display()
                ));
            }
            return Err(format!(
                "module {name} not found under {}",
                self.root.display()
            ));
        };
        let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let section = Elf::new_checked(&bytes)
            .and_then(|elf| elf.section(".modinfo"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let info = ModInfo::parse(section).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((info, bytes))
    }
}

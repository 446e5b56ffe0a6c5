//! An extracted kernel package on the build host: `DIR/lib/modules/<version>`
//! with `.ko` files somewhere below, as Debian ships it (no modules.dep: each
//! module's `.modinfo` is read instead).

use crate::kmod::normalize;
use crate::wire::{elf::Elf, modinfo::ModInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub struct KernelTree {
    pub version: String,
    pub root: PathBuf,
    /// Normalized module name → path of its `.ko`.
    files: BTreeMap<String, PathBuf>,
    /// Normalized module name → its path below `root` (`kernel/drivers/…/x.ko`).
    relative: BTreeMap<String, String>,
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
            relative: BTreeMap::new(),
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
                    let relative = path.strip_prefix(&root).unwrap_or(&path);
                    tree.relative
                        .insert(name.clone(), relative.to_string_lossy().into_owned());
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

    /// The modules a rule selects, by name order. A rule with a `/` is a
    /// path below `kernel/` (or below the version directory, for `updates/`
    /// and `extra/`), each part an fnmatch glob; it takes the modules it
    /// names and everything below the directories it names, so
    /// `drivers/net/ethernet/broadcom/*` takes `broadcom/bnxt/bnxt_en.ko`
    /// too. A rule without one is a module name glob (`hv_*`).
    pub fn select(&self, rule: &str) -> Vec<String> {
        self.relative
            .iter()
            .filter(|(name, path)| rule_selects(rule, name, path))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether the tree has a plain `.ko` of this module.
    pub fn has(&self, name: &str) -> bool {
        self.files.contains_key(&normalize(name))
    }

    /// Every plain module's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
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

/// Whether `rule` (see [`KernelTree::select`]) selects the module `name`
/// found at `path` (relative to the version directory).
pub fn rule_selects(rule: &str, name: &str, path: &str) -> bool {
    use crate::kmod::alias_matches;
    let rule = rule.trim_matches('/');
    if !rule.contains('/') {
        return alias_matches(&normalize(rule), name);
    }
    let rule = rule.strip_prefix("kernel/").unwrap_or(rule);
    let path = path.strip_prefix("kernel/").unwrap_or(path);
    let mut parts: Vec<&str> = rule.split('/').collect();
    if let Some(last) = parts.last_mut() {
        *last = last.split_once(".ko").map_or(*last, |(stem, _)| stem);
    }
    let mut names: Vec<String> = path.split('/').map(str::to_string).collect();
    // The file's part is matched as the module file name and as the name.
    if let Some(last) = names.last_mut() {
        if let Some((stem, _)) = last.split_once(".ko") {
            *last = stem.to_string();
        }
    }
    if parts.len() > names.len() {
        return false;
    }
    let last = names.len() - 1;
    parts.iter().zip(&names).enumerate().all(|(i, (p, n))| {
        alias_matches(p, n) || (i == last && alias_matches(&normalize(p), &normalize(n)))
    })
}

#[cfg(test)]
mod tests {
    use super::rule_selects;

    #[test]
    fn rules_select_by_path_below_kernel_or_by_name() {
        let bnxt = "kernel/drivers/net/ethernet/broadcom/bnxt/bnxt_en.ko";
        let tg3 = "kernel/drivers/net/ethernet/broadcom/tg3.ko";
        let netvsc = "kernel/drivers/net/hyperv/hv_netvsc.ko";
        for (rule, name, path, selected) in [
            ("drivers/net/ethernet/broadcom/*", "bnxt_en", bnxt, true),
            ("drivers/net/ethernet/broadcom/*", "tg3", tg3, true),
            ("drivers/net/ethernet", "bnxt_en", bnxt, true),
            ("kernel/drivers/net/ethernet/", "tg3", tg3, true),
            ("drivers/net/ethernet/broadcom/tg3", "tg3", tg3, true),
            ("drivers/net/ethernet/broadcom/tg3.ko", "tg3", tg3, true),
            ("drivers/net/ethernet/intel/*", "tg3", tg3, false),
            (
                "drivers/net/ethernet/broadcom/bnxt/bnxt_en/more",
                "bnxt_en",
                bnxt,
                false,
            ),
            ("drivers/*/hyperv", "hv_netvsc", netvsc, true),
            ("drivers/net", "hv_netvsc", netvsc, true),
            ("drivers/ne", "hv_netvsc", netvsc, false),
            ("hv_*", "hv_netvsc", netvsc, true),
            ("hv-netvsc", "hv_netvsc", netvsc, true),
            ("tg3", "bnxt_en", bnxt, false),
            ("updates/dkms/*", "zfs", "updates/dkms/zfs.ko", true),
            (
                "drivers/scsi/xen-scsifront",
                "xen_scsifront",
                "kernel/drivers/scsi/xen-scsifront.ko",
                true,
            ),
            (
                "drivers/scsi/xen_scsifront",
                "xen_scsifront",
                "kernel/drivers/scsi/xen-scsifront.ko",
                true,
            ),
        ] {
            assert_eq!(rule_selects(rule, name, path), selected, "{rule} on {path}");
        }
    }
}

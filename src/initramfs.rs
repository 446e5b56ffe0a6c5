//! Assembles rivet's initramfs: `/init`, the carried modules flat under
//! `/lib/modules`, and the module index PID 1 reads at boot. Entries are
//! sorted and carry no timestamps or owners, so the same inputs always give
//! the same bytes.

use crate::modules::{self, Index, Module};
use crate::wire::{cpio, gzip, modinfo::ModInfo};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Where modules live inside the initramfs.
pub const MODULE_DIR: &str = "lib/modules";
/// The alias and dependency index (see [`crate::modules`]).
pub const INDEX_PATH: &str = "lib/modules/modules.rivet";
/// Mount points and scratch directories PID 1 expects to exist.
pub const DIRS: &[&str] = &["dev", "lib", MODULE_DIR, "proc", "run", "sys", "tmp"];

/// gzip level used for the archive (miniz's scale; 10 is its slowest, best).
pub const GZIP_LEVEL: u8 = 10;

/// One module to carry: its name, `.modinfo` and file contents.
pub struct Carried<'a> {
    pub name: String,
    pub info: ModInfo,
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Dependency(modules::DepError),
    BadAlias {
        module: String,
        alias: String,
        why: modules::PatternError,
    },
    Cpio(cpio::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Dependency(e) => write!(f, "{e}"),
            Error::BadAlias { module, alias, why } => {
                write!(f, "module {module}: alias '{alias}': {why}")
            }
            Error::Cpio(e) => write!(f, "{e}"),
        }
    }
}

/// Builds the index for a closed set of modules: every dependency of every
/// module must be in the set.
pub fn index_for(carried: &[Carried]) -> Result<Index, Error> {
    let by_name: BTreeMap<&str, &Carried> = carried.iter().map(|c| (c.name.as_str(), c)).collect();
    let deps_of = |name: &str| {
        by_name.get(name).map(|c| {
            c.info
                .depends
                .iter()
                .map(|d| modules::normalize(d))
                .collect()
        })
    };
    let mut index = Index::default();
    for c in carried {
        let mut order = modules::resolve(&[c.name.as_str()], deps_of).map_err(Error::Dependency)?;
        order.pop(); // the module itself comes last
        for alias in &c.info.aliases {
            modules::validate_pattern(alias).map_err(|why| Error::BadAlias {
                module: c.name.clone(),
                alias: alias.clone(),
                why,
            })?;
            index.aliases.push((alias.clone(), c.name.clone()));
        }
        let module = Module {
            name: c.name.clone(),
            file: format!("{}.ko", c.name),
            deps: order,
        };
        index.modules.insert(c.name.clone(), module);
    }
    Ok(index)
}

/// The uncompressed cpio archive.
pub fn archive(init: &[u8], carried: &[Carried]) -> Result<Vec<u8>, Error> {
    let index = index_for(carried)?;
    let index_text = index.render();
    let mut files: BTreeMap<String, (u32, &[u8])> = BTreeMap::new();
    files.insert(String::from("init"), (0o755, init));
    files.insert(String::from(INDEX_PATH), (0o644, index_text.as_bytes()));
    for c in carried {
        files.insert(format!("{MODULE_DIR}/{}.ko", c.name), (0o644, c.bytes));
    }
    // Directories and files in one sorted walk, so parents precede children.
    let mut names: Vec<&str> = DIRS
        .iter()
        .copied()
        .chain(files.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    let mut w = cpio::Writer::new();
    for name in names {
        match files.get(name) {
            Some((perm, data)) => w.file(name, *perm, data),
            None => w.dir(name, 0o755),
        }
        .map_err(Error::Cpio)?;
    }
    Ok(w.finish())
}

/// The gzip-compressed initramfs, ready for the kernel.
pub fn build(init: &[u8], carried: &[Carried]) -> Result<Vec<u8>, Error> {
    Ok(gzip::compress(&archive(init, carried)?, GZIP_LEVEL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn module(name: &str, depends: &[&str], aliases: &[&str]) -> Carried<'static> {
        Carried {
            name: name.to_string(),
            info: ModInfo {
                name: Some(name.to_string()),
                depends: depends.iter().map(|s| s.to_string()).collect(),
                aliases: aliases.iter().map(|s| s.to_string()).collect(),
                softdeps_pre: vec![],
            },
            bytes: b"\x7fELF...",
        }
    }

    #[test]
    fn archive_layout_and_index() {
        let mods = [
            module(
                "virtio_blk",
                &["virtio", "virtio_ring"],
                &["virtio:d00000002v*"],
            ),
            module("virtio", &["virtio_ring"], &[]),
            module("virtio_ring", &[], &[]),
        ];
        let bytes = archive(b"INIT", &mods).unwrap();
        let entries: Vec<_> = cpio::Reader::new(&bytes).collect::<Result<_, _>>().unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            vec![
                "dev",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/modules.rivet",
                "lib/modules/virtio.ko",
                "lib/modules/virtio_blk.ko",
                "lib/modules/virtio_ring.ko",
                "proc",
                "run",
                "sys",
                "tmp"
            ]
        );
        assert_eq!(entries[1].mode, cpio::S_IFREG | 0o755);
        assert_eq!(entries[1].data, b"INIT");
        let index = Index::parse(core::str::from_utf8(entries[4].data).unwrap()).unwrap();
        assert_eq!(
            index.load_order("virtio_blk"),
            vec!["virtio_ring", "virtio", "virtio_blk"]
        );
        assert_eq!(
            index.matching("virtio:d00000002v00001AF4"),
            vec!["virtio_blk"]
        );
    }

    #[test]
    fn reproducible_whatever_the_input_order() {
        let a = [module("b", &[], &[]), module("a", &["b"], &[])];
        let b = [module("a", &["b"], &[]), module("b", &[], &[])];
        assert_eq!(build(b"x", &a).unwrap(), build(b"x", &b).unwrap());
        let unpacked = gzip::decompress(&build(b"x", &a).unwrap()).unwrap();
        assert_eq!(unpacked, archive(b"x", &a).unwrap());
    }

    #[test]
    fn missing_dependency_and_bad_alias_are_errors() {
        let missing = [module("virtio_net", &["net_failover"], &[])];
        assert!(matches!(archive(b"", &missing), Err(Error::Dependency(_))));
        let bad = [module("x", &[], &["pci:v[0"])];
        let err = archive(b"", &bad).unwrap_err();
        assert!(
            err.to_string().contains("module x: alias 'pci:v[0'"),
            "{err}"
        );
    }
}

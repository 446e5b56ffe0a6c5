//! Assembles rivet's initramfs: `/init`, the carried modules flat under
//! `/lib/modules`, and the module index PID 1 reads at boot. Entries are
//! sorted and carry no timestamps or owners, so the same inputs always give
//! the same bytes.

use crate::kmod::{self, Index, Module};
use crate::wire::{cpio, modinfo::ModInfo};
use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Where modules live inside the initramfs.
pub const MODULE_DIR: &str = "lib/modules";
/// The alias and dependency index (see [`crate::kmod`]).
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
    /// `bytes` is a zstd frame of the module, which PID 1 inflates before
    /// loading it (the kernel rivet targets has no CONFIG_MODULE_DECOMPRESS).
    pub zstd: bool,
}

impl Carried<'_> {
    /// The file's name in [`MODULE_DIR`] and in the index.
    pub fn file(&self) -> String {
        match self.zstd {
            true => format!("{}.ko.zst", self.name),
            false => format!("{}.ko", self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Dependency(kmod::DepError),
    BadAlias {
        module: String,
        alias: String,
        why: kmod::PatternError,
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
        by_name
            .get(name)
            .map(|c| c.info.depends.iter().map(|d| kmod::normalize(d)).collect())
    };
    let mut index = Index::default();
    for c in carried {
        let mut order = kmod::resolve(&[c.name.as_str()], deps_of).map_err(Error::Dependency)?;
        order.pop(); // the module itself comes last
        for alias in &c.info.aliases {
            kmod::validate_pattern(alias).map_err(|why| Error::BadAlias {
                module: c.name.clone(),
                alias: alias.clone(),
                why,
            })?;
            index.aliases.push((alias.clone(), c.name.clone()));
        }
        let module = Module {
            name: c.name.clone(),
            file: c.file(),
            deps: order,
        };
        index.modules.insert(c.name.clone(), module);
    }
    Ok(index)
}

/// A file carried besides `/init` and the modules (the CA bundle).
pub struct Extra<'a> {
    /// Path inside the archive, without a leading `/`.
    pub path: String,
    pub mode: u32,
    pub bytes: &'a [u8],
}

/// The uncompressed cpio archive.
pub fn archive(init: &[u8], carried: &[Carried], extra: &[Extra]) -> Result<Vec<u8>, Error> {
    let mut files = contents(carried, extra)?;
    files.insert(String::from("init"), (0o755, Cow::Borrowed(init)));
    cpio_of(&files)
}

/// The archive in two: `/init` alone, and the rest. The kernel unpacks
/// concatenated (compressed) archives one after the other, so each part
/// can be compressed its own way: x86 code compresses 5% better through
/// xz's BCJ filter, kernel modules (relocatable objects) 9% worse.
pub fn archive_parts(
    init: &[u8],
    carried: &[Carried],
    extra: &[Extra],
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut first = BTreeMap::new();
    first.insert(String::from("init"), (0o755, Cow::Borrowed(init)));
    Ok((cpio_of(&first)?, cpio_of(&contents(carried, extra)?)?))
}

type Files<'a> = BTreeMap<String, (u32, Cow<'a, [u8]>)>;

/// Everything but /init: the module index, the modules, the extra files.
fn contents<'a>(carried: &[Carried<'a>], extra: &[Extra<'a>]) -> Result<Files<'a>, Error> {
    let index = index_for(carried)?.render().into_bytes();
    let mut files: Files<'a> = BTreeMap::new();
    files.insert(String::from(INDEX_PATH), (0o644, Cow::Owned(index)));
    for c in carried {
        files.insert(
            format!("{MODULE_DIR}/{}", c.file()),
            (0o644, Cow::Borrowed(c.bytes)),
        );
    }
    for e in extra {
        files.insert(
            e.path.trim_start_matches('/').into(),
            (e.mode, Cow::Borrowed(e.bytes)),
        );
    }
    Ok(files)
}

fn cpio_of(files: &Files) -> Result<Vec<u8>, Error> {
    // Every file's parents exist, created before it: directories and
    // files go in one sorted walk.
    let mut dirs: Vec<String> = Vec::new();
    if files.keys().any(|n| n != "init") {
        dirs.extend(DIRS.iter().map(|d| String::from(*d)));
    }
    for name in files.keys() {
        let mut at = 0;
        while let Some(i) = name[at..].find('/') {
            dirs.push(String::from(&name[..at + i]));
            at += i + 1;
        }
    }
    let mut names: Vec<&str> = dirs
        .iter()
        .map(String::as_str)
        .chain(files.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cpio::Reader;

    #[test]
    fn extra_files_come_after_their_parent_directories() {
        let pem = b"-----BEGIN CERTIFICATE-----\n";
        let extra = [Extra {
            path: "/etc/ssl/certs/ca-certificates.crt".into(),
            mode: 0o644,
            bytes: pem,
        }];
        let archive = archive(b"\x7fELF", &[], &extra).unwrap();
        let entries: Vec<(String, Vec<u8>)> = Reader::new(&archive)
            .map(|e| e.unwrap())
            .map(|e| (e.name.to_string(), e.data.to_vec()))
            .collect();
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        let at = |n: &str| {
            names
                .iter()
                .position(|x| *x == n)
                .unwrap_or_else(|| panic!("{n} missing: {names:?}"))
        };
        assert!(at("etc") < at("etc/ssl"));
        assert!(at("etc/ssl") < at("etc/ssl/certs"));
        assert!(at("etc/ssl/certs") < at("etc/ssl/certs/ca-certificates.crt"));
        assert_eq!(entries[at("etc/ssl/certs/ca-certificates.crt")].1, pem);
        assert_eq!(
            names.iter().filter(|n| **n == "lib").count(),
            1,
            "{names:?}"
        );
        assert!(at("init") < names.len());
    }
}

//! ext2/3/4 through `ext4-view` (no_std, read-only: extents, htree
//! directories, checksums, the journal replayed in memory).

use super::{FsError, Kind, ReadAt, RootFs};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use ext4_view::{Ext4, Ext4Error, Ext4Read, FileType};

struct Source(Box<dyn ReadAt>);

impl Ext4Read for Source {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn core::error::Error + Send + Sync + 'static>> {
        self.0
            .read_at(start_byte, dst)
            .map_err(|e| Box::new(e) as _)
    }
}

pub struct Ext4Root {
    fs: Ext4,
}

fn error(path: &str, e: Ext4Error) -> FsError {
    match e {
        Ext4Error::NotFound => FsError::NotFound(path.to_string()),
        Ext4Error::NotADirectory => FsError::NotADirectory(path.to_string()),
        Ext4Error::IsADirectory | Ext4Error::IsASpecialFile => FsError::NotAFile(path.to_string()),
        Ext4Error::TooManySymlinks => FsError::SymlinkLoop(path.to_string()),
        Ext4Error::Incompatible(i) => FsError::Unsupported(format!("ext4: {i}")),
        Ext4Error::Io(e) => FsError::Io(format!("{e}")),
        other => FsError::Corrupt(format!("ext4, reading {path}: {other}")),
    }
}

fn kind(t: FileType) -> Kind {
    if t.is_dir() {
        Kind::Dir
    } else if t.is_regular_file() {
        Kind::File
    } else if t.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

/// Most block groups accepted: 32 TiB of 4 KiB blocks. ext4-view sizes its
/// descriptor table from the superblock before checking it, so the
/// superblock's claims are checked here first (a crafted one asked for
/// 4 GiB, found by the `filesystems` fuzz target).
const MAX_GROUPS: u64 = 1 << 18;

/// The superblock's geometry, checked against the device it is on.
fn check_geometry(source: &mut dyn ReadAt) -> Result<(), FsError> {
    let mut sb = [0u8; 1024];
    source.read_at(1024, &mut sb)?;
    let le32 = |at: usize| u64::from(u32::from_le_bytes(sb[at..at + 4].try_into().expect("4")));
    if sb[56..58] != [0x53, 0xef] {
        return Err(FsError::Corrupt("ext4: no superblock magic".into()));
    }
    let log = le32(24);
    if log > 6 {
        return Err(FsError::Corrupt(format!("ext4: block size 2^(10+{log})")));
    }
    let block = 1024u64 << log;
    // ext4-view counts s_blocks_count_hi whether or not the 64bit feature
    // is on (the format says it only counts with it): check what the
    // reader will use, or a crafted non-64bit superblock with a high word
    // asks it for billions of groups (found by the `filesystems` fuzz target).
    let blocks = le32(4) | (le32(0x150) << 32);
    let per_group = le32(32);
    let first = le32(20);
    let bad = |what: String| Err(FsError::Corrupt(format!("ext4: {what}")));
    if per_group < 8 || per_group > 8 * block || blocks <= first {
        return bad(format!("{blocks} blocks, {per_group} per group"));
    }
    if blocks
        .checked_mul(block)
        .is_none_or(|bytes| bytes > source.size())
    {
        return bad(format!(
            "{blocks} blocks of {block} bytes do not fit the {}-byte partition",
            source.size()
        ));
    }
    let groups = (blocks - first).div_ceil(per_group);
    if groups > MAX_GROUPS {
        return Err(FsError::Unsupported(format!(
            "ext4 with {groups} block groups (more than {MAX_GROUPS})"
        )));
    }
    Ok(())
}

impl Ext4Root {
    /// Reads the superblock, group descriptors and journal of `source`.
    pub fn load(mut source: Box<dyn ReadAt>) -> Result<Ext4Root, FsError> {
        check_geometry(source.as_mut())?;
        Ext4::load(Box::new(Source(source)))
            .map(|fs| Ext4Root { fs })
            .map_err(|e| error("/", e))
    }

    pub fn uuid(&self) -> String {
        self.fs.uuid().to_string()
    }
}

impl RootFs for Ext4Root {
    fn kind_name(&self) -> &'static str {
        "ext4"
    }

    fn kind(&mut self, path: &str) -> Result<Option<Kind>, FsError> {
        match self.fs.metadata(path) {
            Ok(m) => Ok(Some(kind(m.file_type()))),
            Err(Ext4Error::NotFound) => Ok(None),
            Err(e) => Err(error(path, e)),
        }
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let meta = self.fs.metadata(path).map_err(|e| error(path, e))?;
        if !meta.file_type().is_regular_file() {
            return Err(FsError::NotAFile(path.to_string()));
        }
        if meta.len() > limit {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
                limit,
            });
        }
        self.fs.read(path).map_err(|e| error(path, e))
    }

    fn list(&mut self, path: &str) -> Result<Vec<(String, Kind)>, FsError> {
        let mut out = Vec::new();
        for entry in self.fs.read_dir(path).map_err(|e| error(path, e))? {
            let entry = entry.map_err(|e| error(path, e))?;
            let name = entry.file_name();
            let Ok(name) = name.as_str() else {
                continue; // not UTF-8: no boot file has such a name
            };
            if name == "." || name == ".." {
                continue;
            }
            let k = entry.file_type().map(kind).map_err(|e| error(path, e))?;
            out.push((name.to_string(), k));
        }
        Ok(out)
    }
}

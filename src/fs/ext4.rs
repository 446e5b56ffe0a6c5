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

impl Ext4Root {
    /// Reads the superblock, group descriptors and journal of `source`.
    pub fn load(source: Box<dyn ReadAt>) -> Result<Ext4Root, FsError> {
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

//! Filesystems without mounting or running anything: readers for the root
//! filesystem of a partition image rivet has just written (ext4 through
//! `ext4-view`, XFS with its own reader), which read through [`ReadAt`]
//! and bound every size they take from the disk; and [`mkext`], rivet's
//! own mke2fs for the ephemeral partition. None of it knows Linux.

pub mod ext4;
pub mod iso9660;
pub mod mkext;
pub mod partition;
pub mod path;
pub mod testing;
pub mod xfs;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What a path names, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    /// The device could not be read.
    Io(String),
    /// A structure on disk breaks its format's rules: what and where.
    Corrupt(String),
    /// A format feature this reader does not handle, by name.
    Unsupported(String),
    NotFound(String),
    NotADirectory(String),
    NotAFile(String),
    /// More than [`MAX_SYMLINKS`] links on the way.
    SymlinkLoop(String),
    /// A file larger than the caller's bound.
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
    },
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Io(e) => write!(f, "read error: {e}"),
            FsError::Corrupt(e) => write!(f, "corrupt filesystem: {e}"),
            FsError::Unsupported(e) => write!(f, "unsupported: {e}"),
            FsError::NotFound(p) => write!(f, "{p}: no such file or directory"),
            FsError::NotADirectory(p) => write!(f, "{p}: not a directory"),
            FsError::NotAFile(p) => write!(f, "{p}: not a regular file"),
            FsError::SymlinkLoop(p) => write!(f, "{p}: too many levels of symbolic links"),
            FsError::TooLarge { path, size, limit } => {
                write!(f, "{path}: {size} bytes, more than the {limit} allowed")
            }
        }
    }
}

impl core::error::Error for FsError {}

/// Symlinks followed while resolving one path, as Linux's MAXSYMLINKS.
pub const MAX_SYMLINKS: usize = 40;

/// Bytes at a byte offset of a filesystem's device.
pub trait ReadAt {
    /// Fills `buf` from `offset`, or fails: never a short read.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FsError>;
    /// The filesystem's device size in bytes.
    fn size(&self) -> u64;
}

impl ReadAt for Vec<u8> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let start = usize::try_from(offset).map_err(|_| FsError::Io("offset".into()))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| {
                FsError::Io(alloc::format!(
                    "{} bytes at {offset} past the end ({})",
                    buf.len(),
                    self.len()
                ))
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A root filesystem, read-only, by absolute path. Symlinks are followed
/// inside the filesystem (an absolute target means its root).
pub trait RootFs {
    /// The filesystem's name for messages ("ext4", "xfs").
    fn kind_name(&self) -> &'static str;
    /// What `path` is, following symlinks; `None` if nothing is there.
    fn kind(&mut self, path: &str) -> Result<Option<Kind>, FsError>;
    /// A regular file's bytes (symlinks followed), refused past `limit`.
    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError>;
    /// A directory's entries (symlinks followed to it) without `.`/`..`:
    /// names and what each is itself (a symlink stays a symlink).
    fn list(&mut self, path: &str) -> Result<Vec<(String, Kind)>, FsError>;
}

#[cfg(test)]
mod tests;

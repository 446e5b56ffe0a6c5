//! Filesystems without mounting or running anything: readers for the root
//! filesystem of a partition image rivet has just written (ext4 and XFS,
//! each rivet's own), which read through [`ReadAt`], bound every size
//! they take from the disk and pay every walk from a [`Budget`]; FAT for
//! an image's ESP, likewise; and [`mkext`], rivet's
//! own mke2fs for the ephemeral partition. None of it knows Linux.

pub mod ext4;
pub mod ext4_writer;
pub mod extent;
pub mod fat;
mod inodes;
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
    /// A walk spent its [`Budget`]: what ran out, and its bound.
    OutOfWork(String),
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
            FsError::OutOfWork(e) => write!(
                f,
                "work budget spent: {e} (a loop or a hostile layout; no real filesystem needs this)"
            ),
            FsError::TooLarge { path, size, limit } => {
                write!(f, "{path}: {size} bytes, more than the {limit} allowed")
            }
        }
    }
}

impl core::error::Error for FsError {}

/// A file of `size` bytes at `path` may be read under `limit`.
pub fn within_limit(path: &str, size: u64, limit: u64) -> Result<(), FsError> {
    if size > limit {
        return Err(FsError::TooLarge {
            path: path.into(),
            size,
            limit,
        });
    }
    Ok(())
}

/// Symlinks followed while resolving one path, as Linux's MAXSYMLINKS.
pub const MAX_SYMLINKS: usize = 40;

/// What one reader may do over its whole life (one install_bootloader,
/// one boot-chain search), whatever the filesystem says: a crafted one can
/// loop without growing (a directory of repeated blocks, symlinked
/// directories fanned out wide) where every single size is in bounds. The
/// bounds are some ten times what the largest real search needs: the boot
/// chain copies at most 128 MiB, a root filesystem's directories on the
/// way hold thousands of entries, not millions.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: u64,
    entries: u64,
    links: u64,
}

/// Bytes read from the device by one reader.
pub const BUDGET_BYTES: u64 = 1 << 30;
/// Directory entries decoded by one reader.
pub const BUDGET_ENTRIES: u64 = 1 << 20;
/// Symbolic links followed by one reader (each path: [`MAX_SYMLINKS`]).
pub const BUDGET_LINKS: u64 = 4096;

impl Default for Budget {
    fn default() -> Budget {
        Budget::new(BUDGET_BYTES, BUDGET_ENTRIES, BUDGET_LINKS)
    }
}

impl Budget {
    pub fn new(bytes: u64, entries: u64, links: u64) -> Budget {
        Budget {
            bytes,
            entries,
            links,
        }
    }

    fn spend(left: &mut u64, n: u64, what: &str, bound: u64) -> Result<(), FsError> {
        *left = left
            .checked_sub(n)
            .ok_or_else(|| FsError::OutOfWork(alloc::format!("more than {bound} {what}")))?;
        Ok(())
    }

    pub fn read(&mut self, n: u64) -> Result<(), FsError> {
        Budget::spend(&mut self.bytes, n, "bytes read", BUDGET_BYTES)
    }

    pub fn entries(&mut self, n: u64) -> Result<(), FsError> {
        Budget::spend(
            &mut self.entries,
            n,
            "directory entries read",
            BUDGET_ENTRIES,
        )
    }

    pub fn link(&mut self) -> Result<(), FsError> {
        Budget::spend(&mut self.links, 1, "symbolic links followed", BUDGET_LINKS)
    }
}

/// Entries one directory listing may hold (some 16 MiB of names): the
/// memory bound, where [`BUDGET_ENTRIES`] is the time bound.
pub const MAX_DIR_ENTRIES: usize = 1 << 18;

impl Budget {
    /// Pays for the entries a directory block added to `listing`, and
    /// refuses a listing past [`MAX_DIR_ENTRIES`].
    pub fn listing<T>(
        &mut self,
        listing: &[T],
        before: usize,
        dir: &dyn core::fmt::Display,
    ) -> Result<(), FsError> {
        self.entries((listing.len() - before) as u64)?;
        if listing.len() > MAX_DIR_ENTRIES {
            return Err(FsError::OutOfWork(alloc::format!(
                "directory {dir}: more than {MAX_DIR_ENTRIES} entries"
            )));
        }
        Ok(())
    }
}

/// A device whose every read is paid from a [`Budget`].
pub struct Metered {
    src: alloc::boxed::Box<dyn ReadAt>,
    pub budget: Budget,
}

impl Metered {
    pub fn new(src: alloc::boxed::Box<dyn ReadAt>, budget: Budget) -> Metered {
        Metered { src, budget }
    }
}

impl ReadAt for Metered {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        self.budget.read(buf.len() as u64)?;
        self.src.read_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.src.size()
    }
}

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

//! What the ext4 and XFS readers share above their on-disk formats: path
//! resolution over inode numbers, and `kind`/`read`/`list` as [`RootFs`]
//! asks them, written once over [`Inodes`].

use super::path::{resolve, Walk};
use super::{FsError, Kind};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A directory's entries: name, inode number, and kind when the directory
/// records it.
pub(super) type Entries = Vec<(String, u64, Option<Kind>)>;

/// An inode-numbered filesystem.
pub(super) trait Inodes {
    type Inode;
    fn root_inode(&self) -> u64;
    fn inode(&mut self, ino: u64) -> Result<Self::Inode, FsError>;
    fn kind_of_inode(inode: &Self::Inode) -> Kind;
    fn size_of_inode(inode: &Self::Inode) -> u64;
    fn entries(&mut self, dir: &Self::Inode) -> Result<Entries, FsError>;
    /// A regular file's bytes (its size already checked by the caller).
    fn contents(&mut self, file: &Self::Inode) -> Result<Vec<u8>, FsError>;
    fn link_target_of(&mut self, link: &Self::Inode) -> Result<String, FsError>;
    /// Pays one symlink followed from the reader's budget.
    fn pay_one_link(&mut self) -> Result<(), FsError>;
}

/// [`super::path::Walk`] for every [`Inodes`]: nodes are inode numbers.
pub(super) struct ByInode<'a, F>(pub &'a mut F);

impl<F: Inodes> Walk for ByInode<'_, F> {
    type Node = u64;
    fn root(&mut self) -> Result<u64, FsError> {
        Ok(self.0.root_inode())
    }
    fn kind_of(&mut self, node: &u64) -> Result<Kind, FsError> {
        Ok(F::kind_of_inode(&self.0.inode(*node)?))
    }
    fn lookup(&mut self, dir: &u64, name: &str) -> Result<Option<u64>, FsError> {
        let inode = self.0.inode(*dir)?;
        Ok(self
            .0
            .entries(&inode)?
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, ino, _)| ino))
    }
    fn link_target(&mut self, node: &u64) -> Result<String, FsError> {
        let inode = self.0.inode(*node)?;
        self.0.link_target_of(&inode)
    }
    fn pay_link(&mut self) -> Result<(), FsError> {
        self.0.pay_one_link()
    }
}

fn found<F: Inodes>(fs: &mut F, path: &str) -> Result<F::Inode, FsError> {
    let ino = resolve(&mut ByInode(fs) as &mut dyn Walk<Node = u64>, path, true)?
        .ok_or_else(|| FsError::NotFound(path.to_string()))?;
    fs.inode(ino)
}

/// [`super::RootFs::kind`].
pub(super) fn kind<F: Inodes>(fs: &mut F, path: &str) -> Result<Option<Kind>, FsError> {
    match resolve(&mut ByInode(fs) as &mut dyn Walk<Node = u64>, path, true)? {
        Some(ino) => Ok(Some(F::kind_of_inode(&fs.inode(ino)?))),
        None => Ok(None),
    }
}

/// [`super::RootFs::read`].
pub(super) fn read<F: Inodes>(fs: &mut F, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
    let inode = found(fs, path)?;
    if F::kind_of_inode(&inode) != Kind::File {
        return Err(FsError::NotAFile(path.to_string()));
    }
    let size = F::size_of_inode(&inode);
    super::within_limit(path, size, limit)?;
    if size == 0 {
        return Ok(Vec::new());
    }
    fs.contents(&inode)
}

/// [`super::RootFs::list`].
pub(super) fn list<F: Inodes>(fs: &mut F, path: &str) -> Result<Vec<(String, Kind)>, FsError> {
    let inode = found(fs, path)?;
    if F::kind_of_inode(&inode) != Kind::Dir {
        return Err(FsError::NotADirectory(path.to_string()));
    }
    let mut out = Vec::new();
    for (name, child, kind) in fs.entries(&inode)? {
        let kind = match kind {
            Some(k) => k,
            None => F::kind_of_inode(&fs.inode(child)?),
        };
        out.push((name, kind));
    }
    Ok(out)
}

/// `RootFs` for a type that implements [`Inodes`], named `$name`.
macro_rules! root_fs_by_inode {
    ($fs:ty, $name:literal) => {
        impl super::RootFs for $fs {
            fn kind_name(&self) -> &'static str {
                $name
            }
            fn kind(&mut self, path: &str) -> Result<Option<Kind>, FsError> {
                super::inodes::kind(self, path)
            }
            fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
                super::inodes::read(self, path, limit)
            }
            fn list(&mut self, path: &str) -> Result<Vec<(String, Kind)>, FsError> {
                super::inodes::list(self, path)
            }
        }
    };
}
pub(super) use root_fs_by_inode;

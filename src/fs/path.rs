//! Path resolution shared by readers that walk directories themselves:
//! components, `..` at the root, and symlinks with a bound.

use super::{FsError, Kind, MAX_SYMLINKS};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// What a reader must answer for [`resolve`].
pub trait Walk {
    type Node: Clone;
    fn root(&mut self) -> Result<Self::Node, FsError>;
    fn kind_of(&mut self, node: &Self::Node) -> Result<Kind, FsError>;
    /// The entry `name` in directory `dir`, if any.
    fn lookup(&mut self, dir: &Self::Node, name: &str) -> Result<Option<Self::Node>, FsError>;
    fn link_target(&mut self, node: &Self::Node) -> Result<String, FsError>;
    /// Pays for one symlink followed from the reader's whole-life
    /// [`super::Budget`]: [`MAX_SYMLINKS`] bounds one path, this bounds
    /// them all (directories that are symlinks to each other, fanned out
    /// wide, stay within every path's bound and still never end).
    fn pay_link(&mut self) -> Result<(), FsError>;
}

/// The node `path` names. `follow_last`: whether a final symlink is
/// followed. `Ok(None)` when a component is missing. Readers by inode
/// number call it as `dyn Walk<Node = u64>`: one copy for ext4 and XFS.
pub fn resolve<W: Walk + ?Sized>(
    w: &mut W,
    path: &str,
    follow_last: bool,
) -> Result<Option<W::Node>, FsError> {
    let mut links = 0;
    // Directories from the root to where we are (for `..`).
    let mut stack: Vec<W::Node> = Vec::new();
    let mut todo: Vec<String> = components(path);
    todo.reverse();
    let mut node = w.root()?;
    while let Some(name) = todo.pop() {
        if name == ".." {
            if let Some(parent) = stack.pop() {
                node = parent;
            }
            continue;
        }
        if w.kind_of(&node)? != Kind::Dir {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        let Some(next) = w.lookup(&node, &name)? else {
            return Ok(None);
        };
        let last = todo.is_empty();
        if w.kind_of(&next)? == Kind::Symlink && (!last || follow_last) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(FsError::SymlinkLoop(path.to_string()));
            }
            w.pay_link()?;
            let target = w.link_target(&next)?;
            if target.starts_with('/') {
                stack.clear();
                node = w.root()?;
            }
            let mut more = components(&target);
            more.reverse();
            todo.extend(more);
            continue;
        }
        stack.push(core::mem::replace(&mut node, next));
    }
    Ok(Some(node))
}

fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

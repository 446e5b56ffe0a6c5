//! A root filesystem in memory for unit tests: files and symlinks by path,
//! directories implied, listed in the order things were added (as a
//! directory on disk lists in creation order).

use super::path::{resolve, Walk};
use super::{FsError, Kind, RootFs};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Link(String),
}

#[derive(Debug, Clone, Default)]
pub struct MemFs {
    entries: Vec<(String, Node)>,
}

impl MemFs {
    fn put(&mut self, path: &str, node: Node) {
        let path = path.trim_end_matches('/').to_string();
        match self.entries.iter_mut().find(|(p, _)| *p == path) {
            Some(e) => e.1 = node,
            None => self.entries.push((path, node)),
        }
    }

    pub fn file(&mut self, path: &str, data: &[u8]) {
        self.put(path, Node::File(data.to_vec()));
    }

    /// A symlink at `path` pointing to `target` (relative or absolute).
    pub fn link(&mut self, path: &str, target: &str) {
        self.put(path, Node::Link(target.to_string()));
    }

    pub fn remove(&mut self, path: &str) {
        self.entries.retain(|(p, _)| p != path);
    }

    fn node(&self, path: &str) -> Option<&Node> {
        self.entries.iter().find(|(p, _)| p == path).map(|(_, n)| n)
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty()
            || self.entries.iter().any(|(p, _)| {
                p.len() > path.len() && p.starts_with(path) && p.as_bytes()[path.len()] == b'/'
            })
    }
}

impl Walk for MemFs {
    type Node = String;
    fn root(&mut self) -> Result<String, FsError> {
        Ok(String::new())
    }
    fn kind_of(&mut self, node: &String) -> Result<Kind, FsError> {
        Ok(match self.node(node) {
            Some(Node::File(_)) => Kind::File,
            Some(Node::Link(_)) => Kind::Symlink,
            None => Kind::Dir,
        })
    }
    fn lookup(&mut self, dir: &String, name: &str) -> Result<Option<String>, FsError> {
        let child = alloc::format!("{dir}/{name}");
        Ok((self.node(&child).is_some() || self.is_dir(&child)).then_some(child))
    }
    fn link_target(&mut self, node: &String) -> Result<String, FsError> {
        match self.node(node) {
            Some(Node::Link(t)) => Ok(t.clone()),
            _ => Err(FsError::Corrupt(alloc::format!("{node}: not a symlink"))),
        }
    }
    fn pay_link(&mut self) -> Result<(), FsError> {
        Ok(()) // a test's tree is finite: per-path bound only
    }
}

impl RootFs for MemFs {
    fn kind_name(&self) -> &'static str {
        "in-memory"
    }

    fn kind(&mut self, path: &str) -> Result<Option<Kind>, FsError> {
        match resolve(self, path, true)? {
            Some(n) => Ok(Some(self.kind_of(&n)?)),
            None => Ok(None),
        }
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let n = resolve(self, path, true)?.ok_or_else(|| FsError::NotFound(path.to_string()))?;
        match self.node(&n) {
            Some(Node::File(d)) => {
                super::within_limit(path, d.len() as u64, limit)?;
                Ok(d.clone())
            }
            _ => Err(FsError::NotAFile(path.to_string())),
        }
    }

    fn list(&mut self, path: &str) -> Result<Vec<(String, Kind)>, FsError> {
        let dir = resolve(self, path, true)?.ok_or_else(|| FsError::NotFound(path.to_string()))?;
        if !self.is_dir(&dir) || self.node(&dir).is_some() {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        let prefix = alloc::format!("{dir}/");
        let mut out: Vec<(String, Kind)> = Vec::new();
        for (p, node) in &self.entries {
            let Some(rest) = p.strip_prefix(&prefix) else {
                continue;
            };
            let (name, kind) = match rest.split_once('/') {
                Some((d, _)) => (d, Kind::Dir),
                None => match node {
                    Node::File(_) => (rest, Kind::File),
                    Node::Link(_) => (rest, Kind::Symlink),
                },
            };
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name.to_string(), kind));
            }
        }
        Ok(out)
    }
}

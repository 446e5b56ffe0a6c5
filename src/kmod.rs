//! Kernel modules carried in the initramfs: the alias index PID 1 reads, alias
//! pattern matching against `modalias` strings, and dependency order.
//!
//! The index is plain text so PID 1 never parses ELF at boot. One record a line:
//! ```text
//! # rivet module index v1
//! m virtio_net virtio_net.ko
//! d virtio_net net_failover virtio virtio_ring
//! a virtio:d00000001v* virtio_net
//! ```
//! `m NAME FILE` declares a module, `d NAME DEP…` its dependencies (in the
//! order they must load), `a PATTERN NAME` one alias.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

pub const INDEX_HEADER: &str = "# rivet module index v1";

/// Module names compare with `-` and `_` equal, as the kernel does.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// A `[` without its `]`.
    UnclosedClass,
    /// `[]` or `[!]`: a class that can match nothing.
    EmptyClass,
    /// Whitespace or control characters, which no modalias contains.
    BadChar,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternError::UnclosedClass => "alias pattern has '[' without ']'",
            PatternError::EmptyClass => "alias pattern has an empty character class",
            PatternError::BadChar => "alias pattern contains whitespace or control characters",
        })
    }
}

/// Checks an alias pattern once, so matching never meets a malformed one.
pub fn validate_pattern(pattern: &str) -> Result<(), PatternError> {
    let p = pattern.as_bytes();
    if p.iter()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(PatternError::BadChar);
    }
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'[' {
            let close = class_end(p, i).ok_or(PatternError::UnclosedClass)?;
            let body_start = i + 1 + usize::from(matches!(p.get(i + 1), Some(b'!' | b'^')));
            if close == body_start {
                return Err(PatternError::EmptyClass);
            }
            i = close + 1;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Index of the `]` closing the class that opens at `open`. A `]` right
/// after `[` or `[!` is a literal member, as in fnmatch(3).
fn class_end(p: &[u8], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if matches!(p.get(j), Some(b'!' | b'^')) {
        j += 1;
    }
    if p.get(j) == Some(&b']') {
        j += 1;
    }
    while j < p.len() {
        if p[j] == b']' {
            return Some(j);
        }
        j += 1;
    }
    None
}

fn class_matches(class: &[u8], c: u8) -> bool {
    let (negate, body) = match class.first() {
        Some(b'!' | b'^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut hit = false;
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == b'-' {
            if body[k] <= c && c <= body[k + 2] {
                hit = true;
            }
            k += 3;
        } else {
            if body[k] == c {
                hit = true;
            }
            k += 1;
        }
    }
    hit != negate
}

/// fnmatch-style match of a modalias string against an alias pattern
/// (`*`, `?`, `[a-z]`, `[!x]`), as modprobe does. Malformed classes match
/// literally; [`validate_pattern`] refuses them at build time.
pub fn alias_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                backtrack = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(pi + 1),
            Some(b'[') => match class_end(p, pi) {
                Some(end) if class_matches(&p[pi + 1..end], t[ti]) => Some(end + 1),
                Some(_) => None,
                None if t[ti] == b'[' => Some(pi + 1),
                None => None,
            },
            Some(&c) if c == t[ti] => Some(pi + 1),
            _ => None,
        };
        match (step, backtrack) {
            (Some(next), _) => {
                pi = next;
                ti += 1;
            }
            (None, Some((bp, bt))) => {
                pi = bp;
                ti = bt + 1;
                backtrack = Some((bp, bt + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One module as recorded in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub file: String,
    /// Dependencies in load order (deepest first), not including itself.
    pub deps: Vec<String>,
}

/// The parsed module index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub modules: BTreeMap<String, Module>,
    /// (pattern, module name), in file order.
    pub aliases: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    MissingHeader,
    /// Line number (1-based) and what is wrong with it.
    BadLine(usize, &'static str),
    BadPattern(usize, PatternError),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::MissingHeader => {
                write!(f, "module index: first line is not '{INDEX_HEADER}'")
            }
            IndexError::BadLine(n, why) => write!(f, "module index line {n}: {why}"),
            IndexError::BadPattern(n, e) => write!(f, "module index line {n}: {e}"),
        }
    }
}

impl Index {
    pub fn parse(text: &str) -> Result<Index, IndexError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, first)) if first.trim_end() == INDEX_HEADER => {}
            _ => return Err(IndexError::MissingHeader),
        }
        let mut index = Index::default();
        let mut deps: Vec<(usize, String, Vec<String>)> = Vec::new();
        for (i, line) in lines {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("m") => {
                    let (Some(name), Some(file), None) = (words.next(), words.next(), words.next())
                    else {
                        return Err(IndexError::BadLine(n, "expected 'm NAME FILE'"));
                    };
                    let module = Module {
                        name: name.to_string(),
                        file: file.to_string(),
                        deps: Vec::new(),
                    };
                    if index.modules.insert(name.to_string(), module).is_some() {
                        return Err(IndexError::BadLine(n, "module declared twice"));
                    }
                }
                Some("d") => {
                    let name = words
                        .next()
                        .ok_or(IndexError::BadLine(n, "expected 'd NAME DEP…'"))?;
                    deps.push((
                        n,
                        name.to_string(),
                        words.map(ToString::to_string).collect(),
                    ));
                }
                Some("a") => {
                    let (Some(pattern), Some(name), None) =
                        (words.next(), words.next(), words.next())
                    else {
                        return Err(IndexError::BadLine(n, "expected 'a PATTERN NAME'"));
                    };
                    validate_pattern(pattern).map_err(|e| IndexError::BadPattern(n, e))?;
                    index.aliases.push((pattern.to_string(), name.to_string()));
                }
                _ => return Err(IndexError::BadLine(n, "unknown record type")),
            }
        }
        for (n, name, list) in deps {
            if list.iter().any(|d| !index.modules.contains_key(d)) {
                return Err(IndexError::BadLine(
                    n,
                    "dependency on a module not in the index",
                ));
            }
            let module = index.modules.get_mut(&name).ok_or(IndexError::BadLine(
                n,
                "dependencies of an undeclared module",
            ))?;
            module.deps = list;
        }
        if index
            .aliases
            .iter()
            .any(|(_, m)| !index.modules.contains_key(m))
        {
            return Err(IndexError::BadLine(
                0,
                "alias names a module not in the index",
            ));
        }
        Ok(index)
    }

    /// Writes the index in the format [`Index::parse`] reads. Sorted, so the
    /// same modules always give the same text.
    pub fn render(&self) -> String {
        let mut out = String::from(INDEX_HEADER);
        out.push('\n');
        for m in self.modules.values() {
            out.push_str(&alloc::format!("m {} {}\n", m.name, m.file));
            if !m.deps.is_empty() {
                out.push_str(&alloc::format!("d {} {}\n", m.name, m.deps.join(" ")));
            }
        }
        let mut aliases = self.aliases.clone();
        aliases.sort_unstable();
        for (pattern, name) in aliases {
            out.push_str(&alloc::format!("a {pattern} {name}\n"));
        }
        out
    }

    /// Modules whose aliases match `modalias`, each once, in index order.
    pub fn matching(&self, modalias: &str) -> Vec<&str> {
        let mut found: Vec<&str> = Vec::new();
        for (pattern, name) in &self.aliases {
            if !found.contains(&name.as_str()) && alias_matches(pattern, modalias) {
                found.push(name);
            }
        }
        found
    }

    /// `name` and its dependencies in load order: dependencies first.
    pub fn load_order(&self, name: &str) -> Vec<&str> {
        let mut order = Vec::new();
        if let Some(m) = self.modules.get(name) {
            order.extend(m.deps.iter().map(String::as_str));
            order.push(m.name.as_str());
        }
        order
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepError {
    /// A module names a dependency that is not available.
    Missing { module: String, dependency: String },
    /// Modules depend on each other in a circle.
    Cycle(String),
}

impl fmt::Display for DepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepError::Missing { module, dependency } => {
                write!(f, "module {module} needs {dependency}, which was not found")
            }
            DepError::Cycle(m) => write!(f, "module dependency cycle through {m}"),
        }
    }
}

/// Orders `roots` and everything they depend on so that each module comes
/// after its dependencies. `depends` answers a module's direct dependencies,
/// or `None` if the module does not exist.
pub fn resolve<F>(roots: &[&str], mut depends: F) -> Result<Vec<String>, DepError>
where
    F: FnMut(&str) -> Option<Vec<String>>,
{
    fn visit<F: FnMut(&str) -> Option<Vec<String>>>(
        name: &str,
        parent: Option<&str>,
        depends: &mut F,
        on_path: &mut BTreeSet<String>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), DepError> {
        if done.contains(name) {
            return Ok(());
        }
        if !on_path.insert(name.to_string()) {
            return Err(DepError::Cycle(name.to_string()));
        }
        let deps = depends(name).ok_or_else(|| DepError::Missing {
            module: parent.unwrap_or(name).to_string(),
            dependency: name.to_string(),
        })?;
        for dep in deps {
            visit(&dep, Some(name), depends, on_path, done, order)?;
        }
        on_path.remove(name);
        done.insert(name.to_string());
        order.push(name.to_string());
        Ok(())
    }
    let (mut on_path, mut done, mut order) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    for root in roots {
        visit(
            root,
            None,
            &mut depends,
            &mut on_path,
            &mut done,
            &mut order,
        )?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn globbing_like_modprobe() {
        assert!(alias_matches(
            "virtio:d00000001v*",
            "virtio:d00000001v00001AF4"
        ));
        assert!(!alias_matches(
            "virtio:d00000001v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(alias_matches(
            "pci:v00001AF4d00001000sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
        ));
        assert!(alias_matches(
            "pci:v*d*sv*sd*bc01sc06i01*",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
        ));
        assert!(alias_matches(
            "usb:v0B95p1790d0[0-9]*",
            "usb:v0B95p1790d0100dc00"
        ));
        assert!(!alias_matches(
            "usb:v0B95p1790d0[0-9]*",
            "usb:v0B95p1790d0A00dc00"
        ));
        assert!(alias_matches("a[!x]c", "abc"));
        assert!(!alias_matches("a[!x]c", "axc"));
        assert!(alias_matches("a?c", "abc"));
        assert!(!alias_matches("a?c", "ac"));
        assert!(alias_matches("*", ""));
        assert!(alias_matches("a*b*c", "a-b-b-c"));
        assert!(!alias_matches("a*b*c", "a-b-b-d"));
        assert!(alias_matches("[]]x", "]x"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(
            validate_pattern("pci:v[0-9"),
            Err(PatternError::UnclosedClass)
        );
        assert_eq!(
            validate_pattern("pci:v[!]"),
            Err(PatternError::UnclosedClass)
        );
        assert_eq!(validate_pattern("a b"), Err(PatternError::BadChar));
        assert_eq!(validate_pattern("usb:v0B95p1790d0[0-9]*"), Ok(()));
        // Malformed patterns never panic when matched anyway.
        assert!(!alias_matches("pci:v[0-9", "pci:v1"));
        assert!(alias_matches("x[", "x["));
    }

    fn sample() -> Index {
        Index::parse(
            "# rivet module index v1\n\
             m virtio_ring virtio_ring.ko\n\
             m virtio virtio.ko\n\
             d virtio virtio_ring\n\
             m virtio_blk virtio_blk.ko\n\
             d virtio_blk virtio_ring virtio\n\
             a virtio:d00000002v* virtio_blk\n",
        )
        .unwrap()
    }

    #[test]
    fn index_round_trips_and_answers() {
        let index = sample();
        assert_eq!(Index::parse(&index.render()).unwrap(), index);
        assert_eq!(
            index.matching("virtio:d00000002v00001AF4"),
            vec!["virtio_blk"]
        );
        assert!(index.matching("virtio:d00000001v00001AF4").is_empty());
        assert_eq!(
            index.load_order("virtio_blk"),
            vec!["virtio_ring", "virtio", "virtio_blk"]
        );
    }

    #[test]
    fn index_errors_name_the_line() {
        assert_eq!(Index::parse("m a a.ko\n"), Err(IndexError::MissingHeader));
        assert_eq!(
            Index::parse("# rivet module index v1\nm a\n"),
            Err(IndexError::BadLine(2, "expected 'm NAME FILE'"))
        );
        assert_eq!(
            Index::parse("# rivet module index v1\nm a a.ko\na pci:[x a\n"),
            Err(IndexError::BadPattern(3, PatternError::UnclosedClass))
        );
        assert_eq!(
            Index::parse("# rivet module index v1\nm a a.ko\nd a b\n"),
            Err(IndexError::BadLine(
                3,
                "dependency on a module not in the index"
            ))
        );
        assert!(Index::parse("# rivet module index v1\nx\n").is_err());
    }

    #[test]
    fn resolve_orders_dependencies_first() {
        let graph = |name: &str| -> Option<Vec<String>> {
            let deps: &[&str] = match name {
                "virtio_net" => &["net_failover", "virtio", "virtio_ring"],
                "net_failover" => &["failover"],
                "virtio" => &["virtio_ring"],
                "failover" | "virtio_ring" => &[],
                _ => return None,
            };
            Some(deps.iter().map(|s| s.to_string()).collect())
        };
        let order = resolve(&["virtio_net"], graph).unwrap();
        assert_eq!(
            order,
            vec![
                "failover",
                "net_failover",
                "virtio_ring",
                "virtio",
                "virtio_net"
            ]
        );
        assert_eq!(
            resolve(&["virtio_net", "nvme"], graph),
            Err(DepError::Missing {
                module: "nvme".into(),
                dependency: "nvme".into()
            })
        );
        let cyclic = |name: &str| Some(vec![if name == "a" { "b" } else { "a" }.to_string()]);
        assert_eq!(resolve(&["a"], cyclic), Err(DepError::Cycle("a".into())));
    }
}

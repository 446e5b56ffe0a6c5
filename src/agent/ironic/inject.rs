//! The `inject_files` deploy and service step, as ironic-python-agent 13's
//! `inject_files.py` takes it: files from the node's
//! `properties.inject_files` and the step's `files`, validated with its
//! words before anything is touched; each written into (or deleted from)
//! a filesystem of the root disk, found by partition number, device path,
//! `LABEL=`/`UUID=`, or as the first partition holding the path's first
//! directory. Content is base64, or a URL (`{node[…]}` / `{ports[…]}`
//! filled in from the node, as the real agent's str.format does) fetched
//! over rivet's own client. Only ext4 is written ([`Ext4Writer`]); any
//! other filesystem is refused by name.

use crate::deploy::table;
use crate::fs::ext4_writer::{Attributes, Ext4Writer};
use crate::linux::blockdev::Disk;
use crate::net::Transport;
use crate::wire::superblock;
use serde_json::Value;

/// Largest file fetched by URL (a configuration file, a key, a script).
const MAX_URL_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// Already filled in from the node and ports.
    Url(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub path: String,
    pub partition: Option<String>,
    pub content: Option<Content>,
    pub deleted: bool,
    pub attrs: Attributes,
}

/// The real agent's `_validate_files`, then each file's content decoded:
/// every failure named, none written.
pub fn validate(node: &Value, ports: &Value, files: Option<&Value>) -> Result<Vec<File>, String> {
    let from_node = node["properties"]
        .get("inject_files")
        .filter(|v| !v.is_null());
    let listed = |v: Option<&Value>, what: &str| match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.clone()),
        Some(other) => Err(format!(
            "The {what} must be a list, got {}",
            kind_name(other)
        )),
    };
    let mut all = listed(from_node, "`inject_files` node property")?;
    all.extend(listed(files.filter(|v| !v.is_null()), "`files` argument")?);
    let mut failures = Vec::new();
    let mut out = Vec::new();
    for fl in &all {
        let Some(o) = fl.as_object() else {
            failures.push(format!("expected a file structure, got {fl}"));
            continue;
        };
        let unknown: Vec<&str> = o
            .keys()
            .map(String::as_str)
            .filter(|k| {
                ![
                    "path",
                    "partition",
                    "content",
                    "deleted",
                    "mode",
                    "dirmode",
                    "owner",
                    "group",
                ]
                .contains(k)
            })
            .collect();
        if !unknown.is_empty() {
            failures.push(format!("unexpected fields in {fl}: {}", unknown.join(", ")));
        }
        let path = o.get("path").and_then(Value::as_str).unwrap_or("");
        let partition = match o.get("partition") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                failures.push(format!(
                    "partition must be a number or a string in {fl}: {other}"
                ));
                None
            }
        };
        if path.is_empty() {
            failures.push(format!("expected a path in {fl}"));
        } else if path
            .trim_end_matches('/')
            .rsplit_once('/')
            .is_none_or(|(d, _)| d.is_empty())
            && partition.is_none()
        {
            failures.push(format!("{fl} in root directory requires \"partition\""));
        } else if path.ends_with('/') {
            failures.push(format!("directories not supported for {fl}"));
        }
        let deleted = o.get("deleted").is_some_and(truthy);
        let raw = o.get("content").filter(|c| truthy(c));
        if raw.is_some() && deleted {
            failures.push(format!("content cannot be used with deleted in {fl}"));
        }
        let mut number = |field: &str, max: u64| match o.get(field) {
            None => None,
            Some(v) => match v.as_u64().filter(|n| *n <= max) {
                Some(n) => Some(n),
                None => {
                    failures.push(format!("{field} must be a number in {fl}"));
                    None
                }
            },
        };
        let attrs = Attributes {
            mode: number("mode", 0o7777).map(|m| m as u16),
            dirmode: number("dirmode", 0o7777).map(|m| m as u16),
            owner: number("owner", u64::from(u32::MAX - 1)).map(|n| n as u32),
            group: number("group", u64::from(u32::MAX - 1)).map(|n| n as u32),
        };
        let content = match raw {
            None if deleted => None,
            None => Some(Content::Bytes(Vec::new())),
            Some(Value::String(s)) if s.contains("://") => match fill_in(s, node, ports) {
                Ok(url) => Some(Content::Url(url)),
                Err(e) => {
                    failures.push(format!("{path}: content URL {s}: {e}"));
                    None
                }
            },
            Some(Value::String(s)) => match crate::wire::base64::decode(s.as_bytes()).ok() {
                Some(bytes) => Some(Content::Bytes(bytes)),
                None => {
                    failures.push(format!("{path}: content is not base64"));
                    None
                }
            },
            Some(other) => {
                failures.push(format!(
                    "{path}: content must be a string, not {}",
                    kind_name(other)
                ));
                None
            }
        };
        out.push(File {
            path: path.to_string(),
            partition,
            content,
            deleted,
            attrs,
        });
    }
    if !failures.is_empty() {
        return Err(format!(
            "Validation of files failed: {}",
            failures.join("; ")
        ));
    }
    Ok(out)
}

/// Python's truthiness for JSON values (the real agent tests `fl.get(…)`).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "dict",
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
    }
}

/// `content.format(node=node, ports=ports)` for the forms deploy templates
/// use: `{node[key][key]…}`, `{ports[0][address]}`, `{{` and `}}`.
fn fill_in(template: &str, node: &Value, ports: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let end = tail
            .find('}')
            .filter(|_| tail.starts_with('{'))
            .ok_or("a lone '}'")?;
        let field = &tail[1..end];
        let (root, mut keys) = match field.split_once('[') {
            Some((r, k)) => (r, k),
            None => (field, ""),
        };
        let mut v = match root {
            "node" => node,
            "ports" => ports,
            other => return Err(format!("{{{other}}}: only node and ports are known")),
        };
        while let Some(k) = keys
            .strip_suffix(']')
            .or(Some(keys))
            .filter(|k| !k.is_empty())
        {
            let (key, more) = k.split_once("][").unwrap_or((k, ""));
            v = match key.parse::<usize>() {
                Ok(n) if v.is_array() => &v[n],
                _ => &v[key],
            };
            if v.is_null() {
                return Err(format!("{{{field}}}: no such value"));
            }
            keys = more;
            if more.is_empty() {
                break;
            }
        }
        match v {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes (or deletes) every file on `disk` (a device path), fetching URL
/// contents over `t`.
pub fn run(t: &mut (dyn Transport + Send), disk: &str, files: &[File]) -> Result<(), String> {
    if files.is_empty() {
        log::info!("inject_files: no files to inject");
        return Ok(());
    }
    let mut dev = Disk::open(disk, 512)?;
    let parts = table::read_existing(&mut dev)
        .map_err(|e| format!("{disk}: {e}"))?
        .map(|t| t.parts)
        .unwrap_or_default();
    drop(dev);
    for f in files {
        let (part, inner) = where_to(disk, &parts, f)?;
        let bytes = match &f.content {
            Some(Content::Url(url)) => {
                log::info!("inject_files: {} from {url}", f.path);
                crate::net::client::get(t, url, MAX_URL_BYTES, Default::default())
                    .map_err(|e| format!("{}: {url}: {e}", f.path))?
            }
            Some(Content::Bytes(b)) => b.clone(),
            None => Vec::new(),
        };
        let dev = Disk::open(disk, 512)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let mut w = Ext4Writer::open(Box::new(dev), part.offset, part.len, now)
            .map_err(|e| format!("{}: partition {} of {disk}: {e}", f.path, part.number))?;
        let done = if f.deleted {
            w.delete(&inner).map(|gone| {
                let what = if gone { "deleted" } else { "not there" };
                log::info!(
                    "inject_files: {} {what} (partition {})",
                    f.path,
                    part.number
                )
            })
        } else {
            w.write_file(&inner, &bytes, &f.attrs).map(|_| {
                log::info!(
                    "inject_files: {} written, {} bytes (partition {}, {inner})",
                    f.path,
                    bytes.len(),
                    part.number
                )
            })
        };
        done.map_err(|e| format!("Failed to process file {}: {e}", f.path))?;
    }
    Ok(())
}

/// The partition `f` goes to, and its path inside that filesystem.
fn where_to(
    disk: &str,
    parts: &[table::Found],
    f: &File,
) -> Result<(table::Found, String), String> {
    // Read-only opens: they do not hold the disk exclusively.
    let mut dev = Disk::open_read_only(disk, 512)?;
    let mut head = vec![0u8; 128 << 10];
    let mut probe = |p: &table::Found| {
        let n = head.len().min(p.len as usize);
        crate::io::BlockDevice::read_at(&mut dev, p.offset, &mut head[..n])
            .ok()
            .and_then(|_| superblock::probe(&head[..n]))
    };
    let path = f.path.trim_start_matches('/');
    let chosen = match f.partition.as_deref() {
        Some(spec) => {
            let number = spec.parse::<u32>().ok().or_else(|| {
                // A device path on the root disk: /dev/vda2, /dev/nvme0n1p2.
                spec.strip_prefix(disk)
                    .map(|r| r.trim_start_matches('p'))
                    .and_then(|r| r.parse().ok())
            });
            let found = match (number, spec.split_once('=')) {
                (Some(n), _) => parts.iter().find(|p| p.number == n),
                (None, Some(("LABEL", label))) => parts
                    .iter()
                    .find(|p| probe(p).is_some_and(|fs| fs.label.as_deref() == Some(label))),
                (None, Some(("UUID", uuid))) => parts
                    .iter()
                    .find(|p| probe(p).is_some_and(|fs| fs.uuid.eq_ignore_ascii_case(uuid))),
                (None, Some(("PARTUUID", id))) => {
                    parts.iter().find(|p| p.partuuid.eq_ignore_ascii_case(id))
                }
                _ => {
                    return Err(format!(
                        "{}: partition {spec:?}: give a number, a partition of {disk}, \
                         LABEL=, UUID= or PARTUUID=",
                        f.path
                    ))
                }
            };
            let p = found.ok_or_else(|| format!("{}: no partition {spec} on {disk}", f.path))?;
            (p.clone(), format!("/{path}"))
        }
        None => {
            // As the real agent: the first partition where the path's first
            // directory is one; the rest of the path goes inside it.
            let (first, rest) = path.split_once('/').unwrap_or((path, ""));
            let mut hit = None;
            for p in parts {
                if !probe(p).is_some_and(|fs| fs.kind == superblock::Kind::Ext4) {
                    continue;
                }
                let dev = Disk::open_read_only(disk, 512)?;
                let found = Ext4Writer::open(Box::new(dev), p.offset, p.len, 0)
                    .and_then(|mut w| w.is_dir(first));
                if found.unwrap_or(false) {
                    hit = Some((p.clone(), format!("/{first}/{rest}")));
                    break;
                }
            }
            hit.ok_or_else(|| {
                format!(
                    "No partition found with path /{first} on {disk} (scanned {} partitions; \
                     rivet writes ext4 only)",
                    parts.len()
                )
            })?
        }
    };
    match probe(&chosen.0) {
        Some(fs) if fs.kind == superblock::Kind::Ext4 => Ok(chosen),
        Some(fs) => Err(format!(
            "{}: partition {} of {disk} holds {}: inject_files writes into ext4 only \
             (rivet has no writer for it)",
            f.path, chosen.0.number, fs.kind
        )),
        None => Err(format!(
            "{}: partition {} of {disk} holds no filesystem rivet knows",
            f.path, chosen.0.number
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_are_validated_with_the_real_agents_words() {
        let node = json!({"uuid": "n-1", "properties": {"inject_files": [
            {"path": "/etc/motd", "content": "aGVsbG8K", "mode": 420}]},
            "instance_info": {"hostname": "web-1"}});
        let ports = json!([{"address": "52:54:00:12:34:56"}]);
        let files = json!([
            {"path": "/etc/hosts", "deleted": true},
            {"path": "/etc/x", "content": "http://10.0.0.1/{node[uuid]}/{ports[0][address]}/{node[instance_info][hostname]}?a={{b}}"},
        ]);
        let got = validate(&node, &ports, Some(&files)).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].content, Some(Content::Bytes(b"hello\n".to_vec())));
        assert_eq!(got[0].attrs.mode, Some(0o644));
        assert!(got[1].deleted && got[1].content.is_none());
        assert_eq!(
            got[2].content,
            Some(Content::Url(
                "http://10.0.0.1/n-1/52:54:00:12:34:56/web-1?a={b}".into()
            ))
        );
        let refused = |files: Value| validate(&json!({}), &ports, Some(&files)).unwrap_err();
        let e = refused(json!([{"path": "/motd"}]));
        assert!(
            e.starts_with("Validation of files failed: ")
                && e.contains("in root directory requires \"partition\""),
            "{e}"
        );
        assert!(refused(json!([{"path": "/etc/d/"}])).contains("directories not supported"));
        assert!(
            refused(json!([{"path": "/etc/a", "content": "eA==", "deleted": true}]))
                .contains("content cannot be used with deleted")
        );
        assert!(
            refused(json!([{"path": "/etc/a", "mode": "0644"}])).contains("mode must be a number")
        );
        assert!(refused(json!([{"path": "/etc/a", "colour": 1}])).contains("unexpected fields"));
        assert!(refused(json!([{}])).contains("expected a path"));
        assert!(
            refused(json!([{"path": "/etc/a", "content": "not base64!"}])).contains("not base64")
        );
        assert!(
            refused(json!([{"path": "/etc/a", "content": "http://x/{secret}"}]))
                .contains("only node and ports")
        );
        assert!(refused(json!({"path": "/etc/a"}))
            .contains("`files` argument must be a list, got dict"));
        // Root-directory files with a partition are fine.
        assert!(validate(
            &json!({}),
            &ports,
            Some(&json!([{"path": "/motd", "partition": 2}]))
        )
        .is_ok());
    }
}

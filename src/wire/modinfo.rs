//! The `.modinfo` section of a kernel module: NUL-separated `key=value`
//! strings (`name=`, `depends=`, `alias=`, `softdep=`, `vermagic=`, …).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A string is not UTF-8 or has no `=`.
    BadEntry,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed .modinfo entry (expected key=value)")
    }
}

/// Iterates over the `(key, value)` pairs of a `.modinfo` section.
/// Runs of NUL bytes (section padding) are skipped.
pub fn entries(section: &[u8]) -> impl Iterator<Item = Result<(&str, &str), Error>> {
    section
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let text = core::str::from_utf8(s).map_err(|_| Error::BadEntry)?;
            text.split_once('=').ok_or(Error::BadEntry)
        })
}

/// What the initramfs builder needs to know of a module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=`, absent in very old modules.
    pub name: Option<String>,
    /// `depends=`: modules that must be loaded first.
    pub depends: Vec<String>,
    /// `alias=`: modalias patterns this module drives.
    pub aliases: Vec<String>,
    /// `softdep=pre: …`: modules wanted before this one (e.g. crc32c for ext4).
    pub softdeps_pre: Vec<String>,
    /// `firmware=`: files the driver may ask the kernel for, relative to
    /// `/lib/firmware` (tg3: `tigon/tg3_tso5.bin`).
    pub firmware: Vec<String>,
}

impl ModInfo {
    pub fn parse(section: &[u8]) -> Result<ModInfo, Error> {
        let mut info = ModInfo::default();
        for entry in entries(section) {
            let (key, value) = entry?;
            match key {
                "name" => info.name = Some(value.to_string()),
                "depends" => info.depends.extend(
                    value
                        .split(',')
                        .filter(|d| !d.is_empty())
                        .map(ToString::to_string),
                ),
                "alias" => info.aliases.push(value.to_string()),
                "softdep" => info.softdeps_pre.extend(softdeps_pre(value)),
                "firmware" => info.firmware.push(value.to_string()),
                _ => {}
            }
        }
        Ok(info)
    }
}

/// `softdep=pre: a b post: c` → `a`, `b`.
fn softdeps_pre(value: &str) -> impl Iterator<Item = String> + '_ {
    let mut in_pre = false;
    value.split_whitespace().filter_map(move |word| match word {
        "pre:" => {
            in_pre = true;
            None
        }
        "post:" => {
            in_pre = false;
            None
        }
        w if in_pre => Some(w.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parses_virtio_net_like_section() {
        let section = b"alias=virtio:d00000001v*\0depends=net_failover,virtio,virtio_ring\0\
retpoline=Y\0intree=Y\0name=virtio_net\0vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0\0\0";
        let info = ModInfo::parse(section).unwrap();
        assert_eq!(info.name.as_deref(), Some("virtio_net"));
        assert_eq!(info.depends, vec!["net_failover", "virtio", "virtio_ring"]);
        assert_eq!(info.aliases, vec!["virtio:d00000001v*"]);
        assert!(info.softdeps_pre.is_empty());
    }

    #[test]
    fn firmware_lines_as_tg3_has_them() {
        let section = b"firmware=tigon/tg3_tso5.bin\0firmware=tigon/tg3_tso.bin\0\
firmware=tigon/tg3.bin\0depends=libphy\0name=tg3\0";
        let info = ModInfo::parse(section).unwrap();
        assert_eq!(
            info.firmware,
            vec!["tigon/tg3_tso5.bin", "tigon/tg3_tso.bin", "tigon/tg3.bin"]
        );
    }

    #[test]
    fn empty_depends_and_softdeps() {
        let section = b"depends=\0softdep=pre: crc32c post: foo\0name=ext4\0";
        let info = ModInfo::parse(section).unwrap();
        assert!(info.depends.is_empty());
        assert_eq!(info.softdeps_pre, vec!["crc32c"]);
    }

    #[test]
    fn malformed_entries_are_errors() {
        assert_eq!(ModInfo::parse(b"name\0"), Err(Error::BadEntry));
        assert_eq!(ModInfo::parse(b"name=\xff\xfe\0"), Err(Error::BadEntry));
    }
}

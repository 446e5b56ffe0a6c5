//! ISO 9660 (ECMA-119), as much as reading one file from a config drive
//! needs: the primary volume descriptor (its volume label) and directory
//! records, with Rock Ridge `NM` names where genisoimage `-r` wrote them.
//! Views over byte buffers; the caller reads the sectors.

use alloc::string::String;
use core::fmt;

pub const SECTOR: usize = 2048;
/// The primary volume descriptor's sector.
pub const PVD_SECTOR: u64 = 16;

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const ID: Range<usize> = 1..6;
    pub const VOLUME_ID: Range<usize> = 40..72;
    pub const ROOT_RECORD: Range<usize> = 156..190;
    // Directory record fields.
    pub const LEN: usize = 0;
    pub const EXTENT: Range<usize> = 2..6;
    pub const SIZE: Range<usize> = 10..14;
    pub const FLAGS: usize = 25;
    pub const NAME_LEN: usize = 32;
    pub const NAME: usize = 33;
}

const DIRECTORY: u8 = 0x02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    /// Not `CD001` with type 1 at sector 16.
    NotIso,
    BadRecord,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "ISO 9660: truncated",
            Error::NotIso => "not an ISO 9660 filesystem",
            Error::BadRecord => "ISO 9660: malformed directory record",
        })
    }
}

/// A directory record: where its data is and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub sector: u32,
    pub len: u32,
    pub directory: bool,
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The primary volume descriptor (sector 16).
pub struct Volume<'a> {
    pvd: &'a [u8],
}

impl<'a> Volume<'a> {
    pub fn new_checked(pvd: &'a [u8]) -> Result<Volume<'a>, Error> {
        if pvd.len() < SECTOR {
            return Err(Error::Truncated);
        }
        if pvd[field::TYPE] != 1 || &pvd[field::ID] != b"CD001" {
            return Err(Error::NotIso);
        }
        Ok(Volume { pvd })
    }

    /// The volume label, trailing spaces trimmed (`config-2`).
    pub fn label(&self) -> &'a str {
        core::str::from_utf8(&self.pvd[field::VOLUME_ID])
            .unwrap_or("")
            .trim_end_matches([' ', '\0'])
    }

    pub fn root(&self) -> Result<Extent, Error> {
        record(&self.pvd[field::ROOT_RECORD]).map(|(extent, _)| extent)
    }
}

/// Decodes one directory record; returns its extent and its name.
fn record(r: &[u8]) -> Result<(Extent, String), Error> {
    let len = *r.get(field::LEN).ok_or(Error::Truncated)? as usize;
    if len < field::NAME + 1 || len > r.len() {
        return Err(Error::BadRecord);
    }
    let r = &r[..len];
    let name_len = r[field::NAME_LEN] as usize;
    let name_end = field::NAME + name_len;
    if name_end > len {
        return Err(Error::BadRecord);
    }
    let extent = Extent {
        sector: le32(&r[field::EXTENT]),
        len: le32(&r[field::SIZE]),
        directory: r[field::FLAGS] & DIRECTORY != 0,
    };
    let raw = &r[field::NAME..name_end];
    // The system use area (Rock Ridge) starts after the name, padded even.
    let su = &r[(name_end + (name_len + 1) % 2).min(len)..];
    let name = rock_ridge_name(su).unwrap_or_else(|| iso_name(raw));
    Ok((extent, name))
}

/// `NAME.EXT;1` → `NAME.EXT` (the version and a bare trailing dot go).
fn iso_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = s.split(';').next().unwrap_or("");
    String::from(s.strip_suffix('.').unwrap_or(s))
}

/// The Rock Ridge alternate name (`NM`), if the record has one whole.
fn rock_ridge_name(mut su: &[u8]) -> Option<String> {
    while su.len() >= 4 {
        let len = su[2] as usize;
        if len < 4 || len > su.len() {
            return None;
        }
        if &su[..2] == b"NM" && len >= 5 && su[4] & 0x01 == 0 {
            return Some(String::from_utf8_lossy(&su[5..len]).into_owned());
        }
        su = &su[len..];
    }
    None
}

/// Finds `name` (case-insensitively, as ISO names are often upper-cased)
/// among the records of a directory's data.
pub fn lookup(dir: &[u8], name: &str) -> Result<Option<Extent>, Error> {
    let mut at = 0;
    while at < dir.len() {
        let len = dir[at] as usize;
        if len == 0 {
            // Records do not cross sectors: the rest of this one is padding.
            at = (at / SECTOR + 1) * SECTOR;
            continue;
        }
        let (extent, found) = record(&dir[at..])?;
        if found.eq_ignore_ascii_case(name) {
            return Ok(Some(extent));
        }
        at += len;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A directory record as genisoimage writes one, with an optional
    /// Rock Ridge NM entry.
    fn rec(name: &[u8], sector: u32, len: u32, dir: bool, nm: Option<&str>) -> Vec<u8> {
        let mut r = vec![0u8; 33];
        r.extend_from_slice(name);
        if name.len() % 2 == 0 {
            r.push(0);
        }
        if let Some(nm) = nm {
            r.extend_from_slice(b"NM");
            r.push(5 + nm.len() as u8);
            r.extend_from_slice(&[1, 0]);
            r.extend_from_slice(nm.as_bytes());
        }
        r[0] = r.len() as u8;
        r[2..6].copy_from_slice(&sector.to_le_bytes());
        r[6..10].copy_from_slice(&sector.to_be_bytes());
        r[10..14].copy_from_slice(&len.to_le_bytes());
        r[14..18].copy_from_slice(&len.to_be_bytes());
        r[25] = if dir { 2 } else { 0 };
        r[32] = name.len() as u8;
        r
    }

    #[test]
    fn the_volume_label_and_root() {
        let mut pvd = vec![0u8; SECTOR];
        pvd[0] = 1;
        pvd[1..6].copy_from_slice(b"CD001");
        pvd[40..72].copy_from_slice(b"config-2                        ");
        pvd[156..190].copy_from_slice(&rec(b"\0", 20, 2048, true, None));
        let v = Volume::new_checked(&pvd).unwrap();
        assert_eq!(v.label(), "config-2");
        assert_eq!(
            v.root().unwrap(),
            Extent {
                sector: 20,
                len: 2048,
                directory: true
            }
        );
        pvd[1] = b'X';
        assert_eq!(Volume::new_checked(&pvd).err(), Some(Error::NotIso));
        assert_eq!(
            Volume::new_checked(&pvd[..100]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn names_plain_versioned_and_rock_ridge() {
        let mut dir = Vec::new();
        dir.extend(rec(b"\0", 20, 2048, true, None));
        dir.extend(rec(b"\x01", 19, 2048, true, None));
        dir.extend(rec(b"OPENSTACK", 21, 2048, true, None));
        dir.extend(rec(
            b"NETWORK_.JSO;1",
            30,
            99,
            false,
            Some("network_data.json"),
        ));
        dir.extend(rec(b"META_DATA.JSON;1", 31, 10, false, None));
        dir.resize(SECTOR, 0);
        dir.extend(rec(b"LATEST", 40, 2048, true, None));
        assert_eq!(
            lookup(&dir, "openstack").unwrap().map(|e| e.sector),
            Some(21)
        );
        assert_eq!(
            lookup(&dir, "network_data.json").unwrap().map(|e| e.len),
            Some(99)
        );
        assert_eq!(
            lookup(&dir, "meta_data.json").unwrap().map(|e| e.sector),
            Some(31)
        );
        assert_eq!(
            lookup(&dir, "latest").unwrap().map(|e| e.sector),
            Some(40),
            "second sector"
        );
        assert_eq!(lookup(&dir, "user_data").unwrap(), None);
        let mut bad = rec(b"X", 1, 1, false, None);
        bad[0] = 200;
        assert_eq!(lookup(&bad, "x"), Err(Error::BadRecord));
    }
}

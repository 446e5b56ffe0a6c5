//! FAT12/16/32, read-only, for FAT filesystems rivet did not make: the
//! ESP inside a whole-disk image, read by install_bootloader. Every number
//! of the boot sector is checked against the others and the device before
//! use; a cluster chain ends within the volume's cluster count or is a
//! loop; each directory is read once (a subdirectory pointing back at the
//! root is refused, not walked again); and every read is paid from a
//! [`Budget`] of twice the volume. fatfs 0.3.6, which rivet keeps for the
//! ESPs it formats itself, did none of this: a looping chain hung the
//! agent, a wide tree pointing back at the root read 621 MiB from 8 MiB.
//! (Layout: Microsoft's FAT specification, "fatgen103".)

use super::{Budget, FsError, Metered, ReadAt};
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// Directories one walk lists, and how deep (real ESPs: a dozen, 3 deep).
const MAX_DIRS: usize = 4096;
const MAX_DEPTH: usize = 16;
/// A directory holds at most 65,536 entries of 32 bytes (the format's own
/// bound).
const MAX_DIR_BYTES: u64 = 2 << 20;
const ENTRY: usize = 32;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_LFN: u8 = 0x0f;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn corrupt(what: impl Into<String>) -> FsError {
    FsError::Corrupt(format!("FAT: {}", what.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

/// The boot sector's geometry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub kind: FatType,
    pub cluster_bytes: u64,
    /// Data clusters: numbered 2 ..= clusters + 1.
    pub clusters: u32,
    fat_at: u64,
    data_at: u64,
    /// FAT12/16: the fixed root directory (offset, bytes); FAT32: none.
    fixed_root: Option<(u64, u64)>,
    root_cluster: u32,
    pub volume_bytes: u64,
}

impl Geometry {
    /// The boot sector (512 bytes) of a volume on a `device`-byte device.
    pub fn parse(b: &[u8], device: u64) -> Result<Geometry, FsError> {
        if b.len() < 512 || !matches!(b[0], 0xeb | 0xe9) {
            return Err(corrupt("no boot sector (jump instruction) at offset 0"));
        }
        let bps = u64::from(le16(b, 11));
        let spc = u64::from(b[13]);
        let reserved = u64::from(le16(b, 14));
        let fats = u64::from(b[16]);
        let root_entries = u64::from(le16(b, 17));
        let total = match le16(b, 19) {
            0 => u64::from(le32(b, 32)),
            n => u64::from(n),
        };
        let fat_sectors = match le16(b, 22) {
            0 => u64::from(le32(b, 36)),
            n => u64::from(n),
        };
        let bad = |what: String| Err(corrupt(what));
        if !matches!(bps, 512 | 1024 | 2048 | 4096) || !spc.is_power_of_two() || spc > 128 {
            return bad(format!("{bps} bytes per sector, {spc} per cluster"));
        }
        if reserved == 0 || !(1..=4).contains(&fats) || fat_sectors == 0 {
            return bad(format!(
                "{reserved} reserved sectors, {fats} FATs of {fat_sectors} sectors"
            ));
        }
        let root_sectors = (root_entries * ENTRY as u64).div_ceil(bps);
        let meta = reserved + fats * fat_sectors + root_sectors;
        if total <= meta || total.saturating_mul(bps) > device {
            return bad(format!(
                "{total} sectors of {bps} bytes: not past its metadata ({meta}) or past the {device}-byte partition"
            ));
        }
        let clusters = (total - meta) / spc;
        let kind = match clusters {
            0..4085 => FatType::Fat12,
            4085..65525 => FatType::Fat16,
            _ => FatType::Fat32,
        };
        let clusters = u32::try_from(clusters)
            .ok()
            .filter(|&c| c < 0x0fff_fff5)
            .ok_or_else(|| corrupt(format!("{clusters} clusters")))?;
        // The FAT must have an entry for every cluster.
        let fat_bits = match kind {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        };
        if (u64::from(clusters) + 2) * fat_bits > fat_sectors * bps * 8 {
            return bad(format!(
                "a FAT of {fat_sectors} sectors for {clusters} clusters"
            ));
        }
        let (fixed_root, root_cluster) = if kind == FatType::Fat32 {
            let root = le32(b, 44);
            if root_entries != 0 || !(2..clusters + 2).contains(&root) {
                return bad(format!("FAT32 root at cluster {root}"));
            }
            (None, root)
        } else {
            if root_entries == 0 {
                return bad("a FAT12/16 volume without root directory entries".into());
            }
            (
                Some((
                    (reserved + fats * fat_sectors) * bps,
                    root_entries * ENTRY as u64,
                )),
                0,
            )
        };
        Ok(Geometry {
            kind,
            cluster_bytes: spc * bps,
            clusters,
            fat_at: reserved * bps,
            data_at: meta * bps,
            fixed_root,
            root_cluster,
            volume_bytes: total * bps,
        })
    }
}

/// One directory entry as a walk sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub dir: bool,
    pub cluster: u32,
    pub size: u32,
}

/// A directory from a [`Fat::walk`]: its path from the root (`""`, then
/// `EFI`, `EFI/BOOT`…) and the names of the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedDir {
    pub path: String,
    pub files: Vec<String>,
}

pub struct Fat {
    src: Metered,
    pub geometry: Geometry,
    /// One block of the FAT, for chains read an entry at a time.
    fat_block: Option<(u64, Vec<u8>)>,
}

impl Fat {
    /// Reads and checks the boot sector; the walk's budget is twice the
    /// volume (every byte once, and the FAT again).
    pub fn open(src: Box<dyn ReadAt>) -> Result<Fat, FsError> {
        let mut boot = [0u8; 512];
        let mut src = src;
        src.read_at(0, &mut boot)?;
        let geometry = Geometry::parse(&boot, src.size())?;
        let budget = Budget::new(2 * geometry.volume_bytes + (1 << 20), 1 << 20, 0);
        Ok(Fat {
            src: Metered::new(src, budget),
            geometry,
            fat_block: None,
        })
    }

    /// The FAT's entry for `cluster`.
    fn next(&mut self, cluster: u32) -> Result<u32, FsError> {
        let (kind, fat_at) = (self.geometry.kind, self.geometry.fat_at);
        let (at, width) = match kind {
            FatType::Fat12 => (u64::from(cluster) * 3 / 2, 2),
            FatType::Fat16 => (u64::from(cluster) * 2, 2),
            FatType::Fat32 => (u64::from(cluster) * 4, 4),
        };
        let mut raw = [0u8; 4];
        for (i, byte) in raw.iter_mut().take(width).enumerate() {
            *byte = self.fat_byte(fat_at + at + i as u64)?;
        }
        let v = u32::from_le_bytes(raw);
        Ok(match kind {
            FatType::Fat12 if cluster % 2 == 1 => v >> 4,
            FatType::Fat12 => v & 0xfff,
            FatType::Fat16 => v,
            FatType::Fat32 => v & 0x0fff_ffff,
        })
    }

    fn fat_byte(&mut self, at: u64) -> Result<u8, FsError> {
        const BLOCK: u64 = 4096;
        let start = at / BLOCK * BLOCK;
        if self.fat_block.as_ref().is_none_or(|(s, _)| *s != start) {
            let len = BLOCK.min(self.src.size().saturating_sub(start)) as usize;
            let mut buf = vec![0u8; len];
            self.src.read_at(start, &mut buf)?;
            self.fat_block = Some((start, buf));
        }
        let (_, block) = self.fat_block.as_ref().expect("just read");
        block
            .get((at - start) as usize)
            .copied()
            .ok_or_else(|| corrupt(format!("FAT entry at byte {at} past the device")))
    }

    fn end_of_chain_at(&mut self, cluster: u32) -> Result<bool, FsError> {
        let next = self.next(cluster)?;
        Ok(self.end_of_chain(next))
    }

    fn end_of_chain(&self, v: u32) -> bool {
        v >= match self.geometry.kind {
            FatType::Fat12 => 0xff8,
            FatType::Fat16 => 0xfff8,
            FatType::Fat32 => 0x0fff_fff8,
        }
    }

    /// The chain from `first`, at most `max` clusters long. A chain that
    /// leaves the volume, meets a free or bad cluster, or comes back to a
    /// cluster it passed is refused by name.
    fn chain(&mut self, first: u32, max: u64) -> Result<Vec<u32>, FsError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut c = first;
        loop {
            if !(2..self.geometry.clusters + 2).contains(&c) {
                return Err(corrupt(format!(
                    "cluster chain from {first} reaches cluster {c:#x}, not a data cluster"
                )));
            }
            if !seen.insert(c) {
                return Err(corrupt(format!(
                    "cluster chain from {first} loops at cluster {c}"
                )));
            }
            out.push(c);
            if out.len() as u64 >= max {
                return Ok(out);
            }
            let next = self.next(c)?;
            if self.end_of_chain(next) {
                return Ok(out);
            }
            c = next;
        }
    }

    fn cluster_at(&self, c: u32) -> u64 {
        self.geometry.data_at + u64::from(c - 2) * self.geometry.cluster_bytes
    }

    fn read_clusters(&mut self, chain: &[u32], len: u64) -> Result<Vec<u8>, FsError> {
        let cb = self.geometry.cluster_bytes;
        let mut out = vec![0u8; len as usize];
        for (i, piece) in out.chunks_mut(cb as usize).enumerate() {
            let at = self.cluster_at(chain[i]);
            self.src.read_at(at, piece)?;
        }
        Ok(out)
    }

    /// The raw entries of the directory at `cluster` (0: the root).
    fn dir_bytes(&mut self, cluster: u32) -> Result<Vec<u8>, FsError> {
        if cluster == 0 || cluster == self.geometry.root_cluster {
            if let Some((at, len)) = self.geometry.fixed_root {
                let mut buf = vec![0u8; len as usize];
                self.src.read_at(at, &mut buf)?;
                return Ok(buf);
            }
        }
        let first = if cluster == 0 {
            self.geometry.root_cluster
        } else {
            cluster
        };
        let max = MAX_DIR_BYTES / self.geometry.cluster_bytes;
        let chain = self.chain(first, max.max(1))?;
        let len = chain.len() as u64 * self.geometry.cluster_bytes;
        self.read_clusters(&chain, len)
    }

    /// A directory's entries without `.`, `..`, deleted entries and the
    /// volume label; long names where their checksum matches.
    pub fn list(&mut self, cluster: u32) -> Result<Vec<Entry>, FsError> {
        let raw = self.dir_bytes(cluster)?;
        let entries = parse_dir(&raw);
        self.src.budget.entries(entries.len() as u64)?;
        Ok(entries)
    }

    /// Lists the root and, depth first, every directory below it, as
    /// Python's os.walk does (which is how ironic-python-agent meets an
    /// ESP's files). Each directory once: one met again is refused.
    pub fn walk(&mut self) -> Result<Vec<WalkedDir>, FsError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        self.walk_dir(0, String::new(), 0, &mut seen, &mut out)?;
        Ok(out)
    }

    fn walk_dir(
        &mut self,
        cluster: u32,
        path: String,
        depth: usize,
        seen: &mut BTreeSet<u32>,
        out: &mut Vec<WalkedDir>,
    ) -> Result<(), FsError> {
        let me = if cluster == 0 {
            self.geometry.root_cluster
        } else {
            cluster
        };
        if !seen.insert(me) {
            return Err(corrupt(format!(
                "directory {path} is a directory already walked (cluster {me}): a loop"
            )));
        }
        if depth > MAX_DEPTH || seen.len() > MAX_DIRS {
            return Err(FsError::OutOfWork(format!(
                "FAT: {path}: more than {MAX_DIRS} directories or {MAX_DEPTH} levels"
            )));
        }
        let entries = self.list(cluster)?;
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        for e in entries {
            if e.dir {
                subdirs.push(e);
            } else {
                files.push(e.name);
            }
        }
        out.push(WalkedDir {
            path: path.clone(),
            files,
        });
        for sub in subdirs {
            let child = if path.is_empty() {
                sub.name
            } else {
                format!("{path}/{}", sub.name)
            };
            // Cluster 0 in a subdirectory entry means the root.
            self.walk_dir(sub.cluster, child, depth + 1, seen, out)?;
        }
        Ok(())
    }

    /// The whole volume's tree checked as a writer needs it: every chain
    /// of every directory and file followed to its end, none looping, no
    /// cluster in two of them, each file's chain as long as its size.
    /// fatfs, which writes boot files onto an ESP, trusts all of this (a
    /// file's looping chain hangs its truncate): rivet hands it only a
    /// volume that passed. Work: each cluster once.
    pub fn verify(&mut self) -> Result<(), FsError> {
        let mut owned = BTreeSet::new();
        let all = u64::from(self.geometry.clusters);
        if self.geometry.fixed_root.is_none() {
            let root = self.geometry.root_cluster;
            self.own(root, all, &mut owned)?;
        }
        let mut todo = vec![(0u32, String::from("/"), 0usize)];
        let mut dirs = 0;
        while let Some((cluster, path, depth)) = todo.pop() {
            dirs += 1;
            if depth > MAX_DEPTH || dirs > MAX_DIRS {
                return Err(FsError::OutOfWork(format!(
                    "FAT: {path}: more than {MAX_DIRS} directories or {MAX_DEPTH} levels"
                )));
            }
            for e in self.list(cluster)? {
                let at = format!("{path}{}", e.name);
                if e.dir {
                    self.own(e.cluster, all, &mut owned)
                        .map_err(|err| corrupt(format!("{at}: {err}")))?;
                    todo.push((e.cluster, at + "/", depth + 1));
                } else if e.cluster != 0 || e.size != 0 {
                    let n = self
                        .own(e.cluster, all, &mut owned)
                        .map_err(|err| corrupt(format!("{at}: {err}")))?;
                    let need = u64::from(e.size).div_ceil(self.geometry.cluster_bytes);
                    if n != need {
                        return Err(corrupt(format!(
                            "{at}: {} bytes in a chain of {n} clusters",
                            e.size
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Follows a chain to its end, claiming each cluster; its length.
    fn own(&mut self, first: u32, all: u64, owned: &mut BTreeSet<u32>) -> Result<u64, FsError> {
        let chain = self.chain(first, all)?;
        let last = *chain.last().expect("a chain has a cluster");
        if chain.len() as u64 == all && !self.end_of_chain_at(last)? {
            return Err(corrupt(format!("cluster chain from {first} never ends")));
        }
        for c in &chain {
            if !owned.insert(*c) {
                return Err(corrupt(format!("cluster {c} belongs to two chains")));
            }
        }
        Ok(chain.len() as u64)
    }

    /// A file by `/`-separated path from the root, names matched without
    /// regard to ASCII case as FAT does; refused past `limit` bytes.
    pub fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let mut dir = 0u32;
        let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
        while let Some(part) = parts.next() {
            let entry = self
                .list(dir)?
                .into_iter()
                .find(|e| e.name.eq_ignore_ascii_case(part))
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
            if parts.peek().is_none() {
                if entry.dir {
                    return Err(FsError::NotAFile(path.to_string()));
                }
                let size = u64::from(entry.size);
                super::within_limit(path, size, limit)?;
                if size == 0 {
                    return Ok(Vec::new());
                }
                let need = size.div_ceil(self.geometry.cluster_bytes);
                let chain = self.chain(entry.cluster, need)?;
                if (chain.len() as u64) < need {
                    return Err(corrupt(format!(
                        "{path}: {size} bytes in a chain of {} clusters",
                        chain.len()
                    )));
                }
                return self.read_clusters(&chain, size);
            }
            if !entry.dir {
                return Err(FsError::NotADirectory(path.to_string()));
            }
            dir = entry.cluster;
        }
        Err(FsError::NotAFile(path.to_string()))
    }
}

/// The short name's checksum that long-name entries carry.
fn short_checksum(name: &[u8]) -> u8 {
    name.iter()
        .fold(0u8, |sum, &c| sum.rotate_right(1).wrapping_add(c))
}

/// 8.3 as written, with the case bits Windows NT and Linux set for
/// all-lowercase base or extension.
fn short_name(e: &[u8]) -> String {
    let mut raw = [0u8; 11];
    raw.copy_from_slice(&e[..11]);
    if raw[0] == 0x05 {
        raw[0] = 0xe5;
    }
    let case = e[12];
    let text = |b: &[u8], lower: bool| -> String {
        let s: String = b
            .iter()
            .map(|&c| if c.is_ascii() { c as char } else { '_' })
            .collect::<String>()
            .trim_end()
            .to_string();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let (base, ext) = (
        text(&raw[..8], case & 0x08 != 0),
        text(&raw[8..], case & 0x10 != 0),
    );
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// A long-name entry: its order number and thirteen UTF-16 units.
type LongPiece = (u8, [u16; 13]);

/// Entries of a directory's bytes, up to the end marker.
pub fn parse_dir(raw: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    // A long name being gathered: its checksum and UTF-16 pieces by order.
    let mut long: Option<(u8, Vec<LongPiece>)> = None;
    for e in raw.chunks_exact(ENTRY) {
        match e[0] {
            0x00 => break,
            0xe5 => {
                long = None;
                continue;
            }
            _ => {}
        }
        let attr = e[11];
        if attr & 0x3f == ATTR_LFN {
            let order = e[0] & 0x1f;
            let mut units = [0u16; 13];
            for (i, at) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
                .iter()
                .enumerate()
            {
                units[i] = le16(e, *at);
            }
            if e[0] & 0x40 != 0 {
                long = Some((e[13], vec![(order, units)]));
            } else if let Some((sum, parts)) = long.as_mut() {
                if *sum == e[13] {
                    parts.push((order, units));
                } else {
                    long = None;
                }
            }
            continue;
        }
        let taken = long.take();
        if attr & ATTR_VOLUME != 0 {
            continue;
        }
        let name = taken
            .filter(|(sum, parts)| {
                *sum == short_checksum(&e[..11])
                    // Orders n, n-1, … 1, one piece each.
                    && parts.iter().enumerate().all(|(i, (o, _))| usize::from(*o) == parts.len() - i)
            })
            .and_then(|(_, parts)| {
                let units: Vec<u16> = parts
                    .iter()
                    .rev()
                    .flat_map(|(_, u)| u.iter().copied())
                    .take_while(|&u| u != 0)
                    .collect();
                String::from_utf16(&units).ok()
            })
            .unwrap_or_else(|| short_name(e));
        if name == "." || name == ".." || name.is_empty() {
            continue;
        }
        let cluster = u32::from(le16(e, 20)) << 16 | u32::from(le16(e, 26));
        out.push(Entry {
            name,
            dir: attr & ATTR_DIR != 0,
            cluster,
            size: le32(e, 28),
        });
    }
    out
}

#[cfg(test)]
mod tests;

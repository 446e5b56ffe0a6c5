//! Writing files into an existing ext4, for the `inject_files` deploy
//! step: create or replace a regular file (making missing directories),
//! delete one, set its mode and owner. Minimal on purpose, and refusing by
//! name what it does not do rather than guessing: new data goes in at
//! most four extents in the inode; directories it adds entries to must be
//! linear (not hash-indexed) with their extents in the inode; no journal
//! is written, so a filesystem whose journal needs recovery is refused.
//! Checksums (metadata_csum's CRC-32C or uninit_bg's CRC-16) are kept, as
//! are the free counts. Writes go data first, then bitmaps, inode and
//! directory entry last: a crash leaves at worst blocks e2fsck reclaims.
//! Lookups go through [`Ext4Root`], with its bounds and budget.
//! (Field offsets: the kernel's fs/ext4/ext4.h.)

use super::ext4::{le16, le32, Ext4Root, ROOT_INODE};
use super::mkext::crc32c;
use super::partition::Partition;
use super::{FsError, Kind, ReadAt};
use crate::io::{BlockDevice, IoError};
use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_GDT_CSUM: u32 = 0x10;
const RO_METADATA_CSUM: u32 = 0x400;
const BG_INODE_UNINIT: u16 = 0x1;
const BG_BLOCK_UNINIT: u16 = 0x2;
const EXTENTS_FL: u32 = 0x8_0000;
const INDEX_FL: u32 = 0x1000;
const EXTENT_MAGIC: u16 = 0xf30a;
/// Blocks one extent of an initialised file covers.
const MAX_RUN: u64 = 32768;

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn unsupported(what: String) -> FsError {
    FsError::Unsupported(format!("writing ext4: {what}"))
}
fn corrupt(what: String) -> FsError {
    FsError::Corrupt(format!("ext4: {what}"))
}

/// One device, read through the ext4 reader and written here.
#[derive(Clone)]
struct Shared {
    dev: Rc<RefCell<Box<dyn BlockDevice>>>,
    name: String,
}

impl BlockDevice for Shared {
    fn name(&self) -> &str {
        &self.name
    }
    fn size(&self) -> u64 {
        self.dev.borrow().size()
    }
    fn logical_block(&self) -> u32 {
        self.dev.borrow().logical_block()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.dev.borrow_mut().read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        self.dev.borrow_mut().write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.dev.borrow_mut().flush()
    }
}

/// Which group descriptor (and so bitmap and inode) checksums the
/// filesystem keeps.
#[derive(Clone, Copy)]
enum Csum {
    None,
    /// uninit_bg: CRC-16 of the UUID, group and descriptor.
    Crc16,
    /// metadata_csum: CRC-32C chained from this seed.
    Crc32c(u32),
}

/// What an injected file gets besides its bytes (`None`: as it was, or
/// the defaults for a new one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes {
    pub mode: Option<u16>,
    pub owner: Option<u32>,
    pub group: Option<u32>,
    /// For directories this write makes.
    pub dirmode: Option<u16>,
}

pub struct Ext4Writer {
    root: Ext4Root,
    dev: Shared,
    /// The partition's byte offset on the device, and its length.
    base: u64,
    len: u64,
    sb: Vec<u8>,
    bs: u64,
    groups: u64,
    blocks: u64,
    blocks_per_group: u64,
    first_data: u64,
    inodes_per_group: u64,
    inode_size: usize,
    desc_size: usize,
    csum: Csum,
    /// Seconds since the epoch, for the times of what is written.
    now: u32,
}

impl Ext4Writer {
    /// The ext4 in the `len` bytes at `offset` of `dev`, checked for what
    /// this writer needs.
    pub fn open(
        dev: Box<dyn BlockDevice>,
        offset: u64,
        len: u64,
        now: u32,
    ) -> Result<Ext4Writer, FsError> {
        let name = dev.name().to_string();
        let dev = Shared {
            dev: Rc::new(RefCell::new(dev)),
            name,
        };
        let root = Ext4Root::load(Box::new(Partition::new(
            Box::new(dev.clone()),
            offset,
            len,
        )?))?;
        let mut w = Ext4Writer {
            root,
            dev,
            base: offset,
            len,
            sb: Vec::new(),
            bs: 0,
            groups: 0,
            blocks: 0,
            blocks_per_group: 0,
            first_data: 0,
            inodes_per_group: 0,
            inode_size: 0,
            desc_size: 0,
            csum: Csum::None,
            now,
        };
        let sb = w.read(1024, 1024)?;
        let (incompat, ro) = (le32(&sb, 96), le32(&sb, 100));
        if incompat & INCOMPAT_RECOVER != 0 {
            return Err(unsupported(
                "its journal needs recovery (the filesystem was not cleanly unmounted)".into(),
            ));
        }
        if incompat & INCOMPAT_EXTENTS == 0 || incompat & INCOMPAT_FILETYPE == 0 {
            return Err(unsupported(
                "an ext2/ext3 filesystem (no extents or no file types in directories)".into(),
            ));
        }
        // The reader has checked these against each other and the device.
        let u = |at: usize| u64::from(le32(&sb, at));
        let wide = incompat & 0x80 != 0;
        w.bs = 1024 << u(24);
        w.blocks = u(4) | if wide { u(0x150) << 32 } else { 0 };
        w.first_data = u(20);
        w.blocks_per_group = u(32);
        w.groups = (w.blocks - w.first_data).div_ceil(w.blocks_per_group);
        w.inodes_per_group = u(40);
        w.inode_size = if u(76) == 0 {
            128
        } else {
            usize::from(le16(&sb, 88))
        };
        w.desc_size = if wide {
            usize::from(le16(&sb, 254))
        } else {
            32
        };
        w.csum = if ro & RO_METADATA_CSUM != 0 {
            Csum::Crc32c(if incompat & INCOMPAT_CSUM_SEED != 0 {
                le32(&sb, 0x270)
            } else {
                crc32c::update(!0, &sb[0x68..0x78])
            })
        } else if ro & RO_GDT_CSUM != 0 {
            Csum::Crc16
        } else {
            Csum::None
        };
        w.sb = sb;
        Ok(w)
    }

    // ---------------------------------------------------------- bytes

    fn read(&mut self, at: u64, len: usize) -> Result<Vec<u8>, FsError> {
        let mut buf = vec![0u8; len];
        Partition::new(Box::new(self.dev.clone()), self.base, self.len)?.read_at(at, &mut buf)?;
        Ok(buf)
    }

    /// Writes `data` at byte `at` of the filesystem, whole device blocks
    /// at a time.
    fn write(&mut self, at: u64, data: &[u8]) -> Result<(), FsError> {
        if at + data.len() as u64 > self.len {
            return Err(corrupt(format!("a write at {at} past the filesystem")));
        }
        let lb = u64::from(self.dev.logical_block().max(512));
        let abs = self.base + at;
        let (start, stop) = (abs / lb * lb, (abs + data.len() as u64).div_ceil(lb) * lb);
        let mut buf = vec![0u8; (stop - start) as usize];
        if start != abs || stop != abs + data.len() as u64 {
            self.dev
                .read_at(start, &mut buf)
                .map_err(|e| FsError::Io(e.to_string()))?;
        }
        let skip = (abs - start) as usize;
        buf[skip..skip + data.len()].copy_from_slice(data);
        self.dev
            .write_at(start, &buf)
            .map_err(|e| FsError::Io(format!("{} at byte {start}: {e}", self.dev.name)))
    }

    fn block(&mut self, b: u64) -> Result<Vec<u8>, FsError> {
        self.check_block(b)?;
        self.read(b * self.bs, self.bs as usize)
    }

    fn put_block(&mut self, b: u64, data: &[u8]) -> Result<(), FsError> {
        self.check_block(b)?;
        self.write(b * self.bs, data)
    }

    fn check_block(&self, b: u64) -> Result<(), FsError> {
        if b < self.first_data || b >= self.blocks {
            return Err(corrupt(format!("block {b} outside the filesystem")));
        }
        Ok(())
    }

    // ---------------------------------------------------------- checksums

    fn crc(&self, seed: u32, parts: &[&[u8]]) -> u32 {
        parts.iter().fold(seed, |c, p| crc32c::update(c, p))
    }

    /// A group descriptor sealed with its checksum.
    fn seal_desc(&self, group: u64, d: &mut [u8]) {
        put16(d, 0x1e, 0);
        let g = (group as u32).to_le_bytes();
        match self.csum {
            Csum::None => {}
            Csum::Crc32c(seed) => {
                let c = self.crc(seed, &[&g, d]);
                put16(d, 0x1e, c as u16);
            }
            Csum::Crc16 => {
                let c = crc16(!0, &self.sb[0x68..0x78]);
                let c = crc16(crc16(c, &g), &d[..0x1e]);
                let c = crc16(c, &d[0x20..]);
                put16(d, 0x1e, c);
            }
        }
    }

    fn inode_seed(&self, seed: u32, ino: u64, generation: u32) -> u32 {
        self.crc(
            seed,
            &[&(ino as u32).to_le_bytes(), &generation.to_le_bytes()],
        )
    }

    // ---------------------------------------------------------- groups

    fn desc_at(&self, group: u64) -> u64 {
        (self.first_data + 1) * self.bs + group * self.desc_size as u64
    }

    fn desc(&mut self, group: u64) -> Result<Vec<u8>, FsError> {
        let at = self.desc_at(group);
        self.read(at, self.desc_size)
    }

    fn put_desc(&mut self, group: u64, mut d: Vec<u8>) -> Result<(), FsError> {
        self.seal_desc(group, &mut d);
        let at = self.desc_at(group);
        self.write(at, &d)
    }

    /// A 32-bit descriptor field whose high half sits at `hi` (64-byte
    /// descriptors).
    fn field(&self, d: &[u8], lo: usize, hi: usize, wide16: bool) -> u64 {
        let low = if wide16 {
            u64::from(le16(d, lo))
        } else {
            u64::from(le32(d, lo))
        };
        if self.desc_size < 64 {
            return low;
        }
        if wide16 {
            low | u64::from(le16(d, hi)) << 16
        } else {
            low | u64::from(le32(d, hi)) << 32
        }
    }

    fn set_field16(&self, d: &mut [u8], lo: usize, hi: usize, v: u64) {
        put16(d, lo, v as u16);
        if self.desc_size >= 64 {
            put16(d, hi, (v >> 16) as u16);
        }
    }

    /// Adds `delta` to the superblock's free count at `lo` (`hi`: its high
    /// half, 64bit block counts only) and seals it.
    fn count(&mut self, lo: usize, hi: Option<usize>, delta: i64) -> Result<(), FsError> {
        let mut v = u64::from(le32(&self.sb, lo));
        if let Some(hi) = hi.filter(|_| self.desc_size >= 64) {
            v |= u64::from(le32(&self.sb, hi)) << 32;
        }
        let v = v.saturating_add_signed(delta);
        put32(&mut self.sb, lo, v as u32);
        if let Some(hi) = hi.filter(|_| self.desc_size >= 64) {
            put32(&mut self.sb, hi, (v >> 32) as u32);
        }
        if let Csum::Crc32c(_) = self.csum {
            let c = crc32c::update(!0, &self.sb[..0x3fc]);
            put32(&mut self.sb, 0x3fc, c);
        }
        let sb = self.sb.clone();
        self.write(1024, &sb)
    }

    /// Marks bits in a group's bitmap (`inodes`: the inode bitmap), sets
    /// its checksum, adjusts the free count by `delta` per bit.
    fn mark(
        &mut self,
        group: u64,
        inodes: bool,
        bits: &[u64],
        used: bool,
    ) -> Result<Vec<u8>, FsError> {
        let mut d = self.desc(group)?;
        let (lo, hi) = if inodes { (4, 0x24) } else { (0, 0x20) };
        let at = self.field(&d, lo, hi, false);
        let mut map = self.block(at)?;
        for &bit in bits {
            let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
            if byte >= map.len() || (map[byte] & mask != 0) == used {
                return Err(corrupt(format!(
                    "group {group}: {} bit {bit} is already {}",
                    if inodes { "inode" } else { "block" },
                    if used { "set" } else { "clear" }
                )));
            }
            map[byte] ^= mask;
        }
        self.put_block(at, &map)?;
        let n = bits.len() as u64;
        let (free_lo, free_hi) = if inodes { (0x0e, 0x2e) } else { (0x0c, 0x2c) };
        let free = self.field(&d, free_lo, free_hi, true);
        let free = if used {
            free.checked_sub(n)
        } else {
            Some(free + n)
        }
        .ok_or_else(|| corrupt(format!("group {group}: free count below zero")))?;
        self.set_field16(&mut d, free_lo, free_hi, free);
        if let Csum::Crc32c(seed) = self.csum {
            let per = if inodes {
                self.inodes_per_group
            } else {
                self.blocks_per_group
            };
            let c = self.crc(seed, &[&map[..(per / 8) as usize]]);
            let (lo, hi) = if inodes { (0x1a, 0x3a) } else { (0x18, 0x38) };
            self.set_field16(&mut d, lo, hi, u64::from(c));
        }
        let delta = if used { -(n as i64) } else { n as i64 };
        if inodes {
            self.count(0x10, None, delta)?;
        } else {
            self.count(0x0c, Some(0x158), delta)?;
        }
        Ok(d)
    }

    /// `n` free blocks in at most four runs, marked used.
    fn alloc_blocks(&mut self, n: u64) -> Result<Vec<(u64, u64)>, FsError> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut left = n;
        for g in 0..self.groups {
            if left == 0 {
                break;
            }
            let d = self.desc(g)?;
            if le16(&d, 0x12) & BG_BLOCK_UNINIT != 0 || self.field(&d, 0x0c, 0x2c, true) == 0 {
                continue;
            }
            let map_at = self.field(&d, 0, 0x20, false);
            let map = self.block(map_at)?;
            let first = self.first_data + g * self.blocks_per_group;
            let mut bits = Vec::new();
            for bit in 0..self.blocks_per_group.min(self.blocks - first) {
                if left == 0 {
                    break;
                }
                if map[(bit / 8) as usize] & (1 << (bit % 8)) != 0 {
                    continue;
                }
                let b = first + bit;
                let n_runs = runs.len();
                match runs.last_mut() {
                    Some((s, l)) if *s + *l == b && *l < MAX_RUN => *l += 1,
                    _ if n_runs == 4 => {
                        return Err(unsupported(format!(
                        "{n} blocks would need more than 4 extents (the free space is fragmented)"
                    )))
                    }
                    _ => runs.push((b, 1)),
                }
                bits.push(bit);
                left -= 1;
            }
            if !bits.is_empty() {
                let d = self.mark(g, false, &bits, true)?;
                self.put_desc(g, d)?;
            }
        }
        if left > 0 {
            return Err(unsupported(format!("no room for {n} blocks")));
        }
        Ok(runs)
    }

    fn free_blocks(&mut self, runs: &[(u64, u64)]) -> Result<(), FsError> {
        for &(start, len) in runs {
            for b in start..start + len {
                self.check_block(b)?;
                let rel = b - self.first_data;
                let g = rel / self.blocks_per_group;
                let d = self.mark(g, false, &[rel % self.blocks_per_group], false)?;
                self.put_desc(g, d)?;
            }
        }
        Ok(())
    }

    fn alloc_inode(&mut self, dir: bool) -> Result<u64, FsError> {
        for g in 0..self.groups {
            let d = self.desc(g)?;
            if le16(&d, 0x12) & BG_INODE_UNINIT != 0 || self.field(&d, 0x0e, 0x2e, true) == 0 {
                continue;
            }
            let map_at = self.field(&d, 4, 0x24, false);
            let map = self.block(map_at)?;
            let Some(bit) =
                (0..self.inodes_per_group).find(|b| map[(b / 8) as usize] & (1 << (b % 8)) == 0)
            else {
                continue;
            };
            let ino = g * self.inodes_per_group + bit + 1;
            if ino < u64::from(le32(&self.sb, 84)).max(11) {
                continue; // the reserved inodes are never handed out
            }
            let mut d = self.mark(g, true, &[bit], true)?;
            if dir {
                let used = self.field(&d, 0x10, 0x30, true);
                self.set_field16(&mut d, 0x10, 0x30, used + 1);
            }
            if !matches!(self.csum, Csum::None) {
                // Inodes past the table's used part are not read by fsck.
                let unused = self.field(&d, 0x1c, 0x32, true);
                let keep = self.inodes_per_group - bit - 1;
                self.set_field16(&mut d, 0x1c, 0x32, unused.min(keep));
            }
            self.put_desc(g, d)?;
            return Ok(ino);
        }
        Err(unsupported("no free inode".into()))
    }

    fn free_inode(&mut self, ino: u64, dir: bool) -> Result<(), FsError> {
        let (g, bit) = (
            (ino - 1) / self.inodes_per_group,
            (ino - 1) % self.inodes_per_group,
        );
        let mut d = self.mark(g, true, &[bit], false)?;
        if dir {
            let used = self.field(&d, 0x10, 0x30, true);
            self.set_field16(&mut d, 0x10, 0x30, used.saturating_sub(1));
        }
        self.put_desc(g, d)
    }

    // ---------------------------------------------------------- inodes

    fn inode_at(&mut self, ino: u64) -> Result<u64, FsError> {
        let (g, i) = (
            (ino - 1) / self.inodes_per_group,
            (ino - 1) % self.inodes_per_group,
        );
        if ino == 0 || g >= self.groups {
            return Err(corrupt(format!("inode {ino} out of range")));
        }
        let d = self.desc(g)?;
        let table = self.field(&d, 8, 0x28, false);
        self.check_block(table)?;
        Ok(table * self.bs + i * self.inode_size as u64)
    }

    fn inode(&mut self, ino: u64) -> Result<Vec<u8>, FsError> {
        let at = self.inode_at(ino)?;
        self.read(at, self.inode_size)
    }

    fn put_inode(&mut self, ino: u64, mut raw: Vec<u8>) -> Result<(), FsError> {
        if let Csum::Crc32c(seed) = self.csum {
            let hi = self.inode_size > 128 && le16(&raw, 0x80) >= 4;
            put16(&mut raw, 0x7c, 0);
            if hi {
                put16(&mut raw, 0x82, 0);
            }
            let c = self.crc(self.inode_seed(seed, ino, le32(&raw, 0x64)), &[&raw]);
            put16(&mut raw, 0x7c, c as u16);
            if hi {
                put16(&mut raw, 0x82, (c >> 16) as u16);
            }
        }
        let at = self.inode_at(ino)?;
        self.write(at, &raw)
    }

    /// A fresh inode: `mode`, one link (two for a directory), the times now.
    fn new_inode(&self, mode: u16, attrs: &Attributes) -> Vec<u8> {
        let mut i = vec![0u8; self.inode_size];
        put16(&mut i, 0, mode);
        for at in [0x08, 0x0c, 0x10] {
            put32(&mut i, at, self.now);
        }
        put16(&mut i, 0x1a, if mode & 0xf000 == 0x4000 { 2 } else { 1 });
        set_owner(&mut i, attrs);
        if self.inode_size > 128 {
            put16(&mut i, 0x80, (self.inode_size - 128).min(32) as u16);
            if self.inode_size >= 0x94 {
                put32(&mut i, 0x90, self.now);
            }
        }
        i
    }

    /// Data blocks of an inode with at most one level of extents in it.
    fn runs_of(&self, ino: u64, raw: &[u8]) -> Result<Vec<(u64, u64)>, FsError> {
        if le32(raw, 0x20) & EXTENTS_FL == 0 {
            return Err(unsupported(format!(
                "inode {ino} maps its blocks the ext2 way"
            )));
        }
        if le16(raw, 0x28) != EXTENT_MAGIC || le16(raw, 0x2e) != 0 || le16(raw, 0x2a) > 4 {
            return Err(unsupported(format!(
                "inode {ino} has an extent tree deeper than its inode"
            )));
        }
        Ok((0..usize::from(le16(raw, 0x2a)))
            .map(|k| {
                let e = &raw[0x34 + 12 * k..0x40 + 12 * k];
                let len = u64::from(le16(e, 4));
                let start = u64::from(le16(e, 6)) << 32 | u64::from(le32(e, 8));
                (start, if len > MAX_RUN { len - MAX_RUN } else { len })
            })
            .collect())
    }

    /// Sets i_block to `runs` (file blocks in order) and the block count.
    fn set_runs(&self, raw: &mut [u8], runs: &[(u64, u64)]) {
        put32(raw, 0x20, le32(raw, 0x20) | EXTENTS_FL);
        raw[0x28..0x64].fill(0);
        put16(raw, 0x28, EXTENT_MAGIC);
        put16(raw, 0x2a, runs.len() as u16);
        put16(raw, 0x2c, 4);
        let mut logical = 0u64;
        for (k, &(start, len)) in runs.iter().enumerate() {
            let at = 0x34 + 12 * k;
            put32(raw, at, logical as u32);
            put16(raw, at + 4, len as u16);
            put16(raw, at + 6, (start >> 32) as u16);
            put32(raw, at + 8, start as u32);
            logical += len;
        }
        let sectors = logical * (self.bs / 512);
        put32(raw, 0x1c, sectors as u32);
        put16(raw, 0x74, (sectors >> 32) as u16);
    }

    // ---------------------------------------------------------- paths

    /// The inode `path` names (symlinks followed but the last), if any.
    fn lookup(&mut self, path: &str) -> Result<Option<u64>, FsError> {
        self.root.inode_of(path, false)
    }

    /// Splits `path` into its directory's inode (made, with `dirmode`, where
    /// missing) and the last name.
    fn parent<'p>(&mut self, path: &'p str, attrs: &Attributes) -> Result<(u64, &'p str), FsError> {
        let (dir, name) = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .unwrap_or(("", path));
        if name.is_empty() || name == "." || name == ".." || name.len() > 255 {
            return Err(FsError::NotAFile(path.to_string()));
        }
        let mut at = ROOT_INODE;
        let mut walked = String::new();
        let parts: Vec<&str> = dir
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for (k, part) in parts.iter().enumerate() {
            walked.push('/');
            walked.push_str(part);
            at = match self.root.inode_of(&walked, true)? {
                Some(ino) if self.root.kind_of(ino)? == Kind::Dir => ino,
                Some(_) => return Err(FsError::NotADirectory(walked)),
                // As the real agent's os.makedirs and chmod: new
                // directories are root's, 0755, the leaf one `dirmode`.
                None => {
                    let leaf = k + 1 == parts.len();
                    let mode = 0x4000 | attrs.dirmode.filter(|_| leaf).unwrap_or(0o755);
                    self.make_dir(at, part, mode, &Attributes::default())?
                }
            };
        }
        Ok((at, name))
    }

    /// Whether `/name` is a directory (symlinks followed).
    pub fn is_dir(&mut self, name: &str) -> Result<bool, FsError> {
        match self.root.inode_of(&format!("/{name}"), true)? {
            Some(ino) => Ok(self.root.kind_of(ino)? == Kind::Dir),
            None => Ok(false),
        }
    }

    /// Creates or replaces the regular file `path` with `content`.
    pub fn write_file(
        &mut self,
        path: &str,
        content: &[u8],
        attrs: &Attributes,
    ) -> Result<(), FsError> {
        let (dir, name) = self.parent(path, attrs)?;
        let existing = self.root.child(dir, name)?;
        // Everything that can be refused is, before a block is taken.
        match existing {
            Some(ino) if self.root.kind_of(ino)? != Kind::File => {
                return Err(FsError::NotAFile(path.to_string()))
            }
            Some(ino) => {
                let raw = self.inode(ino)?;
                self.runs_of(ino, &raw)?;
            }
            None => {
                self.dir_blocks(dir)?;
            }
        }
        let count = (content.len() as u64).div_ceil(self.bs);
        let runs = if count == 0 {
            Vec::new()
        } else {
            self.alloc_blocks(count)?
        };
        let mut left = content;
        for &(start, len) in &runs {
            let n = (len * self.bs) as usize;
            let mut buf = vec![0u8; n];
            let take = left.len().min(n);
            buf[..take].copy_from_slice(&left[..take]);
            left = &left[take..];
            self.write(start * self.bs, &buf)?;
        }
        let (ino, mut raw, old) = match existing {
            Some(ino) => {
                let raw = self.inode(ino)?;
                if le16(&raw, 0) & 0xf000 != 0x8000 {
                    return Err(FsError::NotAFile(path.to_string()));
                }
                let old = self.runs_of(ino, &raw)?;
                (ino, raw, old)
            }
            None => {
                let ino = self.alloc_inode(false)?;
                (ino, self.new_inode(0x8000 | 0o644, attrs), Vec::new())
            }
        };
        self.set_runs(&mut raw, &runs);
        let size = content.len() as u64;
        put32(&mut raw, 4, size as u32);
        put32(&mut raw, 0x6c, (size >> 32) as u32);
        for at in [0x0c, 0x10] {
            put32(&mut raw, at, self.now);
        }
        if let Some(mode) = attrs.mode {
            put16(&mut raw, 0, 0x8000 | (mode & 0o7777));
        }
        set_owner(&mut raw, attrs);
        self.put_inode(ino, raw)?;
        self.free_blocks(&old)?;
        if existing.is_none() {
            self.add_entry(dir, name, ino, 1)?;
        }
        self.dev.flush().map_err(|e| FsError::Io(e.to_string()))
    }

    /// Removes the regular file or symlink `path`; `false` if there was none.
    pub fn delete(&mut self, path: &str) -> Result<bool, FsError> {
        let Some(dir) = self.lookup(path.rsplit_once('/').map_or("/", |(d, _)| d))? else {
            return Ok(false);
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        let Some(ino) = self.root.child(dir, name)? else {
            return Ok(false);
        };
        let mut raw = self.inode(ino)?;
        if le16(&raw, 0) & 0xf000 == 0x4000 {
            return Err(FsError::NotAFile(path.to_string()));
        }
        // A short symlink keeps its target in i_block: no blocks to free.
        let fast_link = le16(&raw, 0) & 0xf000 == 0xa000 && le32(&raw, 0x20) & EXTENTS_FL == 0;
        let runs = if fast_link {
            Vec::new()
        } else {
            self.runs_of(ino, &raw)?
        };
        self.remove_entry(dir, name)?;
        let links = le16(&raw, 0x1a).saturating_sub(1);
        put16(&mut raw, 0x1a, links);
        if links == 0 {
            put32(&mut raw, 0x14, self.now);
            self.put_inode(ino, raw)?;
            self.free_blocks(&runs)?;
            self.free_inode(ino, false)?;
        } else {
            self.put_inode(ino, raw)?;
        }
        self.dev.flush().map_err(|e| FsError::Io(e.to_string()))?;
        Ok(true)
    }

    fn make_dir(
        &mut self,
        parent: u64,
        name: &str,
        mode: u16,
        attrs: &Attributes,
    ) -> Result<u64, FsError> {
        self.dir_blocks(parent)?;
        let runs = self.alloc_blocks(1)?;
        let ino = self.alloc_inode(true)?;
        let mut raw = self.new_inode(mode, attrs);
        self.set_runs(&mut raw, &runs);
        put32(&mut raw, 4, self.bs as u32);
        let mut block = vec![0u8; self.bs as usize];
        let end = self.dir_end();
        for (at, child, rec, n) in [(0, ino, 12, &b"."[..]), (12, parent, end - 12, &b".."[..])] {
            put32(&mut block, at, child as u32);
            put16(&mut block, at + 4, rec as u16);
            block[at + 6] = n.len() as u8;
            block[at + 7] = 2;
            block[at + 8..at + 8 + n.len()].copy_from_slice(n);
        }
        self.seal_dir_block(ino, le32(&raw, 0x64), &mut block);
        self.put_block(runs[0].0, &block)?;
        self.put_inode(ino, raw)?;
        self.add_entry(parent, name, ino, 2)?;
        let mut p = self.inode(parent)?;
        let links = le16(&p, 0x1a);
        // dir_nlink: a count of 1 means "many"; it stays so.
        if links > 1 && links < 65000 {
            put16(&mut p, 0x1a, links + 1);
        }
        self.put_inode(parent, p)?;
        Ok(ino)
    }

    // ---------------------------------------------------------- directories

    /// Where entries end in a directory block (before metadata_csum's tail).
    fn dir_end(&self) -> usize {
        self.bs as usize
            - if matches!(self.csum, Csum::Crc32c(_)) {
                12
            } else {
                0
            }
    }

    fn seal_dir_block(&self, dir: u64, generation: u32, b: &mut [u8]) {
        if let Csum::Crc32c(seed) = self.csum {
            let end = self.dir_end();
            b[end..].fill(0);
            put16(b, end + 4, 12);
            b[end + 7] = 0xde;
            let c = self.crc(self.inode_seed(seed, dir, generation), &[&b[..end]]);
            put32(b, end + 8, c);
        }
    }

    /// The directory's blocks, refused where this writer cannot change it.
    fn dir_blocks(&mut self, dir: u64) -> Result<(Vec<u8>, Vec<u64>), FsError> {
        let raw = self.inode(dir)?;
        if le32(&raw, 0x20) & INDEX_FL != 0 {
            return Err(unsupported(format!(
                "directory inode {dir} is hash-indexed (a large directory); rivet adds entries \
                 only to linear directories"
            )));
        }
        let runs = self.runs_of(dir, &raw)?;
        let size = u64::from(le32(&raw, 4)) | u64::from(le32(&raw, 0x6c)) << 32;
        let count = size / self.bs;
        let blocks: Vec<u64> = runs
            .iter()
            .flat_map(|&(s, l)| s..s + l)
            .take(count as usize)
            .collect();
        Ok((raw, blocks))
    }

    fn add_entry(&mut self, dir: u64, name: &str, child: u64, ftype: u8) -> Result<(), FsError> {
        let need = (8 + name.len()).div_ceil(4) * 4;
        let end = self.dir_end();
        let (mut raw, blocks) = self.dir_blocks(dir)?;
        let generation = le32(&raw, 0x64);
        for &b in &blocks {
            let mut block = self.block(b)?;
            let mut at = 0;
            while at + 8 <= end {
                let rec = usize::from(le16(&block, at + 4));
                if rec < 8 || at + rec > end {
                    return Err(corrupt(format!(
                        "directory {dir}: entry at {at} of block {b}"
                    )));
                }
                let used = if le32(&block, at) == 0 {
                    0
                } else {
                    (8 + usize::from(block[at + 6])).div_ceil(4) * 4
                };
                if rec >= used && rec - used >= need {
                    let (slot, len) = if used == 0 {
                        (at, rec)
                    } else {
                        (at + used, rec - used)
                    };
                    if used > 0 {
                        put16(&mut block, at + 4, used as u16);
                    }
                    put_entry(&mut block, slot, child, len, name, ftype);
                    self.seal_dir_block(dir, generation, &mut block);
                    return self.put_block(b, &block);
                }
                at += rec;
            }
        }
        // No room: one more block, in the directory's last extent or a new one.
        let mut runs = self.runs_of(dir, &raw)?;
        let fresh = self.alloc_blocks(1)?[0].0;
        let n_runs = runs.len();
        match runs.last_mut() {
            Some((s, l)) if *s + *l == fresh && *l < MAX_RUN => *l += 1,
            _ if n_runs < 4 => runs.push((fresh, 1)),
            _ => {
                self.free_blocks(&[(fresh, 1)])?;
                return Err(unsupported(format!(
                    "directory {dir} would need a fifth extent"
                )));
            }
        }
        let mut block = vec![0u8; self.bs as usize];
        put_entry(&mut block, 0, child, end, name, ftype);
        self.seal_dir_block(dir, generation, &mut block);
        self.put_block(fresh, &block)?;
        self.set_runs(&mut raw, &runs);
        let size = (blocks.len() as u64 + 1) * self.bs;
        put32(&mut raw, 4, size as u32);
        put32(&mut raw, 0x6c, (size >> 32) as u32);
        self.put_inode(dir, raw)
    }

    fn remove_entry(&mut self, dir: u64, name: &str) -> Result<(), FsError> {
        let end = self.dir_end();
        let (raw, blocks) = self.dir_blocks(dir)?;
        for &b in &blocks {
            let mut block = self.block(b)?;
            let (mut at, mut prev) = (0, None);
            while at + 8 <= end {
                let rec = usize::from(le16(&block, at + 4));
                if rec < 8 || at + rec > end {
                    return Err(corrupt(format!(
                        "directory {dir}: entry at {at} of block {b}"
                    )));
                }
                let len = usize::from(block[at + 6]);
                if le32(&block, at) != 0 && block.get(at + 8..at + 8 + len) == Some(name.as_bytes())
                {
                    match prev {
                        // The record before takes this one's space.
                        Some(p) => put16(&mut block, p + 4, (at + rec - p) as u16),
                        None => put32(&mut block, at, 0),
                    }
                    self.seal_dir_block(dir, le32(&raw, 0x64), &mut block);
                    return self.put_block(b, &block);
                }
                prev = Some(at);
                at += rec;
            }
        }
        Err(FsError::NotFound(name.to_string()))
    }
}

fn put_entry(b: &mut [u8], at: usize, child: u64, rec: usize, name: &str, ftype: u8) {
    put32(b, at, child as u32);
    put16(b, at + 4, rec as u16);
    b[at + 6] = name.len() as u8;
    b[at + 7] = ftype;
    b[at + 8..at + 8 + name.len()].copy_from_slice(name.as_bytes());
}

fn set_owner(raw: &mut [u8], attrs: &Attributes) {
    if let Some(uid) = attrs.owner {
        put16(raw, 0x02, uid as u16);
        put16(raw, 0x78, (uid >> 16) as u16);
    }
    if let Some(gid) = attrs.group {
        put16(raw, 0x18, gid as u16);
        put16(raw, 0x7a, (gid >> 16) as u16);
    }
}

/// CRC-16 (ANSI, reflected), as ext4's uninit_bg descriptors use it.
fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests_support {
    use super::*;
    pub use crate::io::MemDisk;
    pub use std::path::{Path, PathBuf};
    use std::process::Command;

    pub fn run(cmd: &str, args: &[&str]) -> (i32, String) {
        let out = Command::new(cmd).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    }

    /// `mkfs.ext4 -d` of a small tree with `extra` options, into memory.
    pub fn image(dir: &Path, name: &str, extra: &[&str], files: usize) -> (PathBuf, MemDisk) {
        let tree = dir.join(format!("{name}-tree"));
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(tree.join("etc/sysctl.d")).unwrap();
        std::fs::write(tree.join("etc/os-release"), "ID=debian\n").unwrap();
        std::fs::write(tree.join("etc/hostname"), "old\n").unwrap();
        std::fs::write(tree.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", tree.join("link")).unwrap();
        for i in 0..files {
            std::fs::write(tree.join(format!("etc/file-{i:04}")), b"x").unwrap();
        }
        let img = dir.join(format!("{name}.ext4"));
        let _ = std::fs::remove_file(&img);
        let mut args = vec!["-q", "-F"];
        args.extend(extra);
        args.extend(["-d", tree.to_str().unwrap(), img.to_str().unwrap(), "16M"]);
        let (code, text) = run("mkfs.ext4", &args);
        assert_eq!(code, 0, "{text}");
        (img.clone(), load(&img))
    }

    pub fn load(img: &Path) -> MemDisk {
        let bytes = std::fs::read(img).unwrap();
        let mut disk = MemDisk::new(bytes.len() as u64 + (1 << 20), 512);
        disk.write_at(1 << 20, &bytes).unwrap();
        disk
    }

    /// The partition (1 MiB into the disk) back to `img`, for the tools.
    pub fn save(dev: &Rc<RefCell<Box<dyn BlockDevice>>>, img: &Path) {
        let len = std::fs::metadata(img).unwrap().len();
        let mut bytes = vec![0u8; len as usize];
        dev.borrow_mut().read_at(1 << 20, &mut bytes).unwrap();
        std::fs::write(img, bytes).unwrap();
    }

    pub fn writer(disk: MemDisk) -> (Ext4Writer, Rc<RefCell<Box<dyn BlockDevice>>>) {
        let len = disk.size() - (1 << 20);
        let w = Ext4Writer::open(Box::new(disk), 1 << 20, len, 1_765_000_000).unwrap();
        let dev = w.dev.dev.clone();
        (w, dev)
    }

    /// debugfs's answer (its stdout; the banner goes to stderr).
    pub fn debugfs(img: &Path, request: &str) -> String {
        let out = Command::new("debugfs")
            .args(["-R", request, img.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn fsck_clean(img: &Path) {
        let (code, text) = run("e2fsck", &["-fn", img.to_str().unwrap()]);
        assert_eq!(code, 0, "e2fsck found damage:\n{text}");
    }

    pub fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rivet-ext4w-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    /// What inject_files asks of a filesystem, on the layouts a cloud image
    /// comes in: metadata_csum (4 KiB and 1 KiB blocks) and the older
    /// uninit_bg; e2fsck must find nothing to fix, debugfs the files.
    #[test]
    fn files_written_replaced_and_deleted_leave_a_clean_filesystem() {
        let dir = scratch("layouts");
        for (name, extra) in [
            ("csum4k", &["-b", "4096"][..]),
            ("csum1k", &["-b", "1024"][..]),
            ("uninit", &["-O", "^metadata_csum,uninit_bg"][..]),
        ] {
            let (img, disk) = image(&dir, name, extra, 0);
            let (mut w, dev) = writer(disk);
            let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let attrs = Attributes {
                mode: Some(0o600),
                owner: Some(1000),
                group: Some(100_000),
                dirmode: None,
            };
            w.write_file(
                "/etc/sysctl.d/90-rivet.conf",
                b"vm.swappiness = 1\n",
                &attrs,
            )
            .unwrap();
            w.write_file("/etc/hostname", b"node-7\n", &Attributes::default())
                .unwrap();
            let deep = Attributes {
                dirmode: Some(0o700),
                ..Attributes::default()
            };
            w.write_file("/opt/rivet/keys/blob", &big, &deep).unwrap();
            w.write_file("/root-file", b"", &Attributes::default())
                .unwrap();
            assert!(w.delete("/empty").unwrap());
            assert!(w.delete("/link").unwrap());
            assert!(!w.delete("/etc/nothing").unwrap());
            // Twenty files in one directory: it grows by a block.
            for i in 0..40 {
                let name = format!("/etc/sysctl.d/{i:02}-{}.conf", "x".repeat(60));
                w.write_file(&name, name.as_bytes(), &Attributes::default())
                    .unwrap();
            }
            drop(w);
            save(&dev, &img);
            fsck_clean(&img);
            assert_eq!(
                debugfs(&img, "cat /etc/sysctl.d/90-rivet.conf"),
                "vm.swappiness = 1\n",
                "{name}"
            );
            assert_eq!(debugfs(&img, "cat /etc/hostname"), "node-7\n", "{name}");
            let stat = debugfs(&img, "stat /etc/sysctl.d/90-rivet.conf");
            assert!(
                stat.contains("Mode:  0600")
                    && stat.contains("User:  1000")
                    && stat.contains("Group: 100000"),
                "{name}: {stat}"
            );
            let dump = dir.join("blob");
            debugfs(
                &img,
                &format!("dump /opt/rivet/keys/blob {}", dump.display()),
            );
            assert_eq!(std::fs::read(&dump).unwrap(), big, "{name}");
            assert!(
                debugfs(&img, "stat /opt/rivet/keys").contains("Mode:  0700"),
                "{name}"
            );
            assert!(
                debugfs(&img, "stat /opt/rivet").contains("Mode:  0755"),
                "{name}"
            );
            let ls = debugfs(&img, "ls -l /");
            assert!(
                !ls.contains(" empty") && !ls.contains(" link") && ls.contains("root-file"),
                "{name}: {ls}"
            );
            assert!(debugfs(&img, "cat /etc/sysctl.d/39-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.conf").contains("/etc/sysctl.d/39-"), "{name}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod refusals {
    use super::tests_support::*;
    use super::*;

    /// Why the writer will not open `img`.
    fn refused_open(img: &Path) -> FsError {
        let len = std::fs::metadata(img).unwrap().len();
        Ext4Writer::open(Box::new(load(img)), 1 << 20, len, 0)
            .err()
            .expect("opened")
    }

    /// What the writer does not do is refused by name, before it writes.
    #[test]
    fn what_it_cannot_write_is_refused_by_name_and_changes_nothing() {
        let dir = scratch("refusals");
        // A hash-indexed directory (e2fsck -D indexes one of 300 entries).
        let (img, _) = image(&dir, "htree", &["-b", "1024"], 300);
        let (code, text) = run("e2fsck", &["-fyD", img.to_str().unwrap()]);
        assert!(code <= 1, "{text}");
        let before = std::fs::read(&img).unwrap();
        let (mut w, dev) = writer(load(&img));
        let err = w
            .write_file("/etc/new", b"x", &Attributes::default())
            .unwrap_err();
        assert!(err.to_string().contains("hash-indexed"), "{err}");
        let err = w
            .write_file("/etc", b"x", &Attributes::default())
            .unwrap_err();
        assert!(matches!(err, FsError::NotAFile(_)), "{err}");
        let err = w.delete("/etc").unwrap_err();
        assert!(matches!(err, FsError::NotAFile(_)), "{err}");
        let err = w
            .write_file("/etc/hostname/x", b"x", &Attributes::default())
            .unwrap_err();
        assert!(matches!(err, FsError::NotADirectory(_)), "{err}");
        save(&dev, &img);
        assert!(
            std::fs::read(&img).unwrap() == before,
            "a refusal changed the filesystem"
        );
        // A file already there is rewritten in place: no entry to add.
        w.write_file("/etc/hostname", b"fine\n", &Attributes::default())
            .unwrap();
        save(&dev, &img);
        fsck_clean(&img);
        assert_eq!(debugfs(&img, "cat /etc/hostname"), "fine\n");
        // A journal that needs recovery; ext2.
        let (img, _) = image(&dir, "dirty", &[], 0);
        let (code, text) = run(
            "debugfs",
            &["-w", "-R", "feature needs_recovery", img.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{text}");
        let err = refused_open(&img);
        assert!(err.to_string().contains("journal needs recovery"), "{err}");
        let (img, _) = image(&dir, "ext2", &["-t", "ext2"], 0);
        let err = refused_open(&img);
        assert!(err.to_string().contains("ext2/ext3"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

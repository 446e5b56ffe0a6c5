//! The on-disk records of a new filesystem, laid out byte by byte (offsets
//! as in the kernel's `fs/ext4/ext4.h` and `include/linux/jbd2.h`), and
//! their metadata_csum checksums.

use super::crc32c;
use super::geometry::{Geometry, FIRST_INODE, INODE_SIZE};
use super::{Kind, Options};
use alloc::vec;
use alloc::vec::Vec;

pub const BG_INODE_UNINIT: u16 = 0x1;
pub const BG_BLOCK_UNINIT: u16 = 0x2;
pub const BG_INODE_ZEROED: u16 = 0x4;
pub const FT_DIR: u8 = 2;

const EXTENTS_FL: u32 = 0x8_0000;
const EXTENT_MAGIC: u16 = 0xf30a;
const JBD2_MAGIC: u32 = 0xc03b_3998;
const JBD2_SUPERBLOCK_V2: u32 = 4;
/// The extra inode fields rivet fills (up to i_crtime_extra), as mke2fs.
const EXTRA_ISIZE: u16 = 32;

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put32_be(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub struct Counts {
    pub free_blocks: u64,
    pub free_inodes: u32,
}

pub struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks: u32,
    pub free_inodes: u32,
    pub used_dirs: u32,
    pub flags: u16,
    pub itable_unused: u32,
    pub block_bitmap_csum: u32,
    pub inode_bitmap_csum: u32,
}

/// The journal's data blocks and the blocks that map them (an extent
/// leaf, or ext3's indirect blocks).
#[derive(Default)]
pub struct Journal {
    pub runs: Vec<(u64, u32)>,
    pub index: Vec<u64>,
}

/// Indirect blocks needed to map `n` blocks without extents.
pub fn indirect_blocks(n: u32, block_size: u32) -> u32 {
    let p = block_size / 4;
    if n <= 12 {
        0
    } else if n <= 12 + p {
        1
    } else {
        2 + (n - 12 - p).div_ceil(p)
    }
}

/// The journal inode's i_block words and size, for the superblock's backup
/// of them (s_jnl_blocks).
pub fn journal_inode_blocks(itable: &[u8], ino: u32) -> [u32; 17] {
    let at = ((ino - 1) * INODE_SIZE) as usize;
    let inode = &itable[at..at + INODE_SIZE as usize];
    let word = |o: usize| u32::from_le_bytes([inode[o], inode[o + 1], inode[o + 2], inode[o + 3]]);
    let mut out = [0u32; 17];
    for (i, w) in out.iter_mut().take(15).enumerate() {
        *w = word(0x28 + 4 * i);
    }
    out[15] = word(0x6c);
    out[16] = word(0x04);
    out
}

/// A filesystem being made: its geometry, options and checksum seed.
pub struct Fs<'a> {
    geo: &'a Geometry,
    o: &'a Options<'a>,
    seed: u32,
}

impl<'a> Fs<'a> {
    pub fn new(geo: &'a Geometry, o: &'a Options<'a>) -> Fs<'a> {
        Fs {
            geo,
            o,
            seed: crc32c::update(!0, &o.uuid),
        }
    }

    fn csum_on(&self) -> bool {
        self.o.kind.csum()
    }

    /// The checksum of a bitmap (metadata_csum), else 0.
    pub fn csum(&self, bytes: &[u8]) -> u32 {
        if self.csum_on() {
            crc32c::update(self.seed, bytes)
        } else {
            0
        }
    }

    fn inode_seed(&self, ino: u32) -> u32 {
        let s = crc32c::update(self.seed, &ino.to_le_bytes());
        crc32c::update(s, &0u32.to_le_bytes()) // i_generation
    }

    pub fn superblock(&self, group: u32, counts: &Counts, journal: Option<&[u32; 17]>) -> Vec<u8> {
        let g = self.geo;
        let o = self.o;
        let ext4 = o.kind == Kind::Ext4;
        let mut sb = vec![0u8; 1024];
        put32(&mut sb, 0x00, g.inodes());
        put32(&mut sb, 0x04, g.blocks as u32);
        put32(&mut sb, 0x08, g.reserved_blocks as u32);
        put32(&mut sb, 0x0c, counts.free_blocks as u32);
        put32(&mut sb, 0x10, counts.free_inodes);
        put32(&mut sb, 0x14, g.first_data_block);
        let log = g.block_size.trailing_zeros() - 10;
        put32(&mut sb, 0x18, log);
        put32(&mut sb, 0x1c, log);
        put32(&mut sb, 0x20, g.blocks_per_group);
        put32(&mut sb, 0x24, g.blocks_per_group);
        put32(&mut sb, 0x28, g.inodes_per_group);
        put32(&mut sb, 0x30, o.now); // s_wtime
        put16(&mut sb, 0x36, 0xffff); // s_max_mnt_count: -1, no periodic fsck
        put16(&mut sb, 0x38, 0xef53);
        put16(&mut sb, 0x3a, 1); // clean
        put16(&mut sb, 0x3c, 1); // errors=continue
        put32(&mut sb, 0x40, o.now); // s_lastcheck
        put32(&mut sb, 0x4c, 1); // dynamic revision
        put32(&mut sb, 0x54, FIRST_INODE);
        put16(&mut sb, 0x58, INODE_SIZE as u16);
        put16(&mut sb, 0x5a, group as u16);
        let (compat, incompat, ro) = features(o.kind);
        put32(&mut sb, 0x5c, compat);
        put32(&mut sb, 0x60, incompat);
        put32(&mut sb, 0x64, ro);
        sb[0x68..0x78].copy_from_slice(&o.uuid);
        let label = o.label.as_bytes();
        let n = label.len().min(16);
        sb[0x78..0x78 + n].copy_from_slice(&label[..n]);
        if let Some(j) = journal {
            put32(&mut sb, 0xe0, super::JOURNAL_INODE);
            sb[0xfd] = 1; // s_jnl_backup_type: the inode's blocks
            for (i, w) in j.iter().enumerate() {
                put32(&mut sb, 0x10c + 4 * i, *w);
            }
        }
        sb[0xec..0xfc].copy_from_slice(&o.hash_seed);
        sb[0xfc] = 1; // half_md4
        if ext4 {
            put16(&mut sb, 0xfe, g.desc_size as u16);
        }
        put32(&mut sb, 0x100, 0x0004 | 0x0008); // user_xattr, acl
        put32(&mut sb, 0x108, o.now); // s_mkfs_time
        put32(&mut sb, 0x150, (g.blocks >> 32) as u32);
        put32(&mut sb, 0x154, (g.reserved_blocks >> 32) as u32);
        put32(&mut sb, 0x158, (counts.free_blocks >> 32) as u32);
        put16(&mut sb, 0x15c, EXTRA_ISIZE);
        put16(&mut sb, 0x15e, EXTRA_ISIZE);
        // How directory hashes treat bytes above 0x7f: as this CPU's char.
        let unsigned_char = cfg!(any(
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "powerpc64",
            target_arch = "s390x",
            target_arch = "riscv64"
        ));
        put32(&mut sb, 0x160, if unsigned_char { 2 } else { 1 });
        if ext4 {
            sb[0x174] = 4; // 16 groups per flex group
            sb[0x175] = 1; // crc32c
            let c = crc32c::update(!0, &sb[..0x3fc]);
            put32(&mut sb, 0x3fc, c);
        }
        sb
    }

    pub fn group_desc(&self, group: u32, d: &GroupDesc, out: &mut [u8]) {
        put32(out, 0x00, d.block_bitmap as u32);
        put32(out, 0x04, d.inode_bitmap as u32);
        put32(out, 0x08, d.inode_table as u32);
        put16(out, 0x0c, d.free_blocks as u16);
        put16(out, 0x0e, d.free_inodes as u16);
        put16(out, 0x10, d.used_dirs as u16);
        put16(out, 0x12, d.flags);
        put16(out, 0x18, d.block_bitmap_csum as u16);
        put16(out, 0x1a, d.inode_bitmap_csum as u16);
        put16(out, 0x1c, d.itable_unused as u16);
        if out.len() >= 64 {
            put32(out, 0x20, (d.block_bitmap >> 32) as u32);
            put32(out, 0x24, (d.inode_bitmap >> 32) as u32);
            put32(out, 0x28, (d.inode_table >> 32) as u32);
            put16(out, 0x2c, (d.free_blocks >> 16) as u16);
            put16(out, 0x2e, (d.free_inodes >> 16) as u16);
            put16(out, 0x30, (d.used_dirs >> 16) as u16);
            put16(out, 0x32, (d.itable_unused >> 16) as u16);
            put16(out, 0x38, (d.block_bitmap_csum >> 16) as u16);
            put16(out, 0x3a, (d.inode_bitmap_csum >> 16) as u16);
        }
        if self.csum_on() {
            let c = crc32c::update(self.seed, &group.to_le_bytes());
            let c = crc32c::update(c, out); // bg_checksum still zero
            put16(out, 0x1e, c as u16);
        }
    }

    fn inode(&self, mode: u16, links: u16, size: u64, blocks: u64) -> Vec<u8> {
        let mut i = vec![0u8; INODE_SIZE as usize];
        put16(&mut i, 0x00, mode);
        put32(&mut i, 0x04, size as u32);
        for at in [0x08, 0x0c, 0x10] {
            put32(&mut i, at, self.o.now);
        }
        put16(&mut i, 0x1a, links);
        let sectors = blocks * u64::from(self.geo.block_size / 512);
        put32(&mut i, 0x1c, sectors as u32);
        put16(&mut i, 0x74, (sectors >> 32) as u16);
        put32(&mut i, 0x6c, (size >> 32) as u32);
        put16(&mut i, 0x80, EXTRA_ISIZE);
        put32(&mut i, 0x90, self.o.now); // i_crtime
        i
    }

    fn seal_inode(&self, ino: u32, i: &mut [u8]) {
        if self.csum_on() {
            let c = crc32c::update(self.inode_seed(ino), i);
            put16(i, 0x7c, c as u16);
            put16(i, 0x82, (c >> 16) as u16);
        }
    }

    /// Fills i_block with the extents of `runs` (at most 4).
    fn inline_extents(i: &mut [u8], runs: &[(u64, u32)]) {
        put32(i, 0x20, EXTENTS_FL);
        put16(i, 0x28, EXTENT_MAGIC);
        put16(i, 0x2a, runs.len() as u16);
        put16(i, 0x2c, 4);
        let mut logical = 0u32;
        for (k, &(start, len)) in runs.iter().enumerate() {
            let at = 0x28 + 12 + 12 * k;
            put32(i, at, logical);
            put16(i, at + 4, len as u16);
            put16(i, at + 6, (start >> 32) as u16);
            put32(i, at + 8, start as u32);
            logical += len;
        }
    }

    /// A directory inode whose blocks are `runs`, `bytes` long.
    pub fn dir_inode(
        &self,
        ino: u32,
        mode: u16,
        links: u16,
        runs: &[(u64, u32)],
        bytes: u32,
    ) -> Vec<u8> {
        let blocks: u64 = runs.iter().map(|r| u64::from(r.1)).sum();
        let mut i = self.inode(mode, links, u64::from(bytes), blocks);
        if self.o.kind == Kind::Ext4 {
            Self::inline_extents(&mut i, runs);
        } else {
            for (k, b) in super::runs_to_blocks(runs).iter().take(12).enumerate() {
                put32(&mut i, 0x28 + 4 * k, *b as u32);
            }
        }
        self.seal_inode(ino, &mut i);
        i
    }

    /// The journal inode and the contents of its index blocks (in the
    /// order of `j.index`).
    pub fn journal_inode(&self, j: &Journal, blocks: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
        let bs = self.geo.block_size;
        let total = u64::from(blocks) + j.index.len() as u64;
        let mut i = self.inode(0o100600, 1, u64::from(blocks) * u64::from(bs), total);
        let mut index = Vec::new();
        if self.o.kind == Kind::Ext4 {
            if j.index.is_empty() {
                Self::inline_extents(&mut i, &j.runs);
            } else {
                // One leaf block holds every extent; i_block points at it.
                put32(&mut i, 0x20, EXTENTS_FL);
                put16(&mut i, 0x28, EXTENT_MAGIC);
                put16(&mut i, 0x2a, 1);
                put16(&mut i, 0x2c, 4);
                put16(&mut i, 0x2e, 1); // depth
                let leaf_at = j.index[0];
                put32(&mut i, 0x28 + 12, 0);
                put32(&mut i, 0x28 + 16, leaf_at as u32);
                put16(&mut i, 0x28 + 20, (leaf_at >> 32) as u16);
                let mut leaf = vec![0u8; bs as usize];
                let max = (bs - 12) / 12;
                put16(&mut leaf, 0, EXTENT_MAGIC);
                put16(&mut leaf, 2, j.runs.len() as u16);
                put16(&mut leaf, 4, max as u16);
                let mut logical = 0u32;
                for (k, &(start, len)) in j.runs.iter().enumerate() {
                    let at = 12 + 12 * k;
                    put32(&mut leaf, at, logical);
                    put16(&mut leaf, at + 4, len as u16);
                    put16(&mut leaf, at + 6, (start >> 32) as u16);
                    put32(&mut leaf, at + 8, start as u32);
                    logical += len;
                }
                let tail = (12 + 12 * max) as usize;
                let c = crc32c::update(self.inode_seed(super::JOURNAL_INODE), &leaf[..tail]);
                put32(&mut leaf, tail, c);
                index.push(leaf);
            }
        } else {
            let data = super::runs_to_blocks(&j.runs);
            let p = (bs / 4) as usize;
            for (k, b) in data.iter().take(12).enumerate() {
                put32(&mut i, 0x28 + 4 * k, *b as u32);
            }
            let pointers = |list: &[u64]| {
                let mut blk = vec![0u8; bs as usize];
                for (k, b) in list.iter().enumerate() {
                    put32(&mut blk, 4 * k, *b as u32);
                }
                blk
            };
            if data.len() > 12 {
                put32(&mut i, 0x28 + 4 * 12, j.index[0] as u32);
                index.push(pointers(&data[12..data.len().min(12 + p)]));
            }
            if data.len() > 12 + p {
                put32(&mut i, 0x28 + 4 * 13, j.index[1] as u32);
                let singles = &j.index[2..];
                index.push(pointers(singles));
                for (k, chunk) in data[12 + p..].chunks(p).enumerate() {
                    debug_assert!(k < singles.len());
                    index.push(pointers(chunk));
                }
            }
        }
        self.seal_inode(super::JOURNAL_INODE, &mut i);
        (i, index)
    }

    /// A directory block holding `entries`; the last one's record runs to
    /// the end (or to the checksum tail).
    pub fn dir_block(&self, ino: u32, entries: &[(u32, &str, u8)], bs: u32) -> Vec<u8> {
        let mut b = vec![0u8; bs as usize];
        let end = if self.csum_on() {
            bs as usize - 12
        } else {
            bs as usize
        };
        let mut at = 0usize;
        if entries.is_empty() {
            put16(&mut b, 4, end as u16);
        }
        for (k, (child, name, ft)) in entries.iter().enumerate() {
            let len = (8 + name.len()).div_ceil(4) * 4;
            let rec = if k + 1 == entries.len() {
                end - at
            } else {
                len
            };
            put32(&mut b, at, *child);
            put16(&mut b, at + 4, rec as u16);
            b[at + 6] = name.len() as u8;
            b[at + 7] = *ft;
            b[at + 8..at + 8 + name.len()].copy_from_slice(name.as_bytes());
            at += rec;
        }
        if self.csum_on() {
            put16(&mut b, end + 4, 12);
            b[end + 7] = 0xde;
            let c = crc32c::update(self.inode_seed(ino), &b[..end]);
            put32(&mut b, end + 8, c);
        }
        b
    }

    /// The journal superblock (jbd2, big-endian), clean and empty.
    pub fn journal_superblock(&self, blocks: u32) -> Vec<u8> {
        let mut j = vec![0u8; self.geo.block_size as usize];
        put32_be(&mut j, 0x00, JBD2_MAGIC);
        put32_be(&mut j, 0x04, JBD2_SUPERBLOCK_V2);
        put32_be(&mut j, 0x0c, self.geo.block_size);
        put32_be(&mut j, 0x10, blocks);
        put32_be(&mut j, 0x14, 1); // s_first
        put32_be(&mut j, 0x18, 1); // s_sequence
        j[0x30..0x40].copy_from_slice(&self.o.uuid);
        put32_be(&mut j, 0x40, 1); // s_nr_users
        j
    }
}

/// (compat, incompat, ro_compat) as mke2fs.conf sets them, without
/// resize_inode.
pub fn features(kind: Kind) -> (u32, u32, u32) {
    const HAS_JOURNAL: u32 = 0x4;
    const EXT_ATTR: u32 = 0x8;
    const DIR_INDEX: u32 = 0x20;
    const FILETYPE: u32 = 0x2;
    const EXTENTS: u32 = 0x40;
    const BIT64: u32 = 0x80;
    const FLEX_BG: u32 = 0x200;
    const SPARSE_SUPER: u32 = 0x1;
    const LARGE_FILE: u32 = 0x2;
    const HUGE_FILE: u32 = 0x8;
    const DIR_NLINK: u32 = 0x20;
    const EXTRA_ISIZE_F: u32 = 0x40;
    const METADATA_CSUM: u32 = 0x400;
    let base = (EXT_ATTR | DIR_INDEX, FILETYPE, SPARSE_SUPER | LARGE_FILE);
    match kind {
        Kind::Ext2 => base,
        Kind::Ext3 => (base.0 | HAS_JOURNAL, base.1, base.2),
        Kind::Ext4 => (
            base.0 | HAS_JOURNAL,
            base.1 | EXTENTS | BIT64 | FLEX_BG,
            base.2 | HUGE_FILE | DIR_NLINK | EXTRA_ISIZE_F | METADATA_CSUM,
        ),
    }
}

//! rivet's own mke2fs: an empty ext4, ext3 or ext2 filesystem (root
//! directory, lost+found, a journal for ext3/4) written through the
//! [`BlockDevice`] trait, for Ironic's ephemeral partition
//! (`ephemeral_format`, ext4 by default).
//!
//! Features, as e2fsprogs' `mke2fs.conf` sets them: ext4 has_journal,
//! ext_attr, dir_index, filetype, extent, 64bit, flex_bg, sparse_super,
//! large_file, huge_file, dir_nlink, extra_isize, metadata_csum; ext3
//! has_journal plus the base set; ext2 the base set. Not resize_inode
//! (room for online growth: an ephemeral partition is never grown), so
//! there are no reserved descriptor blocks. ext4 groups other than the
//! first are left uninitialised (INODE_UNINIT/BLOCK_UNINIT, as mke2fs's
//! lazy_itable_init): the kernel zeroes their inode tables in the
//! background, and a 1 TiB partition formats in a second. ext2/3 have no
//! such flags, so every inode table is zeroed.

pub mod crc32c;
pub mod geometry;
mod records;

use crate::io::BlockDevice;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
pub use geometry::Geometry;
use geometry::{FIRST_INODE, INODE_SIZE};
use records::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ext2,
    Ext3,
    Ext4,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ext2 => "ext2",
            Kind::Ext3 => "ext3",
            Kind::Ext4 => "ext4",
        }
    }
    fn journal(self) -> bool {
        self != Kind::Ext2
    }
    fn csum(self) -> bool {
        self == Kind::Ext4
    }
}

pub struct Options<'a> {
    pub kind: Kind,
    pub label: &'a str,
    pub uuid: [u8; 16],
    pub hash_seed: [u8; 16],
    /// Seconds since 1970, for the superblock's and inodes' times.
    pub now: u32,
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub geometry: Geometry,
    pub journal_blocks: u32,
}

const ROOT_INODE: u32 = 2;
const JOURNAL_INODE: u32 = 8;
const LOST_FOUND_BYTES: u32 = 16384;

/// Blocks handed out in order through each group's data area.
struct Allocator<'g> {
    geo: &'g Geometry,
    group: u32,
    /// Blocks used in each group's data area (always a prefix of it).
    used: Vec<u32>,
}

impl Allocator<'_> {
    /// `n` blocks as runs of consecutive blocks, each at most `max_run`.
    fn take(&mut self, mut n: u64, max_run: u32) -> Result<Vec<(u64, u32)>, String> {
        let mut runs = Vec::new();
        while n > 0 {
            if self.group >= self.geo.groups {
                return Err("the filesystem is too small for its journal".into());
            }
            let g = self.geo.group(self.group);
            let room = g.start + u64::from(g.blocks)
                - g.data_start
                - u64::from(self.used[self.group as usize]);
            if room == 0 {
                self.group += 1;
                continue;
            }
            let len = n.min(room).min(u64::from(max_run)) as u32;
            let first = g.data_start + u64::from(self.used[self.group as usize]);
            match runs.last_mut() {
                Some((s, l)) if *s + u64::from(*l) == first && *l + len <= max_run => *l += len,
                _ => runs.push((first, len)),
            }
            self.used[self.group as usize] += len;
            n -= u64::from(len);
        }
        Ok(runs)
    }

    fn one(&mut self) -> Result<u64, String> {
        Ok(self.take(1, 1)?[0].0)
    }
}

/// Writes `data` at byte `at`, merging with the device's blocks around it
/// when `at` or the end falls inside one (1 KiB filesystem blocks on a
/// 4 KiB-sector disk).
fn write_span(dev: &mut dyn BlockDevice, at: u64, data: &[u8]) -> Result<(), String> {
    let lb = u64::from(dev.logical_block().max(512));
    let start = at / lb * lb;
    let end = (at + data.len() as u64).div_ceil(lb) * lb;
    let r = if start == at && end == at + data.len() as u64 {
        dev.write_at(at, data)
    } else {
        let mut buf = vec![0u8; (end - start) as usize];
        dev.read_at(start, &mut buf).and_then(|_| {
            let from = (at - start) as usize;
            buf[from..from + data.len()].copy_from_slice(data);
            dev.write_at(start, &buf)
        })
    };
    r.map_err(|e| format!("{}: writing at byte {at}: {e}", dev.name()))
}

/// Zeroes `count` blocks from block `first`, through `zeros` (one buffer
/// for the whole format, not one per call).
fn zero_blocks(
    dev: &mut dyn BlockDevice,
    zeros: &[u8],
    base: u64,
    bs: u64,
    first: u64,
    count: u64,
) -> Result<(), String> {
    let mut at = base + first * bs;
    let end = at + count * bs;
    while at < end {
        let n = (end - at).min(zeros.len() as u64);
        write_span(dev, at, &zeros[..n as usize])?;
        at += n;
    }
    Ok(())
}

/// Formats `len` bytes at `offset` of `dev`.
pub fn format(
    dev: &mut dyn BlockDevice,
    offset: u64,
    len: u64,
    o: &Options<'_>,
) -> Result<Made, String> {
    let geo =
        Geometry::new(o.kind, len).map_err(|e| format!("{} on {len} bytes: {e}", o.kind.name()))?;
    let bs = geo.block_size;
    let bsu = bs as usize;
    let fs = Fs::new(&geo, o);

    // Where the root directory, lost+found and the journal go.
    let mut alloc = Allocator {
        geo: &geo,
        group: 0,
        used: vec![0; geo.groups as usize],
    };
    let root_block = alloc.one()?;
    // 16 KiB as mke2fs makes it; without extents at most the 12 blocks an
    // inode maps directly.
    let lf_bytes = if o.kind == Kind::Ext4 {
        LOST_FOUND_BYTES
    } else {
        LOST_FOUND_BYTES.min(12 * bs)
    };
    let lf_blocks = alloc.take(u64::from(lf_bytes / bs), u32::MAX)?;
    let journal_blocks = if o.kind.journal() {
        geo.journal_blocks()
    } else {
        0
    };
    let mut journal = Journal::default();
    if o.kind.journal() {
        // An extent covers at most 32768 blocks.
        let max_run = if o.kind == Kind::Ext4 {
            32768
        } else {
            u32::MAX
        };
        journal.runs = alloc.take(u64::from(journal_blocks), max_run)?;
        if o.kind == Kind::Ext4 {
            if journal.runs.len() > 4 {
                journal.index = vec![alloc.one()?];
            }
        } else {
            let count = indirect_blocks(journal_blocks, bs);
            for _ in 0..count {
                journal.index.push(alloc.one()?);
            }
        }
    }

    // Inodes: root, lost+found, journal.
    let mut itable0 = vec![0u8; (geo.itable_blocks * bs) as usize];
    let lf_list: Vec<u64> = runs_to_blocks(&lf_blocks);
    let mut put_inode = |ino: u32, inode: &[u8]| {
        let at = ((ino - 1) * INODE_SIZE) as usize;
        itable0[at..at + INODE_SIZE as usize].copy_from_slice(inode);
    };
    put_inode(
        ROOT_INODE,
        &fs.dir_inode(ROOT_INODE, 0o40755, 3, &[(root_block, 1)], bs),
    );
    put_inode(
        FIRST_INODE,
        &fs.dir_inode(FIRST_INODE, 0o40700, 2, &lf_blocks, lf_bytes),
    );
    let mut journal_index_blocks = Vec::new();
    if o.kind.journal() {
        let (inode, index) = fs.journal_inode(&journal, journal_blocks);
        put_inode(JOURNAL_INODE, &inode);
        journal_index_blocks = index;
    }
    // The reserved inodes mke2fs leaves empty still carry times on some
    // versions; e2fsck wants nothing of them, and zeroed ones pass.

    // Group descriptors and bitmaps.
    let used_inodes = FIRST_INODE;
    let mut descs = vec![0u8; (geo.gdt_blocks * bs) as usize];
    let mut free_blocks_total = 0u64;
    let base = offset;
    let b = u64::from(bs);
    let zeros = vec![0u8; 1 << 20];
    // Each group's inode table and bitmaps are written as its descriptor is
    // made: ext2/3 initialise every group, and 16,384 groups' bitmaps held
    // at once would be 128 MiB.
    for g in 0..geo.groups {
        let lay = geo.group(g);
        let meta = (lay.data_start - lay.start) as u32;
        let used = meta + alloc.used[g as usize];
        let free = lay.blocks - used;
        free_blocks_total += u64::from(free);
        let last = g == geo.groups - 1;
        let block_init = !o.kind.csum() || g == 0 || last || alloc.used[g as usize] > 0;
        let inode_init = !o.kind.csum() || g == 0;
        let mut bb = vec![0u8; bsu];
        set_bits(&mut bb, 0, used);
        set_bits(&mut bb, lay.blocks, geo.blocks_per_group); // past the end
        let mut ib = vec![0u8; bsu];
        let in_use = if g == 0 { used_inodes } else { 0 };
        set_bits(&mut ib, 0, in_use);
        set_bits(&mut ib, geo.inodes_per_group, bs * 8); // padding
        let mut flags = 0u16;
        if o.kind.csum() {
            if !block_init {
                flags |= BG_BLOCK_UNINIT;
            }
            if inode_init {
                flags |= BG_INODE_ZEROED;
            } else {
                flags |= BG_INODE_UNINIT;
            }
        }
        let desc = GroupDesc {
            block_bitmap: lay.block_bitmap,
            inode_bitmap: lay.inode_bitmap,
            inode_table: lay.inode_table,
            free_blocks: free,
            free_inodes: geo.inodes_per_group - in_use,
            used_dirs: if g == 0 { 2 } else { 0 },
            flags,
            itable_unused: if o.kind.csum() {
                geo.inodes_per_group - in_use
            } else {
                0
            },
            block_bitmap_csum: fs.csum(&bb[..(geo.blocks_per_group / 8) as usize]),
            inode_bitmap_csum: fs.csum(&ib[..(geo.inodes_per_group / 8) as usize]),
        };
        let at = (g * geo.desc_size) as usize;
        fs.group_desc(g, &desc, &mut descs[at..at + geo.desc_size as usize]);
        // Inode table, then bitmaps; superblocks and descriptors go last.
        if g == 0 {
            write_span(dev, base + lay.inode_table * b, &itable0)?;
        } else if !o.kind.csum() {
            let blocks = u64::from(geo.itable_blocks);
            zero_blocks(dev, &zeros, base, b, lay.inode_table, blocks)?;
        }
        if block_init {
            write_span(dev, base + lay.block_bitmap * b, &bb)?;
        }
        if inode_init {
            write_span(dev, base + lay.inode_bitmap * b, &ib)?;
        }
    }
    let free_inodes = geo.inodes() - used_inodes;
    // Directories.
    let dot = [
        (ROOT_INODE, ".", FT_DIR),
        (ROOT_INODE, "..", FT_DIR),
        (FIRST_INODE, "lost+found", FT_DIR),
    ];
    write_span(
        dev,
        base + root_block * b,
        &fs.dir_block(ROOT_INODE, &dot, bs),
    )?;
    for (i, block) in lf_list.iter().enumerate() {
        let entries: &[(u32, &str, u8)] = if i == 0 {
            &[(FIRST_INODE, ".", FT_DIR), (ROOT_INODE, "..", FT_DIR)]
        } else {
            &[]
        };
        write_span(
            dev,
            base + block * b,
            &fs.dir_block(FIRST_INODE, entries, bs),
        )?;
    }
    // The journal: zeroed, then its superblock; its index blocks.
    for &(start, len) in &journal.runs {
        zero_blocks(dev, &zeros, base, b, start, u64::from(len))?;
    }
    if let Some(&(first, _)) = journal.runs.first() {
        write_span(
            dev,
            base + first * b,
            &fs.journal_superblock(journal_blocks),
        )?;
    }
    for (block, bytes) in journal.index.iter().zip(&journal_index_blocks) {
        write_span(dev, base + block * b, bytes)?;
    }
    // Superblock and descriptors, primary and backups.
    let counts = Counts {
        free_blocks: free_blocks_total,
        free_inodes,
    };
    let jnl_blocks = if o.kind.journal() {
        Some(journal_inode_blocks(&itable0, JOURNAL_INODE))
    } else {
        None
    };
    for g in (0..geo.groups).rev() {
        let lay = geo.group(g);
        if !lay.has_super {
            continue;
        }
        let sb = fs.superblock(g, &counts, jnl_blocks.as_ref());
        if g == 0 {
            write_span(dev, base + 1024, &sb)?;
        } else {
            let mut block = vec![0u8; bsu];
            block[..1024].copy_from_slice(&sb);
            write_span(dev, base + lay.start * b, &block)?;
        }
        write_span(dev, base + (lay.start + 1) * b, &descs)?;
    }
    Ok(Made {
        geometry: geo,
        journal_blocks,
    })
}

/// Sets bits `from..to` of a bitmap (clamped to its length); whole bytes
/// at once, as a group's bitmap is mostly one run.
fn set_bits(bitmap: &mut [u8], from: u32, to: u32) {
    let to = to.min(bitmap.len() as u32 * 8);
    let mut bit = from;
    while bit < to {
        if bit % 8 == 0 && to - bit >= 8 {
            let bytes = ((to - bit) / 8) as usize;
            let first = (bit / 8) as usize;
            bitmap[first..first + bytes].fill(0xff);
            bit += bytes as u32 * 8;
        } else {
            bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
            bit += 1;
        }
    }
}

fn runs_to_blocks(runs: &[(u64, u32)]) -> Vec<u64> {
    runs.iter()
        .flat_map(|&(s, l)| (0..u64::from(l)).map(move |i| s + i))
        .collect()
}

#[cfg(test)]
mod tests;

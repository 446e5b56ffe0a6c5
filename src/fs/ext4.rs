//! ext2/3/4, read-only and minimal: what it takes to find and read a few
//! boot files in a root filesystem. Extent trees and the old block maps;
//! directories linear and hashed (a hashed directory's index blocks look
//! like empty entries to a linear scan, which is how this reader meets
//! them); fast and slow symlinks. Every number from the disk is bounded
//! before it is used, and every walk is paid from a [`Budget`]: the
//! `ext4-view` crate this replaces looped for ever on a directory of 2³²
//! repeated blocks or a tree of empty extents, behind a block cache no
//! outer bound could see. A journal that needs recovery is not replayed:
//! the files the boot chain needs were written long before the last
//! transaction. (Field offsets: the kernel's fs/ext4/ext4.h, ext4_extents.h.)

use super::extent::{check_distinct, check_order, read_mapped, Extent};
use super::inodes::{self, Entries, Inodes};
use super::{Budget, FsError, Kind, Metered, ReadAt};
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

const MAGIC: u16 = 0xef53;
const EXTENT_MAGIC: u16 = 0xf30a;
/// Incompatible features this reader handles (or that change nothing for
/// it): filetype, recover, extents, 64bit, mmp, flex_bg, ea_inode,
/// csum_seed, largedir, casefold (exact names are still found).
const INCOMPAT_KNOWN: u32 =
    0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x20000;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const FLAG_HUGE_FILE: u32 = 0x4_0000;
const FLAG_EXTENTS: u32 = 0x8_0000;
const FLAG_INLINE_DATA: u32 = 0x1000_0000;
const FLAG_ENCRYPT: u32 = 0x800;
/// Most block groups accepted: 32 TiB of 4 KiB blocks.
const MAX_GROUPS: u64 = 1 << 18;
/// The kernel's EXT4_MAX_EXTENT_DEPTH.
const MAX_DEPTH: u16 = 5;
/// Extents of one file or directory this reader maps.
const MAX_EXTENTS: usize = 1 << 17;
/// Directory blocks read for one directory (256 MiB at 4 KiB).
const MAX_DIR_BLOCKS: u64 = 1 << 16;
const MAX_SYMLINK: u64 = 4096;

pub(super) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(super) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn corrupt(what: impl Into<String>) -> FsError {
    FsError::Corrupt(format!("ext4: {}", what.into()))
}

/// The superblock's fields this reader uses, checked against each other
/// and against the device.
#[derive(Debug, Clone)]
struct Super {
    block: u64,
    blocks: u64,
    first_data: u64,
    groups: u64,
    inodes: u64,
    inodes_per_group: u64,
    inode_size: usize,
    desc_size: usize,
    filetype: bool,
    huge_file: bool,
}

impl Super {
    fn parse(sb: &[u8], device: u64) -> Result<Super, FsError> {
        let u = |at: usize| u64::from(le32(sb, at));
        if le16(sb, 56) != MAGIC {
            return Err(corrupt("no superblock magic"));
        }
        let log = u(24);
        if log > 6 {
            return Err(corrupt(format!("block size 2^(10+{log})")));
        }
        let block = 1024u64 << log;
        let incompat = le32(sb, 96);
        let unknown = incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(FsError::Unsupported(format!(
                "ext4 incompatible feature bits {unknown:#x} (meta_bg, inline_data, encryption, \
                 compression or an external journal)"
            )));
        }
        let wide = incompat & INCOMPAT_64BIT != 0;
        // The high word counts only with the 64bit feature.
        let blocks = u(4) | if wide { u(0x150) << 32 } else { 0 };
        let (first_data, per_group) = (u(20), u(32));
        let bad = |what: String| Err(corrupt(what));
        if per_group < 8 || per_group > 8 * block || blocks <= first_data {
            return bad(format!("{blocks} blocks, {per_group} per group"));
        }
        if blocks.checked_mul(block).is_none_or(|b| b > device) {
            return bad(format!(
                "{blocks} blocks of {block} bytes do not fit the {device}-byte partition"
            ));
        }
        let groups = (blocks - first_data).div_ceil(per_group);
        if groups > MAX_GROUPS {
            return Err(FsError::Unsupported(format!(
                "ext4 with {groups} block groups (more than {MAX_GROUPS})"
            )));
        }
        let (inodes, inodes_per_group) = (u(0), u(40));
        if inodes_per_group == 0
            || inodes_per_group > 8 * block
            || inodes > groups * inodes_per_group
        {
            return bad(format!("{inodes} inodes, {inodes_per_group} per group"));
        }
        let inode_size = if u(76) == 0 {
            128
        } else {
            usize::from(le16(sb, 88))
        };
        if inode_size < 128 || !inode_size.is_power_of_two() || inode_size as u64 > block {
            return bad(format!("inode size {inode_size}"));
        }
        let desc_size = if wide { usize::from(le16(sb, 254)) } else { 32 };
        if desc_size < 32 || !desc_size.is_power_of_two() || desc_size as u64 > block {
            return bad(format!("group descriptor size {desc_size}"));
        }
        if incompat & INCOMPAT_RECOVER != 0 {
            log::warn!("ext4: the journal needs recovery; reading without replaying it");
        }
        Ok(Super {
            block,
            blocks,
            first_data,
            groups,
            inodes,
            inodes_per_group,
            inode_size,
            desc_size,
            filetype: incompat & INCOMPAT_FILETYPE != 0,
            huge_file: le32(sb, 100) & RO_COMPAT_HUGE_FILE != 0,
        })
    }

    /// A block's byte offset, refused past the filesystem.
    fn offset(&self, block: u64) -> Result<u64, FsError> {
        if block >= self.blocks {
            return Err(corrupt(format!(
                "block {block} past the filesystem's {}",
                self.blocks
            )));
        }
        Ok(block * self.block)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Inode {
    ino: u64,
    mode: u16,
    size: u64,
    flags: u32,
    /// i_block: the extent tree's root, block pointers or a short symlink.
    map: [u8; 60],
    /// Blocks held, xattr block included, in 512-byte units (or blocks).
    blocks: u64,
    xattr_block: u64,
}

impl Inode {
    fn kind(&self) -> Kind {
        match self.mode & 0xf000 {
            0x8000 => Kind::File,
            0x4000 => Kind::Dir,
            0xa000 => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

pub struct Ext4Root {
    src: Metered,
    sb: Super,
}

impl Ext4Root {
    /// Reads and checks the superblock of `source`.
    pub fn load(source: Box<dyn ReadAt>) -> Result<Ext4Root, FsError> {
        Ext4Root::load_within(source, Budget::default())
    }

    /// As [`Ext4Root::load`], all reads and walks paid from `budget`.
    pub fn load_within(source: Box<dyn ReadAt>, budget: Budget) -> Result<Ext4Root, FsError> {
        let mut src = Metered::new(source, budget);
        let mut sb = [0u8; 1024];
        src.read_at(1024, &mut sb)?;
        let sb = Super::parse(&sb, src.size())?;
        Ok(Ext4Root { src, sb })
    }

    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
        let mut buf = vec![0u8; len];
        self.src.read_at(offset, &mut buf)?;
        Ok(buf)
    }

    fn inode(&mut self, ino: u64) -> Result<Inode, FsError> {
        if ino == 0 || ino > self.sb.inodes {
            return Err(corrupt(format!("inode {ino} out of range")));
        }
        let (group, index) = (
            (ino - 1) / self.sb.inodes_per_group,
            (ino - 1) % self.sb.inodes_per_group,
        );
        if group >= self.sb.groups {
            return Err(corrupt(format!("inode {ino} in no block group")));
        }
        // The descriptor table follows the superblock's block.
        let table = (self.sb.first_data + 1) * self.sb.block;
        let desc = self.read(table + group * self.sb.desc_size as u64, self.sb.desc_size)?;
        let hi = if self.sb.desc_size >= 64 {
            u64::from(le32(&desc, 0x28))
        } else {
            0
        };
        let inode_table = u64::from(le32(&desc, 8)) | hi << 32;
        let at = self
            .sb
            .offset(inode_table)?
            .checked_add(index * self.sb.inode_size as u64)
            .filter(|end| end + self.sb.inode_size as u64 <= self.sb.blocks * self.sb.block)
            .ok_or_else(|| corrupt(format!("inode {ino}: table past the filesystem")))?;
        let raw = self.read(at, 128)?;
        let flags = le32(&raw, 32);
        let blocks = u64::from(le32(&raw, 28)) | u64::from(le16(&raw, 0x74)) << 32;
        Ok(Inode {
            ino,
            mode: le16(&raw, 0),
            size: u64::from(le32(&raw, 4)) | u64::from(le32(&raw, 108)) << 32,
            flags,
            map: raw[40..100].try_into().expect("60 bytes"),
            blocks,
            xattr_block: u64::from(le32(&raw, 104)) | u64::from(le16(&raw, 0x76)) << 32,
        })
    }

    /// The file's map, checked: extents in file order, none empty.
    fn extents(&mut self, inode: &Inode) -> Result<Vec<Extent>, FsError> {
        let ino = inode.ino;
        if inode.flags & (FLAG_INLINE_DATA | FLAG_ENCRYPT) != 0 {
            return Err(FsError::Unsupported(format!(
                "ext4: inode {ino} is inline or encrypted"
            )));
        }
        let mut out = Vec::new();
        if inode.flags & FLAG_EXTENTS != 0 {
            let mut seen = BTreeSet::new();
            self.extent_node(ino, &inode.map, None, &mut seen, &mut out)?;
        } else {
            self.block_map(inode, &mut out)?;
        }
        check_order(&out, &|| format!("ext4: inode {ino}"))?;
        Ok(out)
    }

    /// One node of an extent tree: `depth` is what the parent expects
    /// (`None` at the root, in the inode). Each node is visited once: a
    /// node reached twice is a loop or a crafted fan-out.
    fn extent_node(
        &mut self,
        ino: u64,
        node: &[u8],
        depth: Option<u16>,
        seen: &mut BTreeSet<u64>,
        out: &mut Vec<Extent>,
    ) -> Result<(), FsError> {
        let bad = |what: &str| corrupt(format!("inode {ino}: extent tree: {what}"));
        let (entries, max, d) = (le16(node, 2), le16(node, 4), le16(node, 6));
        if le16(node, 0) != EXTENT_MAGIC {
            return Err(bad("no node magic"));
        }
        if usize::from(max) > node.len() / 12 - 1 || entries > max {
            return Err(bad("more entries than the node holds"));
        }
        if d > MAX_DEPTH || depth.is_some_and(|want| want != d) {
            return Err(bad("node at the wrong depth"));
        }
        for i in 0..usize::from(entries) {
            let e = &node[12 + i * 12..24 + i * 12];
            if d == 0 {
                if out.len() >= MAX_EXTENTS {
                    return Err(FsError::OutOfWork(format!(
                        "ext4: inode {ino}: more than {MAX_EXTENTS} extents"
                    )));
                }
                let len = le16(e, 4);
                out.push(Extent {
                    file_block: u64::from(le32(e, 0)),
                    fs_block: u64::from(le16(e, 6)) << 32 | u64::from(le32(e, 8)),
                    // Past 32768: an unwritten extent of len − 32768.
                    count: u64::from(if len > 32768 { len - 32768 } else { len }),
                    unwritten: len > 32768,
                });
            } else {
                let child = u64::from(le16(e, 8)) << 32 | u64::from(le32(e, 4));
                if !seen.insert(child) {
                    return Err(bad(&format!("block {child} reached twice")));
                }
                let at = self.sb.offset(child)?;
                let block = self.read(at, self.sb.block as usize)?;
                self.extent_node(ino, &block, Some(d - 1), seen, out)?;
            }
        }
        Ok(())
    }

    /// ext2/3's map: twelve direct pointers, then single, double and
    /// triple indirect blocks; only as many blocks as the size needs.
    fn block_map(&mut self, inode: &Inode, out: &mut Vec<Extent>) -> Result<(), FsError> {
        let need = inode.size.div_ceil(self.sb.block);
        if need > MAX_EXTENTS as u64 {
            return Err(FsError::OutOfWork(format!(
                "ext4: inode {}: more than {MAX_EXTENTS} mapped blocks",
                inode.ino
            )));
        }
        let ptr = |i: usize| u64::from(le32(&inode.map, i * 4));
        let mut next = 0u64;
        for i in 0..12 {
            self.push_block(ptr(i), &mut next, need, out);
        }
        for (level, i) in [(1u32, 12usize), (2, 13), (3, 14)] {
            self.indirect(ptr(i), level, &mut next, need, out)?;
        }
        Ok(())
    }

    fn push_block(&self, block: u64, next: &mut u64, need: u64, out: &mut Vec<Extent>) {
        if *next >= need {
            return;
        }
        if block != 0 {
            match out.last_mut() {
                Some(e) if e.file_block + e.count == *next && e.fs_block + e.count == block => {
                    e.count += 1
                }
                _ => out.push(Extent {
                    file_block: *next,
                    fs_block: block,
                    count: 1,
                    unwritten: false,
                }),
            }
        }
        *next += 1;
    }

    fn indirect(
        &mut self,
        block: u64,
        level: u32,
        next: &mut u64,
        need: u64,
        out: &mut Vec<Extent>,
    ) -> Result<(), FsError> {
        let per = self.sb.block / 4;
        if *next >= need {
            return Ok(());
        }
        if block == 0 {
            // A hole as large as this pointer covers.
            *next = next.saturating_add(per.saturating_pow(level));
            return Ok(());
        }
        let at = self.sb.offset(block)?;
        let data = self.read(at, self.sb.block as usize)?;
        for p in data.chunks_exact(4) {
            let p = u64::from(le32(p, 0));
            if level == 1 {
                self.push_block(p, next, need, out);
            } else {
                self.indirect(p, level - 1, next, need, out)?;
            }
            if *next >= need {
                break;
            }
        }
        Ok(())
    }

    fn read_data(
        &mut self,
        extents: &[Extent],
        start: u64,
        len: usize,
    ) -> Result<Vec<u8>, FsError> {
        let sb = self.sb.clone();
        read_mapped(&mut self.src, extents, sb.block, start, len, &|b| {
            sb.offset(b)
        })
    }

    /// A directory's entries: name, inode, and kind when the directory
    /// records it.
    fn directory(&mut self, inode: &Inode) -> Result<Entries, FsError> {
        let ino = inode.ino;
        if inode.kind() != Kind::Dir {
            return Err(FsError::NotADirectory(format!("inode {ino}")));
        }
        let bs = self.sb.block;
        let count = inode.size.div_ceil(bs);
        if count > MAX_DIR_BLOCKS {
            return Err(FsError::OutOfWork(format!(
                "ext4: directory {ino} of {count} blocks (more than {MAX_DIR_BLOCKS})"
            )));
        }
        let extents = self.extents(inode)?;
        check_distinct(&extents, &|| format!("ext4: directory {ino}"))?;
        let mut out = Vec::new();
        for i in 0..count {
            let b = self.read_data(&extents, i * bs, bs as usize)?;
            let before = out.len();
            self.block_entries(ino, &b, &mut out)?;
            self.src.budget.listing(&out, before, &ino)?;
        }
        Ok(out)
    }

    fn block_entries(
        &self,
        ino: u64,
        b: &[u8],
        out: &mut Vec<(String, u64, Option<Kind>)>,
    ) -> Result<(), FsError> {
        let mut at = 0;
        while at + 8 <= b.len() {
            let child = u64::from(le32(b, at));
            let mut rec = usize::from(le16(b, at + 4));
            if b.len() == 65536 && (rec == 0 || rec == 65535) {
                rec = 65536; // 64 KiB blocks spell a whole block so
            }
            let (name_len, ftype) = if self.sb.filetype {
                (usize::from(b[at + 6]), Some(b[at + 7]))
            } else {
                (usize::from(le16(b, at + 6)), None)
            };
            if rec < 8 || rec % 4 != 0 || at + rec > b.len() || 8 + name_len > rec {
                return Err(corrupt(format!(
                    "directory {ino}: entry at {at} past its block"
                )));
            }
            let name = &b[at + 8..at + 8 + name_len];
            if child != 0 && name != b"." && name != b".." && !name.is_empty() {
                if let Ok(name) = core::str::from_utf8(name) {
                    out.push((name.to_string(), child, ftype.map(kind_of_ftype)));
                }
            }
            at += rec;
        }
        Ok(())
    }

    fn symlink(&mut self, inode: &Inode) -> Result<String, FsError> {
        let ino = inode.ino;
        if inode.size == 0 || inode.size > MAX_SYMLINK {
            return Err(corrupt(format!("symlink {ino}: length {}", inode.size)));
        }
        let size = inode.size as usize;
        // Fast symlinks hold no block but the xattr one (the kernel's
        // ext4_inode_is_fast_symlink).
        let xattr = match (
            inode.xattr_block != 0,
            self.sb.huge_file && inode.flags & FLAG_HUGE_FILE != 0,
        ) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => self.sb.block / 512,
        };
        let bytes = if inode.flags & FLAG_INLINE_DATA == 0 && inode.blocks == xattr {
            inode
                .map
                .get(..size)
                .ok_or_else(|| corrupt(format!("symlink {ino}: longer than its inode holds")))?
                .to_vec()
        } else {
            let extents = self.extents(inode)?;
            self.read_data(&extents, 0, size)?
        };
        String::from_utf8(bytes).map_err(|_| corrupt(format!("symlink {ino}: not UTF-8")))
    }
}

fn kind_of_ftype(t: u8) -> Kind {
    match t {
        1 => Kind::File,
        2 => Kind::Dir,
        7 => Kind::Symlink,
        _ => Kind::Other,
    }
}

pub(super) const ROOT_INODE: u64 = 2;

impl Inodes for Ext4Root {
    type Inode = Inode;
    fn root_inode(&self) -> u64 {
        ROOT_INODE
    }
    fn inode(&mut self, ino: u64) -> Result<Inode, FsError> {
        Ext4Root::inode(self, ino)
    }
    fn kind_of_inode(inode: &Inode) -> Kind {
        inode.kind()
    }
    fn size_of_inode(inode: &Inode) -> u64 {
        inode.size
    }
    fn entries(&mut self, dir: &Inode) -> Result<Entries, FsError> {
        self.directory(dir)
    }
    fn contents(&mut self, file: &Inode) -> Result<Vec<u8>, FsError> {
        let extents = self.extents(file)?;
        self.read_data(&extents, 0, file.size as usize)
    }
    fn link_target_of(&mut self, link: &Inode) -> Result<String, FsError> {
        self.symlink(link)
    }
    fn pay_one_link(&mut self) -> Result<(), FsError> {
        self.src.budget.link()
    }
}

/// What the writer (ext4_writer.rs) asks: inode numbers by path.
impl Ext4Root {
    /// The inode `path` names (`follow_last`: a final symlink followed).
    pub(super) fn inode_of(
        &mut self,
        path: &str,
        follow_last: bool,
    ) -> Result<Option<u64>, FsError> {
        let walk: &mut dyn super::path::Walk<Node = u64> = &mut inodes::ByInode(self);
        super::path::resolve(walk, path, follow_last)
    }
    pub(super) fn kind_of(&mut self, ino: u64) -> Result<Kind, FsError> {
        Ok(self.inode(ino)?.kind())
    }
    /// `name` in directory `dir`, not followed.
    pub(super) fn child(&mut self, dir: u64, name: &str) -> Result<Option<u64>, FsError> {
        super::path::Walk::lookup(&mut inodes::ByInode(self), &dir, name)
    }
}

inodes::root_fs_by_inode!(Ext4Root, "ext4");

//! XFS, read-only and minimal: what it takes to find and read a few boot
//! files in the root filesystem of the RHEL family. Superblock v4 and v5;
//! inodes v2/v3; data forks in local, extent-list and B+tree form;
//! directories short-form, block, leaf and node (their data blocks are
//! scanned, the hash index is not needed); symlinks inline and remote.
//! Every number taken from the disk is bounded before it is used.
//! (Field offsets: xfs_format.h, xfs_da_format.h.)

use super::extent::{check_distinct, check_order, read_mapped, Extent};
use super::inodes::{self, Entries, Inodes};
use super::{Budget, FsError, Kind, Metered, ReadAt};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

const SB_MAGIC: &[u8; 4] = b"XFSB";
const INODE_MAGIC: &[u8; 2] = b"IN";
/// Directory data lives below this byte offset of a directory's file
/// space; leaf and free-index blocks above it (XFS_DIR2_LEAF_OFFSET).
const DIR_LEAF_OFFSET: u64 = 1 << 35;
/// Incompatible v5 features that change nothing for this reader: ftype,
/// sparse inodes, meta_uuid, bigtime, nrext64, exchange-range, parent
/// pointers.
const INCOMPAT_KNOWN: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x40 | 0x80;
const INCOMPAT_NEEDSREPAIR: u32 = 0x10;
const INCOMPAT_FTYPE: u32 = 0x1;
const V4_FEATURES2_FTYPE: u32 = 0x200;
/// di_flags2 bit: the extent count is the 64-bit field.
const DIFLAG2_NREXT64: u64 = 1 << 4;
/// di_flags bit: the file's data is on the realtime device.
const DIFLAG_REALTIME: u16 = 0x1;
/// Bounds for what one file may take: B+tree depth and extent count.
const MAX_BTREE_DEPTH: u16 = 9;
const MAX_EXTENTS: usize = 1 << 17;
const MAX_SYMLINK: u64 = 1024;
/// Directory data blocks read for one directory (256 MiB at 4 KiB: some
/// two million entries).
const MAX_DIR_BLOCKS: usize = 1 << 16;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn corrupt(what: impl Into<String>) -> FsError {
    FsError::Corrupt(format!("xfs: {}", what.into()))
}

/// The superblock fields this reader uses, checked against each other.
#[derive(Debug, Clone)]
struct Super {
    block: u64,
    agblocks: u64,
    agcount: u64,
    agblklog: u32,
    inopblog: u32,
    inode_size: usize,
    root: u64,
    dir_block: u64,
    v5: bool,
    ftype: bool,
}

impl Super {
    fn parse(b: &[u8], device: u64) -> Result<Super, FsError> {
        if b.len() < 256 || &b[0..4] != SB_MAGIC {
            return Err(corrupt("no superblock (magic XFSB) at offset 0"));
        }
        let block = u64::from(be32(b, 4));
        let (agblocks, agcount) = (u64::from(be32(b, 84)), u64::from(be32(b, 88)));
        let version = be16(b, 100) & 0xf;
        let inode_size = usize::from(be16(b, 104));
        let (blocklog, inodelog, inopblog, agblklog) = (b[120], b[122], b[123], b[124]);
        let dirblklog = b[192];
        let ok = block.is_power_of_two()
            && (512..=65536).contains(&block)
            && u32::from(blocklog) == block.trailing_zeros()
            && inode_size.is_power_of_two()
            && (256..=2048).contains(&inode_size)
            && u32::from(inodelog) == inode_size.trailing_zeros()
            && u32::from(inopblog)
                == u32::from(blocklog) - u32::from(inodelog).min(u32::from(blocklog))
            && agblocks > 0
            && agcount > 0
            && u32::from(agblklog) < 32
            && agblocks <= 1 << agblklog
            && agblocks > 1 << agblklog >> 1
            && u32::from(blocklog) + u32::from(dirblklog) <= 16;
        if !ok {
            return Err(corrupt("superblock geometry is inconsistent"));
        }
        // dblocks: the data device's blocks; the last group may be short.
        let dblocks = be64(b, 8);
        let fits = dblocks
            .checked_mul(block)
            .is_some_and(|bytes| bytes <= device)
            && (agcount - 1)
                .checked_mul(agblocks)
                .is_some_and(|full| full < dblocks)
            && agcount
                .checked_mul(agblocks)
                .is_some_and(|all| all >= dblocks);
        if !fits {
            return Err(corrupt(format!(
                "{dblocks} blocks in {agcount} groups of {agblocks} do not fit the {device}-byte device"
            )));
        }
        let v5 = match version {
            5 => true,
            4 => false,
            v => return Err(FsError::Unsupported(format!("xfs superblock version {v}"))),
        };
        let ftype = if v5 {
            let incompat = be32(b, 216);
            if incompat & INCOMPAT_NEEDSREPAIR != 0 {
                return Err(corrupt("the filesystem is marked as needing xfs_repair"));
            }
            if incompat & !(INCOMPAT_KNOWN | INCOMPAT_NEEDSREPAIR) != 0 {
                return Err(FsError::Unsupported(format!(
                    "xfs incompatible feature bits {:#x}",
                    incompat & !INCOMPAT_KNOWN
                )));
            }
            incompat & INCOMPAT_FTYPE != 0
        } else {
            be32(b, 200) & V4_FEATURES2_FTYPE != 0
        };
        Ok(Super {
            block,
            agblocks,
            agcount,
            agblklog: u32::from(agblklog),
            inopblog: u32::from(inopblog),
            inode_size,
            root: be64(b, 56),
            dir_block: block << dirblklog,
            v5,
            ftype,
        })
    }

    /// The byte offset of filesystem block `fsb` (AG number in the high bits).
    fn block_offset(&self, fsb: u64) -> Result<u64, FsError> {
        let agno = fsb >> self.agblklog;
        let agbno = fsb & ((1 << self.agblklog) - 1);
        if agno >= self.agcount || agbno >= self.agblocks {
            return Err(corrupt(format!("block {fsb:#x} outside the filesystem")));
        }
        Ok((agno * self.agblocks + agbno) * self.block)
    }

    fn inode_offset(&self, ino: u64) -> Result<u64, FsError> {
        let agno = ino >> (self.agblklog + self.inopblog);
        let agbno = (ino >> self.inopblog) & ((1 << self.agblklog) - 1);
        let index = ino & ((1 << self.inopblog) - 1);
        if agno >= self.agcount || agbno >= self.agblocks {
            return Err(corrupt(format!("inode {ino} outside the filesystem")));
        }
        Ok((agno * self.agblocks + agbno) * self.block + index * self.inode_size as u64)
    }

    fn core_size(&self) -> usize {
        if self.v5 {
            176
        } else {
            100
        }
    }
}

/// One mapping of file blocks to filesystem blocks.
/// A data fork record: state (1), file block (54), device block (52), count (21).
fn parse_extent(r: &[u8]) -> Extent {
    let hi = be64(r, 0);
    let lo = be64(r, 8);
    Extent {
        unwritten: hi >> 63 != 0,
        file_block: (hi >> 9) & ((1 << 54) - 1),
        fs_block: ((hi & 0x1ff) << 43) | (lo >> 21),
        count: lo & ((1 << 21) - 1),
    }
}

/// An inode's fields this reader uses.
#[derive(Debug, Clone)]
pub(super) struct Inode {
    ino: u64,
    mode: u16,
    size: u64,
    /// Data fork: 1 local, 2 extents, 3 B+tree.
    format: u8,
    nextents: u64,
    fork: Vec<u8>,
}

impl Inode {
    fn kind(&self) -> Kind {
        match self.mode & 0o170000 {
            0o040000 => Kind::Dir,
            0o100000 => Kind::File,
            0o120000 => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

pub struct Xfs {
    src: Metered,
    sb: Super,
}

impl Xfs {
    pub fn load(src: Box<dyn ReadAt>) -> Result<Xfs, FsError> {
        Xfs::load_within(src, Budget::default())
    }

    /// As [`Xfs::load`], all reads and walks paid from `budget`.
    pub fn load_within(src: Box<dyn ReadAt>, budget: Budget) -> Result<Xfs, FsError> {
        let mut src = Metered::new(src, budget);
        let mut head = vec![0u8; 512];
        src.read_at(0, &mut head)?;
        let sb = Super::parse(&head, src.size())?;
        Ok(Xfs { src, sb })
    }

    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
        let mut buf = vec![0u8; len];
        self.src.read_at(offset, &mut buf)?;
        Ok(buf)
    }

    fn inode(&mut self, ino: u64) -> Result<Inode, FsError> {
        let off = self.sb.inode_offset(ino)?;
        let raw = self.read(off, self.sb.inode_size)?;
        let bad = |what: &str| corrupt(format!("inode {ino}: {what}"));
        if &raw[0..2] != INODE_MAGIC {
            return Err(bad("no inode magic"));
        }
        let version = raw[4];
        if self.sb.v5 != (version == 3) || !(1..=3).contains(&version) {
            return Err(bad("inode version does not match the superblock"));
        }
        if self.sb.v5 && be64(&raw, 152) != ino {
            return Err(bad("it names another inode number"));
        }
        if be16(&raw, 90) & DIFLAG_REALTIME != 0 {
            return Err(FsError::Unsupported(format!(
                "inode {ino}: data on a realtime device"
            )));
        }
        let core = self.sb.core_size();
        let forkoff = usize::from(raw[82]) * 8;
        let fork_len = if forkoff == 0 {
            raw.len() - core
        } else {
            forkoff
        };
        if core + fork_len > raw.len() {
            return Err(bad("attribute fork offset past the inode"));
        }
        let nextents = if self.sb.v5 && be64(&raw, 120) & DIFLAG2_NREXT64 != 0 {
            be64(&raw, 24)
        } else {
            u64::from(be32(&raw, 76))
        };
        Ok(Inode {
            ino,
            mode: be16(&raw, 2),
            size: be64(&raw, 56),
            format: raw[5],
            nextents,
            fork: raw[core..core + fork_len].to_vec(),
        })
    }

    /// The data fork's extents, in file order.
    fn extents(&mut self, inode: &Inode) -> Result<Vec<Extent>, FsError> {
        let ino = inode.ino;
        let mut out = Vec::new();
        match inode.format {
            2 => {
                let n = usize::try_from(inode.nextents).unwrap_or(usize::MAX);
                if n > inode.fork.len() / 16 {
                    return Err(corrupt(format!(
                        "inode {ino}: {n} extents do not fit the fork"
                    )));
                }
                out.extend(inode.fork.chunks_exact(16).take(n).map(parse_extent));
            }
            3 => {
                // The root in the inode: level, numrecs, keys, then pointers
                // after as many keys as the fork could hold.
                let f = &inode.fork;
                let (level, n) = (be16(f, 0), usize::from(be16(f, 2)));
                let max = (f.len() - 4) / 16;
                if level == 0 || level > MAX_BTREE_DEPTH || n == 0 || n > max {
                    return Err(corrupt(format!("inode {ino}: bad extent B+tree root")));
                }
                for i in 0..n {
                    let ptr = be64(f, 4 + max * 8 + i * 8);
                    self.btree_block(ino, ptr, level - 1, &mut out)?;
                }
            }
            f => {
                return Err(corrupt(format!(
                    "inode {ino}: data fork format {f} has no extents"
                )))
            }
        }
        check_order(&out, &|| format!("xfs: inode {ino}"))?;
        Ok(out)
    }

    fn btree_block(
        &mut self,
        ino: u64,
        fsb: u64,
        level: u16,
        out: &mut Vec<Extent>,
    ) -> Result<(), FsError> {
        let off = self.sb.block_offset(fsb)?;
        let b = self.read(off, self.sb.block as usize)?;
        let (magic, header): (&[u8], usize) = if self.sb.v5 {
            (b"BMA3", 72)
        } else {
            (b"BMAP", 24)
        };
        let n = usize::from(be16(&b, 6));
        if &b[0..4] != magic || be16(&b, 4) != level || n == 0 {
            return Err(corrupt(format!(
                "inode {ino}: bad extent B+tree block {fsb:#x}"
            )));
        }
        let max = (b.len() - header) / 16;
        if n > max {
            return Err(corrupt(format!(
                "inode {ino}: B+tree block {fsb:#x} overfull"
            )));
        }
        if level == 0 {
            if out.len() + n > MAX_EXTENTS {
                return Err(corrupt(format!(
                    "inode {ino}: more than {MAX_EXTENTS} extents"
                )));
            }
            out.extend(
                b[header..header + n * 16]
                    .chunks_exact(16)
                    .map(parse_extent),
            );
            return Ok(());
        }
        // Node: keys (8 bytes) then pointers after max keys.
        let max = (b.len() - header) / 16;
        for i in 0..n {
            let ptr = be64(&b, header + max * 8 + i * 8);
            self.btree_block(ino, ptr, level - 1, out)?;
        }
        Ok(())
    }

    /// `len` bytes of a file's space from byte `start` (holes read as zeros).
    fn read_data(
        &mut self,
        extents: &[Extent],
        start: u64,
        len: usize,
    ) -> Result<Vec<u8>, FsError> {
        let sb = self.sb.clone();
        read_mapped(&mut self.src, extents, sb.block, start, len, &|b| {
            sb.block_offset(b)
        })
    }

    fn directory(&mut self, inode: &Inode) -> Result<Entries, FsError> {
        let ino = inode.ino;
        if inode.kind() != Kind::Dir {
            return Err(FsError::NotADirectory(format!("inode {ino}")));
        }
        if inode.format == 1 {
            let out = self.short_form(inode)?;
            self.src.budget.listing(&out, 0, &ino)?;
            return Ok(out);
        }
        let extents = self.extents(inode)?;
        check_distinct(&extents, &|| format!("xfs: directory {ino}"))?;
        let dblk = self.sb.dir_block;
        // The data blocks: every directory block below the leaf offset
        // that some extent maps.
        let mut blocks: Vec<u64> = Vec::new();
        for e in &extents {
            let s = e.file_block.saturating_mul(self.sb.block);
            let end = s.saturating_add(e.count * self.sb.block);
            let mut at = s / dblk * dblk;
            while at < end && at < DIR_LEAF_OFFSET {
                if blocks.last() != Some(&at) {
                    blocks.push(at);
                }
                if blocks.len() > MAX_DIR_BLOCKS {
                    return Err(corrupt(format!(
                        "inode {ino}: directory of more than {MAX_DIR_BLOCKS} blocks"
                    )));
                }
                at += dblk;
            }
        }
        let mut out = Vec::new();
        for at in blocks {
            let b = self.read_data(&extents, at, dblk as usize)?;
            let before = out.len();
            self.data_block(ino, &b, &mut out)?;
            self.src.budget.listing(&out, before, &ino)?;
        }
        Ok(out)
    }

    fn data_block(
        &self,
        ino: u64,
        b: &[u8],
        out: &mut Vec<(String, u64, Option<Kind>)>,
    ) -> Result<(), FsError> {
        let (single, data, header): (&[u8], &[u8], usize) = if self.sb.v5 {
            (b"XDB3", b"XDD3", 64)
        } else {
            (b"XD2B", b"XD2D", 16)
        };
        let mut end = b.len();
        if &b[0..4] == single {
            // A single-block directory ends with its leaf entries and a tail.
            let count = be32(b, b.len() - 8) as usize;
            end = count
                .checked_mul(8)
                .and_then(|n| b.len().checked_sub(8 + n))
                .filter(|&e| e >= header)
                .ok_or_else(|| corrupt(format!("directory {ino}: bad block tail")))?;
        } else if &b[0..4] != data {
            return Err(corrupt(format!("directory {ino}: bad data block magic")));
        }
        let mut at = header;
        while at + 8 <= end {
            if be16(b, at) == 0xffff {
                let len = usize::from(be16(b, at + 2));
                if len < 8 || len % 8 != 0 {
                    return Err(corrupt(format!("directory {ino}: bad free space entry")));
                }
                at += len;
                continue;
            }
            let child = be64(b, at);
            let namelen = usize::from(*b.get(at + 8).unwrap_or(&0));
            let extra = usize::from(self.sb.ftype);
            let len = (8 + 1 + namelen + extra + 2).div_ceil(8) * 8;
            if namelen == 0 || at + len > end {
                return Err(corrupt(format!("directory {ino}: entry past its block")));
            }
            let name = &b[at + 9..at + 9 + namelen];
            let kind = self.sb.ftype.then(|| ftype(b[at + 9 + namelen]));
            if name != b"." && name != b".." {
                if let Ok(name) = core::str::from_utf8(name) {
                    out.push((name.to_string(), child, kind));
                }
            }
            at += len;
        }
        Ok(())
    }

    fn short_form(&mut self, inode: &Inode) -> Result<Entries, FsError> {
        let ino = inode.ino;
        let f = &inode.fork;
        let size = usize::try_from(inode.size).unwrap_or(usize::MAX);
        if f.len() < 6 || size > f.len() {
            return Err(corrupt(format!(
                "directory {ino}: short form past the inode"
            )));
        }
        let f = &f[..size];
        let (count, i8) = (usize::from(f[0]), f[1]);
        let count = if i8 != 0 { usize::from(i8) } else { count };
        let ino_len = if i8 != 0 { 8 } else { 4 };
        let mut at = 2 + ino_len;
        let mut out = Vec::new();
        let extra = usize::from(self.sb.ftype);
        for _ in 0..count {
            let namelen = usize::from(*f.get(at).unwrap_or(&0));
            let end = at + 3 + namelen + extra + ino_len;
            if namelen == 0 || end > f.len() {
                return Err(corrupt(format!(
                    "directory {ino}: short-form entry past its end"
                )));
            }
            let name = &f[at + 3..at + 3 + namelen];
            let kind = self.sb.ftype.then(|| ftype(f[at + 3 + namelen]));
            let n = &f[end - ino_len..end];
            let child = if ino_len == 8 {
                be64(n, 0)
            } else {
                u64::from(be32(n, 0))
            };
            if let Ok(name) = core::str::from_utf8(name) {
                out.push((name.to_string(), child, kind));
            }
            at = end;
        }
        Ok(out)
    }

    fn symlink(&mut self, inode: &Inode) -> Result<String, FsError> {
        let ino = inode.ino;
        if inode.size == 0 || inode.size > MAX_SYMLINK {
            return Err(corrupt(format!("symlink {ino}: length {}", inode.size)));
        }
        let size = inode.size as usize;
        let bytes = if inode.format == 1 {
            inode
                .fork
                .get(..size)
                .ok_or_else(|| corrupt(format!("symlink {ino}: past the inode")))?
                .to_vec()
        } else {
            // Remote: v5 blocks each start with a 56-byte header.
            let extents = self.extents(inode)?;
            let header = if self.sb.v5 { 56 } else { 0 };
            let per = self.sb.block as usize - header;
            let blocks = size.div_ceil(per);
            let raw = self.read_data(&extents, 0, blocks * self.sb.block as usize)?;
            let mut out = Vec::with_capacity(size);
            for chunk in raw.chunks(self.sb.block as usize) {
                if self.sb.v5 && &chunk[0..4] != b"XSLM" {
                    return Err(corrupt(format!("symlink {ino}: bad block magic")));
                }
                out.extend_from_slice(&chunk[header..]);
            }
            out.truncate(size);
            out
        };
        String::from_utf8(bytes).map_err(|_| corrupt(format!("symlink {ino}: not UTF-8")))
    }
}

fn ftype(t: u8) -> Kind {
    match t {
        1 => Kind::File,
        2 => Kind::Dir,
        7 => Kind::Symlink,
        _ => Kind::Other,
    }
}

impl Inodes for Xfs {
    type Inode = Inode;
    fn root_inode(&self) -> u64 {
        self.sb.root
    }
    fn inode(&mut self, ino: u64) -> Result<Inode, FsError> {
        Xfs::inode(self, ino)
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

inodes::root_fs_by_inode!(Xfs, "xfs");

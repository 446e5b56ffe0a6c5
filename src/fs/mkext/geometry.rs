//! Where everything of a new ext2/3/4 filesystem goes, decided before a
//! byte is written: block size, groups, inode counts and the place of each
//! group's bitmaps and inode table, by e2fsprogs' defaults
//! (`/etc/mke2fs.conf`: 4 KiB blocks and one inode per 16 KiB; "small"
//! filesystems under 512 MiB 1 KiB blocks and one per 4 KiB, "floppy"
//! ones under 3 MiB one per 8 KiB; 256-byte inodes).

use super::Kind;

pub const INODE_SIZE: u32 = 256;
/// Inodes 1-10 are reserved; 11 is lost+found.
pub const FIRST_INODE: u32 = 11;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub kind: Kind,
    pub block_size: u32,
    pub blocks: u64,
    /// 1 with 1 KiB blocks (block 0 holds the boot sector), else 0.
    pub first_data_block: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub groups: u32,
    pub desc_size: u32,
    /// Blocks of group descriptors (each copy).
    pub gdt_blocks: u32,
    /// Blocks of one group's inode table.
    pub itable_blocks: u32,
    pub reserved_blocks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLayout {
    pub start: u64,
    pub blocks: u32,
    pub has_super: bool,
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    /// First block after this group's metadata.
    pub data_start: u64,
}

/// sparse_super: backups of the superblock and descriptors in groups 0, 1
/// and the powers of 3, 5 and 7.
pub fn has_super(group: u32) -> bool {
    fn power_of(mut g: u32, base: u32) -> bool {
        while g > 1 && g % base == 0 {
            g /= base;
        }
        g == 1
    }
    group <= 1 || power_of(group, 3) || power_of(group, 5) || power_of(group, 7)
}

impl Geometry {
    /// The layout for `bytes` of partition, or why there is none.
    pub fn new(kind: Kind, bytes: u64) -> Result<Geometry, &'static str> {
        const MIB: u64 = 1 << 20;
        if bytes < 2 * MIB {
            return Err("smaller than the 2 MiB an ext filesystem needs");
        }
        let (block_size, inode_ratio) = if bytes < 3 * MIB {
            (1024u32, 8192u64)
        } else if bytes < 512 * MIB {
            (1024, 4096)
        } else {
            (4096, 16384)
        };
        let mut blocks = bytes / u64::from(block_size);
        // 2^32 blocks (16 TiB of 4 KiB): all ext2/3 can address, and for
        // ext4 what rivet formats, so the descriptor table it builds in
        // memory stays under 8 MiB (131,072 groups) and every count below
        // fits its 32-bit field.
        if blocks >= 1u64 << 32 {
            return Err("larger than the 16 TiB rivet formats");
        }
        let first_data_block = u32::from(block_size == 1024);
        let blocks_per_group = 8 * block_size;
        let desc_size = if kind == Kind::Ext4 { 64 } else { 32 };
        let inodes_per_block = block_size / INODE_SIZE;
        loop {
            let data = blocks - u64::from(first_data_block);
            let groups = data.div_ceil(u64::from(blocks_per_group)) as u32;
            let inodes =
                (blocks * u64::from(block_size) / inode_ratio).max(u64::from(FIRST_INODE) + 5);
            // Whole inode-table blocks, a multiple of 8 (bitmap bytes).
            let mut ipg = inodes.div_ceil(u64::from(groups)) as u32;
            ipg = ipg.div_ceil(inodes_per_block) * inodes_per_block;
            ipg = ipg.div_ceil(8) * 8;
            ipg = ipg.min(blocks_per_group);
            let itable_blocks = ipg / inodes_per_block;
            let gdt_blocks = (groups * desc_size).div_ceil(block_size);
            let g = Geometry {
                kind,
                block_size,
                blocks,
                first_data_block,
                blocks_per_group,
                inodes_per_group: ipg,
                groups,
                desc_size,
                gdt_blocks,
                itable_blocks,
                reserved_blocks: blocks / 20,
            };
            // A last group too small for its own metadata and a little data
            // is left out, as mke2fs does.
            let last = g.group(groups - 1);
            let overhead = last.data_start - last.start;
            if groups > 1 && u64::from(last.blocks) < overhead + 50 {
                blocks -= u64::from(last.blocks);
                continue;
            }
            if groups == 1 && u64::from(last.blocks) < overhead + 64 {
                return Err("too small for its own metadata");
            }
            return Ok(g);
        }
    }

    pub fn group(&self, g: u32) -> GroupLayout {
        let start =
            u64::from(self.first_data_block) + u64::from(g) * u64::from(self.blocks_per_group);
        let blocks = (self.blocks - start).min(u64::from(self.blocks_per_group)) as u32;
        let has_super = has_super(g);
        let mut next = start;
        if has_super {
            next += 1 + u64::from(self.gdt_blocks);
        }
        let block_bitmap = next;
        let inode_bitmap = next + 1;
        let inode_table = next + 2;
        GroupLayout {
            start,
            blocks,
            has_super,
            block_bitmap,
            inode_bitmap,
            inode_table,
            data_start: inode_table + u64::from(self.itable_blocks),
        }
    }

    pub fn inodes(&self) -> u32 {
        self.inodes_per_group * self.groups
    }

    /// mke2fs's default journal size for this many blocks, in blocks.
    pub fn journal_blocks(&self) -> u32 {
        let b = self.blocks;
        match b {
            _ if b < 32768 => 1024,
            _ if b < 256 * 1024 => 4096,
            _ if b < 512 * 1024 => 8192,
            _ if b < 4096 * 1024 => 16384,
            _ if b < 8192 * 1024 => 32768,
            _ if b < 16384 * 1024 => 65536,
            _ if b < 32768 * 1024 => 131072,
            _ => 262144,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_sit_in_groups_0_1_and_powers_of_3_5_7() {
        let with: alloc::vec::Vec<u32> = (0..100).filter(|&g| has_super(g)).collect();
        assert_eq!(with, [0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }

    /// The figures `mkfs.ext4` (e2fsprogs 1.47, Debian 12) printed for the
    /// same sizes: block size, block count, inodes, inodes per group.
    #[test]
    fn sizes_follow_mke2fs_defaults() {
        let g = Geometry::new(Kind::Ext4, 2 << 30).unwrap();
        assert_eq!(
            (
                g.block_size,
                g.blocks,
                g.inodes(),
                g.inodes_per_group,
                g.itable_blocks
            ),
            (4096, 524_288, 131_072, 8192, 512)
        );
        let g = Geometry::new(Kind::Ext4, 256 << 20).unwrap();
        assert_eq!(
            (
                g.block_size,
                g.blocks,
                g.inodes(),
                g.inodes_per_group,
                g.first_data_block
            ),
            (1024, 262_144, 65_536, 2048, 1)
        );
        let g = Geometry::new(Kind::Ext4, 8 << 20).unwrap();
        assert_eq!(
            (g.block_size, g.blocks, g.inodes(), g.groups),
            (1024, 8192, 2048, 1)
        );
        assert_eq!(g.reserved_blocks, 409);
        assert!(Geometry::new(Kind::Ext4, 1 << 20).is_err());
    }

    #[test]
    fn group_metadata_follows_the_superblock_backups() {
        let g = Geometry::new(Kind::Ext4, 2 << 30).unwrap();
        let g0 = g.group(0);
        assert_eq!(
            (g0.start, g0.block_bitmap, g0.inode_table, g0.data_start),
            (0, 2, 4, 516)
        );
        let g2 = g.group(2);
        assert!(!g2.has_super);
        assert_eq!(
            (g2.start, g2.block_bitmap, g2.data_start),
            (65536, 65536, 65536 + 514)
        );
    }
}

//! Filesystem identification from the first bytes of a partition: type,
//! UUID and label as `blkid` prints them. Only what rivet reports is read.

use super::guid::fmt_uuid;
use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

/// Bytes a probe needs from the start of a partition (btrfs's superblock
/// sits at 64 KiB).
pub const PROBE_LEN: usize = 0x10000 + 0x1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Swap,
    Iso9660,
}

impl Kind {
    /// The name blkid gives as TYPE.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Ext2 => "ext2",
            Kind::Ext3 => "ext3",
            Kind::Ext4 => "ext4",
            Kind::Xfs => "xfs",
            Kind::Btrfs => "btrfs",
            Kind::Vfat => "vfat",
            Kind::Swap => "swap",
            Kind::Iso9660 => "iso9660",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub kind: Kind,
    /// As blkid prints UUID: `8-4-4-4-12` lowercase, `XXXX-XXXX` for vfat,
    /// the creation time for ISO 9660.
    pub uuid: String,
    pub label: Option<String>,
}

struct Uuid([u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_uuid(&self.0, f)
    }
}

fn bytes16(b: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A fixed-size, NUL- or space-padded label; None if empty.
fn label(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let text = text.trim_end_matches(' ');
    (!text.is_empty()).then(|| text.to_string())
}

mod ext {
    pub const SUPERBLOCK: usize = 1024;
    pub const MAGIC: usize = SUPERBLOCK + 0x38;
    pub const COMPAT: usize = SUPERBLOCK + 0x5c;
    pub const INCOMPAT: usize = SUPERBLOCK + 0x60;
    pub const RO_COMPAT: usize = SUPERBLOCK + 0x64;
    pub const UUID: usize = SUPERBLOCK + 0x68;
    pub const LABEL: usize = SUPERBLOCK + 0x78;
    pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
    pub const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    /// Features ext3 knows (FILETYPE, RECOVER, META_BG / SPARSE_SUPER,
    /// LARGE_FILE, BTREE_DIR); anything else makes blkid say ext4.
    pub const EXT3_INCOMPAT: u32 = 0x2 | 0x4 | 0x10;
    pub const EXT3_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;
}

fn probe_ext(b: &[u8]) -> Option<Filesystem> {
    if b.len() < ext::SUPERBLOCK + 1024 || le16(b, ext::MAGIC) != 0xef53 {
        return None;
    }
    let incompat = le32(b, ext::INCOMPAT);
    if incompat & ext::INCOMPAT_JOURNAL_DEV != 0 {
        return None; // an external journal, not a filesystem
    }
    let kind = if incompat & !ext::EXT3_INCOMPAT != 0
        || le32(b, ext::RO_COMPAT) & !ext::EXT3_RO_COMPAT != 0
    {
        Kind::Ext4
    } else if le32(b, ext::COMPAT) & ext::COMPAT_HAS_JOURNAL != 0 {
        Kind::Ext3
    } else {
        Kind::Ext2
    };
    Some(Filesystem {
        kind,
        uuid: Uuid(bytes16(b, ext::UUID)).to_string(),
        label: label(&b[ext::LABEL..ext::LABEL + 16]),
    })
}

fn probe_xfs(b: &[u8]) -> Option<Filesystem> {
    // sb_magicnum "XFSB" at 0, sb_uuid at 32, sb_fname[12] at 108.
    if b.len() < 512 || &b[0..4] != b"XFSB" {
        return None;
    }
    Some(Filesystem {
        kind: Kind::Xfs,
        uuid: Uuid(bytes16(b, 32)).to_string(),
        label: label(&b[108..120]),
    })
}

fn probe_btrfs(b: &[u8]) -> Option<Filesystem> {
    // Superblock at 64 KiB: fsid at +0x20, magic "_BHRfS_M" at +0x40, label[256] at +0x12b.
    const SB: usize = 0x10000;
    if b.len() < SB + 0x1000 || &b[SB + 0x40..SB + 0x48] != b"_BHRfS_M" {
        return None;
    }
    Some(Filesystem {
        kind: Kind::Btrfs,
        uuid: Uuid(bytes16(b, SB + 0x20)).to_string(),
        label: label(&b[SB + 0x12b..SB + 0x12b + 256]),
    })
}

fn probe_swap(b: &[u8]) -> Option<Filesystem> {
    // Page-size 4096 swap: magic at 4086; v1 header's uuid at 1036, label at 1052.
    if b.len() < 4096 || &b[4086..4096] != b"SWAPSPACE2" {
        return None;
    }
    Some(Filesystem {
        kind: Kind::Swap,
        uuid: Uuid(bytes16(b, 1036)).to_string(),
        label: label(&b[1052..1068]),
    })
}

fn probe_iso9660(b: &[u8]) -> Option<Filesystem> {
    // Primary volume descriptor at 32 KiB: type 1, "CD001", volume id at +40,
    // creation time "YYYYMMDDHHMMSSCC" at +813 (what blkid turns into UUID).
    const PVD: usize = 0x8000;
    if b.len() < PVD + 2048 || b[PVD] != 1 || &b[PVD + 1..PVD + 6] != b"CD001" {
        return None;
    }
    let t = &b[PVD + 813..PVD + 829];
    let digits = core::str::from_utf8(t)
        .ok()
        .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?;
    let d = |r: core::ops::Range<usize>| &digits[r];
    let uuid = format!(
        "{}-{}-{}-{}-{}-{}-{}",
        d(0..4),
        d(4..6),
        d(6..8),
        d(8..10),
        d(10..12),
        d(12..14),
        d(14..16)
    );
    Some(Filesystem {
        kind: Kind::Iso9660,
        uuid,
        label: label(&b[PVD + 40..PVD + 72]),
    })
}

fn probe_vfat(b: &[u8]) -> Option<Filesystem> {
    if b.len() < 512 || b[510..512] != [0x55, 0xaa] || !(b[0] == 0xeb || b[0] == 0xe9) {
        return None;
    }
    let bytes_per_sector = le16(b, 11);
    if !(512..=4096).contains(&bytes_per_sector)
        || !bytes_per_sector.is_power_of_two()
        || b[13] == 0
    {
        return None;
    }
    // FAT32's extended BPB starts at 64, FAT12/16's at 36: serial, label, type.
    let (serial_at, label_at) = if &b[82..87] == b"FAT32" {
        (67, 71)
    } else if &b[54..59] == b"FAT12" || &b[54..59] == b"FAT16" || &b[54..57] == b"FAT" {
        (39, 43)
    } else {
        return None;
    };
    let serial = le32(b, serial_at);
    let boot_label = label(&b[label_at..label_at + 11]).filter(|l| l != "NO NAME");
    Some(Filesystem {
        kind: Kind::Vfat,
        uuid: format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff),
        label: boot_label,
    })
}

/// Identifies the filesystem whose first bytes are `head` (give at least
/// [`PROBE_LEN`] bytes, or the whole partition if smaller).
pub fn probe(head: &[u8]) -> Option<Filesystem> {
    probe_xfs(head)
        .or_else(|| probe_ext(head))
        .or_else(|| probe_btrfs(head))
        .or_else(|| probe_swap(head))
        .or_else(|| probe_iso9660(head))
        .or_else(|| probe_vfat(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn ext4_ext3_ext2_by_features() {
        let mut b = vec![0u8; 4096];
        b[1080..1082].copy_from_slice(&[0x53, 0xef]);
        b[1128..1144].copy_from_slice(&[
            0x0b, 0x3e, 0x3f, 0x1a, 0x4d, 0x7c, 0x4e, 0x2b, 0x9a, 0x6f, 0x01, 0x23, 0x45, 0x67,
            0x89, 0xab,
        ]);
        b[1144..1148].copy_from_slice(b"root");
        assert_eq!(
            probe(&b),
            Some(Filesystem {
                kind: Kind::Ext2,
                uuid: "0b3e3f1a-4d7c-4e2b-9a6f-0123456789ab".into(),
                label: Some("root".into())
            })
        );
        b[1116] = 0x4; // has_journal
        assert_eq!(probe(&b).unwrap().kind, Kind::Ext3);
        b[1120] = 0x42; // filetype | extents
        assert_eq!(probe(&b).unwrap().kind, Kind::Ext4);
    }

    #[test]
    fn xfs_btrfs_swap_vfat() {
        let mut x = vec![0u8; 512];
        x[0..4].copy_from_slice(b"XFSB");
        x[32] = 0xab;
        x[108..112].copy_from_slice(b"data");
        let fs = probe(&x).unwrap();
        assert_eq!(
            (fs.kind, fs.uuid.as_str(), fs.label.as_deref()),
            (
                Kind::Xfs,
                "ab000000-0000-0000-0000-000000000000",
                Some("data")
            )
        );

        let mut b = vec![0u8; PROBE_LEN];
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        b[0x10020] = 0x01;
        assert_eq!(probe(&b).unwrap().kind, Kind::Btrfs);

        let mut s = vec![0u8; 4096];
        s[4086..].copy_from_slice(b"SWAPSPACE2");
        s[1052..1057].copy_from_slice(b"swap1");
        let fs = probe(&s).unwrap();
        assert_eq!((fs.kind, fs.label.as_deref()), (Kind::Swap, Some("swap1")));

        // mkfs.vfat -F 32 -n EFI-PART -i 45AB2312
        let mut v = vec![0u8; 512];
        v[0..3].copy_from_slice(&[0xeb, 0x58, 0x90]);
        v[11..13].copy_from_slice(&512u16.to_le_bytes());
        v[13] = 1;
        v[67..71].copy_from_slice(&0x45ab_2312u32.to_le_bytes());
        v[71..82].copy_from_slice(b"EFI-PART   ");
        v[82..90].copy_from_slice(b"FAT32   ");
        v[510..512].copy_from_slice(&[0x55, 0xaa]);
        let fs = probe(&v).unwrap();
        assert_eq!(
            (fs.kind, fs.uuid.as_str(), fs.label.as_deref()),
            (Kind::Vfat, "45AB-2312", Some("EFI-PART"))
        );
    }

    #[test]
    fn nothing_known_and_short_input() {
        assert_eq!(probe(&[]), None);
        assert_eq!(probe(&[0u8; 100]), None);
        assert_eq!(probe(&vec![0u8; PROBE_LEN]), None);
        // An MBR has 0x55AA too, but no BPB: not vfat.
        let mut mbr = vec![0u8; 512];
        mbr[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(probe(&mbr), None);
    }
}

//! The DOS/MBR partition table in sector 0: 440 bytes of boot code, the
//! 4-byte disk signature at 440, four 16-byte entries at 446, and 0x55AA.

use alloc::vec::Vec;
use core::fmt;

pub const SIGNATURE_OFFSET: usize = 440;
pub const ENTRIES_OFFSET: usize = 446;
pub const ENTRY_LEN: usize = 16;
pub const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xaa];

pub const TYPE_LINUX: u8 = 0x83;
pub const TYPE_SWAP: u8 = 0x82;
/// FAT32 with LBA addressing: what parted writes for a fat32 partition.
pub const TYPE_FAT32_LBA: u8 = 0x0c;
pub const TYPE_EXTENDED: u8 = 0x05;
pub const TYPE_EXTENDED_LBA: u8 = 0x0f;
pub const TYPE_GPT_PROTECTIVE: u8 = 0xee;
const ACTIVE: u8 = 0x80;

mod field {
    pub const STATUS: usize = 0;
    pub const CHS_FIRST: usize = 1;
    pub const TYPE: usize = 4;
    pub const CHS_LAST: usize = 5;
    pub const LBA_FIRST: usize = 8;
    pub const SECTORS: usize = 12;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    /// No 0x55AA at the end of sector 0.
    NoSignature,
    /// A partition starts or ends beyond 2^32 sectors.
    BeyondLimit,
    Overlap,
    TooMany,
    EmptyPartition,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "MBR sector truncated",
            Error::NoSignature => "no MBR boot signature (0x55AA)",
            Error::BeyondLimit => {
                "MBR partitions cannot reach past 2^32 sectors (2 TiB with 512-byte sectors)"
            }
            Error::Overlap => "MBR partitions overlap",
            Error::TooMany => "an MBR holds at most 4 primary partitions",
            Error::EmptyPartition => "MBR partition has no sectors",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub bootable: bool,
    pub kind: u8,
    pub first_lba: u32,
    pub sectors: u32,
}

impl Partition {
    pub fn end_lba(&self) -> u64 {
        self.first_lba as u64 + self.sectors as u64
    }
}

/// CHS address for an LBA with the 255-head, 63-sector geometry parted and
/// fdisk assume; past cylinder 1023 the maximum (0xFE 0xFF 0xFF) stands in.
pub fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    let cylinder = lba / (HEADS * SECTORS);
    if cylinder > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let head = (lba / SECTORS) % HEADS;
    let sector = lba % SECTORS + 1;
    [
        head as u8,
        (sector as u8) | ((cylinder >> 2) as u8 & 0xc0),
        cylinder as u8,
    ]
}

fn encode_entry(e: &mut [u8], p: &Partition) {
    e[field::STATUS] = if p.bootable { ACTIVE } else { 0 };
    e[field::CHS_FIRST..field::CHS_FIRST + 3].copy_from_slice(&chs(p.first_lba as u64));
    e[field::TYPE] = p.kind;
    e[field::CHS_LAST..field::CHS_LAST + 3].copy_from_slice(&chs(p.end_lba() - 1));
    e[field::LBA_FIRST..field::LBA_FIRST + 4].copy_from_slice(&p.first_lba.to_le_bytes());
    e[field::SECTORS..field::SECTORS + 4].copy_from_slice(&p.sectors.to_le_bytes());
}

/// Writes `partitions` and `disk_signature` into `sector` (512 bytes or
/// more), keeping the boot code in bytes 0..440.
pub fn write(
    sector: &mut [u8],
    disk_signature: u32,
    partitions: &[Partition],
) -> Result<(), Error> {
    if sector.len() < 512 {
        return Err(Error::Truncated);
    }
    if partitions.len() > 4 {
        return Err(Error::TooMany);
    }
    for (i, p) in partitions.iter().enumerate() {
        if p.sectors == 0 {
            return Err(Error::EmptyPartition);
        }
        if p.end_lba() > u32::MAX as u64 + 1 {
            return Err(Error::BeyondLimit);
        }
        for q in &partitions[i + 1..] {
            if (p.first_lba as u64) < q.end_lba() && (q.first_lba as u64) < p.end_lba() {
                return Err(Error::Overlap);
            }
        }
    }
    sector[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 4].copy_from_slice(&disk_signature.to_le_bytes());
    sector[444..446].fill(0);
    sector[ENTRIES_OFFSET..510].fill(0);
    for (i, p) in partitions.iter().enumerate() {
        let at = ENTRIES_OFFSET + i * ENTRY_LEN;
        encode_entry(&mut sector[at..at + ENTRY_LEN], p);
    }
    sector[510..512].copy_from_slice(&BOOT_SIGNATURE);
    Ok(())
}

/// The protective MBR of a GPT disk: one 0xEE partition over the disk.
pub fn protective(total_sectors: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    let sectors = (total_sectors - 1).min(u32::MAX as u64) as u32;
    let at = ENTRIES_OFFSET;
    s[at + field::CHS_FIRST..at + field::CHS_FIRST + 3].copy_from_slice(&[0x00, 0x02, 0x00]);
    s[at + field::TYPE] = TYPE_GPT_PROTECTIVE;
    s[at + field::CHS_LAST..at + field::CHS_LAST + 3].copy_from_slice(&chs(total_sectors - 1));
    s[at + field::LBA_FIRST..at + field::LBA_FIRST + 4].copy_from_slice(&1u32.to_le_bytes());
    s[at + field::SECTORS..at + field::SECTORS + 4].copy_from_slice(&sectors.to_le_bytes());
    s[510..512].copy_from_slice(&BOOT_SIGNATURE);
    s
}

/// A checked view of sector 0.
pub struct Mbr<'a> {
    sector: &'a [u8],
}

impl<'a> Mbr<'a> {
    pub fn new_checked(sector: &'a [u8]) -> Result<Mbr<'a>, Error> {
        if sector.len() < 512 {
            return Err(Error::Truncated);
        }
        if sector[510..512] != BOOT_SIGNATURE {
            return Err(Error::NoSignature);
        }
        Ok(Mbr { sector })
    }

    /// Whether the four entries look like a partition table: every status
    /// byte 0x00 or 0x80 (libblkid's test; FAT boot code fails it).
    pub fn entries_plausible(&self) -> bool {
        (0..4).all(|i| matches!(self.sector[ENTRIES_OFFSET + i * ENTRY_LEN], 0x00 | 0x80))
    }

    pub fn disk_signature(&self) -> u32 {
        let s = &self.sector[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 4];
        u32::from_le_bytes([s[0], s[1], s[2], s[3]])
    }

    /// The four slots; a zero type means unused.
    pub fn slots(&self) -> [Partition; 4] {
        core::array::from_fn(|i| {
            let e = &self.sector[ENTRIES_OFFSET + i * ENTRY_LEN..][..ENTRY_LEN];
            let u32_at = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
            Partition {
                bootable: e[field::STATUS] & ACTIVE != 0,
                kind: e[field::TYPE],
                first_lba: u32_at(field::LBA_FIRST),
                sectors: u32_at(field::SECTORS),
            }
        })
    }

    /// Used primary partitions with their numbers (1-4).
    pub fn partitions(&self) -> Vec<(u32, Partition)> {
        self.slots()
            .into_iter()
            .enumerate()
            .filter(|(_, p)| p.kind != 0 && p.sectors != 0)
            .map(|(i, p)| (i as u32 + 1, p))
            .collect()
    }

    pub fn is_protective(&self) -> bool {
        self.slots().iter().any(|p| p.kind == TYPE_GPT_PROTECTIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn entry_bytes_match_fdisk() {
        // sfdisk on a 64 MiB disk, "start=2048, size=2048, type=83, bootable".
        let mut sector = vec![0u8; 512];
        let p = Partition {
            bootable: true,
            kind: TYPE_LINUX,
            first_lba: 2048,
            sectors: 2048,
        };
        write(&mut sector, 0x1234_5678, &[p]).unwrap();
        assert_eq!(&sector[440..444], &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(
            &sector[446..462],
            &[
                0x80, 0x20, 0x21, 0x00, 0x83, 0x41, 0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08,
                0x00, 0x00
            ]
        );
        assert_eq!(&sector[510..], &[0x55, 0xaa]);
        let mbr = Mbr::new_checked(&sector).unwrap();
        assert_eq!(mbr.disk_signature(), 0x1234_5678);
        assert_eq!(mbr.partitions(), vec![(1, p)]);
    }

    #[test]
    fn boot_code_is_kept() {
        let mut sector = vec![0xaa; 512];
        write(&mut sector, 1, &[]).unwrap();
        assert!(sector[..440].iter().all(|&b| b == 0xaa));
        assert!(sector[446..510].iter().all(|&b| b == 0));
    }

    #[test]
    fn limits_are_enforced() {
        let mut s = vec![0u8; 512];
        let p = |first: u32, sectors: u32| Partition {
            bootable: false,
            kind: TYPE_LINUX,
            first_lba: first,
            sectors,
        };
        assert_eq!(
            write(&mut s, 0, &[p(2048, 10), p(2050, 10)]),
            Err(Error::Overlap)
        );
        assert_eq!(
            write(&mut s, 0, &[p(1, 1), p(2, 1), p(3, 1), p(4, 1), p(5, 1)]),
            Err(Error::TooMany)
        );
        assert_eq!(write(&mut s, 0, &[p(u32::MAX, 2)]), Err(Error::BeyondLimit));
        assert_eq!(write(&mut s, 0, &[p(2048, 0)]), Err(Error::EmptyPartition));
        assert_eq!(
            Mbr::new_checked(&[0u8; 512]).err(),
            Some(Error::NoSignature)
        );
        assert_eq!(Mbr::new_checked(&[0u8; 100]).err(), Some(Error::Truncated));
    }

    #[test]
    fn protective_mbr_matches_sgdisk() {
        // sgdisk -o on a 64 MiB (131072-sector) disk.
        let s = protective(131072);
        assert_eq!(
            &s[446..462],
            &[
                0x00, 0x00, 0x02, 0x00, 0xee, 0x28, 0x20, 0x08, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff,
                0x01, 0x00
            ]
        );
        assert!(Mbr::new_checked(&s).unwrap().is_protective());
    }
}

//! GUID Partition Table (UEFI 2.10, chapter 5.3): the protective MBR, the
//! primary header at LBA 1 with its entry array after it, and the backup
//! entry array and header at the end of the disk. All integers little-endian.

use super::guid::Guid;
use super::mbr;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub const SIGNATURE: &[u8; 8] = b"EFI PART";
pub const REVISION_1_0: u32 = 0x0001_0000;
pub const HEADER_SIZE: u32 = 92;
pub const ENTRY_SIZE: u32 = 128;
/// Largest entry size accepted (sgdisk and the kernel use 128).
pub const MAX_ENTRY_SIZE: u32 = 4096;
/// Largest entry array accepted: 1 MiB (128 entries of 128 bytes is 16 KiB).
pub const MAX_ENTRIES_BYTES: usize = 1 << 20;
/// The usual entry count (16 KiB of entries), what sgdisk and parted write.
pub const ENTRY_COUNT: u32 = 128;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

mod field {
    pub const SIGNATURE: usize = 0;
    pub const REVISION: usize = 8;
    pub const HEADER_SIZE: usize = 12;
    pub const HEADER_CRC: usize = 16;
    pub const MY_LBA: usize = 24;
    pub const ALTERNATE_LBA: usize = 32;
    pub const FIRST_USABLE: usize = 40;
    pub const LAST_USABLE: usize = 48;
    pub const DISK_GUID: usize = 56;
    pub const ENTRIES_LBA: usize = 72;
    pub const ENTRY_COUNT: usize = 80;
    pub const ENTRY_SIZE: usize = 84;
    pub const ENTRIES_CRC: usize = 88;

    pub const E_TYPE: usize = 0;
    pub const E_UNIQUE: usize = 16;
    pub const E_FIRST: usize = 32;
    pub const E_LAST: usize = 40;
    pub const E_ATTRS: usize = 48;
    pub const E_NAME: usize = 56;
    pub const E_NAME_LEN: usize = 72;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadSignature,
    BadHeaderSize,
    BadHeaderCrc,
    BadEntriesCrc,
    /// Entry size not a multiple of 128, or the array is absurdly large.
    BadEntryGeometry,
    /// A partition's range is empty or outside the usable area.
    BadPartition,
    /// Two partitions overlap.
    Overlap,
    /// More partitions than entries, or a name longer than 36 UTF-16 units.
    TooMany,
    /// The disk is too small for two headers and two entry arrays.
    DiskTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "GPT data truncated",
            Error::BadSignature => "no GPT header (signature is not 'EFI PART')",
            Error::BadHeaderSize => "GPT header size is not between 92 bytes and one sector",
            Error::BadHeaderCrc => "GPT header CRC32 does not match",
            Error::BadEntriesCrc => "GPT partition entry array CRC32 does not match",
            Error::BadEntryGeometry => "GPT entry size or count is invalid",
            Error::BadPartition => "GPT partition lies outside the usable area",
            Error::Overlap => "GPT partitions overlap",
            Error::TooMany => "too many GPT partitions or a name too long",
            Error::DiskTooSmall => "disk too small for a GPT",
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    let mut g = [0u8; 16];
    g.copy_from_slice(&b[at..at + 16]);
    Guid(g)
}

/// A checked view of a GPT header sector.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Checks signature, size and CRC.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_SIZE as usize {
            return Err(Error::Truncated);
        }
        if &b[..8] != SIGNATURE {
            return Err(Error::BadSignature);
        }
        let size = u32_at(b, field::HEADER_SIZE) as usize;
        if size < HEADER_SIZE as usize || size > b.len() {
            return Err(Error::BadHeaderSize);
        }
        let mut copy = b[..size].to_vec();
        copy[field::HEADER_CRC..field::HEADER_CRC + 4].fill(0);
        if CRC32.checksum(&copy) != u32_at(b, field::HEADER_CRC) {
            return Err(Error::BadHeaderCrc);
        }
        let header = Header { buffer };
        // The spec's 128 × 2^n, within bounds no real table comes near: a
        // header from a previous tenant must not make rivet allocate
        // gigabytes (4096 entries of 512 KiB would be 2 GiB).
        let entry_size = header.entry_size();
        if !(ENTRY_SIZE..=MAX_ENTRY_SIZE).contains(&entry_size)
            || !(entry_size / ENTRY_SIZE).is_power_of_two()
            || entry_size % ENTRY_SIZE != 0
            || header.entry_count() > 4096
            || header.entries_len() > MAX_ENTRIES_BYTES
        {
            return Err(Error::BadEntryGeometry);
        }
        Ok(header)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    pub fn my_lba(&self) -> u64 {
        u64_at(self.b(), field::MY_LBA)
    }
    pub fn alternate_lba(&self) -> u64 {
        u64_at(self.b(), field::ALTERNATE_LBA)
    }
    pub fn first_usable(&self) -> u64 {
        u64_at(self.b(), field::FIRST_USABLE)
    }
    pub fn last_usable(&self) -> u64 {
        u64_at(self.b(), field::LAST_USABLE)
    }
    pub fn disk_guid(&self) -> Guid {
        guid_at(self.b(), field::DISK_GUID)
    }
    pub fn entries_lba(&self) -> u64 {
        u64_at(self.b(), field::ENTRIES_LBA)
    }
    pub fn entry_count(&self) -> u32 {
        u32_at(self.b(), field::ENTRY_COUNT)
    }
    pub fn entry_size(&self) -> u32 {
        u32_at(self.b(), field::ENTRY_SIZE)
    }
    pub fn entries_crc(&self) -> u32 {
        u32_at(self.b(), field::ENTRIES_CRC)
    }
    /// Bytes of the entry array.
    pub fn entries_len(&self) -> usize {
        (self.entry_count() as usize).saturating_mul(self.entry_size() as usize)
    }
}

/// One used partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

/// Reads the used entries (type GUID not zero) of an entry array, keeping
/// their 1-based entry numbers (the kernel's partition numbers).
pub fn parse_entries<T: AsRef<[u8]>>(
    header: &Header<T>,
    entries: &[u8],
) -> Result<Vec<(u32, Partition)>, Error> {
    let len = header.entries_len();
    if entries.len() < len {
        return Err(Error::Truncated);
    }
    if CRC32.checksum(&entries[..len]) != header.entries_crc() {
        return Err(Error::BadEntriesCrc);
    }
    let size = header.entry_size() as usize;
    let mut out = Vec::new();
    for i in 0..header.entry_count() as usize {
        let e = &entries[i * size..i * size + ENTRY_SIZE as usize];
        let type_guid = guid_at(e, field::E_TYPE);
        if type_guid == Guid::ZERO {
            continue;
        }
        let units: Vec<u16> = e[field::E_NAME..field::E_NAME + field::E_NAME_LEN]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        out.push((
            i as u32 + 1,
            Partition {
                type_guid,
                unique_guid: guid_at(e, field::E_UNIQUE),
                first_lba: u64_at(e, field::E_FIRST),
                last_lba: u64_at(e, field::E_LAST),
                attributes: u64_at(e, field::E_ATTRS),
                name: char::decode_utf16(units)
                    .map(|c| c.unwrap_or('\u{fffd}'))
                    .collect(),
            },
        ));
    }
    Ok(out)
}

/// Where the GPT structures go on a disk of `total_sectors` sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub sector_size: u32,
    pub total_sectors: u64,
    /// Sectors of one entry array.
    pub entries_sectors: u64,
}

impl Geometry {
    pub fn new(sector_size: u32, total_sectors: u64, entry_count: u32) -> Result<Geometry, Error> {
        let bytes = entry_count as u64 * ENTRY_SIZE as u64;
        let entries_sectors = bytes.div_ceil(sector_size as u64);
        let g = Geometry {
            sector_size,
            total_sectors,
            entries_sectors,
        };
        if total_sectors < 3 + 2 * entries_sectors + 1 {
            return Err(Error::DiskTooSmall);
        }
        Ok(g)
    }
    pub fn last_lba(&self) -> u64 {
        self.total_sectors - 1
    }
    pub fn first_usable(&self) -> u64 {
        2 + self.entries_sectors
    }
    pub fn last_usable(&self) -> u64 {
        self.last_lba() - self.entries_sectors - 1
    }
    pub fn backup_entries_lba(&self) -> u64 {
        self.last_lba() - self.entries_sectors
    }
}

/// A complete GPT to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub geometry: Geometry,
    pub disk_guid: Guid,
    pub partitions: Vec<Partition>,
}

impl Table {
    /// Checks ranges, overlaps and names.
    pub fn validate(&self) -> Result<(), Error> {
        if self.partitions.len() > ENTRY_COUNT as usize {
            return Err(Error::TooMany);
        }
        let g = &self.geometry;
        for (i, p) in self.partitions.iter().enumerate() {
            if p.first_lba < g.first_usable()
                || p.last_lba > g.last_usable()
                || p.first_lba > p.last_lba
            {
                return Err(Error::BadPartition);
            }
            if p.name.encode_utf16().count() > field::E_NAME_LEN / 2 {
                return Err(Error::TooMany);
            }
            for q in &self.partitions[i + 1..] {
                if p.first_lba <= q.last_lba && q.first_lba <= p.last_lba {
                    return Err(Error::Overlap);
                }
            }
        }
        Ok(())
    }

    /// The entry array (ENTRY_COUNT entries of ENTRY_SIZE bytes).
    pub fn entries(&self) -> Vec<u8> {
        let mut out = vec![0u8; (ENTRY_COUNT * ENTRY_SIZE) as usize];
        for (i, p) in self.partitions.iter().enumerate() {
            let e = &mut out[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
            e[field::E_TYPE..field::E_TYPE + 16].copy_from_slice(&p.type_guid.0);
            e[field::E_UNIQUE..field::E_UNIQUE + 16].copy_from_slice(&p.unique_guid.0);
            e[field::E_FIRST..field::E_FIRST + 8].copy_from_slice(&p.first_lba.to_le_bytes());
            e[field::E_LAST..field::E_LAST + 8].copy_from_slice(&p.last_lba.to_le_bytes());
            e[field::E_ATTRS..field::E_ATTRS + 8].copy_from_slice(&p.attributes.to_le_bytes());
            for (j, unit) in p
                .name
                .encode_utf16()
                .take(field::E_NAME_LEN / 2)
                .enumerate()
            {
                let at = field::E_NAME + 2 * j;
                e[at..at + 2].copy_from_slice(&unit.to_le_bytes());
            }
        }
        out
    }

    /// A header sector for the copy at `my_lba` (primary: 1, backup: last).
    pub fn header(&self, primary: bool, entries_crc: u32) -> Vec<u8> {
        let g = &self.geometry;
        let (my, alternate, entries_lba) = if primary {
            (1, g.last_lba(), 2)
        } else {
            (g.last_lba(), 1, g.backup_entries_lba())
        };
        header_sector(HeaderFields {
            sector_size: g.sector_size,
            my_lba: my,
            alternate_lba: alternate,
            first_usable: g.first_usable(),
            last_usable: g.last_usable(),
            disk_guid: self.disk_guid,
            entries_lba,
            entry_count: ENTRY_COUNT,
            entry_size: ENTRY_SIZE,
            entries_crc,
        })
    }

    /// LBA 0 up to the first usable LBA: protective MBR, primary header,
    /// primary entries.
    pub fn primary_region(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let g = &self.geometry;
        let ss = g.sector_size as usize;
        let entries = self.entries();
        let crc = CRC32.checksum(&entries);
        let mut out = vec![0u8; g.first_usable() as usize * ss];
        out[..512].copy_from_slice(&mbr::protective(g.total_sectors));
        out[ss..2 * ss].copy_from_slice(&self.header(true, crc));
        out[2 * ss..2 * ss + entries.len()].copy_from_slice(&entries);
        Ok(out)
    }

    /// The backup entries and header, to be written at byte offset
    /// `backup_entries_lba * sector_size`.
    pub fn backup_region(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let g = &self.geometry;
        let ss = g.sector_size as usize;
        let entries = self.entries();
        let crc = CRC32.checksum(&entries);
        let mut out = vec![0u8; (g.entries_sectors as usize + 1) * ss];
        out[..entries.len()].copy_from_slice(&entries);
        let at = g.entries_sectors as usize * ss;
        out[at..].copy_from_slice(&self.header(false, crc));
        Ok(out)
    }
}

/// Every field of a header, for writing one.
#[derive(Debug, Clone, Copy)]
pub struct HeaderFields {
    pub sector_size: u32,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Guid,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

impl HeaderFields {
    pub fn of<T: AsRef<[u8]>>(h: &Header<T>, sector_size: u32) -> HeaderFields {
        HeaderFields {
            sector_size,
            my_lba: h.my_lba(),
            alternate_lba: h.alternate_lba(),
            first_usable: h.first_usable(),
            last_usable: h.last_usable(),
            disk_guid: h.disk_guid(),
            entries_lba: h.entries_lba(),
            entry_count: h.entry_count(),
            entry_size: h.entry_size(),
            entries_crc: h.entries_crc(),
        }
    }
}

/// One header sector with its CRC filled in.
pub fn header_sector(f: HeaderFields) -> Vec<u8> {
    let mut s = vec![0u8; f.sector_size as usize];
    s[field::SIGNATURE..8].copy_from_slice(SIGNATURE);
    s[field::REVISION..field::REVISION + 4].copy_from_slice(&REVISION_1_0.to_le_bytes());
    s[field::HEADER_SIZE..field::HEADER_SIZE + 4].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    s[field::MY_LBA..field::MY_LBA + 8].copy_from_slice(&f.my_lba.to_le_bytes());
    s[field::ALTERNATE_LBA..field::ALTERNATE_LBA + 8]
        .copy_from_slice(&f.alternate_lba.to_le_bytes());
    s[field::FIRST_USABLE..field::FIRST_USABLE + 8].copy_from_slice(&f.first_usable.to_le_bytes());
    s[field::LAST_USABLE..field::LAST_USABLE + 8].copy_from_slice(&f.last_usable.to_le_bytes());
    s[field::DISK_GUID..field::DISK_GUID + 16].copy_from_slice(&f.disk_guid.0);
    s[field::ENTRIES_LBA..field::ENTRIES_LBA + 8].copy_from_slice(&f.entries_lba.to_le_bytes());
    s[field::ENTRY_COUNT..field::ENTRY_COUNT + 4].copy_from_slice(&f.entry_count.to_le_bytes());
    s[field::ENTRY_SIZE..field::ENTRY_SIZE + 4].copy_from_slice(&f.entry_size.to_le_bytes());
    s[field::ENTRIES_CRC..field::ENTRIES_CRC + 4].copy_from_slice(&f.entries_crc.to_le_bytes());
    let crc = CRC32.checksum(&s[..HEADER_SIZE as usize]);
    s[field::HEADER_CRC..field::HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    s
}

/// CRC32 of an entry array, as stored in the header.
pub fn entries_crc(entries: &[u8]) -> u32 {
    CRC32.checksum(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::guid::types;
    use alloc::string::ToString;

    fn sample() -> Table {
        Table {
            geometry: Geometry::new(512, 2048 * 64, ENTRY_COUNT).unwrap(), // 64 MiB
            disk_guid: Guid::parse("11111111-2222-3333-4444-555555555555").unwrap(),
            partitions: vec![Partition {
                type_guid: types::LINUX_DATA,
                unique_guid: Guid::parse("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee").unwrap(),
                first_lba: 2048,
                last_lba: 4095,
                attributes: 0,
                name: "primary".to_string(),
            }],
        }
    }

    #[test]
    fn header_fields_at_their_offsets() {
        let t = sample();
        let region = t.primary_region().unwrap();
        assert_eq!(region.len(), 34 * 512);
        assert_eq!(&region[510..512], &[0x55, 0xaa]);
        assert_eq!(region[446 + 4], 0xee, "protective MBR type");
        let h = &region[512..1024];
        assert_eq!(&h[0..8], b"EFI PART");
        assert_eq!(&h[8..12], &[0, 0, 1, 0]);
        assert_eq!(&h[12..16], &[92, 0, 0, 0]);
        assert_eq!(&h[24..32], &1u64.to_le_bytes());
        assert_eq!(&h[32..40], &(131071u64).to_le_bytes());
        assert_eq!(&h[40..48], &34u64.to_le_bytes());
        assert_eq!(&h[48..56], &(131071u64 - 33).to_le_bytes());
        // Disk GUID 11111111-2222-3333-4444-555555555555, mixed endian.
        assert_eq!(
            &h[56..72],
            &[
                0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55,
                0x55, 0x55
            ]
        );
        assert_eq!(&h[72..80], &2u64.to_le_bytes());
        assert_eq!(&h[80..84], &128u32.to_le_bytes());
        assert_eq!(&h[84..88], &128u32.to_le_bytes());
        let e = &region[1024..1024 + 128];
        assert_eq!(&e[0..4], &[0xaf, 0x3d, 0xc6, 0x0f]);
        assert_eq!(&e[32..40], &2048u64.to_le_bytes());
        assert_eq!(&e[40..48], &4095u64.to_le_bytes());
        assert_eq!(
            &e[56..70],
            "primary"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<_>>()
                .as_slice()
        );
    }

    #[test]
    fn written_tables_read_back_with_checked_crcs() {
        let t = sample();
        let region = t.primary_region().unwrap();
        let h = Header::new_checked(&region[512..1024]).unwrap();
        assert_eq!(h.disk_guid(), t.disk_guid);
        let parts = parse_entries(&h, &region[1024..]).unwrap();
        assert_eq!(parts, vec![(1, t.partitions[0].clone())]);

        let backup = t.backup_region().unwrap();
        let bh = Header::new_checked(&backup[32 * 512..]).unwrap();
        assert_eq!(bh.my_lba(), 131071);
        assert_eq!(bh.alternate_lba(), 1);
        assert_eq!(bh.entries_lba(), 131071 - 32);
        assert_eq!(parse_entries(&bh, &backup).unwrap().len(), 1);
    }

    #[test]
    fn corruption_is_detected() {
        let region = sample().primary_region().unwrap();
        let mut bad = region.clone();
        bad[512 + 40] ^= 1;
        assert_eq!(
            Header::new_checked(&bad[512..1024]).err(),
            Some(Error::BadHeaderCrc)
        );
        let mut bad = region.clone();
        bad[512] = b'X';
        assert_eq!(
            Header::new_checked(&bad[512..1024]).err(),
            Some(Error::BadSignature)
        );
        let mut bad = region.clone();
        bad[1024 + 40] ^= 1;
        let h = Header::new_checked(&region[512..1024]).unwrap();
        assert_eq!(
            parse_entries(&h, &bad[1024..]).err(),
            Some(Error::BadEntriesCrc)
        );
        assert_eq!(
            parse_entries(&h, &region[1024..2000]).err(),
            Some(Error::Truncated)
        );
        for len in 0..92 {
            assert!(Header::new_checked(&region[512..512 + len]).is_err());
        }
    }

    #[test]
    fn invalid_layouts_are_refused() {
        let mut t = sample();
        t.partitions[0].first_lba = 10;
        assert_eq!(t.primary_region().err(), Some(Error::BadPartition));
        let mut t = sample();
        let mut second = t.partitions[0].clone();
        second.first_lba = 4000;
        second.last_lba = 5000;
        t.partitions.push(second);
        assert_eq!(t.validate(), Err(Error::Overlap));
        let mut t = sample();
        t.partitions[0].last_lba = 131071 - 32;
        assert_eq!(t.validate(), Err(Error::BadPartition));
        assert_eq!(Geometry::new(512, 60, 128).err(), Some(Error::DiskTooSmall));
    }

    #[test]
    fn four_k_sectors_use_four_entry_sectors() {
        let g = Geometry::new(4096, 16384, ENTRY_COUNT).unwrap(); // 64 MiB
        assert_eq!(g.entries_sectors, 4);
        assert_eq!(g.first_usable(), 6);
        assert_eq!(g.last_usable(), 16383 - 5);
    }
}

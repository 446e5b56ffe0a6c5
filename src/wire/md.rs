//! Linux software RAID (md) metadata 1.x: the superblock mdadm's `super1.c`
//! writes and the kernel's `md_p.h` (`struct mdp_superblock_1`) reads. One
//! superblock per member: 256 bytes of array and device fields, then a
//! 16-bit role for each of `max_dev` device numbers, checksummed.
//!
//! Where it sits on a member of `n` sectors: 1.0 at the end (`(n - 16) & !7`,
//! so firmware reading the member sees the data from sector 0: the mirrored
//! ESP), 1.1 at sector 0, 1.2 at sector 8 (4 KiB, mdadm's default). The old
//! 0.90 format, which the kernel autodetects, sits in the last 64 KiB; rivet
//! never writes it but erases it ([`v090_offset`]; its magic is the same,
//! in the writer's byte order).

use alloc::string::String;
use core::fmt;

pub const MAGIC: u32 = 0xa92b_4efc;
/// Bytes rivet writes and reads for a superblock: the kernel reads one
/// 4 KiB block, so `256 + 2 * max_dev` must fit in it.
pub const LEN: usize = 4096;
/// The largest `max_dev` that fits in [`LEN`] (the kernel's own bound).
pub const MAX_DEV: u32 = (LEN as u32 - 256) / 2;
/// `dev_roles` values that are not a slot in the array.
pub const ROLE_SPARE: u16 = 0xffff;
pub const ROLE_FAULTY: u16 = 0xfffe;
/// `resync_offset` of an array known to be in sync (the kernel's MaxSector).
pub const IN_SYNC: u64 = u64::MAX;

// Field offsets of struct mdp_superblock_1.
const MAGIC_AT: usize = 0;
const MAJOR_AT: usize = 4;
const FEATURE_MAP_AT: usize = 8;
const SET_UUID_AT: usize = 16;
const SET_NAME_AT: usize = 32;
const SET_NAME_LEN: usize = 32;
const CTIME_AT: usize = 64;
const LEVEL_AT: usize = 72;
const LAYOUT_AT: usize = 76;
const SIZE_AT: usize = 80;
const CHUNK_AT: usize = 88;
const RAID_DISKS_AT: usize = 92;
const DATA_OFFSET_AT: usize = 128;
const DATA_SIZE_AT: usize = 136;
const SUPER_OFFSET_AT: usize = 144;
const DEV_NUMBER_AT: usize = 160;
const DEVICE_UUID_AT: usize = 168;
const UTIME_AT: usize = 192;
const EVENTS_AT: usize = 200;
const RESYNC_OFFSET_AT: usize = 208;
const CSUM_AT: usize = 216;
const MAX_DEV_AT: usize = 220;
const ROLES_AT: usize = 256;

/// Where the 0.90 superblock of a member of `sectors` sectors starts, in
/// sectors (MD_NEW_SIZE_SECTORS: the last 64 KiB-aligned 64 KiB).
pub fn v090_offset(sectors: u64) -> Option<u64> {
    (sectors & !127).checked_sub(128)
}

/// The three 1.x placements (the minor version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// At the end of the member: data starts at sector 0.
    V1_0,
    /// At sector 0.
    V1_1,
    /// At sector 8 (4 KiB from the start).
    V1_2,
}

impl Version {
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    pub fn minor(self) -> u32 {
        match self {
            Version::V1_0 => 0,
            Version::V1_1 => 1,
            Version::V1_2 => 2,
        }
    }

    /// The superblock's sector on a member of `sectors` sectors; None when
    /// the member is too small to hold one.
    pub fn offset(self, sectors: u64) -> Option<u64> {
        match self {
            Version::V1_0 => Some(sectors.checked_sub(16)? & !7),
            Version::V1_1 => (sectors >= 8).then_some(0),
            Version::V1_2 => (sectors >= 16).then_some(8),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor())
    }
}

/// RAID levels rivet builds, with the kernel's level numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Raid0,
    Raid1,
    Raid10,
    Raid5,
    Raid6,
}

impl Level {
    pub fn number(self) -> i32 {
        match self {
            Level::Raid0 => 0,
            Level::Raid1 => 1,
            Level::Raid10 => 10,
            Level::Raid5 => 5,
            Level::Raid6 => 6,
        }
    }

    pub fn from_number(n: i32) -> Option<Level> {
        Some(match n {
            0 => Level::Raid0,
            1 => Level::Raid1,
            10 => Level::Raid10,
            5 => Level::Raid5,
            6 => Level::Raid6,
            _ => return None,
        })
    }

    /// The kernel module that runs the level (md's personalities).
    pub fn module(self) -> &'static str {
        match self {
            Level::Raid0 => "raid0",
            Level::Raid1 => "raid1",
            Level::Raid10 => "raid10",
            Level::Raid5 | Level::Raid6 => "raid456",
        }
    }

    /// The fewest members the level runs with.
    pub fn min_members(self) -> usize {
        match self {
            Level::Raid0 | Level::Raid1 | Level::Raid10 => 2,
            Level::Raid5 => 3,
            Level::Raid6 => 4,
        }
    }

    /// Whether an array of `members` runs with only `found` of them (as
    /// mdadm --assemble starts a degraded array): RAID 1 on any one, RAID
    /// 10 (two near copies) on half, RAID 5 missing one, RAID 6 two, RAID 0
    /// on all.
    pub fn runs_with(self, members: u32, found: u32) -> bool {
        let missing = members.saturating_sub(found);
        found > 0
            && match self {
                Level::Raid0 => missing == 0,
                Level::Raid1 => true,
                Level::Raid10 => found * 2 >= members,
                Level::Raid5 => missing <= 1,
                Level::Raid6 => missing <= 2,
            }
    }

    /// mdadm's default layout: RAID10 "n2" (two near copies), RAID5/6
    /// left-symmetric; 0 for the others.
    pub fn default_layout(self) -> u32 {
        match self {
            Level::Raid10 => 0x102,
            Level::Raid5 | Level::Raid6 => 2,
            Level::Raid0 | Level::Raid1 => 0,
        }
    }

    /// mdadm's default chunk (512 KiB) in sectors; RAID1 has none.
    pub fn default_chunk(self) -> u32 {
        match self {
            Level::Raid1 => 0,
            _ => 1024,
        }
    }

    /// Sectors of array from `members` members of `component` sectors each
    /// (RAID10 in the default two-copy layout).
    pub fn array_sectors(self, members: usize, component: u64) -> u64 {
        let n = members as u64;
        match self {
            Level::Raid0 => n * component,
            Level::Raid1 => component,
            Level::Raid10 => n * component / 2,
            Level::Raid5 => n.saturating_sub(1) * component,
            Level::Raid6 => n.saturating_sub(2) * component,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raid{}", self.number())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadMagic,
    /// Only metadata major version 1 is read here.
    NotVersion1(u32),
    /// More device roles than fit in 4 KiB.
    TooManyDevices(u32),
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    /// The superblock says it lives elsewhere than where it was read.
    Misplaced {
        stored: u64,
        read_at: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "md superblock shorter than its {} byte head", ROLES_AT),
            Error::BadMagic => write!(f, "no md superblock (magic {MAGIC:#x} not found)"),
            Error::NotVersion1(v) => write!(f, "md metadata major version {v}, expected 1"),
            Error::TooManyDevices(n) => {
                write!(f, "md superblock lists {n} devices (at most {MAX_DEV})")
            }
            Error::BadChecksum { stored, computed } => write!(
                f,
                "md superblock checksum {stored:#010x}, computed {computed:#010x}"
            ),
            Error::Misplaced { stored, read_at } => write!(
                f,
                "md superblock read at sector {read_at} says it is at sector {stored}"
            ),
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// super1.c's calc_sb_1_csum: the 32-bit little-endian words of the first
/// `256 + 2 * max_dev` bytes with the checksum field as zero, summed into 64
/// bits and folded once. `b` must hold those bytes.
fn checksum(b: &[u8], max_dev: u32) -> u32 {
    let len = ROLES_AT + 2 * max_dev as usize;
    let mut sum: u64 = 0;
    let mut words = b[..len].chunks_exact(4);
    for (i, w) in (&mut words).enumerate() {
        if i * 4 != CSUM_AT {
            sum += u64::from(le32(w, 0));
        }
    }
    if let [lo, hi] = words.remainder() {
        sum += u64::from(u16::from_le_bytes([*lo, *hi]));
    }
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

/// A checked view of a 1.x superblock.
pub struct Superblock<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Superblock<T> {
    /// Checks magic, version, the role table's size and the checksum.
    pub fn new_checked(buf: T) -> Result<Self, Error> {
        let b = buf.as_ref();
        if b.len() < ROLES_AT {
            return Err(Error::Truncated);
        }
        if le32(b, MAGIC_AT) != MAGIC {
            return Err(Error::BadMagic);
        }
        match le32(b, MAJOR_AT) {
            1 => {}
            v => return Err(Error::NotVersion1(v)),
        }
        let max_dev = le32(b, MAX_DEV_AT);
        if max_dev > MAX_DEV {
            return Err(Error::TooManyDevices(max_dev));
        }
        if b.len() < ROLES_AT + 2 * max_dev as usize {
            return Err(Error::Truncated);
        }
        let (stored, computed) = (le32(b, CSUM_AT), checksum(b, max_dev));
        if stored != computed {
            return Err(Error::BadChecksum { stored, computed });
        }
        Ok(Superblock { buf })
    }

    /// Also checks that the superblock is the one for the sector it was
    /// read from (as the kernel does): a 1.2 superblock copied elsewhere is
    /// not a member's.
    pub fn new_checked_at(buf: T, read_at: u64) -> Result<Self, Error> {
        let sb = Self::new_checked(buf)?;
        match sb.super_offset() {
            s if s == read_at => Ok(sb),
            stored => Err(Error::Misplaced { stored, read_at }),
        }
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn feature_map(&self) -> u32 {
        le32(self.b(), FEATURE_MAP_AT)
    }
    pub fn set_uuid(&self) -> [u8; 16] {
        self.b()[SET_UUID_AT..SET_UUID_AT + 16]
            .try_into()
            .unwrap_or_default()
    }
    /// The array name up to its first NUL (mdadm's `host:name` as written).
    pub fn name(&self) -> &[u8] {
        let raw = &self.b()[SET_NAME_AT..SET_NAME_AT + SET_NAME_LEN];
        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        &raw[..end]
    }
    pub fn ctime(&self) -> u64 {
        le64(self.b(), CTIME_AT)
    }
    pub fn level(&self) -> i32 {
        le32(self.b(), LEVEL_AT) as i32
    }
    pub fn layout(&self) -> u32 {
        le32(self.b(), LAYOUT_AT)
    }
    /// Sectors of each member the array uses.
    pub fn size(&self) -> u64 {
        le64(self.b(), SIZE_AT)
    }
    pub fn chunk_sectors(&self) -> u32 {
        le32(self.b(), CHUNK_AT)
    }
    pub fn raid_disks(&self) -> u32 {
        le32(self.b(), RAID_DISKS_AT)
    }
    pub fn data_offset(&self) -> u64 {
        le64(self.b(), DATA_OFFSET_AT)
    }
    pub fn data_size(&self) -> u64 {
        le64(self.b(), DATA_SIZE_AT)
    }
    pub fn super_offset(&self) -> u64 {
        le64(self.b(), SUPER_OFFSET_AT)
    }
    pub fn dev_number(&self) -> u32 {
        le32(self.b(), DEV_NUMBER_AT)
    }
    pub fn device_uuid(&self) -> [u8; 16] {
        self.b()[DEVICE_UUID_AT..DEVICE_UUID_AT + 16]
            .try_into()
            .unwrap_or_default()
    }
    pub fn events(&self) -> u64 {
        le64(self.b(), EVENTS_AT)
    }
    pub fn resync_offset(&self) -> u64 {
        le64(self.b(), RESYNC_OFFSET_AT)
    }
    pub fn max_dev(&self) -> u32 {
        le32(self.b(), MAX_DEV_AT)
    }
    /// The role of device number `dev`: its slot, [`ROLE_SPARE`] or
    /// [`ROLE_FAULTY`]; None past `max_dev`.
    pub fn role(&self, dev: u32) -> Option<u16> {
        if dev >= self.max_dev() {
            return None;
        }
        let at = ROLES_AT + 2 * dev as usize;
        Some(u16::from_le_bytes([self.b()[at], self.b()[at + 1]]))
    }
    /// This member's slot in the array, if it has one.
    pub fn slot(&self) -> Option<u16> {
        self.role(self.dev_number()).filter(|&r| r < ROLE_FAULTY)
    }
}

/// What is the same on every member of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array {
    pub version: Version,
    pub set_uuid: [u8; 16],
    /// At most 32 bytes (the field's size).
    pub name: String,
    pub level: Level,
    pub members: u32,
    /// Sectors of each member the array uses (a multiple of the chunk).
    pub component_sectors: u64,
    /// Seconds since the epoch (creation and update time).
    pub time: u64,
    /// Where resync starts: 0 for a new redundant array (the kernel mirrors
    /// it in the background, as after `mdadm --create`), [`IN_SYNC`] for one
    /// known to be in sync.
    pub resync_offset: u64,
}

/// What differs per member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Slot in the array (also its device number).
    pub slot: u32,
    pub device_uuid: [u8; 16],
    /// Sectors of the member (partition).
    pub sectors: u64,
    /// Where its data starts, in sectors.
    pub data_offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// The member cannot hold the superblock and the component.
    MemberTooSmall { slot: u32, sectors: u64, needs: u64 },
    /// More members than a superblock can list.
    TooManyMembers(u32),
    /// A slot outside 0..members.
    BadSlot(u32),
    /// Names are at most 32 bytes.
    NameTooLong,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MemberTooSmall {
                slot,
                sectors,
                needs,
            } => write!(
                f,
                "md member {slot} has {sectors} sectors, the array needs {needs}"
            ),
            BuildError::TooManyMembers(n) => write!(f, "{n} md members (at most {MAX_DEV})"),
            BuildError::BadSlot(s) => write!(f, "md member slot {s} is not in the array"),
            BuildError::NameTooLong => write!(f, "md array name longer than {SET_NAME_LEN} bytes"),
        }
    }
}

/// Sectors a member has for data after its superblock and data offset.
pub fn data_sectors(version: Version, sectors: u64, data_offset: u64) -> Option<u64> {
    let sb = version.offset(sectors)?;
    match version {
        Version::V1_0 => Some(sb),
        _ => sectors.checked_sub(data_offset),
    }
}

/// The 4 KiB superblock of `member` in `array`.
pub fn build(array: &Array, member: &Member) -> Result<[u8; LEN], BuildError> {
    if array.members > MAX_DEV {
        return Err(BuildError::TooManyMembers(array.members));
    }
    if member.slot >= array.members {
        return Err(BuildError::BadSlot(member.slot));
    }
    if array.name.len() > SET_NAME_LEN {
        return Err(BuildError::NameTooLong);
    }
    let too_small = BuildError::MemberTooSmall {
        slot: member.slot,
        sectors: member.sectors,
        needs: array.component_sectors.saturating_add(member.data_offset),
    };
    let super_offset = array.version.offset(member.sectors).ok_or(too_small)?;
    let data_size =
        data_sectors(array.version, member.sectors, member.data_offset).ok_or(too_small)?;
    if data_size < array.component_sectors
        || (array.version != Version::V1_0 && member.data_offset < super_offset.saturating_add(8))
    {
        return Err(too_small);
    }
    let mut b = [0u8; LEN];
    let put32 =
        |b: &mut [u8; LEN], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |b: &mut [u8; LEN], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut b, MAGIC_AT, MAGIC);
    put32(&mut b, MAJOR_AT, 1);
    b[SET_UUID_AT..SET_UUID_AT + 16].copy_from_slice(&array.set_uuid);
    b[SET_NAME_AT..SET_NAME_AT + array.name.len()].copy_from_slice(array.name.as_bytes());
    put64(&mut b, CTIME_AT, array.time);
    put32(&mut b, LEVEL_AT, array.level.number() as u32);
    put32(&mut b, LAYOUT_AT, array.level.default_layout());
    put64(&mut b, SIZE_AT, array.component_sectors);
    put32(&mut b, CHUNK_AT, array.level.default_chunk());
    put32(&mut b, RAID_DISKS_AT, array.members);
    put64(&mut b, DATA_OFFSET_AT, member.data_offset);
    put64(&mut b, DATA_SIZE_AT, data_size);
    put64(&mut b, SUPER_OFFSET_AT, super_offset);
    put32(&mut b, DEV_NUMBER_AT, member.slot);
    b[DEVICE_UUID_AT..DEVICE_UUID_AT + 16].copy_from_slice(&member.device_uuid);
    put64(&mut b, UTIME_AT, array.time);
    put64(&mut b, EVENTS_AT, 1);
    put64(&mut b, RESYNC_OFFSET_AT, array.resync_offset);
    put32(&mut b, MAX_DEV_AT, array.members);
    for slot in 0..array.members as usize {
        let at = ROLES_AT + 2 * slot;
        b[at..at + 2].copy_from_slice(&(slot as u16).to_le_bytes());
    }
    let sum = checksum(&b, array.members);
    put32(&mut b, CSUM_AT, sum);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(version: Version, level: Level, members: u32, component: u64) -> Array {
        Array {
            version,
            set_uuid: *b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10",
            name: "md0".into(),
            level,
            members,
            component_sectors: component,
            time: 0x6720_0000,
            resync_offset: 0,
        }
    }

    fn member(slot: u32, sectors: u64, data_offset: u64) -> Member {
        Member {
            slot,
            device_uuid: [0x11 * (slot as u8 + 1); 16],
            sectors,
            data_offset,
        }
    }

    #[test]
    fn a_v1_2_raid1_member_has_the_fields_at_mdp_superblock_1s_offsets() {
        let a = array(Version::V1_2, Level::Raid1, 2, 2_095_104);
        let b = build(&a, &member(1, 2_097_152, 2048)).unwrap();
        assert_eq!(&b[0..8], &[0xfc, 0x4e, 0x2b, 0xa9, 1, 0, 0, 0]);
        assert_eq!(&b[16..20], &[0x01, 0x23, 0x45, 0x67]);
        assert_eq!(&b[32..36], b"md0\0");
        assert_eq!(&b[72..76], &[1, 0, 0, 0]); // level
        assert_eq!(&b[80..88], &2_095_104u64.to_le_bytes()); // size
        assert_eq!(&b[92..96], &[2, 0, 0, 0]); // raid_disks
        assert_eq!(&b[128..136], &[0, 8, 0, 0, 0, 0, 0, 0]); // data_offset 2048
        assert_eq!(&b[136..144], &(2_097_152u64 - 2048).to_le_bytes()); // data_size
        assert_eq!(&b[144..152], &[8, 0, 0, 0, 0, 0, 0, 0]); // super_offset
        assert_eq!(&b[160..164], &[1, 0, 0, 0]); // dev_number
        assert_eq!(&b[220..224], &[2, 0, 0, 0]); // max_dev
        assert_eq!(&b[256..262], &[0, 0, 1, 0, 0, 0]); // roles 0, 1, then nothing
                                                       // The checksum by hand: every other word summed, folded.
        let mut sum: u64 = 0;
        for at in (0..260).step_by(4).filter(|&at| at != 216) {
            sum += u64::from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()));
        }
        let folded = ((sum & 0xffff_ffff) + (sum >> 32)) as u32;
        assert_eq!(&b[216..220], &folded.to_le_bytes());
        let sb = Superblock::new_checked_at(&b[..], 8).unwrap();
        assert_eq!((sb.level(), sb.raid_disks(), sb.slot()), (1, 2, Some(1)));
        assert_eq!(sb.name(), b"md0");
        assert_eq!(sb.size(), 2_095_104);
    }

    #[test]
    fn versions_place_the_superblock_as_mdadm_does() {
        // 1 GiB + 5 sectors: 1.0 rounds down to a 4 KiB boundary 8 KiB from the end.
        let n = 2_097_152 + 5;
        assert_eq!(Version::V1_0.offset(n), Some(2_097_136));
        assert_eq!(Version::V1_1.offset(n), Some(0));
        assert_eq!(Version::V1_2.offset(n), Some(8));
        assert_eq!(Version::V1_0.offset(15), None);
        assert_eq!(v090_offset(2_097_152 + 100), Some(2_097_152 - 128));
        assert_eq!(v090_offset(100), None);
        // 1.0: data from sector 0 up to the superblock.
        let a = array(Version::V1_0, Level::Raid1, 2, 1_126_400 - 16);
        let b = build(&a, &member(0, 1_126_400, 0)).unwrap();
        let sb = Superblock::new_checked_at(&b[..], 1_126_400 - 16).unwrap();
        assert_eq!((sb.data_offset(), sb.data_size()), (0, 1_126_384));
    }

    #[test]
    fn the_level_decides_layout_chunk_and_size() {
        assert_eq!(Level::Raid10.array_sectors(4, 1000), 2000);
        assert_eq!(Level::Raid5.array_sectors(3, 1000), 2000);
        assert_eq!(Level::Raid6.array_sectors(4, 1000), 2000);
        assert_eq!(Level::Raid0.array_sectors(3, 1000), 3000);
        let a = array(Version::V1_2, Level::Raid10, 4, 1024 * 100);
        let b = build(&a, &member(3, 1024 * 200, 2048)).unwrap();
        assert_eq!(&b[76..80], &[0x02, 0x01, 0, 0]); // n2
        assert_eq!(&b[88..92], &[0, 4, 0, 0]); // 1024 sectors
        assert_eq!(Level::from_number(10), Some(Level::Raid10));
        // Degraded arrays that still run, and those that do not.
        assert!(Level::Raid1.runs_with(2, 1) && !Level::Raid1.runs_with(2, 0));
        assert!(Level::Raid5.runs_with(3, 2) && !Level::Raid5.runs_with(4, 2));
        assert!(Level::Raid6.runs_with(4, 2) && !Level::Raid6.runs_with(4, 1));
        assert!(Level::Raid10.runs_with(4, 2) && !Level::Raid10.runs_with(4, 1));
        assert!(Level::Raid0.runs_with(3, 3) && !Level::Raid0.runs_with(3, 2));
        assert_eq!(Level::from_number(4), None);
    }

    #[test]
    fn refuses_damaged_or_foreign_superblocks() {
        let a = array(Version::V1_2, Level::Raid1, 2, 4096);
        let good = build(&a, &member(0, 8192, 2048)).unwrap();
        assert_eq!(
            Superblock::new_checked(&good[..100]).err(),
            Some(Error::Truncated)
        );
        let mut bad = good;
        bad[0] = 0;
        assert_eq!(
            Superblock::new_checked(&bad[..]).err(),
            Some(Error::BadMagic)
        );
        let mut bad = good;
        bad[4] = 0; // a 0.90 superblock's major version
        assert_eq!(
            Superblock::new_checked(&bad[..]).err(),
            Some(Error::NotVersion1(0))
        );
        let mut bad = good;
        bad[40] ^= 1;
        assert!(matches!(
            Superblock::new_checked(&bad[..]),
            Err(Error::BadChecksum { .. })
        ));
        let mut bad = good;
        bad[220..224].copy_from_slice(&5000u32.to_le_bytes());
        assert_eq!(
            Superblock::new_checked(&bad[..]).err(),
            Some(Error::TooManyDevices(5000))
        );
        // Head and roles shorter than max_dev says.
        assert_eq!(
            Superblock::new_checked(&good[..257]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Superblock::new_checked_at(&good[..], 0).err(),
            Some(Error::Misplaced {
                stored: 8,
                read_at: 0
            })
        );
    }

    #[test]
    fn refuses_members_that_cannot_hold_the_array() {
        let a = array(Version::V1_2, Level::Raid1, 2, 4096);
        assert!(matches!(
            build(&a, &member(0, 4096, 2048)),
            Err(BuildError::MemberTooSmall { .. })
        ));
        // Data over the superblock.
        assert!(matches!(
            build(&a, &member(0, 8192, 8)),
            Err(BuildError::MemberTooSmall { .. })
        ));
        assert_eq!(
            build(&a, &member(2, 8192, 2048)),
            Err(BuildError::BadSlot(2))
        );
        let mut long = a.clone();
        long.name = "a-name-of-thirty-three-bytes-long".into();
        assert_eq!(
            build(&long, &member(0, 8192, 2048)),
            Err(BuildError::NameTooLong)
        );
        let big = array(Version::V1_2, Level::Raid0, 5000, 4096);
        assert_eq!(
            build(&big, &member(0, 8192, 2048)),
            Err(BuildError::TooManyMembers(5000))
        );
    }
}

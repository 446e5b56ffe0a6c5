//! The on-disk half of a software RAID, over `io::BlockDevice`: a holder's
//! new table with its RAID partitions, each member's superblock written at
//! its partition's offset on the holder, and superblocks found and erased
//! (every placement: 1.0, 1.1, 1.2 and the old 0.90) as
//! `mdadm --zero-superblock` does before a holder is wiped.

use super::Span;
use crate::deploy::{table, Env, Error};
use crate::io::{BlockDevice, IoError};
use crate::layout::{Layout, Part, Role, MIB};
use crate::plan::{BootMode, Label};
use crate::stream::AlignedBuf;
use crate::wire::guid::types;
use crate::wire::md::{self, Version};
use alloc::vec::Vec;

const SECTOR: u64 = 512;

/// Writes a holder's table: every old signature at the ends of the old and
/// new partitions wiped first, then the RAID partitions of `spans` (GPT
/// entries named "primary", Linux filesystem type, as parted's `mkpart
/// primary` leaves them; msdos type 0x83).
pub fn write_table(
    dev: &mut dyn BlockDevice,
    env: &mut dyn Env,
    boot: BootMode,
    label: Label,
    spans: &[Span],
) -> Result<table::Written, Error> {
    let sectors_per_mib = MIB / SECTOR;
    let parts = spans
        .iter()
        .enumerate()
        .map(|(i, s)| Part {
            role: Role::Root,
            number: i as u32 + 1,
            start_mib: s.start / sectors_per_mib,
            size_mib: (s.end - s.start) / sectors_per_mib,
            gpt_type: types::LINUX_DATA,
            mbr_type: 0x83,
            bootable: false,
        })
        .collect();
    let layout = Layout {
        label,
        boot_mode: boot,
        parts,
    };
    let existing = table::read_existing(dev)?;
    let new: Vec<(u64, u64)> = layout.parts.iter().map(|p| (p.offset(), p.len())).collect();
    let zeros = AlignedBuf::new(MIB as usize, dev.logical_block().max(512) as usize);
    // The members' old superblocks first: a new partition at an old one's
    // place would otherwise bring an old array back.
    for (offset, len) in existing
        .iter()
        .flat_map(|e| e.parts.iter().map(|p| (p.offset, p.len)))
        .chain(new.iter().copied())
    {
        erase(dev, offset, len)
            .map_err(|e| Error::device(dev, "erase md superblock", offset, e))?;
    }
    table::wipe(dev, zeros.as_slice(), existing.as_ref(), &new)?;
    let written = table::write_layout(dev, env, &layout)?;
    dev.flush().map_err(|e| Error::device(dev, "flush", 0, e))?;
    Ok(written)
}

/// mdadm's data offset for a 1.2 member of `sectors`: 128 MiB of headroom
/// (room for a later reshape), halved while it is more than 1/1024 of the
/// member, never under 1 MiB.
pub fn data_offset(sectors: u64) -> u64 {
    let mut headroom: u64 = 128 * 2048;
    while headroom > 2048 && (headroom << 10) > sectors {
        headroom >>= 1;
    }
    headroom
}

/// The sectors of each member an array uses: the smallest member's data
/// area, down to a whole chunk (RAID 1: 64 KiB, as mdadm rounds).
pub fn component_sectors(array: &md::Array, members: &[u64], data_offset: u64) -> Option<u64> {
    let smallest = members
        .iter()
        .map(|&s| md::data_sectors(array.version, s, data_offset))
        .min()??;
    let unit = match array.level.default_chunk() {
        0 => 128,
        c => u64::from(c),
    };
    let size = smallest / unit * unit;
    (size > 0).then_some(size)
}

/// Writes the superblock of slot `slot` onto a member that is the
/// partition at `offset` (bytes), `sectors` long, of `dev`.
pub fn write_member(
    dev: &mut dyn BlockDevice,
    offset: u64,
    sectors: u64,
    array: &md::Array,
    slot: u32,
    device_uuid: [u8; 16],
    data_offset: u64,
) -> Result<(), Error> {
    let member = md::Member {
        slot,
        device_uuid,
        sectors,
        data_offset,
    };
    let sb = md::build(array, &member).map_err(|e| Error::Refused(alloc::format!("{e}")))?;
    let at = array
        .version
        .offset(sectors)
        .ok_or_else(|| Error::Refused("md member too small".into()))?;
    let byte = offset + at * SECTOR;
    dev.write_at(byte, &sb)
        .map_err(|e| Error::device(dev, "write md superblock", byte, e))
}

/// The 1.x superblock of the member at `offset`, `len` bytes, if it has a
/// valid one (checked where the kernel looks: 1.1, 1.2, then 1.0).
pub fn find(
    dev: &mut dyn BlockDevice,
    offset: u64,
    len: u64,
) -> Result<Option<(Version, [u8; md::LEN])>, IoError> {
    let sectors = len / SECTOR;
    let mut buf = [0u8; md::LEN];
    for version in [Version::V1_1, Version::V1_2, Version::V1_0] {
        let Some(at) = version.offset(sectors) else {
            continue;
        };
        if at * SECTOR + md::LEN as u64 > len {
            continue;
        }
        dev.read_at(offset + at * SECTOR, &mut buf)?;
        if md::Superblock::new_checked_at(&buf[..], at).is_ok() {
            return Ok(Some((version, buf)));
        }
    }
    Ok(None)
}

/// Zeroes every md superblock of the member at `offset`, `len` bytes: any
/// 4 KiB at a 1.x or 0.90 place that starts with md's magic (in either
/// byte order: 0.90 is written in the host's). Returns how many it zeroed.
pub fn erase(dev: &mut dyn BlockDevice, offset: u64, len: u64) -> Result<usize, IoError> {
    let sectors = len / SECTOR;
    let mut places: Vec<u64> = Version::ALL
        .iter()
        .filter_map(|v| v.offset(sectors))
        .collect();
    places.extend(md::v090_offset(sectors));
    places.sort_unstable();
    places.dedup();
    let mut buf = [0u8; md::LEN];
    let mut zeroed = 0;
    for at in places {
        let byte = offset + at * SECTOR;
        if at * SECTOR + md::LEN as u64 > len || byte % u64::from(dev.logical_block()) != 0 {
            continue;
        }
        dev.read_at(byte, &mut buf)?;
        let magic = [buf[0], buf[1], buf[2], buf[3]];
        if u32::from_le_bytes(magic) == md::MAGIC || u32::from_be_bytes(magic) == md::MAGIC {
            dev.write_at(byte, &[0u8; md::LEN])?;
            zeroed += 1;
        }
    }
    Ok(zeroed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::testing::ScriptedEnv;
    use crate::io::MemDisk;
    use crate::raid::{holder_spans, Size};

    fn array(version: Version) -> md::Array {
        md::Array {
            version,
            set_uuid: [9; 16],
            name: "root".into(),
            level: md::Level::Raid1,
            members: 2,
            component_sectors: 0,
            time: 1,
            resync_offset: 0,
        }
    }

    #[test]
    fn two_holders_become_a_mirror_whose_superblocks_are_found_and_erased() {
        let size = 4u64 << 30;
        let mut env = ScriptedEnv::default();
        let mut disks = [MemDisk::new(size, 512), MemDisk::new(size, 512)];
        let spans = holder_spans(
            size / 512,
            BootMode::Uefi,
            Label::Gpt,
            &[Size::Gib(2), Size::Max],
        )
        .unwrap();
        let mut a = array(Version::V1_2);
        let offset = data_offset(spans[0].end - spans[0].start);
        assert_eq!(offset, 2048, "1.4 GiB member: 1 MiB of headroom");
        let lens: Vec<u64> = [0, 1]
            .iter()
            .map(|_| spans[0].end - spans[0].start)
            .collect();
        a.component_sectors = component_sectors(&a, &lens, offset).unwrap();
        for (slot, d) in disks.iter_mut().enumerate() {
            write_table(d, &mut env, BootMode::Uefi, Label::Gpt, &spans).unwrap();
            let t = table::read_existing(d).unwrap().unwrap();
            assert_eq!(t.label, Label::Gpt);
            assert_eq!(t.parts[0].offset, 551 * MIB);
            assert_eq!(t.parts[1].offset + t.parts[1].len, size - MIB);
            write_member(
                d,
                t.parts[0].offset,
                lens[0],
                &a,
                slot as u32,
                [slot as u8; 16],
                offset,
            )
            .unwrap();
        }
        for (slot, d) in disks.iter_mut().enumerate() {
            let (version, sb) = find(d, 551 * MIB, lens[0] * 512).unwrap().unwrap();
            assert_eq!(version, Version::V1_2);
            let sb = md::Superblock::new_checked(&sb[..]).unwrap();
            assert_eq!(sb.slot(), Some(slot as u16));
            assert_eq!(sb.name(), b"root");
            assert_eq!(sb.data_offset(), 2048);
            assert_eq!(sb.size() % 128, 0);
            // Nothing on the second partition.
            assert_eq!(
                find(
                    d,
                    spans[1].start * 512,
                    (spans[1].end - spans[1].start) * 512
                )
                .unwrap(),
                None
            );
        }
        // A new table over the old one takes the old superblocks with it.
        write_table(&mut disks[0], &mut env, BootMode::Uefi, Label::Gpt, &spans).unwrap();
        assert_eq!(find(&mut disks[0], 551 * MIB, lens[0] * 512).unwrap(), None);
        assert!(find(&mut disks[1], 551 * MIB, lens[0] * 512)
            .unwrap()
            .is_some());
        assert_eq!(erase(&mut disks[1], 551 * MIB, lens[0] * 512).unwrap(), 1);
        assert_eq!(find(&mut disks[1], 551 * MIB, lens[0] * 512).unwrap(), None);
    }

    #[test]
    fn a_1_0_member_keeps_its_data_at_sector_0_and_0_90_is_erased_too() {
        let mut d = MemDisk::new(64 << 20, 512);
        let mut a = array(Version::V1_0);
        let sectors = (32 << 20) / 512;
        a.component_sectors = component_sectors(&a, &[sectors], 0).unwrap();
        write_member(&mut d, 16 << 20, sectors, &a, 0, [1; 16], 0).unwrap();
        let (v, sb) = find(&mut d, 16 << 20, 32 << 20).unwrap().unwrap();
        assert_eq!(v, Version::V1_0);
        let sb = md::Superblock::new_checked(&sb[..]).unwrap();
        assert_eq!((sb.data_offset(), sb.super_offset()), (0, sectors - 16));
        // A 0.90 superblock (host order) at its place, 64 KiB from the end.
        let at = (16 << 20) + md::v090_offset(sectors).unwrap() * 512;
        d.write_at(at, &md::MAGIC.to_le_bytes().repeat(128))
            .unwrap();
        assert_eq!(erase(&mut d, 16 << 20, 32 << 20).unwrap(), 2);
        let mut back = [1u8; 4096];
        d.read_at(at, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0));
    }

    #[test]
    fn data_offset_follows_mdadms_headroom() {
        assert_eq!(data_offset(2 << 21), 4096); // 2 GiB: 2 MiB
        assert_eq!(data_offset(1 << 21), 2048); // 1 GiB and under: 1 MiB
        assert_eq!(data_offset(20 << 21), 32768); // 20 GiB: 16 MiB
        assert_eq!(data_offset(1 << 30), 128 * 2048); // 512 GiB
    }
}

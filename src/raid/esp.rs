//! The mirrored ESP of a software RAID root (ironic-python-agent's
//! `prepare_boot_partitions_for_softraid`): firmware cannot read an md
//! array, so each holder gets a plain 550 MiB ESP partition
//! (`uefi-holder-<n>`, type EF00) where `sgdisk -F` would put it (the first
//! aligned sector of the largest free block), and the partitions form a
//! RAID-1 with metadata 1.0: the superblock sits at the end, so each member
//! reads from sector 0 as an ordinary FAT filesystem.
//!
//! The array is written without the kernel: every member gets its 1.0
//! superblock (clean, `assume-clean` as it were) and the filesystem is
//! written through [`Mirror`], which puts each block on every member, so
//! the members hold the same bytes wherever the filesystem wrote.

use super::members;
use super::ESP_MIB;
use crate::deploy::table::{self, random_guid};
use crate::deploy::{Env, Error};
use crate::io::{BlockDevice, IoError};
use crate::wire::gpt;
use crate::wire::guid::types;
use crate::wire::md::{self, Array, Level, Version, IN_SYNC};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const SECTOR: u64 = 512;
/// sgdisk's default alignment: 1 MiB.
const ALIGN: u64 = 2048;
/// The partition label prefix the real agent gives holder ESPs.
pub const HOLDER_LABEL: &str = "uefi-holder-";
/// The array's name (mdadm --name esp).
pub const ARRAY_NAME: &str = "esp";

/// A holder's GPT, read whole so that one entry can be added.
pub struct HolderTable {
    pub table: gpt::Table,
}

fn table_error(dev: &dyn BlockDevice, what: impl core::fmt::Display) -> Error {
    Error::Table(format!("{}: {what}", dev.name()))
}

impl HolderTable {
    /// The holder's GPT, read as every table is read
    /// ([`table::read_gpt`]). Holders carry the table rivet wrote at
    /// create_configuration; any other (entries out of order, a foreign
    /// entry array) is refused rather than renumbered.
    pub fn read(dev: &mut dyn BlockDevice) -> Result<HolderTable, Error> {
        let ss = u64::from(dev.logical_block());
        let found = table::read_gpt(dev)?.ok_or_else(|| table_error(dev, "no GPT"))?;
        if found.entry_count != gpt::ENTRY_COUNT || found.entry_size != gpt::ENTRY_SIZE {
            return Err(table_error(dev, "a GPT with a foreign entry array"));
        }
        let parsed = found.parts;
        if parsed
            .iter()
            .enumerate()
            .any(|(i, (n, _))| *n != i as u32 + 1)
        {
            return Err(table_error(dev, "GPT entries with gaps between them"));
        }
        let geometry = gpt::Geometry::new(dev.logical_block(), dev.size() / ss, gpt::ENTRY_COUNT)
            .map_err(|e| table_error(dev, e))?;
        let table = gpt::Table {
            geometry,
            disk_guid: found.disk_guid,
            partitions: parsed.into_iter().map(|(_, p)| p).collect(),
        };
        // Partitions off the disk or over each other: not a table to edit.
        table.validate().map_err(|e| table_error(dev, e))?;
        Ok(HolderTable { table })
    }

    /// `sgdisk -F`: the first aligned sector of the largest free block,
    /// with that block's last sector.
    pub fn first_in_largest(&self) -> Option<(u64, u64)> {
        let g = &self.table.geometry;
        let mut used: Vec<(u64, u64)> = self
            .table
            .partitions
            .iter()
            .map(|p| (p.first_lba, p.last_lba))
            .collect();
        used.sort();
        let mut free = Vec::new();
        let mut next = g.first_usable();
        for (first, last) in used {
            if first > next {
                free.push((next, first - 1));
            }
            next = next.max(last + 1);
        }
        if next <= g.last_usable() {
            free.push((next, g.last_usable()));
        }
        free.into_iter()
            .map(|(a, b)| (a.div_ceil(ALIGN) * ALIGN, b))
            .filter(|(a, b)| a <= b)
            .max_by_key(|(a, b)| (b - a, core::cmp::Reverse(*a)))
    }

    /// The holder ESP of this table: a partition named `uefi-holder-…`
    /// with the ESP type. Returns its number (1-based) and partition.
    pub fn holder_esp(&self) -> Option<(u32, &gpt::Partition)> {
        self.table
            .partitions
            .iter()
            .enumerate()
            .find(|(_, p)| p.type_guid == types::ESP && p.name.starts_with(HOLDER_LABEL))
            .map(|(i, p)| (i as u32 + 1, p))
    }

    /// Where `sgdisk -n 0:<first-in-largest>:+550MiB` puts the ESP: its
    /// first and last sector, if the largest free block has room.
    pub fn esp_place(&self) -> Result<(u64, u64), String> {
        let ss = u64::from(self.table.geometry.sector_size);
        let (first, block_end) = self
            .first_in_largest()
            .ok_or_else(|| String::from("no free space for an ESP"))?;
        let last = first + ESP_MIB * (1 << 20) / ss - 1;
        if last > block_end {
            return Err(format!(
                "the largest free block (sectors {first}-{block_end}) has no room for a \
                 {ESP_MIB} MiB ESP"
            ));
        }
        Ok((first, last))
    }

    /// Adds the 550 MiB ESP `uefi-holder-<index>` at [`Self::esp_place`]
    /// (type EF00) and writes both copies of the table. Returns the new
    /// partition's number.
    pub fn add_esp(
        &mut self,
        dev: &mut dyn BlockDevice,
        env: &mut dyn Env,
        index: usize,
    ) -> Result<u32, Error> {
        let ss = u64::from(dev.logical_block());
        let (first, last) = self.esp_place().map_err(|e| table_error(dev, e))?;
        self.table.partitions.push(gpt::Partition {
            type_guid: types::ESP,
            unique_guid: random_guid(env),
            first_lba: first,
            last_lba: last,
            attributes: 0,
            name: format!("{HOLDER_LABEL}{index}"),
        });
        let g = self.table.geometry;
        let backup = self
            .table
            .backup_region()
            .map_err(|e| table_error(dev, e))?;
        let primary = self
            .table
            .primary_region()
            .map_err(|e| table_error(dev, e))?;
        let at = g.backup_entries_lba() * ss;
        dev.write_at(at, &backup)
            .map_err(|e| Error::device(dev, "write backup GPT", at, e))?;
        dev.write_at(0, &primary)
            .map_err(|e| Error::device(dev, "write GPT", 0, e))?;
        Ok(self.table.partitions.len() as u32)
    }
}

/// A member of the ESP array: a holder and its ESP partition's byte range.
pub struct Member {
    pub dev: Box<dyn BlockDevice>,
    pub offset: u64,
    pub len: u64,
}

/// The 1.0 array over `members` (a RAID-1 named `esp`, written clean: the
/// filesystem goes to every member through [`Mirror`]). Returns the bytes
/// each member has for data, the filesystem's size.
pub fn write_superblocks(
    members: &mut [Member],
    set_uuid: [u8; 16],
    device_uuids: &[[u8; 16]],
    time: u64,
) -> Result<u64, Error> {
    let mut array = Array {
        version: Version::V1_0,
        set_uuid,
        name: String::from(ARRAY_NAME),
        level: Level::Raid1,
        members: members.len() as u32,
        component_sectors: 0,
        time,
        resync_offset: IN_SYNC,
    };
    let lens: Vec<u64> = members.iter().map(|m| m.len / SECTOR).collect();
    array.component_sectors = members::component_sectors(&array, &lens, 0)
        .ok_or_else(|| Error::Refused("ESP partitions too small for a RAID-1".into()))?;
    for (slot, (m, uuid)) in members.iter_mut().zip(device_uuids).enumerate() {
        members::write_member(
            m.dev.as_mut(),
            m.offset,
            m.len / SECTOR,
            &array,
            slot as u32,
            *uuid,
            0,
        )?;
    }
    Ok(array.component_sectors * SECTOR)
}

/// The set UUID and data size of the 1.0 RAID-1 member at `offset`,
/// `len` bytes of `dev`, if it is one (an ESP mirror to reuse).
pub fn existing_member(
    dev: &mut dyn BlockDevice,
    offset: u64,
    len: u64,
) -> Result<Option<([u8; 16], u64)>, IoError> {
    Ok(match members::find(dev, offset, len)? {
        Some((Version::V1_0, sb)) => {
            let sb = md::Superblock::new_checked(&sb[..]).ok();
            // Data ends before the superblock, or it is not a member to
            // write a filesystem into.
            sb.filter(|s| s.level() == Level::Raid1.number() && s.size() <= s.super_offset())
                .and_then(|s| Some((s.set_uuid(), s.size().checked_mul(SECTOR)?)))
        }
        _ => None,
    })
}

/// The members of a RAID-1 seen as one device of `len` bytes: reads come
/// from the first member, writes go to all of them.
pub struct Mirror {
    pub members: Vec<Member>,
    pub len: u64,
}

impl BlockDevice for Mirror {
    fn name(&self) -> &str {
        "the ESP mirror"
    }
    fn size(&self) -> u64 {
        self.len
    }
    fn logical_block(&self) -> u32 {
        self.members
            .iter()
            .map(|m| m.dev.logical_block())
            .max()
            .unwrap_or(512)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let m = self.members.first_mut().ok_or_else(no_members)?;
        m.dev.read_at(m.offset + offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(IoError {
                at: Some(offset),
                errno: 0,
                message: format!("write past the mirror's end ({} bytes)", self.len),
            });
        }
        for m in &mut self.members {
            m.dev.write_at(m.offset + offset, buf)?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.members.iter_mut().try_for_each(|m| m.dev.flush())
    }
}

fn no_members() -> IoError {
    IoError {
        at: None,
        errno: 0,
        message: "a mirror without members".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::testing::ScriptedEnv;
    use crate::io::MemDisk;
    use crate::layout::MIB;
    use crate::plan::{BootMode, Label};
    use crate::raid::{holder_spans, Size, Span};

    const GIB: u64 = 1 << 30;

    fn holder(bytes: u64, sizes: &[Size]) -> MemDisk {
        let mut disk = MemDisk::new(bytes, 512);
        let spans: Vec<Span> =
            holder_spans(bytes / 512, BootMode::Uefi, Label::Gpt, sizes).unwrap();
        let mut env = ScriptedEnv::default();
        members::write_table(&mut disk, &mut env, BootMode::Uefi, Label::Gpt, &spans).unwrap();
        disk
    }

    #[test]
    fn esp_goes_into_the_gap_before_the_raid_partitions() {
        let mut disk = holder(4 * GIB, &[Size::Max]);
        let mut t = HolderTable::read(&mut disk).unwrap();
        assert_eq!(t.first_in_largest(), Some((2048, 1_128_447)));
        let mut env = ScriptedEnv::default();
        assert_eq!(t.add_esp(&mut disk, &mut env, 0).unwrap(), 2);
        let again = HolderTable::read(&mut disk).unwrap();
        let (n, p) = again.holder_esp().unwrap();
        assert_eq!(
            (n, p.first_lba, p.last_lba),
            (2, 2048, 2048 + 550 * 2048 - 1)
        );
        assert_eq!(p.name, "uefi-holder-0");
        // The backup copy says the same.
        let existing = crate::deploy::table::read_existing(&mut disk)
            .unwrap()
            .unwrap();
        assert_eq!(existing.parts.len(), 2);
        assert_eq!(existing.parts[1].offset, MIB);
    }

    #[test]
    fn a_larger_free_tail_takes_the_esp_as_sgdisk_would() {
        // One 1 GiB volume on an 8 GiB holder: the tail is the largest block.
        let mut disk = holder(8 * GIB, &[Size::Gib(1)]);
        let mut t = HolderTable::read(&mut disk).unwrap();
        let (first, _) = t.first_in_largest().unwrap();
        assert_eq!(first, GIB / 512);
        let mut env = ScriptedEnv::default();
        t.add_esp(&mut disk, &mut env, 1).unwrap();
        assert_eq!(t.holder_esp().unwrap().1.name, "uefi-holder-1");
    }

    #[test]
    fn no_room_is_refused_before_anything_is_written() {
        // A 1 GiB volume from 551 MiB fills the disk but for a sliver.
        let mut disk = holder(1100 * MIB, &[Size::Max]);
        let mut t = HolderTable::read(&mut disk).unwrap();
        let before = disk.bytes(0, 34 * 512);
        // Fill the gap as if an ESP were there already under another name.
        t.table.partitions.push(gpt::Partition {
            type_guid: types::LINUX_DATA,
            unique_guid: crate::wire::guid::Guid::ZERO,
            first_lba: 2048,
            last_lba: 1_128_447,
            attributes: 0,
            name: "other".into(),
        });
        let mut env = ScriptedEnv::default();
        let e = t.add_esp(&mut disk, &mut env, 0).unwrap_err().to_string();
        assert!(e.contains("no room for a 550 MiB ESP"), "{e}");
        assert_eq!(disk.bytes(0, 34 * 512), before);
    }

    #[test]
    fn a_holder_table_with_overlapping_entries_is_refused() {
        let mut disk = holder(4 * GIB, &[Size::Max]);
        let mut t = HolderTable::read(&mut disk).unwrap();
        let mut p = t.table.partitions[0].clone();
        p.first_lba -= 2048;
        p.last_lba = p.first_lba + 4095;
        t.table.partitions.push(p);
        let entries = t.table.entries();
        disk.write_at(512, &t.table.header(true, gpt::entries_crc(&entries)))
            .unwrap();
        disk.write_at(1024, &entries).unwrap();
        let e = HolderTable::read(&mut disk).err().unwrap().to_string();
        assert!(e.contains("overlap"), "{e}");
    }

    #[test]
    fn tables_rivet_did_not_write_are_refused() {
        let mut disk = MemDisk::new(GIB, 512);
        assert!(HolderTable::read(&mut disk).is_err());
    }

    fn members(n: usize) -> Vec<Member> {
        (0..n)
            .map(|_| Member {
                dev: Box::new(MemDisk::new(600 * MIB, 512)) as Box<dyn BlockDevice>,
                offset: MIB,
                len: 550 * MIB,
            })
            .collect()
    }

    #[test]
    fn members_carry_clean_1_0_superblocks_and_the_same_filesystem_bytes() {
        let mut ms = members(2);
        let len = write_superblocks(&mut ms, [7; 16], &[[1; 16], [2; 16]], 1_700_000_000).unwrap();
        // RAID-1 rounds to 64 KiB below the superblock (8 KiB from the end, aligned to 4 KiB).
        assert_eq!(len, (550 * MIB - 8192) / 65536 * 65536);
        for (slot, m) in ms.iter_mut().enumerate() {
            let (uuid, size) = existing_member(m.dev.as_mut(), m.offset, m.len)
                .unwrap()
                .unwrap();
            assert_eq!((uuid, size), ([7; 16], len));
            let (v, sb) = members::find(m.dev.as_mut(), m.offset, m.len)
                .unwrap()
                .unwrap();
            let sb = md::Superblock::new_checked(&sb[..]).unwrap();
            assert_eq!(
                (v, sb.slot(), sb.resync_offset()),
                (Version::V1_0, Some(slot as u16), IN_SYNC)
            );
            assert_eq!(sb.name(), b"esp");
        }
        let mut mirror = Mirror { members: ms, len };
        mirror.write_at(4096, &[0xab; 4096]).unwrap();
        assert!(mirror.write_at(len, &[0; 512]).is_err());
        let mut back = [0u8; 4096];
        for m in &mut mirror.members {
            m.dev.read_at(MIB + 4096, &mut back).unwrap();
            assert_eq!(back, [0xab; 4096]);
        }
    }
}

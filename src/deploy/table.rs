//! Partition tables on a device: read what is there, write a layout, and
//! wipe old metadata so no stale table or superblock survives.

use super::{Env, Error};
use crate::io::BlockDevice;
use crate::layout::{Layout, MIB};
use crate::plan::Label;
use crate::wire::guid::Guid;
use crate::wire::{gpt, mbr};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// One partition of a table found on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub number: u32,
    pub offset: u64,
    pub len: u64,
    /// GPT type GUID, or None on MBR.
    pub gpt_type: Option<Guid>,
    pub mbr_type: Option<u8>,
    /// GPT unique GUID or the MBR's "SSSSSSSS-NN" PARTUUID.
    pub partuuid: String,
    pub name: Option<String>,
    pub bootable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub label: Label,
    /// GPT disk GUID or MBR disk signature as `0x%08x`.
    pub disk_id: String,
    pub parts: Vec<Found>,
}

fn read(dev: &mut dyn BlockDevice, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; len];
    dev.read_at(offset, &mut buf)
        .map_err(|e| Error::device(dev, "read", offset, e))?;
    Ok(buf)
}

pub(crate) fn write(dev: &mut dyn BlockDevice, offset: u64, data: &[u8]) -> Result<(), Error> {
    dev.write_at(offset, data)
        .map_err(|e| Error::device(dev, "write", offset, e))
}

/// A GPT as a disk holds it: the header's disk GUID and entry array shape,
/// and the used entries with their numbers.
pub struct GptOnDisk {
    pub disk_guid: crate::wire::guid::Guid,
    pub entry_count: u32,
    pub entry_size: u32,
    pub parts: Vec<(u32, gpt::Partition)>,
}

/// The disk's GPT (primary, else backup), if one is valid and lies where
/// the spec puts it, with every partition inside the usable area.
pub fn read_gpt(dev: &mut dyn BlockDevice) -> Result<Option<GptOnDisk>, Error> {
    let ss = dev.logical_block() as u64;
    let sectors = dev.size() / ss;
    if sectors < 3 {
        return Ok(None);
    }
    for header_lba in [1, sectors - 1] {
        let sector = read(dev, header_lba * ss, ss as usize)?;
        let Ok(header) = gpt::Header::new_checked(&sector[..]) else {
            continue;
        };
        // Where the spec puts things, on this disk: else the header is
        // garbage left behind (wiped as such), never trusted.
        let entries_sectors = (header.entries_len() as u64).div_ceil(ss);
        let entries_end = header.entries_lba().checked_add(entries_sectors);
        let (first, last) = (header.first_usable(), header.last_usable());
        let placed = if header_lba == 1 {
            header.entries_lba() >= 2 && entries_end.is_some_and(|e| e <= first)
        } else {
            header.entries_lba() > last && entries_end.is_some_and(|e| e <= header_lba)
        };
        if !placed || first > last || last >= sectors {
            log::warn!(
                "{}: GPT header at sector {header_lba} describes entries or a usable area off the disk; ignored",
                dev.name()
            );
            continue;
        }
        let len = (entries_sectors * ss) as usize;
        let entries = read(dev, header.entries_lba() * ss, len)?;
        let Ok(parts) = gpt::parse_entries(&header, &entries) else {
            continue;
        };
        if let Some((n, _)) = parts
            .iter()
            .find(|(_, p)| p.first_lba < first || p.last_lba > last || p.first_lba > p.last_lba)
        {
            log::warn!(
                "{}: GPT partition {n} lies outside the usable area {first}..={last}; table ignored",
                dev.name()
            );
            continue;
        }
        return Ok(Some(GptOnDisk {
            disk_guid: header.disk_guid(),
            entry_count: header.entry_count(),
            entry_size: header.entry_size(),
            parts,
        }));
    }
    Ok(None)
}

/// The table on `dev`, if it has a valid GPT (primary, else backup) or MBR.
pub fn read_existing(dev: &mut dyn BlockDevice) -> Result<Option<Existing>, Error> {
    let ss = dev.logical_block() as u64;
    let sectors = dev.size() / ss;
    if sectors < 3 {
        return Ok(None);
    }
    if let Some(found) = read_gpt(dev)? {
        let parts = found
            .parts
            .into_iter()
            .map(|(number, p)| Found {
                number,
                offset: p.first_lba * ss,
                len: (p.last_lba + 1).saturating_sub(p.first_lba) * ss,
                gpt_type: Some(p.type_guid),
                mbr_type: None,
                partuuid: alloc::format!("{}", p.unique_guid),
                name: Some(p.name),
                bootable: false,
            })
            .collect();
        return Ok(Some(Existing {
            label: Label::Gpt,
            disk_id: alloc::format!("{}", found.disk_guid),
            parts,
        }));
    }
    let sector = read(dev, 0, ss as usize)?;
    let Ok(m) = mbr::Mbr::new_checked(&sector) else {
        return Ok(None);
    };
    if m.is_protective() || !m.entries_plausible() {
        return Ok(None); // a GPT whose headers are both damaged, or not a table
    }
    if crate::wire::superblock::probe(&sector)
        .is_some_and(|fs| fs.kind == crate::wire::superblock::Kind::Vfat)
    {
        return Ok(None); // a FAT boot sector also ends in 0x55AA
    }
    let sig = m.disk_signature();
    if let Some((n, _)) = m.partitions().into_iter().find(|(_, p)| {
        (p.first_lba as u64)
            .checked_add(p.sectors as u64)
            .is_none_or(|end| end > sectors)
    }) {
        log::warn!(
            "{}: MBR partition {n} ends past the disk; table ignored",
            dev.name()
        );
        return Ok(None);
    }
    let parts = m
        .partitions()
        .into_iter()
        .filter(|(_, p)| p.kind != mbr::TYPE_EXTENDED && p.kind != mbr::TYPE_EXTENDED_LBA)
        .map(|(number, p)| Found {
            number,
            offset: p.first_lba as u64 * ss,
            len: p.sectors as u64 * ss,
            gpt_type: None,
            mbr_type: Some(p.kind),
            partuuid: alloc::format!("{sig:08x}-{number:02x}"),
            name: None,
            bootable: p.bootable,
        })
        .collect();
    Ok(Some(Existing {
        label: Label::Msdos,
        disk_id: alloc::format!("0x{sig:08x}"),
        parts,
    }))
}

/// Bytes zeroed at each end of a partition: covers every superblock rivet
/// or blkid knows (btrfs at 64 KiB, md 0.90/1.0 near the end).
const SIGNATURE_SPAN: u64 = 128 * 1024;

fn zero(dev: &mut dyn BlockDevice, zeros: &[u8], offset: u64, len: u64) -> Result<(), Error> {
    let b = dev.logical_block() as u64;
    let start = offset / b * b;
    let end = (offset + len).div_ceil(b) * b;
    let end = end.min(dev.size() / b * b);
    let mut at = start;
    while at < end {
        let n = (end - at).min(zeros.len() as u64);
        write(dev, at, &zeros[..n as usize])?;
        at += n;
    }
    Ok(())
}

/// Zeroes the first and last MiB of the disk (MBR, both GPTs, boot code,
/// whole-disk signatures) and both ends of every partition, old and new.
/// `zeros` is an aligned zero-filled buffer of at least one block.
pub fn wipe(
    dev: &mut dyn BlockDevice,
    zeros: &[u8],
    old: Option<&Existing>,
    new: &[(u64, u64)],
) -> Result<(), Error> {
    let size = dev.size();
    zero(dev, zeros, 0, MIB.min(size))?;
    zero(dev, zeros, size.saturating_sub(MIB), MIB.min(size))?;
    let old_parts: Vec<(u64, u64)> = old
        .map(|o| o.parts.iter().map(|p| (p.offset, p.len)).collect())
        .unwrap_or_default();
    for (offset, len) in old_parts.into_iter().chain(new.iter().copied()) {
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            continue;
        }
        let span = SIGNATURE_SPAN.min(end - offset);
        zero(dev, zeros, offset, span)?;
        zero(dev, zeros, end - span, span)?;
    }
    Ok(())
}

/// GUIDs rivet gave the partitions (GPT), for the result.
pub struct Written {
    pub disk_id: String,
    pub partuuids: Vec<String>,
}

/// Writes `layout` as a GPT or MBR.
pub fn write_layout(
    dev: &mut dyn BlockDevice,
    env: &mut dyn Env,
    layout: &Layout,
) -> Result<Written, Error> {
    let ss = dev.logical_block();
    let per_mib = MIB / ss as u64;
    match layout.label {
        Label::Gpt => {
            let geometry = gpt::Geometry::new(ss, dev.size() / ss as u64, gpt::ENTRY_COUNT)
                .map_err(|e| Error::Table(alloc::format!("{e}")))?;
            let mut partitions = Vec::new();
            for p in &layout.parts {
                partitions.push(gpt::Partition {
                    type_guid: p.gpt_type,
                    unique_guid: random_guid(env),
                    first_lba: p.start_mib * per_mib,
                    last_lba: (p.start_mib + p.size_mib) * per_mib - 1,
                    attributes: 0,
                    // parted names every partition "primary" (mkpart primary …).
                    name: String::from("primary"),
                });
            }
            let table = gpt::Table {
                geometry,
                disk_guid: random_guid(env),
                partitions,
            };
            let backup = table
                .backup_region()
                .map_err(|e| Error::Table(alloc::format!("{e}")))?;
            let primary = table
                .primary_region()
                .map_err(|e| Error::Table(alloc::format!("{e}")))?;
            write(dev, geometry.backup_entries_lba() * ss as u64, &backup)?;
            write(dev, 0, &primary)?;
            Ok(Written {
                disk_id: alloc::format!("{}", table.disk_guid),
                partuuids: table
                    .partitions
                    .iter()
                    .map(|p| alloc::format!("{}", p.unique_guid))
                    .collect(),
            })
        }
        Label::Msdos => {
            let mut signature = 0u32;
            while signature == 0 {
                let mut r = [0u8; 4];
                env.random(&mut r);
                signature = u32::from_le_bytes(r);
            }
            let parts: Vec<mbr::Partition> = layout
                .parts
                .iter()
                .map(|p| mbr::Partition {
                    bootable: p.bootable,
                    kind: p.mbr_type,
                    first_lba: (p.start_mib * per_mib) as u32,
                    sectors: (p.size_mib * per_mib) as u32,
                })
                .collect();
            let mut sector = vec![0u8; ss as usize];
            mbr::write(&mut sector, signature, &parts)
                .map_err(|e| Error::Table(alloc::format!("{e}")))?;
            write(dev, 0, &sector)?;
            Ok(Written {
                disk_id: alloc::format!("0x{signature:08x}"),
                partuuids: layout
                    .parts
                    .iter()
                    .map(|p| alloc::format!("{signature:08x}-{:02x}", p.number))
                    .collect(),
            })
        }
    }
}

pub fn random_guid(env: &mut dyn Env) -> Guid {
    let mut r = [0u8; 16];
    env.random(&mut r);
    Guid::random_v4(r)
}

/// Whether the table on disk is the one `layout` describes (same label,
/// same partitions at the same places with the same types): the condition
/// for keeping it under preserve_ephemeral.
pub fn matches(existing: &Existing, layout: &Layout) -> Result<(), String> {
    if existing.label != layout.label {
        return Err(alloc::format!(
            "the disk has a {} table, the plan needs {}",
            existing.label.name(),
            layout.label.name()
        ));
    }
    if existing.parts.len() != layout.parts.len() {
        return Err(alloc::format!(
            "the disk has {} partitions, the plan needs {}",
            existing.parts.len(),
            layout.parts.len()
        ));
    }
    for (found, want) in existing.parts.iter().zip(&layout.parts) {
        let same_type = match layout.label {
            Label::Gpt => found.gpt_type == Some(want.gpt_type),
            Label::Msdos => found.mbr_type == Some(want.mbr_type),
        };
        if found.number != want.number
            || found.offset != want.offset()
            || found.len != want.len()
            || !same_type
        {
            return Err(alloc::format!(
                "partition {} ({}) is at {} MiB, {} MiB long; the plan needs {} MiB, {} MiB long with the same type",
                want.number,
                want.role.ironic_name(),
                found.offset / MIB,
                found.len / MIB,
                want.start_mib,
                want.size_mib
            ));
        }
    }
    Ok(())
}

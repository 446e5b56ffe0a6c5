//! Whole-disk images: after the image is on the disk, move a GPT's backup
//! to the disk's real end, and add the config drive partition in the last
//! 64 MiB the way ironic-python-agent does (sgdisk -n 0:-64MB:0 on GPT,
//! parted mkpart primary fat32 -64MiB -0 on MBR).

use super::device::BlockDevice;
use super::table::{random_guid, write};
use super::{Env, Error};
use crate::layout::{MAX_CONFIGDRIVE_MB, MIB};
use crate::wire::gpt::{self, HeaderFields};
use crate::wire::guid::types;
use crate::wire::mbr;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What the image's first MiB says about its table.
pub enum ImageTable {
    Gpt {
        header: HeaderFields,
        entries: Vec<u8>,
    },
    Mbr,
    None,
}

pub fn image_table(held: &[u8], ss: u32) -> ImageTable {
    let ss_us = ss as usize;
    if held.len() >= 2 * ss_us {
        if let Ok(h) = gpt::Header::new_checked(&held[ss_us..2 * ss_us]) {
            let at = usize::try_from(h.entries_lba())
                .ok()
                .and_then(|lba| lba.checked_mul(ss_us));
            let len = h.entries_len();
            let end = at.and_then(|at| at.checked_add(len));
            if let (1, Some(at), true) = (h.my_lba(), at, end.is_some_and(|e| e <= held.len())) {
                let entries = held[at..at + len].to_vec();
                if gpt::parse_entries(&h, &entries).is_ok() {
                    return ImageTable::Gpt {
                        header: HeaderFields::of(&h, ss),
                        entries,
                    };
                }
            }
        }
    }
    if held.len() >= 512 && mbr::Mbr::new_checked(&held[..512]).is_ok() {
        return ImageTable::Mbr;
    }
    ImageTable::None
}

/// Re-points a GPT at the disk's end: rewrites the primary header inside
/// `held` (written later, with the rest of the first MiB) and writes the
/// backup entries and header at the end now. Optionally adds a config drive
/// partition first. Returns the new partition's number and byte range.
pub fn finish_gpt(
    dev: &mut dyn BlockDevice,
    env: &mut dyn Env,
    held: &mut [u8],
    mut header: HeaderFields,
    mut entries: Vec<u8>,
    add_configdrive: bool,
) -> Result<Option<(u32, u64, u64)>, Error> {
    let ss = dev.logical_block() as u64;
    let last_lba = dev.size() / ss - 1;
    let entries_sectors = (entries.len() as u64).div_ceil(ss);
    let last_usable = last_lba - entries_sectors - 1;
    let parsed = {
        let tmp = gpt::header_sector(header);
        let h = gpt::Header::new_checked(&tmp[..]).map_err(|e| Error::Table(format!("{e}")))?;
        gpt::parse_entries(&h, &entries).map_err(|e| Error::Table(format!("{e}")))?
    };
    if let Some((_, p)) = parsed.iter().find(|(_, p)| p.last_lba > last_usable) {
        return Err(Error::Table(format!(
            "the image's partition '{}' ends at sector {}, past the disk's last usable sector {last_usable}",
            p.name, p.last_lba
        )));
    }
    let mut added = None;
    if add_configdrive {
        // sgdisk -n 0:-64MB:0: start 64 MiB before the last usable byte,
        // aligned down to 1 MiB; end at the last usable sector.
        let start_bytes =
            ((last_usable + 1) * ss).saturating_sub(MAX_CONFIGDRIVE_MB * MIB) / MIB * MIB;
        let first_lba = start_bytes / ss;
        if let Some((n, _)) = parsed.iter().find(|(_, p)| p.last_lba >= first_lba) {
            return Err(Error::ConfigDrive(format!(
                "no room for a config drive: the image's partition {n} reaches into the disk's last 64 MiB"
            )));
        }
        let size = header.entry_size as usize;
        let slot = (0..header.entry_count as usize)
            .find(|i| entries[i * size..i * size + 16].iter().all(|&b| b == 0))
            .ok_or_else(|| Error::ConfigDrive("the image's GPT has no free entry".into()))?;
        let new = gpt::Partition {
            type_guid: types::LINUX_DATA,
            unique_guid: random_guid(env),
            first_lba,
            last_lba: last_usable,
            attributes: 0,
            name: String::new(),
        };
        let one = gpt::Table {
            geometry: gpt::Geometry::new(ss as u32, last_lba + 1, 1)
                .map_err(|e| Error::Table(format!("{e}")))?,
            disk_guid: header.disk_guid,
            partitions: alloc::vec![new],
        }
        .entries();
        entries[slot * size..slot * size + gpt::ENTRY_SIZE as usize]
            .copy_from_slice(&one[..gpt::ENTRY_SIZE as usize]);
        added = Some((
            slot as u32 + 1,
            first_lba * ss,
            (last_usable + 1 - first_lba) * ss,
        ));
    }
    header.entries_crc = gpt::entries_crc(&entries);
    header.last_usable = last_usable;
    header.my_lba = 1;
    header.alternate_lba = last_lba;
    header.entries_lba = 2;
    let primary = gpt::header_sector(header);
    let backup_entries_lba = last_lba - entries_sectors;
    let backup = gpt::header_sector(HeaderFields {
        my_lba: last_lba,
        alternate_lba: 1,
        entries_lba: backup_entries_lba,
        ..header
    });
    let mut region = entries.clone();
    region.resize((entries_sectors * ss) as usize, 0);
    region.extend_from_slice(&backup);
    write(dev, backup_entries_lba * ss, &region)?;
    // Primary header and entries go out with the held first MiB.
    held[ss as usize..2 * ss as usize].copy_from_slice(&primary);
    held[2 * ss as usize..2 * ss as usize + entries.len()].copy_from_slice(&entries);
    // The protective MBR should cover the whole disk now.
    if let Ok(m) = mbr::Mbr::new_checked(&held[..512]) {
        if m.is_protective() {
            held[..512].copy_from_slice(&mbr::protective(last_lba + 1));
        }
    }
    Ok(added)
}

/// Whether a config drive can be added to the image whose first MiB is
/// `head`, judged before anything is written: an MBR image needs a free
/// primary slot, room at the end and a disk within 2 TiB (unless it has a
/// `config-2` partition to reuse); an image without a table cannot take one.
/// GPT images are checked where their backup is moved.
pub fn configdrive_precheck(dev: &mut dyn BlockDevice, head: &[u8]) -> Result<(), Error> {
    match image_table(head, dev.logical_block()) {
        ImageTable::Mbr => {
            let mut copy = head.to_vec();
            add_mbr_configdrive(dev, &mut copy).map(|_| ())
        }
        ImageTable::None => Err(Error::ConfigDrive(
            "the image has no partition table to add a config drive partition to".into(),
        )),
        ImageTable::Gpt { .. } => Ok(()),
    }
}

/// Adds the config drive as a new primary MBR partition over the disk's last
/// 64 MiB (type 0x0c, as parted's fat32 writes it), inside `held`.
pub fn add_mbr_configdrive(
    dev: &dyn BlockDevice,
    held: &mut [u8],
) -> Result<(u32, u64, u64), Error> {
    let ss = dev.logical_block() as u64;
    let size = dev.size();
    if size > (2u64 << 40) {
        return Err(Error::ConfigDrive(
            "the disk is larger than 2 TiB: an MBR image cannot take a config drive partition at its end".into(),
        ));
    }
    let m = mbr::Mbr::new_checked(&held[..512]).map_err(|e| Error::Table(format!("{e}")))?;
    let slots = m.slots();
    let used: Vec<mbr::Partition> = slots
        .iter()
        .copied()
        .filter(|p| p.kind != 0 && p.sectors != 0)
        .collect();
    if used.len() >= 4 {
        return Err(Error::ConfigDrive(
            "the image's MBR already has 4 primary partitions: no slot for a config drive".into(),
        ));
    }
    let start = (size / MIB * MIB).saturating_sub(MAX_CONFIGDRIVE_MB * MIB) / ss;
    let end = size / ss;
    if used.iter().any(|p| p.end_lba() > start) {
        return Err(Error::ConfigDrive(
            "no room for a config drive: an image partition reaches into the disk's last 64 MiB"
                .into(),
        ));
    }
    let slot = slots
        .iter()
        .position(|p| p.kind == 0 || p.sectors == 0)
        .unwrap_or(0);
    let mut all: Vec<mbr::Partition> = slots.to_vec();
    all[slot] = mbr::Partition {
        bootable: false,
        kind: mbr::TYPE_FAT32_LBA,
        first_lba: start as u32,
        sectors: (end - start) as u32,
    };
    // mbr::write packs entries in order; keep empty slots empty by writing
    // the used ones at their own positions.
    let signature = m.disk_signature();
    let mut sector = held[..512].to_vec();
    mbr::write(&mut sector, signature, &[]).map_err(|e| Error::Table(format!("{e}")))?;
    for (i, p) in all.iter().enumerate() {
        if p.kind == 0 || p.sectors == 0 {
            continue;
        }
        let mut one = alloc::vec![0u8; 512];
        mbr::write(&mut one, signature, core::slice::from_ref(p))
            .map_err(|e| Error::Table(format!("{e}")))?;
        let at = mbr::ENTRIES_OFFSET + i * mbr::ENTRY_LEN;
        sector[at..at + mbr::ENTRY_LEN]
            .copy_from_slice(&one[mbr::ENTRIES_OFFSET..mbr::ENTRIES_OFFSET + mbr::ENTRY_LEN]);
    }
    held[..512].copy_from_slice(&sector);
    Ok((slot as u32 + 1, start * ss, (end - start) * ss))
}

//! Whole-disk images: after the image is on the disk, move a GPT's backup
//! to the disk's real end, and add the config drive partition in the last
//! 64 MiB the way ironic-python-agent does (sgdisk -n 0:-64MB:0 on GPT,
//! parted mkpart primary fat32 -64MiB -0 on MBR). And the deploy of one:
//! its table checked in the held first MiB before anything is wiped, the
//! image streamed from byte 0, the first MiB written last.

use super::table::{random_guid, write};
use super::*;
use super::{Env, Error};
use crate::io::BlockDevice;
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

/// Where an image's GPT goes on this disk, decided from its header and
/// entries alone: every partition must end before the disk's last usable
/// sector, and a config drive (`add_configdrive`) needs the last 64 MiB
/// free and a free entry. Checked on the held first MiB before the old
/// disk is wiped, and again when the backup is moved.
pub struct GptPlan {
    last_lba: u64,
    entries_sectors: u64,
    last_usable: u64,
    /// The config drive's entry slot and first sector.
    configdrive: Option<(usize, u64)>,
}

pub fn plan_gpt(
    dev: &dyn BlockDevice,
    header: &HeaderFields,
    entries: &[u8],
    add_configdrive: bool,
) -> Result<GptPlan, Error> {
    let ss = dev.logical_block() as u64;
    let last_lba = dev.size() / ss - 1;
    let entries_sectors = (entries.len() as u64).div_ceil(ss);
    let last_usable = last_lba - entries_sectors - 1;
    let parsed = {
        let tmp = gpt::header_sector(*header);
        let h = gpt::Header::new_checked(&tmp[..]).map_err(|e| Error::Table(format!("{e}")))?;
        gpt::parse_entries(&h, entries).map_err(|e| Error::Table(format!("{e}")))?
    };
    if let Some((_, p)) = parsed.iter().find(|(_, p)| p.last_lba > last_usable) {
        return Err(Error::Table(format!(
            "the image's partition '{}' ends at sector {}, past the disk's last usable sector {last_usable}",
            p.name, p.last_lba
        )));
    }
    let mut configdrive = None;
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
        configdrive = Some((slot, first_lba));
    }
    Ok(GptPlan {
        last_lba,
        entries_sectors,
        last_usable,
        configdrive,
    })
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
    let GptPlan {
        last_lba,
        entries_sectors,
        last_usable,
        configdrive,
    } = plan_gpt(dev, &header, &entries, add_configdrive)?;
    let mut added = None;
    if let Some((slot, first_lba)) = configdrive {
        let size = header.entry_size as usize;
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
/// GPT images: [`plan_gpt`].
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

#[allow(clippy::too_many_arguments)]
pub(super) fn whole_disk_image(
    dev: &mut dyn BlockDevice,
    image: &mut image::Image<'_, '_>,
    format: format::Format,
    env: &mut dyn Env,
    req: &Request,
    digest: &(HashAlgo, String),
    buf: &mut AlignedBuf,
    phases: &mut Phases,
) -> Result<Outcome, Error> {
    let size = dev.size();
    if let Some(n) = format.disk_bytes(image.size()) {
        if n > size {
            return Err(Error::Refused(format!(
                "image {} is {n} bytes, larger than the disk {} ({size} bytes)",
                image.describe(),
                dev.name()
            )));
        }
    }
    if let Some(cd) = &req.configdrive {
        if cd.len() > layout::MAX_CONFIGDRIVE_MB * MIB {
            return Err(Error::Refused(format!(
                "the config drive is {} bytes, more than Ironic's 64 MiB limit for whole-disk images",
                cd.len()
            )));
        }
    }
    let ready = format.prepare(image, size)?;
    let existing = table::read_existing(dev)?;
    phases.mark(env, "checks");
    log::info!(
        "streaming {} onto {} from byte 0",
        image.describe(),
        dev.name()
    );
    // The image's own table decides whether a config drive can be added:
    // check it in the held first MiB, and wipe the old metadata only then,
    // so a refusal leaves the disk as it was.
    let wants_configdrive = req.configdrive.is_some();
    let mut before_write = |dev: &mut dyn BlockDevice, head: &[u8]| -> Result<(), Error> {
        let add = wants_configdrive && find_config2(dev, head)?.is_none();
        match image_table(head, dev.logical_block()) {
            // A GPT that does not fit this disk, or cannot take the config
            // drive, is refused here, before the wipe.
            ImageTable::Gpt { header, entries } => {
                plan_gpt(dev, &header, &entries, add)?;
            }
            _ if add => configdrive_precheck(dev, head)?,
            _ => {}
        }
        let zeros = AlignedBuf::new(MIB as usize, dev.logical_block().max(512) as usize);
        table::wipe(dev, zeros.as_slice(), existing.as_ref(), &[])
    };
    let mut streamed = format::stream(
        ready,
        dev,
        env,
        image,
        0,
        size,
        buf.as_mut_slice(),
        digest.0,
        &mut before_write,
    )?;
    verify(digest, &streamed, &image.describe())?;
    phases.mark(env, "stream");

    let ss = dev.logical_block();
    let mut held = core::mem::take(&mut streamed.held);
    let mut configdrive_part = None;
    let mut label = None;
    match image_table(&held, ss) {
        ImageTable::Gpt { header, entries } => {
            label = Some(crate::plan::Label::Gpt);
            let reuse = if req.configdrive.is_some() {
                find_config2(dev, &held)?
            } else {
                None
            };
            let add = req.configdrive.is_some() && reuse.is_none();
            let added = finish_gpt(dev, env, &mut held, header, entries, add)?;
            configdrive_part = reuse.or(added);
            log::info!("GPT backup moved to the end of the disk");
        }
        ImageTable::Mbr => {
            label = Some(crate::plan::Label::Msdos);
            if req.configdrive.is_some() {
                configdrive_part = match find_config2(dev, &held)? {
                    Some(found) => Some(found),
                    None => Some(add_mbr_configdrive(dev, &mut held)?),
                };
            }
        }
        ImageTable::None => {
            if ss != 512
                && held.len() >= 1024
                && crate::wire::gpt::Header::new_checked(&held[512..1024]).is_ok()
            {
                log::warn!("the image's GPT was made for 512-byte sectors; this disk has {ss}-byte sectors");
            }
            if req.configdrive.is_some() {
                return Err(Error::ConfigDrive(
                    "the image has no partition table to add a config drive partition to".into(),
                ));
            }
        }
    }
    if let (Some(cd), Some((number, offset, len))) = (&req.configdrive, configdrive_part) {
        if cd.len() > len {
            return Err(Error::ConfigDrive(format!(
                "{} bytes do not fit in partition {number} ({len} bytes)",
                cd.len()
            )));
        }
        phases.mark(env, "tables");
        write_configdrive(dev, buf.as_mut_slice(), offset, cd, image)?;
        log::info!("config drive written to partition {number}");
        phases.mark(env, "config drive");
    }
    phases.mark(env, "tables");
    write_through(dev, buf.as_mut_slice(), 0, &held)?;
    phases.mark(env, "first MiB");

    let signature = if held.len() >= 444 {
        u32::from_le_bytes([held[440], held[441], held[442], held[443]])
    } else {
        0
    };
    let mut partitions = Vec::new();
    if let Some(found) = table::read_existing(dev)? {
        for p in &found.parts {
            let filesystem = probe_at(dev, p.offset, p.len)?;
            let role = if Some(p.number) == configdrive_part.map(|c| c.0) {
                Role::ConfigDrive
            } else {
                Role::Root
            };
            partitions.push(PartitionReport {
                role,
                number: p.number,
                path: layout::partition_path(&req.disk_path, p.number),
                partuuid: p.partuuid.clone(),
                filesystem,
            });
        }
    }
    Ok(Outcome {
        image_type: ImageType::WholeDisk,
        boot_mode: req.boot_mode,
        label,
        root_uuid: format!("0x{signature:08x}"),
        root_filesystem: None,
        efi_uuid: None,
        partitions,
        disk_id: format!("0x{signature:08x}"),
        image_bytes: streamed.bytes,
        checksum_algo: digest.0,
        checksum: streamed.digest,
        image_ms: streamed.elapsed_ms,
        total_ms: 0,
        phases: Phases::default(),
    })
}

/// An existing partition labelled `config-2` (ironic-python-agent reuses it).
fn find_config2(dev: &mut dyn BlockDevice, held: &[u8]) -> Result<Option<(u32, u64, u64)>, Error> {
    // The table lives in `held`, not yet on the disk: read it from there.
    let mut mem = crate::io::MemDisk::new(dev.size(), dev.logical_block());
    let n = held.len() / dev.logical_block() as usize * dev.logical_block() as usize;
    mem.write_at(0, &held[..n])
        .map_err(|e| Error::device(&mem, "write", 0, e))?;
    let Some(found) = table::read_existing(&mut mem)? else {
        return Ok(None);
    };
    for p in &found.parts {
        let fs = if p.offset < held.len() as u64 {
            let end = (p.offset + PROBE_LEN as u64).min(held.len() as u64) as usize;
            superblock::probe(&held[p.offset as usize..end])
        } else {
            probe_at(dev, p.offset, p.len)?
        };
        if fs
            .and_then(|f| f.label)
            .is_some_and(|l| l.eq_ignore_ascii_case("config-2"))
        {
            return Ok(Some((p.number, p.offset, p.len)));
        }
    }
    Ok(None)
}

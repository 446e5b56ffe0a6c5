//! `install_bootloader` when the image went onto a software RAID root
//! (ironic-python-agent's `efi_utils.manage_uefi` with an md device and
//! `raid_utils.prepare_boot_partitions_for_softraid`): firmware cannot
//! read the array, so the image's ESP inside it moves to a RAID-1 of plain
//! ESPs, one on each holder (`raid::esp`), formatted with the image ESP's
//! volume id and label (fstab entries stay valid), its files copied, the
//! image's own ESP wiped so only one is ever mounted; then one boot entry
//! per holder, labelled `<label> (RAID, part<n>)`. An ESP mirror already on
//! the holders (a rebuild) is reused. BIOS is refused by name, as the real
//! agent refuses it since its CVE mitigation.

use super::errors::{IpaError, RestError};
use crate::boot::bootchain::EspFile;
use crate::boot::uefi::{self, Loader};
use crate::deploy::table::{self, Existing, Found};
use crate::fs::fat::Fat;
use crate::fs::partition::Partition;
use crate::io::BlockDevice;
use crate::linux::blockdev::Disk;
use crate::linux::efivars::Efivarfs;
use crate::linux::env::LinuxEnv;
use crate::linux::{fat, md};
use crate::raid::esp::{self, HolderTable, Member, Mirror};
use crate::stream::AlignedBuf;
use std::path::Path;

fn failed(path: &str, e: impl std::fmt::Display) -> RestError {
    RestError::execution(format!(
        "Could not configure UEFI boot on device {path}: {e}"
    ))
}

/// The image's ESP on `path`: the partition typed ESP, else the one
/// carrying `efi_uuid` (the real agent's order).
pub fn locate_esp(
    disk: &mut Disk,
    path: &str,
    efi_uuid: Option<&str>,
) -> Result<(Existing, Found), RestError> {
    let table = table::read_existing(disk)
        .map_err(|e| failed(path, e))?
        .unwrap_or(Existing {
            label: crate::plan::Label::Gpt,
            disk_id: String::new(),
            parts: Vec::new(),
        });
    let esp = match (uefi::find_esp(&table), efi_uuid) {
        (Some(esp), _) => esp.clone(),
        (None, Some(uuid)) => crate::agent::partition_boot::partition_by_uuid(disk, &table, uuid)
            .cloned()
            .ok_or_else(|| {
                IpaError::DeviceNotFound.with(format!("no partition of {path} has the UUID {uuid}"))
            })?,
        (None, None) => {
            return Err(IpaError::DeviceNotFound.with(format!(
            "No EFI partition could be detected on device {path} and EFI partition UUID has not \
                 been recorded during deployment (which is often the case for whole disk images). \
                 Are you using a UEFI-compatible image?"
        )))
        }
    };
    Ok((table, esp))
}

/// The BIOS refusal, in the real agent's words.
pub fn refuse_bios(path: &str) -> RestError {
    IpaError::InvalidImage.with(format!(
        "Install of legacy BIOS bootloaders disabled by CONF.enable_bios_bootloader_install as part \
         of CVE-2026-43003 mitigation: {path} is a software RAID device, which boots with rivet only \
         under UEFI (a mirrored ESP on each holder)"
    ))
}

/// The ESP mirror on the holders.
struct HolderEsps {
    /// One per holder, in the holders' order.
    members: Vec<Member>,
    /// Each member's partition number on its holder.
    numbers: Vec<u32>,
    /// When an existing mirror is reused: the bytes it has for data (the
    /// filesystem must end before the 1.0 superblocks).
    reused: Option<u64>,
}

/// The ESP mirror's members: the existing ones when every holder has a
/// member of the same array (a rebuild), else new partitions, room
/// checked on every holder before any is written.
fn holder_members(
    path: &str,
    holders: &[String],
    env: &mut LinuxEnv,
) -> Result<HolderEsps, RestError> {
    let mut tables = Vec::new();
    let mut found = Vec::new();
    for h in holders {
        let dev_path = format!("/dev/{h}");
        let mut dev = Disk::open_shared(&dev_path, 512).map_err(|e| failed(path, e))?;
        let t = HolderTable::read(&mut dev).map_err(|e| failed(path, e))?;
        let ss = u64::from(dev.logical_block());
        let existing = match t.holder_esp() {
            Some((n, p)) => {
                let len = (p.last_lba + 1 - p.first_lba) * ss;
                esp::existing_member(&mut dev, p.first_lba * ss, len)
                    .map_err(|e| failed(path, format!("{dev_path}: {e}")))?
                    .map(|(uuid, size)| (n, uuid, size))
            }
            None => None,
        };
        tables.push((dev, t));
        found.push(existing);
    }
    let uuid = found.first().copied().flatten().map(|f| f.1);
    let reuse = uuid.is_some() && found.iter().all(|f| f.map(|f| f.1) == uuid);
    if reuse {
        log::info!("Found RAIDed ESP on {}, skip creation", holders.join(", "));
    } else {
        for (dev, t) in &tables {
            t.esp_place()
                .map_err(|e| failed(path, format!("{}: {e}", dev.name())))?;
        }
        log::info!("Creating EFI partitions on software RAID holder disks");
    }
    let mut members = Vec::new();
    let mut numbers = Vec::new();
    for (i, ((mut dev, mut t), f)) in tables.into_iter().zip(&found).enumerate() {
        let n = match (reuse, f) {
            (true, Some((n, _, _))) => *n,
            _ => t.add_esp(&mut dev, env, i).map_err(|e| failed(path, e))?,
        };
        let p = &t.table.partitions[n as usize - 1];
        let ss = u64::from(dev.logical_block());
        members.push(Member {
            offset: p.first_lba * ss,
            len: (p.last_lba + 1 - p.first_lba) * ss,
            dev: Box::new(dev),
        });
        numbers.push(n);
    }
    let data = found.iter().flatten().map(|f| f.2).min();
    Ok(HolderEsps {
        members,
        numbers,
        reused: data.filter(|_| reuse),
    })
}

/// An ESP's FAT volume id and label (blkid's UUID and LABEL).
fn volume_of(disk: &mut Disk, esp: &Found) -> (u32, String) {
    let fs = crate::deploy::probe_at(disk, esp.offset, esp.len)
        .ok()
        .flatten();
    let id = fs
        .as_ref()
        .and_then(|f| u32::from_str_radix(&f.uuid.replace('-', ""), 16).ok())
        .unwrap_or(0);
    let label = fs.and_then(|f| f.label).unwrap_or_else(|| "esp".into());
    (id, label)
}

/// The largest ESP file copied: files pass through memory one at a time,
/// and a deploy ramdisk may have 128 MiB in all (shim, GRUB and a kernel
/// are a few MiB each).
const FILE_LIMIT: u64 = 32 << 20;

/// Copies the files of `walk` (every directory of the FAT filesystem
/// `src`) onto the one on `dst` (`len` bytes from its start), one file in
/// memory at a time.
fn copy_files(
    src: &mut Fat,
    walk: &[uefi::Dir],
    dst: &mut dyn BlockDevice,
    len: u64,
) -> Result<usize, String> {
    let mut copied = 0;
    for dir in walk {
        for name in &dir.files {
            let path = match dir.path.as_str() {
                "" => name.clone(),
                d => format!("{d}/{name}"),
            };
            let data = src
                .read(&path, FILE_LIMIT)
                .map_err(|e| format!("{path}: {e}"))?;
            let file = EspFile {
                path,
                from: String::new(),
                data,
            };
            fat::write_files(dst, 0, len, std::slice::from_ref(&file))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Moves the image's ESP on the md device `path` to a mirror on its
/// holders and registers the loaders on each. `Ok(false)` when the ESP
/// has no loaders (nothing the firmware could start).
pub fn install(path: &str, efi_uuid: Option<&str>, nvram_dir: &Path) -> Result<bool, RestError> {
    let name = path.trim_start_matches("/dev/");
    let array = md::arrays()
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            IpaError::DeviceNotFound.with(format!("{path} is not a running md array"))
        })?;
    let mut disk = Disk::open_read_only(path, 512).map_err(|e| IpaError::DeviceNotFound.with(e))?;
    let (_, image_esp) = locate_esp(&mut disk, path, efi_uuid)?;
    let where_ = format!("{path} partition {}", image_esp.number);
    // The image's ESP (a tenant's bytes, read by rivet's bounded FAT
    // reader): opened and walked once, for its loaders and its files.
    let (id, label) = volume_of(&mut disk, &image_esp);
    let part = Partition::new(Box::new(disk), image_esp.offset, image_esp.len)
        .map_err(|e| failed(path, e))?;
    let mut src =
        Fat::open(Box::new(part)).map_err(|e| failed(path, format!("{where_}: not FAT: {e}")))?;
    let walk = src
        .walk()
        .map_err(|e| failed(path, format!("{where_}: {e}")))?;
    let loaders =
        uefi::loaders_in(&mut src, &walk).map_err(|e| failed(path, format!("{where_}: {e}")))?;
    if loaders.is_empty() {
        log::warn!("Empty EFI partition detected ({where_}).");
        return Ok(false);
    }

    let mut env = LinuxEnv::default();
    let HolderEsps {
        mut members,
        numbers,
        reused,
    } = holder_members(path, &array.holders, &mut env)?;
    if reused.is_some() {
        // The mirror assembled at start is stopped: it would not see the
        // writes beneath it.
        for a in md::arrays() {
            let on_esp = |m: &String| {
                let holder = md::holder_of(m);
                array
                    .holders
                    .iter()
                    .zip(&numbers)
                    .any(|(h, &n)| *h == holder && md::partition_number(m) == Some(n))
            };
            if a.members.iter().any(on_esp) {
                md::stop(&a.name).map_err(|e| failed(path, e))?;
            }
        }
    }
    let fs_len = if let Some(data) = reused {
        data
    } else {
        let mut set = [0u8; 16];
        crate::linux::sys::random(&mut set);
        let devices: Vec<[u8; 16]> = (0..members.len())
            .map(|_| {
                let mut u = [0u8; 16];
                crate::linux::sys::random(&mut u);
                u
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        esp::write_superblocks(&mut members, set, &devices, now).map_err(|e| failed(path, e))?
    };
    log::info!(
        "Relocating EFI {where_} to the ESP mirror on {} (FAT {:04X}-{:04X} '{label}')",
        array.holders.join(", "),
        id >> 16,
        id & 0xffff
    );
    let mut mirror = Mirror {
        members,
        len: fs_len,
    };
    fat::format(&mut mirror, 0, fs_len, &label, id).map_err(|e| failed(path, e))?;
    let copied = copy_files(&mut src, &walk, &mut mirror, fs_len)
        .map_err(|e| failed(path, format!("{where_}: {e}")))?;
    mirror.flush().map_err(|e| failed(path, e))?;
    log::info!("copied {copied} files to the ESP mirror; erasing EFI partition {where_}");
    wipe_esp(path, &image_esp)?;

    let mut nvram = Efivarfs::open(nvram_dir).map_err(|e| failed(path, e))?;
    for (i, (m, n)) in mirror.members.iter_mut().zip(numbers).enumerate() {
        let dev = m.dev.as_mut();
        let table = table::read_existing(dev)
            .map_err(|e| failed(path, e))?
            .ok_or_else(|| failed(path, format!("{}: no table", dev.name())))?;
        let part = table
            .parts
            .iter()
            .find(|p| p.number == n)
            .ok_or_else(|| failed(path, format!("{}: no partition {n}", dev.name())))?;
        let hd =
            uefi::hard_drive(&table, part, dev.logical_block()).map_err(|e| failed(path, e))?;
        let labelled: Vec<Loader> = loaders
            .iter()
            .map(|l| Loader {
                path: l.path.clone(),
                label: format!("{} (RAID, part{i})", l.label),
            })
            .collect();
        uefi::register(&mut nvram, &hd, &labelled).map_err(|e| failed(path, e))?;
    }
    Ok(true)
}

/// `wipefs -a` of the image's ESP inside the array: its FAT boot sector
/// and backup go, so only the mirror is ever found and mounted.
fn wipe_esp(path: &str, esp: &Found) -> Result<(), RestError> {
    let mut dev = Disk::open(path, 512).map_err(|e| failed(path, e))?;
    let len = esp.len.min(1 << 20) as usize;
    let zeros = AlignedBuf::new(len, dev.logical_block().max(512) as usize);
    dev.write_at(esp.offset, zeros.as_slice())
        .and_then(|_| dev.flush())
        .map_err(|e| failed(path, format!("erasing the image's ESP: {e}")))
}

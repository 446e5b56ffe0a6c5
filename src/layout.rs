//! Partition layout for partition images, as ironic-python-agent makes it
//! (`disk_utils.make_partitions`): the first partition at 1 MiB, whole MiB
//! sizes, in the order ESP (uefi), BIOS boot (bios + gpt), ephemeral, swap,
//! config drive, root last. All arithmetic is checked; a layout that does not
//! fit is refused before anything is written.

use crate::plan::{BootMode, Label};
use crate::wire::guid::{types, Guid};
use crate::wire::mbr;
use alloc::vec::Vec;
use core::fmt;

pub const MIB: u64 = 1 << 20;
/// `[disk_utils]efi_system_partition_size`.
pub const ESP_MB: u64 = 550;
/// `[disk_utils]bios_boot_partition_size`.
pub const BIOS_BOOT_MB: u64 = 1;
/// Ironic's MAX_CONFIG_DRIVE_SIZE_MB for whole-disk images.
pub const MAX_CONFIGDRIVE_MB: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Esp,
    BiosBoot,
    Ephemeral,
    Swap,
    ConfigDrive,
    Root,
}

impl Role {
    /// The key ironic-python-agent uses in its `partitions` result.
    pub fn ironic_name(&self) -> &'static str {
        match self {
            Role::Esp => "efi system partition",
            Role::BiosBoot => "BIOS Boot partition",
            Role::Ephemeral => "ephemeral",
            Role::Swap => "swap",
            Role::ConfigDrive => "configdrive",
            Role::Root => "root",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub role: Role,
    /// 1-based partition number (the kernel's).
    pub number: u32,
    pub start_mib: u64,
    pub size_mib: u64,
    pub gpt_type: Guid,
    pub mbr_type: u8,
    /// MBR active flag.
    pub bootable: bool,
}

impl Part {
    pub fn offset(&self) -> u64 {
        self.start_mib * MIB
    }
    pub fn len(&self) -> u64 {
        self.size_mib * MIB
    }
    pub fn is_empty(&self) -> bool {
        self.size_mib == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub label: Label,
    pub boot_mode: BootMode,
    pub parts: Vec<Part>,
}

impl Layout {
    pub fn get(&self, role: Role) -> Option<&Part> {
        self.parts.iter().find(|p| p.role == role)
    }
    pub fn root(&self) -> &Part {
        self.get(Role::Root)
            .expect("every layout has a root partition")
    }
}

/// What the layout needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub boot_mode: BootMode,
    pub label: Label,
    pub root_mb: u64,
    pub swap_mb: u64,
    pub ephemeral_mb: u64,
    pub configdrive_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Needed and available MiB.
    DoesNotFit {
        needed_mib: u64,
        disk_mib: u64,
    },
    /// An MBR partition would end beyond 2^32 sectors.
    BeyondMbrLimit {
        role: Role,
        end_sector: u64,
    },
    /// More than four primary partitions on an MBR.
    TooManyMbrPartitions(usize),
    NoRoot,
    SectorSize(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DoesNotFit { needed_mib, disk_mib } => write!(
                f,
                "the layout needs {needed_mib} MiB (1 MiB lead-in, the partitions from root_mb, swap_mb, \
                 ephemeral_mb and the ESP/BIOS boot/config drive, 1 MiB left free at the end) \
                 but the disk has {disk_mib} MiB"
            ),
            Error::BeyondMbrLimit { role, end_sector } => write!(
                f,
                "the {} partition would end at sector {end_sector}, beyond the 2^32 sectors an MBR can address \
                 (use disk_label gpt)",
                role.ironic_name()
            ),
            Error::TooManyMbrPartitions(n) => {
                write!(f, "{n} partitions do not fit in an MBR's 4 primary slots (use disk_label gpt)")
            }
            Error::NoRoot => f.write_str("a partition image needs root_mb > 0"),
            Error::SectorSize(s) => write!(f, "sector size {s} does not divide 1 MiB"),
        }
    }
}

/// The layout for a disk of `disk_bytes` with `sector_size`-byte sectors.
pub fn plan(req: &Request, disk_bytes: u64, sector_size: u32) -> Result<Layout, Error> {
    if req.root_mb == 0 {
        return Err(Error::NoRoot);
    }
    if sector_size == 0 || MIB % sector_size as u64 != 0 {
        return Err(Error::SectorSize(sector_size));
    }
    let gpt = req.label == Label::Gpt;
    let mut wanted: Vec<(Role, u64)> = Vec::new();
    if req.boot_mode == BootMode::Uefi {
        wanted.push((Role::Esp, ESP_MB));
    }
    if req.boot_mode == BootMode::Bios && gpt {
        wanted.push((Role::BiosBoot, BIOS_BOOT_MB));
    }
    for (role, mb) in [
        (Role::Ephemeral, req.ephemeral_mb),
        (Role::Swap, req.swap_mb),
        (Role::ConfigDrive, req.configdrive_mb),
        (Role::Root, req.root_mb),
    ] {
        if mb > 0 {
            wanted.push((role, mb));
        }
    }
    if !gpt && wanted.len() > 4 {
        return Err(Error::TooManyMbrPartitions(wanted.len()));
    }
    let disk_mib = disk_bytes / MIB;
    let needed_mib = wanted
        .iter()
        .try_fold(2u64, |acc, (_, mb)| acc.checked_add(*mb))
        .unwrap_or(u64::MAX);
    if needed_mib > disk_mib {
        return Err(Error::DoesNotFit {
            needed_mib,
            disk_mib,
        });
    }
    let mut parts = Vec::new();
    let mut start = 1u64;
    for (i, (role, size)) in wanted.into_iter().enumerate() {
        let (gpt_type, mbr_type) = match role {
            Role::Esp => (types::ESP, mbr::TYPE_FAT32_LBA),
            Role::BiosBoot => (types::BIOS_BOOT, mbr::TYPE_LINUX),
            Role::Swap => (types::LINUX_SWAP, mbr::TYPE_SWAP),
            _ => (types::LINUX_DATA, mbr::TYPE_LINUX),
        };
        // parted's "boot" flag: active on msdos for the ESP (uefi) and the
        // root (bios); on gpt it is the ESP type itself.
        let bootable = !gpt
            && ((role == Role::Esp) || (role == Role::Root && req.boot_mode == BootMode::Bios));
        let part = Part {
            role,
            number: i as u32 + 1,
            start_mib: start,
            size_mib: size,
            gpt_type,
            mbr_type,
            bootable,
        };
        if !gpt {
            let end_sector = (start + size) * (MIB / sector_size as u64);
            if end_sector > u32::MAX as u64 + 1 {
                return Err(Error::BeyondMbrLimit { role, end_sector });
            }
        }
        parts.push(part);
        start += size;
    }
    Ok(Layout {
        label: req.label,
        boot_mode: req.boot_mode,
        parts,
    })
}

/// The device path of partition `number` on `disk`, as the kernel names it:
/// `/dev/sda1`, but `/dev/nvme0n1p1` when the disk name ends in a digit.
pub fn partition_path(disk: &str, number: u32) -> alloc::string::String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        alloc::format!("{disk}p{number}")
    } else {
        alloc::format!("{disk}{number}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const GIB: u64 = 1 << 30;

    fn req(boot_mode: BootMode, label: Label, eph: u64, swap: u64, cd: u64) -> Request {
        Request {
            boot_mode,
            label,
            root_mb: 1024,
            swap_mb: swap,
            ephemeral_mb: eph,
            configdrive_mb: cd,
        }
    }

    /// (role, start MiB, size MiB, bootable) for every combination, as
    /// ironic-python-agent 13's make_partitions lays them out.
    #[test]
    fn every_combination_matches_ironic() {
        use BootMode::*;
        use Label::*;
        use Role::*;
        type Row = (
            BootMode,
            Label,
            u64,
            u64,
            u64,
            &'static [(Role, u64, u64, bool)],
        );
        let table: &[Row] = &[
            (Bios, Msdos, 0, 0, 0, &[(Root, 1, 1024, true)]),
            (
                Bios,
                Msdos,
                0,
                512,
                0,
                &[(Swap, 1, 512, false), (Root, 513, 1024, true)],
            ),
            (
                Bios,
                Msdos,
                200,
                512,
                64,
                &[
                    (Ephemeral, 1, 200, false),
                    (Swap, 201, 512, false),
                    (ConfigDrive, 713, 64, false),
                    (Root, 777, 1024, true),
                ],
            ),
            (
                Bios,
                Gpt,
                0,
                0,
                0,
                &[(BiosBoot, 1, 1, false), (Root, 2, 1024, false)],
            ),
            (
                Bios,
                Gpt,
                200,
                512,
                64,
                &[
                    (BiosBoot, 1, 1, false),
                    (Ephemeral, 2, 200, false),
                    (Swap, 202, 512, false),
                    (ConfigDrive, 714, 64, false),
                    (Root, 778, 1024, false),
                ],
            ),
            (
                Uefi,
                Gpt,
                0,
                0,
                0,
                &[(Esp, 1, 550, false), (Root, 551, 1024, false)],
            ),
            (
                Uefi,
                Gpt,
                0,
                1024,
                0,
                &[
                    (Esp, 1, 550, false),
                    (Swap, 551, 1024, false),
                    (Root, 1575, 1024, false),
                ],
            ),
            (
                Uefi,
                Gpt,
                200,
                512,
                64,
                &[
                    (Esp, 1, 550, false),
                    (Ephemeral, 551, 200, false),
                    (Swap, 751, 512, false),
                    (ConfigDrive, 1263, 64, false),
                    (Root, 1327, 1024, false),
                ],
            ),
            (
                Uefi,
                Msdos,
                0,
                512,
                0,
                &[
                    (Esp, 1, 550, true),
                    (Swap, 551, 512, false),
                    (Root, 1063, 1024, false),
                ],
            ),
            (
                Uefi,
                Msdos,
                0,
                0,
                64,
                &[
                    (Esp, 1, 550, true),
                    (ConfigDrive, 551, 64, false),
                    (Root, 615, 1024, false),
                ],
            ),
        ];
        for (boot, label, eph, swap, cd, want) in table {
            let layout = plan(&req(*boot, *label, *eph, *swap, *cd), 8 * GIB, 512).unwrap();
            let got: Vec<_> = layout
                .parts
                .iter()
                .map(|p| (p.role, p.start_mib, p.size_mib, p.bootable))
                .collect();
            assert_eq!(
                got,
                want.to_vec(),
                "{boot:?} {label:?} eph {eph} swap {swap} cd {cd}"
            );
            for (i, p) in layout.parts.iter().enumerate() {
                assert_eq!(p.number, i as u32 + 1);
            }
        }
    }

    #[test]
    fn type_codes() {
        let l = plan(&req(BootMode::Uefi, Label::Gpt, 10, 10, 10), 8 * GIB, 512).unwrap();
        assert_eq!(l.get(Role::Esp).unwrap().gpt_type, types::ESP);
        assert_eq!(l.get(Role::Swap).unwrap().gpt_type, types::LINUX_SWAP);
        for r in [Role::Ephemeral, Role::ConfigDrive, Role::Root] {
            assert_eq!(l.get(r).unwrap().gpt_type, types::LINUX_DATA);
        }
        let l = plan(&req(BootMode::Bios, Label::Gpt, 0, 0, 0), 8 * GIB, 512).unwrap();
        assert_eq!(l.get(Role::BiosBoot).unwrap().gpt_type, types::BIOS_BOOT);
        let l = plan(&req(BootMode::Bios, Label::Msdos, 0, 10, 0), 8 * GIB, 512).unwrap();
        assert_eq!(l.get(Role::Swap).unwrap().mbr_type, 0x82);
        assert_eq!(l.root().mbr_type, 0x83);
        let l = plan(&req(BootMode::Uefi, Label::Msdos, 0, 0, 0), 8 * GIB, 4096).unwrap();
        assert_eq!(l.get(Role::Esp).unwrap().mbr_type, 0x0c);
    }

    #[test]
    fn last_mib_stays_free() {
        // 1 MiB lead-in + 1024 root + 1 MiB tail = 1026 MiB.
        let r = req(BootMode::Bios, Label::Msdos, 0, 0, 0);
        assert!(plan(&r, 1026 * MIB, 512).is_ok());
        assert_eq!(
            plan(&r, 1026 * MIB - 1, 512),
            Err(Error::DoesNotFit {
                needed_mib: 1026,
                disk_mib: 1025
            })
        );
        let huge = Request {
            root_mb: u64::MAX,
            ..r
        };
        assert!(matches!(
            plan(&huge, 8 * GIB, 512),
            Err(Error::DoesNotFit { .. })
        ));
    }

    #[test]
    fn mbr_limits() {
        let big = Request {
            root_mb: 3 << 20,
            ..req(BootMode::Bios, Label::Msdos, 0, 0, 0)
        };
        let err = plan(&big, 4 << 40, 512).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BeyondMbrLimit {
                    role: Role::Root,
                    ..
                }
            ),
            "{err:?}"
        );
        // 4096-byte sectors reach 16 TiB.
        assert!(plan(&big, 4 << 40, 4096).is_ok());
        let five = req(BootMode::Uefi, Label::Msdos, 10, 10, 10);
        assert_eq!(
            plan(&five, 8 * GIB, 512),
            Err(Error::TooManyMbrPartitions(5))
        );
        assert_eq!(
            plan(&Request { root_mb: 0, ..five }, 8 * GIB, 512),
            Err(Error::NoRoot)
        );
    }

    #[test]
    fn device_paths_like_the_kernel() {
        assert_eq!(partition_path("/dev/sda", 2), "/dev/sda2");
        assert_eq!(partition_path("/dev/nvme0n1", 1), "/dev/nvme0n1p1");
        assert_eq!(partition_path("/dev/md0", 3), "/dev/md0p3");
    }
}

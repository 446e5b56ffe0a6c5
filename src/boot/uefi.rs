//! UEFI boot entries for a deployed disk, the way ironic-python-agent makes
//! them with efibootmgr (`efi_utils.manage_uefi`): find the ESP, pick the
//! loaders on it (a shim `BOOTX64.CSV` wins and names its own label, else
//! every well-known loader file, labelled `ironic1`, `ironic2`…), drop
//! entries that carry the same label, and add one `Boot####` per loader at
//! the front of `BootOrder`.

use crate::deploy::table::{Existing, Found};
use crate::plan::Label;
use crate::wire::efi::{self, DiskSignature, HardDrive};
use crate::wire::guid::{types, Guid};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// File names ironic-python-agent accepts as loaders or loader hints
/// (`efi_utils.BOOTLOADERS_EFI`), compared without case.
pub const BOOTLOADERS: [&str; 13] = [
    "bootx64.csv",
    "bootaa64.csv",
    "boot.csv",
    "bootia32.efi",
    "bootx64.efi",
    "bootia64.efi",
    "bootarm.efi",
    "bootaa64.efi",
    "bootriscv32.efi",
    "bootriscv64.efi",
    "bootriscv128.efi",
    "grubaa64.efi",
    "winload.efi",
];

/// MBR partition type of an EFI system partition (parted's `esp` flag).
pub const MBR_TYPE_ESP: u8 = 0xef;

/// A loader to register: its path on the ESP as the firmware spells it
/// (`\EFI\debian\shimx64.efi`) and the entry's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    pub path: String,
    pub label: String,
}

/// One directory of the ESP: its path from the root (`EFI/debian`, or ""
/// for the root) and the names of its files, in directory order.
pub type Dir = crate::fs::fat::WalkedDir;

/// The loaders on the FAT filesystem `esp` (an image's ESP: a tenant's
/// bytes, read by rivet's own bounded FAT reader), chosen as
/// [`find_loaders`] chooses them.
pub fn esp_loaders(esp: Box<dyn crate::fs::ReadAt>) -> Result<Vec<Loader>, String> {
    let mut fat =
        crate::fs::fat::Fat::open(esp).map_err(|e| format!("not a FAT filesystem: {e}"))?;
    let walk = fat.walk().map_err(|e| e.to_string())?;
    loaders_in(&mut fat, &walk)
}

/// [`esp_loaders`] of a FAT filesystem already open and walked (for a
/// caller that reads its files too).
pub fn loaders_in(fat: &mut crate::fs::fat::Fat, walk: &[Dir]) -> Result<Vec<Loader>, String> {
    // Boot CSVs are a line long; anything past 64 KiB is not one.
    find_loaders(walk, &mut |path| {
        fat.read(path, 64 << 10).map_err(|e| e.to_string())
    })
}

/// The ESP of a table: GPT's ESP type, MBR's 0xEF.
pub fn find_esp(table: &Existing) -> Option<&Found> {
    table.parts.iter().find(|p| match table.label {
        Label::Gpt => p.gpt_type == Some(types::ESP),
        Label::Msdos => p.mbr_type == Some(MBR_TYPE_ESP),
    })
}

/// The hard drive node that names `part` of the disk `table` was read from.
pub fn hard_drive(table: &Existing, part: &Found, sector: u32) -> Result<HardDrive, String> {
    let signature = match table.label {
        Label::Gpt => DiskSignature::Gpt(
            Guid::parse(&part.partuuid)
                .ok_or_else(|| format!("partition {}: bad GUID {}", part.number, part.partuuid))?,
        ),
        Label::Msdos => {
            let id = u32::from_str_radix(table.disk_id.trim_start_matches("0x"), 16)
                .map_err(|_| format!("bad MBR disk signature {}", table.disk_id))?;
            if id == 0 {
                // efibootmgr -w would write one; rivet does not touch the
                // image's boot sector behind the operator's back.
                return Err(
                    "the image's MBR has no disk signature (0x00000000), so no boot entry can \
                     name the disk; give the image a signature (sfdisk --disk-id)"
                        .to_string(),
                );
            }
            DiskSignature::Mbr(id)
        }
    };
    Ok(HardDrive {
        number: part.number,
        start_lba: part.offset / sector as u64,
        size_lba: part.len / sector as u64,
        signature,
    })
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn firmware_path(relative: &str) -> String {
    format!("\\{}", relative.replace('/', "\\"))
}

/// The loaders of an ESP, walked top-down in directory order: the first
/// boot CSV found stands alone (it names the loader and the label, as shim
/// intends); otherwise every well-known loader file, labelled `ironicN`.
/// `read` returns a file's bytes by its path from the root.
pub fn find_loaders(
    walk: &[Dir],
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<Vec<Loader>, String> {
    let mut found = Vec::new();
    for dir in walk {
        for name in &dir.files {
            let lower = name.to_ascii_lowercase();
            if !BOOTLOADERS.contains(&lower.as_str()) {
                continue;
            }
            let relative = join(&dir.path, name);
            if lower.ends_with(".csv") {
                let csv = efi::parse_boot_csv(&read(&relative)?)
                    .map_err(|e| format!("{relative}: {e}"))?;
                return Ok(alloc::vec![Loader {
                    path: firmware_path(&join(&dir.path, &csv.loader)),
                    label: csv.label,
                }]);
            }
            found.push(relative);
        }
    }
    Ok(found
        .iter()
        .enumerate()
        .map(|(i, relative)| Loader {
            path: firmware_path(relative),
            label: format!("ironic{}", i + 1),
        })
        .collect())
}

/// The firmware's variables in `EFI_GLOBAL_VARIABLE`'s namespace, data
/// without the attribute word (efivarfs on Linux, a map in tests).
pub trait Nvram {
    fn names(&mut self) -> Result<Vec<String>, String>;
    fn get(&mut self, name: &str) -> Result<Option<Vec<u8>>, String>;
    /// Creates or replaces a non-volatile boot variable.
    fn set(&mut self, name: &str, data: &[u8]) -> Result<(), String>;
    fn delete(&mut self, name: &str) -> Result<(), String>;
}

/// Entry numbers and labels of the `Boot####` variables present.
pub fn boot_entries(nvram: &mut dyn Nvram) -> Result<Vec<(u16, String)>, String> {
    let mut out = Vec::new();
    for name in nvram.names()? {
        let Some(number) = efi::boot_number(&name) else {
            continue;
        };
        // An unreadable or foreign entry is left alone, as efibootmgr does.
        if let Some(data) = nvram.get(&name)? {
            if let Ok(opt) = efi::LoadOption::new_checked(&data[..]) {
                out.push((number, opt.description()));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn boot_order(nvram: &mut dyn Nvram) -> Result<Vec<u16>, String> {
    match nvram.get("BootOrder")? {
        Some(data) => efi::parse_boot_order(&data).map_err(|e| format!("BootOrder: {e}")),
        None => Ok(Vec::new()),
    }
}

/// `clean_uefi_nvram`: removes every `Boot####` whose device path, as
/// `efibootmgr -v` prints it, one of `patterns` matches (and its place in
/// `BootOrder`), as ironic-python-agent's `efi_utils.clean_boot_records`
/// does. Returns what went: number, label and path.
pub fn clean_entries(
    nvram: &mut dyn Nvram,
    patterns: &[super::pattern::Pattern],
) -> Result<Vec<(u16, String, String)>, String> {
    let mut removed = Vec::new();
    for name in nvram.names()? {
        let Some(number) = efi::boot_number(&name) else {
            continue;
        };
        let Some(data) = nvram.get(&name)? else {
            continue;
        };
        let Ok(opt) = efi::LoadOption::new_checked(&data[..]) else {
            continue; // unreadable: left alone, as efibootmgr leaves it
        };
        let path = efi::describe(opt.file_path_list());
        for p in patterns {
            if p.search(&path)
                .map_err(|e| format!("{name} ({path}): {e}"))?
            {
                remove_entry(nvram, number)?;
                removed.push((number, opt.description(), path));
                break;
            }
        }
    }
    Ok(removed)
}

/// Removes `Boot####` and its place in `BootOrder` (efibootmgr -b N -B).
pub fn remove_entry(nvram: &mut dyn Nvram, number: u16) -> Result<(), String> {
    nvram.delete(&efi::boot_variable(number))?;
    let order = boot_order(nvram)?;
    if order.contains(&number) {
        let kept: Vec<u16> = order.into_iter().filter(|&n| n != number).collect();
        nvram.set("BootOrder", &efi::encode_boot_order(&kept))?;
    }
    Ok(())
}

/// Adds an active entry for `loader` on the partition `hd` under the first
/// free number and puts it first in `BootOrder` (efibootmgr -c). The entry
/// is written before the order, so a crash leaves at worst an unused entry.
pub fn add_entry(nvram: &mut dyn Nvram, hd: &HardDrive, loader: &Loader) -> Result<u16, String> {
    // Every Boot#### counts as taken, readable or not.
    let used: Vec<u16> = nvram
        .names()?
        .iter()
        .filter_map(|n| efi::boot_number(n))
        .collect();
    let number = (0..=u16::MAX)
        .find(|n| !used.contains(n))
        .ok_or("no free Boot#### number")?;
    let option = efi::load_option(
        efi::LOAD_OPTION_ACTIVE,
        &loader.label,
        &efi::loader_path(hd, &loader.path),
    );
    nvram.set(&efi::boot_variable(number), &option)?;
    let mut order = alloc::vec![number];
    order.extend(boot_order(nvram)?.into_iter().filter(|&n| n != number));
    nvram.set("BootOrder", &efi::encode_boot_order(&order))?;
    Ok(number)
}

/// Registers every loader: entries with the same label (as they were
/// before this call) are removed first, so redeploying does not pile up
/// entries. Returns the numbers added, in loader order.
pub fn register(
    nvram: &mut dyn Nvram,
    hd: &HardDrive,
    loaders: &[Loader],
) -> Result<Vec<u16>, String> {
    let before = boot_entries(nvram)?;
    let mut added = Vec::new();
    for loader in loaders {
        for (number, label) in &before {
            if label.trim() == loader.label.trim() && !added.contains(number) {
                log::info!(
                    "removing boot entry {} with the same label '{label}'",
                    efi::boot_variable(*number)
                );
                remove_entry(nvram, *number)?;
            }
        }
        let n = add_entry(nvram, hd, loader)?;
        log::info!(
            "boot entry {} '{}': {}",
            efi::boot_variable(n),
            loader.label,
            efi::describe(&efi::loader_path(hd, &loader.path))
        );
        added.push(n);
    }
    Ok(added)
}

/// Firmware variables in memory; `fail_set` makes writes to one name fail
/// (a firmware whose variable store is full, say).
#[derive(Default)]
pub struct MemNvram {
    pub vars: alloc::collections::BTreeMap<String, Vec<u8>>,
    pub fail_set: Option<String>,
}

impl Nvram for MemNvram {
    fn names(&mut self) -> Result<Vec<String>, String> {
        Ok(self.vars.keys().cloned().collect())
    }
    fn get(&mut self, name: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.vars.get(name).cloned())
    }
    fn set(&mut self, name: &str, data: &[u8]) -> Result<(), String> {
        if self.fail_set.as_deref() == Some(name) {
            return Err(alloc::format!("{name}: No space left on device"));
        }
        self.vars.insert(name.into(), data.to_vec());
        Ok(())
    }
    fn delete(&mut self, name: &str) -> Result<(), String> {
        self.vars.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::pattern::Pattern;
    use alloc::vec;

    fn dir(path: &str, files: &[&str]) -> Dir {
        Dir {
            path: path.into(),
            files: files.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn utf16_bom(text: &str) -> Vec<u8> {
        let mut b = vec![0xff, 0xfe];
        b.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        b
    }

    /// Debian's ESP as grub-efi + shim-signed leave it.
    fn debian_esp() -> Vec<Dir> {
        vec![
            dir("", &[]),
            dir("EFI", &[]),
            dir("EFI/BOOT", &["BOOTX64.EFI", "fbx64.efi", "grubx64.efi"]),
            dir(
                "EFI/debian",
                &[
                    "shimx64.efi",
                    "grubx64.efi",
                    "mmx64.efi",
                    "BOOTX64.CSV",
                    "grub.cfg",
                ],
            ),
        ]
    }

    #[test]
    fn shim_csv_names_loader_and_label() {
        let mut reads = Vec::new();
        let loaders = find_loaders(&debian_esp(), &mut |p| {
            reads.push(p.to_string());
            Ok(utf16_bom(
                "shimx64.efi,debian,,This is the boot entry for debian\n",
            ))
        })
        .unwrap();
        assert_eq!(reads, vec!["EFI/debian/BOOTX64.CSV"]);
        assert_eq!(
            loaders,
            vec![Loader {
                path: "\\EFI\\debian\\shimx64.efi".into(),
                label: "debian".into()
            }]
        );
    }

    #[test]
    fn without_csv_every_known_loader_counts() {
        let walk = vec![
            dir("EFI/BOOT", &["BOOTX64.EFI", "grubx64.efi"]),
            dir("EFI/other", &["bootaa64.efi", "README"]),
        ];
        let loaders = find_loaders(&walk, &mut |_| unreachable!()).unwrap();
        assert_eq!(
            loaders,
            vec![
                Loader {
                    path: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
                    label: "ironic1".into()
                },
                Loader {
                    path: "\\EFI\\other\\bootaa64.efi".into(),
                    label: "ironic2".into()
                },
            ]
        );
        assert_eq!(
            find_loaders(&[dir("", &["x.txt"])], &mut |_| unreachable!()),
            Ok(vec![])
        );
    }

    #[test]
    fn unreadable_or_malformed_csv_is_an_error_naming_it() {
        let err = find_loaders(&debian_esp(), &mut |_| Ok(utf16_bom("shimx64.efi"))).unwrap_err();
        assert!(err.contains("EFI/debian/BOOTX64.CSV"), "{err}");
        let err = find_loaders(&debian_esp(), &mut |_| Err("read error".into())).unwrap_err();
        assert_eq!(err, "read error");
    }

    fn hd() -> HardDrive {
        HardDrive {
            number: 1,
            start_lba: 2048,
            size_lba: 32768,
            signature: DiskSignature::Gpt(
                Guid::parse("11111111-2222-4333-8444-555555555555").unwrap(),
            ),
        }
    }

    fn entry(label: &str) -> Vec<u8> {
        efi::load_option(1, label, &efi::node::END_NODE)
    }

    #[test]
    fn register_takes_first_free_number_and_goes_first() {
        let mut nv = MemNvram::default();
        nv.vars.insert("Boot0000".into(), entry("UiApp"));
        nv.vars.insert("Boot0002".into(), entry("UEFI Misc Device"));
        nv.vars
            .insert("BootOrder".into(), efi::encode_boot_order(&[0, 2]));
        nv.vars.insert("BootCurrent".into(), vec![2, 0]);
        let loader = Loader {
            path: "\\EFI\\debian\\shimx64.efi".into(),
            label: "debian".into(),
        };
        assert_eq!(
            register(&mut nv, &hd(), std::slice::from_ref(&loader)),
            Ok(vec![1])
        );
        assert_eq!(
            efi::parse_boot_order(&nv.vars["BootOrder"]).unwrap(),
            vec![1, 0, 2]
        );
        let opt = efi::LoadOption::new_checked(&nv.vars["Boot0001"][..]).unwrap();
        assert_eq!(opt.attributes(), efi::LOAD_OPTION_ACTIVE);
        assert_eq!(opt.description(), "debian");
        assert_eq!(
            efi::describe(opt.file_path_list()),
            "HD(1,GPT,11111111-2222-4333-8444-555555555555,0x800,0x8000)/File(\\EFI\\debian\\shimx64.efi)"
        );

        // Deploying again replaces the entry instead of adding a second.
        assert_eq!(register(&mut nv, &hd(), &[loader]), Ok(vec![1]));
        let labels: Vec<String> = boot_entries(&mut nv)
            .unwrap()
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(labels, vec!["UiApp", "debian", "UEFI Misc Device"]);
        assert_eq!(
            efi::parse_boot_order(&nv.vars["BootOrder"]).unwrap(),
            vec![1, 0, 2]
        );
    }

    #[test]
    fn register_without_boot_order_and_with_foreign_entries() {
        let mut nv = MemNvram::default();
        nv.vars.insert("Boot0000".into(), vec![1, 2, 3]); // unreadable: kept
        let loaders = [
            Loader {
                path: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
                label: "ironic1".into(),
            },
            Loader {
                path: "\\EFI\\BOOT\\grubaa64.efi".into(),
                label: "ironic2".into(),
            },
        ];
        assert_eq!(register(&mut nv, &hd(), &loaders), Ok(vec![1, 2]));
        assert_eq!(nv.vars["Boot0000"], vec![1, 2, 3]);
        assert_eq!(
            efi::parse_boot_order(&nv.vars["BootOrder"]).unwrap(),
            vec![2, 1]
        );
    }

    #[test]
    fn a_failed_boot_order_write_is_reported() {
        let mut nv = MemNvram {
            fail_set: Some("BootOrder".into()),
            ..Default::default()
        };
        let loader = Loader {
            path: "\\a.efi".into(),
            label: "x".into(),
        };
        let err = register(&mut nv, &hd(), &[loader]).unwrap_err();
        assert!(err.contains("BootOrder"), "{err}");
    }

    fn found(number: u32, gpt_type: Option<Guid>, mbr_type: Option<u8>) -> Found {
        Found {
            number,
            offset: 1 << 20,
            len: 64 << 20,
            gpt_type,
            mbr_type,
            partuuid: "11111111-2222-4333-8444-555555555555".into(),
            name: None,
            bootable: false,
        }
    }

    #[test]
    fn esp_is_found_by_type_on_either_label() {
        let gpt = Existing {
            label: Label::Gpt,
            disk_id: "x".into(),
            parts: vec![
                found(1, Some(types::LINUX_DATA), None),
                found(2, Some(types::ESP), None),
            ],
        };
        let esp = find_esp(&gpt).unwrap();
        assert_eq!(esp.number, 2);
        let hd = hard_drive(&gpt, esp, 512).unwrap();
        assert_eq!((hd.start_lba, hd.size_lba), (2048, 131072));
        assert_eq!(hard_drive(&gpt, esp, 4096).unwrap().start_lba, 256);

        let mut mbr = Existing {
            label: Label::Msdos,
            disk_id: "0x0badcafe".into(),
            parts: vec![
                found(1, None, Some(0x83)),
                found(3, None, Some(MBR_TYPE_ESP)),
            ],
        };
        let esp = find_esp(&mbr).unwrap().clone();
        assert_eq!(
            hard_drive(&mbr, &esp, 512).unwrap().signature,
            DiskSignature::Mbr(0x0bad_cafe)
        );
        mbr.disk_id = "0x00000000".into();
        assert!(hard_drive(&mbr, &esp, 512)
            .unwrap_err()
            .contains("no disk signature"));
        mbr.parts.pop();
        assert_eq!(find_esp(&mbr), None);
    }

    /// OVMF's network entry as the firmware writes it: PciRoot(0x0),
    /// Pci(0x3,0x0), MAC(525400123456,1).
    fn network_entry() -> Vec<u8> {
        let mut path = alloc::vec![0x02, 0x01, 12, 0];
        path.extend(0x0a03_41d0u32.to_le_bytes());
        path.extend(0u32.to_le_bytes());
        path.extend([0x01, 0x01, 6, 0, 0x00, 0x03]);
        path.extend([0x03, 0x0b, 37, 0]);
        let mut mac = [0u8; 32];
        mac[..6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        path.extend(mac);
        path.push(1);
        path.extend(efi::node::END_NODE);
        efi::load_option(1, "UEFI PXEv4 (MAC:525400123456)", &path)
    }

    #[test]
    fn clean_uefi_nvram_removes_what_the_patterns_match_as_efibootmgr_prints_it() {
        let mut nv = MemNvram::default();
        nv.vars.insert("Boot0000".into(), network_entry());
        nv.vars.insert(
            "Boot0001".into(),
            efi::load_option(
                1,
                "debian",
                &efi::loader_path(&hd(), "\\EFI\\debian\\shimx64.efi"),
            ),
        );
        nv.vars.insert("Boot0003".into(), entry("UiApp"));
        nv.vars.insert("Boot0004".into(), vec![1, 2, 3]); // unreadable: left alone
        nv.vars
            .insert("BootOrder".into(), efi::encode_boot_order(&[1, 0, 3]));
        let net = efi::LoadOption::new_checked(&nv.vars["Boot0000"][..]).unwrap();
        assert_eq!(
            efi::describe(net.file_path_list()),
            "PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)"
        );
        let patterns: Vec<Pattern> = [r"^HD\(", r"shim.*\.efi", r"grub.*\.efi"]
            .iter()
            .map(|p| Pattern::compile(p).unwrap())
            .collect();
        let removed = clean_entries(&mut nv, &patterns).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!((removed[0].0, removed[0].1.as_str()), (1, "debian"));
        assert!(removed[0].2.starts_with("HD(1,GPT,"));
        assert!(!nv.vars.contains_key("Boot0001"));
        assert!(nv.vars.contains_key("Boot0000") && nv.vars.contains_key("Boot0004"));
        assert_eq!(
            efi::parse_boot_order(&nv.vars["BootOrder"]).unwrap(),
            vec![0, 3]
        );
        // A pattern for the network entry, case ignored as Python's re.I.
        let mac = [Pattern::compile(r"mac\(525400").unwrap()];
        assert_eq!(clean_entries(&mut nv, &mac).unwrap()[0].0, 0);
        assert_eq!(
            efi::parse_boot_order(&nv.vars["BootOrder"]).unwrap(),
            vec![3]
        );
    }
}

//! Software RAID as ironic-python-agent builds it from a node's
//! `target_raid_config` (hardware.py `validate_configuration` and
//! `_do_create_configuration`, raid_utils.py): which logical disks, checked
//! with the real agent's words, and where each one's partition lies on every
//! holder disk. Pure arithmetic; the disks are written by the agent.
//!
//! The layout rules, as the real agent applies them: each holder gets a new
//! table (GPT under UEFI, else the node's `disk_label`, msdos by default);
//! the first RAID partition starts at 551 MiB under UEFI (room for the
//! 550 MiB ESP install_bootloader adds), at 8 MiB for BIOS on GPT, at the
//! first aligned sector (1 MiB) on msdos; a logical disk of `size_gb` *N*
//! ends at the absolute *N* GiB on its first partition (parted's `mkpart
//! 551MiB NGiB`: it is 551 MiB short), at start + *N* GiB after that; the
//! `MAX` one comes last and runs to the end of the disk.

use crate::plan::{BootMode, Label};
use crate::wire::md::Level;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::Value;

pub mod esp;
pub mod members;

const MIB_SECTORS: u64 = 2048;
const GIB_SECTORS: u64 = 1 << 21;
/// The ESP the real agent leaves room for under UEFI (raid_utils.ESP_SIZE_MIB).
pub const ESP_MIB: u64 = 550;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Gib(u64),
    Max,
}

/// One entry of `logical_disks` with `controller: software`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalDisk {
    pub size: Size,
    pub level: Level,
    pub volume_name: Option<String>,
    /// None when the key is absent (the real agent tells absent from false).
    pub is_root_volume: Option<bool>,
    /// Root-device-hint dicts choosing the holders; None: every disk.
    pub physical_disks: Option<Vec<Value>>,
}

/// A validated software RAID configuration, logical disks in the order the
/// arrays are made (md0 first): as given, but the `MAX` one moved last.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub logical_disks: Vec<LogicalDisk>,
}

/// ironic-python-agent's SUPPORTED_SOFTWARE_RAID_LEVELS, as md levels.
fn level(s: &str) -> Option<Level> {
    Some(match s {
        "0" => Level::Raid0,
        "1" => Level::Raid1,
        "1+0" => Level::Raid10,
        "5" => Level::Raid5,
        "6" => Level::Raid6,
        _ => return None,
    })
}

/// Whether any logical disk asks for software RAID (the real agent does
/// nothing for a configuration without one: a RAID card's business).
pub fn is_software(raid_config: &Value) -> bool {
    raid_config["logical_disks"]
        .as_array()
        .is_some_and(|l| l.iter().any(|d| d["controller"] == "software"))
}

/// validate_configuration: every error found, joined as the real agent
/// joins them, under its heading. `node_uuid` names the node;
/// `skip_volume_names` is whether `skip_block_devices` names volumes;
/// `disk_count` the machine's disks (RAID 5 needs 3, RAID 6 4).
pub fn validate(
    raid_config: &Value,
    node_uuid: &str,
    skip_volume_names: bool,
    disk_count: usize,
) -> Result<Config, String> {
    let Some(disks) = raid_config["logical_disks"]
        .as_array()
        .filter(|l| !l.is_empty())
    else {
        return Err("RAID config contains no logical disks".into());
    };
    let mut errors: Vec<String> = Vec::new();
    let mut err = |e: &str| {
        if !errors.iter().any(|x| x == e) {
            errors.push(e.to_string())
        }
    };
    if disks.len() > 2 {
        err("Software RAID configuration requires one or two logical disks");
    }
    let mut names: Vec<&str> = Vec::new();
    let mut root_selected = false;
    let mut parsed = Vec::new();
    // More than two is refused anyway; the first eight are checked for their
    // own errors too (bounded work whatever the conductor sends).
    for d in disks.iter().take(8) {
        if d["controller"] != "software" {
            err(
                "Software RAID configuration requires all logical disks to have \
                 'controller'='software'",
            );
        }
        let volume_name = match d.get("volume_name") {
            None | Some(Value::Null) => {
                if skip_volume_names {
                    err(
                        "All logical disks are required to have a volume name specified as \
                         a volume name is mentioned in the property skip block devices.",
                    );
                }
                None
            }
            Some(Value::String(n)) if n.len() <= 32 && !n.contains(['\0', '/']) => {
                if names.contains(&n.as_str()) {
                    err(&format!("Duplicate software RAID device name {n} detected"));
                }
                names.push(n);
                Some(n.clone())
            }
            // md's name field holds 32 bytes; a path separator would make
            // /dev/md/<name> another directory.
            Some(other) => {
                err(&format!(
                    "volume_name {other} must be a string of at most 32 bytes without '/'"
                ));
                None
            }
        };
        let is_root_volume = d.get("is_root_volume").and_then(Value::as_bool);
        if is_root_volume == Some(true) {
            if root_selected {
                err(
                    "Software RAID configuration allows only one logical disk to be marked \
                     as is_root_volume",
                );
            }
            root_selected = true;
        }
        let physical_disks = match d.get("physical_disks") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) if list.len() >= 2 => {
                if list.iter().any(|h| !h.is_object()) {
                    err(
                        "The physical_disks parameter for software RAID must be a list of \
                         device hints (dictionaries)",
                    );
                }
                Some(list.clone())
            }
            Some(_) => {
                err(
                    "The physical_disks parameter for software RAID must be a list with at \
                     least 2 items, each specifying a disk in the device hints format",
                );
                None
            }
        };
        let size = match &d["size_gb"] {
            Value::String(s) if s == "MAX" => Some(Size::Max),
            v => v.as_u64().filter(|&n| n > 0).map(Size::Gib),
        };
        if size.is_none() {
            err(&format!(
                "size_gb {} must be a positive number of GiB or \"MAX\"",
                d["size_gb"]
            ));
        }
        let raid_level = d["raid_level"].as_str().unwrap_or("");
        let lvl = level(raid_level);
        if lvl.is_none() {
            err(&format!(
                "Software RAID configuration does not support RAID level {}",
                d["raid_level"]
            ));
        }
        if let (Some(size), Some(level)) = (size, lvl) {
            parsed.push(LogicalDisk {
                size,
                level,
                volume_name,
                is_root_volume,
                physical_disks,
            });
        }
    }
    if disks[0]["raid_level"] != "1" {
        err("Software RAID Configuration requires RAID-1 for the first logical disk");
    }
    if disks.len() == 2 {
        if disks[0]["size_gb"] == "MAX" && disks[1]["size_gb"] == "MAX" {
            err("Software RAID can have only one RAID device with size 'MAX'");
        }
        let second = disks[1]["raid_level"].as_str();
        let needs = match second {
            Some("5") => 3,
            Some("6") => 4,
            _ => 0,
        };
        if disk_count < needs {
            err(&format!(
                "Software RAID configuration is not possible for RAID level {} with only \
                 {disk_count} block devices found.",
                second.unwrap_or_default()
            ));
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "Could not validate Software RAID config for {node_uuid}: {}",
            errors.join("; ")
        ));
    }
    // MAX last: it takes what the others leave.
    parsed.sort_by_key(|d| d.size == Size::Max);
    Ok(Config {
        logical_disks: parsed,
    })
}

/// The node's table type for RAID holders (utils.get_partition_table_type_from_specs):
/// GPT under UEFI, else the `disk_label` capability (instance_info over
/// properties), msdos by default.
pub fn holder_label(boot: BootMode, disk_label: Option<&str>) -> Label {
    match (boot, disk_label) {
        (BootMode::Uefi, _) | (_, Some("gpt")) => Label::Gpt,
        _ => Label::Msdos,
    }
}

/// A RAID partition on a holder: sectors `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// Where `parted -a optimal -- mkpart primary START -1` ends a partition
/// (one past its last sector) on a disk of `sectors`: "-1" is 1 MB (10^6
/// bytes) before the end, give or take half a MB; the MiB-aligned end
/// nearest to it within that range, else that point itself (measured
/// against parted 3.5 by tests/raid_host.rs).
pub fn parted_max_end(sectors: u64) -> u64 {
    // 10^6 / 512 = 1953.125 sectors: the end sector, rounded, is 1953
    // before the last; half a MB is 976.5625 sectors.
    let target = sectors.saturating_sub(1953);
    let below = target.saturating_add(1) / MIB_SECTORS * MIB_SECTORS;
    let nearest = [below, below.saturating_add(MIB_SECTORS)]
        .into_iter()
        .filter(|&e| e > 0 && (e - 1).abs_diff(target) <= 976)
        .min_by_key(|&e| (e - 1).abs_diff(target));
    nearest.unwrap_or(target.saturating_add(1))
}

/// Where the RAID partitions of one holder lie, in the order of `sizes`
/// (the sizes of the logical disks that use this holder, in creation
/// order); `sectors` is the holder's size in 512-byte sectors.
pub fn holder_spans(
    sectors: u64,
    boot: BootMode,
    label: Label,
    sizes: &[Size],
) -> Result<Vec<Span>, String> {
    let first = match (boot, label) {
        (BootMode::Uefi, _) => (ESP_MIB + 1) * MIB_SECTORS,
        (BootMode::Bios, Label::Gpt) => 8 * MIB_SECTORS,
        (BootMode::Bios, Label::Msdos) => MIB_SECTORS,
    };
    // One past the last usable sector: the backup GPT takes 33 sectors.
    let limit = match label {
        Label::Gpt => sectors.saturating_sub(33),
        Label::Msdos => sectors,
    };
    let mut spans = Vec::new();
    let mut start = first;
    for (i, size) in sizes.iter().enumerate() {
        let end = match size {
            Size::Max => parted_max_end(sectors),
            // The first partition ends at the absolute size (parted's
            // `mkpart 551MiB 10GiB`), the next ones size GiB later.
            Size::Gib(n) if i == 0 => n.saturating_mul(GIB_SECTORS),
            Size::Gib(n) => start.saturating_add(n.saturating_mul(GIB_SECTORS)),
        };
        if end <= start || end > limit {
            return Err(format!(
                "a {} RAID partition from sector {start} does not fit on a disk of {sectors} \
                 sectors (usable up to sector {limit})",
                match size {
                    Size::Max => "MAX".to_string(),
                    Size::Gib(n) => format!("{n} GiB"),
                }
            ));
        }
        spans.push(Span { start, end });
        start = end;
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ld(size: Value, level: &str) -> Value {
        json!({"size_gb": size, "raid_level": level, "controller": "software"})
    }

    #[test]
    fn a_mirror_and_a_stripe_in_creation_order() {
        let c = validate(
            &json!({"logical_disks": [ld(json!("MAX"), "1"), ld(json!(10), "0")]}),
            "n",
            false,
            2,
        )
        .unwrap();
        // MAX moved last, as the real agent reorders before creating.
        assert_eq!(c.logical_disks[0].size, Size::Gib(10));
        assert_eq!(c.logical_disks[0].level, Level::Raid0);
        assert_eq!(c.logical_disks[1].size, Size::Max);
        assert!(is_software(&json!({"logical_disks": [ld(json!(1), "1")]})));
        assert!(!is_software(
            &json!({"logical_disks": [{"size_gb": 1, "raid_level": "1"}]})
        ));
    }

    #[test]
    fn validation_errors_in_the_real_agents_words() {
        let e = |cfg: Value, skip: bool, disks: usize| {
            validate(&cfg, "node-1", skip, disks).unwrap_err()
        };
        assert_eq!(
            e(json!({}), false, 2),
            "RAID config contains no logical disks"
        );
        assert_eq!(
            e(json!({"logical_disks": [ld(json!(10), "0")]}), false, 2),
            "Could not validate Software RAID config for node-1: Software RAID Configuration \
             requires RAID-1 for the first logical disk"
        );
        let three =
            json!({"logical_disks": [ld(json!(1), "1"), ld(json!(1), "1"), ld(json!(1), "1")]});
        assert!(e(three, false, 2).contains("requires one or two logical disks"));
        // Thousands of logical disks: refused, with a bounded message.
        let many: Vec<Value> = (0..5000)
            .map(|i| json!({"size_gb": 1, "raid_level": "1", "controller": "software", "volume_name": format!("v{}", i % 7)}))
            .collect();
        let msg = e(json!({"logical_disks": many}), false, 2);
        assert!(
            msg.contains("requires one or two logical disks") && msg.len() < 1000,
            "{msg}"
        );
        let both_max = json!({"logical_disks": [ld(json!("MAX"), "1"), ld(json!("MAX"), "0")]});
        assert!(e(both_max, false, 2).contains("only one RAID device with size 'MAX'"));
        let r5 = json!({"logical_disks": [ld(json!(10), "1"), ld(json!("MAX"), "5")]});
        assert!(e(r5.clone(), false, 2)
            .contains("not possible for RAID level 5 with only 2 block devices found."));
        assert!(validate(&r5, "n", false, 3).is_ok());
        let r2 = json!({"logical_disks": [ld(json!(10), "1"), ld(json!("MAX"), "2")]});
        assert!(e(r2, false, 2).contains("does not support RAID level \"2\""));
        let mut hw = ld(json!(10), "1");
        hw["controller"] = json!("megaraid");
        assert!(e(json!({"logical_disks": [hw]}), false, 2).contains("'controller'='software'"));
        let unnamed = json!({"logical_disks": [ld(json!(10), "1")]});
        assert!(e(unnamed, true, 2).contains("required to have a volume name"));
        let mut a = ld(json!(10), "1");
        a["volume_name"] = json!("root");
        a["is_root_volume"] = json!(true);
        let pair = json!({"logical_disks": [a.clone(), a]});
        let both = e(pair, false, 2);
        assert!(
            both.contains("Duplicate software RAID device name root detected"),
            "{both}"
        );
        assert!(
            both.contains("only one logical disk to be marked as is_root_volume"),
            "{both}"
        );
        let mut p = ld(json!(10), "1");
        p["physical_disks"] = json!([{"name": "/dev/sda"}]);
        assert!(e(json!({"logical_disks": [p.clone()]}), false, 2).contains("at least 2 items"));
        p["physical_disks"] = json!([{"name": "/dev/sda"}, "/dev/sdb"]);
        assert!(e(json!({"logical_disks": [p]}), false, 2).contains("(dictionaries)"));
        let mut n = ld(json!(10), "1");
        n["volume_name"] = json!("a/b");
        assert!(e(json!({"logical_disks": [n]}), false, 2).contains("without '/'"));
        assert!(e(json!({"logical_disks": [ld(json!(0), "1")]}), false, 2).contains("size_gb 0"));
    }

    #[test]
    fn holder_partitions_where_the_real_agents_parted_puts_them() {
        let disk = 20 * GIB_SECTORS;
        // UEFI: 551 MiB to 10 GiB, then 10 GiB to the last MiB before the backup GPT.
        let s = holder_spans(
            disk,
            BootMode::Uefi,
            Label::Gpt,
            &[Size::Gib(10), Size::Max],
        )
        .unwrap();
        assert_eq!(
            s[0],
            Span {
                start: 551 * 2048,
                end: 10 * GIB_SECTORS
            }
        );
        assert_eq!(
            s[1],
            Span {
                start: 10 * GIB_SECTORS,
                end: disk - 2048
            }
        );
        // BIOS on GPT from 8 MiB; on msdos from 1 MiB, MAX to the disk's last MiB.
        let s = holder_spans(
            disk,
            BootMode::Bios,
            Label::Gpt,
            &[Size::Gib(5), Size::Gib(5)],
        )
        .unwrap();
        assert_eq!(s[0].start, 8 * 2048);
        assert_eq!(
            s[1],
            Span {
                start: 5 * GIB_SECTORS,
                end: 10 * GIB_SECTORS
            }
        );
        // MAX as parted's "-1": the MiB boundary nearest 1 MB before the end.
        let s = holder_spans(disk + 100, BootMode::Bios, Label::Msdos, &[Size::Max]).unwrap();
        assert_eq!(
            s[0],
            Span {
                start: 2048,
                end: disk - 2048
            }
        );
        assert_eq!(parted_max_end(disk + 1000), disk);
        // No MiB boundary within half a MB of it: the point itself.
        assert_eq!(parted_max_end(disk + 3000), disk + 3000 - 1952);
        // Any size, however absurd, without overflow: still about 1 MB
        // before the end.
        let end = parted_max_end(u64::MAX);
        assert!(end > u64::MAX - 2930 && end < u64::MAX - 975, "{end}");
        assert_eq!(parted_max_end(0), 1);
        // Too big, or a first size inside the ESP's room.
        assert!(holder_spans(disk, BootMode::Uefi, Label::Gpt, &[Size::Gib(20)]).is_err());
        let small = holder_spans(
            disk,
            BootMode::Uefi,
            Label::Gpt,
            &[Size::Gib(1), Size::Gib(30)],
        );
        assert!(small.unwrap_err().contains("30 GiB"));
        assert_eq!(holder_label(BootMode::Uefi, Some("msdos")), Label::Gpt);
        assert_eq!(holder_label(BootMode::Bios, Some("gpt")), Label::Gpt);
        assert_eq!(holder_label(BootMode::Bios, None), Label::Msdos);
    }
}

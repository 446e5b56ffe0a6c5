//! md arrays in the running kernel, through md's sysfs interface (no mdadm,
//! no ioctls): an array device made by name (`md_mod`'s `new_array`), its
//! metadata version set, each member handed over by device number (the
//! kernel reads and checks its superblock), then run; arrays listed with
//! their members, and stopped. Members are found by reading superblocks
//! (raid::members), so arrays made before a reboot are assembled again: the
//! kernel itself only autodetects 0.90 arrays.

use super::coldplug;
use super::inventory::read_trimmed;
use crate::raid::members;
use crate::wire::md::{self, Level, Version};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SYS_BLOCK: &str = "/sys/class/block";

/// Loads md and the personality `level` needs: md asks the kernel's
/// usermode modprobe for personalities, and a rivet ramdisk has none.
pub fn load_modules(level: Level) -> Result<(), String> {
    for name in ["md_mod", level.module()] {
        coldplug::load_named(name, "software RAID")
            .map_err(|e| format!("{level} needs the kernel module {name}: {e}"))?;
    }
    Ok(())
}

/// An array the kernel runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array {
    /// `md0`.
    pub name: String,
    /// Member block devices (`vda1`), in no particular order.
    pub members: Vec<String>,
    /// The disks holding the members (`vda`).
    pub holders: Vec<String>,
}

impl Array {
    /// The name in the members' superblocks (`volume_name`), if any: read
    /// from the first member when asked (the listing itself is sysfs only).
    pub fn volume_name(&self) -> Option<String> {
        let (_, sb) = superblock(self.members.first()?)?;
        let sb = md::Superblock::new_checked(&sb[..]).ok()?;
        let name = short_name(sb.name());
        (!name.is_empty()).then_some(name)
    }
}

/// mdadm's `host:name` as the name after the colon (ironic-python-agent's
/// reading of it).
fn short_name(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    name.rsplit(':').next().unwrap_or_default().to_string()
}

fn block(name: &str) -> PathBuf {
    Path::new(SYS_BLOCK).join(name)
}

/// The names in a directory, sorted (none if it cannot be read): one
/// directory walk for every listing here.
fn names(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

/// The disk a partition belongs to (itself for a whole disk).
pub fn holder_of(name: &str) -> String {
    fs::canonicalize(block(name))
        .ok()
        .filter(|p| p.join("partition").exists())
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| name.to_string())
}

/// A partition's number (`vda2` → 2); None for a whole disk.
pub fn partition_number(name: &str) -> Option<u32> {
    read_trimmed(&block(name).join("partition"))?.parse().ok()
}

/// Every array the kernel has, running or being assembled.
pub fn arrays() -> Vec<Array> {
    let mut found = Vec::new();
    for name in names(Path::new(SYS_BLOCK)) {
        let md_dir = block(&name).join("md");
        if !name.starts_with("md") || !md_dir.is_dir() {
            continue;
        }
        let members: Vec<String> = names(&md_dir)
            .iter()
            .filter_map(|n| n.strip_prefix("dev-").map(str::to_string))
            .collect();
        let mut holders: Vec<String> = members.iter().map(|m| holder_of(m)).collect();
        holders.sort();
        holders.dedup();
        found.push(Array {
            name,
            members,
            holders,
        });
    }
    found
}

/// A block device's 1.x superblock, if it has one.
pub fn superblock(name: &str) -> Option<(Version, [u8; md::LEN])> {
    let sectors: u64 = read_trimmed(&block(name).join("size"))?.parse().ok()?;
    let bytes = sectors.checked_mul(512)?;
    let mut dev = super::blockdev::Disk::open_read_only(&format!("/dev/{name}"), 512).ok()?;
    members::find(&mut dev, 0, bytes).ok().flatten()
}

/// Stops an array (md's `clear`: stopped and forgotten; its members keep
/// their superblocks).
pub fn stop(name: &str) -> Result<(), String> {
    let state = block(name).join("md/array_state");
    fs::write(&state, "clear").map_err(|e| format!("stopping /dev/{name}: {e}"))?;
    log::info!("software RAID: /dev/{name} stopped");
    Ok(())
}

/// A free md device number: `wanted` if free, else the lowest free one
/// (arrays found in disk order take md0, md1, … as create made them:
/// array *i* on each holder's partition *i*+1).
pub fn free_minor(wanted: Option<u32>) -> Option<u32> {
    // An array device without members (made, never run, or cleared) is free.
    let used = has_members;
    wanted
        .filter(|&n| n < 128 && !used(n))
        .or_else(|| (0..128).find(|&n| !used(n)))
}

fn has_members(n: u32) -> bool {
    names(&block(&format!("md{n}")).join("md"))
        .iter()
        .any(|e| e.starts_with("dev-"))
}

/// Assembles and runs `/dev/md<minor>` from member block devices (`vda1`)
/// whose superblocks say they belong together. Returns `/dev/mdN`.
pub fn start(minor: u32, version: Version, members: &[String]) -> Result<String, String> {
    let name = format!("md{minor}");
    let md_dir = block(&name).join("md");
    if !md_dir.exists() {
        fs::write("/sys/module/md_mod/parameters/new_array", &name)
            .map_err(|e| format!("creating /dev/{name}: {e}"))?;
    }
    let set = |file: &str, value: &str| {
        fs::write(md_dir.join(file), value)
            .map_err(|e| format!("/dev/{name}: writing {value} to md/{file}: {e}"))
    };
    set("metadata_version", &version.to_string())?;
    for m in members {
        let dev =
            read_trimmed(&block(m).join("dev")).ok_or_else(|| format!("no block device {m}"))?;
        set("new_dev", &dev)?;
    }
    if let Err(e) = set("array_state", "active") {
        // Leave nothing half-made behind.
        let _ = fs::write(md_dir.join("array_state"), "clear");
        return Err(e);
    }
    let path = format!("/dev/{name}");
    wait_for(&path)?;
    log::info!(
        "software RAID: {path} running ({} members: {})",
        members.len(),
        members.join(", ")
    );
    Ok(path)
}

/// Waits for devtmpfs to show a device node.
pub fn wait_for(path: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(path).exists() {
        if Instant::now() > deadline {
            return Err(format!("{path} did not appear within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Block devices (disks and partitions) that are no array's member.
fn candidates(running: &[Array]) -> Vec<String> {
    names(Path::new(SYS_BLOCK))
        .into_iter()
        .filter(|n| {
            !["loop", "ram", "zram", "md", "sr", "fd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .filter(|n| !running.iter().any(|a| a.members.contains(n)))
        .collect()
}

/// The members found of one array (one set UUID).
struct FoundSet {
    uuid: [u8; 16],
    version: Version,
    name: String,
    disks: u32,
    level: Level,
    devs: Vec<String>,
}

/// Finds the 1.x members on every disk and partition and runs each
/// complete array (ironic-python-agent's `mdadm --assemble --scan`); an
/// array named `mdN` gets that number when it is free. Returns the arrays
/// started; an incomplete one is logged and left alone.
pub fn assemble_all() -> Vec<String> {
    let running = arrays();
    let mut sets: Vec<FoundSet> = Vec::new();
    for dev in candidates(&running) {
        let Some((version, sb)) = superblock(&dev) else {
            continue;
        };
        let Ok(sb) = md::Superblock::new_checked(&sb[..]) else {
            continue;
        };
        let Some(level) = Level::from_number(sb.level()) else {
            log::warn!(
                "software RAID: {dev} is a member of a level {} array, which rivet does not run",
                sb.level()
            );
            continue;
        };
        let uuid = sb.set_uuid();
        match sets.iter_mut().find(|s| s.uuid == uuid) {
            Some(s) => s.devs.push(dev),
            None => sets.push(FoundSet {
                uuid,
                version,
                name: short_name(sb.name()),
                disks: sb.raid_disks(),
                level,
                devs: vec![dev],
            }),
        }
    }
    // Arrays named mdN first, so that no other takes their number.
    let wanted = |name: &str| -> Option<u32> { name.strip_prefix("md")?.parse().ok() };
    sets.sort_by_key(|s| wanted(&s.name).is_none());
    let mut started = Vec::new();
    for FoundSet {
        version,
        name,
        disks,
        level,
        devs,
        ..
    } in sets
    {
        // A degraded array runs as mdadm --assemble would start it (a
        // mirror with a failed disk is what gets re-provisioned).
        let found = devs.len() as u32;
        if !level.runs_with(disks, found) {
            log::warn!(
                "software RAID: array {name:?} ({level}) has {found} of its {disks} members ({}): \
                 not started",
                devs.join(", ")
            );
            continue;
        }
        if found < disks {
            log::warn!("software RAID: array {name:?} is degraded: {found} of {disks} members");
        }
        let started_one = load_modules(level).and_then(|_| {
            let minor = free_minor(wanted(&name)).ok_or("no free md device")?;
            start(minor, version, &devs)
        });
        match started_one {
            Ok(path) => started.push(path),
            Err(e) => log::error!("software RAID: array {name:?} on {}: {e}", devs.join(", ")),
        }
    }
    started
}

/// The kernel name of partition `number` of `disk` (`vda1`, `nvme0n1p1`),
/// once the kernel and devtmpfs show it (after a table is re-read).
pub fn partition(disk: &str, number: u32) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = names(&block(disk))
            .into_iter()
            .find(|n| partition_number(n) == Some(number));
        if let Some(name) = found {
            wait_for(&format!("/dev/{name}"))?;
            return Ok(name);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "partition {number} of /dev/{disk} did not appear within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

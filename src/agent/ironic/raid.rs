//! The RAID steps for software RAID (`raid.create_configuration`,
//! `raid.delete_configuration`, `raid.apply_configuration`), as
//! ironic-python-agent's GenericHardwareManager runs them: the layout from
//! `raid` (validated before any disk is touched), the holders' tables and
//! superblocks written by rivet, the arrays run by the kernel's md driver
//! (`linux::md`), no mdadm.

use super::node;
use crate::agent::session::firmware_boot_mode;
use crate::agent::target::hints::Hints;
use crate::deploy::table;
use crate::linux::blockdev::Disk;
use crate::linux::env::LinuxEnv;
use crate::linux::inventory;
use crate::linux::md;
use crate::raid::{self, members, LogicalDisk};
use crate::wire::md::{Array, Level, Version, IN_SYNC};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// The real agent's `_raid_root_device_mapping`: the arrays this agent made
/// whose logical disk says `is_root_volume` (true: the deploy's target,
/// whatever the root device hints say; false: never a target, nor its
/// holders). In memory, for a deploy in the same boot (fast track), as there.
static ROOT_VOLUMES: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());

fn set_root_volumes(volumes: Vec<(String, bool)>) {
    if let Ok(mut v) = ROOT_VOLUMES.lock() {
        *v = volumes;
    }
}

/// What `is_root_volume` says of the arrays made in this boot: the root
/// volume (`/dev/mdN`) if one is marked, and the block devices to keep out
/// of the choice (arrays marked false, their holders and members).
pub fn root_volume_choice() -> (Option<String>, Vec<String>) {
    let volumes = ROOT_VOLUMES.lock().map(|v| v.clone()).unwrap_or_default();
    let root = volumes
        .iter()
        .find(|(_, is_root)| *is_root)
        .map(|(name, _)| format!("/dev/{name}"));
    let mut excluded = Vec::new();
    for a in md::arrays() {
        if volumes
            .iter()
            .any(|(name, is_root)| !is_root && *name == a.name)
        {
            excluded.push(a.name.clone());
            excluded.extend(a.holders);
            excluded.extend(a.members);
        }
    }
    (root, excluded)
}

/// `skip_block_devices` entries that name RAID volumes.
fn skip_volume_names(node: &Value) -> Vec<String> {
    node["properties"]["skip_block_devices"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|h| h["volume_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The disks that can hold RAID partitions: every disk but md arrays.
fn physical_disks() -> Vec<inventory::Disk> {
    inventory::disks(Path::new("/sys"))
        .into_iter()
        .filter(|d| !d.name.starts_with("md"))
        .collect()
}

/// Each logical disk's holders, by its `physical_disks` hints (each hint
/// takes the first match not taken by an earlier hint) or every disk
/// (raid_utils.get_block_devices_for_raid).
fn holders_of(ld: &LogicalDisk, disks: &[inventory::Disk]) -> Result<Vec<String>, String> {
    let Some(hints) = &ld.physical_disks else {
        return Ok(disks.iter().map(|d| d.name.clone()).collect());
    };
    let mut chosen: Vec<String> = Vec::new();
    for h in hints {
        let parsed = Hints::parse(h)?.ok_or_else(|| format!("empty physical disk hint {h}"))?;
        let candidates: Vec<&str> = disks
            .iter()
            .filter(|d| parsed.matches(d))
            .map(|d| d.name.as_str())
            .collect();
        if candidates.is_empty() {
            return Err(format!("No candidates for physical disk {h}"));
        }
        let pick = candidates
            .iter()
            .find(|c| !chosen.iter().any(|x| x == *c))
            .ok_or_else(|| {
                format!(
                    "No candidates left for physical disk {h} from the list {candidates:?} after \
                     picking {chosen:?} for previous volumes"
                )
            })?;
        chosen.push(pick.to_string());
    }
    Ok(chosen)
}

/// `create_configuration`: the node's `target_raid_config` made real.
/// Returns the configuration for the conductor to record as the node's
/// `raid_config` (an empty object when no software RAID was asked).
pub fn create(node: &Value, raid_config: &Value) -> Result<Value, String> {
    if !raid::is_software(raid_config) {
        log::info!("software RAID: no logical disk asks for it, nothing to create");
        return Ok(serde_json::json!({}));
    }
    let disks = physical_disks();
    let uuid = node["uuid"].as_str().unwrap_or("unknown node");
    let skip = skip_volume_names(node);
    let config = raid::validate(raid_config, uuid, !skip.is_empty(), disks.len())?;
    let running = md::arrays();
    if !running.is_empty() {
        let names: Vec<&str> = running.iter().map(|a| a.name.as_str()).collect();
        return Err(format!(
            "Existing Software RAID device detected that should not: {} (run \
             raid.delete_configuration first)",
            names.join(", ")
        ));
    }
    let boot = node::boot_mode(node).unwrap_or_else(firmware_boot_mode);
    let label = raid::holder_label(boot, node::capability(node, "disk_label").as_deref());
    // Each logical disk's holders, and each holder's sizes in creation order.
    let mut holders: Vec<String> = Vec::new();
    let mut per_ld: Vec<Vec<String>> = Vec::new();
    for ld in &config.logical_disks {
        let h = holders_of(ld, &disks)?;
        if h.len() < ld.level.min_members() {
            return Err(format!(
                "{} needs at least {} disks, {} found ({})",
                ld.level,
                ld.level.min_members(),
                h.len(),
                h.join(", ")
            ));
        }
        for d in &h {
            if !holders.contains(d) {
                holders.push(d.clone());
            }
        }
        per_ld.push(h);
    }
    // Everything checked before any write: no partitions on the holders,
    // every span fits, the kernel can run every level.
    let mut with_parts = Vec::new();
    let mut spans = Vec::new();
    for h in &holders {
        let path = format!("/dev/{h}");
        let mut dev = Disk::open_read_only(&path, 512)?;
        if table::read_existing(&mut dev)
            .map_err(|e| format!("{path}: {e}"))?
            .is_some_and(|t| !t.parts.is_empty())
        {
            with_parts.push(path.clone());
        }
        let sizes: Vec<raid::Size> = config
            .logical_disks
            .iter()
            .zip(&per_ld)
            .filter(|(_, hs)| hs.contains(h))
            .map(|(ld, _)| ld.size)
            .collect();
        let sectors = crate::io::BlockDevice::size(&dev) / 512;
        spans.push(
            raid::holder_spans(sectors, boot, label, &sizes).map_err(|e| format!("{path}: {e}"))?,
        );
    }
    if !with_parts.is_empty() {
        return Err(format!(
            "Partitions detected on devices {} during RAID config",
            with_parts.join(", ")
        ));
    }
    for ld in &config.logical_disks {
        md::load_modules(ld.level)?;
    }
    log::info!(
        "software RAID: {} array(s) over {} ({} tables, boot {})",
        config.logical_disks.len(),
        holders.join(", "),
        label.name(),
        boot.name()
    );
    let mut env = LinuxEnv::default();
    let mut opened = Vec::new();
    for (h, s) in holders.iter().zip(&spans) {
        let path = format!("/dev/{h}");
        let mut dev = Disk::open(&path, 512)?;
        members::write_table(&mut dev, &mut env, boot, label, s)
            .map_err(|e| format!("{path}: {e}"))?;
        opened.push(dev);
    }
    // Partition k+1 of each holder belongs to the k-th logical disk using it.
    let mut used = vec![0usize; holders.len()];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut arrays = Vec::new();
    for (i, (ld, hs)) in config.logical_disks.iter().zip(&per_ld).enumerate() {
        let mut parts = Vec::new();
        for h in hs {
            let k = holders.iter().position(|x| x == h).unwrap_or(0);
            parts.push((k, used[k]));
            used[k] += 1;
        }
        let lens: Vec<u64> = parts
            .iter()
            .map(|&(k, n)| spans[k][n].end - spans[k][n].start)
            .collect();
        let data_offset = members::data_offset(lens.iter().copied().min().unwrap_or(0));
        let mut uuid = [0u8; 16];
        crate::linux::sys::random(&mut uuid);
        let mut array = Array {
            version: Version::V1_2,
            set_uuid: uuid,
            name: ld.volume_name.clone().unwrap_or_else(|| format!("md{i}")),
            level: ld.level,
            members: hs.len() as u32,
            component_sectors: 0,
            time: now,
            // RAID 0 has nothing to resync; the others are mirrored in the
            // background, as after mdadm --create.
            resync_offset: if ld.level == Level::Raid0 { IN_SYNC } else { 0 },
        };
        array.component_sectors = members::component_sectors(&array, &lens, data_offset)
            .ok_or_else(|| format!("md{i}: members too small for {}", ld.level))?;
        for (slot, &(k, n)) in parts.iter().enumerate() {
            let mut device_uuid = [0u8; 16];
            crate::linux::sys::random(&mut device_uuid);
            let s = spans[k][n];
            members::write_member(
                &mut opened[k],
                s.start * 512,
                s.end - s.start,
                &array,
                slot as u32,
                device_uuid,
                data_offset,
            )
            .map_err(|e| format!("/dev/{}: {e}", holders[k]))?;
        }
        arrays.push((i, parts));
    }
    for (k, dev) in opened.iter_mut().enumerate() {
        crate::io::BlockDevice::flush(dev).map_err(|e| format!("/dev/{}: {e}", holders[k]))?;
        if let Err(e) = crate::io::BlockDevice::reread_partitions(dev) {
            return Err(format!(
                "/dev/{}: re-reading the partition table: {e}",
                holders[k]
            ));
        }
    }
    drop(opened);
    let mut volumes = Vec::new();
    for (i, parts) in arrays {
        let mut names = Vec::new();
        for (k, n) in parts {
            names.push(md::partition(&holders[k], n as u32 + 1)?);
        }
        let path = md::start(i as u32, Version::V1_2, &names)?;
        if let Some(is_root) = config.logical_disks[i].is_root_volume {
            volumes.push((path.trim_start_matches("/dev/").to_string(), is_root));
        }
    }
    set_root_volumes(volumes);
    Ok(raid_config.clone())
}

/// `delete_configuration`: every array found (on disk or running) stopped
/// and its members' superblocks zeroed, the holders' tables wiped; arrays
/// whose volume name `skip_block_devices` lists are kept, with their
/// holders (other arrays on those holders are emptied, not deleted), as
/// the real agent does.
pub fn delete(node: &Value) -> Result<(), String> {
    set_root_volumes(Vec::new());
    let started = md::assemble_all();
    if !started.is_empty() {
        log::info!("software RAID: assembled {} from disk", started.join(", "));
    }
    let skip = skip_volume_names(node);
    let arrays = md::arrays();
    // Volume names are read from the members only when a skip list asks.
    let kept: Vec<(&md::Array, String)> = match skip.is_empty() {
        true => Vec::new(),
        false => arrays
            .iter()
            .filter_map(|a| Some((a, a.volume_name().filter(|n| skip.contains(n))?)))
            .collect(),
    };
    let kept_holders: Vec<&String> = kept.iter().flat_map(|(a, _)| &a.holders).collect();
    let mut failed = Vec::new();
    let mut holders: Vec<String> = Vec::new();
    for a in &arrays {
        let path = format!("/dev/{}", a.name);
        if let Some((_, volume)) = kept.iter().find(|(k, _)| k.name == a.name) {
            log::warn!("software RAID: {path} ({volume:?}) is on the skip list: kept");
            continue;
        }
        if a.holders.iter().any(|h| kept_holders.contains(&h)) {
            log::warn!(
                "software RAID: {path} shares a holder with a kept array: emptied, not deleted"
            );
            if let Err(e) = wipe(&path) {
                failed.push(e);
            }
            continue;
        }
        log::info!(
            "software RAID: deleting {path} (members {})",
            a.members.join(", ")
        );
        if let Err(e) = wipe(&path).and_then(|_| md::stop(&a.name)) {
            failed.push(e);
            continue;
        }
        holders.extend(a.holders.iter().cloned());
    }
    // Every other disk's old superblocks too (an array that was never
    // complete), then the holders' tables.
    for d in physical_disks() {
        if kept_holders.contains(&&d.name) {
            continue;
        }
        let path = format!("/dev/{}", d.name);
        let r = Disk::open(&path, 512).and_then(|mut dev| {
            let mut zeroed =
                members::erase(&mut dev, 0, d.size_bytes).map_err(|e| e.to_string())?;
            if let Some(t) = table::read_existing(&mut dev).map_err(|e| e.to_string())? {
                for p in &t.parts {
                    zeroed +=
                        members::erase(&mut dev, p.offset, p.len).map_err(|e| e.to_string())?;
                }
            }
            if zeroed > 0 {
                log::info!("software RAID: {zeroed} md superblock(s) zeroed on {path}");
                if !holders.contains(&d.name) {
                    holders.push(d.name.clone());
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            failed.push(format!("{path}: {e}"));
        }
    }
    holders.sort();
    holders.dedup();
    for h in &holders {
        if let Err(e) = wipe(&format!("/dev/{h}")) {
            failed.push(e);
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "Unable to clean all softraid correctly: {}",
            failed.join("; ")
        ));
    }
    Ok(())
}

/// wipefs -a of a device: its tables and the signatures at their ends.
fn wipe(path: &str) -> Result<(), String> {
    Disk::open(path, 512)
        .and_then(|mut d| crate::deploy::erase_metadata(&mut d).map_err(|e| e.to_string()))
        .map_err(|e| format!("{path}: {e}"))
}

/// `apply_configuration` (deploy and service): validate, delete what
/// exists when asked (the default), create.
pub fn apply(node: &Value, raid_config: &Value, delete_existing: bool) -> Result<Value, String> {
    let uuid = node["uuid"].as_str().unwrap_or("unknown node");
    if raid::is_software(raid_config) {
        raid::validate(
            raid_config,
            uuid,
            !skip_volume_names(node).is_empty(),
            physical_disks().len(),
        )?;
    }
    if delete_existing {
        delete(node)?;
    }
    create(node, raid_config)
}

//! The `erase_devices` and `erase_devices_express` clean steps, as
//! ironic-python-agent 13 runs them (`hardware.py`): every disk but those
//! the node's `skip_block_devices` names, RAID members and virtual media;
//! read-only disks skipped or failed by `agent_erase_skip_read_only`; up to
//! `disk_erasure_concurrency` disks at once, each on its own thread while
//! the agent keeps answering the conductor and heartbeating; progress in
//! the log and in the running command's result.

use crate::agent::target::hints::Hints;
use crate::deploy::erase::Progress;
use crate::linux::erase::{erase_disk, Knobs};
use crate::linux::inventory::{self, Disk};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// The step's settings, from the node's driver_internal_info (where the
/// conductor's `agent_add_clean_params` puts Ironic's `[deploy]` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub knobs: Knobs,
    pub skip_read_only: bool,
    pub concurrency: usize,
}

pub fn settings(node: &Value) -> Settings {
    let info = &node["driver_internal_info"];
    let flag = |k: &str, default: bool| info.get(k).and_then(Value::as_bool).unwrap_or(default);
    let d = Knobs::default();
    Settings {
        knobs: Knobs {
            iterations: info
                .get("agent_erase_devices_iterations")
                .and_then(Value::as_u64)
                .map_or(d.iterations, |n| n.min(100) as u32),
            zeroize: flag("agent_erase_devices_zeroize", d.zeroize),
            nvme_secure_erase: flag("agent_enable_nvme_secure_erase", d.nvme_secure_erase),
            ata_secure_erase: flag("agent_enable_ata_secure_erase", d.ata_secure_erase),
            // The older name covered ATA only; either allows the fallback.
            continue_if_secure_erase_failed: flag("agent_continue_if_secure_erase_failed", false)
                || flag("agent_continue_if_ata_erase_failed", false),
        },
        skip_read_only: flag("agent_erase_skip_read_only", false),
        concurrency: info
            .get("disk_erasure_concurrency")
            .and_then(Value::as_u64)
            .map_or(4, |n| n.clamp(1, 64) as usize),
    }
}

/// Disks the node's `skip_block_devices` names (root-device-hint
/// dictionaries; `volume_name` ones are software RAID volumes, which
/// rivet does not assemble).
pub fn skipped(node: &Value, disks: &[Disk]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let Some(list) = node["properties"].get("skip_block_devices") else {
        return Ok(out);
    };
    for hint in list.as_array().ok_or("skip_block_devices must be a list")? {
        if hint.get("volume_name").is_some() {
            continue;
        }
        let Some(h) = Hints::parse(hint).map_err(|e| format!("skip_block_devices: {e}"))? else {
            continue;
        };
        for d in disks.iter().filter(|d| h.matches(d)) {
            if !out.contains(&d.name) {
                log::warn!("erase: skipping /dev/{}: skip_block_devices {hint}", d.name);
                out.push(d.name.clone());
            }
        }
    }
    Ok(out)
}

fn sys_flag(name: &str, file: &str) -> bool {
    std::fs::read_to_string(Path::new("/sys/block").join(name).join(file))
        .is_ok_and(|v| v.trim() == "1")
}

/// A member of a Linux software RAID: the disk or one of its partitions
/// belongs to a running md array (ironic-python-agent asks lsblk for
/// linux_raid_member below the disk).
pub(super) fn raid_member(name: &str) -> bool {
    crate::linux::md::arrays()
        .iter()
        .any(|a| a.holders.iter().any(|h| h == name))
}

/// The virtual floppy Ironic attaches for virtual media (label ir-vfd-dev).
fn virtual_media(name: &str) -> bool {
    let mut head = vec![0u8; 64 * 1024];
    crate::linux::blockdev::Disk::open_read_only(&format!("/dev/{name}"), 512)
        .and_then(|mut d| {
            use crate::io::BlockDevice;
            let n = head.len().min(d.size() as usize);
            d.read_at(0, &mut head[..n]).map_err(|e| e.to_string())
        })
        .is_ok()
        && crate::wire::superblock::probe(&head)
            .and_then(|f| f.label)
            .is_some_and(|l| l == "ir-vfd-dev")
}

/// Runs `erase_devices` (or `_express`) on every disk it applies to, on up
/// to `concurrency` threads; `wait` is called every 200 ms in between with
/// the progress so far (the agent services the conductor there). Returns
/// the real agent's result: device path → null.
pub fn erase_devices(
    node: &Value,
    express: bool,
    wait: &mut dyn FnMut(&Value),
) -> Result<Value, String> {
    let s = settings(node);
    let disks = inventory::disks(Path::new("/sys"));
    let skip = skipped(node, &disks)?;
    let mut queue: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for d in &disks {
        if skip.contains(&d.name) {
            continue;
        }
        if raid_member(&d.name) || virtual_media(&d.name) {
            log::info!(
                "erase: skipping /dev/{} (RAID member or virtual media)",
                d.name
            );
            continue;
        }
        if sys_flag(&d.name, "ro") {
            if s.skip_read_only {
                log::warn!("erase: skipping read-only /dev/{}", d.name);
                continue;
            }
            failures.push(format!("/dev/{}: the device is read-only", d.name));
            continue;
        }
        queue.push(d.name.clone());
    }
    if !failures.is_empty() {
        // As the real agent: read-only disks fail the step before any erase.
        return Err(failures.join("; "));
    }
    log::info!(
        "{}: {} ({} at a time; {} random pass(es){})",
        if express {
            "erase_devices_express"
        } else {
            "erase_devices"
        },
        queue
            .iter()
            .map(|n| format!("/dev/{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        s.concurrency,
        s.knobs.iterations,
        if s.knobs.zeroize { " and zeros" } else { "" }
    );
    let progress: Mutex<BTreeMap<String, Value>> = Mutex::new(BTreeMap::new());
    let results: Mutex<BTreeMap<String, Result<String, String>>> = Mutex::new(BTreeMap::new());
    let work = Mutex::new(queue.clone());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..s.concurrency.min(queue.len()))
            .map(|_| {
                scope.spawn(|| loop {
                    let Some(name) = work.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                        return;
                    };
                    let path = format!("/dev/{name}");
                    let report = |p: &Progress| {
                        let line = p.to_string();
                        log::info!("erase {path}: {line}");
                        progress
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(path.clone(), json!(line));
                    };
                    log::info!("erase {path}: started");
                    progress
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(path.clone(), json!("started"));
                    let outcome = if express {
                        express_erase(&path)
                    } else {
                        erase_disk(&path, &s.knobs, &report).map(|m| m.to_string())
                    };
                    match &outcome {
                        Ok(how) => log::info!("erase {path}: done ({how})"),
                        Err(e) => log::error!("erase {path}: {e}"),
                    }
                    let line = match &outcome {
                        Ok(how) => format!("done ({how})"),
                        Err(e) => format!("failed: {e}"),
                    };
                    progress
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(path.clone(), json!(line));
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(path, outcome);
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            let snapshot: Map<String, Value> = progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            wait(&json!({"erase_progress": snapshot}));
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(p, r)| r.as_ref().err().map(|e| format!("{p}: {e}")))
        .collect();
    if !failed.is_empty() {
        return Err(failed.join("; "));
    }
    Ok(Value::Object(
        results.keys().map(|p| (p.clone(), Value::Null)).collect(),
    ))
}

/// `erase_devices_express`: NVMe Format NVM where the controller has it,
/// else the metadata wipe.
fn express_erase(path: &str) -> Result<String, String> {
    let nvme = Knobs {
        iterations: 0,
        zeroize: false,
        nvme_secure_erase: true,
        ata_secure_erase: false,
        continue_if_secure_erase_failed: false,
    };
    if path.starts_with("/dev/nvme") {
        match erase_disk(path, &nvme, &|_| {}) {
            Ok(m) => return Ok(m.to_string()),
            Err(e) => log::warn!("{path}: {e}; wiping metadata instead"),
        }
    }
    let mut disk = crate::linux::blockdev::Disk::open(path, 512)?;
    crate::deploy::erase_metadata(&mut disk).map_err(|e| e.to_string())?;
    Ok("metadata wiped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_driver_internal_info_with_ironic_defaults() {
        let s = settings(&json!({}));
        assert_eq!(s.knobs, Knobs::default());
        assert_eq!((s.skip_read_only, s.concurrency), (false, 4));
        let s = settings(&json!({"driver_internal_info": {
            "agent_erase_devices_iterations": 2, "agent_erase_devices_zeroize": false,
            "agent_continue_if_ata_erase_failed": true, "agent_enable_nvme_secure_erase": false,
            "disk_erasure_concurrency": 2, "agent_erase_skip_read_only": true}}));
        assert_eq!(s.knobs.iterations, 2);
        assert!(!s.knobs.zeroize && !s.knobs.nvme_secure_erase && s.knobs.ata_secure_erase);
        assert!(
            s.knobs.continue_if_secure_erase_failed,
            "the legacy name counts"
        );
        assert_eq!((s.skip_read_only, s.concurrency), (true, 2));
    }

    fn disk(name: &str, serial: &str) -> Disk {
        Disk {
            name: name.into(),
            size_bytes: 8 << 30,
            logical_block: 512,
            physical_block: 512,
            model: None,
            serial: Some(serial.into()),
            wwn: None,
            pci: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn skip_block_devices_match_like_root_device_hints() {
        let disks = [disk("vda", "a1"), disk("vdb", "b2"), disk("nvme0n1", "n3")];
        let node = json!({"properties": {"skip_block_devices": [
            {"name": "/dev/vda"}, {"serial": "n3"}, {"volume_name": "large"}]}});
        assert_eq!(skipped(&node, &disks).unwrap(), ["vda", "nvme0n1"]);
        assert!(skipped(&json!({}), &disks).unwrap().is_empty());
        let bad = json!({"properties": {"skip_block_devices": [{"colour": "red"}]}});
        assert!(skipped(&bad, &disks).unwrap_err().contains("colour"));
    }
}

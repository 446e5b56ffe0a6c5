//! The result JSON: Ironic's keys ("root uuid", "efi system partition
//! uuid", "partitions") as ironic-python-agent returns them from
//! get_partition_uuids, plus rivet's own, which Ironic ignores.

use super::Outcome;
use crate::plan::ImageType;
use alloc::string::{String, ToString};
use serde_json::{json, Map, Value};

pub fn to_json(o: &Outcome, disk: &str) -> Value {
    let mut partitions = Map::new();
    let mut partuuids = Map::new();
    let mut filesystems = Map::new();
    for p in &o.partitions {
        let name = match o.image_type {
            ImageType::Partition => p.role.ironic_name().to_string(),
            // A whole-disk image's partitions are its own: name them by number.
            ImageType::WholeDisk if p.role == crate::layout::Role::ConfigDrive => {
                "configdrive".to_string()
            }
            ImageType::WholeDisk => alloc::format!("partition {}", p.number),
        };
        partitions.insert(name.clone(), Value::String(p.path.clone()));
        partuuids.insert(name.clone(), Value::String(p.partuuid.clone()));
        if let Some(fs) = &p.filesystem {
            filesystems.insert(
                name,
                json!({"type": fs.kind.name(), "uuid": fs.uuid, "label": fs.label}),
            );
        }
    }
    let seconds = o.image_ms as f64 / 1000.0;
    let mb_per_s = if o.image_ms > 0 {
        o.image_bytes as f64 / 1e6 / seconds
    } else {
        0.0
    };
    let mut v = json!({
        "root uuid": o.root_uuid,
        "efi system partition uuid": o.efi_uuid,
        "partitions": partitions,
        "disk": disk,
        "disk_identifier": o.disk_id,
        "image_type": match o.image_type { ImageType::Partition => "partition", ImageType::WholeDisk => "whole-disk" },
        "boot_mode": o.boot_mode.name(),
        "partition_table": o.label.map(|l| l.name()),
        "partition_uuids": partuuids,
        "filesystems": filesystems,
        "root_filesystem": o.root_filesystem.as_ref().map(|f| f.kind.name()),
        "image_bytes": o.image_bytes,
        "image_seconds": round3(seconds),
        "total_seconds": round3(o.total_ms as f64 / 1000.0),
        // In the order they ran: [["checks", 3], ["tables", 12], …].
        "phases_ms": o.phases.list.iter().map(|(n, ms)| json!([n, ms])).collect::<alloc::vec::Vec<_>>(),
        "mb_per_s": round3(mb_per_s),
        "checksum": {"algorithm": o.checksum_algo.name(), "value": o.checksum, "verified": true},
        "rivet_version": crate::VERSION,
    });
    if o.image_type == ImageType::WholeDisk {
        // Ironic reads only "root uuid" for whole-disk images.
        v["efi system partition uuid"] = Value::Null;
    }
    v
}

/// What get_partition_uuids answers: Ironic's three keys of a partition
/// image, only "root uuid" of a whole-disk one (as ironic-python-agent).
pub fn partition_uuids(o: &Outcome) -> Value {
    let v = to_json(o, "");
    match o.image_type {
        ImageType::Partition => json!({"root uuid": v["root uuid"],
            "efi system partition uuid": v["efi system partition uuid"],
            "partitions": v["partitions"]}),
        ImageType::WholeDisk => json!({"root uuid": v["root uuid"]}),
    }
}

fn round3(x: f64) -> f64 {
    // no_std: no f64::round; values here are small and positive.
    ((x * 1000.0 + 0.5) as u64) as f64 / 1000.0
}

/// Renders with a trailing newline, keys sorted (serde_json's map order).
pub fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

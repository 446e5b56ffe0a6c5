//! `rivet inspect`: what is on a disk, as JSON: the partition table and the
//! filesystem found in each partition (or on the whole disk).

use super::args::Args;
use rivet::deploy::table;
use rivet::io::BlockDevice;
use rivet::linux::blockdev::Disk;
use rivet::wire::superblock::Filesystem;
use serde_json::{json, Value};

const HELP: &str = "\
rivet inspect - show a disk's partition table and filesystems as JSON

USAGE:
    rivet inspect --disk PATH [--sector-size 512|4096]
";

fn fs_json(fs: Option<Filesystem>) -> Value {
    match fs {
        Some(f) => json!({"type": f.kind.name(), "uuid": f.uuid, "label": f.label}),
        None => Value::Null,
    }
}

fn probe(disk: &mut Disk, offset: u64, len: u64) -> Result<Option<Filesystem>, String> {
    rivet::deploy::probe_at(disk, offset, len).map_err(|e| e.to_string())
}

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &["disk", "sector-size"], &[])?;
    if args.help {
        print!("{HELP}");
        return Ok(());
    }
    let path = args.required("disk")?;
    let sector = args
        .get("sector-size")
        .unwrap_or("512")
        .parse::<u32>()
        .map_err(|_| "--sector-size: 512 or 4096")?;
    let mut disk = Disk::open_read_only(path, sector)?;
    let existing = table::read_existing(&mut disk).map_err(|e| e.to_string())?;
    let mut out = json!({
        "disk": path,
        "size": disk.size(),
        "logical_sector_size": disk.logical_block(),
        "physical_sector_size": disk.physical_block(),
        "partition_table": Value::Null,
        "partitions": [],
    });
    match existing {
        Some(t) => {
            out["partition_table"] = json!(t.label.name());
            out["disk_identifier"] = json!(t.disk_id);
            let mut parts = Vec::new();
            for p in &t.parts {
                let fs = probe(&mut disk, p.offset, p.len)?;
                parts.push(json!({
                    "number": p.number,
                    "path": rivet::layout::partition_path(path, p.number),
                    "start": p.offset,
                    "size": p.len,
                    "type": p.gpt_type.map(|g| g.to_string()).unwrap_or_else(|| format!("0x{:02x}", p.mbr_type.unwrap_or(0))),
                    "partuuid": p.partuuid,
                    "name": p.name,
                    "bootable": p.bootable,
                    "filesystem": fs_json(fs),
                }));
            }
            out["partitions"] = Value::Array(parts);
        }
        None => {
            let size = disk.size();
            out["filesystem"] = fs_json(probe(&mut disk, 0, size)?);
        }
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}

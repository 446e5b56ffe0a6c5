//! `log.collect_system_logs`: what a rivet node has of what
//! ironic-python-agent collects (`utils.collect_system_logs`: journal or
//! dmesg, lsblk, efibootmgr, ip addr, mdstat, mounts, the inventory…), as
//! base64(gzip(tar)), the form the conductor stores with
//! `deploy_logs_collect`. Each part is bounded; one that cannot be read is
//! left out, never an error.

use super::inspection;
use crate::deploy::table;
use crate::linux::blockdev::Disk;
use crate::linux::{efivars, inventory, logger};
use crate::wire::{base64, efi, gzip, tar::Tar};
use std::fmt::Write;
use std::path::Path;

/// Most kernel log bytes taken.
const MAX_KMSG: usize = 1 << 20;

/// The archive; `network` is rivet's own stack's addresses and routes.
pub(super) fn pack(network: &str) -> String {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut tar = Tar::new();
    let mut add = |name: &str, data: &[u8]| {
        let _ = tar.file(name, 0o644, mtime, data);
    };
    add("rivet.log", logger::recent().as_bytes());
    for (name, path) in [
        ("cmdline", "/proc/cmdline"),
        ("meminfo", "/proc/meminfo"),
        ("partitions", "/proc/partitions"),
        ("modules", "/proc/modules"),
        ("mdstat", "/proc/mdstat"),
        ("mounts", "/proc/mounts"),
    ] {
        if let Ok(data) = std::fs::read(path) {
            add(name, &data);
        }
    }
    add("dmesg", kernel_log().as_bytes());
    add("block-devices", block_devices(Path::new("/sys")).as_bytes());
    if let Some(entries) = boot_entries() {
        add("efibootmgr", entries.as_bytes());
    }
    add(
        "network",
        (String::from(network) + &links(Path::new("/sys"))).as_bytes(),
    );
    let disks: Vec<serde_json::Value> = inventory::disks(Path::new("/sys"))
        .iter()
        .map(inspection::disk_json)
        .collect();
    add(
        "disks.json",
        serde_json::to_string_pretty(&disks)
            .unwrap_or_default()
            .as_bytes(),
    );
    base64::encode(&gzip::compress(&tar.finish(), 6))
}

/// The kernel's log as dmesg prints it, from /dev/kmsg (one record per
/// read, `pri,seq,usec,flags;text`), up to [`MAX_KMSG`] bytes.
fn kernel_log() -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return String::new();
    };
    let mut out = String::new();
    let mut record = vec![0u8; 8192];
    while out.len() < MAX_KMSG {
        let n = match f.read(&mut record) {
            Ok(0) => break,
            Ok(n) => n,
            // EPIPE: records overwritten while reading; go on.
            Err(e) if e.raw_os_error() == Some(32) => continue,
            Err(_) => break, // EAGAIN: the end
        };
        let text = String::from_utf8_lossy(&record[..n]);
        let (head, msg) = text.split_once(';').unwrap_or(("", &text));
        let usec: u64 = head
            .split(',')
            .nth(2)
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        let msg = msg.lines().next().unwrap_or("");
        let _ = writeln!(
            out,
            "[{:5}.{:06}] {msg}",
            usec / 1_000_000,
            usec % 1_000_000
        );
    }
    out
}

/// Block devices as lsblk shows them: size, model, removable/read-only,
/// and each partition with the filesystem signature found on it.
fn block_devices(sys: &Path) -> String {
    let mut out = String::from("NAME SIZE RO RM MODEL / PARTITION START SIZE FSTYPE LABEL UUID\n");
    for name in sorted_names(&sys.join("block")) {
        let dir = sys.join("block").join(&name);
        let read = |f: &str| trimmed(&dir.join(f));
        let size = read("size").parse::<u64>().unwrap_or(0) * 512;
        let _ = writeln!(
            out,
            "{name} {size} {} {} {}",
            read("ro"),
            read("removable"),
            read("device/model")
        );
        if name.starts_with("loop") || name.starts_with("ram") || size == 0 {
            continue;
        }
        let Ok(mut disk) = Disk::open_read_only(&format!("/dev/{name}"), 512) else {
            continue;
        };
        let Ok(Some(t)) = table::read_existing(&mut disk) else {
            continue;
        };
        let _ = writeln!(out, "  {} table {}", t.label.name(), t.disk_id);
        for p in &t.parts {
            let fs = crate::deploy::probe_at(&mut disk, p.offset, p.len)
                .ok()
                .flatten();
            let (kind, label, uuid) = match &fs {
                Some(f) => (
                    f.kind.name(),
                    f.label.clone().unwrap_or_default(),
                    f.uuid.clone(),
                ),
                None => ("-", String::new(), String::new()),
            };
            let _ = writeln!(
                out,
                "  {name}{} {} {} {kind} {label} {uuid}",
                p.number, p.offset, p.len
            );
        }
    }
    out
}

/// Boot#### entries and BootOrder as `efibootmgr -v` prints them; `None`
/// on a machine that did not boot by UEFI.
fn boot_entries() -> Option<String> {
    if !efivars::booted_uefi() {
        return None;
    }
    let mut nvram = efivars::Efivarfs::open(Path::new(efivars::MOUNT_POINT)).ok()?;
    use crate::boot::uefi::Nvram;
    let mut out = String::new();
    if let Ok(Some(order)) = nvram.get("BootOrder") {
        let order: Vec<String> = efi::parse_boot_order(&order)
            .unwrap_or_default()
            .iter()
            .map(|n| format!("{n:04X}"))
            .collect();
        let _ = writeln!(out, "BootOrder: {}", order.join(","));
    }
    let mut names = nvram.names().unwrap_or_default();
    names.sort();
    for name in names {
        if efi::boot_number(&name).is_none() {
            continue;
        }
        if let Ok(Some(data)) = nvram.get(&name) {
            if let Ok(opt) = efi::LoadOption::new_checked(&data[..]) {
                let active = if opt.attributes() & efi::LOAD_OPTION_ACTIVE != 0 {
                    "*"
                } else {
                    " "
                };
                let _ = writeln!(
                    out,
                    "{name}{active} {}\t{}",
                    opt.description(),
                    efi::describe(opt.file_path_list())
                );
            }
        }
    }
    Some(out)
}

/// The kernel's links: name, MAC, state, MTU (rivet holds no kernel
/// addresses: its own are in the lines before).
fn links(sys: &Path) -> String {
    let mut out = String::from("\nkernel links:\n");
    for name in sorted_names(&sys.join("class/net")) {
        let read = |f: &str| trimmed(&sys.join("class/net").join(&name).join(f));
        let _ = writeln!(
            out,
            "{name} {} {} mtu {}",
            read("address"),
            read("operstate"),
            read("mtu")
        );
    }
    out
}

/// A sysfs directory's entries, sorted ("" when it cannot be read).
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A sysfs attribute, trimmed ("" when absent).
fn trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unpacks the archive with the real tar and gzip: the parts a
    /// conductor's operator opens are there.
    #[test]
    fn the_archive_opens_with_tar_and_holds_each_part() {
        let packed = pack("rv1: 10.77.1.5/24 via 10.77.1.1\n");
        let bytes = base64::decode(packed.as_bytes()).unwrap();
        let dir = std::env::temp_dir().join(format!("rivet-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("logs.tar.gz"), &bytes).unwrap();
        let list = std::process::Command::new("tar")
            .arg("-tzf")
            .arg(dir.join("logs.tar.gz"))
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&list.stdout).into_owned();
        for part in [
            "rivet.log",
            "cmdline",
            "meminfo",
            "mounts",
            "dmesg",
            "block-devices",
            "network",
            "disks.json",
        ] {
            assert!(names.lines().any(|l| l == part), "{part} missing: {names}");
        }
        let net = std::process::Command::new("tar")
            .arg("-xzOf")
            .arg(dir.join("logs.tar.gz"))
            .arg("network")
            .output()
            .unwrap();
        let net = String::from_utf8_lossy(&net.stdout).into_owned();
        assert!(
            net.starts_with("rv1: 10.77.1.5/24")
                && net.contains("kernel links:\n")
                && net.contains("\nlo "),
            "{net}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Hardware facts beyond disks and NICs, for inspection: CPUs from
//! /proc/cpuinfo, memory from /proc/meminfo and the SMBIOS memory devices,
//! the system and firmware from /sys/class/dmi/id. Parsers take the text or
//! bytes (tested with literal inputs); readers are thin.

use super::inventory::read_trimmed as read;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cpu {
    pub model_name: String,
    /// MHz as the kernel prints it ("2394.454"): a string, as lscpu's.
    pub frequency: String,
    pub count: u32,
    pub architecture: String,
    pub flags: Vec<String>,
    pub socket_count: u32,
}

/// /proc/cpuinfo's x86 fields (`processor`, `model name`, `cpu MHz`,
/// `flags`, `physical id`); `arch` is uname's machine.
pub fn parse_cpuinfo(text: &str, arch: &str) -> Cpu {
    let mut cpu = Cpu {
        architecture: arch.to_string(),
        ..Cpu::default()
    };
    let mut sockets = BTreeSet::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => cpu.count += 1,
            "model name" if cpu.model_name.is_empty() => cpu.model_name = value.to_string(),
            "cpu MHz" if cpu.frequency.is_empty() => cpu.frequency = value.to_string(),
            "flags" if cpu.flags.is_empty() => {
                cpu.flags = value.split_whitespace().map(str::to_string).collect()
            }
            "physical id" => {
                sockets.insert(value.to_string());
            }
            _ => {}
        }
    }
    cpu.socket_count = (sockets.len() as u32).max(u32::from(cpu.count > 0));
    cpu
}

/// MemTotal of /proc/meminfo, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    parse_meminfo(text, "MemTotal")
}

/// A /proc/meminfo field (`MemTotal`, `MemAvailable`), in bytes.
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The installed memory in MiB: the sum of SMBIOS type 17 (memory device)
/// sizes, from the raw structures; `None` when there are none.
pub fn dmi_memory_mb(structures: &[Vec<u8>]) -> Option<u64> {
    let mut total = 0u64;
    for s in structures {
        if s.len() < 0x0e || s[0] != 17 {
            continue;
        }
        let size = u16::from_le_bytes([s[0x0c], s[0x0d]]);
        total += match size {
            0 | 0xffff => 0, // empty slot, unknown
            0x7fff if s.len() >= 0x20 => {
                u64::from(u32::from_le_bytes([s[0x1c], s[0x1d], s[0x1e], s[0x1f]]) & 0x7fff_ffff)
            }
            s if s & 0x8000 != 0 => u64::from(s & 0x7fff) / 1024, // KiB
            s => u64::from(s),
        };
    }
    (total > 0).then_some(total)
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemVendor {
    pub product_name: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub firmware_vendor: Option<String>,
    pub firmware_version: Option<String>,
    pub firmware_date: Option<String>,
}

pub fn cpu(proc: &Path) -> Cpu {
    let arch = rustix::system::uname()
        .machine()
        .to_string_lossy()
        .into_owned();
    parse_cpuinfo(&read(&proc.join("cpuinfo")).unwrap_or_default(), &arch)
}

/// Total memory (bytes) and installed memory (MiB, from SMBIOS).
pub fn memory(proc: &Path, sys: &Path) -> (Option<u64>, Option<u64>) {
    let total = read(&proc.join("meminfo")).and_then(|t| parse_meminfo_total(&t));
    let mut raws = Vec::new();
    if let Ok(entries) = fs::read_dir(sys.join("firmware/dmi/entries")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("17-") {
                if let Ok(raw) = fs::read(e.path().join("raw")) {
                    raws.push(raw);
                }
            }
        }
    }
    (total, dmi_memory_mb(&raws))
}

pub fn system_vendor(sys: &Path) -> SystemVendor {
    let dmi = sys.join("class/dmi/id");
    let get = |name: &str| read(&dmi.join(name));
    SystemVendor {
        product_name: get("product_name"),
        serial_number: get("product_serial"),
        manufacturer: get("sys_vendor"),
        firmware_vendor: get("bios_vendor"),
        firmware_version: get("bios_version"),
        firmware_date: get("bios_date"),
    }
}

/// The kernel's host name (what `hostname` prints).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\n\
        model name\t: QEMU Virtual CPU version 2.5+\ncpu MHz\t\t: 2394.454\n\
        physical id\t: 0\nflags\t\t: fpu de pse tsc msr\n\n\
        processor\t: 1\nmodel name\t: QEMU Virtual CPU version 2.5+\ncpu MHz\t\t: 2394.454\n\
        physical id\t: 0\nflags\t\t: fpu de pse tsc msr\n\n";

    #[test]
    fn cpuinfo_gives_the_fields_lscpu_would() {
        let cpu = parse_cpuinfo(CPUINFO, "x86_64");
        assert_eq!(cpu.model_name, "QEMU Virtual CPU version 2.5+");
        assert_eq!(cpu.frequency, "2394.454");
        assert_eq!(cpu.count, 2);
        assert_eq!(cpu.socket_count, 1);
        assert_eq!(cpu.flags, ["fpu", "de", "pse", "tsc", "msr"]);
        assert_eq!(cpu.architecture, "x86_64");
        // No physical id (some hypervisors): one socket, not zero.
        let bare = parse_cpuinfo("processor\t: 0\nflags\t: fpu\n", "x86_64");
        assert_eq!((bare.count, bare.socket_count), (1, 1));
        assert_eq!(parse_cpuinfo("", "x86_64").socket_count, 0);
    }

    #[test]
    fn meminfo_total_in_bytes() {
        let text = "MemTotal:         124568 kB\nMemFree:          100000 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(124_568 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: lots kB\n"), None);
        let text = "MemTotal: 262144 kB\nMemAvailableX: 1 kB\nMemAvailable: 180000 kB\n";
        assert_eq!(parse_meminfo(text, "MemAvailable"), Some(180_000 * 1024));
    }

    /// A type 17 structure of `len` bytes with size word `size` (and
    /// extended size `ext` when the word says 0x7fff).
    fn dimm(size: u16, ext: u32) -> Vec<u8> {
        let mut s = vec![0u8; 0x28];
        s[0] = 17;
        s[1] = 0x28;
        s[0x0c..0x0e].copy_from_slice(&size.to_le_bytes());
        s[0x1c..0x20].copy_from_slice(&ext.to_le_bytes());
        s
    }

    #[test]
    fn smbios_memory_devices_add_up_in_mib() {
        assert_eq!(dmi_memory_mb(&[dimm(128, 0)]), Some(128));
        // Two DIMMs, an empty slot, an unknown one.
        assert_eq!(
            dmi_memory_mb(&[dimm(16384, 0), dimm(16384, 0), dimm(0, 0), dimm(0xffff, 0)]),
            Some(32768)
        );
        // 64 GiB and more: the extended size field.
        assert_eq!(dmi_memory_mb(&[dimm(0x7fff, 65536)]), Some(65536));
        // Sizes in KiB (bit 15).
        assert_eq!(dmi_memory_mb(&[dimm(0x8000 | 2048, 0)]), Some(2));
        // Other structure types and short ones are not memory.
        let mut bios = dimm(4096, 0);
        bios[0] = 0;
        assert_eq!(dmi_memory_mb(&[bios, vec![17, 4]]), None);
    }
}

//! Fixtures for host deploy tests: images made by real mkfs tools, loop
//! devices that detach themselves, and the real verifiers (sfdisk, sgdisk,
//! blkid, fsck.vfat).
#![allow(dead_code)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const MIB: u64 = 1 << 20;

pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    out
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sparse(path: &Path, bytes: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(bytes).unwrap();
}

/// A filesystem image of `mib` MiB made by the real mkfs for `kind`.
pub fn mkfs_image(dir: &Path, kind: &str, mib: u64, label: &str) -> PathBuf {
    let path = dir.join(format!("{kind}.img"));
    sparse(&path, mib * MIB);
    let p = path.to_str().unwrap();
    match kind {
        "ext2" | "ext3" | "ext4" => ok(&format!("mkfs.{kind}"), &["-q", "-F", "-L", label, p]),
        "xfs" => ok("mkfs.xfs", &["-q", "-f", "-L", label, p]),
        "btrfs" => ok("mkfs.btrfs", &["-q", "-f", "-L", label, p]),
        "vfat" => ok("mkfs.vfat", &["-n", label, p]),
        other => panic!("no mkfs for {other}"),
    };
    path
}

/// Adds a file with content to an ext4 image (debugfs, no mount needed).
pub fn ext4_put(image: &Path, name: &str, content: &[u8]) {
    let tmp = image.with_extension("content");
    std::fs::write(&tmp, content).unwrap();
    ok(
        "debugfs",
        &[
            "-w",
            "-R",
            &format!("write {} {name}", tmp.display()),
            image.to_str().unwrap(),
        ],
    );
}

pub fn sha256_file(path: &Path) -> String {
    ok("sha256sum", &[path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

pub fn md5_file(path: &Path) -> String {
    ok("md5sum", &[path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(data).unwrap();
}

/// blkid's low-level probe at a byte offset: TYPE, UUID, LABEL.
pub fn blkid_at(path: &Path, offset: u64) -> std::collections::BTreeMap<String, String> {
    let out = run(
        "blkid",
        &[
            "-p",
            "-o",
            "export",
            "-O",
            &offset.to_string(),
            path.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// `sfdisk --json`'s partitions: (start sector, size in sectors, type, bootable).
pub fn sfdisk_parts(path: &Path) -> (serde_json::Value, Vec<(u64, u64, String, bool)>) {
    let v: serde_json::Value =
        serde_json::from_str(&ok("sfdisk", &["--json", path.to_str().unwrap()])).unwrap();
    let parts = v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
                p["bootable"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    (v, parts)
}

/// `sgdisk -v` must report no problems.
pub fn assert_sgdisk_clean(path: &Path) {
    let out = ok("sgdisk", &["-v", path.to_str().unwrap()]);
    assert!(
        out.contains("No problems found"),
        "sgdisk -v complains:\n{out}"
    );
}

/// A loop device over a file; detached on drop.
pub struct Loop {
    pub dev: String,
}

impl Loop {
    pub fn attach(file: &Path, sector: u32, partscan: bool) -> Loop {
        let mut args = vec!["-f", "--show", "--sector-size"];
        let s = sector.to_string();
        args.push(&s);
        if partscan {
            args.push("-P");
        }
        args.push(file.to_str().unwrap());
        let dev = ok("losetup", &args).trim().to_string();
        Loop { dev }
    }

    /// A read-only loop device over `file` (a write-protected disk).
    pub fn read_only(file: &Path) -> Loop {
        let dev = ok("losetup", &["-f", "--show", "-r", file.to_str().unwrap()])
            .trim()
            .to_string();
        Loop { dev }
    }

    /// A loop device over a byte range of a file (a partition of a disk image).
    pub fn range(file: &Path, offset: u64, len: u64) -> Loop {
        let dev = ok(
            "losetup",
            &[
                "-f",
                "--show",
                "-o",
                &offset.to_string(),
                "--sizelimit",
                &len.to_string(),
                file.to_str().unwrap(),
            ],
        )
        .trim()
        .to_string();
        Loop { dev }
    }

    /// The partition's device node, once the kernel has created it.
    pub fn part(&self, n: u32) -> String {
        let node = format!("{}p{n}", self.dev);
        for _ in 0..100 {
            if Path::new(&node).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        node
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Writes a plan JSON file and returns its path.
pub fn plan_file(dir: &Path, name: &str, json: serde_json::Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    path
}

pub struct Deployed {
    pub ok: bool,
    pub result: serde_json::Value,
    pub stderr: String,
}

/// Runs `rivet deploy`; the result JSON is parsed when it succeeded.
pub fn rivet_deploy(disk: &Path, plan: &Path, extra: &[&str]) -> Deployed {
    let out = Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args([
            "deploy",
            "--disk",
            disk.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let result = if out.status.success() {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("result is not JSON: {e}\n{stderr}"))
    } else {
        serde_json::Value::Null
    };
    Deployed {
        ok: out.status.success(),
        result,
        stderr,
    }
}

pub fn rivet_inspect(disk: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(["inspect", "--disk", disk.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// base64 of gzip of `data`, as Ironic sends a config drive.
pub fn ironic_configdrive(data: &Path) -> String {
    let gz = Command::new("gzip")
        .args(["-n", "-c", data.to_str().unwrap()])
        .output()
        .unwrap()
        .stdout;
    let mut child = Command::new("base64")
        .args(["-w", "0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

pub fn files_equal_at(a: &Path, b: &Path, b_offset: u64, len: u64) -> bool {
    let out = run(
        "cmp",
        &[
            "-n",
            &len.to_string(),
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "0",
            &b_offset.to_string(),
        ],
    );
    out.status.success()
}

/// Copies `src` into `dst` at `offset_mib` MiB, without truncating `dst`.
pub fn copy_into(src: &Path, dst: &Path, offset_mib: u64) {
    ok(
        "dd",
        &[
            &format!("if={}", src.display()),
            &format!("of={}", dst.display()),
            "bs=1M",
            &format!("seek={offset_mib}"),
            "conv=notrunc",
            "status=none",
        ],
    );
}

/// A 64 MiB whole-disk image with a GPT made by sgdisk and an ext4
/// filesystem labelled `whole-root` in its one partition (at 1 MiB).
pub fn gpt_whole_disk_image(dir: &Path) -> PathBuf {
    let img = dir.join("whole.img");
    sparse(&img, 64 * MIB);
    ok(
        "sgdisk",
        &[
            "-n",
            "1:2048:+40M",
            "-t",
            "1:8300",
            "-c",
            "1:root",
            img.to_str().unwrap(),
        ],
    );
    let fs = mkfs_image(dir, "ext4", 40, "whole-root");
    copy_into(&fs, &img, 1);
    img
}

/// A UEFI whole-disk image the way distributions lay one out: a GPT with
/// an ESP (p1, 1–41 MiB, FAT made by mkfs.vfat, files put by mtools) and
/// an ext4 root (p2). The ESP holds a shim-style `EFI/rivet/BOOTX64.CSV`
/// naming `ipxe.efi` (a copy of `loader`) with the label
/// `rivet-test`, and a decoy `EFI/BOOT/BOOTX64.EFI` that the CSV outranks.
/// Returns the image and the ESP's PARTUUID.
pub fn uefi_whole_disk_image(dir: &Path, loader: &Path) -> (PathBuf, String) {
    let img = dir.join("uefi-whole.img");
    sparse(&img, 96 * MIB);
    let p = img.to_str().unwrap();
    ok(
        "sgdisk",
        &[
            "-n",
            "1:2048:+40M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI System",
            "-n",
            "2:0:+40M",
            "-t",
            "2:8300",
            "-c",
            "2:root",
            p,
        ],
    );
    let esp = dir.join("esp.img");
    let e = esp.to_str().unwrap();
    let _ = std::fs::remove_file(&esp);
    ok(
        "mkfs.vfat",
        &["-C", "-n", "ESP", e, &(40 * 1024).to_string()],
    );
    ok("mmd", &["-i", e, "::EFI", "::EFI/BOOT", "::EFI/rivet"]);
    let decoy = dir.join("decoy.efi");
    std::fs::write(&decoy, b"MZ not a loader").unwrap();
    let mut csv = vec![0xff, 0xfe];
    csv.extend(
        "ipxe.efi,rivet-test,,rivet test entry\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    let csv_file = dir.join("BOOTX64.CSV");
    std::fs::write(&csv_file, csv).unwrap();
    for (from, to) in [
        (decoy.as_path(), "::EFI/BOOT/BOOTX64.EFI"),
        (csv_file.as_path(), "::EFI/rivet/BOOTX64.CSV"),
        (loader, "::EFI/rivet/ipxe.efi"),
    ] {
        ok("mcopy", &["-i", e, from.to_str().unwrap(), to]);
    }
    copy_into(&esp, &img, 1);
    let fs = mkfs_image(dir, "ext4", 40, "whole-root");
    copy_into(&fs, &img, 41);
    let info = ok("sgdisk", &["-i", "1", p]);
    let partuuid = info
        .lines()
        .find_map(|l| l.strip_prefix("Partition unique GUID: "))
        .expect("sgdisk -i prints the unique GUID")
        .trim()
        .to_lowercase();
    (img, partuuid)
}

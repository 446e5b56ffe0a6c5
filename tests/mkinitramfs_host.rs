//! `rivet mkinitramfs` choosing modules on the build host: several classes,
//! `--modules` rules, `--for-host`, modules carried zstd-compressed. What
//! each archive holds is read back from it, as the kernel will unpack it.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 20 s (builds several classes).

mod common;

use common::{initramfs_built, kernel_dir, scratch};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Every file of an archive `rivet mkinitramfs` wrote (xz streams of cpio
/// archives, one after the other), by path.
fn files_of(image: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = Command::new("xz").arg("-dc").arg(image).output().unwrap();
    assert!(out.status.success(), "xz -dc {}", image.display());
    let mut files = BTreeMap::new();
    let mut rest = &out.stdout[..];
    let pad4 = |n: usize| n.div_ceil(4) * 4;
    while let Some(start) = find(rest, b"070701") {
        rest = &rest[start..];
        let mut end = 0;
        for entry in rivet::wire::cpio::Reader::new(rest) {
            let entry = entry.unwrap();
            end += pad4(110 + entry.name.len() + 1) + pad4(entry.data.len());
            files.insert(entry.name.to_string(), entry.data.to_vec());
        }
        // The trailer entry, then the zeros up to the next archive.
        rest = &rest[end + pad4(110 + "TRAILER!!!".len() + 1)..];
    }
    files
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The modules an archive carries, by file name in /lib/modules.
fn modules_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    files
        .keys()
        .filter_map(|p| p.strip_prefix("lib/modules/"))
        .filter(|f| f.contains(".ko"))
        .map(String::from)
        .collect()
}

fn tree_module(relative: &str) -> Vec<u8> {
    let kernel = kernel_dir();
    let base = std::fs::read_dir(kernel.join("lib/modules"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read(base.join("kernel").join(relative)).unwrap()
}

#[test]
fn module_rules_take_a_whole_vendor_directory_and_typos_are_refused() {
    let dir = scratch("mkinit-rules");
    let out = dir.join("broadcom.img");
    let summary = initramfs_built(
        "virtio",
        &out,
        &["--modules", "drivers/net/ethernet/broadcom/*,hv_*"],
    );
    let modules = modules_of(&files_of(&out));
    // Below broadcom/ and in its subdirectories (bnxt/, bnx2x/), with
    // their dependencies (bnx2x needs mdio, libcrc32c).
    for m in [
        "tg3.ko",
        "bnx2.ko",
        "bnxt_en.ko",
        "bnx2x.ko",
        "mdio.ko",
        "hv_netvsc.ko",
        "hv_vmbus.ko",
        "virtio_blk.ko",
    ] {
        assert!(
            modules.contains(&m.to_string()),
            "{m} not carried: {modules:?}"
        );
    }
    assert!(!modules.contains(&"igb.ko".to_string()), "{modules:?}");
    assert!(summary.contains("class virtio"), "{summary}");

    let typo = Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(["mkinitramfs", "--class", "virtio", "--kernel"])
        .arg(kernel_dir())
        .args(["--modules", "drivers/net/ethernet/broadcomm/*", "--out"])
        .arg(dir.join("typo.img"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(!typo.status.success());
    assert!(
        err.contains("--modules 'drivers/net/ethernet/broadcomm/*' matches no module under"),
        "{err}"
    );
    assert!(!dir.join("typo.img").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn several_classes_add_up() {
    let dir = scratch("mkinit-classes");
    let both = dir.join("both.img");
    let summary = initramfs_built("virtio,default", &both, &["--class", "virtio"]);
    let default = dir.join("default.img");
    initramfs_built("default", &default, &[]);
    // default includes virtio: the union is default, byte for byte.
    assert_eq!(files_of(&both), files_of(&default));
    assert!(summary.contains("class virtio,default,virtio"), "{summary}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn modules_carried_compressed_are_the_tree_s_modules_and_the_index_names_them() {
    let dir = scratch("mkinit-zstd");
    let out = dir.join("zstd.img");
    let summary = initramfs_built("virtio", &out, &["--module-compression", "zstd"]);
    let files = files_of(&out);
    let packed = &files["lib/modules/virtio_blk.ko.zst"];
    let mut unzstd = Command::new("zstd")
        .args(["-dc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        unzstd.stdin.take().unwrap().write_all(packed).unwrap();
    }
    let plain = unzstd.wait_with_output().unwrap().stdout;
    assert_eq!(plain, tree_module("drivers/block/virtio_blk.ko"));
    assert!(packed.len() * 2 < plain.len());
    let index = String::from_utf8(files["lib/modules/modules.rivet"].clone()).unwrap();
    assert!(
        index.contains("m virtio_blk virtio_blk.ko.zst\n"),
        "{index}"
    );
    assert!(modules_of(&files).iter().all(|m| m.ends_with(".ko.zst")));
    assert!(summary.contains(" zstd, "), "{summary}");
    // auto leaves a small class plain, where the outer xz does better.
    let auto = dir.join("auto.img");
    initramfs_built("virtio", &auto, &[]);
    assert!(modules_of(&files_of(&auto))
        .iter()
        .all(|m| m.ends_with(".ko")));
    let _ = std::fs::remove_dir_all(dir);
}

/// `--for-host` on this very machine: the driver of each of its disks and
/// NICs (read here from /sys/class, apart from how rivet reads /sys/bus)
/// is carried, unless the kernel tree builds it in.
#[test]
fn for_host_carries_the_drivers_of_this_machine_s_disks_and_nics() {
    let dir = scratch("mkinit-host");
    let out = dir.join("host.img");
    // No class: only what --for-host finds.
    let built = Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(["mkinitramfs", "--for-host", "--kernel"])
        .arg(kernel_dir())
        .arg("--init")
        .arg(common::init_binary())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&built.stderr).into_owned();
    assert!(built.status.success(), "{summary}");
    let modules = modules_of(&files_of(&out));
    assert!(!modules.contains(&"ahci.ko".to_string()), "{modules:?}");
    assert!(summary.contains("this host: drivers in use "), "{summary}");
    let kernel = kernel_dir();
    let version = std::fs::read_dir(kernel.join("lib/modules"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let builtin = std::fs::read_to_string(version.join("modules.builtin")).unwrap_or_default();
    let mut checked = 0;
    for class in ["/sys/class/block", "/sys/class/net"] {
        for dev in std::fs::read_dir(class).unwrap().flatten() {
            let Ok(driver) = std::fs::read_link(dev.path().join("device/driver")) else {
                continue; // a partition, loop, lo or a bridge
            };
            let name = driver
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('-', "_");
            let in_tree = std::process::Command::new("find")
                .arg(&version)
                .args(["-name", &format!("{}.ko", name)])
                .output()
                .unwrap()
                .stdout;
            if in_tree.is_empty() || builtin.contains(&format!("/{name}.ko")) {
                continue;
            }
            assert!(
                modules.contains(&format!("{name}.ko")),
                "{} is driven by {name}, not carried: {modules:?}\n{summary}",
                dev.path().display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no disk or NIC of this host has a driver module in the tree"
    );
    let _ = std::fs::remove_dir_all(dir);
}

//! The Debian 12 partition images that boot under UEFI
//! (tests/fixtures/debian-image) and what a user watching the serial line
//! checks when the deployed disk boots by itself.
#![allow(dead_code)]

use super::disk::ok;
use super::ironic::first_line_with;
use super::repo;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// tests/fixtures/debian-image's fixed root UUID.
pub const ROOT_UUID: &str = "5e1f2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

/// The cached image of `kind` (ext4: Debian's layout; xfs: the RHEL
/// family's). The first test to ask builds the tree; the others wait.
pub fn debian_image(kind: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let script = repo().join("tests/fixtures/debian-image");
    PathBuf::from(ok(script.to_str().unwrap(), &[kind]).trim())
}

/// Powers the machine on from `disk` with no kernel (OVMF with the variable
/// store `vars`, `mem` MiB) until the console matches `until` (a regex);
/// returns the console, kept in `dir`/console.log. Fails the test if
/// QEMU does not get there within `timeout` seconds.
pub fn boot_from_disk(
    dir: &Path,
    vars: &Path,
    disk: &Path,
    mem: u32,
    timeout: u32,
    until: &str,
) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join("console.log");
    let out = std::process::Command::new(repo().join("qemu/boot"))
        .args(["--from-disk", "--uefi", vars.to_str().unwrap()])
        .args(["--mem", &mem.to_string(), "--timeout", &timeout.to_string()])
        .args([
            "--disk",
            disk.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ])
        .args(["--until", until])
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    assert!(
        out.status.success(),
        "{}\n{console}",
        String::from_utf8_lossy(&out.stderr)
    );
    console
}

/// The chain from the firmware to systemd: the firmware's first choice is
/// `entry` (its label, quoted) loading `loader`, then GRUB, the kernel with
/// the image's root UUID, and systemd's greeting.
pub fn assert_boots_debian(console: &str, entry: &str, loader: &str) {
    // What a user watching the serial line sees (cargo test -- --nocapture).
    for l in console.lines().filter(|l| {
        [
            "BdsDxe:",
            "Welcome to GRUB",
            "Linux version",
            "Command line:",
            "Run /init",
            "Welcome to",
        ]
        .iter()
        .any(|k| l.contains(k))
    }) {
        println!("disk boot: {}", l.trim_start_matches(['\u{1b}', '[']));
    }
    let loading = first_line_with(console, "BdsDxe: loading Boot");
    assert!(
        loading.contains(entry) && loading.contains(loader),
        "firmware's first choice: {loading}\n{console}"
    );
    assert!(
        console.contains("Welcome to GRUB!"),
        "grub did not start:\n{console}"
    );
    let cmdline = first_line_with(console, "Command line:");
    assert!(
        cmdline.contains(&format!("root=UUID={ROOT_UUID}")),
        "kernel command line: {cmdline}\n{console}"
    );
    assert!(console.contains("Run /init as init process"), "{console}");
    assert!(
        console.contains("Welcome to \u{1b}[1mDebian GNU/Linux 12 (bookworm)")
            || console.contains("Welcome to Debian GNU/Linux 12 (bookworm)"),
        "systemd did not greet:\n{console}"
    );
}

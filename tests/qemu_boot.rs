//! rivet as PID 1 in QEMU: a stock Debian kernel, rivet's own initramfs,
//! virtio disks and NIC; PXE through iPXE; the full class loading only what
//! the hardware needs; a driver's firmware served from the initramfs; and
//! the pair Metal3's ipa-downloader links from rivet's tarball. Judged by
//! what the serial console printed.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 70 s (9 guests).

mod common;
use common::*;

const MAC: &str = "52:54:00:ab:cd:ef";

fn two_disk_boot(mem: u32, name: &str) {
    let dir = scratch(name);
    let small = blank_disk(&dir, "small.img", 64);
    let big = blank_disk(&dir, "big.img", 200);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--mem", mem)
        .arg("--mac", MAC)
        .arg("--disk", small.display())
        .arg(
            "--disk",
            format!(
                "{},serial=rivet-big,logical_block_size=4096,physical_block_size=4096",
                big.display()
            ),
        )
        // A NIC the virtio class carries no driver for: PID 1 names it.
        .arg("--qemu-arg", "-device")
        .arg("--qemu-arg", "e1000,netdev=n1,mac=52:54:00:00:00:03")
        .arg("--qemu-arg", "-netdev")
        .arg("--qemu-arg", "user,id=n1")
        .run("reboot: Power down");
    let lines = rivet_lines(&console);
    assert_logged(&lines, "starting as PID 1");
    assert_logged(
        &lines,
        "[8086:100e] network controller (class 0x020000): no carried module drives it",
    );
    for module in ["virtio_pci", "virtio_blk", "virtio_net"] {
        assert_logged(&lines, &format!("module {module} loaded (for "));
    }
    assert_logged(
        &lines,
        "disk vda: 67108864 bytes (64.0 MiB), sectors 512/512",
    );
    assert_logged(&lines, "disk vdb: 209715200 bytes (200.0 MiB), sectors 4096/4096 (logical/physical), model -, serial rivet-big");
    assert_logged(
        &lines,
        &format!("nic eth0: mac {MAC}, carrier up, driver virtio_net"),
    );
    assert_logged(&lines, "syncing disks, then poweroff");
    let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("ERROR")).collect();
    assert!(errors.is_empty(), "errors logged: {errors:?}");
    let off = logged_at(&console, "syncing disks").unwrap();
    eprintln!("{name}: {mem} MiB guest reached poweroff {off:.2} s after kernel start");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn boots_with_two_disks_and_a_nic_in_128_mib() {
    two_disk_boot(128, "boot128");
}

#[test]
fn boots_in_96_mib() {
    two_disk_boot(96, "boot96");
}

#[test]
fn pxe_boots_through_ipxe_over_tftp() {
    let dir = scratch("pxe-tftp");
    let disk = blank_disk(&dir, "disk.img", 64);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--pxe", "tftp")
        .arg("--mac", MAC)
        .arg("--disk", disk.display())
        .run("reboot: Power down");
    assert!(
        console.contains("tftp://10.0.2.2/initrd.img"),
        "iPXE did not fetch over TFTP"
    );
    let lines = rivet_lines(&console);
    assert_logged(&lines, &format!("boot NIC eth0 (BOOTIF {MAC})"));
    assert_logged(&lines, "disk vda: 67108864 bytes");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pxe_boots_through_ipxe_over_http() {
    let dir = scratch("pxe-http");
    let disk = blank_disk(&dir, "disk.img", 64);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--pxe", "http")
        .arg("--mac", MAC)
        .arg("--disk", disk.display())
        .run("reboot: Power down");
    assert!(
        console.contains("http://10.0.2.2:"),
        "iPXE did not fetch over HTTP"
    );
    let lines = rivet_lines(&console);
    assert_logged(&lines, &format!("boot NIC eth0 (BOOTIF {MAC})"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn end_action_and_bad_keys_come_from_the_command_line() {
    let dir = scratch("reboot");
    let disk = blank_disk(&dir, "disk.img", 64);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--disk", disk.display())
        .arg(
            "--append",
            "rivet.after=reboot rivet.wait=banana BOOTIF=01-zz rivet.colour=red",
        )
        .run("reboot: Restarting system");
    let lines = rivet_lines(&console);
    assert_logged(&lines, "rivet.wait='banana' is not a number of seconds");
    assert_logged(&lines, "BOOTIF='01-zz' is not a MAC address");
    assert_logged(&lines, "unknown key 'rivet.colour' ignored");
    assert_logged(&lines, "syncing disks, then reboot");
    let _ = std::fs::remove_dir_all(dir);
}

/// The release binary carries no unwind tables (linker/README.md): a panic
/// in PID 1 must still be logged and end as the command line says, never
/// as a kernel panic ("Attempted to kill init").
#[test]
fn a_panic_in_pid1_is_logged_and_ends_with_the_end_action() {
    let dir = scratch("panic");
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--append", "rivet.after=reboot rivet.debug=panic")
        .run("reboot: Restarting system");
    let lines = rivet_lines(&console);
    assert_logged(&lines, "internal error: panicked in src/linux/pid1.rs");
    // The message is the panic's second line, after its location.
    assert!(console.contains("rivet.debug=panic asked for a panic"));
    assert_logged(&lines, "syncing disks, then reboot");
    assert!(!console.contains("Kernel panic"), "{console}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn full_class_boots_and_loads_only_what_the_hardware_needs() {
    let dir = scratch("full-class");
    let disk = blank_disk(&dir, "disk.img", 64);
    let console = Boot::new(&dir, &initramfs("full"))
        .arg("--disk", disk.display())
        // An e1000e NIC besides the virtio one: its module must be found by alias.
        .arg("--qemu-arg", "-device")
        .arg("--qemu-arg", "e1000e,netdev=n1,mac=52:54:00:00:00:02")
        .arg("--qemu-arg", "-netdev")
        .arg("--qemu-arg", "user,id=n1")
        .run("reboot: Power down");
    let lines = rivet_lines(&console);
    assert_logged(&lines, "module e1000e loaded (for pci:v00008086d000010D3");
    assert_logged(&lines, "mac 52:54:00:00:00:02, carrier up, driver e1000e");
    for unneeded in ["ixgbe", "i40e", "nvme ", "igb", "e1000 "] {
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(&format!("module {unneeded}"))),
            "{unneeded} loaded without its hardware"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A driver's firmware request served from the initramfs: e100 (QEMU's
/// i82551) asks for `e100/d102e_ucode.bin` when its link comes up; built
/// with `--firmware DIR` holding that file (as e100 checks it: 134 words
/// and three offsets), the kernel loads it from /lib/firmware with no
/// helper, and the build named the two files e100 may want that DIR lacks.
#[test]
fn firmware_a_driver_asks_for_comes_from_the_initramfs() {
    let dir = scratch("firmware");
    let fw = dir.join("firmware/e100");
    std::fs::create_dir_all(&fw).unwrap();
    let mut ucode = vec![0u8; 134 * 4];
    ucode.extend([0, 1, 2]);
    std::fs::write(fw.join("d102e_ucode.bin"), ucode).unwrap();
    let initrd = dir.join("initrd.img");
    let firmware_dir = dir.join("firmware");
    let summary = initramfs_built(
        "virtio",
        &initrd,
        &[
            "--modules",
            "e100",
            "--firmware",
            firmware_dir.to_str().unwrap(),
        ],
    );
    assert!(
        summary.contains("lib/firmware/e100/d102e_ucode.bin") && summary.contains("539 B"),
        "{summary}"
    );
    let warning = summary
        .lines()
        .find(|l| l.starts_with("warning: module e100 may ask for firmware "))
        .unwrap_or_else(|| panic!("no firmware warning for e100:\n{summary}"));
    for missing in ["d101s_ucode.bin", "d101m_ucode.bin"] {
        assert!(warning.contains(&format!("e100/{missing}")), "{warning}");
    }
    assert!(
        !warning.contains("d102e_ucode.bin")
            && warning.contains(&format!(": not in {} (", firmware_dir.display())),
        "{warning}"
    );
    let disk = blank_disk(&dir, "disk.img", 64);
    let console = Boot::new(&dir, &initrd)
        .arg("--disk", disk.display())
        .arg("--qemu-arg", "-device")
        .arg("--qemu-arg", "i82551,netdev=n1,mac=52:54:00:00:00:04")
        .arg("--qemu-arg", "-netdev")
        .arg("--qemu-arg", "user,id=n1")
        .run("reboot: Power down");
    let loaded = console
        .lines()
        .find(|l| l.contains("firmware: direct-loading firmware e100/d102e_ucode.bin"))
        .unwrap_or_else(|| panic!("no firmware load:\n{console}"));
    eprintln!("{}", loaded.trim());
    assert!(
        !console.contains("Direct firmware load for e100/d102e_ucode.bin failed"),
        "{console}"
    );
    assert_logged(
        &rivet_lines(&console),
        "mac 52:54:00:00:00:04, carrier up, driver e100",
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Metal3's swap: `rivet mkinitramfs --ipa-tarball` put where IPA_BASEURI
/// points, fetched, unpacked and linked as Metal3's ipa-downloader does
/// (tests/fixtures/ipa-downloader), and the ironic-python-agent.kernel and
/// .initramfs it links boot rivet.
#[test]
fn metal3_s_ipa_downloader_takes_rivet_s_tarball() {
    let dir = scratch("ipa-downloader");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let initrd = dir.join("initrd.img");
    let tarball = www.join("ipa-rivet-master.tar.gz");
    let summary = initramfs_built(
        "virtio",
        &initrd,
        &["--ipa-tarball", tarball.to_str().unwrap()],
    );
    assert!(
        summary.contains("ipa-rivet-master.kernel (")
            && summary.contains("for Metal3's ipa-downloader"),
        "{summary}"
    );
    let server = Fixture::start(
        "deploy_server.py",
        &["--dir", www.to_str().unwrap(), "--lifetime", "300"],
        &dir.join("server.log"),
    );
    let shared = dir.join("shared");
    let fetched = std::process::Command::new(repo().join("tests/fixtures/ipa-downloader"))
        .env("SHARED_DIR", &shared)
        .env("IPA_BASEURI", format!("http://127.0.0.1:{}", server.port))
        .env("IPA_FILENAME", "ipa-rivet-master.tar.gz")
        .output()
        .unwrap();
    assert!(
        fetched.status.success(),
        "ipa-downloader: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let images = shared.join("html/images");
    let (kernel, ramdisk) = (
        images.join("ironic-python-agent.kernel"),
        images.join("ironic-python-agent.initramfs"),
    );
    assert_eq!(
        std::fs::read(&ramdisk).unwrap(),
        std::fs::read(&initrd).unwrap()
    );
    assert_eq!(
        std::fs::read(&kernel).unwrap(),
        std::fs::read(kernel_dir().join("vmlinuz")).unwrap()
    );
    // The ETag the server sent names the directory the links point into.
    let target = std::fs::read_link(&kernel).unwrap();
    let target = target.to_string_lossy();
    assert!(
        target.starts_with("ipa-rivet-master.tar.gz-")
            && target.ends_with("/ipa-rivet-master.kernel"),
        "{target}"
    );
    let disk = blank_disk(&dir, "disk.img", 64);
    let console = Boot::new(&dir, &ramdisk)
        .arg("--kernel", kernel.display())
        .arg("--disk", disk.display())
        .run("reboot: Power down");
    let lines = rivet_lines(&console);
    assert_logged(&lines, "starting as PID 1");
    assert_logged(&lines, "module virtio_blk loaded (for ");
    assert_logged(&lines, "disk vda: 67108864 bytes");
    let _ = std::fs::remove_dir_all(dir);
}

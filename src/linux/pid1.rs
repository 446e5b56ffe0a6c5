//! rivet as `/init`: mount the kernel's filesystems, read the command line,
//! coldplug the carried modules, wait for disks and NICs, report them, and
//! end as asked. PID 1 must never exit or panic (the kernel would panic):
//! every failure is logged and leads to the configured end action.

use super::coldplug::Coldplug;
use super::{efivars, inventory, logger, sys};
use crate::cmdline::{Cmdline, EndAction};
use crate::initramfs::{INDEX_PATH, MODULE_DIR};
use crate::kmod::Index;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The end action, readable from the panic hook.
static END_ACTION: AtomicU8 = AtomicU8::new(0);

fn encode(a: EndAction) -> u8 {
    match a {
        EndAction::Poweroff => 0,
        EndAction::Reboot => 1,
        EndAction::Halt => 2,
        EndAction::Stay => 3,
    }
}

fn decode(v: u8) -> EndAction {
    match v {
        1 => EndAction::Reboot,
        2 => EndAction::Halt,
        3 => EndAction::Stay,
        _ => EndAction::Poweroff,
    }
}

/// What runs once the machine is up: the agent's mode for this command
/// line, returning the end action. Passed in from above, so this glue never
/// calls up into the agent layer.
pub type Mode = fn(&Cmdline) -> EndAction;

pub fn main(mode: Mode) -> ! {
    logger::init(log::LevelFilter::Info);
    // A panic aborts the process, which would panic the kernel: end cleanly
    // from inside the hook instead, before the abort can happen.
    std::panic::set_hook(Box::new(|info| {
        // The release build keeps a panic's file but not its line
        // (linker/README.md): no ":0:0".
        let at = match info.location() {
            Some(l) if l.line() > 0 => format!("{}:{}", l.file(), l.line()),
            Some(l) => l.file().to_string(),
            None => "an unknown place".into(),
        };
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        log::error!("internal error: panicked in {at}: {message}");
        end(decode(END_ACTION.load(Ordering::SeqCst)));
    }));
    for (source, target, fstype) in [
        ("devtmpfs", "/dev", "devtmpfs"),
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
    ] {
        if let Err(e) = sys::mount(source, target, fstype) {
            // EBUSY: the kernel or a previous stage already mounted it.
            if e.raw_os_error() != Some(16) {
                log::error!("mount {fstype} on {target}: {e}");
            }
        }
    }
    log::info!("rivet {} starting as PID 1", crate::VERSION);

    let cmdline = match std::fs::read_to_string("/proc/cmdline") {
        Ok(text) => {
            log::info!("command line: {}", text.trim());
            Cmdline::parse(&text)
        }
        Err(e) => {
            log::error!("cannot read /proc/cmdline: {e}; using defaults");
            Cmdline::default()
        }
    };
    END_ACTION.store(encode(cmdline.after), Ordering::SeqCst);
    if let Some(level) = cmdline.rivet.get("rivet.loglevel") {
        match level.parse::<log::LevelFilter>() {
            Ok(l) => log::set_max_level(l),
            Err(_) => {
                log::warn!("rivet.loglevel='{level}' is not error, warn, info, debug or trace")
            }
        }
    }
    for warning in &cmdline.warnings {
        log::warn!("command line: {warning}");
    }
    if cmdline.rivet.get("rivet.debug").map(String::as_str) == Some("panic") {
        // A test hook: the release binary has no unwind tables (linker/),
        // and this proves a panic in PID 1 still logs and ends as asked.
        panic!("rivet.debug=panic asked for a panic");
    }

    bring_up_hardware(&cmdline);
    let after = mode(&cmdline);
    END_ACTION.store(encode(after), Ordering::SeqCst);
    end(after)
}

fn bring_up_hardware(cmdline: &Cmdline) {
    let index = match std::fs::read_to_string(Path::new("/").join(INDEX_PATH)) {
        Ok(text) => Index::parse(&text).unwrap_or_else(|e| {
            log::error!("{INDEX_PATH}: {e}; no modules will be loaded");
            Index::default()
        }),
        Err(e) => {
            log::error!("{INDEX_PATH}: {e}; no modules will be loaded");
            Index::default()
        }
    };
    log::info!("{} modules carried", index.modules.len());
    let devices = Path::new("/sys/devices");
    let mut coldplug = Coldplug::new(&index, &Path::new("/").join(MODULE_DIR));
    coldplug.settle(devices);

    // Some drivers probe asynchronously (SCSI scanning, NVMe): keep scanning
    // until a disk and a NIC are there, or the bound passes.
    let sys = Path::new("/sys");
    let deadline = Instant::now() + Duration::from_secs(cmdline.wait_secs.into());
    loop {
        let (disks, nics) = (inventory::disks(sys), inventory::nics(sys));
        if !disks.is_empty() && !nics.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            log::warn!(
                "waited {} s: {} disk(s), {} NIC(s) found",
                cmdline.wait_secs,
                disks.len(),
                nics.len()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        coldplug.settle(devices);
    }
    log::info!("coldplug done: {} modules loaded", coldplug.loaded().len());
    for undriven in inventory::undriven_pci(sys) {
        log::warn!("{undriven}");
    }
    if efivars::booted_uefi() {
        mount_efivarfs(&index, &mut coldplug);
    }

    // Links come up so carrier can be read (and the network stack needs them up).
    let nics = inventory::nics(sys);
    for nic in &nics {
        if let Err(e) = sys::set_link_up(&nic.name) {
            log::warn!("cannot bring {} up: {e}", nic.name);
        }
    }
    // e1000's autonegotiation took over 2 s in a loaded TCG guest; a NIC
    // with no cable costs this bound once per boot.
    let carrier_deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < carrier_deadline
        && inventory::nics(sys).iter().any(|n| n.carrier != Some(true))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for disk in inventory::disks(sys) {
        log::info!("{disk}");
    }
    let nics = inventory::nics(sys);
    for nic in &nics {
        log::info!("{nic}");
    }
    if let Some(mac) = cmdline.bootif {
        match nics.iter().find(|n| n.mac == Some(mac)) {
            Some(nic) => log::info!("boot NIC {} (BOOTIF {mac})", nic.name),
            None => log::warn!("BOOTIF {mac} matches no NIC"),
        }
    }
}

/// Boot entries are written through efivarfs, which no device asks for:
/// load it by name (where the kernel has it as a module) and mount it.
fn mount_efivarfs(index: &Index, coldplug: &mut Coldplug) {
    if index.modules.contains_key("efivarfs") {
        coldplug.load("efivarfs", "UEFI firmware");
    }
    match sys::mount("efivarfs", efivars::MOUNT_POINT, "efivarfs") {
        Ok(()) => log::info!("UEFI firmware: efivarfs mounted on {}", efivars::MOUNT_POINT),
        Err(e) if e.raw_os_error() == Some(16) => {}
        Err(e) => log::warn!(
            "UEFI firmware, but efivarfs cannot be mounted on {}: {e}; boot entries cannot be written",
            efivars::MOUNT_POINT
        ),
    }
}

/// Runs the end action. Never returns.
pub fn end(action: EndAction) -> ! {
    let cmd = match action {
        EndAction::Poweroff => Some(sys::RebootCommand::PowerOff),
        EndAction::Reboot => Some(sys::RebootCommand::Restart),
        EndAction::Halt => Some(sys::RebootCommand::Halt),
        EndAction::Stay => None,
    };
    match cmd {
        Some(cmd) => {
            log::info!("syncing disks, then {action}");
            sys::sync();
            let e = sys::reboot(cmd);
            log::error!("{action} failed: {e}; staying up");
        }
        None => log::info!("staying up (rivet.after=stay)"),
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

//! The hardware of the machine rivet runs on, as `rivet mkinitramfs
//! --for-host` needs it: the drivers bound to its devices and the modalias
//! of each device no driver holds, on the buses a deploy needs (PCI, USB,
//! SCSI, virtio, Hyper-V's VMBus, Xen).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The buses whose devices a ramdisk for this machine must drive.
pub const BUSES: &[&str] = &["pci", "usb", "scsi", "virtio", "vmbus", "xen"];

#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostDevices {
    /// Modules that drive a device now: the driver's `module` link, or the
    /// driver's own name where it is built into this host's kernel (and
    /// may be a module in another).
    pub drivers: BTreeSet<String>,
    /// The modalias of each device no driver holds.
    pub unbound: BTreeSet<String>,
}

/// Reads `sys/bus/{BUSES}/devices/*` (`sys` is `/sys` outside tests).
pub fn host_devices(sys: &Path) -> HostDevices {
    let mut found = HostDevices::default();
    for bus in BUSES {
        let Ok(devices) = fs::read_dir(sys.join("bus").join(bus).join("devices")) else {
            continue;
        };
        for device in devices.flatten() {
            let dir = device.path();
            let driver = dir.join("driver");
            let Ok(driver_path) = fs::read_link(&driver) else {
                if let Some(alias) = super::inventory::read_trimmed(&dir.join("modalias")) {
                    if !alias.is_empty() {
                        found.unbound.insert(alias);
                    }
                }
                continue;
            };
            let module = fs::read_link(driver.join("module")).unwrap_or(driver_path);
            if let Some(name) = module.file_name() {
                found
                    .drivers
                    .insert(crate::kmod::normalize(&name.to_string_lossy()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn bound_drivers_by_module_and_unbound_devices_by_modalias() {
        let sys = std::env::temp_dir().join(format!("rivet-host-{}", std::process::id()));
        let _ = fs::remove_dir_all(&sys);
        let mk = |p: &str| fs::create_dir_all(sys.join(p)).unwrap();
        mk("module/mpt3sas");
        mk("bus/pci/drivers/mpt3sas");
        mk("bus/pci/drivers/virtio-pci");
        mk("bus/scsi/drivers/sd");
        mk("module/sd_mod");
        symlink(
            sys.join("module/mpt3sas"),
            sys.join("bus/pci/drivers/mpt3sas/module"),
        )
        .unwrap();
        symlink(
            sys.join("module/sd_mod"),
            sys.join("bus/scsi/drivers/sd/module"),
        )
        .unwrap();
        for (dev, driver, alias) in [
            (
                "bus/pci/devices/0000:01:00.0",
                Some("bus/pci/drivers/mpt3sas"),
                "pci:v00001000d00000097",
            ),
            (
                "bus/pci/devices/0000:00:02.0",
                Some("bus/pci/drivers/virtio-pci"),
                "pci:v00001AF4d00001041",
            ),
            (
                "bus/pci/devices/0000:3b:00.0",
                None,
                "pci:v000014E4d000016D7sv1sd2bc02sc00i00",
            ),
            (
                "bus/scsi/devices/0:0:0:0",
                Some("bus/scsi/drivers/sd"),
                "scsi:t-0x00",
            ),
            (
                "bus/platform/devices/serial8250",
                None,
                "platform:serial8250",
            ),
        ] {
            mk(dev);
            fs::write(sys.join(dev).join("modalias"), format!("{alias}\n")).unwrap();
            if let Some(driver) = driver {
                symlink(sys.join(driver), sys.join(dev).join("driver")).unwrap();
            }
        }
        let found = host_devices(&sys);
        assert_eq!(
            found.drivers,
            ["mpt3sas", "sd_mod", "virtio_pci"].map(String::from).into()
        );
        // The platform bus is not one a deploy needs.
        assert_eq!(
            found.unbound,
            ["pci:v000014E4d000016D7sv1sd2bc02sc00i00".to_string()].into()
        );
        assert_eq!(host_devices(&sys.join("nothing")), HostDevices::default());
        let _ = fs::remove_dir_all(&sys);
    }
}

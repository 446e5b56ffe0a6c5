//! One deploy, whoever asked for it (`rivet.plan=`, an Ironic conductor's
//! `write_image`, `rivet deploy --iface` on a host): the network brought up
//! and verified (the command line's, or a config drive's), the disk chosen
//! (a hint, or Ironic's root device hints), each image URL tried in turn,
//! the engine run. It returns the typed outcome; the callers turn it into
//! the JSON they send.

use crate::cmdline::{Cmdline, IpConfig};
use crate::deploy::{self, Request};
use crate::io::ImageSource;
use crate::linux::blockdev::Disk;
use crate::linux::env::LinuxEnv;
use crate::linux::inventory::{self, Nic};
use crate::linux::packet::{open_stack, LinuxStack};
use crate::linux::tls::{default_bundle, Verify};
use crate::net::client::{Download, Policy};
use crate::net::stack::{describe_lease, Addressing, Lease};
use crate::net::Transport;
use crate::plan::{BootMode, Plan};
use smoltcp::wire::{IpAddress, IpCidr};
use std::path::Path;

/// A failure: the step it happened in and what went wrong.
pub struct Failure {
    pub step: &'static str,
    pub error: String,
}

pub fn fail(step: &'static str) -> impl Fn(String) -> Failure {
    move |error| Failure { step, error }
}

/// The boot NIC: BOOTIF's MAC, else rivet.iface=, else ip='s device, else
/// the first with carrier, else the first.
pub fn choose_nic(cmdline: &Cmdline, nics: &[Nic]) -> Result<String, String> {
    if let Some(mac) = cmdline.bootif {
        return nics
            .iter()
            .find(|n| n.mac == Some(mac))
            .map(|n| n.name.clone())
            .ok_or_else(|| format!("BOOTIF {mac} matches no NIC"));
    }
    let wanted = cmdline
        .rivet
        .get("rivet.iface")
        .cloned()
        .or(match &cmdline.ip {
            Some(IpConfig::Dhcp { device }) | Some(IpConfig::Static { device, .. }) => {
                device.clone()
            }
            _ => None,
        });
    if let Some(name) = wanted {
        return nics
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.name.clone())
            .ok_or_else(|| format!("no NIC named {name}"));
    }
    nics.iter()
        .find(|n| n.carrier == Some(true))
        .or(nics.first())
        .map(|n| n.name.clone())
        .ok_or_else(|| "no network interface found".to_string())
}

fn addressing(ip: &Option<IpConfig>) -> Result<Addressing, String> {
    match ip {
        None | Some(IpConfig::Dhcp { .. }) => Ok(Addressing::Dhcp),
        Some(IpConfig::Off) => Err("ip=off: rivet needs the network to fetch its plan".into()),
        Some(IpConfig::Static {
            address,
            gateway,
            prefix,
            dns,
            ..
        }) => {
            // The kernel's default: the address class's mask; /64 for IPv6.
            let prefix = prefix.unwrap_or(if address.is_ipv6() { 64 } else { 24 });
            Ok(Addressing::Static {
                cidr: IpCidr::new((*address).into(), prefix),
                gateway: gateway.map(IpAddress::from),
                dns: dns.iter().map(|d| IpAddress::from(*d)).collect(),
            })
        }
    }
}

/// Runs the deploy engine on an opened disk and image, logging around it.
pub fn execute<S: ImageSource + Send>(
    disk: &mut Disk,
    image: &mut S,
    request: &Request,
) -> Result<deploy::Outcome, deploy::Error>
where
    S::Error: std::fmt::Display,
{
    use crate::io::BlockDevice;
    log::info!(
        "deploying {} ({} bytes) onto {} ({} bytes, {}-byte sectors), boot mode {}",
        image.describe(),
        image
            .size()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
        disk.name(),
        disk.size(),
        disk.logical_block(),
        request.boot_mode.name()
    );
    let algo = match &request.plan.checksum {
        crate::plan::Checksum::Value(algo, _) => Some(*algo),
        crate::plan::Checksum::Url(..) => None,
    };
    let outcome = crate::linux::readahead::read_ahead(image, algo, |image| {
        deploy::deploy(disk, image, &mut LinuxEnv::default(), request)
    })?;
    log::info!(
        "image written: {} bytes in {} s ({} MB/s); root uuid {}",
        outcome.image_bytes,
        crate::stream::Fixed(outcome.image_ms as f64 / 1000.0, 2),
        crate::stream::Fixed(
            if outcome.image_ms > 0 {
                outcome.image_bytes as f64 / 1e3 / outcome.image_ms as f64
            } else {
                0.0
            },
            1
        ),
        outcome.root_uuid
    );
    Ok(outcome)
}

/// A /proc/meminfo field in KiB.
fn meminfo_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Refuses to stream when the memory the image path needs is not there: as
/// PID 1, running out of memory is a kernel panic, not an error.
fn check_memory(buffer: usize) -> Result<(), String> {
    // Engine buffer + writer's copy + held MiB + read-ahead chunks + TCP
    // window + packet ring + margin.
    let needed_kib = (2 * buffer as u64
        + (1 << 20)
        + crate::linux::readahead::MEMORY as u64
        + 2 * crate::net::stack::TCP_RX_BUFFER as u64
        + (4 << 20))
        / 1024;
    match meminfo_kib("MemAvailable:") {
        Some(avail) if avail < needed_kib => Err(format!(
            "only {} KiB of memory available, the image path needs about {needed_kib} KiB",
            avail
        )),
        _ => Ok(()),
    }
}

/// The boot mode the firmware booted us in.
pub fn firmware_boot_mode() -> BootMode {
    if Path::new("/sys/firmware/efi").exists() {
        BootMode::Uefi
    } else {
        BootMode::Bios
    }
}

/// Where and how rivet's stack speaks.
struct Uplink {
    nic: String,
    /// A bond's other members (active-backup).
    standby: Vec<String>,
    vlan: Option<u16>,
    addressing: Addressing,
}

impl Uplink {
    fn open(&self, verify: Verify) -> Result<LinuxStack, String> {
        open_stack(
            &self.nic,
            &self.standby,
            self.vlan,
            self.addressing.clone(),
            verify,
        )
    }
}

/// The NIC, VLAN and addressing a config-2 medium's network_data.json
/// gives; `Ok(None)` without one; the key at fault if it cannot be applied.
fn from_config_drive(cmdline: &Cmdline) -> Result<Option<Uplink>, String> {
    let sys = Path::new("/sys");
    // Tried after DHCP failed (the key absent): a USB CD that enumerated
    // after boot's coldplug still needs usb-storage, and a second more.
    if std::process::id() == 1 && crate::linux::config2::candidates(sys).is_empty() {
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs(cmdline.wait_secs.into());
        while crate::linux::config2::candidates(sys).is_empty()
            && std::time::Instant::now() < deadline
        {
            crate::linux::coldplug::late_pass();
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let Some((device, json)) = crate::linux::config2::network_data(sys) else {
        return Ok(None);
    };
    let nics = inventory::netdata_nics(Path::new("/sys"));
    let c = crate::netdata::choose(&json, &nics, cmdline.bootif.map(|m| m.0))
        .map_err(|e| format!("{device}: {e}"))?;
    log::info!(
        "{device} (config-2): network '{}' on {}{}{}",
        c.network,
        c.nic,
        c.vlan.map(|v| format!(" VLAN {v}")).unwrap_or_default(),
        if c.standby.is_empty() {
            String::new()
        } else {
            format!(" (bond; standing by: {})", c.standby.join(", "))
        }
    );
    Ok(Some(Uplink {
        addressing: Addressing::from_network_data(&c.addressing),
        nic: c.nic,
        standby: c.standby,
        vlan: c.vlan,
    }))
}

/// Brings up rivet's stack on the boot NIC and waits (bounded) for an
/// address. Errors name the NIC.
/// `insecure` turns off the check of https servers' certificates.
/// `notes`: what went wrong but did not stop the network (for the report).
pub fn network(
    cmdline: &Cmdline,
    insecure: bool,
    notes: &mut Vec<String>,
) -> Result<(LinuxStack, Lease), String> {
    network_verified(cmdline, insecure, default_bundle(), notes).map(|(s, l, _)| (s, l))
}

/// The boot NIC's stack, https checked against `ca_bundle`; and the NIC's name.
pub fn network_verified(
    cmdline: &Cmdline,
    insecure: bool,
    ca_bundle: &str,
    notes: &mut Vec<String>,
) -> Result<(LinuxStack, Lease, String), String> {
    let verify = if insecure {
        Verify::Insecure
    } else {
        Verify::Bundle(ca_bundle.into())
    };
    // rivet.network_data=config-2: the address comes from the config drive.
    let forced = match cmdline.rivet.get("rivet.network_data").map(String::as_str) {
        None => false,
        Some("config-2") => true,
        Some(other) => {
            return Err(format!(
                "rivet.network_data={other}: only config-2 is known (network_data.json on a \
                 medium labelled config-2)"
            ))
        }
    };
    // A config drive that cannot be applied is reported, and the boot
    // goes on with the command line's network (DHCP by default).
    let from_drive = match forced.then(|| from_config_drive(cmdline)) {
        None => None,
        Some(Ok(Some(chosen))) => Some(chosen),
        Some(Ok(None)) => {
            let why = "rivet.network_data=config-2: no config-2 medium with \
                       openstack/latest/network_data.json";
            log::error!("{why}; using the command line's network");
            notes.push(why.into());
            None
        }
        Some(Err(e)) => {
            log::error!("{e}; using the command line's network");
            notes.push(e);
            None
        }
    };
    let drive_tried = forced;
    let uplink = match from_drive {
        Some(chosen) => chosen,
        None => Uplink {
            nic: match cmdline.vlan.as_ref().and_then(|v| v.nic.clone()) {
                Some(named) => named,
                None => choose_nic(cmdline, &inventory::nics(Path::new("/sys")))?,
            },
            standby: Vec::new(),
            vlan: cmdline.vlan.as_ref().map(|v| v.id),
            addressing: addressing(&cmdline.ip)?,
        },
    };
    let nic = uplink.nic.clone();
    log::info!(
        "network: {nic}{}, {}",
        uplink
            .vlan
            .map(|id| format!(" VLAN {id}"))
            .unwrap_or_default(),
        if uplink.addressing == Addressing::Dhcp {
            "DHCP"
        } else {
            "static"
        }
    );
    let dhcp = uplink.addressing == Addressing::Dhcp && cmdline.ip.is_none() && !drive_tried;
    let mut s = uplink.open(verify.clone())?;
    let (s, lease, nic) = match s.wait_for_address(60_000) {
        Ok(lease) => (s, lease, nic),
        // DHCP-less after all: a config drive may say how.
        Err(e) if dhcp => {
            let Some(drive) = from_config_drive(cmdline)? else {
                return Err(format!("{nic}: {e}"));
            };
            log::warn!("{nic}: {e}; using the config drive's network_data.json");
            drop(s);
            let mut s = drive.open(verify)?;
            let lease = s
                .wait_for_address(60_000)
                .map_err(|e| format!("{}: {e}", drive.nic))?;
            (s, lease, drive.nic)
        }
        Err(e) => return Err(format!("{nic}: {e}")),
    };
    log::info!("network up: {nic} {}", describe_lease(&lease));
    Ok((s, lease, nic))
}

/// How the target disk is chosen.
pub enum Target<'a> {
    /// `rivet.disk=` (or the plan's `target_disk`); none: Ironic's default.
    Hint(Option<&'a str>),
    /// Ironic's root device hints (none: its default choice) among the
    /// disks not named in the list (software RAID volumes that are not the
    /// root volume, with their holders and members).
    Hints(Option<&'a crate::agent::target::hints::Hints>, &'a [String]),
}

/// What a deploy wrote: the engine's typed outcome, the disk, and the URL
/// the image came from. JSON is made of it only where a body is written.
pub struct Written {
    pub outcome: deploy::Outcome,
    pub disk: String,
    pub url: String,
}

/// Writes a validated plan onto the disk `target` picks (Ironic's default
/// without a hint), streaming from the plan's URLs in turn; fetches
/// checksum and config drive references first.
/// One copy of the HTTP client serves every caller: `t` is a trait object
/// (a copy per transport type cost /init 17 KB).
pub fn write_plan(
    t: &mut (dyn Transport + Send),
    mut plan: Plan,
    target: Target<'_>,
    boot_mode: BootMode,
    image_checks: deploy::format::Checks,
) -> Result<Written, Failure> {
    let configdrive = super::references::resolve(&mut plan, Some(&mut *t)).map_err(fail("plan"))?;
    if plan.urls.is_empty() {
        return Err(Failure {
            step: "plan",
            error: "the plan has no urls".into(),
        });
    }
    let mut all = inventory::disks(Path::new("/sys"));
    let (hint, hints, excluded) = match target {
        Target::Hint(hint) => (hint, None, &[][..]),
        Target::Hints(hints, excluded) => (None, hints, excluded),
    };
    all.retain(|d| !excluded.contains(&d.name));
    let target = match hints {
        None => super::target::choose(hint, &all),
        Some(hints) => hints.choose(&all).ok_or_else(|| {
            format!(
                "No device found that matches the root device hints (disks: {})",
                all.iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
    }
    .map_err(fail("disk"))?;
    // Ironic deploys onto software RAID with whole-disk images only (its
    // agent's rule): the holders' ESPs come from install_bootloader.
    if target.name.starts_with("md") && plan.image_type == crate::plan::ImageType::Partition {
        return Err(Failure {
            step: "disk",
            error: format!(
                "/dev/{} is a software RAID device: partition images cannot be deployed onto \
                 software RAID (use a whole-disk image)",
                target.name
            ),
        });
    }
    let disk_path = format!("/dev/{}", target.name);
    log::info!("target disk {disk_path} ({} bytes)", target.size_bytes);
    let mut disk = Disk::open(&disk_path, 512).map_err(fail("disk"))?;
    check_memory(deploy::DEFAULT_BUFFER).map_err(fail("memory"))?;
    let request = Request {
        plan: &plan,
        boot_mode,
        configdrive,
        disk_path: disk_path.clone(),
        buffer_size: deploy::DEFAULT_BUFFER,
        image_checks,
    };

    let (outcome, url) = from_first_url(t, &plan, |image, url| {
        execute(&mut disk, image, &request).map(|o| (o, url.to_string()))
    })
    .map_err(fail("image"))?
    .map_err(|e| Failure {
        step: e.step(),
        error: e.to_string(),
    })?;
    Ok(Written {
        outcome,
        disk: disk_path,
        url,
    })
}

/// Hands `write` the download of the first of the plan's URLs that starts
/// (one that does not is logged and the next tried), with the plan's
/// authorization; the last one's error if none did.
pub fn from_first_url<T: Transport + ?Sized, R>(
    t: &mut T,
    plan: &crate::plan::Plan,
    write: impl FnOnce(&mut Download<'_, T>, &str) -> R,
) -> Result<R, String> {
    let mut last = String::from("no image URL");
    for url in &plan.urls {
        match Download::start_with(
            t,
            url,
            Policy::default(),
            &crate::net::client::Access::of(plan),
        ) {
            Ok(mut image) => return Ok(write(&mut image, url)),
            Err(e) => {
                log::warn!("{e}; trying the next URL");
                last = e.to_string();
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use crate::deploy::configdrive::ConfigDrive;
    use crate::deploy::{self, testing::ScriptedEnv, Request};
    use crate::io::MemDisk;
    use crate::net::client::{Download, Policy};
    use crate::net::testing::FakeServer;
    use crate::plan::Plan;

    /// 2 or 3 MiB of image and a partition plan of 8 MiB with its md5.
    fn image_and_plan(mib: usize) -> (Vec<u8>, Plan) {
        let data: Vec<u8> = (0..mib << 20).map(|i| (i * 31 + i / 7) as u8).collect();
        let mut h = crate::stream::Hasher::new(crate::plan::HashAlgo::Md5);
        h.update(&data);
        let json = format!(
            r#"{{"image_type": "partition", "root_mb": 8, "checksum": "{}"}}"#,
            h.finish_hex()
        );
        (data, Plan::from_json(json.as_bytes()).unwrap())
    }

    /// Deploys `plan` from the server's /img onto a fresh disk of `mib`.
    fn deploy_from(
        s: &mut FakeServer,
        plan: &Plan,
        configdrive: Option<ConfigDrive>,
        mib: u64,
    ) -> (Result<deploy::Outcome, deploy::Error>, MemDisk) {
        let mut disk = MemDisk::new(mib << 20, 512);
        let req = Request {
            plan,
            boot_mode: crate::plan::BootMode::Bios,
            configdrive,
            disk_path: "/dev/vda".into(),
            buffer_size: 1 << 20,
            image_checks: Default::default(),
        };
        let mut src = Download::start(s, "http://h/img", Policy::default()).unwrap();
        let out = deploy::deploy(&mut disk, &mut src, &mut ScriptedEnv::default(), &req);
        (out, disk)
    }

    /// Where a session meets its two halves: a download that the server
    /// cuts midway (resumed with Range) streams into the engine, and the
    /// disk holds the image.
    #[test]
    fn downloads_feed_the_deploy_engine() {
        let (data, plan) = image_and_plan(3);
        let mut s = FakeServer::serving("/img", data.clone());
        s.cut_after = [1_500_000].into();
        let (out, disk) = deploy_from(&mut s, &plan, None, 64);
        assert_eq!(out.unwrap().image_bytes, data.len() as u64);
        assert_eq!(disk.bytes(1 << 20, data.len()), data);
    }

    /// Issue 33: a downloaded config drive is measured by one streaming
    /// GET, then downloaded again straight onto its partition through the
    /// image's own connection, after the image: never held whole (it may
    /// be 64 MiB). One that changed between the two downloads fails the
    /// deploy before the held first MiB is written: nothing bootable.
    #[test]
    fn a_downloaded_config_drive_streams_onto_its_partition() {
        use crate::deploy::configdrive::MAX_DOWNLOAD;
        use crate::net::client::get_streaming;
        use crate::wire::{base64, gzip};
        let (data, plan) = image_and_plan(2);
        // An ISO-like image: 32 KiB of zeros, then content; as Ironic
        // sends it, base64 of gzip.
        let iso = |tag: u8| -> Vec<u8> {
            let mut v = vec![0u8; 32 << 10];
            v.extend((0..3_000_000u32).map(|i| (i % 253) as u8 ^ tag));
            v
        };
        let served = |tag| base64::encode(&gzip::compress(&iso(tag), 6)).into_bytes();
        let mut s = FakeServer::serving("/img", data.clone());
        s.files.insert("/cd".into(), served(1));
        s.cut_after = [0, 700_000].into(); // the first two answers cut, then resumed
        let url = "http://h/cd";
        let measure = |s: &mut FakeServer| {
            ConfigDrive::measure_remote(url, |sink| {
                get_streaming(
                    s,
                    url,
                    MAX_DOWNLOAD,
                    Policy::default(),
                    &Default::default(),
                    sink,
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            })
            .unwrap()
        };
        let cd = measure(&mut s);
        assert_eq!(cd.len(), iso(1).len() as u64);
        let (out, mut disk) = deploy_from(&mut s, &plan, Some(cd.clone()), 160);
        out.unwrap();
        let table = crate::deploy::table::read_existing(&mut disk)
            .unwrap()
            .unwrap();
        // The config drive's partition: its size rounded up to a MiB, as
        // ironic-python-agent makes it.
        let want = (iso(1).len() as u64).div_ceil(1 << 20) << 20;
        let part = table.parts.iter().find(|p| p.len == want).unwrap();
        assert!(disk.bytes(part.offset, iso(1).len()) == iso(1));
        let root = table.parts.iter().find(|p| p.len == 8 << 20).unwrap();
        assert!(disk.bytes(root.offset, data.len()) == data);
        // Replaced on the server after it was measured.
        s.files.insert("/cd".into(), served(2));
        let (out, disk) = deploy_from(&mut s, &plan, Some(cd), 160);
        let err = out.unwrap_err().to_string();
        assert!(err.contains("changed between its two downloads"), "{err}");
        let first_mib = disk.bytes(root.offset, 1 << 20);
        assert!(
            first_mib.iter().all(|&b| b == 0),
            "the root's first MiB was written"
        );
    }
}

//! The Ironic conductor stand-in (tests/fixtures/conductor.py) as the QEMU
//! tests drive it: started for one boot, on QEMU's user network or next to
//! a tap, with the API over HTTP or HTTPS; what it recorded.
#![allow(dead_code)]

use super::netns::Net;
use super::tls::{ServerCert, TestCa};
use super::{free_port, initramfs, initramfs_with_ca, Boot, Fixture};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const MAC: &str = "52:54:00:12:34:56";

/// The conductor stand-in's API and images over HTTPS, signed by a test CA
/// that the initramfs carries as its bundle.
pub struct Https {
    pub ca: TestCa,
    pub cert: ServerCert,
}

impl Https {
    pub fn new(dir: &Path) -> Https {
        let ca = TestCa::new(dir, "ironic");
        // 10.0.2.2: the host as QEMU's user network shows it to the guest.
        let cert = ca.server(dir, "conductor", &["10.0.2.2"]);
        Https { ca, cert }
    }
}

/// A conductor stand-in running for one boot.
pub struct Conductor {
    _fixture: Fixture,
    pub api_url: String,
    pub agent_port: u16,
    pub initrd: PathBuf,
    /// The tap the machine's NIC goes on (`netns:ifname`), when the
    /// stand-in runs in that namespace; else QEMU's user network.
    tap: Option<String>,
    /// The machine's NIC (the stand-in looks it up by it).
    mac: String,
}

impl Conductor {
    pub fn start(
        dir: &Path,
        mode: &str,
        image_info: Option<Value>,
        extra: &[&str],
        https: Option<&Https>,
    ) -> Conductor {
        Conductor::start_at(dir, None, mode, image_info, extra, https)
    }

    /// The stand-in in `net`'s server namespace, next to the machine's tap,
    /// as devstack and metal3-dev-env place the conductor.
    pub fn start_on_tap(
        dir: &Path,
        net: &Net,
        mode: &str,
        image_info: Value,
        extra: &[&str],
    ) -> Conductor {
        Conductor::start_at(dir, Some(net), mode, Some(image_info), extra, None)
    }

    /// The stand-in in `net`'s server namespace, without an image, for
    /// the machine with NIC `mac` on tap `tap` (Net::with_bridge's).
    pub fn start_for(
        dir: &Path,
        net: &Net,
        mode: &str,
        extra: &[&str],
        tap: &str,
        mac: &str,
    ) -> Conductor {
        let mut args = extra.to_vec();
        args.extend(["--mac", mac]);
        let mut c = Conductor::start_at(dir, Some(net), mode, None, &args, None);
        c.tap = Some(format!("{}:{tap}", net.srv));
        c.mac = mac.to_string();
        c
    }

    fn start_at(
        dir: &Path,
        tap: Option<&Net>,
        mode: &str,
        image_info: Option<Value>,
        extra: &[&str],
        https: Option<&Https>,
    ) -> Conductor {
        let port = free_port();
        let agent_port = free_port();
        let scheme = if https.is_some() { "https" } else { "http" };
        // 10.0.2.2: the host as QEMU's user network shows it to the guest.
        // On a tap given IPv6 (Net::ipv6), the stand-in speaks only that.
        let bind = tap.map(|n| n.server_ip6.clone().unwrap_or_else(|| n.server_ip.clone()));
        let host = match &bind {
            Some(ip) if ip.contains(':') => format!("[{ip}]"),
            Some(ip) => ip.clone(),
            None => "10.0.2.2".into(),
        };
        let mut args: Vec<String> = [
            "--dir",
            dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--agent-port",
            &agent_port.to_string(),
            "--mode",
            mode,
            "--mac",
            MAC,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(ip) = &bind {
            args.extend(["--bind".into(), ip.clone()]);
            args.push("--agent-direct".into());
        }
        if let Some(mut info) = image_info {
            info["urls"] = json!([format!(
                "{scheme}://{host}:{port}/images/{}",
                info["urls"][0].as_str().unwrap()
            )]);
            let path = dir.join("image_info.json");
            std::fs::write(&path, info.to_string()).unwrap();
            args.extend(["--image-info".into(), path.display().to_string()]);
        }
        if let Some(h) = https {
            args.extend(["--tls-cert".into(), h.cert.cert.display().to_string()]);
            args.extend(["--tls-key".into(), h.cert.key.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let fixture = Fixture::start_in(
            tap.map(|n| n.srv.as_str()),
            "conductor.py",
            &argv,
            &dir.join("conductor.log"),
        );
        Conductor {
            _fixture: fixture,
            api_url: format!("{scheme}://{host}:{port}"),
            agent_port,
            tap: tap.map(|n| format!("{}:{}", n.srv, n.link)),
            mac: MAC.to_string(),
            initrd: match https {
                Some(h) => initramfs_with_ca(dir, &h.ca.pem),
                None => initramfs("virtio"),
            },
        }
    }

    /// The machine, booted into Ironic mode against this conductor.
    pub fn boot(&self, dir: &Path, disks: &[&Path], append: &str) -> Boot {
        let mut boot = Boot::new(dir, &self.initrd).arg("--mem", 128);
        boot = match &self.tap {
            Some(tap) => boot.arg("--tap", tap),
            None => boot.arg("--forward", format!("{}:9999", self.agent_port)),
        };
        boot = boot
            .arg("--mac", &self.mac)
            .arg("--append", format!("ipa-api-url={} ipa-global-request-id=req-6c1e0b51-91d5-4bde-8c19-0f3e1d2c4b5a BOOTIF=01-{} {append}", self.api_url, self.mac.replace(':', "-")));
        for d in disks {
            boot = boot.arg("--disk", d.display());
        }
        boot
    }
}

/// What the stand-in recorded.
pub fn record(dir: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(dir.join("conductor.json")).unwrap_or_else(|_| {
            panic!(
                "the stand-in recorded nothing; see {}",
                dir.join("conductor.log").display()
            )
        }),
    )
    .unwrap()
}

/// Runs one conductor-driven session to the agent's power-off (over
/// HTTPS with `https`); returns the stand-in's record and the console.
pub fn session(
    dir: &Path,
    mode: &str,
    image_info: Option<Value>,
    disks: &[&Path],
    extra: &[&str],
    boot_extra: &[(&str, String)],
    https: Option<&Https>,
) -> (Value, String) {
    let conductor = Conductor::start(dir, mode, image_info, extra, https);
    let mut boot = conductor.boot(dir, disks, "");
    for (flag, value) in boot_extra {
        boot = boot.arg(flag, value);
    }
    let console = boot.run("reboot: Power down");
    (finished_record(dir), console)
}

/// What the stand-in recorded, after a run it finished without an error.
pub fn finished_record(dir: &Path) -> Value {
    let record = record(dir);
    assert_eq!(
        record["errors"],
        json!([]),
        "{}",
        record["errors"][0].as_str().unwrap_or("")
    );
    assert_eq!(record["done"], true, "{record:#}");
    record
}

/// The first console line containing `needle` ("" if none).
pub fn first_line_with(console: &str, needle: &str) -> String {
    console
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or("")
        .to_string()
}

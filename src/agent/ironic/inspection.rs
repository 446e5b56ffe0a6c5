//! Inspection, as ironic-python-agent 13 does it (`inspector.py`,
//! `hardware.list_hardware_info`): collect the inventory, POST it to
//! `ipa-inspection-callback-url` (or `{ipa-api-url}/v1/continue_inspection`)
//! and read the answer: Ironic's lookup payload (API ≥ 1.84) or
//! `{"uuid": …}`. Every field keeps the JSON type the real agent gives it:
//! Metal3 reads the stored inventory through strict Go types.

use super::conductor::{parse_lookup, Lookup};
use crate::linux::hardware::{Cpu, SystemVendor};
use crate::linux::inventory::{Disk, Nic};
use crate::net::client::{exchange, Policy};
use crate::net::Transport;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The collectors rivet runs when `ipa-inspection-collectors` is not given
/// (ironic-python-agent's default).
pub const DEFAULT_COLLECTORS: &str = "default,logs";
/// Collectors rivet knows; others are reported as failed, as the real
/// agent reports a collector it cannot load.
const KNOWN_COLLECTORS: [&str; 2] = ["default", "logs"];
/// The API version whose continue_inspection answers with the lookup.
pub const LOOKUP_IN_ANSWER: (u32, u32) = (1, 84);

/// What the machine is, gathered once.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub nics: Vec<Nic>,
    pub disks: Vec<Disk>,
    pub cpu: Cpu,
    /// Bytes (MemTotal) and installed MiB (SMBIOS), if known.
    pub memory_total: Option<u64>,
    pub memory_physical_mb: Option<u64>,
    pub vendor: SystemVendor,
    pub uefi: bool,
    /// BOOTIF's MAC, lower case with colons.
    pub pxe_mac: Option<String>,
    pub hostname: String,
    /// IPv4 and IPv6 addresses rivet holds, by interface (its own stack's).
    pub ipv4: BTreeMap<String, String>,
    pub ipv6: BTreeMap<String, String>,
    /// LLDP TLVs seen per interface: (type, value bytes).
    pub lldp: BTreeMap<String, Vec<(u8, Vec<u8>)>>,
    /// `ipa-enable-vlan-interfaces`' interfaces, listed after the NICs.
    pub vlans: Vec<super::vlans::VlanIface>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn lldp_json(tlvs: &[(u8, Vec<u8>)]) -> Value {
    Value::Array(tlvs.iter().map(|(t, v)| json!([t, hex(v)])).collect())
}

/// One disk as `BlockDevice.serialize()` gives it.
pub fn disk_json(d: &Disk) -> Value {
    json!({
        "name": format!("/dev/{}", d.name),
        "model": d.model.clone().unwrap_or_default(),
        "size": d.size_bytes,
        "rotational": d.extra.rotational.unwrap_or(false),
        "wwn": d.wwn,
        "serial": d.serial,
        "vendor": d.extra.vendor.clone().unwrap_or_default(),
        "wwn_with_extension": d.wwn,
        "wwn_vendor_extension": Value::Null,
        "hctl": d.extra.hctl,
        "by_path": d.extra.by_path,
        "logical_sectors": d.logical_block,
        "physical_sectors": d.physical_block,
        "tran": d.extra.tran,
    })
}

/// `inventory`, as `list_hardware_info` returns it.
pub fn inventory(f: &Facts) -> Value {
    let interfaces: Vec<Value> = f
        .nics
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "mac_address": n.mac.map(|m| m.to_string()),
                "ipv4_address": f.ipv4.get(&n.name),
                "ipv6_address": f.ipv6.get(&n.name),
                "has_carrier": n.carrier.unwrap_or(false),
                "lldp": f.lldp.get(&n.name).map(|t| lldp_json(t)),
                "vendor": n.vendor,
                "product": n.product,
                "client_id": Value::Null,
                "biosdevname": Value::Null,
                "speed_mbps": n.speed_mbps,
                "pci_address": n.pci,
                "driver": n.driver,
            })
        })
        .chain(f.vlans.iter().map(|v| {
            // As the real agent lists a VLAN interface: its parent's MAC and
            // carrier, no device of its own (no vendor, PCI address, LLDP).
            let parent = f.nics.iter().find(|n| n.name == v.parent);
            json!({
                "name": v.name,
                "mac_address": parent.and_then(|n| n.mac).map(|m| m.to_string()),
                "ipv4_address": f.ipv4.get(&v.name),
                "ipv6_address": f.ipv6.get(&v.name),
                "has_carrier": parent.and_then(|n| n.carrier).unwrap_or(false),
                "lldp": Value::Null,
                "vendor": Value::Null,
                "product": Value::Null,
                "client_id": Value::Null,
                "biosdevname": Value::Null,
                "speed_mbps": Value::Null,
                "pci_address": Value::Null,
                "driver": "8021q",
            })
        }))
        .collect();
    let v = &f.vendor;
    json!({
        "interfaces": interfaces,
        "cpu": {
            "model_name": f.cpu.model_name,
            "frequency": f.cpu.frequency,
            "count": f.cpu.count,
            "architecture": f.cpu.architecture,
            "flags": f.cpu.flags,
            "socket_count": f.cpu.socket_count,
        },
        "disks": f.disks.iter().map(disk_json).collect::<Vec<_>>(),
        "memory": {"total": f.memory_total, "physical_mb": f.memory_physical_mb},
        "bmc_address": Value::Null,
        "bmc_v6address": Value::Null,
        "system_vendor": {
            "product_name": v.product_name.clone().unwrap_or_default(),
            "serial_number": v.serial_number.clone().unwrap_or_default(),
            "manufacturer": v.manufacturer.clone().unwrap_or_default(),
            "firmware": {
                "vendor": v.firmware_vendor.clone().unwrap_or_default(),
                "version": v.firmware_version.clone().unwrap_or_default(),
                "build_date": v.firmware_date.clone().unwrap_or_default(),
            },
        },
        "boot": {
            "current_boot_mode": if f.uefi { "uefi" } else { "bios" },
            "pxe_interface": f.pxe_mac,
        },
        "hostname": f.hostname,
    })
}

/// The collectors asked for, in order (comma separated, blanks dropped).
pub fn collectors(param: Option<&str>) -> Vec<String> {
    param
        .unwrap_or(DEFAULT_COLLECTORS)
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The POST body. `logs` is the packed log (collector `logs`); `failures`
/// what went wrong while collecting (the real agent still posts).
pub fn body(
    f: &Facts,
    collector_names: &[String],
    logs: Option<String>,
    with_lldp: bool,
    mut failures: Vec<String>,
) -> Value {
    let mut data = serde_json::Map::new();
    for name in collector_names {
        if !KNOWN_COLLECTORS.contains(&name.as_str()) {
            failures.push(format!(
                "collector {name} failed: rivet has no such collector"
            ));
        }
    }
    if collector_names.iter().any(|c| c == "default") {
        data.insert("inventory".into(), inventory(f));
        // As the deploy would choose without hints: the smallest disk of
        // at least 4 GiB.
        match crate::agent::target::choose(None, &f.disks) {
            Ok(d) => {
                data.insert("root_disk".into(), disk_json(d));
            }
            Err(e) => log::warn!("inspection: no suitable root device detected ({e})"),
        }
        data.insert("boot_interface".into(), json!(f.pxe_mac));
        if f.nics.is_empty() {
            failures.push("no network interfaces found".into());
        }
    }
    if collector_names.iter().any(|c| c == "logs") {
        data.insert("logs".into(), json!(logs));
    }
    if with_lldp {
        let raw: serde_json::Map<String, Value> = f
            .lldp
            .iter()
            .map(|(k, v)| (k.clone(), lldp_json(v)))
            .collect();
        data.insert("lldp_raw".into(), Value::Object(raw));
    }
    data.insert(
        "configuration".into(),
        json!({
            "collectors": collector_names,
            "managers": [{"name": "RivetHardwareManager", "version": crate::VERSION}],
        }),
    );
    let error = (!failures.is_empty()).then(|| failures.join("\n"));
    data.insert("error".into(), json!(error));
    Value::Object(data)
}

/// What the inspection answer says.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// API ≥ 1.84: the lookup payload itself (node, config, token).
    Lookup(Box<Lookup>),
    /// The node's UUID: a lookup follows.
    Uuid(String),
    /// Anything else (an inspector that answers nothing useful).
    Nothing,
}

pub fn read_answer(j: &Value) -> Answer {
    if let Some(found) = parse_lookup(j) {
        return Answer::Lookup(Box::new(found));
    }
    match j.get("uuid").and_then(Value::as_str) {
        Some(u) => Answer::Uuid(u.to_string()),
        None => Answer::Nothing,
    }
}

/// Attempts and waits as the real agent's tenacity policy: 5 attempts,
/// exponential 1.5× between 5 and 30 s.
const ATTEMPTS: u32 = 5;
const WAIT_MIN_MS: u64 = 5_000;
const WAIT_MAX_MS: u64 = 30_000;

/// POSTs `data` to the first URL that takes a connection; retries
/// connection errors, 5xx and 409. `version`: the API version header to
/// send (none for an inspector that is not Ironic's API).
pub fn post<T: Transport>(
    t: &mut T,
    urls: &[String],
    data: &[u8],
    version: Option<(u32, u32)>,
    request_id: Option<&str>,
) -> Result<Value, String> {
    let ver = version.map(|(a, b)| format!("{a}.{b}"));
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    if let Some(v) = &ver {
        headers.push(("X-OpenStack-Ironic-API-Version", v.as_str()));
    }
    if let Some(id) = request_id {
        headers.push(("X-OpenStack-Request-ID", id));
    }
    let policy = Policy {
        connect_timeout_ms: 10_000,
        idle_timeout_ms: 60_000,
        retries: 0,
        ..Policy::default()
    };
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut answer = None;
        for url in urls {
            log::info!("Posting collected data to {url}");
            match exchange(t, "POST", url, &headers, Some(data), policy) {
                Ok(a) => {
                    answer = Some((url, a));
                    break;
                }
                Err(e) => {
                    log::warn!("inspection: {url}: {e}");
                    last = e.to_string();
                }
            }
        }
        match answer {
            Some((url, (status, body))) if status >= 500 || status == 409 => {
                last = format!(
                    "{url} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                );
                log::warn!("inspection: {last}");
            }
            Some((url, (status, body))) if status >= 400 => {
                return Err(format!(
                    "inspection refused by {url}: error {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(500)
                        .collect::<String>()
                ));
            }
            Some((_, (_, body))) => {
                return Ok(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            None => {}
        }
        if attempt < ATTEMPTS {
            let wait = (WAIT_MIN_MS as f64 * 1.5f64.powi(attempt as i32 - 1)) as u64;
            t.sleep_ms(wait.clamp(WAIT_MIN_MS, WAIT_MAX_MS));
        }
    }
    Err(format!(
        "inspection data not delivered after {ATTEMPTS} attempts: {last}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Mac;
    use crate::linux::inventory::DiskExtra;
    use crate::net::testing::FakeServer;

    fn facts() -> Facts {
        let mut f = Facts {
            nics: vec![Nic {
                name: "eth0".into(),
                mac: Mac::parse("52:54:00:12:34:56"),
                carrier: Some(true),
                driver: Some("virtio_net".into()),
                vendor: Some("0x1af4".into()),
                product: Some("0x1000".into()),
                speed_mbps: None,
                pci: Some("0000:00:03.0".into()),
            }],
            disks: vec![Disk {
                name: "vda".into(),
                size_bytes: 5 << 30,
                logical_block: 512,
                physical_block: 512,
                model: None,
                serial: Some("rivet-disk-1".into()),
                wwn: None,
                pci: Some("0000:00:04.0".into()),
                extra: DiskExtra {
                    rotational: Some(true),
                    by_path: Some("/dev/disk/by-path/pci-0000:00:04.0".into()),
                    ..DiskExtra::default()
                },
            }],
            cpu: Cpu {
                model_name: "QEMU Virtual CPU version 2.5+".into(),
                frequency: "2394.454".into(),
                count: 2,
                architecture: "x86_64".into(),
                flags: vec!["fpu".into(), "lm".into()],
                socket_count: 1,
            },
            memory_total: Some(120 << 20),
            memory_physical_mb: Some(128),
            vendor: SystemVendor {
                product_name: Some("rivet-test".into()),
                serial_number: Some("SN-42".into()),
                manufacturer: Some("Rivet Labs".into()),
                firmware_vendor: Some("SeaBIOS".into()),
                firmware_version: Some("1.16.2".into()),
                firmware_date: Some("04/01/2014".into()),
            },
            uefi: false,
            pxe_mac: Some("52:54:00:12:34:56".into()),
            hostname: "localhost".into(),
            ..Facts::default()
        };
        f.ipv4.insert("eth0".into(), "10.0.2.15".into());
        f.ipv6.insert("eth0".into(), "fd00:1::42".into());
        f.lldp.insert(
            "eth0".into(),
            vec![(1, vec![4, 0x52, 0x54, 0, 1, 2, 3]), (0, vec![])],
        );
        f
    }

    #[test]
    fn vlan_interfaces_follow_the_nics_as_the_real_agent_lists_them() {
        let mut f = facts();
        f.vlans.push(crate::agent::ironic::vlans::VlanIface {
            name: "eth0.100".into(),
            parent: "eth0".into(),
            id: 100,
        });
        f.ipv6.insert("eth0.100".into(), "fd00:100::7".into());
        let inv = inventory(&f);
        assert_eq!(
            inv["interfaces"][1],
            json!({"name": "eth0.100", "mac_address": "52:54:00:12:34:56", "ipv4_address": null,
                "ipv6_address": "fd00:100::7", "has_carrier": true, "lldp": null, "vendor": null,
                "product": null, "client_id": null, "biosdevname": null, "speed_mbps": null,
                "pci_address": null, "driver": "8021q"})
        );
    }

    #[test]
    fn every_field_has_the_json_type_the_real_agent_gives_it() {
        let inv = inventory(&facts());
        assert_eq!(
            inv["interfaces"][0],
            json!({"name": "eth0", "mac_address": "52:54:00:12:34:56", "ipv4_address": "10.0.2.15",
                "ipv6_address": "fd00:1::42", "has_carrier": true, "lldp": [[1, "04525400010203"], [0, ""]],
                "vendor": "0x1af4", "product": "0x1000", "client_id": null, "biosdevname": null,
                "speed_mbps": null, "pci_address": "0000:00:03.0", "driver": "virtio_net"})
        );
        // Metal3's Go types: frequency a string, counts numbers.
        assert_eq!(
            inv["cpu"],
            json!({"model_name": "QEMU Virtual CPU version 2.5+", "frequency": "2394.454", "count": 2,
                "architecture": "x86_64", "flags": ["fpu", "lm"], "socket_count": 1})
        );
        assert_eq!(
            inv["disks"][0],
            json!({"name": "/dev/vda", "model": "", "size": 5u64 << 30, "rotational": true, "wwn": null,
                "serial": "rivet-disk-1", "vendor": "", "wwn_with_extension": null,
                "wwn_vendor_extension": null, "hctl": null,
                "by_path": "/dev/disk/by-path/pci-0000:00:04.0", "logical_sectors": 512,
                "physical_sectors": 512, "tran": null})
        );
        assert_eq!(
            inv["memory"],
            json!({"total": 120u64 << 20, "physical_mb": 128})
        );
        assert_eq!(
            inv["system_vendor"],
            json!({"product_name": "rivet-test", "serial_number": "SN-42", "manufacturer": "Rivet Labs",
                "firmware": {"vendor": "SeaBIOS", "version": "1.16.2", "build_date": "04/01/2014"}})
        );
        assert_eq!(
            inv["boot"],
            json!({"current_boot_mode": "bios", "pxe_interface": "52:54:00:12:34:56"})
        );
        assert_eq!(
            (&inv["bmc_address"], &inv["bmc_v6address"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(inv["hostname"], "localhost");
    }

    #[test]
    fn the_body_carries_root_disk_configuration_logs_lldp_and_error() {
        let names = collectors(None);
        assert_eq!(names, ["default", "logs"]);
        let b = body(&facts(), &names, Some("H4sI".into()), true, vec![]);
        assert_eq!(b["root_disk"]["name"], "/dev/vda");
        assert_eq!(b["boot_interface"], "52:54:00:12:34:56");
        assert_eq!(b["logs"], "H4sI");
        assert_eq!(
            b["lldp_raw"],
            json!({"eth0": [[1, "04525400010203"], [0, ""]]})
        );
        assert_eq!(b["error"], Value::Null);
        assert_eq!(b["configuration"]["collectors"], json!(["default", "logs"]));
        assert_eq!(
            b["configuration"]["managers"][0]["name"],
            "RivetHardwareManager"
        );
    }

    #[test]
    fn a_machine_without_dmi_carrier_or_disks_still_posts_and_says_why() {
        let f = Facts {
            cpu: Cpu {
                architecture: "x86_64".into(),
                ..Cpu::default()
            },
            ..Facts::default()
        };
        let b = body(
            &f,
            &collectors(Some("default, pci-devices ,")),
            None,
            false,
            vec![],
        );
        assert_eq!(b["inventory"]["disks"], json!([]));
        assert_eq!(
            b.get("root_disk"),
            None,
            "no disk of 4 GiB: no root_disk, as the real agent"
        );
        assert_eq!(b["inventory"]["system_vendor"]["product_name"], "");
        assert_eq!(
            b["inventory"]["memory"],
            json!({"total": null, "physical_mb": null})
        );
        assert_eq!(b.get("lldp_raw"), None);
        assert_eq!(b.get("logs"), None);
        let err = b["error"].as_str().unwrap();
        assert!(err.contains("collector pci-devices failed"), "{err}");
        assert!(err.contains("no network interfaces"), "{err}");
    }

    #[test]
    fn answers_with_the_lookup_or_a_uuid() {
        let lookup = json!({"node": {"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"},
            "config": {"agent_token": "x".repeat(43), "heartbeat_timeout": 300}});
        match read_answer(&lookup) {
            Answer::Lookup(l) => {
                assert_eq!(l.node_uuid, "1be26c0b-03f2-4d2e-ae87-c02d7f33c123");
                assert_eq!(
                    l.token,
                    super::super::conductor::TokenAnswer::Given(
                        super::super::token::AgentToken::new("x".repeat(43))
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            read_answer(&json!({"uuid": "1be26c0b"})),
            Answer::Uuid("1be26c0b".into())
        );
        assert_eq!(read_answer(&Value::Null), Answer::Nothing);
    }

    #[test]
    fn posting_retries_5xx_and_409_with_the_real_agents_waits_and_stops_on_4xx() {
        let mut s = FakeServer::answering(&[(503, "{}"), (409, "{}"), (202, r#"{"uuid": "n-1"}"#)]);
        let t0 = s.now;
        let j = post(
            &mut s,
            &["http://10.0.2.2:6385/v1/continue_inspection".into()],
            b"{}",
            Some(LOOKUP_IN_ANSWER),
            Some("req-1"),
        )
        .unwrap();
        assert_eq!(j["uuid"], "n-1");
        let waited = s.now - t0;
        assert!(
            (12_500..13_000).contains(&waited),
            "waits of 5 s then 7.5 s: {waited} ms"
        );
        assert_eq!(s.posts.len(), 3);
        let head = &s.requests[0];
        assert!(
            head.starts_with("POST /v1/continue_inspection HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.contains("X-OpenStack-Ironic-API-Version: 1.84"),
            "{head}"
        );
        assert!(head.contains("X-OpenStack-Request-ID: req-1"), "{head}");

        let mut s = FakeServer::answering(&[(400, r#"{"error_message": "no"}"#)]);
        let e = post(
            &mut s,
            &["http://10.0.2.2:6385/v1/continue_inspection".into()],
            b"{}",
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("error 400"), "{e}");
        assert_eq!(s.requests.len(), 1, "a 4xx is final");
    }
}

//! OpenStack's `network_data.json` (what Ironic puts on a `config-2`
//! medium for DHCP-less boots) → how rivet's stack speaks: on which NIC,
//! on which VLAN, with which address, gateway and DNS servers.
//!
//! Honoured: links of type `phy` (and the other physical kinds: `ethernet`,
//! `vif`, `bridge`, `ovs`, `tap`, `hw_veb`, `dvs`, `vhostuser`), `vlan`
//! (`vlan_link`, `vlan_id`) and `bond` (`bond_links`; `active-backup` only:
//! rivet speaks on one member, the one with carrier); networks of type
//! `ipv4` and `ipv6` (`ip_address` with `netmask` or a `/prefix`, `routes`,
//! `services` and `dns_nameservers`), `ipv4_dhcp`, and `ipv6_slaac` /
//! `ipv6_dhcpv6-stateful` / `ipv6_dhcpv6-stateless` (all three: rivet's
//! IPv6 autoconfiguration, which follows the router's flags); top-level
//! `services` of type `dns`. Where a NIC has both, IPv4's network is taken.
//! A key that cannot be applied is named in the error.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use serde_json::Value;

/// A NIC as rivet found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub mac: [u8; 6],
    pub carrier: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// DHCPv4 and IPv6 autoconfiguration.
    Dhcp,
    /// One address; the gateway and DNS servers are of its family.
    Static {
        address: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
        dns: Vec<IpAddr>,
    },
}

/// What to configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub nic: String,
    /// A bond's other members present here, with carrier first: rivet
    /// fails over to them in order (active-backup).
    pub standby: Vec<String>,
    pub vlan: Option<u16>,
    pub addressing: Addressing,
    /// The network's `id`, for the log.
    pub network: String,
}

/// The key at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "network_data.json: {}", self.problem)
        } else {
            write!(f, "network_data.json: \"{}\": {}", self.key, self.problem)
        }
    }
}

fn err(key: impl Into<String>, problem: impl Into<String>) -> Error {
    Error {
        key: key.into(),
        problem: problem.into(),
    }
}

const PHYSICAL: [&str; 9] = [
    "phy",
    "ethernet",
    "vif",
    "bridge",
    "ovs",
    "tap",
    "hw_veb",
    "dvs",
    "vhostuser",
];

fn mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// An address of the family asked for (`v6`).
fn ip(s: &str, v6: bool) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().filter(|a| a.is_ipv6() == v6)
}

/// A netmask's prefix length, if its ones are contiguous.
fn prefix_of(mask: IpAddr) -> Option<u8> {
    let m = match mask {
        IpAddr::V4(m) => u128::from(u32::from(m)) << 96,
        IpAddr::V6(m) => u128::from(m),
    };
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Where a network's link leads: the NICs that may carry it, and a VLAN.
struct Path {
    nics: Vec<[u8; 6]>,
    vlan: Option<u16>,
}

struct Links<'a> {
    list: &'a [Value],
    /// Link lookups left for the whole file: links referencing links
    /// (bonds of bonds, each listing the same members many times) would
    /// otherwise multiply work and memory with every level.
    budget: core::cell::Cell<usize>,
}

/// Link lookups one network_data.json may cost: real files have tens of
/// links and resolve each network in a few lookups.
const LOOKUP_BUDGET: usize = 4096;

impl<'a> Links<'a> {
    fn find(&self, id: &str) -> Option<(usize, &'a Value)> {
        self.list
            .iter()
            .enumerate()
            .find(|(_, l)| l["id"].as_str() == Some(id))
    }

    /// Follows `id` down to physical links (through one VLAN and bonds).
    fn path(&self, id: &str, key: &str, depth: u8) -> Result<Path, Error> {
        let left = self.budget.get().checked_sub(1).ok_or_else(|| {
            err(
                key,
                format!(
                    "links reference links more than {LOOKUP_BUDGET} times (bonds of bonds \
                     listing members again and again?)"
                ),
            )
        })?;
        self.budget.set(left);
        let (i, link) = self
            .find(id)
            .ok_or_else(|| err(key, format!("no link has id '{id}'")))?;
        let here = format!("links[{i}]");
        if depth > 4 {
            return Err(err(here, "links nest too deep (a loop?)"));
        }
        let kind = link["type"].as_str().unwrap_or("phy");
        match kind {
            "vlan" => {
                let vid = link["vlan_id"]
                    .as_u64()
                    .filter(|v| (1..=4094).contains(v))
                    .ok_or_else(|| err(format!("{here}.vlan_id"), "not a VLAN id (1-4094)"))?;
                let parent = link["vlan_link"]
                    .as_str()
                    .ok_or_else(|| err(format!("{here}.vlan_link"), "missing"))?;
                let mut p = self.path(parent, &format!("{here}.vlan_link"), depth + 1)?;
                if p.vlan.is_some() {
                    return Err(err(here, "a VLAN on a VLAN (QinQ) is not supported"));
                }
                p.vlan = Some(vid as u16);
                Ok(p)
            }
            "bond" => {
                let mode = link["bond_mode"].as_str().unwrap_or("balance-rr");
                if !matches!(mode, "active-backup" | "1") {
                    return Err(err(
                        format!("{here}.bond_mode"),
                        format!(
                            "'{mode}' is not supported: rivet speaks on one member at a time \
                             (active-backup)"
                        ),
                    ));
                }
                let members = link["bond_links"]
                    .as_array()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| err(format!("{here}.bond_links"), "missing or empty"))?;
                let mut nics = Vec::new();
                for (j, m) in members.iter().enumerate() {
                    let key = format!("{here}.bond_links[{j}]");
                    let id = m.as_str().ok_or_else(|| err(&key, "not a link id"))?;
                    let p = self.path(id, &key, depth + 1)?;
                    for m in p.nics {
                        if !nics.contains(&m) {
                            nics.push(m);
                        }
                    }
                }
                Ok(Path { nics, vlan: None })
            }
            k if PHYSICAL.contains(&k) => {
                let m = link["ethernet_mac_address"]
                    .as_str()
                    .and_then(mac)
                    .ok_or_else(|| {
                        err(
                            format!("{here}.ethernet_mac_address"),
                            "missing or not a MAC",
                        )
                    })?;
                Ok(Path {
                    nics: alloc::vec![m],
                    vlan: None,
                })
            }
            other => Err(err(
                format!("{here}.type"),
                format!("link type '{other}' is not supported"),
            )),
        }
    }
}

fn dns_list(v: &Value, v6: bool, into: &mut Vec<IpAddr>) {
    let mut add = |a: &Value| {
        if let Some(ip) = a.as_str().and_then(|a| ip(a, v6)) {
            if !into.contains(&ip) {
                into.push(ip);
            }
        }
    };
    for s in v["services"].as_array().into_iter().flatten() {
        if s["type"].as_str() == Some("dns") {
            add(&s["address"]);
        }
    }
    for a in v["dns_nameservers"].as_array().into_iter().flatten() {
        add(a);
    }
}

/// The static configuration of network `i`, IPv6 if `v6`.
fn static_ip(net: &Value, i: usize, top: &Value, v6: bool) -> Result<Addressing, Error> {
    let (family, most) = if v6 { ("IPv6", 128) } else { ("IPv4", 32) };
    let key = |k: &str| format!("networks[{i}].{k}");
    let given = net["ip_address"]
        .as_str()
        .ok_or_else(|| err(key("ip_address"), "missing"))?;
    let (addr, inline) = match given.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (given, None),
    };
    let address =
        ip(addr, v6).ok_or_else(|| err(key("ip_address"), format!("'{given}' is not {family}")))?;
    let prefix = match (inline, net["netmask"].as_str()) {
        (Some(p), _) => p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=most).contains(p))
            .ok_or_else(|| err(key("ip_address"), format!("'/{p}' is not a prefix length")))?,
        (None, Some(m)) => ip(m, v6)
            .and_then(prefix_of)
            .filter(|p| *p > 0)
            .ok_or_else(|| err(key("netmask"), format!("'{m}' is not a netmask")))?,
        (None, None) => {
            return Err(err(
                key("netmask"),
                "missing (and no /prefix on ip_address)",
            ))
        }
    };
    let mut gateway = None;
    for (j, r) in net["routes"].as_array().into_iter().flatten().enumerate() {
        let any = if v6 { "::" } else { "0.0.0.0" };
        let default =
            r["network"].as_str() == Some(any) && r["netmask"].as_str().is_none_or(|m| m == any);
        if default {
            let g = r["gateway"]
                .as_str()
                .and_then(|g| ip(g, v6))
                .ok_or_else(|| {
                    err(
                        key(&format!("routes[{j}].gateway")),
                        format!("missing or not {family}"),
                    )
                })?;
            gateway = Some(g);
        }
    }
    let mut dns = Vec::new();
    dns_list(net, v6, &mut dns);
    dns_list(top, v6, &mut dns);
    Ok(Addressing::Static {
        address,
        prefix,
        gateway,
        dns,
    })
}

/// Picks the network rivet provisions on: a network (static or
/// autoconfigured) reached through one of `nics`, the boot NIC's
/// (`boot_mac`) first, then one with carrier, then the first; on one NIC,
/// IPv4 before IPv6.
pub fn choose(json: &[u8], nics: &[Nic], boot_mac: Option<[u8; 6]>) -> Result<Choice, Error> {
    let top: Value =
        serde_json::from_slice(json).map_err(|e| err("", format!("not valid JSON: {e}")))?;
    let list = top["links"]
        .as_array()
        .ok_or_else(|| err("links", "missing"))?;
    let links = Links {
        list,
        budget: core::cell::Cell::new(LOOKUP_BUDGET),
    };
    let networks = top["networks"]
        .as_array()
        .ok_or_else(|| err("networks", "missing"))?;
    let mut candidates = Vec::new();
    let mut seen = Vec::new();
    let mut known = false;
    // A network that cannot be applied matters only if none can.
    let mut errors = Vec::new();
    for (i, net) in networks.iter().enumerate() {
        let kind = net["type"].as_str().unwrap_or("");
        seen.push(kind.to_string());
        // (autoconfigured, IPv6)
        let (dhcp, v6) = match kind {
            "ipv4" => (false, false),
            "ipv4_dhcp" => (true, false),
            "ipv6" => (false, true),
            "ipv6_slaac" | "ipv6_dhcpv6-stateful" | "ipv6_dhcpv6-stateless" => (true, true),
            _ => continue,
        };
        known = true;
        let path = match net["link"].as_str() {
            Some(link) => links.path(link, &format!("networks[{i}].link"), 0),
            None => Err(err(format!("networks[{i}].link"), "missing")),
        };
        let path = match path {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        // The member to speak on: the boot NIC, else one with carrier.
        let present: Vec<&Nic> = path
            .nics
            .iter()
            .filter_map(|m| nics.iter().find(|n| n.mac == *m))
            .collect();
        let Some(nic) = present
            .iter()
            .find(|n| Some(n.mac) == boot_mac)
            .or_else(|| present.iter().find(|n| n.carrier == Some(true)))
            .or(present.first())
        else {
            continue;
        };
        let addressing = if dhcp {
            Addressing::Dhcp
        } else {
            match static_ip(net, i, &top, v6) {
                Ok(a) => a,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        };
        let rank = 2 * if Some(nic.mac) == boot_mac {
            0
        } else if nic.carrier == Some(true) {
            1
        } else {
            2
        } + u8::from(v6);
        candidates.push((
            rank,
            Choice {
                standby: {
                    let mut others: Vec<&&Nic> =
                        present.iter().filter(|n| n.name != nic.name).collect();
                    others.sort_by_key(|n| n.carrier != Some(true));
                    others.iter().map(|n| n.name.clone()).collect()
                },
                nic: nic.name.clone(),
                vlan: path.vlan,
                addressing,
                network: net["id"].as_str().unwrap_or("").to_string(),
            },
        ));
    }
    candidates.sort_by_key(|(rank, _)| *rank);
    if let Some(e) = errors.into_iter().next().filter(|_| candidates.is_empty()) {
        return Err(e);
    }
    match candidates.into_iter().next() {
        Some((_, c)) => Ok(c),
        None if known => Err(err(
            "networks",
            "no IP network is on a link whose MAC address is one of this machine's NICs",
        )),
        None => Err(err(
            "networks",
            format!(
                "no IPv4 or IPv6 network (found: {})",
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join(", ")
                }
            ),
        )),
    }
}

#[cfg(test)]
mod tests;

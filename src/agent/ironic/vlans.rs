//! `ipa-enable-vlan-interfaces`: the VLAN interfaces inspection reports,
//! chosen as ironic-python-agent's `netutils.bring_up_vlan_interfaces`
//! chooses them: `NIC.ID` (the NIC by name or MAC) as given; `NIC` or `all`
//! from the VLAN Name TLVs (IEEE 802.1, OUI 00-80-c2, subtype 3) that LLDP
//! saw on that NIC or on each, when LLDP is collected. rivet makes no kernel
//! interface: its own stack tags frames, so a VLAN interface is a parent NIC
//! and an id, named `NIC.ID` as the real agent names it.

use crate::linux::inventory::Nic;
use std::collections::BTreeMap;

/// LLDP's organisationally specific TLV, and IEEE 802.1's VLAN Name in it.
const TLV_ORG_SPECIFIC: u8 = 127;
const DOT1_VLAN_NAME: [u8; 4] = [0x00, 0x80, 0xc2, 0x03];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanIface {
    /// `eth0.100`
    pub name: String,
    pub parent: String,
    pub id: u16,
}

/// The VLAN ids a NIC's LLDP neighbour names (in the order seen).
fn lldp_vlans(tlvs: &[(u8, Vec<u8>)]) -> Vec<u16> {
    tlvs.iter()
        .filter(|(kind, v)| *kind == TLV_ORG_SPECIFIC && v.starts_with(&DOT1_VLAN_NAME))
        .filter_map(|(_, v)| Some(u16::from_be_bytes([*v.get(4)?, *v.get(5)?])))
        .collect()
}

/// What `config` (the key's comma-separated entries) asks for on `nics`;
/// what cannot be honoured goes to `warnings`, as the real agent logs it.
pub fn choose(
    config: &[String],
    nics: &[Nic],
    lldp: &BTreeMap<String, Vec<(u8, Vec<u8>)>>,
    collect_lldp: bool,
    warnings: &mut Vec<String>,
) -> Vec<VlanIface> {
    let mut out: Vec<VlanIface> = Vec::new();
    let add = |parent: &str, id: u16, out: &mut Vec<VlanIface>| {
        let name = format!("{parent}.{id}");
        if (1..=4094).contains(&id) && !out.iter().any(|v| v.name == name) {
            out.push(VlanIface {
                name,
                parent: parent.to_string(),
                id,
            });
        }
    };
    for entry in config {
        if let Some((nic, id)) = entry.split_once('.') {
            let found = nics.iter().find(|n| {
                n.name == nic
                    || n.mac
                        .is_some_and(|m| m.to_string().eq_ignore_ascii_case(nic))
            });
            match (found, id.parse::<u16>()) {
                (Some(n), Ok(id)) if (1..=4094).contains(&id) => add(&n.name, id, &mut out),
                (Some(_), _) => {
                    warnings.push(format!("VLAN interface {entry}: '{id}' is not a VLAN id"))
                }
                (None, _) => warnings.push(format!("Provided VLAN interface {nic} does not exist")),
            }
        } else if !collect_lldp {
            warnings.push(
                "Attempting to add VLAN interfaces but specific interface not provided and LLDP not enabled"
                    .into(),
            );
        } else {
            let parents: Vec<&Nic> = if entry == "all" {
                nics.iter().collect()
            } else {
                let named: Vec<&Nic> = nics.iter().filter(|n| n.name == *entry).collect();
                if named.is_empty() || !lldp.contains_key(entry.as_str()) {
                    warnings.push(format!("Provided interface name {entry} was not found"));
                }
                named
            };
            for n in parents {
                for id in lldp.get(&n.name).map(|t| lldp_vlans(t)).unwrap_or_default() {
                    add(&n.name, id, &mut out);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Mac;

    fn nic(name: &str, mac: &str) -> Nic {
        Nic {
            name: name.into(),
            mac: Mac::parse(mac),
            carrier: Some(true),
            driver: None,
            vendor: None,
            product: None,
            speed_mbps: None,
            pci: None,
        }
    }

    fn names(v: &[VlanIface]) -> Vec<&str> {
        v.iter().map(|v| v.name.as_str()).collect()
    }

    /// A switch port's LLDP: chassis, port, then two 802.1 VLAN Name TLVs
    /// (VLAN 100 "prov", VLAN 200 "storage") and a Port VLAN ID TLV
    /// (subtype 1, not a VLAN Name: not taken).
    fn switch_tlvs() -> Vec<(u8, Vec<u8>)> {
        vec![
            (1, vec![4, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
            (2, b"\x05Ethernet1".to_vec()),
            (
                127,
                [&DOT1_VLAN_NAME[..], &[0x00, 0x64, 4], b"prov"].concat(),
            ),
            (
                127,
                [&DOT1_VLAN_NAME[..], &[0x00, 0xc8, 7], b"storage"].concat(),
            ),
            (127, vec![0x00, 0x80, 0xc2, 0x01, 0x00, 0x0a]),
            (0, vec![]),
        ]
    }

    #[test]
    fn named_vlans_are_taken_by_nic_name_or_mac() {
        let nics = [
            nic("eth0", "52:54:00:12:34:56"),
            nic("eth1", "52:54:00:12:34:57"),
        ];
        let mut w = Vec::new();
        let config = [
            "eth0.100".to_string(),
            "52:54:00:12:34:57.42".into(),
            "eth9.5".into(),
        ];
        let v = choose(&config, &nics, &BTreeMap::new(), false, &mut w);
        assert_eq!(names(&v), ["eth0.100", "eth1.42"]);
        assert_eq!((v[1].parent.as_str(), v[1].id), ("eth1", 42));
        assert_eq!(w, ["Provided VLAN interface eth9 does not exist"]);
    }

    #[test]
    fn all_and_a_nic_take_the_vlans_lldp_names() {
        let nics = [
            nic("eth0", "52:54:00:12:34:56"),
            nic("eth1", "52:54:00:12:34:57"),
        ];
        let mut lldp = BTreeMap::new();
        lldp.insert("eth1".to_string(), switch_tlvs());
        let mut w = Vec::new();
        let v = choose(&["all".to_string()], &nics, &lldp, true, &mut w);
        assert_eq!(names(&v), ["eth1.100", "eth1.200"]);
        assert!(w.is_empty(), "{w:?}");
        let v = choose(&["eth0".to_string()], &nics, &lldp, true, &mut w);
        assert!(v.is_empty());
        assert_eq!(w, ["Provided interface name eth0 was not found"]);
        // Without LLDP, only NIC.ID entries mean anything.
        w.clear();
        assert!(choose(&["all".to_string()], &nics, &lldp, false, &mut w).is_empty());
        assert!(w[0].contains("LLDP not enabled"), "{w:?}");
    }
}

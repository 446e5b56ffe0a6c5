//! The examples of OpenStack's network metadata spec and what Ironic and
//! Metal3 generate, against NICs as rivet finds them.

use super::*;
use serde_json::json;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn nic(name: &str, mac: &str, carrier: bool) -> Nic {
    Nic {
        name: name.into(),
        mac: super::mac(mac).unwrap(),
        carrier: Some(carrier),
    }
}

/// The spec's example (nova, `metadata-service-network-info`): two NICs,
/// an 802.1ad bond, a VLAN on it, IPv4 and IPv6 networks.
const SPEC: &str = r#"{
  "links": [
    {"id": "interface2", "type": "vif", "ethernet_mac_address": "a0:36:9f:2c:e8:70",
     "vif_id": "E1C90E9F-EAFC-4E2D-8EC9-58B91CEBB53D", "mtu": 1500},
    {"id": "interface0", "type": "phy", "ethernet_mac_address": "a0:36:9f:2c:e8:80", "mtu": 9000},
    {"id": "interface1", "type": "phy", "ethernet_mac_address": "a0:36:9f:2c:e8:81", "mtu": 9000},
    {"id": "bond0", "type": "bond", "bond_links": ["interface0", "interface1"],
     "ethernet_mac_address": "a0:36:9f:2c:e8:82", "bond_mode": "802.1ad",
     "bond_xmit_hash_policy": "layer3+4", "bond_miimon": 100},
    {"id": "vlan0", "type": "vlan", "vlan_link": "bond0", "vlan_id": 101,
     "vlan_mac_address": "a0:36:9f:2c:e8:80", "neutron_port_id": "E1C90E9F-EAFC-4E2D-8EC9-58B91CEBB53F"}
  ],
  "networks": [
    {"id": "private-ipv4", "type": "ipv4", "link": "interface0", "ip_address": "10.184.0.244",
     "netmask": "255.255.240.0",
     "routes": [{"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "11.0.0.1"},
                {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "23.253.157.1"}],
     "network_id": "DA5BB487-5193-4A65-A3DF-4A0055A8C0D7"},
    {"id": "private-ipv4", "type": "ipv6", "link": "interface0", "ip_address": "2001:cdba::3257:9652/24",
     "routes": [{"network": "::", "netmask": "::", "gateway": "fd00::1"}],
     "network_id": "DA5BB487-5193-4A65-A3DF-4A0055A8C0D8"},
    {"id": "publicnet-ipv4", "type": "ipv4", "link": "vlan0", "ip_address": "23.253.157.244",
     "netmask": "255.255.255.0", "dns_nameservers": ["69.20.0.164", "69.20.0.196"],
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "23.253.157.1"}],
     "network_id": "62611D6F-66CB-4270-8B1F-503EF0DD4736"}
  ],
  "services": [{"type": "dns", "address": "8.8.8.8"}, {"type": "dns", "address": "8.8.4.4"}]
}"#;

#[test]
fn the_spec_example_on_its_first_nic() {
    let nics = [
        nic("eth0", "a0:36:9f:2c:e8:80", true),
        nic("eth1", "a0:36:9f:2c:e8:81", true),
    ];
    let c = choose(SPEC.as_bytes(), &nics, None).unwrap();
    assert_eq!(
        (c.nic.as_str(), c.vlan, c.network.as_str()),
        ("eth0", None, "private-ipv4")
    );
    assert_eq!(
        c.addressing,
        Addressing::Static {
            address: ip("10.184.0.244"),
            prefix: 20,
            gateway: Some(ip("23.253.157.1")),
            dns: vec![ip("8.8.8.8"), ip("8.8.4.4")],
        }
    );
}

#[test]
fn a_bond_that_is_not_active_backup_is_refused_by_its_key() {
    // The boot NIC is eth1, only reachable through the 802.1ad bond.
    let nics = [nic("eth1", "a0:36:9f:2c:e8:81", true)];
    let e = choose(SPEC.as_bytes(), &nics, None).unwrap_err();
    assert_eq!(e.key, "links[3].bond_mode");
    assert!(e.to_string().contains("'802.1ad' is not supported"), "{e}");
}

#[test]
fn a_vlan_on_an_active_backup_bond_speaks_on_the_member_with_carrier() {
    let json = SPEC.replace("\"802.1ad\"", "\"active-backup\"").replace(
        r#""link": "interface0", "ip_address": "10.184.0.244""#,
        r#""link": "interface2", "ip_address": "10.184.0.244""#,
    );
    let nics = [
        nic("eth0", "a0:36:9f:2c:e8:80", false),
        nic("eth1", "a0:36:9f:2c:e8:81", true),
    ];
    let c = choose(json.as_bytes(), &nics, None).unwrap();
    assert_eq!(
        (c.nic.as_str(), c.vlan, c.network.as_str()),
        ("eth1", Some(101), "publicnet-ipv4")
    );
    assert_eq!(c.standby, ["eth0"], "the other member stands by");
    let Addressing::Static {
        address,
        prefix,
        gateway,
        dns,
    } = c.addressing
    else {
        panic!("not static")
    };
    assert_eq!(
        (address, prefix, gateway),
        (ip("23.253.157.244"), 24, Some(ip("23.253.157.1")))
    );
    assert_eq!(
        dns,
        vec![
            ip("69.20.0.164"),
            ip("69.20.0.196"),
            ip("8.8.8.8"),
            ip("8.8.4.4")
        ]
    );
}

#[test]
fn the_boot_nic_wins_over_the_order_of_networks() {
    let json = SPEC.replace("\"802.1ad\"", "\"active-backup\"");
    let nics = [
        nic("eth0", "a0:36:9f:2c:e8:80", true),
        nic("eth1", "a0:36:9f:2c:e8:81", true),
    ];
    let boot = super::mac("a0:36:9f:2c:e8:81");
    let c = choose(json.as_bytes(), &nics, boot).unwrap();
    assert_eq!((c.nic.as_str(), c.vlan), ("eth1", Some(101)));
    assert_eq!(c.standby, ["eth0"]);
}

/// What Ironic writes for a node (nova-compatible, one port, DHCP).
#[test]
fn ipv4_dhcp_and_a_prefix_on_the_address() {
    let dhcp = r#"{"links": [{"ethernet_mac_address": "fa:16:3e:9c:bf:3d", "id": "tapcd9f6d46-4a",
        "mtu": null, "type": "bridge", "vif_id": "cd9f6d46-4a3a-43ab-a466-994af9db96fc"}],
      "networks": [{"id": "network0", "link": "tapcd9f6d46-4a", "network_id": "99e88329",
        "type": "ipv4_dhcp"}],
      "services": [{"address": "8.8.8.8", "type": "dns"}]}"#;
    let nics = [nic("enp1s0", "fa:16:3e:9c:bf:3d", true)];
    let c = choose(dhcp.as_bytes(), &nics, None).unwrap();
    assert_eq!((c.nic.as_str(), c.addressing), ("enp1s0", Addressing::Dhcp));
    // Metal3's static form: the prefix on ip_address, services per network.
    let metal3 = r#"{"links": [{"id": "enp1s0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
      "networks": [{"id": "provisioning", "type": "ipv4", "link": "enp1s0",
        "ip_address": "192.168.111.20/24",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.111.1",
                    "services": [{"type": "dns", "address": "192.168.111.1"}]}],
        "services": [{"type": "dns", "address": "192.168.111.1"}]}],
      "services": []}"#;
    let nics = [nic("eth0", "52:54:00:12:34:56", true)];
    let c = choose(metal3.as_bytes(), &nics, None).unwrap();
    assert_eq!(
        c.addressing,
        Addressing::Static {
            address: ip("192.168.111.20"),
            prefix: 24,
            gateway: Some(ip("192.168.111.1")),
            dns: vec![ip("192.168.111.1")],
        }
    );
}

#[test]
fn what_cannot_be_applied_is_named() {
    let nics = [nic("eth0", "52:54:00:12:34:56", true)];
    let one = |net: &str| {
        format!(
            r#"{{"links": [{{"id": "l0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}},
                {{"id": "v", "type": "vlan", "vlan_link": "l0", "vlan_id": 5000}},
                {{"id": "w", "type": "wifi", "ethernet_mac_address": "52:54:00:12:34:56"}}],
               "networks": [{net}]}}"#
        )
    };
    let cases = [
        (
            r#"{"type": "ipv4", "link": "l0", "ip_address": "10.0.0.5", "netmask": "255.0.255.0"}"#,
            "networks[0].netmask",
        ),
        (
            r#"{"type": "ipv4", "link": "l0", "ip_address": "10.0.0.5"}"#,
            "networks[0].netmask",
        ),
        (
            r#"{"type": "ipv4", "link": "l0", "ip_address": "fd00::5/64"}"#,
            "networks[0].ip_address",
        ),
        (
            r#"{"type": "ipv4", "link": "l0", "ip_address": "10.0.0.5/33"}"#,
            "networks[0].ip_address",
        ),
        (
            r#"{"type": "ipv4", "link": "nope", "ip_address": "10.0.0.5/8"}"#,
            "networks[0].link",
        ),
        (
            r#"{"type": "ipv4", "link": "v", "ip_address": "10.0.0.5/8"}"#,
            "links[1].vlan_id",
        ),
        (
            r#"{"type": "ipv4", "link": "w", "ip_address": "10.0.0.5/8"}"#,
            "links[2].type",
        ),
        (
            r#"{"type": "ipv4", "link": "l0", "ip_address": "10.0.0.5/8",
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "x"}]}"#,
            "networks[0].routes[0].gateway",
        ),
        (
            r#"{"type": "ipv6", "link": "l0", "ip_address": "10.0.0.5/64"}"#,
            "networks[0].ip_address",
        ),
        (
            r#"{"type": "ipv6", "link": "l0", "ip_address": "fd00::5/129"}"#,
            "networks[0].ip_address",
        ),
        (
            r#"{"type": "ipv6", "link": "l0", "ip_address": "fd00::5", "netmask": "ffff::ff00::"}"#,
            "networks[0].netmask",
        ),
        (
            r#"{"type": "ipv6", "link": "l0", "ip_address": "fd00::5/64",
                "routes": [{"network": "::", "netmask": "::", "gateway": "10.0.0.1"}]}"#,
            "networks[0].routes[0].gateway",
        ),
    ];
    for (net, key) in cases {
        let e = choose(one(net).as_bytes(), &nics, None).unwrap_err();
        assert_eq!(e.key, key, "{net}: {e}");
    }
    let e = choose(
        one(r#"{"type": "infiniband", "link": "l0"}"#).as_bytes(),
        &nics,
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("no IPv4 or IPv6 network (found: infiniband)"),
        "{e}"
    );
    let e = choose(b"{\"links\": [", &nics, None).unwrap_err();
    assert!(e.to_string().contains("not valid JSON"), "{e}");
    // A machine none of whose NICs the file names.
    let other = [nic("eth9", "02:00:00:00:00:09", true)];
    let e = choose(
        one(r#"{"type": "ipv4_dhcp", "link": "l0"}"#).as_bytes(),
        &other,
        None,
    )
    .unwrap_err();
    assert!(e.problem.contains("one of this machine's NICs"), "{e}");
}

/// What Metal3 writes for a static IPv6 provisioning network (its
/// `networkData` secret): the prefix as a netmask, the default route as
/// `::`, DNS of both families (only IPv6's apply).
#[test]
fn a_static_ipv6_network_as_metal3_writes_it() {
    let json = r#"{
      "links": [{"id": "enp1s0", "type": "phy", "ethernet_mac_address": "52:54:00:aa:bb:cc"}],
      "networks": [{"id": "provisioning", "type": "ipv6", "link": "enp1s0",
        "ip_address": "fd00:1101::20", "netmask": "ffff:ffff:ffff:ffff::",
        "routes": [{"network": "::", "netmask": "::", "gateway": "fd00:1101::1"}]}],
      "services": [{"type": "dns", "address": "fd00:1101::1"}, {"type": "dns", "address": "8.8.8.8"}]
    }"#;
    let nics = [nic("enp1s0", "52:54:00:aa:bb:cc", true)];
    let c = choose(json.as_bytes(), &nics, None).unwrap();
    assert_eq!(
        c.addressing,
        Addressing::Static {
            address: ip("fd00:1101::20"),
            prefix: 64,
            gateway: Some(ip("fd00:1101::1")),
            dns: vec![ip("fd00:1101::1")],
        }
    );
    let slaac = json.replace(r#""type": "ipv6""#, r#""type": "ipv6_slaac""#);
    let c = choose(slaac.as_bytes(), &nics, None).unwrap();
    assert_eq!(c.addressing, Addressing::Dhcp);
}

#[test]
fn on_one_nic_the_ipv4_network_is_taken_before_the_ipv6_one() {
    // The spec's example lists IPv4 then IPv6 on interface0; reversed, IPv4
    // still wins.
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let mut reversed = spec.clone();
    let nets = reversed["networks"].as_array_mut().unwrap();
    nets.swap(0, 1);
    let nics = [nic("eth0", "a0:36:9f:2c:e8:80", true)];
    for json in [spec, reversed] {
        let c = choose(json.to_string().as_bytes(), &nics, None).unwrap();
        assert!(
            matches!(c.addressing, Addressing::Static { address, .. } if address == ip("10.184.0.244")),
            "{c:?}"
        );
    }
}

/// A few KB of bonds whose members are bonds, each listing the same member
/// 40 times, five levels deep: 40⁴ lookups before a MAC is reached, and a
/// member list that doubled with every level. Refused within the lookup
/// budget, naming where it was.
#[test]
fn bonds_of_bonds_are_refused_within_a_work_budget() {
    let mut links =
        vec![json!({"id": "p", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"})];
    let mut below = "p".to_string();
    for level in 0..4 {
        let id = format!("b{level}");
        links.push(
            json!({"id": id, "type": "bond", "bond_mode": "active-backup",
                          "bond_links": vec![below.clone(); 40]}),
        );
        below = id;
    }
    let doc = json!({"links": links,
        "networks": [{"id": "n", "type": "ipv4", "link": below, "ip_address": "10.0.2.42/24"}]});
    let err = choose(
        doc.to_string().as_bytes(),
        &[nic("eth0", "52:54:00:12:34:56", true)],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("links reference links more than 4096 times"),
        "{err}"
    );
    // A bond listing a member twice speaks on it once.
    let doc = json!({"links": [
            {"id": "p", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"},
            {"id": "b", "type": "bond", "bond_mode": "active-backup", "bond_links": ["p", "p"]}],
        "networks": [{"id": "n", "type": "ipv4", "link": "b", "ip_address": "10.0.2.42/24"}]});
    let c = choose(
        doc.to_string().as_bytes(),
        &[nic("eth0", "52:54:00:12:34:56", true)],
        None,
    )
    .unwrap();
    assert!(c.standby.is_empty(), "{:?}", c.standby);
}

//! IPv6 router discovery (RFC 4861 §4.1-4.2) in Ethernet frames: router
//! advertisements read whole (flags, every prefix, MTU, RFC 8106 DNS
//! servers — smoltcp keeps one prefix and drops the M/O flags), and the
//! router solicitation rivet sends. Interface identifiers are the MAC's
//! modified EUI-64 (RFC 4291 appendix A), as Linux makes them by default.

use super::checksum;
use alloc::vec::Vec;

const ETHERTYPE_IPV6: u16 = 0x86dd;
const NEXT_HEADER_ICMPV6: u8 = 58;
const ROUTER_SOLICIT: u8 = 133;
const ROUTER_ADVERT: u8 = 134;
const NEIGHBOR_SOLICIT: u8 = 135;
const NEIGHBOR_ADVERT: u8 = 136;
const OPT_TARGET_LINK_ADDR: u8 = 2;
/// NA flag: the link-layer address replaces what caches hold.
const NA_OVERRIDE: u8 = 0x20;
/// Offsets in the Ethernet frame.
const IP: usize = 14;
const ICMP: usize = IP + 40;
/// Option types.
const OPT_SOURCE_LINK_ADDR: u8 = 1;
const OPT_PREFIX: u8 = 3;
const OPT_MTU: u8 = 5;
const OPT_RDNSS: u8 = 25;
/// RA flags (byte 5 of the message) and prefix flags.
const FLAG_MANAGED: u8 = 0x80;
const FLAG_OTHER: u8 = 0x40;
const PREFIX_ON_LINK: u8 = 0x80;
const PREFIX_AUTONOMOUS: u8 = 0x40;

/// ff02::1, all nodes.
pub const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// ff02::2, where solicitations go.
pub const ALL_ROUTERS: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// A prefix information option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub prefix: [u8; 16],
    pub len: u8,
    /// L: addresses in it are on this link.
    pub on_link: bool,
    /// A: hosts may form addresses in it (SLAAC).
    pub autonomous: bool,
    pub valid_s: u32,
    pub preferred_s: u32,
}

/// What a router advertisement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    /// The router's link-local address (the IPv6 source).
    pub router: [u8; 16],
    /// M: addresses come from DHCPv6.
    pub managed: bool,
    /// O: other configuration (DNS) comes from DHCPv6.
    pub other: bool,
    /// Seconds the router is a default router; 0: it is not one.
    pub lifetime_s: u16,
    pub prefixes: Vec<Prefix>,
    pub mtu: Option<u32>,
    /// Recursive DNS servers with a lifetime above zero.
    pub dns: Vec<[u8; 16]>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn addr(b: &[u8], at: usize) -> Option<[u8; 16]> {
    b.get(at..at + 16)?.try_into().ok()
}

/// The link-local address of `mac`: fe80::/64 and its modified EUI-64.
pub fn link_local(mac: [u8; 6]) -> [u8; 16] {
    let mut prefix = [0u8; 16];
    prefix[..2].copy_from_slice(&[0xfe, 0x80]);
    with_interface_id(prefix, mac)
}

/// `prefix` (its first 64 bits) with `mac`'s modified EUI-64 after it.
pub fn with_interface_id(prefix: [u8; 16], mac: [u8; 6]) -> [u8; 16] {
    let mut a = prefix;
    a[8..11].copy_from_slice(&[mac[0] ^ 0x02, mac[1], mac[2]]);
    a[11..13].copy_from_slice(&[0xff, 0xfe]);
    a[13..16].copy_from_slice(&mac[3..6]);
    a
}

/// The Ethernet multicast address of IPv6 group `group` (RFC 2464 §7).
pub fn multicast_mac(group: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// A router advertisement in an (untagged) Ethernet frame, or `None` for
/// any other frame and for one RFC 4861 §6.1.2 says to ignore: not from a
/// link-local address, a hop limit below 255, a wrong checksum or length.
pub fn router_advert(frame: &[u8]) -> Option<RouterAdvert> {
    if be16(frame, 12)? != ETHERTYPE_IPV6
        || frame.get(IP)? >> 4 != 6
        || *frame.get(IP + 6)? != NEXT_HEADER_ICMPV6
        || *frame.get(IP + 7)? != 255
        || *frame.get(ICMP)? != ROUTER_ADVERT
    {
        return None;
    }
    let len = usize::from(be16(frame, IP + 4)?);
    let icmp = frame.get(ICMP..ICMP + len)?;
    let (src, dst) = (addr(frame, IP + 8)?, addr(frame, IP + 24)?);
    if icmp.len() < 16
        || icmp[1] != 0
        || src[0] != 0xfe
        || src[1] & 0xc0 != 0x80
        || checksum::icmpv6(&src, &dst, icmp) != 0
    {
        return None;
    }
    let mut ra = RouterAdvert {
        router: src,
        managed: icmp[5] & FLAG_MANAGED != 0,
        other: icmp[5] & FLAG_OTHER != 0,
        lifetime_s: be16(icmp, 6)?,
        prefixes: Vec::new(),
        mtu: None,
        dns: Vec::new(),
    };
    let mut options = &icmp[16..];
    while options.len() >= 2 {
        let size = usize::from(options[1]) * 8;
        // A zero length would loop forever: the whole message is invalid.
        if size == 0 || size > options.len() {
            return None;
        }
        let (o, rest) = options.split_at(size);
        match o[0] {
            OPT_PREFIX if size == 32 => ra.prefixes.push(Prefix {
                len: o[2].min(128),
                on_link: o[3] & PREFIX_ON_LINK != 0,
                autonomous: o[3] & PREFIX_AUTONOMOUS != 0,
                valid_s: be32(o, 4)?,
                preferred_s: be32(o, 8)?,
                prefix: addr(o, 16)?,
            }),
            OPT_MTU if size == 8 => ra.mtu = be32(o, 4),
            OPT_RDNSS if size >= 24 && be32(o, 4)? > 0 => ra.dns.extend(
                o[8..]
                    .chunks_exact(16)
                    .filter_map(|a| <[u8; 16]>::try_from(a).ok()),
            ),
            _ => {}
        }
        options = rest;
    }
    Some(ra)
}

/// Length of [`router_solicit`]'s frame.
pub const SOLICIT_LEN: usize = ICMP + 16;

/// A router solicitation from `mac`'s link-local address to all routers,
/// with the source link-layer address so the answer needs no neighbour
/// discovery first.
pub fn router_solicit(mac: [u8; 6]) -> [u8; SOLICIT_LEN] {
    let mut f = [0u8; SOLICIT_LEN];
    f[..6].copy_from_slice(&multicast_mac(&ALL_ROUTERS));
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f[IP] = 0x60;
    f[IP + 4..IP + 6].copy_from_slice(&16u16.to_be_bytes());
    f[IP + 6] = NEXT_HEADER_ICMPV6;
    f[IP + 7] = 255;
    let src = link_local(mac);
    f[IP + 8..IP + 24].copy_from_slice(&src);
    f[IP + 24..IP + 40].copy_from_slice(&ALL_ROUTERS);
    f[ICMP] = ROUTER_SOLICIT;
    f[ICMP + 8] = OPT_SOURCE_LINK_ADDR;
    f[ICMP + 9] = 1;
    f[ICMP + 10..ICMP + 16].copy_from_slice(&mac);
    let sum = checksum::icmpv6(&src, &ALL_ROUTERS, &f[ICMP..]);
    f[ICMP + 2..ICMP + 4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The solicited-node multicast group of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: &[u8; 16]) -> [u8; 16] {
    let mut g = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    g[13..].copy_from_slice(&a[13..]);
    g
}

/// Ethernet and IPv6 headers of an ICMPv6 message of `len` bytes.
fn icmp_frame(
    f: &mut [u8],
    mac: [u8; 6],
    dst_mac: [u8; 6],
    src: &[u8; 16],
    dst: &[u8; 16],
    len: u16,
) {
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f[IP] = 0x60;
    f[IP + 4..IP + 6].copy_from_slice(&len.to_be_bytes());
    f[IP + 6] = NEXT_HEADER_ICMPV6;
    f[IP + 7] = 255;
    f[IP + 8..IP + 24].copy_from_slice(src);
    f[IP + 24..IP + 40].copy_from_slice(dst);
}

/// Length of [`dad_probe`]'s frame.
pub const DAD_PROBE_LEN: usize = ICMP + 24;

/// Duplicate address detection's neighbour solicitation for `target`
/// (RFC 4862 §5.4.2): from the unspecified address, to the target's
/// solicited-node group, with no source link-layer option.
pub fn dad_probe(mac: [u8; 6], target: &[u8; 16]) -> [u8; DAD_PROBE_LEN] {
    let mut f = [0u8; DAD_PROBE_LEN];
    let group = solicited_node(target);
    icmp_frame(&mut f, mac, multicast_mac(&group), &[0; 16], &group, 24);
    f[ICMP] = NEIGHBOR_SOLICIT;
    f[ICMP + 8..ICMP + 24].copy_from_slice(target);
    let sum = checksum::icmpv6(&[0; 16], &group, &f[ICMP..]);
    f[ICMP + 2..ICMP + 4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Length of [`unsolicited_advert`]'s frame.
pub const ADVERT_LEN: usize = ICMP + 32;

/// An unsolicited neighbour advertisement of `address` at `mac` to all
/// nodes, Override set (RFC 4861 §7.2.6): after a bond's failover the
/// switches and neighbours learn the port the address moved to.
pub fn unsolicited_advert(mac: [u8; 6], address: &[u8; 16]) -> [u8; ADVERT_LEN] {
    let mut f = [0u8; ADVERT_LEN];
    icmp_frame(
        &mut f,
        mac,
        multicast_mac(&ALL_NODES),
        address,
        &ALL_NODES,
        32,
    );
    f[ICMP] = NEIGHBOR_ADVERT;
    f[ICMP + 4] = NA_OVERRIDE;
    f[ICMP + 8..ICMP + 24].copy_from_slice(address);
    f[ICMP + 24] = OPT_TARGET_LINK_ADDR;
    f[ICMP + 25] = 1;
    f[ICMP + 26..ICMP + 32].copy_from_slice(&mac);
    let sum = checksum::icmpv6(address, &ALL_NODES, &f[ICMP..]);
    f[ICMP + 2..ICMP + 4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// An address a node claims, and the Ethernet source it came from (a
/// bond's own probe can come back on another port: not a claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub target: [u8; 16],
    pub from: [u8; 6],
}

/// The address another node claims in `frame`, for duplicate address
/// detection: the target of a neighbour advertisement, or of a
/// solicitation from the unspecified address (another node's own probe).
/// `None` for anything else and for messages RFC 4861 §7.1 says to drop.
pub fn neighbor_claim(frame: &[u8]) -> Option<Claim> {
    if be16(frame, 12)? != ETHERTYPE_IPV6
        || frame.get(IP)? >> 4 != 6
        || *frame.get(IP + 6)? != NEXT_HEADER_ICMPV6
        || *frame.get(IP + 7)? != 255
    {
        return None;
    }
    let kind = *frame.get(ICMP)?;
    if kind != NEIGHBOR_SOLICIT && kind != NEIGHBOR_ADVERT {
        return None;
    }
    let len = usize::from(be16(frame, IP + 4)?);
    let icmp = frame.get(ICMP..ICMP + len)?;
    let (src, dst) = (addr(frame, IP + 8)?, addr(frame, IP + 24)?);
    if icmp.len() < 24 || icmp[1] != 0 || checksum::icmpv6(&src, &dst, icmp) != 0 {
        return None;
    }
    let target = addr(icmp, 8)?;
    let from = frame.get(6..12)?.try_into().ok()?;
    (kind == NEIGHBOR_ADVERT || src == [0; 16]).then_some(Claim { target, from })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    /// A DAD probe for fd00:1::42 and its unsolicited advertisement, as
    /// laid out by hand and checksummed apart from rivet's code (Python's
    /// one-line sum over the pseudo-header).
    const DAD: [u8; 78] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x42, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x86, 0xdd, //
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // from ::
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x42, // solicited-node
        0x87, 0x00, 0x7d, 0x22, 0, 0, 0, 0, //
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
    ];
    const NA: [u8; 86] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x86, 0xdd, //
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, //
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, //
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0x88, 0x00, 0xd5, 0x5b, 0x20, 0x00, 0x00, 0x00, //
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, //
        0x02, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
    ];
    const TARGET: [u8; 16] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42];

    #[test]
    fn dad_probes_and_advertisements_as_bytes_and_claims_read_back() {
        assert_eq!(dad_probe(MAC, &TARGET), DAD);
        assert_eq!(unsolicited_advert(MAC, &TARGET), NA);
        // Another node's probe and its advertisement both claim the target.
        let claim = Some(Claim {
            target: TARGET,
            from: MAC,
        });
        assert_eq!(neighbor_claim(&DAD), claim);
        assert_eq!(neighbor_claim(&NA), claim);
        // A solicitation from an address is address resolution, not a claim.
        let mut ns = DAD;
        ns[IP + 8..IP + 24].copy_from_slice(&link_local(MAC));
        let sum = checksum::icmpv6(
            &link_local(MAC),
            &solicited_node(&TARGET),
            &[&ns[ICMP..ICMP + 2], &[0, 0], &ns[ICMP + 4..]].concat(),
        );
        ns[ICMP + 2..ICMP + 4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(neighbor_claim(&ns), None);
        // Forwarded (hop limit below 255), a bad checksum, a router's RA.
        let mut hop = NA;
        hop[IP + 7] = 254;
        assert_eq!(neighbor_claim(&hop), None);
        let mut bad = NA;
        bad[ICMP + 3] ^= 1;
        assert_eq!(neighbor_claim(&bad), None);
        assert_eq!(neighbor_claim(&RA), None);
        assert_eq!(neighbor_claim(&NA[..60]), None);
    }

    /// dnsmasq's answer on a Metal3-style network (`enable-ra`, a stateful
    /// `dhcp-range` on fd00:1::/64): from fe80::1 to ff02::1, M and O set,
    /// router lifetime 1800 s, the prefix on-link but not for SLAAC (valid
    /// 3600 s, preferred 1800 s), MTU 1500, RDNSS fd00:1::1 for 600 s;
    /// checksum 0xb843 worked out apart from rivet's code.
    const RA: [u8; 142] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, //
        0x60, 0x00, 0x00, 0x00, 0x00, 0x58, 0x3a, 0xff, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0x86, 0x00, 0xb8, 0x43, 0x40, 0xc0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, //
        0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source link-layer address
        0x03, 0x04, 0x40, 0x80, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x07, 0x08, 0, 0, 0, 0, //
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // prefix
        0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, 0xdc, // MTU
        0x19, 0x03, 0x00, 0x00, 0x00, 0x00, 0x02, 0x58, //
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // RDNSS
    ];

    #[test]
    fn an_advertisement_reads_whole() {
        let ra = router_advert(&RA).unwrap();
        let mut router = [0u8; 16];
        router[..2].copy_from_slice(&[0xfe, 0x80]);
        router[15] = 1;
        let mut prefix = [0u8; 16];
        prefix[..4].copy_from_slice(&[0xfd, 0x00, 0x00, 0x01]);
        let mut dns = prefix;
        dns[15] = 1;
        assert_eq!(
            ra,
            RouterAdvert {
                router,
                managed: true,
                other: true,
                lifetime_s: 1800,
                prefixes: alloc::vec![Prefix {
                    prefix,
                    len: 64,
                    on_link: true,
                    autonomous: false,
                    valid_s: 3600,
                    preferred_s: 1800,
                }],
                mtu: Some(1500),
                dns: alloc::vec![dns],
            }
        );
    }

    #[test]
    fn advertisements_rfc_4861_ignores_are_not_read() {
        let mut bad_sum = RA;
        bad_sum[57] ^= 1;
        let mut hop_limit = RA;
        hop_limit[21] = 64;
        let mut global_source = RA;
        global_source[22..24].copy_from_slice(&[0xfd, 0x00]);
        let mut zero_option = RA;
        zero_option[71] = 0;
        let mut solicit = RA;
        solicit[54] = ROUTER_SOLICIT;
        for (what, frame) in [
            ("checksum", &bad_sum[..]),
            ("hop limit", &hop_limit[..]),
            ("source", &global_source[..]),
            ("zero-length option", &zero_option[..]),
            ("not an advert", &solicit[..]),
            ("cut short", &RA[..100]),
            ("header only", &RA[..20]),
        ] {
            assert_eq!(router_advert(frame), None, "{what}");
        }
    }

    #[test]
    fn the_solicitation_is_laid_out_as_rfc_4861_says() {
        // From 52:54:00:12:34:56 as RFC 4861 §4.1 lays it out; the checksum
        // 0x71b5 worked out apart from rivet's code (a Python RFC 1071 sum).
        let want: [u8; 70] = [
            0x33, 0x33, 0x00, 0x00, 0x00, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x86,
            0xdd, //
            0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0xff, //
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56, //
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
            0x85, 0x00, 0x71, 0xb5, 0, 0, 0, 0, //
            0x01, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        ];
        assert_eq!(router_solicit(MAC), want);
    }

    #[test]
    fn interface_identifiers_are_modified_eui_64() {
        let mut prefix = [0u8; 16];
        prefix[..4].copy_from_slice(&[0xfd, 0x00, 0x00, 0x01]);
        let a = with_interface_id(prefix, MAC);
        assert_eq!(
            a[8..],
            [0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56],
            "the universal/local bit flipped, ff:fe in the middle"
        );
        assert_eq!(multicast_mac(&ALL_ROUTERS), [0x33, 0x33, 0, 0, 0, 2]);
    }
}

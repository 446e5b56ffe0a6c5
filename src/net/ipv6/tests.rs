use super::*;
use crate::wire::ndisc::{Prefix, RouterAdvert};
use alloc::vec;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];

fn v6(text: &str) -> [u8; 16] {
    text.parse::<core::net::Ipv6Addr>().unwrap().octets()
}

fn advert(managed: bool, other: bool, autonomous: bool) -> RouterAdvert {
    RouterAdvert {
        router: v6("fe80::1"),
        managed,
        other,
        lifetime_s: 1800,
        prefixes: vec![Prefix {
            prefix: v6("fd00:1::"),
            len: 64,
            on_link: true,
            autonomous,
            valid_s: 3600,
            preferred_s: 1800,
        }],
        mtu: None,
        dns: vec![v6("fd00:1::1")],
    }
}

fn option(out: &mut Vec<u8>, code: u16, body: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

/// What a server answers `request` (a message rivet sent): same xid and
/// client id, the server's DUID, and an IA_NA holding `address` if given.
fn answer(kind: u8, request: &[u8], address: Option<&str>, t1: u32, dns: &str) -> Vec<u8> {
    let m = Message::parse(request).unwrap();
    let mut out = vec![kind, m.xid[0], m.xid[1], m.xid[2]];
    option(&mut out, 2, &SERVER_DUID);
    option(&mut out, 1, m.client_id.unwrap());
    if let Some(a) = address {
        let mut ia = m.ia_na.map(|i| i.iaid).unwrap_or(0).to_be_bytes().to_vec();
        ia.extend_from_slice(&t1.to_be_bytes());
        ia.extend_from_slice(&(t1 * 8 / 5).to_be_bytes());
        let mut iaaddr = v6(a).to_vec();
        iaaddr.extend_from_slice(&3600u32.to_be_bytes());
        iaaddr.extend_from_slice(&3600u32.to_be_bytes());
        option(&mut ia, 5, &iaaddr);
        option(&mut out, 3, &ia);
    }
    option(&mut out, 23, &v6(dns));
    out
}

fn dhcp_sent(sent: &[Send]) -> Vec<Message<'_>> {
    sent.iter()
        .filter_map(|s| match s {
            Send::Dhcp(m) => Some(Message::parse(m).unwrap()),
            Send::RouterSolicit => None,
        })
        .collect()
}

fn only_dhcp(sent: Vec<Send>) -> Vec<u8> {
    let mut d: Vec<Vec<u8>> = sent
        .into_iter()
        .filter_map(|s| match s {
            Send::Dhcp(m) => Some(m),
            Send::RouterSolicit => None,
        })
        .collect();
    assert_eq!(d.len(), 1, "one DHCPv6 message due");
    d.remove(0)
}

#[test]
fn routers_are_solicited_three_times_then_once_a_minute_until_one_answers() {
    let mut a = Autoconf::new(MAC, 0, 1);
    let mut at = Vec::new();
    for t in (0..=130_000).step_by(500) {
        if a.poll(t).contains(&Send::RouterSolicit) {
            at.push(t);
        }
    }
    assert_eq!(at, [0, 4_000, 8_000, 68_000, 128_000]);
    a.on_advert(&advert(false, false, true), 130_000);
    assert!((130_000..400_000)
        .step_by(1000)
        .all(|t| !a.poll(t).contains(&Send::RouterSolicit)));
}

#[test]
fn slaac_takes_the_eui_64_address_the_router_and_the_rdnss_server() {
    let mut a = Autoconf::new(MAC, 0, 1);
    a.poll(0);
    a.on_advert(&advert(false, false, true), 1_000);
    assert!(a.take_changed());
    assert_eq!(
        a.config(),
        Config {
            addresses: vec![Address {
                address: v6("fd00:1::5054:ff:fe12:3456"),
                prefix_len: 64,
                from_dhcp: false,
            }],
            router: Some(v6("fe80::1")),
            dns: vec![v6("fd00:1::1")],
        }
    );
    assert!(
        dhcp_sent(&a.poll(2_000)).is_empty(),
        "no M or O flag: no DHCPv6"
    );
    // The prefix lives 3600 s, the router 1800 s, unless advertised again.
    a.poll(1_801_000);
    assert_eq!(a.config().router, None);
    assert!(a.take_changed());
    a.poll(3_601_000);
    assert_eq!(a.config().addresses, vec![]);
}

#[test]
fn the_m_flag_leases_an_address_by_dhcpv6_and_renews_it() {
    let mut a = Autoconf::new(MAC, 0, 7);
    a.poll(0);
    a.on_advert(&advert(true, true, false), 500);
    assert!(
        a.config().addresses.is_empty(),
        "no SLAAC without the A flag"
    );
    let solicit = only_dhcp(a.poll(500));
    let m = Message::parse(&solicit).unwrap();
    assert_eq!(m.kind, Kind::Solicit);
    assert_eq!(m.client_id, Some(&dhcpv6::duid(MAC)[..]));
    // Unanswered, it is sent again after 1, 2, 4 s.
    let mut resent = Vec::new();
    for t in (600..8_000).step_by(100) {
        for s in dhcp_sent(&a.poll(t)) {
            assert_eq!((s.kind, s.xid), (Kind::Solicit, m.xid));
            resent.push(t);
        }
    }
    assert_eq!(resent, [1_500, 3_500, 7_500]);
    // An answer to someone else's exchange is not taken.
    let mut foreign = answer(2, &solicit, Some("fd00:1::99"), 1800, "fd00:1::1");
    foreign[1] ^= 0xff;
    a.on_dhcp(&foreign, 7_600);
    a.on_dhcp(
        &answer(2, &solicit, Some("fd00:1::42"), 1800, "fd00:1::1"),
        7_600,
    );
    let request = only_dhcp(a.poll(7_600));
    let r = Message::parse(&request).unwrap();
    assert_eq!(r.kind, Kind::Request);
    assert_eq!(r.server_id, Some(&SERVER_DUID[..]));
    assert_ne!(r.xid, m.xid);
    a.on_dhcp(
        &answer(7, &request, Some("fd00:1::42"), 1800, "fd00:1::53"),
        7_700,
    );
    assert!(a.take_changed());
    let c = a.config();
    assert_eq!(
        c.addresses,
        vec![Address {
            address: v6("fd00:1::42"),
            prefix_len: 64,
            from_dhcp: true
        }],
        "the on-link prefix gives the length"
    );
    assert_eq!(c.dns, vec![v6("fd00:1::53"), v6("fd00:1::1")]);
    assert!(dhcp_sent(&a.poll(600_000)).is_empty(), "quiet until T1");
    // T1 (1800 s): Renew to the server, naming the address.
    let renew = only_dhcp(a.poll(7_700 + 1_800_000));
    let n = Message::parse(&renew).unwrap();
    assert_eq!(n.kind, Kind::Renew);
    assert_eq!(n.server_id, Some(&SERVER_DUID[..]));
    assert!(
        renew.windows(16).any(|w| w == v6("fd00:1::42")),
        "the IA_NA names the address held"
    );
    // No answer until T2 (2880 s): Rebind, to any server.
    let mut last = None;
    for t in (1_808_000..2_900_000).step_by(1000) {
        if let Some(s) = dhcp_sent(&a.poll(t)).pop() {
            last = Some((t, s.kind, s.server_id.is_none()));
        }
    }
    let (t, kind, anyone) = last.unwrap();
    assert!(t >= 7_700 + 2_880_000);
    assert_eq!((kind, anyone), (Kind::Rebind, true));
    // Nobody answers: the address goes when its valid lifetime ends.
    a.poll(7_700 + 3_600_000);
    assert!(a.config().addresses.is_empty());
    assert!(a.take_changed());
}

#[test]
fn o_without_m_asks_dhcpv6_only_for_dns() {
    let mut a = Autoconf::new(MAC, 0, 3);
    a.poll(0);
    let mut ra = advert(false, true, true);
    ra.dns.clear();
    a.on_advert(&ra, 100);
    let ask = only_dhcp(a.poll(100));
    let m = Message::parse(&ask).unwrap();
    assert_eq!((m.kind, m.ia_na), (Kind::InformationRequest, None));
    a.on_dhcp(&answer(7, &ask, None, 0, "fd00:1::53"), 200);
    assert_eq!(a.config().dns, vec![v6("fd00:1::53")]);
    assert!(dhcp_sent(&a.poll(100_000)).is_empty());
}

#[test]
fn a_server_without_addresses_sends_the_client_back_to_soliciting() {
    let mut a = Autoconf::new(MAC, 0, 9);
    a.on_advert(&advert(true, false, false), 0);
    let solicit = only_dhcp(a.poll(0));
    a.on_dhcp(&answer(2, &solicit, Some("fd00:1::42"), 0, "fd00:1::1"), 10);
    let request = only_dhcp(a.poll(10));
    a.on_dhcp(&answer(7, &request, None, 0, "fd00:1::1"), 20);
    let again = only_dhcp(a.poll(20));
    assert_eq!(Message::parse(&again).unwrap().kind, Kind::Solicit);
    assert!(a.config().addresses.is_empty());
}

#[test]
fn t1_of_zero_renews_at_half_the_preferred_lifetime() {
    let mut a = Autoconf::new(MAC, 0, 5);
    a.on_advert(&advert(true, false, false), 0);
    let solicit = only_dhcp(a.poll(0));
    a.on_dhcp(&answer(2, &solicit, Some("fd00:1::42"), 0, "fd00:1::1"), 0);
    let request = only_dhcp(a.poll(0));
    a.on_dhcp(&answer(7, &request, Some("fd00:1::42"), 0, "fd00:1::1"), 0);
    assert!(dhcp_sent(&a.poll(1_799_000)).is_empty());
    assert_eq!(
        dhcp_sent(&a.poll(1_800_000))[0].kind,
        Kind::Renew,
        "preferred 3600 s: renew at 1800 s"
    );
}

#[test]
fn a_server_that_never_replies_to_requests_sends_the_client_back_to_soliciting() {
    let mut a = Autoconf::new(MAC, 0, 11);
    a.on_advert(&advert(true, false, false), 0);
    let solicit = only_dhcp(a.poll(0));
    a.on_dhcp(&answer(2, &solicit, Some("fd00:1::42"), 0, "fd00:1::1"), 10);
    let mut kinds = Vec::new();
    for t in (10..400_000).step_by(250) {
        for m in dhcp_sent(&a.poll(t)) {
            kinds.push(m.kind);
        }
    }
    let requests = kinds.iter().take_while(|k| **k == Kind::Request).count();
    assert_eq!(requests, 11, "the first and ten retransmissions: {kinds:?}");
    assert_eq!(kinds[requests], Kind::Solicit);
}

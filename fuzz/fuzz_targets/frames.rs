//! Frames off the wire before smoltcp sees them: the transport checksum
//! verdict, LLDP TLVs, router advertisements; and DHCPv6 datagrams.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::net::ipv6::Autoconf;
use rivet::wire::{checksum, dhcpv6, lldp, ndisc};

fuzz_target!(|data: &[u8]| {
    guard::bounded(guard::MIB, || {
        let _ = checksum::check_frame(data);
        if let Some(t) = lldp::tlvs(data) {
            assert!(t.iter().map(|(_, v)| v.len() + 2).sum::<usize>() <= data.len());
        }
        let mut auto = Autoconf::new([0x52, 0x54, 0, 0x12, 0x34, 0x56], 0, 1);
        auto.poll(0);
        if let Some(ra) = ndisc::router_advert(data) {
            assert!(ra.prefixes.len() * 32 + ra.dns.len() * 16 <= data.len());
            auto.on_advert(&ra, 0);
        }
        if let Ok(m) = dhcpv6::Message::parse(data) {
            assert!(m.dns.len() * 16 <= data.len());
        }
        if let Some(claim) = ndisc::neighbor_claim(data) {
            // A claim names an address the frame carries.
            assert!(data.windows(16).any(|w| w == claim.target));
            let mut dad = rivet::net::dad::Dad::default();
            dad.track(&[claim.target], 0);
            assert!(dad.on_claim(&claim.target) && !dad.poll(5_000));
        }
        auto.on_dhcp(data, 10);
        auto.poll(20);
        assert!(auto.config().addresses.len() <= 9);
    });
});

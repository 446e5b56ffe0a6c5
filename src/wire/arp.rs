//! The one ARP frame rivet writes itself: an announcement (RFC 5227 §3,
//! a "gratuitous ARP") of its IPv4 address after a bond's failover, so
//! switches and neighbours learn the port the address moved to. smoltcp
//! answers and asks everything else.

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;

/// Length of [`announcement`]'s frame.
pub const ANNOUNCEMENT_LEN: usize = 42;

/// A broadcast ARP request from `mac` whose sender and target addresses
/// are both `ip`, the target hardware address zero.
pub fn announcement(mac: [u8; 6], ip: [u8; 4]) -> [u8; ANNOUNCEMENT_LEN] {
    let mut f = [0u8; ANNOUNCEMENT_LEN];
    f[..6].fill(0xff);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    f[38..42].copy_from_slice(&ip);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_as_rfc_5227_lays_it_out() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08,
            0x06, //
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc0, 0x00, 0x02, 0x0a, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x0a,
        ];
        assert_eq!(announcement(mac, [192, 0, 2, 10]), want);
        // smoltcp reads it as a request from 192.0.2.10 for itself.
        let arp = smoltcp::wire::ArpPacket::new_checked(&want[14..]).unwrap();
        let repr = smoltcp::wire::ArpRepr::parse(&arp).unwrap();
        assert!(matches!(repr, smoltcp::wire::ArpRepr::EthernetIpv4 {
            source_protocol_addr, target_protocol_addr, ..
        } if source_protocol_addr == target_protocol_addr));
    }
}

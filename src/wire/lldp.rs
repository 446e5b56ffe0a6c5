//! LLDP frames (IEEE 802.1AB): ethertype 0x88cc to the nearest-bridge
//! group address, a body of TLVs (7-bit type, 9-bit length). Parsed the
//! way ironic-python-agent's `netutils._parse_tlv` parses them, so the
//! `[type, hex]` lists Ironic's `parse-lldp` hook reads are the same:
//! every TLV up to the end of the frame, End and padding included.

use alloc::vec::Vec;

pub const ETHERTYPE: u16 = 0x88cc;
/// The nearest-bridge group address LLDP agents send to.
pub const NEAREST_BRIDGE: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
/// TLV types Ironic's hook reads (for tests and logs).
pub const CHASSIS_ID: u8 = 1;
pub const PORT_ID: u8 = 2;
pub const SYSTEM_NAME: u8 = 5;

/// The TLVs of an Ethernet frame carrying LLDP (with at most one VLAN
/// tag), or `None` if it is not one.
pub fn tlvs(frame: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    if ethertype == 0x8100 {
        at += 4;
        ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    }
    if ethertype != ETHERTYPE {
        return None;
    }
    let mut body = &frame[at + 2..];
    let mut out = Vec::new();
    while body.len() >= 2 {
        let header = u16::from_be_bytes([body[0], body[1]]);
        let (kind, len) = ((header >> 9) as u8, usize::from(header & 0x1ff));
        let end = (2 + len).min(body.len());
        out.push((kind, body[2..end].to_vec()));
        body = &body[end..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// What a switch port sends: chassis id (MAC), port id ("Ethernet1"),
    /// TTL 120, system name "leaf-1", End, then padding to 60 bytes.
    const FRAME: [u8; 60] = [
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, 0x88, 0xcc, //
        0x02, 0x07, 0x04, 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, // chassis: MAC
        0x04, 0x0a, 0x05, b'E', b't', b'h', b'e', b'r', b'n', b'e', b't',
        b'1', // port: ifname
        0x06, 0x02, 0x00, 0x78, // TTL
        0x0a, 0x06, b'l', b'e', b'a', b'f', b'-', b'1', // system name
        0x00, 0x00, // End
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn tlvs_come_out_as_the_real_agent_lists_them() {
        let t = tlvs(&FRAME).unwrap();
        assert_eq!(
            t[0],
            (CHASSIS_ID, vec![0x04, 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc])
        );
        assert_eq!(t[1], (PORT_ID, b"\x05Ethernet1".to_vec()));
        assert_eq!(t[2], (3, vec![0x00, 0x78]));
        assert_eq!(t[3], (SYSTEM_NAME, b"leaf-1".to_vec()));
        assert_eq!(t[4], (0, vec![]));
        // Padding reads as more empty End TLVs, as in ironic-python-agent.
        assert_eq!(t.len(), 5 + 5);
        assert!(t[5..].iter().all(|x| *x == (0, vec![])));
    }

    #[test]
    fn other_frames_and_short_ones_are_not_lldp_and_lengths_are_clamped() {
        let mut ip = FRAME;
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(tlvs(&ip), None);
        assert_eq!(tlvs(&FRAME[..13]), None);
        // A TLV claiming more than the frame holds takes what is there.
        let t = tlvs(&FRAME[..14 + 4]).unwrap();
        assert_eq!(t, vec![(CHASSIS_ID, vec![0x04, 0x52])]);
        // With a VLAN tag.
        let mut tagged = FRAME[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        tagged.extend_from_slice(&FRAME[12..]);
        assert_eq!(tlvs(&tagged).unwrap()[3], (SYSTEM_NAME, b"leaf-1".to_vec()));
    }
}

//! TCP and UDP checksums of received Ethernet frames (IPv4 and IPv6).
//!
//! rivet's packet socket sees frames before the kernel has checked them, and
//! some it will never check: a segment from a local sender (a conductor on the
//! same hypervisor, a veth peer) arrives with a *partial* checksum that only
//! hardware would have finished. The device trusts the kernel's word for such
//! frames and asks this module about the others, so smoltcp need not verify
//! at all. Parsing only: what to do with the verdict is the device's policy.

/// What the transport checksum of a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A TCP or UDP segment whose checksum is right (or a UDP/IPv4 datagram
    /// that carries none).
    Good,
    /// A TCP or UDP segment whose checksum is wrong.
    Bad,
    /// Not TCP or UDP over IP, a fragment, or too short to tell: the stack's
    /// own checks decide.
    Unchecked,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// IPv6 extension headers walked to reach the transport header.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DEST_OPTS: u8 = 60;
/// Offset of the checksum field in a UDP header.
const UDP_CHECKSUM_AT: usize = 6;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The one's-complement sum of `data` as 16-bit big-endian words (odd
/// length padded with a zero byte), folded to 16 bits (callers may add
/// more before the final fold).
///
/// Every received frame passes through here, so it sums eight bytes per
/// load, four loads per round, in the machine's byte order: a one's-
/// complement sum is the same in either byte order up to a swap of its two
/// bytes (RFC 1071 §2(B)), and 32-bit halves summed into 64 bits cannot
/// overflow for any frame. The byte-wise loop it replaces cost 11% of a
/// plain-HTTP download's CPU (tests/bench/net-stream, perf).
fn sum(data: &[u8]) -> u64 {
    // Inlined into loops over exact chunks, where the length is known and
    // the conversion cannot fail (at opt-level "z" a call per word cost
    // twice the time).
    #[inline(always)]
    fn halves(word: &[u8]) -> u64 {
        let x = u64::from_ne_bytes(word.try_into().unwrap_or_default());
        (x & 0xffff_ffff) + (x >> 32)
    }
    let mut acc = [0u64; 4];
    let mut rounds = data.chunks_exact(32);
    for r in &mut rounds {
        acc[0] += halves(&r[0..8]);
        acc[1] += halves(&r[8..16]);
        acc[2] += halves(&r[16..24]);
        acc[3] += halves(&r[24..32]);
    }
    let mut total = acc[0] + acc[1] + acc[2] + acc[3];
    let mut words = rounds.remainder().chunks_exact(8);
    for w in &mut words {
        total += halves(w);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    total += halves(&last);
    let native = fold(total);
    u64::from(if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    })
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Checks the transport segment `l4` (header and payload, nothing after)
/// against the pseudo-header sum `pseudo`.
fn verify(proto: u8, l4: &[u8], pseudo: u64, zero_means_none: bool) -> Verdict {
    let min = if proto == PROTO_TCP { 20 } else { 8 };
    if l4.len() < min {
        return Verdict::Unchecked;
    }
    if proto == PROTO_UDP && zero_means_none && be16(l4, UDP_CHECKSUM_AT) == Some(0) {
        return Verdict::Good;
    }
    if fold(pseudo + sum(l4)) == 0xffff {
        Verdict::Good
    } else {
        Verdict::Bad
    }
}

/// The verdict on an Ethernet frame (with at most one 802.1Q/802.1ad tag).
pub fn check_frame(frame: &[u8]) -> Verdict {
    let Some(mut ethertype) = be16(frame, 12) else {
        return Verdict::Unchecked;
    };
    let mut at = 14;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        let Some(inner) = be16(frame, 16) else {
            return Verdict::Unchecked;
        };
        ethertype = inner;
        at = 18;
    }
    match ethertype {
        ETHERTYPE_IPV4 => check_ipv4(&frame[at..]),
        ETHERTYPE_IPV6 => check_ipv6(&frame[at..]),
        _ => Verdict::Unchecked,
    }
}

/// The TCP or UDP segment in an IP payload: all of it for TCP, as long as
/// its own length field says for UDP; `None` for other protocols or a UDP
/// length that does not fit.
fn segment(proto: u8, payload: &[u8]) -> Option<&[u8]> {
    match proto {
        PROTO_TCP => Some(payload),
        PROTO_UDP => match be16(payload, 4).map(usize::from) {
            Some(len) if (8..=payload.len()).contains(&len) => Some(&payload[..len]),
            _ => None,
        },
        _ => None,
    }
}

fn check_ipv4(ip: &[u8]) -> Verdict {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return Verdict::Unchecked;
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2).unwrap_or(0));
    // More fragments, or not the first: the transport header is not whole.
    let fragment = be16(ip, 6).unwrap_or(0) & 0x3fff != 0;
    let proto = ip[9];
    if header < 20 || total < header || total > ip.len() || fragment {
        return Verdict::Unchecked;
    }
    let Some(l4) = segment(proto, &ip[header..total]) else {
        return Verdict::Unchecked;
    };
    let pseudo = sum(&ip[12..20]) + u64::from(proto) + l4.len() as u64;
    verify(proto, l4, pseudo, true)
}

fn check_ipv6(ip: &[u8]) -> Verdict {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return Verdict::Unchecked;
    }
    let payload = usize::from(be16(ip, 4).unwrap_or(0));
    // A payload length of 0 means a jumbogram: not on an Ethernet frame.
    if payload == 0 || 40 + payload > ip.len() {
        return Verdict::Unchecked;
    }
    let end = 40 + payload;
    let mut next = ip[6];
    let mut at = 40;
    while matches!(next, IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS) {
        let (Some(&n), Some(&len)) = (ip.get(at), ip.get(at + 1)) else {
            return Verdict::Unchecked;
        };
        next = n;
        at += (usize::from(len) + 1) * 8;
        if at > end {
            return Verdict::Unchecked;
        }
    }
    let Some(l4) = segment(next, &ip[at..end]) else {
        return Verdict::Unchecked;
    };
    let pseudo = sum(&ip[8..40]) + u64::from(next) + l4.len() as u64;
    // UDP over IPv6 must carry a checksum (RFC 8200 8.1): zero is wrong.
    verify(next, l4, pseudo, false)
}

/// The ICMPv6 checksum of `message` sent from `src` to `dst` (RFC 4443
/// 2.3): with the message's checksum field zero, the value to put there;
/// over a received message, 0 when it is right.
pub fn icmpv6(src: &[u8; 16], dst: &[u8; 16], message: &[u8]) -> u16 {
    let pseudo = sum(src) + sum(dst) + 58 + message.len() as u64;
    !fold(pseudo + sum(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A SYN-ACK from 10.77.1.1:8080 to 10.77.1.100:49153 as the kernel's
    /// TCP sends it (MSS, SACK, timestamps, window scale), checksum 0xba39.
    const SYN_ACK_V4: [u8; 74] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, //
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x23, 0xbe, //
        0x0a, 0x4d, 0x01, 0x01, 0x0a, 0x4d, 0x01, 0x64, //
        0x1f, 0x90, 0xc0, 0x01, 0x9a, 0x3c, 0x11, 0x02, 0x00, 0x00, 0x30, 0x3a, //
        0xa0, 0x12, 0xfe, 0x88, 0xba, 0x39, 0x00, 0x00, //
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x8b, 0x1d, 0x32, 0x07, //
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// A DHCP-sized UDP datagram from 10.0.2.2:67 to 10.0.2.15:68 with a
    /// 4-byte payload "rivt", checksum 0xfe60.
    const UDP_V4: [u8; 46] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x00, //
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x62, 0xbc, //
        0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x0f, //
        0x00, 0x43, 0x00, 0x44, 0x00, 0x0c, 0xfe, 0x60, b'r', b'i', b'v', b't',
    ];

    /// A TCP ACK carrying "hi" from [fd00::1]:80 to [fd00::64]:50000 on
    /// VLAN 100, checksum 0x8858.
    const TCP_V6_VLAN: [u8; 80] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, //
        0x81, 0x00, 0x00, 0x64, 0x86, 0xdd, //
        0x60, 0x00, 0x00, 0x00, 0x00, 0x16, 0x06, 0x40, //
        0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64, //
        0x00, 0x50, 0xc3, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, //
        0x50, 0x18, 0x01, 0x00, 0x88, 0x58, 0x00, 0x00, b'h', b'i',
    ];

    fn corrupt(frame: &[u8], at: usize) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[at] ^= 0x01;
        f
    }

    #[test]
    fn right_checksums_are_good() {
        assert_eq!(check_frame(&SYN_ACK_V4), Verdict::Good);
        assert_eq!(check_frame(&UDP_V4), Verdict::Good);
        assert_eq!(check_frame(&TCP_V6_VLAN), Verdict::Good);
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_segment_or_addresses_is_bad() {
        // The checksum field, the payload, and the source address (which only
        // the pseudo-header covers).
        assert_eq!(
            check_frame(&corrupt(&SYN_ACK_V4, 14 + 20 + 16)),
            Verdict::Bad
        );
        assert_eq!(check_frame(&corrupt(&UDP_V4, 45)), Verdict::Bad);
        assert_eq!(check_frame(&corrupt(&TCP_V6_VLAN, 79)), Verdict::Bad);
        assert_eq!(
            check_frame(&corrupt(&TCP_V6_VLAN, 18 + 8 + 15)),
            Verdict::Bad
        );
        assert_eq!(check_frame(&corrupt(&SYN_ACK_V4, 14 + 12)), Verdict::Bad);
    }

    #[test]
    fn a_partial_checksum_as_a_local_sender_leaves_it_is_bad() {
        // CHECKSUM_PARTIAL: the field holds only the folded pseudo-header
        // sum, the rest is hardware's job. Without the kernel's word it is
        // indistinguishable from corruption.
        let mut f = SYN_ACK_V4.to_vec();
        let ip = &f[14..34];
        let pseudo = fold(sum(&ip[12..20]) + 6 + 40);
        f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&pseudo.to_be_bytes());
        assert_eq!(check_frame(&f), Verdict::Bad);
    }

    #[test]
    fn trailing_ethernet_padding_is_not_summed() {
        let mut f = UDP_V4.to_vec();
        f.extend_from_slice(&[0xaa; 14]);
        assert_eq!(check_frame(&f), Verdict::Good);
    }

    #[test]
    fn udp_over_ipv4_without_checksum_is_good_over_ipv6_is_bad() {
        let mut f = UDP_V4.to_vec();
        f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
        assert_eq!(check_frame(&f), Verdict::Good);
        // The same UDP datagram put in the IPv6 frame's place.
        let mut v6 = TCP_V6_VLAN[..18 + 40].to_vec();
        v6[18 + 6] = PROTO_UDP;
        v6[18 + 4..18 + 6].copy_from_slice(&12u16.to_be_bytes());
        v6.extend_from_slice(&[0x00, 0x43, 0x00, 0x44, 0x00, 0x0c, 0x00, 0x00]);
        v6.extend_from_slice(b"rivt");
        assert_eq!(check_frame(&v6), Verdict::Bad);
    }

    #[test]
    fn fragments_other_protocols_and_short_frames_are_unchecked() {
        let mut frag = SYN_ACK_V4.to_vec();
        frag[14 + 6] = 0x20; // more fragments
        assert_eq!(check_frame(&frag), Verdict::Unchecked);
        let mut icmp = SYN_ACK_V4.to_vec();
        icmp[14 + 9] = 1;
        assert_eq!(check_frame(&icmp), Verdict::Unchecked);
        let mut arp = SYN_ACK_V4.to_vec();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(check_frame(&arp), Verdict::Unchecked);
        for n in 0..SYN_ACK_V4.len() {
            assert_eq!(
                check_frame(&SYN_ACK_V4[..n]),
                Verdict::Unchecked,
                "{n} bytes"
            );
        }
        let mut lying = UDP_V4.to_vec();
        lying[14 + 20 + 5] = 0xff; // UDP length past the datagram
        assert_eq!(check_frame(&lying), Verdict::Unchecked);
    }

    #[test]
    fn ipv6_extension_headers_are_walked_within_the_payload() {
        // A hop-by-hop header (8 bytes of PadN) before the TCP segment.
        let mut f = TCP_V6_VLAN[..18 + 40].to_vec();
        f[18 + 6] = IPV6_HOP_BY_HOP;
        f[18 + 4..18 + 6].copy_from_slice(&(22u16 + 8).to_be_bytes());
        f.extend_from_slice(&[PROTO_TCP, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&TCP_V6_VLAN[18 + 40..]);
        assert_eq!(check_frame(&f), Verdict::Good);
        // A header length that runs past the payload.
        f[18 + 40 + 1] = 200;
        assert_eq!(check_frame(&f), Verdict::Unchecked);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(fold(sum(&[0x01])), 0x0100);
        // Against the definition (16-bit big-endian words, odd byte padded)
        // for every length and alignment a frame can have.
        let data: Vec<u8> = (0..1600u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let reference = |d: &[u8]| {
            let mut acc = 0u64;
            for pair in d.chunks(2) {
                acc += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            }
            fold(acc)
        };
        for start in 0..4 {
            for len in (0..1540).step_by(7).chain([1500, 1514, 1536]) {
                let d = &data[start..start + len];
                assert_eq!(fold(sum(d)), reference(d), "start {start} len {len}");
            }
        }
        assert_eq!(fold(sum(&[0xff; 1500])), 0xffff);
        assert_eq!(fold(sum(&[0xff, 0xff, 0x00, 0x01])), 0x0001);
    }
}

//! The boot NIC as a smoltcp device: an AF_PACKET raw socket, so rivet's own
//! TCP/IP runs in process and the kernel holds no address on the NIC. An
//! active-backup bond is several such NICs ("ports"): frames go out on the
//! active one, come in on any, and the next port with carrier takes over
//! when the active one loses its carrier.

use super::sys;
use crate::net::stack::Wait;
use crate::wire::checksum::{check_frame, Verdict};
use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant as StdInstant;

/// Ethernet header plus an 802.1Q tag.
const LINK_HEADER: usize = 18;

/// NIC features that merge received frames.
const RECEIVE_OFFLOADS: [&str; 3] = ["rx-gro", "rx-gro-hw", "rx-lro"];

/// Bytes of the receive ring: twice the TCP window, so a window's worth of
/// frames fits in their 2 KiB slots (measured in a QEMU guest: 0 drops
/// from 2 MiB up with a 1 MiB window; the window is now 512 KiB).
const RING_BYTES: usize = 2 * crate::net::stack::TCP_RX_BUFFER;

/// One NIC's socket and receive path.
struct Port {
    name: String,
    fd: OwnedFd,
    rx: Vec<u8>,
    ring: Option<sys::RxRing>,
}

/// How often a bond's active port has its carrier looked at.
const CARRIER_CHECK_MS: u64 = 200;

pub struct PacketDevice {
    /// The first is the one that starts active.
    ports: Vec<Port>,
    active: usize,
    next_carrier_check: Instant,
    mtu: usize,
    /// The 802.1Q VLAN rivet speaks on (`rivet.vlan=`, `--vlan`): frames go
    /// out tagged and only frames of that VLAN come in; without one, only
    /// untagged frames (a trunk's other VLANs are not rivet's network).
    vlan: Option<u16>,
    /// The active port changed since the stack last asked.
    failed_over: bool,
    pub rx_frames: u64,
    pub rx_errors: u64,
    /// Frames dropped for a wrong TCP/UDP checksum.
    pub rx_bad_checksums: u64,
}

/// Whether a received frame may reach the stack. smoltcp verifies no
/// transport checksum itself (see `capabilities`): the kernel's word is
/// taken where it gives one — a checksum left partial by a local sender (a
/// conductor on the same hypervisor, a veth peer), or one the NIC verified —
/// and every other TCP/UDP checksum is checked here.
fn accept(meta: sys::FrameMeta, frame: &[u8]) -> bool {
    meta.status & (sys::TP_STATUS_CSUMNOTREADY | sys::TP_STATUS_CSUM_VALID) != 0
        || check_frame(frame) != Verdict::Bad
}

fn note_bad_checksum(count: &mut u64) {
    *count += 1;
    if count.is_power_of_two() {
        log::warn!("dropped {count} frame(s) with a wrong TCP/UDP checksum");
    }
}

impl PacketDevice {
    /// Brings `name` up, turns GRO off and opens the raw socket.
    pub fn open(name: &str, vlan: Option<u16>) -> Result<PacketDevice, String> {
        PacketDevice::bond(&[name.to_string()], vlan)
    }

    /// An active-backup bond of `names` (the first starts active; one name:
    /// a plain NIC). Every port of a bond takes frames for any MAC
    /// (promiscuous): the bond speaks with the first port's MAC on
    /// whichever port is active. So does a NIC rivet tags frames for: a
    /// NIC's VLAN filter (virtio-net's in QEMU, most Intel NICs') passes only
    /// the VLANs the kernel has interfaces for, rivet makes none, and
    /// promiscuous mode turns the filter off; where the filter is an ethtool
    /// feature (`rx-vlan-filter`) it is turned off too.
    pub fn bond(names: &[String], vlan: Option<u16>) -> Result<PacketDevice, String> {
        let promiscuous = names.len() > 1 || vlan.is_some();
        let mut ports = Vec::new();
        let mut mtu = usize::MAX;
        for name in names {
            if vlan.is_some() {
                match sys::disable_features(name, &["rx-vlan-filter"]) {
                    Ok(off) if !off.is_empty() => {
                        log::debug!("{name}: turned off {}", off.join(", "))
                    }
                    Ok(_) => {}
                    Err(e) => log::debug!("{name}: rx-vlan-filter left as it is ({e})"),
                }
            }
            let (port, port_mtu) = open_port(name, promiscuous)?;
            ports.push(port);
            mtu = mtu.min(port_mtu);
        }
        if ports.is_empty() {
            return Err("no network interface to open".into());
        }
        for p in &mut ports {
            p.rx = vec![0u8; mtu + LINK_HEADER];
        }
        if let Some(id) = vlan {
            log::info!("{}: VLAN {id}: frames tagged 802.1Q", names.join("+"));
        }
        if promiscuous {
            log::info!(
                "bond of {} (active-backup): speaking on {}",
                names.join(", "),
                names[0]
            );
        }
        Ok(PacketDevice {
            ports,
            active: 0,
            next_carrier_check: Instant::from_millis(0),
            mtu,
            vlan,
            rx_frames: 0,
            rx_errors: 0,
            rx_bad_checksums: 0,
            failed_over: false,
        })
    }

    /// A bond moves to the next port with carrier when the active one has
    /// lost its own.
    fn check_carrier(&mut self, now: Instant) {
        if self.ports.len() < 2 || now < self.next_carrier_check {
            return;
        }
        self.next_carrier_check = now + smoltcp::time::Duration::from_millis(CARRIER_CHECK_MS);
        let carrier = |name: &str| {
            std::fs::read_to_string(format!("/sys/class/net/{name}/carrier"))
                .is_ok_and(|c| c.trim() == "1")
        };
        if carrier(&self.ports[self.active].name) {
            return;
        }
        let n = self.ports.len();
        if let Some(next) = (1..n)
            .map(|k| (self.active + k) % n)
            .find(|&i| carrier(&self.ports[i].name))
        {
            log::warn!(
                "bond: {} lost its carrier; now speaking on {}",
                self.ports[self.active].name,
                self.ports[next].name
            );
            self.active = next;
            self.failed_over = true;
        }
    }

    /// Frames the kernel could not queue for rivet (a full ring: rivet fell
    /// behind the sender) since the last call. TCP recovers them with
    /// retransmissions, at a cost in throughput.
    pub fn kernel_drops(&self) -> u64 {
        self.ports
            .iter()
            .map(|p| sys::packet_drops(p.fd.as_fd()).map_or(0, u64::from))
            .sum()
    }

    /// Duplicates of the sockets, for a waiter that polls them.
    pub fn poll_handles(&self) -> Vec<OwnedFd> {
        self.ports
            .iter()
            .map(|p| p.fd.try_clone().expect("dup of the packet socket"))
            .collect()
    }
}

/// Brings `name` up, turns its receive offloads off, opens its socket;
/// and its MTU.
fn open_port(name: &str, promiscuous: bool) -> Result<(Port, usize), String> {
    match sys::kernel_ipv6_off(name) {
        Ok(true) => log::info!("{name}: the kernel's IPv6 turned off: rivet's stack speaks it"),
        Ok(false) => {}
        Err(e) => log::warn!(
            "{name}: the kernel's IPv6 could not be turned off ({e}): \
             it may reset rivet's IPv6 connections"
        ),
    }
    sys::set_link_up(name).map_err(|e| format!("{name}: bringing the link up: {e}"))?;
    // Every frame must reach the packet socket as it was on the wire,
    // at most one MTU: merged (GRO), hardware-merged (a virtio NIC's
    // guest TSO, LRO) frames would not fit a ring slot, and their
    // checksums are partial.
    match sys::disable_features(name, &RECEIVE_OFFLOADS) {
        Ok(off) => log::debug!("{name}: turned off {}", off.join(", ")),
        Err(e) => log::warn!("{name}: receive offloads not turned off ({e})"),
    }
    let mtu =
        sys::interface_mtu(name).map_err(|e| format!("{name}: reading the MTU: {e}"))? as usize;
    let fd = sys::packet_socket(name, promiscuous)
        .map_err(|e| format!("{name}: opening a packet socket: {e}"))?;
    let ring = match sys::RxRing::new(fd.as_fd(), mtu, RING_BYTES) {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!("{name}: no PACKET_MMAP receive ring ({e}); receiving frame by frame");
            if let Err(e) = sys::want_packet_status(fd.as_fd()) {
                log::warn!("{name}: no PACKET_AUXDATA ({e}): every checksum is verified");
            }
            None
        }
    };
    let port = Port {
        name: name.to_string(),
        fd,
        rx: Vec::new(),
        ring,
    };
    Ok((port, mtu))
}

pub enum Rx<'a> {
    Ring(sys::RingFrame<'a>),
    Copy(&'a [u8]),
}
/// The socket and the VLAN to tag with.
pub struct Tx<'a>(&'a OwnedFd, Option<u16>);

/// An Ethernet frame with an 802.1Q tag for VLAN `id` after the MACs.
fn tagged(frame: &[u8], id: u16) -> Vec<u8> {
    if frame.len() < 14 {
        return frame.to_vec();
    }
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&[0x81, 0x00]);
    out.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self {
            // The frame returns to the kernel when `frame` drops, after f.
            Rx::Ring(frame) => f(&frame),
            Rx::Copy(bytes) => f(bytes),
        }
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if let Some(id) = self.1 {
            frame = tagged(&frame, id);
        }
        if let Err(e) = rustix::net::send(self.0, &frame, rustix::net::SendFlags::DONTWAIT) {
            // Dropped like a lost frame: TCP retransmits.
            log::debug!("packet send failed: {e}");
        }
        r
    }
}

impl crate::net::stack::Link for PacketDevice {
    fn failed_over(&mut self) -> bool {
        core::mem::take(&mut self.failed_over)
    }
}

impl Device for PacketDevice {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        self.check_carrier(now);
        let n = self.ports.len();
        // The active port first; a bond's others may still carry frames
        // the switch sends there.
        let i = (0..n)
            .map(|k| (self.active + k) % n)
            .find(|&i| n == 1 || port_ready(&self.ports[i]))?;
        let (vlan, active) = (self.vlan, self.active);
        let (bad, errors) = (&mut self.rx_bad_checksums, &mut self.rx_errors);
        let (port, out) = if i == active {
            (&mut self.ports[i], None)
        } else {
            let (low, high) = self.ports.split_at_mut(i.max(active));
            if i < active {
                (&mut low[i], Some(&high[0].fd))
            } else {
                (&mut high[0], Some(&low[active].fd))
            }
        };
        let Port { fd, ring, rx, .. } = port;
        let fd: &OwnedFd = fd;
        let frame = receive_on(ring, rx, fd, vlan, bad, errors)?;
        self.rx_frames += 1;
        Some((frame, Tx(out.unwrap_or(fd), vlan)))
    }

    fn transmit(&mut self, now: Instant) -> Option<Tx<'_>> {
        self.check_carrier(now);
        Some(Tx(&self.ports[self.active].fd, self.vlan))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        // Received TCP/UDP checksums are judged in `receive` (with the
        // kernel's word per frame, which smoltcp cannot take); sent ones are
        // still smoltcp's to compute.
        caps.checksum.tcp = Checksum::Tx;
        caps.checksum.udp = Checksum::Tx;
        caps
    }
}

/// Whether a frame may be waiting on `port` (without taking it).
fn port_ready(port: &Port) -> bool {
    match &port.ring {
        Some(ring) => ring.has_frame(),
        None => {
            let mut fds = [rustix::event::PollFd::new(
                &port.fd,
                rustix::event::PollFlags::IN,
            )];
            rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default()))
                .is_ok_and(|n| n > 0)
        }
    }
}

/// One frame from a port (its ring, else its socket into `buf`) that is
/// on `vlan` and passes the checksum rules.
fn receive_on<'a>(
    ring: &'a mut Option<sys::RxRing>,
    buf: &'a mut [u8],
    fd: &OwnedFd,
    vlan: Option<u16>,
    bad: &mut u64,
    errors: &mut u64,
) -> Option<Rx<'a>> {
    if let Some(ring) = ring.as_mut() {
        let frame = ring.next_frame_where(|meta, frame| {
            if meta.vlan != vlan {
                return false;
            }
            let ok = accept(meta, frame);
            if !ok {
                note_bad_checksum(bad);
            }
            ok
        })?;
        return Some(Rx::Ring(frame));
    }
    loop {
        match sys::recv_with_status(fd.as_fd(), buf) {
            Ok(Some((n, meta))) if n > 0 => {
                let n = n.min(buf.len());
                if meta.vlan != vlan {
                    continue;
                }
                if !accept(meta, &buf[..n]) {
                    note_bad_checksum(bad);
                    continue;
                }
                return Some(Rx::Copy(&buf[..n]));
            }
            Ok(_) => return None,
            Err(e) => {
                // ENETDOWN and friends: never panic, just report no frame.
                *errors += 1;
                if errors.is_power_of_two() {
                    log::warn!("packet receive failed: {e}");
                }
                return None;
            }
        }
    }
}

/// Waits with poll(2) on the packet sockets; time from the monotonic clock.
pub struct PollWait {
    fds: Vec<OwnedFd>,
    start: StdInstant,
}

impl PollWait {
    pub fn new(device: &PacketDevice) -> PollWait {
        PollWait {
            fds: device.poll_handles(),
            start: StdInstant::now(),
        }
    }
}

impl Wait for PollWait {
    fn now_ms(&mut self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn wait(&mut self, ms: u64) {
        let mut fds: Vec<_> = self
            .fds
            .iter()
            .map(|fd| rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN))
            .collect();
        let timeout = rustix::time::Timespec {
            tv_sec: (ms / 1000) as i64,
            tv_nsec: ((ms % 1000) * 1_000_000) as i64,
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
    }
}

/// The MAC address of `name`, from sysfs.
pub fn mac_of(name: &str) -> Result<[u8; 6], String> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .map_err(|e| format!("{name}: no such network interface ({e})"))?;
    crate::cmdline::Mac::parse(text.trim())
        .map(|m| m.0)
        .ok_or_else(|| format!("{name}: unreadable MAC '{}'", text.trim()))
}

/// rivet's network stack on a Linux NIC, with TLS for https URLs.
pub type LinuxStack =
    crate::net::record::TlsTransport<crate::net::stack::Stack<PacketDevice, PollWait>>;

/// Opens `name` (with `standby` NICs: an active-backup bond speaking with
/// `name`'s MAC) and starts the stack (DHCP runs as the stack is polled);
/// https servers are checked as `verify` says.
pub fn open_stack(
    name: &str,
    standby: &[String],
    vlan: Option<u16>,
    addressing: crate::net::stack::Addressing,
    verify: super::tls::Verify,
) -> Result<LinuxStack, String> {
    let mac = mac_of(name)?;
    let mut ports = vec![name.to_string()];
    ports.extend(standby.iter().cloned());
    let device = PacketDevice::bond(&ports, vlan)?;
    let waiter = PollWait::new(&device);
    let mut seed = [0u8; 8];
    sys::random(&mut seed);
    let stack =
        crate::net::stack::Stack::new(device, waiter, mac, addressing, u64::from_le_bytes(seed));
    Ok(crate::net::record::TlsTransport::new(
        stack,
        Some(super::tls::connector(verify)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.2.2:67 → 10.0.2.15:68, "rivt", with its UDP checksum 0xfe60
    /// replaced by what a local sender leaves (not the sum).
    fn udp_frame(checksum: [u8; 2]) -> Vec<u8> {
        let mut f = vec![
            0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 10, 0, 2, 2, 0x08, 0x00,
        ];
        f.extend_from_slice(&[0x45, 0, 0, 0x20, 0, 1, 0, 0, 0x40, 0x11, 0x62, 0xbc]);
        f.extend_from_slice(&[10, 0, 2, 2, 10, 0, 2, 15, 0, 0x43, 0, 0x44, 0, 0x0c]);
        f.extend_from_slice(&checksum);
        f.extend_from_slice(b"rivt");
        f
    }

    #[test]
    fn the_kernels_word_is_taken_and_other_frames_are_checked() {
        let good = udp_frame([0xfe, 0x60]);
        let partial = udp_frame([0x1e, 0x23]);
        let meta = |status| sys::FrameMeta::new(status, 0);
        assert!(accept(meta(0), &good));
        assert!(
            !accept(meta(0), &partial),
            "unvouched wrong checksum dropped"
        );
        assert!(accept(meta(sys::TP_STATUS_CSUMNOTREADY | 1), &partial));
        assert!(accept(meta(sys::TP_STATUS_CSUM_VALID | 1), &partial));
        // Other bits of tp_status (USER, LOSING, COPY) vouch for nothing.
        assert!(!accept(meta(1 | 1 << 2 | 1 << 1), &partial));
    }

    #[test]
    fn the_kernels_vlan_tag_is_read_and_frames_go_out_tagged() {
        // TP_STATUS_VLAN_VALID with TCI 0x2064: priority 1, VLAN 100.
        assert_eq!(sys::FrameMeta::new(1 | 1 << 4, 0x2064).vlan, Some(100));
        assert_eq!(
            sys::FrameMeta::new(1, 0x2064).vlan,
            None,
            "no tag without the flag"
        );
        assert_eq!(
            sys::FrameMeta::new(1 | 1 << 4, 0x2000).vlan,
            None,
            "priority tag only"
        );
        let frame = udp_frame([0xfe, 0x60]);
        let t = tagged(&frame, 100);
        assert_eq!(&t[..12], &frame[..12]);
        assert_eq!(&t[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&t[16..], &frame[12..]);
    }
}

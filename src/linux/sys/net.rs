//! Network links (up, MTU, ethtool features) and the AF_PACKET socket
//! with its PACKET_MMAP receive ring.

use rustix::fd::AsFd;
use std::io;

/// `struct ifreq` for the flags ioctls: name then `short ifr_flags`, in a
/// 40-byte union on 64-bit Linux.
#[repr(C)]
struct IfReqFlags {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

const SIOCGIFFLAGS: rustix::ioctl::Opcode = 0x8913;
const SIOCSIFFLAGS: rustix::ioctl::Opcode = 0x8914;
const IFF_UP: i16 = 0x1;

/// Brings a network interface's link up (what `ip link set NAME up` does).
/// Turns the kernel's IPv6 off on `name`. rivet's stack answers for the
/// NIC's MAC; the kernel would otherwise give itself the same EUI-64
/// addresses (link-local, SLAAC) and reset every TCP connection rivet
/// opens from them. `Ok(true)` when this call turned it off.
pub fn kernel_ipv6_off(name: &str) -> io::Result<bool> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name",
        ));
    }
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() == "1" => Ok(false),
        Ok(_) => std::fs::write(&path, "1").map(|_| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn set_link_up(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() >= 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name length",
        ));
    }
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    let mut req = IfReqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: both ioctls take a `struct ifreq *`; IfReqFlags has its layout
    // and lives across the calls.
    unsafe {
        rustix::ioctl::ioctl(
            &socket,
            rustix::ioctl::Updater::<SIOCGIFFLAGS, _>::new(&mut req),
        )?;
        req.flags |= IFF_UP;
        rustix::ioctl::ioctl(
            &socket,
            rustix::ioctl::Updater::<SIOCSIFFLAGS, _>::new(&mut req),
        )?;
    }
    Ok(())
}

/// `struct sockaddr_ll` (packet(7)).
#[repr(C)]
struct SockaddrLl {
    family: u16,
    protocol: u16,
    ifindex: i32,
    hatype: u16,
    pkttype: u8,
    halen: u8,
    addr: [u8; 8],
}

// SAFETY: with_sockaddr passes a pointer to a live, fully initialised
// sockaddr_ll and its exact size, as the trait requires.
unsafe impl rustix::net::addr::SocketAddrArg for SockaddrLl {
    unsafe fn with_sockaddr<R>(
        &self,
        f: impl FnOnce(
            *const rustix::net::addr::SocketAddrOpaque,
            rustix::net::addr::SocketAddrLen,
        ) -> R,
    ) -> R {
        f(
            (self as *const SockaddrLl).cast(),
            std::mem::size_of::<SockaddrLl>() as u32,
        )
    }
}

const ETH_P_ALL: u16 = 0x0003;
const AF_PACKET: u16 = 17;

/// A non-blocking AF_PACKET raw socket bound to interface `name`, with a
/// receive buffer large enough for a 1 MiB TCP window (FACTS: the default
/// 208 KiB overflows and drops).
/// `promiscuous`: frames for every MAC too (a bond's ports, which speak
/// with one port's MAC on another).
pub fn packet_socket(name: &str, promiscuous: bool) -> io::Result<std::os::fd::OwnedFd> {
    let (fd, ifindex) = bound_packet_socket(name, ETH_P_ALL)?;
    // IPv6 lives on multicast (router advertisements, neighbour
    // solicitations to solicited-node groups, DHCPv6): with the kernel's
    // IPv6 off nobody joins those groups, and a NIC's filter (virtio-net's
    // too) would drop them. All multicast passes while the socket lives.
    if let Err(e) = membership(fd.as_fd(), ifindex, PACKET_MR_ALLMULTI, [0; 6]) {
        log::warn!("{name}: no all-multicast reception ({e}): IPv6 may not configure");
    }
    if promiscuous {
        membership(fd.as_fd(), ifindex, PACKET_MR_PROMISC, [0; 6])?;
    }
    // ETH_P_ALL also loops every frame rivet sends back to it: a clone and
    // a ring slot per ACK, for smoltcp to throw away. Linux 4.20 and later
    // can leave them out; older kernels still work, a little slower.
    if let Err(e) = setsockopt(fd.as_fd(), PACKET_IGNORE_OUTGOING, &1 as &libc::c_int) {
        log::debug!("{name}: PACKET_IGNORE_OUTGOING not taken ({e})");
    }
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, 8 << 20).is_err() {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 8 << 20);
    }
    Ok(fd)
}

/// A non-blocking AF_PACKET socket on `name` for one ethertype, and the
/// interface's index.
fn bound_packet_socket(name: &str, ethertype: u16) -> io::Result<(std::os::fd::OwnedFd, u32)> {
    use rustix::net::{AddressFamily, Protocol, SocketFlags, SocketType};
    let protocol = std::num::NonZeroU32::new(u32::from(ethertype.to_be()))
        .map(Protocol::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "ethertype 0"))?;
    let fd = rustix::net::socket_with(
        AddressFamily::PACKET,
        SocketType::RAW,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(protocol),
    )?;
    let ifindex = rustix::net::netdevice::name_to_index(&fd, name)?;
    let addr = SockaddrLl {
        family: AF_PACKET,
        protocol: ethertype.to_be(),
        ifindex: ifindex as i32,
        hatype: 0,
        pkttype: 0,
        halen: 0,
        addr: [0; 8],
    };
    rustix::net::bind(&fd, &addr)?;
    Ok((fd, ifindex))
}

#[repr(C)]
struct PacketMreq {
    ifindex: i32,
    kind: u16,
    alen: u16,
    address: [u8; 8],
}

const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_MULTICAST: u16 = 0;
const PACKET_MR_PROMISC: u16 = 1;
const PACKET_MR_ALLMULTI: u16 = 2;

fn membership(
    fd: std::os::fd::BorrowedFd<'_>,
    ifindex: u32,
    kind: u16,
    group: [u8; 6],
) -> io::Result<()> {
    let mut address = [0u8; 8];
    address[..6].copy_from_slice(&group);
    let mreq = PacketMreq {
        ifindex: ifindex as i32,
        kind,
        alen: 6,
        address,
    };
    setsockopt(fd, PACKET_ADD_MEMBERSHIP, &mreq)
}

/// A socket receiving `ethertype` frames sent to the multicast `group` on
/// `name` (the membership lets the NIC's filter pass them; it goes with the
/// socket).
pub fn multicast_packet_socket(
    name: &str,
    ethertype: u16,
    group: [u8; 6],
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    let (fd, ifindex) = bound_packet_socket(name, ethertype)?;
    membership(fd.as_fd(), ifindex, PACKET_MR_MULTICAST, group)?;
    Ok(fd)
}

#[repr(C)]
struct IfReqInt {
    name: [u8; 16],
    value: i32,
    _pad: [u8; 20],
}

#[repr(C)]
struct IfReqPtr {
    name: [u8; 16],
    data: *mut std::ffi::c_void,
    _pad: [u8; 16],
}

const SIOCGIFMTU: rustix::ioctl::Opcode = 0x8921;
const SIOCETHTOOL: rustix::ioctl::Opcode = 0x8946;

fn ifname(name: &str) -> io::Result<[u8; 16]> {
    if name.is_empty() || name.len() >= 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name length",
        ));
    }
    let mut n = [0u8; 16];
    n[..name.len()].copy_from_slice(name.as_bytes());
    Ok(n)
}

/// The interface's IP MTU.
pub fn interface_mtu(name: &str) -> io::Result<u32> {
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    let mut req = IfReqInt {
        name: ifname(name)?,
        value: 0,
        _pad: [0; 20],
    };
    // SAFETY: SIOCGIFMTU fills ifr_mtu of the ifreq we own.
    unsafe {
        rustix::ioctl::ioctl(
            &socket,
            rustix::ioctl::Updater::<SIOCGIFMTU, _>::new(&mut req),
        )?
    };
    Ok(req.value as u32)
}

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

fn ethtool(name: &str, data: *mut std::ffi::c_void) -> io::Result<()> {
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    let mut req = IfReqPtr {
        name: ifname(name)?,
        data,
        _pad: [0; 16],
    };
    // SAFETY: SIOCETHTOOL reads and writes the command buffer `data` points
    // to; the callers size it for their command and keep it alive.
    unsafe {
        rustix::ioctl::ioctl(
            &socket,
            rustix::ioctl::Updater::<SIOCETHTOOL, _>::new(&mut req),
        )?
    };
    Ok(())
}

/// The NIC's feature names ("rx-gro-hw", …) in bit order. Bit numbers are
/// kernel-internal, so they are looked up by name as ethtool(8) does.
fn feature_names(name: &str) -> io::Result<Vec<String>> {
    // ethtool_sset_info: cmd, reserved, sset_mask (u64), data[1].
    let mut info = [0u32; 6];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_FEATURES;
    ethtool(name, info.as_mut_ptr().cast())?;
    let count = info[4] as usize;
    if count == 0 || count > 4096 {
        return Err(io::Error::other(format!("{count} feature names")));
    }
    // ethtool_gstrings: cmd, string_set, len, then len × 32 bytes.
    let mut buf = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    buf[0] = ETHTOOL_GSTRINGS;
    buf[1] = ETH_SS_FEATURES;
    buf[2] = count as u32;
    ethtool(name, buf.as_mut_ptr().cast())?;
    let bytes: Vec<u8> = buf[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(bytes
        .chunks(ETH_GSTRING_LEN)
        .map(|c| {
            let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            String::from_utf8_lossy(&c[..end]).into_owned()
        })
        .collect())
}

/// Asks the NIC to turn off the features named `off`; returns the names it
/// has (the kernel quietly keeps what a driver cannot change).
pub fn disable_features<'a>(name: &str, off: &[&'a str]) -> io::Result<Vec<&'a str>> {
    let names = feature_names(name)?;
    let blocks = names.len().div_ceil(32);
    // ethtool_sfeatures: cmd, size, then {valid, requested} per 32 bits.
    let mut buf = vec![0u32; 2 + 2 * blocks];
    buf[0] = ETHTOOL_SFEATURES;
    buf[1] = blocks as u32;
    let mut found = Vec::new();
    for (bit, n) in names.iter().enumerate() {
        if let Some(&want) = off.iter().find(|&&o| o == n) {
            buf[2 + 2 * (bit / 32)] |= 1 << (bit % 32);
            found.push(want);
        }
    }
    if found.is_empty() {
        return Ok(found);
    }
    ethtool(name, buf.as_mut_ptr().cast())?;
    Ok(found)
}

const SOL_PACKET: libc::c_int = 263;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_KERNEL: u32 = 0;
/// The frame's transport checksum is partial: it was sent by this machine
/// (a veth peer, a tap's local sender) and hardware that never saw it was
/// to finish it. The kernel vouches for the data.
pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
/// tp_vlan_tci holds the 802.1Q tag the kernel took off the frame.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;

/// What the kernel says of a received frame besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    pub status: u32,
    /// The VLAN id the frame was tagged with (the kernel untags frames
    /// before a packet socket sees them and reports the tag here).
    pub vlan: Option<u16>,
}

impl FrameMeta {
    pub fn new(status: u32, tci: u16) -> FrameMeta {
        FrameMeta {
            status,
            // VLAN 0 is a priority tag on an untagged frame (802.1p).
            vlan: Some(tci & 0x0fff).filter(|&id| status & TP_STATUS_VLAN_VALID != 0 && id != 0),
        }
    }
}

/// The NIC (or the host behind virtio) verified the transport checksum.
pub const TP_STATUS_CSUM_VALID: u32 = 1 << 7;

#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// A PACKET_MMAP (TPACKET_V2) receive ring: the kernel writes frames into
/// memory shared with rivet, so receiving costs no syscall per frame (FACTS:
/// half the system CPU of recv() per frame, and 1.5x the throughput).
pub struct RxRing {
    base: *mut u8,
    size: usize,
    frame_size: usize,
    frames: usize,
    next: usize,
    /// Frames too large for a ring slot, dropped.
    cut: u64,
}

// SAFETY: the mapping belongs to the ring alone; frames are handed out one
// at a time through &mut self.
unsafe impl Send for RxRing {}

fn setsockopt<T>(fd: std::os::fd::BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: value points to a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl RxRing {
    /// Sets up a ring of about `bytes` on a bound AF_PACKET socket.
    pub fn new(fd: std::os::fd::BorrowedFd<'_>, mtu: usize, bytes: usize) -> io::Result<RxRing> {
        use std::os::fd::AsRawFd;
        setsockopt(fd, PACKET_VERSION, &TPACKET_V2)?;
        // Header (32) + sockaddr_ll (20), aligned, plus the frame and a VLAN tag.
        let frame_size = (96 + mtu + 18).next_power_of_two().max(2048);
        let block_size = frame_size.max(1 << 16);
        let block_nr = (bytes / block_size).max(1);
        let req = TpacketReq {
            block_size: block_size as u32,
            block_nr: block_nr as u32,
            frame_size: frame_size as u32,
            frame_nr: (block_size / frame_size * block_nr) as u32,
        };
        setsockopt(fd, PACKET_RX_RING, &req)?;
        let size = block_size * block_nr;
        // SAFETY: maps the ring the kernel just allocated for this socket.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            base: base.cast(),
            size,
            frame_size,
            frames: req.frame_nr as usize,
            next: 0,
            cut: 0,
        })
    }

    fn status(&self, index: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: tp_status is the first, 4-aligned u32 of each frame, inside
        // the mapping; the kernel and rivet hand it back and forth atomically.
        unsafe { &*(self.base.add(index * self.frame_size) as *const std::sync::atomic::AtomicU32) }
    }

    /// The frame at `index`: its status word and its bytes.
    ///
    /// # Safety
    /// The frame must be rivet's (status USER) until it is handed back.
    unsafe fn frame(&self, index: usize, status: u32) -> (FrameMeta, &[u8]) {
        // SAFETY: tpacket2_hdr: tp_snaplen at 8 (u32), tp_mac at 12 (u16),
        // tp_vlan_tci at 24 (u16), inside the frame the caller owns.
        unsafe {
            let frame = self.base.add(index * self.frame_size);
            let snaplen = (frame.add(8) as *const u32).read_volatile() as usize;
            let mac = (frame.add(12) as *const u16).read_volatile() as usize;
            let tci = (frame.add(24) as *const u16).read_volatile();
            let len = snaplen.min(self.frame_size.saturating_sub(mac));
            (
                FrameMeta::new(status, tci),
                std::slice::from_raw_parts(frame.add(mac), len),
            )
        }
    }

    /// The frame's length on the wire when the ring had to cut it.
    ///
    /// # Safety
    /// As for [`RxRing::frame`].
    unsafe fn cut_length(&self, index: usize) -> Option<usize> {
        // SAFETY: tp_len at 4 and tp_snaplen at 8, inside the owned frame.
        let (len, snaplen) = unsafe {
            let frame = self.base.add(index * self.frame_size);
            (
                (frame.add(4) as *const u32).read_volatile(),
                (frame.add(8) as *const u32).read_volatile(),
            )
        };
        (len > snaplen).then_some(len as usize)
    }

    /// Whether the kernel has filled the next frame.
    pub fn has_frame(&self) -> bool {
        let status = self.status(self.next);
        status.load(std::sync::atomic::Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// The next frame the kernel has filled that `keep` accepts (given the
    /// frame's tp_status and bytes); frames it refuses go straight back to
    /// the kernel. The returned [`RingFrame`] goes back when dropped.
    pub fn next_frame_where(
        &mut self,
        mut keep: impl FnMut(FrameMeta, &[u8]) -> bool,
    ) -> Option<RingFrame<'_>> {
        use std::sync::atomic::Ordering;
        loop {
            let index = self.next;
            let status = self.status(index).load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                return None;
            }
            self.next = (self.next + 1) % self.frames;
            // SAFETY: the status says USER: the frame is ours until reset.
            if let Some(len) = unsafe { self.cut_length(index) } {
                // A frame past the MTU: the sender's segmentation offload
                // (TSO/GSO, or a NIC's LRO) reached us unsegmented. Cut, it
                // is useless; say why once in a while.
                self.cut += 1;
                if self.cut.is_power_of_two() {
                    log::warn!(
                        "{} frame(s) larger than the ring's {} bytes (last {len}): \
                         unsegmented TSO/GSO/LRO frames; turn segmentation offload off on the sender",
                        self.cut,
                        self.frame_size
                    );
                }
                self.status(index)
                    .store(TP_STATUS_KERNEL, Ordering::Release);
                continue;
            }
            // SAFETY: as above.
            let (meta, data) = unsafe { self.frame(index, status) };
            if keep(meta, data) {
                // SAFETY: as above; the RingFrame hands it back on drop.
                let (_, data) = unsafe { self.frame(index, status) };
                return Some(RingFrame {
                    ring: self,
                    index,
                    data,
                });
            }
            self.status(index)
                .store(TP_STATUS_KERNEL, Ordering::Release);
        }
    }
}

/// Frames the kernel dropped for want of room (a full ring or socket
/// buffer) since the last call; reading resets the kernel's count.
pub fn packet_drops(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    // struct tpacket_stats { tp_packets, tp_drops }
    let mut stats = [0u32; 2];
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: stats is writable for len bytes; the kernel writes at most len.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(stats[1])
    } else {
        Err(io::Error::last_os_error())
    }
}

#[repr(C)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// Asks for each frame's tp_status alongside recv()'s bytes (the fallback
/// when there is no receive ring), as [`recv_with_status`] reads it.
pub fn want_packet_status(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    setsockopt(fd, PACKET_AUXDATA, &1 as &libc::c_int)
}

/// One frame into `buf` without blocking: its length and tp_status (0 when
/// the kernel sent no PACKET_AUXDATA). `Ok(None)` when nothing is waiting.
pub fn recv_with_status(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, FrameMeta)>> {
    use std::os::fd::AsRawFd;
    // u64 alignment for the cmsghdr that the kernel writes here.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid "no name" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // The field is usize on glibc and u32 on musl.
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: iov and control point into live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    let mut meta = FrameMeta::new(0, 0);
    // SAFETY: walks the control messages the kernel wrote into `control`,
    // with libc's own bounds-checked cursor macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                let aux = (libc::CMSG_DATA(cmsg) as *const TpacketAuxdata).read_unaligned();
                meta = FrameMeta::new(aux.tp_status, aux.tp_vlan_tci);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Some((n as usize, meta)))
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in new().
        unsafe { libc::munmap(self.base.cast(), self.size) };
    }
}

/// One received frame, borrowed from the ring.
pub struct RingFrame<'a> {
    ring: &'a RxRing,
    index: usize,
    data: &'a [u8],
}

impl std::ops::Deref for RingFrame<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl Drop for RingFrame<'_> {
    fn drop(&mut self) {
        self.ring
            .status(self.index)
            .store(TP_STATUS_KERNEL, std::sync::atomic::Ordering::Release);
    }
}

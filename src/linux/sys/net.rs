//! Network links (up, MTU, ethtool features, the kernel's IPv6 on them) and
//! the AF_PACKET socket with its memberships; receiving is in
//! [`super::packet_rx`].

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

/// Brings a network interface's link up (what `ip link set NAME up` does).
pub fn set_link_up(name: &str) -> io::Result<()> {
    set_link(name, true)
}

/// Brings a network interface's link up or down (`ip link set NAME up|down`).
pub fn set_link(name: &str, up: bool) -> io::Result<()> {
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
        if up {
            req.flags |= IFF_UP;
        } else {
            req.flags &= !IFF_UP;
        }
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
/// receive buffer large enough for a 1 MiB TCP window (measured: the default
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

pub(super) const SOL_PACKET: libc::c_int = 263;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

pub(super) fn setsockopt<T>(
    fd: std::os::fd::BorrowedFd<'_>,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
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

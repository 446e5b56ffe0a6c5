//! The one place for syscalls that need `unsafe` or raw ioctls. Everything
//! else in rivet calls these safe functions.

use rustix::fd::AsFd;
use rustix::io::Errno;
use std::ffi::CString;
use std::io;
use std::path::Path;

pub use rustix::system::RebootCommand;

/// Seconds since boot (CLOCK_BOOTTIME), the clock the kernel's log uses.
pub fn boot_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

pub fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    use rustix::mount::MountFlags;
    rustix::mount::mount(source, target, fstype, MountFlags::NOSUID, None).map_err(io::Error::from)
}

/// Loads a kernel module from a file. `EEXIST` (already loaded) is success.
pub fn load_module(path: &Path) -> Result<(), Errno> {
    let file =
        std::fs::File::open(path).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    match rustix::system::finit_module(file.as_fd(), c"", 0) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Clears the immutable attribute efivarfs puts on variables it does not
/// know to be safe to change (chattr -i), so they can be written or removed.
pub fn clear_immutable(path: &Path) -> io::Result<()> {
    use rustix::fs::IFlags;
    let file = std::fs::File::open(path)?;
    let flags = rustix::fs::ioctl_getflags(file.as_fd())?;
    if flags.contains(IFlags::IMMUTABLE) {
        rustix::fs::ioctl_setflags(file.as_fd(), flags - IFlags::IMMUTABLE)?;
    }
    Ok(())
}

/// Flushes all filesystems and block devices to stable storage.
pub fn sync() {
    rustix::fs::sync();
}

/// Power off, reboot or halt. Returns only if the kernel refused.
pub fn reboot(cmd: RebootCommand) -> io::Error {
    match rustix::system::reboot(cmd) {
        Ok(()) => io::Error::other("reboot(2) returned"),
        Err(e) => e.into(),
    }
}

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

/// A C string for paths handed to the kernel.
pub fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in string"))
}

/// `_IOR(0x12, 114, size_t)`: a block device's size in bytes.
const BLKGETSIZE64: rustix::ioctl::Opcode = 0x8008_1272;
/// `_IO(0x12, 95)`: re-read the partition table.
const BLKRRPART: rustix::ioctl::Opcode = 0x125f;

/// Size in bytes, logical and physical sector size of a block device.
pub fn block_geometry(fd: impl AsFd) -> io::Result<(u64, u32, u32)> {
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer Getter passes.
    let size =
        unsafe { rustix::ioctl::ioctl(&fd, rustix::ioctl::Getter::<BLKGETSIZE64, u64>::new())? };
    let logical = rustix::fs::ioctl_blksszget(&fd)?;
    let physical = rustix::fs::ioctl_blkpbszget(&fd)?;
    Ok((size, logical, physical))
}

/// `_IO(0x12, 94)`: whether a block device is read-only (an int).
const BLKROGET: rustix::ioctl::Opcode = 0x125e;

/// Whether the kernel holds the block device read-only (a write-protected
/// medium, `blockdev --setro`, a read-only virtual disk).
pub fn block_read_only(fd: impl AsFd) -> io::Result<bool> {
    // SAFETY: BLKROGET writes one int through the pointer Getter passes.
    let ro = unsafe {
        rustix::ioctl::ioctl(&fd, rustix::ioctl::Getter::<BLKROGET, libc::c_int>::new())?
    };
    Ok(ro != 0)
}

/// Asks the kernel to re-read a block device's partition table.
pub fn reread_partitions(fd: impl AsFd) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    unsafe { rustix::ioctl::ioctl(&fd, rustix::ioctl::NoArg::<BLKRRPART>::new())? };
    Ok(())
}

/// Random bytes from the kernel. GRND_INSECURE never blocks, even in an
/// early-boot PID 1 before the pool is initialised; rivet needs uniqueness
/// (partition GUIDs, disk signatures, volume serials), not secrecy.
pub fn random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::INSECURE) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(_) => {
                // Kernels before 5.6 lack GRND_INSECURE: ask without flags.
                match rustix::rand::getrandom(
                    &mut buf[filled..],
                    rustix::rand::GetRandomFlags::empty(),
                ) {
                    Ok(n) => filled += n,
                    Err(e) => panic!("getrandom failed: {e}"),
                }
            }
        }
    }
}

/// Random bytes fit for keys: getrandom without flags, which waits until
/// the kernel's pool is initialised (virtio_rng or RDRAND make that quick).
pub fn secure_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
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
pub fn packet_socket(name: &str) -> io::Result<std::os::fd::OwnedFd> {
    let (fd, _) = bound_packet_socket(name, ETH_P_ALL)?;
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
    let mut address = [0u8; 8];
    address[..6].copy_from_slice(&group);
    let mreq = PacketMreq {
        ifindex: ifindex as i32,
        kind: PACKET_MR_MULTICAST,
        alen: 6,
        address,
    };
    setsockopt(fd.as_fd(), PACKET_ADD_MEMBERSHIP, &mreq)?;
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
    unsafe fn frame(&self, index: usize, status: u32) -> (u32, &[u8]) {
        // SAFETY: tpacket2_hdr: tp_snaplen at 8 (u32), tp_mac at 12 (u16),
        // inside the frame the caller owns.
        unsafe {
            let frame = self.base.add(index * self.frame_size);
            let snaplen = (frame.add(8) as *const u32).read_volatile() as usize;
            let mac = (frame.add(12) as *const u16).read_volatile() as usize;
            let len = snaplen.min(self.frame_size.saturating_sub(mac));
            (status, std::slice::from_raw_parts(frame.add(mac), len))
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

    /// The next frame the kernel has filled that `keep` accepts (given the
    /// frame's tp_status and bytes); frames it refuses go straight back to
    /// the kernel. The returned [`RingFrame`] goes back when dropped.
    pub fn next_frame_where(
        &mut self,
        mut keep: impl FnMut(u32, &[u8]) -> bool,
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
            let (status, data) = unsafe { self.frame(index, status) };
            if keep(status, data) {
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
) -> io::Result<Option<(usize, u32)>> {
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
    let mut status = 0;
    // SAFETY: walks the control messages the kernel wrote into `control`,
    // with libc's own bounds-checked cursor macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                let aux = (libc::CMSG_DATA(cmsg) as *const TpacketAuxdata).read_unaligned();
                status = aux.tp_status;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Some((n as usize, status)))
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

/// `struct nvme_passthru_cmd` (linux/nvme_ioctl.h), for admin commands.
#[repr(C)]
#[derive(Default)]
pub struct NvmeAdminCmd {
    pub opcode: u8,
    pub flags: u8,
    pub rsvd1: u16,
    pub nsid: u32,
    pub cdw2: u32,
    pub cdw3: u32,
    pub metadata: u64,
    pub addr: u64,
    pub metadata_len: u32,
    pub data_len: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
    pub timeout_ms: u32,
    pub result: u32,
}

const NVME_IOCTL_ID: libc::c_ulong = 0x4e40;
const NVME_IOCTL_ADMIN_CMD: libc::c_ulong = 0xc048_4e41;

/// The namespace id of an NVMe namespace's block device.
pub fn nvme_namespace_id(fd: impl AsFd) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: NVME_IOCTL_ID takes no argument and returns the id.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NVME_IOCTL_ID as _) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u32)
    }
}

/// Runs an NVMe admin command; `data` is the transfer buffer (in or out).
/// Returns the NVMe status (0: success) and the completion's result.
pub fn nvme_admin(
    fd: impl AsFd,
    cmd: &mut NvmeAdminCmd,
    data: Option<&mut [u8]>,
) -> io::Result<(u32, u32)> {
    use std::os::fd::AsRawFd;
    if let Some(d) = data {
        cmd.addr = d.as_mut_ptr() as u64;
        cmd.data_len = d.len() as u32;
    }
    // SAFETY: cmd is a live nvme_passthru_cmd; addr/data_len describe a
    // buffer that outlives the call (the kernel copies in and out).
    let r = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            NVME_IOCTL_ADMIN_CMD as _,
            cmd as *mut NvmeAdminCmd,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((r as u32, cmd.result))
    }
}

/// `sg_io_hdr_t` (scsi/sg.h).
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut libc::c_void,
    cmdp: *mut u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: libc::c_int,
    duration: u32,
    info: u32,
}

const SG_IO: libc::c_ulong = 0x2285;

/// Which way an SG_IO command moves data.
pub enum SgData<'a> {
    None,
    In(&'a mut [u8]),
    Out(&'a [u8]),
}

/// Sends a SCSI CDB (here: ATA PASS-THROUGH) with SG_IO. Returns the SCSI
/// status, host and driver status, and the sense bytes.
pub fn sg_io(
    fd: impl AsFd,
    cdb: &[u8],
    data: SgData<'_>,
    timeout_ms: u32,
) -> io::Result<(u8, u16, u16, Vec<u8>)> {
    use std::os::fd::AsRawFd;
    let mut cdb = cdb.to_vec();
    let mut sense = vec![0u8; 32];
    let (dir, ptr, len) = match data {
        SgData::None => (-1, std::ptr::null_mut(), 0),
        SgData::Out(d) => (-2, d.as_ptr() as *mut libc::c_void, d.len()),
        SgData::In(d) => (-3, d.as_mut_ptr().cast(), d.len()),
    };
    let mut h = SgIoHdr {
        interface_id: b'S' as libc::c_int,
        dxfer_direction: dir,
        cmd_len: cdb.len() as u8,
        mx_sb_len: sense.len() as u8,
        iovec_count: 0,
        dxfer_len: len as u32,
        dxferp: ptr,
        cmdp: cdb.as_mut_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: h points at the CDB, sense and data buffers above, all alive
    // for the call, with their lengths.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), SG_IO as _, &mut h as *mut SgIoHdr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    sense.truncate(h.sb_len_wr as usize);
    Ok((h.status, h.host_status, h.driver_status, sense))
}

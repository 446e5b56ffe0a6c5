//! rivet's own TCP/IP: a smoltcp interface over any Ethernet device, with
//! DHCPv4 (kept running for renewals during long downloads) and IPv6
//! autoconfiguration ([`v6`]), or a static address; DNS (A and AAAA), and
//! TCP connections over either family exposed as a [`Transport`] (serving
//! is in [`super::listener`]). Time and waiting come from a [`Wait`] so the
//! stack itself stays no_std.

mod v6;

use super::{ConnId, NetError, NetErrorKind, Transport};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{dhcpv4, dns, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    DnsQueryType, EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address,
};

/// TCP receive window: twice the bandwidth-delay product of a fast
/// provisioning LAN at rivet's pace (350 MB/s x 1.5 ms), and small enough
/// that the window and the ring (twice it) keep a deploy's peak RSS near
/// 7 MiB. Measured on veth (tests/bench/net-stream 1024 2, same hour,
/// MB/s of the best round; 2 MiB / 1 MiB / 512 KiB): HTTP -> loop
/// 184 / 195 / 191 with peak RSS 12.3 / 8.6 / 6.9 MiB, network alone
/// 292 / 298 / 344, HTTPS 217 / 233 / 293 — the window no longer limits
/// since the reader moved to its own thread and the decoders sped up (an
/// earlier day: 2 MiB 446-471 MB/s against 1 MiB 315-457).
pub const TCP_RX_BUFFER: usize = 512 << 10;
const TCP_TX_BUFFER: usize = 64 * 1024;

/// The stack's clock in ms, for TCP timestamps (smoltcp asks a plain `fn`).
static TCP_CLOCK_MS: AtomicU32 = AtomicU32::new(0);

/// TCP timestamps (RFC 7323) let the sender tell a segment that arrived
/// late from one that was lost (Eifel detection): when frames reach the
/// packet socket out of order — two CPUs delivering, as across a veth or
/// a multi-queue NIC — Linux undoes the spurious retransmission and its
/// congestion-window cut instead of keeping both. Without them a 1 GiB
/// download over veth saw ~8,000 retransmitted segments and 270 recoveries
/// (tests/bench/net-stream, nstat on the server); with them about half.
fn tcp_timestamp() -> u32 {
    TCP_CLOCK_MS.load(Ordering::Relaxed)
}

/// The platform's clock and idle wait.
pub trait Wait {
    fn now_ms(&mut self) -> u64;
    /// Sleeps until a frame may have arrived or `ms` passed.
    fn wait(&mut self, ms: u64);
}

/// How the interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// DHCPv4, and IPv6 autoconfiguration (SLAAC, DHCPv6) beside it.
    Dhcp,
    /// One static address of either family (IPv6 with its link-local).
    Static {
        cidr: IpCidr,
        gateway: Option<IpAddress>,
        dns: Vec<IpAddress>,
    },
}

impl Addressing {
    /// What `network_data.json` chose ([`crate::netdata`]).
    pub fn from_network_data(a: &crate::netdata::Addressing) -> Addressing {
        match a {
            crate::netdata::Addressing::Dhcp => Addressing::Dhcp,
            crate::netdata::Addressing::Static {
                address,
                prefix,
                gateway,
                dns,
            } => Addressing::Static {
                cidr: IpCidr::new(IpAddress::from(*address), *prefix),
                gateway: gateway.map(IpAddress::from),
                dns: dns.iter().map(|d| IpAddress::from(*d)).collect(),
            },
        }
    }
}

/// The address configuration in force for one family: DHCPv4 or static
/// for IPv4; for IPv6 the first global address (DHCPv6 before SLAAC), the
/// advertised router, the DNS servers from DHCPv6 and advertisements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: IpCidr,
    pub router: Option<IpAddress>,
    pub dns: Vec<IpAddress>,
}

/// What a device says about its link beyond frames: whether an
/// active-backup bond moved to another port since the last call (the
/// stack then announces its addresses there).
pub trait Link {
    fn failed_over(&mut self) -> bool {
        false
    }
}

pub struct Stack<D: Device + Link, W: Wait> {
    pub device: D,
    pub waiter: W,
    iface: Interface,
    pub(super) sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    dns: Option<SocketHandle>,
    /// IPv4's configuration.
    pub lease: Option<Lease>,
    /// IPv6's, when autoconfiguration has given an address.
    pub lease6: Option<Lease>,
    v6: Option<v6::V6>,
    /// A static IPv6 address waiting for duplicate address detection
    /// (it becomes `lease6` when no other node claimed it).
    static6: Option<Lease>,
    dad: crate::net::dad::Dad,
    /// Router advertisements seen since the last poll.
    adverts: Vec<crate::wire::ndisc::RouterAdvert>,
    /// IPv6 addresses other nodes claimed since the last poll.
    claims: Vec<crate::wire::ndisc::Claim>,
    mac: [u8; 6],
    conns: Vec<Option<SocketHandle>>,
    next_port: u16,
    /// A socket listening for [`Transport::accept`], kept between calls so
    /// a peer's SYN between two waits is not refused.
    listening: Option<(u16, SocketHandle)>,
}

fn instant(ms: u64) -> Instant {
    Instant::from_millis(ms as i64)
}

impl<D: Device + Link, W: Wait> Stack<D, W> {
    pub fn new(
        mut device: D,
        mut waiter: W,
        mac: [u8; 6],
        addressing: Addressing,
        seed: u64,
    ) -> Self {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let now = instant(waiter.now_ms());
        let iface = Interface::new(config, &mut device, now);
        let mut stack = Stack {
            device,
            waiter,
            iface,
            sockets: SocketSet::new(Vec::new()),
            dhcp: None,
            dns: None,
            lease: None,
            lease6: None,
            v6: None,
            static6: None,
            dad: Default::default(),
            adverts: Vec::new(),
            claims: Vec::new(),
            mac,
            conns: Vec::new(),
            next_port: 49152 + (seed % 8192) as u16,
            listening: None,
        };
        match addressing {
            Addressing::Dhcp => {
                let socket = dhcpv4::Socket::new();
                stack.dhcp = Some(stack.sockets.add(socket));
                // Both families, as a Linux host on the same port would:
                // the provisioning network decides which answers.
                stack.start_v6(mac, seed);
            }
            Addressing::Static { cidr, gateway, dns } => {
                let lease = Lease {
                    address: cidr,
                    router: gateway,
                    dns,
                };
                match cidr {
                    IpCidr::Ipv6(_) => stack.static6 = Some(lease),
                    IpCidr::Ipv4(_) => stack.apply(lease),
                }
            }
        }
        stack
    }

    /// A DHCPv4 lease or a static address, of its family.
    fn apply(&mut self, lease: Lease) {
        let routes = self.iface.routes_mut();
        match lease.address {
            IpCidr::Ipv4(_) => {
                routes.remove_default_ipv4_route();
                if let Some(IpAddress::Ipv4(router)) = lease.router {
                    let _ = routes.add_default_ipv4_route(router);
                }
                self.lease = Some(lease);
            }
            IpCidr::Ipv6(_) => {
                routes.remove_default_ipv6_route();
                if let Some(IpAddress::Ipv6(router)) = lease.router {
                    let _ = routes.add_default_ipv6_route(router);
                }
                self.lease6 = Some(lease);
            }
        }
        self.set_addresses();
        self.set_dns_servers();
    }

    /// The interface's addresses: IPv4's, then IPv6's link-local and those
    /// autoconfiguration holds (or the static one).
    fn set_addresses(&mut self) {
        let v4 = self.lease.as_ref().map(|l| l.address);
        let v6 = match (&self.v6, &self.lease6) {
            (Some(auto), _) => auto.addresses(self.mac, &self.dad),
            (None, Some(fixed)) => alloc::vec![v6::link_local(self.mac), fixed.address],
            (None, None) => Vec::new(),
        };
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            for a in v4.into_iter().chain(v6) {
                let _ = addrs.push(a);
            }
        });
    }

    /// DNS servers of both families, IPv4's first.
    fn set_dns_servers(&mut self) {
        let servers: Vec<IpAddress> = [&self.lease, &self.lease6]
            .into_iter()
            .flatten()
            .flat_map(|l| l.dns.iter().copied())
            .collect();
        match self.dns {
            Some(h) => self
                .sockets
                .get_mut::<dns::Socket>(h)
                .update_servers(&servers),
            None => self.dns = Some(self.sockets.add(dns::Socket::new(&servers, vec![]))),
        }
    }

    /// Runs the interface once and handles DHCP and IPv6 events.
    pub fn poll(&mut self) {
        let now_ms = self.waiter.now_ms();
        let now = instant(now_ms);
        TCP_CLOCK_MS.store(now.total_millis() as u32, Ordering::Relaxed);
        // One device type for smoltcp's whole poll (each is a copy of it).
        let mut device = v6::Snoop::new(&mut self.device, &mut self.adverts, &mut self.claims);
        self.iface.poll(now, &mut device, &mut self.sockets);
        let dad_changed = self.poll_dad(now_ms);
        self.poll_v6(now_ms, dad_changed);
        if self.device.failed_over() {
            self.announce(now_ms);
        }
        let Some(h) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            Some(dhcpv4::Event::Configured(c)) => Some(Some(Lease {
                address: IpCidr::Ipv4(c.address),
                router: c.router.map(IpAddress::Ipv4),
                dns: c.dns_servers.iter().copied().map(IpAddress::Ipv4).collect(),
            })),
            Some(dhcpv4::Event::Deconfigured) => Some(None),
            None => None,
        };
        match event {
            Some(Some(lease)) => {
                if self.lease.as_ref() != Some(&lease) {
                    log::info!(
                        "DHCP: {} router {} dns {:?}",
                        lease.address,
                        lease
                            .router
                            .map(|r| format!("{r}"))
                            .unwrap_or_else(|| "-".into()),
                        lease.dns
                    );
                }
                self.apply(lease);
            }
            Some(None) if self.lease.is_none() => {}
            Some(None) => {
                log::warn!("DHCP: lease lost");
                self.lease = None;
                self.set_addresses();
            }
            None => {}
        }
    }

    /// Polls, then waits until smoltcp has work or `max_ms` passed.
    pub(super) fn turn(&mut self, max_ms: u64) {
        self.poll();
        let now = instant(self.waiter.now_ms());
        let delay = self
            .iface
            .poll_delay(now, &self.sockets)
            .map(|d| d.total_millis())
            .unwrap_or(max_ms);
        let d = delay.min(max_ms);
        if d > 0 {
            self.waiter.wait(d);
        }
    }

    /// Waits for an address of either family (a DHCPv4 lease, an IPv6
    /// address from DHCPv6 or SLAAC, or the static one), up to `timeout_ms`.
    /// IPv4's when both have come.
    pub fn wait_for_address(&mut self, timeout_ms: u64) -> Result<Lease, NetError> {
        self.wait_for(None, timeout_ms)
    }

    /// Waits for an address of `family` (`Some(true)`: IPv6), or of either.
    pub fn wait_for(&mut self, v6: Option<bool>, timeout_ms: u64) -> Result<Lease, NetError> {
        let deadline = self.waiter.now_ms() + timeout_ms;
        loop {
            self.poll();
            let found = match v6 {
                Some(true) => self.lease6.as_ref(),
                Some(false) => self.lease.as_ref(),
                None => self.lease.as_ref().or(self.lease6.as_ref()),
            };
            if let Some(l) = found {
                return Ok(l.clone());
            }
            if let Some(IpCidr::Ipv6(c)) = self.static6.as_ref().map(|l| l.address) {
                if self.dad.state(&c.address().octets()) == Some(crate::net::dad::State::Duplicate)
                {
                    return Err(NetError::new(
                        NetErrorKind::Other,
                        format!(
                            "the static IPv6 address {c} is in use by another node on the \
                             link (duplicate address detection)"
                        ),
                    ));
                }
            }
            if self.waiter.now_ms() >= deadline {
                let what = match (v6, self.dhcp.is_some(), self.v6.is_some()) {
                    (Some(true), ..) => "no IPv6 address (router advertisement, SLAAC or DHCPv6)",
                    (None, true, true) => {
                        "no address: no DHCPv4 lease, no IPv6 router advertisement or DHCPv6 lease"
                    }
                    (_, true, _) => "no DHCP lease",
                    _ => "no IPv4 address",
                };
                return Err(NetError::new(
                    NetErrorKind::Timeout,
                    format!("{what} within {} s", timeout_ms / 1000),
                ));
            }
            self.turn(100);
        }
    }

    /// Every address in force with its router, IPv4's first.
    pub fn describe_addresses(&self) -> String {
        let all: Vec<String> = [&self.lease, &self.lease6]
            .into_iter()
            .flatten()
            .map(describe_lease)
            .collect();
        all.join(", ")
    }

    /// This host's address in the family `host` is reached over (what a
    /// callback URL given to `host` must name): `host` resolved as a
    /// connection would resolve it.
    pub fn address_towards(&mut self, host: &str, timeout_ms: u64) -> Result<IpAddress, NetError> {
        let remote = self.resolve(host, timeout_ms)?;
        let v6 = matches!(remote, IpAddress::Ipv6(_));
        let lease = if v6 { &self.lease6 } else { &self.lease };
        lease.as_ref().map(|l| l.address.address()).ok_or_else(|| {
            NetError::new(
                NetErrorKind::Other,
                format!(
                    "no IPv{} address to reach {host} ({remote}) from",
                    if v6 { 6 } else { 4 }
                ),
            )
        })
    }

    /// The address of `host`: an IP literal (IPv6 with its zone dropped:
    /// rivet has one interface), else an A or AAAA answer. A name is asked
    /// first in the family rivet has an address in, IPv4 first.
    fn resolve(&mut self, host: &str, timeout_ms: u64) -> Result<IpAddress, NetError> {
        if let Some(a) = literal(host) {
            return Ok(a);
        }
        // A name needs a DNS server, so an address first.
        if self.lease.is_none() && self.lease6.is_none() {
            self.wait_for_address(timeout_ms)?;
        }
        let mut kinds = Vec::new();
        if self.lease.is_some() {
            kinds.push(DnsQueryType::A);
        }
        if self.lease6.is_some() {
            kinds.push(DnsQueryType::Aaaa);
        }
        let deadline = self.waiter.now_ms() + timeout_ms;
        let mut last = NetError::new(NetErrorKind::Dns, format!("cannot resolve {host}"));
        for kind in kinds {
            match self.query(host, kind, deadline) {
                Ok(Some(a)) => return Ok(a),
                Ok(None) => {
                    last = NetError::new(
                        NetErrorKind::Dns,
                        format!(
                            "{host} has no {} address",
                            if kind == DnsQueryType::A {
                                "IPv4"
                            } else {
                                "IPv6"
                            }
                        ),
                    )
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One DNS question; `Ok(None)`: answered, without such an address.
    fn query(
        &mut self,
        host: &str,
        kind: DnsQueryType,
        deadline: u64,
    ) -> Result<Option<IpAddress>, NetError> {
        let h = self.dns.ok_or_else(|| {
            NetError::new(
                NetErrorKind::Dns,
                format!("cannot resolve {host}: no DNS server"),
            )
        })?;
        let query = {
            let socket = self.sockets.get_mut::<dns::Socket>(h);
            socket
                .start_query(self.iface.context(), host, kind)
                .map_err(|e| {
                    NetError::new(NetErrorKind::Dns, format!("cannot resolve {host}: {e:?}"))
                })?
        };
        loop {
            self.poll();
            match self
                .sockets
                .get_mut::<dns::Socket>(h)
                .get_query_result(query)
            {
                Ok(addrs) => return Ok(addrs.first().copied()),
                Err(dns::GetQueryResultError::Pending) => {}
                Err(dns::GetQueryResultError::Failed) => {
                    return Err(NetError::new(
                        NetErrorKind::Dns,
                        format!("cannot resolve {host}"),
                    ))
                }
            }
            if self.waiter.now_ms() >= deadline {
                self.sockets.get_mut::<dns::Socket>(h).cancel_query(query);
                return Err(NetError::new(
                    NetErrorKind::Dns,
                    format!("no DNS answer for {host}"),
                ));
            }
            self.turn(50);
        }
    }

    fn register(&mut self, handle: SocketHandle) -> ConnId {
        let id = match self.conns.iter().position(Option::is_none) {
            Some(i) => {
                self.conns[i] = Some(handle);
                i
            }
            None => {
                self.conns.push(Some(handle));
                self.conns.len() - 1
            }
        };
        ConnId(id)
    }

    fn socket(&mut self, c: ConnId) -> Result<SocketHandle, NetError> {
        self.conns
            .get(c.0)
            .copied()
            .flatten()
            .ok_or_else(|| NetError::new(NetErrorKind::Reset, "connection already closed"))
    }
}

impl<D: Device + Link, W: Wait> Transport for Stack<D, W> {
    fn now_ms(&mut self) -> u64 {
        self.waiter.now_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        let deadline = self.waiter.now_ms() + ms;
        while self.waiter.now_ms() < deadline {
            let left = deadline - self.waiter.now_ms();
            self.turn(left.min(100));
        }
    }

    fn connect(&mut self, host: &str, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        let addr = self.resolve(host, timeout_ms)?;
        // An address of the other family may still be on its way; a
        // link-local peer (`http://[fe80::1%eth0]/`) needs only rivet's own
        // link-local address, there as soon as IPv6 runs.
        let v6 = matches!(addr, IpAddress::Ipv6(_));
        let link_local = matches!(addr, IpAddress::Ipv6(a) if a.is_unicast_link_local())
            && (self.v6.is_some() || self.lease6.is_some());
        if !v6 && self.lease.is_none() || v6 && self.lease6.is_none() && !link_local {
            self.wait_for(Some(v6), timeout_ms)?;
        }
        let mut socket = tcp_socket();
        self.next_port = if self.next_port >= 65000 {
            49152
        } else {
            self.next_port + 1
        };
        socket
            .connect(self.iface.context(), (addr, port), self.next_port)
            .map_err(|e| {
                NetError::new(
                    NetErrorKind::Other,
                    format!("connect to {host}:{port}: {e:?}"),
                )
            })?;
        let handle = self.sockets.add(socket);
        let deadline = self.waiter.now_ms() + timeout_ms;
        loop {
            self.poll();
            let state = self.sockets.get::<tcp::Socket>(handle).state();
            match state {
                tcp::State::Established => {
                    let idle = Duration::from_millis(timeout_ms.max(1000));
                    self.sockets
                        .get_mut::<tcp::Socket>(handle)
                        .set_timeout(Some(idle));
                    break;
                }
                tcp::State::Closed => {
                    self.sockets.remove(handle);
                    return Err(NetError::new(
                        NetErrorKind::Refused,
                        format!("connection to {host}:{port} ({addr}) refused"),
                    ));
                }
                _ => {}
            }
            if self.waiter.now_ms() >= deadline {
                self.sockets.remove(handle);
                return Err(NetError::new(
                    NetErrorKind::Timeout,
                    format!(
                        "no connection to {host}:{port} ({addr}) within {timeout_ms} ms: {}",
                        if state == tcp::State::SynSent {
                            "the TCP handshake never completed (no SYN-ACK arrived, or none was accepted)"
                        } else {
                            "the TCP handshake did not finish"
                        }
                    ),
                ));
            }
            self.turn(50);
        }
        Ok(self.register(handle))
    }

    fn accept(&mut self, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        let handle = match self.listening.take() {
            Some((p, h)) if p == port => h,
            other => {
                if let Some((_, h)) = other {
                    self.sockets.remove(h);
                }
                let mut socket = tcp_socket();
                socket.listen(port).map_err(|e| {
                    NetError::new(NetErrorKind::Other, format!("listen on {port}: {e:?}"))
                })?;
                self.sockets.add(socket)
            }
        };
        let deadline = self.waiter.now_ms() + timeout_ms;
        loop {
            self.poll();
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            match socket.state() {
                tcp::State::Established => {
                    socket.set_timeout(Some(Duration::from_millis(timeout_ms.max(1000))));
                    return Ok(self.register(handle));
                }
                // A peer that reset half-way: listen again.
                tcp::State::Closed => {
                    let _ = socket.listen(port);
                }
                _ => {}
            }
            if self.waiter.now_ms() >= deadline {
                self.listening = Some((port, handle));
                return Err(NetError::new(
                    NetErrorKind::Timeout,
                    format!("no connection on port {port} within {timeout_ms} ms"),
                ));
            }
            self.turn(50);
        }
    }

    fn finish(&mut self, c: ConnId, timeout_ms: u64) -> Result<(), NetError> {
        let h = self.socket(c)?;
        self.sockets.get_mut::<tcp::Socket>(h).close();
        let deadline = self.waiter.now_ms() + timeout_ms;
        loop {
            self.poll();
            // Everything sent and our FIN acknowledged, and the peer's FIN
            // (or its reset) in: it has read to the end. A reset from this
            // side before that could cost the peer the end of the stream.
            if matches!(
                self.sockets.get::<tcp::Socket>(h).state(),
                tcp::State::TimeWait | tcp::State::Closed
            ) {
                self.sockets.remove(h);
                self.conns[c.0] = None;
                return Ok(());
            }
            if self.waiter.now_ms() >= deadline {
                self.close(c);
                return Err(NetError::new(
                    NetErrorKind::Timeout,
                    format!(
                        "the peer did not take the last bytes and close within {timeout_ms} ms"
                    ),
                ));
            }
            self.turn(50);
        }
    }

    fn send(&mut self, c: ConnId, data: &[u8], timeout_ms: u64) -> Result<(), NetError> {
        let h = self.socket(c)?;
        let mut sent = 0;
        let mut deadline = self.waiter.now_ms() + timeout_ms;
        while sent < data.len() {
            let socket = self.sockets.get_mut::<tcp::Socket>(h);
            if !socket.may_send() {
                return Err(NetError::new(
                    NetErrorKind::Reset,
                    "connection closed while sending",
                ));
            }
            let n = socket
                .send_slice(&data[sent..])
                .map_err(|e| NetError::new(NetErrorKind::Reset, format!("{e:?}")))?;
            if n > 0 {
                sent += n;
                deadline = self.waiter.now_ms() + timeout_ms;
            } else if self.waiter.now_ms() >= deadline {
                return Err(NetError::new(
                    NetErrorKind::Timeout,
                    format!("could not send for {timeout_ms} ms"),
                ));
            }
            self.turn(if n > 0 { 0 } else { 50 });
        }
        self.poll();
        Ok(())
    }

    fn recv(&mut self, c: ConnId, buf: &mut [u8], timeout_ms: u64) -> Result<usize, NetError> {
        let h = self.socket(c)?;
        let deadline = self.waiter.now_ms() + timeout_ms;
        loop {
            let socket = self.sockets.get_mut::<tcp::Socket>(h);
            if socket.can_recv() {
                let n = socket
                    .recv_slice(buf)
                    .map_err(|e| NetError::new(NetErrorKind::Reset, format!("{e:?}")))?;
                if n > 0 {
                    // Hand the window update to the peer promptly.
                    self.poll();
                    return Ok(n);
                }
            }
            if !socket.may_recv() {
                return match socket.state() {
                    // A reset or timeout leaves the socket Closed without a FIN.
                    tcp::State::Closed if socket.remote_endpoint().is_none() => {
                        Err(NetError::new(NetErrorKind::Reset, "connection reset"))
                    }
                    _ => Ok(0),
                };
            }
            if self.waiter.now_ms() >= deadline {
                return Err(NetError::new(
                    NetErrorKind::Timeout,
                    format!("no data for {timeout_ms} ms"),
                ));
            }
            self.turn(100);
        }
    }

    fn close(&mut self, c: ConnId) {
        if let Some(Some(h)) = self.conns.get(c.0).copied() {
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.poll();
            self.sockets.remove(h);
            self.conns[c.0] = None;
        }
    }
}

/// A TCP socket as rivet uses them, before connect or listen.
fn tcp_socket() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; TCP_RX_BUFFER]),
        tcp::SocketBuffer::new(vec![0u8; TCP_TX_BUFFER]),
    );
    socket.set_nagle_enabled(false);
    socket.set_tsval_generator(Some(tcp_timestamp));
    // smoltcp delays ACKs by 10 ms by default, which stalls a bulk sender
    // on the window; 1 ms measured best (tests/bench/net-stream).
    socket.set_ack_delay(Some(Duration::from_millis(1)));
    // No socket timeout during the handshake: smoltcp would close the
    // socket on it, which reads as "refused" below. The deadline says it.
    socket.set_timeout(None);
    socket
}

/// `host` as an IP literal (IPv6 with its zone dropped: rivet has one
/// interface).
fn literal(host: &str) -> Option<IpAddress> {
    if let Ok(a) = host.parse::<Ipv4Address>() {
        return Some(IpAddress::Ipv4(a));
    }
    let unzoned = host.split_once('%').map_or(host, |(a, _)| a);
    unzoned.parse::<Ipv6Address>().ok().map(IpAddress::Ipv6)
}

/// Host name for messages about an address.
pub fn describe_lease(l: &Lease) -> String {
    format!(
        "{} via {}",
        l.address,
        l.router
            .map(|r| format!("{r}"))
            .unwrap_or_else(|| "no router".into())
    )
}

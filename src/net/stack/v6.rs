//! The stack's IPv6 side: [`crate::net::ipv6::Autoconf`] wired to smoltcp.
//! Router advertisements are read off received frames on their way to
//! smoltcp (which keeps neither their flags nor more than one prefix),
//! solicitations go straight to the device, DHCPv6 runs over a UDP socket
//! on port 546, and what autoconfiguration holds becomes the interface's
//! addresses, default route and DNS servers.

use super::{instant, Lease, Stack, Wait};
use crate::net::dad::Dad;
use crate::net::ipv6::{fmt_v6, Autoconf, Send};
use crate::wire::{dhcpv6, ndisc};
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::{Device, DeviceCapabilities, PacketMeta, RxToken};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpCidr, Ipv6Address, Ipv6Cidr};

/// Advertisements kept between two polls (a burst beyond is dropped: the
/// routers repeat them).
const ADVERTS_HELD: usize = 4;

pub(super) struct V6 {
    auto: Autoconf,
    udp: SocketHandle,
}

impl V6 {
    /// Link-local first, then the global ones duplicate address detection
    /// let through.
    pub(super) fn addresses(&self, mac: [u8; 6], dad: &Dad) -> Vec<IpCidr> {
        let mut out = vec![link_local(mac)];
        for a in self.auto.config().addresses {
            if !dad.usable(&a.address) {
                continue;
            }
            out.push(IpCidr::Ipv6(Ipv6Cidr::new(
                Ipv6Address::from(a.address),
                a.prefix_len,
            )));
        }
        out
    }
}

/// `mac`'s link-local address (fe80::/64).
pub(super) fn link_local(mac: [u8; 6]) -> IpCidr {
    IpCidr::Ipv6(Ipv6Cidr::new(Ipv6Address::from(ndisc::link_local(mac)), 64))
}

impl<D: Device + super::Link, W: Wait> Stack<D, W> {
    pub(super) fn start_v6(&mut self, mac: [u8; 6], seed: u64) {
        let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        if socket.bind(dhcpv6::CLIENT_PORT).is_err() {
            return;
        }
        let now = self.waiter.now_ms();
        self.v6 = Some(V6 {
            auto: Autoconf::new(mac, now, seed),
            udp: self.sockets.add(socket),
        });
        self.set_addresses();
    }

    /// Probes new global addresses, takes other nodes' claims, and makes
    /// addresses that waited out their second usable; whether the usable
    /// set changed. A static address becomes the IPv6 lease here.
    pub(super) fn poll_dad(&mut self, now_ms: u64) -> bool {
        let held: Vec<[u8; 16]> = match (&self.v6, &self.static6) {
            (Some(v6), _) => v6
                .auto
                .config()
                .addresses
                .iter()
                .map(|a| a.address)
                .collect(),
            (
                None,
                Some(Lease {
                    address: IpCidr::Ipv6(c),
                    ..
                }),
            ) => vec![c.address().octets()],
            _ => Vec::new(),
        };
        for target in self.dad.track(&held, now_ms) {
            self.send_frame(now_ms, &ndisc::dad_probe(self.mac, &target));
        }
        let mut changed = false;
        for claim in self.claims.drain(..) {
            // Our own probe, back through a bond's other port.
            if claim.from != self.mac {
                changed |= self.dad.on_claim(&claim.target);
            }
        }
        changed |= self.dad.poll(now_ms);
        if changed && self.lease6.is_none() {
            if let Some(s) = &self.static6 {
                if held.first().is_some_and(|a| self.dad.usable(a)) {
                    self.apply(s.clone());
                }
            }
        }
        changed
    }

    /// After a bond's failover: an ARP announcement of the IPv4 address
    /// and an unsolicited advertisement of each IPv6 one, from the new
    /// port, so switches and neighbours send to it at once (as Linux's
    /// bonding driver does with num_grat_arp and num_unsol_na).
    pub(super) fn announce(&mut self, now_ms: u64) {
        let mut sent = Vec::new();
        if let Some(Lease {
            address: IpCidr::Ipv4(c),
            ..
        }) = self.lease.clone()
        {
            let ip = c.address().octets();
            self.send_frame(now_ms, &crate::wire::arp::announcement(self.mac, ip));
            sent.push(alloc::format!("{}", c.address()));
        }
        let mut v6 = vec![ndisc::link_local(self.mac)];
        v6.extend(self.lease6.iter().filter_map(|l| match l.address {
            IpCidr::Ipv6(c) => Some(c.address().octets()),
            _ => None,
        }));
        if let Some(auto) = &self.v6 {
            v6.extend(
                auto.auto
                    .config()
                    .addresses
                    .iter()
                    .map(|a| a.address)
                    .filter(|a| self.dad.usable(a)),
            );
        }
        v6.dedup();
        for a in v6 {
            self.send_frame(now_ms, &ndisc::unsolicited_advert(self.mac, &a));
            sent.push(fmt_v6(&a));
        }
        log::info!("bond: announced {} on the new port", sent.join(", "));
    }

    /// One frame straight to the device (smoltcp sends no DAD probes, no
    /// unsolicited advertisements, no ARP announcements).
    pub(super) fn send_frame(&mut self, now_ms: u64, frame: &[u8]) {
        if let Some(tx) = self.device.transmit(instant(now_ms)) {
            smoltcp::phy::TxToken::consume(tx, frame.len(), |b| b.copy_from_slice(frame));
        }
    }

    pub(super) fn poll_v6(&mut self, now_ms: u64, dad_changed: bool) {
        let mac = self.mac;
        let Some(v6) = &mut self.v6 else {
            self.adverts.clear();
            return;
        };
        for ra in self.adverts.drain(..) {
            v6.auto.on_advert(&ra, now_ms);
        }
        let socket = self.sockets.get_mut::<udp::Socket>(v6.udp);
        while let Ok((datagram, meta)) = socket.recv() {
            if meta.endpoint.port == dhcpv6::SERVER_PORT {
                v6.auto.on_dhcp(datagram, now_ms);
            }
        }
        for send in v6.auto.poll(now_ms) {
            match send {
                Send::RouterSolicit => {
                    if let Some(tx) = self.device.transmit(instant(now_ms)) {
                        let frame = ndisc::router_solicit(mac);
                        smoltcp::phy::TxToken::consume(tx, frame.len(), |b| {
                            b.copy_from_slice(&frame)
                        });
                    }
                }
                Send::Dhcp(message) => {
                    let to = (
                        IpAddress::Ipv6(Ipv6Address::from(dhcpv6::ALL_SERVERS)),
                        dhcpv6::SERVER_PORT,
                    );
                    let _ = socket.send_slice(&message, to);
                }
            }
        }
        if !v6.auto.take_changed() && !dad_changed {
            return;
        }
        let mut config = v6.auto.config();
        config.addresses.retain(|a| self.dad.usable(&a.address));
        let lease = config.addresses.first().map(|a| Lease {
            address: IpCidr::Ipv6(Ipv6Cidr::new(Ipv6Address::from(a.address), a.prefix_len)),
            router: config.router.map(|r| IpAddress::Ipv6(Ipv6Address::from(r))),
            dns: config
                .dns
                .iter()
                .map(|d| IpAddress::Ipv6(Ipv6Address::from(*d)))
                .collect(),
        });
        if lease != self.lease6 {
            match &lease {
                Some(l) => log::info!(
                    "IPv6: {} router {} dns {}",
                    l.address,
                    config
                        .router
                        .map(|r| fmt_v6(&r))
                        .unwrap_or_else(|| "-".into()),
                    config.dns.iter().map(fmt_v6).collect::<Vec<_>>().join(" ")
                ),
                None if self.lease6.is_some() => log::warn!("IPv6: no global address any more"),
                None => {}
            }
        }
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv6_route();
        if let Some(r) = config.router {
            let _ = routes.add_default_ipv6_route(Ipv6Address::from(r));
        }
        self.lease6 = lease;
        self.set_addresses();
        self.set_dns_servers();
    }
}

/// A device whose received frames are looked at for router
/// advertisements and neighbour claims before smoltcp has them.
pub(super) struct Snoop<'a, D: Device> {
    inner: &'a mut D,
    seen: Seen<'a>,
}

/// Where a snooped frame's news goes.
pub(super) struct Seen<'a> {
    adverts: &'a mut Vec<ndisc::RouterAdvert>,
    claims: &'a mut Vec<ndisc::Claim>,
}

impl<'a, D: Device> Snoop<'a, D> {
    pub(super) fn new(
        inner: &'a mut D,
        adverts: &'a mut Vec<ndisc::RouterAdvert>,
        claims: &'a mut Vec<ndisc::Claim>,
    ) -> Self {
        Snoop {
            inner,
            seen: Seen { adverts, claims },
        }
    }
}

pub(super) struct SnoopRx<'a, R> {
    inner: R,
    seen: Seen<'a>,
}

impl<R: RxToken> RxToken for SnoopRx<'_, R> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        let seen = self.seen;
        self.inner.consume(|frame| {
            if seen.adverts.len() < ADVERTS_HELD {
                seen.adverts.extend(ndisc::router_advert(frame));
            }
            if seen.claims.len() < ADVERTS_HELD {
                seen.claims.extend(ndisc::neighbor_claim(frame));
            }
            f(frame)
        })
    }

    fn meta(&self) -> PacketMeta {
        self.inner.meta()
    }
}

impl<D: Device> Device for Snoop<'_, D> {
    type RxToken<'b>
        = SnoopRx<'b, D::RxToken<'b>>
    where
        Self: 'b;
    type TxToken<'b>
        = D::TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, t: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(t)?;
        let seen = Seen {
            adverts: self.seen.adverts,
            claims: self.seen.claims,
        };
        Some((SnoopRx { inner: rx, seen }, tx))
    }

    fn transmit(&mut self, t: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(t)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

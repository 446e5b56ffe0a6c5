//! The stack's IPv6 side: [`crate::net::ipv6::Autoconf`] wired to smoltcp.
//! Router advertisements are read off received frames on their way to
//! smoltcp (which keeps neither their flags nor more than one prefix),
//! solicitations go straight to the device, DHCPv6 runs over a UDP socket
//! on port 546, and what autoconfiguration holds becomes the interface's
//! addresses, default route and DNS servers.

use super::{instant, Lease, Stack, Wait};
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
    /// Link-local first, then the global ones.
    pub(super) fn addresses(&self, mac: [u8; 6]) -> Vec<IpCidr> {
        let mut out = vec![link_local(mac)];
        for a in self.auto.config().addresses {
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

impl<D: Device, W: Wait> Stack<D, W> {
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

    pub(super) fn poll_v6(&mut self, now_ms: u64) {
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
        if !v6.auto.take_changed() {
            return;
        }
        let config = v6.auto.config();
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
/// advertisements before smoltcp has them.
pub(super) struct Snoop<'a, D: Device> {
    inner: &'a mut D,
    adverts: &'a mut Vec<ndisc::RouterAdvert>,
}

impl<'a, D: Device> Snoop<'a, D> {
    pub(super) fn new(inner: &'a mut D, adverts: &'a mut Vec<ndisc::RouterAdvert>) -> Self {
        Snoop { inner, adverts }
    }
}

pub(super) struct SnoopRx<'a, R> {
    inner: R,
    adverts: &'a mut Vec<ndisc::RouterAdvert>,
}

impl<R: RxToken> RxToken for SnoopRx<'_, R> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        let adverts = self.adverts;
        self.inner.consume(|frame| {
            if adverts.len() < ADVERTS_HELD {
                adverts.extend(ndisc::router_advert(frame));
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
        Some((
            SnoopRx {
                inner: rx,
                adverts: self.adverts,
            },
            tx,
        ))
    }

    fn transmit(&mut self, t: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(t)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

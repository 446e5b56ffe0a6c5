//! IPv6 address configuration as a host does it (RFC 4862, RFC 8415):
//! solicit routers; from their advertisements take the default router, the
//! on-link prefixes, SLAAC addresses where a prefix allows, DNS servers;
//! where the M flag says so, lease an address by stateful DHCPv6 (and
//! renew it), where only O does, ask DHCPv6 for DNS servers. Pure policy:
//! the stack feeds it frames and datagrams with the time and sends what it
//! returns, so every path is tested with scripted time.
//!
//! Duplicate address detection is the stack's ([`crate::net::dad`]), for
//! every address this gives. Left out: privacy addresses, prefix
//! delegation.

use crate::wire::dhcpv6::{self, Kind, Message, Request};
use crate::wire::ndisc::{self, RouterAdvert};
use alloc::vec::Vec;

/// Router solicitations: three, four seconds apart (RFC 4861 §10), then
/// one a minute while none has answered (routers also advertise unasked).
const RS_INTERVAL_MS: u64 = 4_000;
const RS_QUICK: u32 = 3;
const RS_SLOW_INTERVAL_MS: u64 = 60_000;
/// DHCPv6 retransmission (RFC 8415 §7.6): first after 1 s, doubling up to
/// this (the RFC's SOL_MAX_RT is an hour; a deploy waits for no hour).
const DHCP_FIRST_RT_MS: u64 = 1_000;
const DHCP_MAX_RT_MS: u64 = 16_000;
/// Requests retried this often before soliciting again (REQ_MAX_RC).
const REQUEST_TRIES: u32 = 10;
/// Lifetimes of 0xffffffff seconds are infinite.
const INFINITE: u32 = u32::MAX;

/// An address the host holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub address: [u8; 16],
    /// On-link prefix length (128 when no advertised prefix covers it).
    pub prefix_len: u8,
    pub from_dhcp: bool,
}

/// The configuration in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub addresses: Vec<Address>,
    pub router: Option<[u8; 16]>,
    pub dns: Vec<[u8; 16]>,
}

/// What the stack is asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// A router solicitation ([`ndisc::router_solicit`]).
    RouterSolicit,
    /// A DHCPv6 message to all servers (ff02::1:2, port 547).
    Dhcp(Vec<u8>),
}

#[derive(Debug, Clone, Copy)]
struct Timed<T> {
    value: T,
    /// ms; `u64::MAX`: never expires.
    until: u64,
}

fn until(now: u64, seconds: u32) -> u64 {
    if seconds == INFINITE {
        u64::MAX
    } else {
        now + u64::from(seconds) * 1000
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No advertisement has asked for DHCPv6.
    Idle,
    Soliciting,
    /// Asking the server that advertised for its address.
    Requesting {
        server: Vec<u8>,
        tries: u32,
    },
    /// Leased; renewing from T1, rebinding from T2 (each retransmitted).
    Bound {
        server: Vec<u8>,
    },
    /// Other configuration only (O without M).
    Informing,
    Informed,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    address: [u8; 16],
    renew_at: u64,
    rebind_at: u64,
    valid_until: u64,
}

pub struct Autoconf {
    mac: [u8; 6],
    duid: [u8; 10],
    iaid: u32,
    rs_sent: u32,
    next_rs: u64,
    router: Option<Timed<[u8; 16]>>,
    /// On-link prefixes (address, length).
    on_link: Vec<Timed<([u8; 16], u8)>>,
    slaac: Vec<Timed<[u8; 16]>>,
    ra_dns: Vec<[u8; 16]>,
    phase: Phase,
    xid: [u8; 3],
    exchange_started: u64,
    next_send: u64,
    rt: u64,
    lease: Option<Lease>,
    dhcp_dns: Vec<[u8; 16]>,
    seed: u64,
    changed: bool,
}

impl Autoconf {
    /// `seed` varies transaction ids between boots.
    pub fn new(mac: [u8; 6], now: u64, seed: u64) -> Autoconf {
        Autoconf {
            mac,
            duid: dhcpv6::duid(mac),
            // The IAID only has to be stable for this interface.
            iaid: u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
            rs_sent: 0,
            next_rs: now,
            router: None,
            on_link: Vec::new(),
            slaac: Vec::new(),
            ra_dns: Vec::new(),
            phase: Phase::Idle,
            xid: [0; 3],
            exchange_started: now,
            next_send: u64::MAX,
            rt: DHCP_FIRST_RT_MS,
            lease: None,
            dhcp_dns: Vec::new(),
            seed: seed | 1,
            changed: false,
        }
    }

    /// Whether the configuration changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        core::mem::take(&mut self.changed)
    }

    pub fn config(&self) -> Config {
        let prefix_len = |a: &[u8; 16]| {
            self.on_link
                .iter()
                .filter(|p| covers(p.value.0, p.value.1, a))
                .map(|p| p.value.1)
                .max()
                .unwrap_or(128)
        };
        let mut addresses: Vec<Address> = Vec::new();
        if let Some(l) = &self.lease {
            addresses.push(Address {
                address: l.address,
                prefix_len: prefix_len(&l.address),
                from_dhcp: true,
            });
        }
        for s in &self.slaac {
            if addresses.iter().all(|a| a.address != s.value) {
                addresses.push(Address {
                    address: s.value,
                    prefix_len: prefix_len(&s.value),
                    from_dhcp: false,
                });
            }
        }
        let mut dns = self.dhcp_dns.clone();
        dns.extend(self.ra_dns.iter().filter(|d| !self.dhcp_dns.contains(d)));
        Config {
            addresses,
            router: self.router.map(|r| r.value),
            dns,
        }
    }

    /// A router advertisement arrived.
    pub fn on_advert(&mut self, ra: &RouterAdvert, now: u64) {
        let router = (ra.lifetime_s > 0).then(|| Timed {
            value: ra.router,
            until: now + u64::from(ra.lifetime_s) * 1000,
        });
        if router.map(|r| r.value) != self.router.map(|r| r.value) {
            self.changed = true;
        }
        self.router = router;
        for p in &ra.prefixes {
            // A link-local prefix is not the network's (RFC 4862 §5.5.3).
            if p.prefix[0] == 0xfe && p.prefix[1] & 0xc0 == 0x80 {
                continue;
            }
            let prefix = mask(p.prefix, p.len);
            if p.on_link {
                refresh(&mut self.on_link, (prefix, p.len), until(now, p.valid_s));
            }
            if p.autonomous && p.len == 64 && p.preferred_s <= p.valid_s {
                let address = ndisc::with_interface_id(prefix, self.mac);
                self.changed |= refresh(&mut self.slaac, address, until(now, p.valid_s));
            }
        }
        if !ra.dns.is_empty() && ra.dns != self.ra_dns {
            self.ra_dns = ra.dns.clone();
            self.changed = true;
        }
        match self.phase {
            Phase::Idle | Phase::Informed if ra.managed => self.start(Phase::Soliciting, now),
            Phase::Idle if ra.other => self.start(Phase::Informing, now),
            _ => {}
        }
        // Answered: no more quick solicitations.
        self.rs_sent = self.rs_sent.max(RS_QUICK);
        self.next_rs = u64::MAX;
    }

    fn start(&mut self, phase: Phase, now: u64) {
        self.phase = phase;
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let x = self.seed.to_be_bytes();
        self.xid = [x[0], x[1], x[2]];
        self.exchange_started = now;
        self.next_send = now;
        self.rt = DHCP_FIRST_RT_MS;
    }

    /// A DHCPv6 datagram arrived on the client port.
    pub fn on_dhcp(&mut self, datagram: &[u8], now: u64) {
        let Ok(m) = Message::parse(datagram) else {
            return;
        };
        if m.xid != self.xid || m.client_id != Some(&self.duid[..]) {
            return;
        }
        let Some(server) = m.server_id.map(<[u8]>::to_vec) else {
            return;
        };
        let offered = m
            .ia_na
            .as_ref()
            .filter(|ia| ia.iaid == self.iaid && ia.status == dhcpv6::STATUS_SUCCESS)
            .and_then(|ia| ia.addresses.first().map(|a| (ia, *a)));
        match (&self.phase, m.kind) {
            (Phase::Soliciting, Kind::Advertise) if offered.is_some() => {
                self.start(Phase::Requesting { server, tries: 0 }, now);
            }
            (Phase::Requesting { .. } | Phase::Bound { .. }, Kind::Reply) => match offered {
                Some((ia, a)) => {
                    // T1/T2 of 0 leave the times to the client: half and
                    // four fifths of the preferred lifetime (RFC 8415 §21.4).
                    let preferred = u64::from(a.preferred_s.max(1));
                    let t1 = if ia.t1 > 0 {
                        u64::from(ia.t1)
                    } else {
                        preferred / 2
                    };
                    let t2 = if ia.t2 > 0 {
                        u64::from(ia.t2)
                    } else {
                        preferred * 4 / 5
                    };
                    let lease = Lease {
                        address: a.address,
                        renew_at: now.saturating_add(t1.max(1) * 1000),
                        rebind_at: now.saturating_add(t2.max(t1 + 1) * 1000),
                        valid_until: until(now, a.valid_s),
                    };
                    if self.lease.map(|l| l.address) != Some(a.address) {
                        log::info!("DHCPv6: {} leased", fmt_v6(&a.address));
                        self.changed = true;
                    }
                    self.lease = Some(lease);
                    if m.dns != self.dhcp_dns {
                        self.dhcp_dns = m.dns.clone();
                        self.changed = true;
                    }
                    self.phase = Phase::Bound { server };
                    self.next_send = u64::MAX;
                }
                // NoAddrsAvail and the like: start over.
                None => self.start(Phase::Soliciting, now),
            },
            (Phase::Informing, Kind::Reply) => {
                if m.dns != self.dhcp_dns {
                    self.dhcp_dns = m.dns.clone();
                    self.changed = true;
                }
                self.phase = Phase::Informed;
                self.next_send = u64::MAX;
            }
            _ => {}
        }
    }

    /// Expires what ran out and returns what is due to be sent at `now`.
    pub fn poll(&mut self, now: u64) -> Vec<Send> {
        let mut out = Vec::new();
        self.expire(now);
        if now >= self.next_rs {
            out.push(Send::RouterSolicit);
            self.rs_sent += 1;
            self.next_rs = now
                + if self.rs_sent < RS_QUICK {
                    RS_INTERVAL_MS
                } else {
                    RS_SLOW_INTERVAL_MS
                };
        }
        if let (Phase::Bound { .. }, Some(l)) = (&self.phase, self.lease) {
            if now >= l.renew_at && self.next_send == u64::MAX {
                // Renew (then Rebind from T2) in one exchange.
                self.start(self.phase.clone(), now);
            }
        }
        if now >= self.next_send {
            if let Some(m) = self.message(now) {
                out.push(Send::Dhcp(m));
            }
            self.next_send = now + self.rt;
            self.rt = (self.rt * 2).min(DHCP_MAX_RT_MS);
            if let Phase::Requesting { tries, .. } = &mut self.phase {
                *tries += 1;
                if *tries > REQUEST_TRIES {
                    self.start(Phase::Soliciting, now);
                    self.next_send = now + DHCP_FIRST_RT_MS;
                }
            }
        }
        out
    }

    fn message(&self, now: u64) -> Option<Vec<u8>> {
        let held = self.lease.map(|l| l.address);
        let (kind, server, ia) = match &self.phase {
            Phase::Soliciting => (Kind::Solicit, None, Some((self.iaid, None))),
            Phase::Requesting { server, .. } => {
                (Kind::Request, Some(&server[..]), Some((self.iaid, None)))
            }
            Phase::Bound { server } => match self.lease {
                Some(l) if now < l.rebind_at => {
                    (Kind::Renew, Some(&server[..]), Some((self.iaid, held)))
                }
                _ => (Kind::Rebind, None, Some((self.iaid, held))),
            },
            Phase::Informing => (Kind::InformationRequest, None, None),
            Phase::Idle | Phase::Informed => return None,
        };
        let elapsed = (now.saturating_sub(self.exchange_started) / 10).min(0xffff) as u16;
        Some(
            Request {
                kind,
                xid: self.xid,
                duid: &self.duid,
                elapsed_cs: elapsed,
                server_id: server,
                ia,
            }
            .emit(),
        )
    }

    fn expire(&mut self, now: u64) {
        if self.router.is_some_and(|r| r.until <= now) {
            self.router = None;
            self.changed = true;
        }
        self.on_link.retain(|p| p.until > now);
        let before = self.slaac.len();
        self.slaac.retain(|s| s.until > now);
        self.changed |= self.slaac.len() != before;
        if self.lease.is_some_and(|l| l.valid_until <= now) {
            log::warn!("DHCPv6: lease ran out unrenewed");
            self.lease = None;
            self.changed = true;
            self.start(Phase::Soliciting, now);
        }
    }
}

/// Sets `value`'s expiry, adding it if new; true if it was new.
fn refresh<T: PartialEq + Copy>(list: &mut Vec<Timed<T>>, value: T, until: u64) -> bool {
    match list.iter_mut().find(|t| t.value == value) {
        Some(t) => {
            t.until = until;
            false
        }
        None => {
            // Bounded: a flood of advertised prefixes cannot grow memory.
            if list.len() < 8 {
                list.push(Timed { value, until });
            }
            true
        }
    }
}

fn mask(mut a: [u8; 16], len: u8) -> [u8; 16] {
    for (i, b) in a.iter_mut().enumerate() {
        let keep = (usize::from(len.min(128))).saturating_sub(i * 8).min(8);
        *b &= !(0xffu8.checked_shr(keep as u32).unwrap_or(0));
    }
    a
}

fn covers(prefix: [u8; 16], len: u8, a: &[u8; 16]) -> bool {
    mask(*a, len) == prefix
}

/// An IPv6 address in its RFC 5952 text form.
pub fn fmt_v6(a: &[u8; 16]) -> alloc::string::String {
    use alloc::string::ToString;
    core::net::Ipv6Addr::from(*a).to_string()
}

#[cfg(test)]
mod tests;

//! DHCPv6 messages (RFC 8415) as a client sends and reads them: a type, a
//! 3-byte transaction id, then options (16-bit code and length). rivet asks
//! for one non-temporary address (IA_NA) and the DNS servers; its DUID is
//! DUID-LL from the MAC, as a DUID must stay the same across boots.

use alloc::vec::Vec;

pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;
/// ff02::1:2, all DHCPv6 relay agents and servers.
pub const ALL_SERVERS: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Solicit = 1,
    Advertise = 2,
    Request = 3,
    Renew = 5,
    Rebind = 6,
    Reply = 7,
    InformationRequest = 11,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Solicit,
            2 => Kind::Advertise,
            3 => Kind::Request,
            5 => Kind::Renew,
            6 => Kind::Rebind,
            7 => Kind::Reply,
            11 => Kind::InformationRequest,
            _ => return None,
        })
    }
}

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_ORO: u16 = 6;
const OPT_PREFERENCE: u16 = 7;
const OPT_ELAPSED_TIME: u16 = 8;
const OPT_STATUS_CODE: u16 = 13;
const OPT_DNS_SERVERS: u16 = 23;
/// Status codes that matter to a client.
pub const STATUS_SUCCESS: u16 = 0;
pub const STATUS_NO_ADDRS_AVAIL: u16 = 2;

/// DUID-LL (type 3, hardware type 1: Ethernet) of `mac`.
pub fn duid(mac: [u8; 6]) -> [u8; 10] {
    let mut d = [0, 3, 0, 1, 0, 0, 0, 0, 0, 0];
    d[4..].copy_from_slice(&mac);
    d
}

/// An address the server leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub address: [u8; 16],
    pub preferred_s: u32,
    pub valid_s: u32,
}

/// An IA_NA: the identity association and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    pub iaid: u32,
    /// Seconds until Renew (T1) and Rebind (T2); 0: the client chooses.
    pub t1: u32,
    pub t2: u32,
    pub addresses: Vec<Lease>,
    pub status: u16,
}

/// A message as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: Kind,
    pub xid: [u8; 3],
    pub client_id: Option<&'a [u8]>,
    pub server_id: Option<&'a [u8]>,
    pub ia_na: Option<IaNa>,
    pub status: u16,
    pub preference: u8,
    pub dns: Vec<[u8; 16]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Short,
    UnknownKind(u8),
    /// An option runs past its message or holds less than its type needs.
    BadOption(u16),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The options in `b`: (code, body).
fn options(mut b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Error>> {
    core::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        let (Some(code), Some(len)) = (be16(b, 0), be16(b, 2)) else {
            b = &[];
            return Some(Err(Error::Short));
        };
        let end = 4 + usize::from(len);
        if end > b.len() {
            b = &[];
            return Some(Err(Error::BadOption(code)));
        }
        let body = &b[4..end];
        b = &b[end..];
        Some(Ok((code, body)))
    })
}

fn status_of(body: &[u8]) -> Result<u16, Error> {
    be16(body, 0).ok_or(Error::BadOption(OPT_STATUS_CODE))
}

fn ia_na(body: &[u8]) -> Result<IaNa, Error> {
    let bad = Error::BadOption(OPT_IA_NA);
    let mut ia = IaNa {
        iaid: be32(body, 0).ok_or(bad)?,
        t1: be32(body, 4).ok_or(bad)?,
        t2: be32(body, 8).ok_or(bad)?,
        addresses: Vec::new(),
        status: STATUS_SUCCESS,
    };
    for o in options(&body[12..]) {
        match o? {
            (OPT_IAADDR, a) => {
                let bad = Error::BadOption(OPT_IAADDR);
                let address: [u8; 16] = a.get(..16).ok_or(bad)?.try_into().map_err(|_| bad)?;
                let lease = Lease {
                    address,
                    preferred_s: be32(a, 16).ok_or(bad)?,
                    valid_s: be32(a, 20).ok_or(bad)?,
                };
                // An address whose own status is not success is not leased.
                let mut ok = true;
                for inner in options(&a[24..]) {
                    if let (OPT_STATUS_CODE, s) = inner? {
                        ok = status_of(s)? == STATUS_SUCCESS;
                    }
                }
                if ok && lease.valid_s > 0 {
                    ia.addresses.push(lease);
                }
            }
            (OPT_STATUS_CODE, s) => ia.status = status_of(s)?,
            _ => {}
        }
    }
    Ok(ia)
}

impl<'a> Message<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Message<'a>, Error> {
        if b.len() < 4 {
            return Err(Error::Short);
        }
        let mut m = Message {
            kind: Kind::from_u8(b[0]).ok_or(Error::UnknownKind(b[0]))?,
            xid: [b[1], b[2], b[3]],
            client_id: None,
            server_id: None,
            ia_na: None,
            status: STATUS_SUCCESS,
            preference: 0,
            dns: Vec::new(),
        };
        for o in options(&b[4..]) {
            match o? {
                (OPT_CLIENTID, id) => m.client_id = Some(id),
                (OPT_SERVERID, id) => m.server_id = Some(id),
                // The first IA_NA is the one rivet asked for (it asks one).
                (OPT_IA_NA, body) if m.ia_na.is_none() => m.ia_na = Some(ia_na(body)?),
                (OPT_STATUS_CODE, s) => m.status = status_of(s)?,
                (OPT_PREFERENCE, p) => m.preference = *p.first().unwrap_or(&0),
                (OPT_DNS_SERVERS, list) => m.dns.extend(
                    list.chunks_exact(16)
                        .filter_map(|a| <[u8; 16]>::try_from(a).ok()),
                ),
                _ => {}
            }
        }
        Ok(m)
    }
}

/// What the client puts in a message.
pub struct Request<'a> {
    pub kind: Kind,
    pub xid: [u8; 3],
    pub duid: &'a [u8],
    /// Centiseconds since the exchange began (capped at 0xffff).
    pub elapsed_cs: u16,
    /// Request and Renew name the server that answered.
    pub server_id: Option<&'a [u8]>,
    /// The IA_NA to ask for, with the address held (Request/Renew/Rebind);
    /// `None` for an Information-Request.
    pub ia: Option<(u32, Option<[u8; 16]>)>,
}

fn put(out: &mut Vec<u8>, code: u16, body: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

impl Request<'_> {
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.xid);
        put(&mut out, OPT_CLIENTID, self.duid);
        if let Some(id) = self.server_id {
            put(&mut out, OPT_SERVERID, id);
        }
        put(&mut out, OPT_ELAPSED_TIME, &self.elapsed_cs.to_be_bytes());
        put(&mut out, OPT_ORO, &OPT_DNS_SERVERS.to_be_bytes());
        if let Some((iaid, held)) = self.ia {
            // T1 and T2 zero: the server chooses.
            let mut body = Vec::with_capacity(40);
            body.extend_from_slice(&iaid.to_be_bytes());
            body.extend_from_slice(&[0; 8]);
            if let Some(a) = held {
                let mut addr = a.to_vec();
                addr.extend_from_slice(&[0; 8]);
                put(&mut body, OPT_IAADDR, &addr);
            }
            put(&mut out, OPT_IA_NA, &body);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn a_solicit_is_laid_out_as_rfc_8415_says() {
        let duid = duid(MAC);
        let m = Request {
            kind: Kind::Solicit,
            xid: [0xab, 0xcd, 0xef],
            duid: &duid,
            elapsed_cs: 0,
            server_id: None,
            ia: Some((0x0012_3456, None)),
        }
        .emit();
        #[rustfmt::skip]
        let want = [
            0x01, 0xab, 0xcd, 0xef,
            0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
            0x00, 0x08, 0x00, 0x02, 0x00, 0x00,
            0x00, 0x06, 0x00, 0x02, 0x00, 0x17,
            0x00, 0x03, 0x00, 0x0c, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(m, want);
    }

    #[test]
    fn a_renew_names_the_server_and_the_address_held() {
        let duid = duid(MAC);
        let mut held = [0u8; 16];
        held[..2].copy_from_slice(&[0xfd, 0x00]);
        held[15] = 0x42;
        let m = Request {
            kind: Kind::Renew,
            xid: [1, 2, 3],
            duid: &duid,
            elapsed_cs: 300,
            server_id: Some(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]),
            ia: Some((7, Some(held))),
        }
        .emit();
        let parsed = Message::parse(&m).unwrap();
        assert_eq!(parsed.kind, Kind::Renew);
        assert_eq!(parsed.server_id, Some(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1][..]));
        assert_eq!(&m[m.len() - 28..m.len() - 24], [0, 5, 0, 24], "IAADDR");
        assert_eq!(&m[m.len() - 24..m.len() - 8], held);
    }

    /// A Reply to a Request as dnsmasq lays one out: server DUID-LLT, client id, IA_NA
    /// (IAID 0x123456, T1 1800, T2 2880) with fd00:1::42 (preferred 3600,
    /// valid 3600), DNS server fd00:1::1.
    #[rustfmt::skip]
    const REPLY: [u8; 110] = [
        0x07, 0xab, 0xcd, 0xef,
        0x00, 0x02, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x2e, 0x8b, 0x1c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        0x00, 0x03, 0x00, 0x28, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x07, 0x08, 0x00, 0x00, 0x0b, 0x40,
        0x00, 0x05, 0x00, 0x18,
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
        0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x0e, 0x10,
        0x00, 0x0d, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x17, 0x00, 0x10,
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x00, 0x0e, 0x00, 0x00,
    ];

    #[test]
    fn a_reply_gives_the_lease_and_the_dns_server() {
        let m = Message::parse(&REPLY).unwrap();
        assert_eq!(
            (m.kind, m.xid, m.status),
            (Kind::Reply, [0xab, 0xcd, 0xef], 0)
        );
        assert_eq!(m.client_id, Some(&duid(MAC)[..]));
        assert_eq!(m.server_id.map(<[u8]>::len), Some(14));
        let mut address = [0u8; 16];
        address[..4].copy_from_slice(&[0xfd, 0, 0, 1]);
        address[15] = 0x42;
        let mut dns = address;
        dns[15] = 1;
        assert_eq!(
            m.ia_na,
            Some(IaNa {
                iaid: 0x123456,
                t1: 1800,
                t2: 2880,
                addresses: vec![Lease {
                    address,
                    preferred_s: 3600,
                    valid_s: 3600
                }],
                status: STATUS_SUCCESS,
            })
        );
        assert_eq!(m.dns, vec![dns]);
    }

    #[test]
    fn broken_messages_are_refused_by_what_is_wrong() {
        assert_eq!(Message::parse(&REPLY[..3]), Err(Error::Short));
        let mut unknown = REPLY;
        unknown[0] = 99;
        assert_eq!(Message::parse(&unknown), Err(Error::UnknownKind(99)));
        // The IA_NA says 40 bytes; cut the message inside it.
        assert_eq!(
            Message::parse(&REPLY[..60]),
            Err(Error::BadOption(OPT_IA_NA))
        );
        // An IAADDR too short for its address.
        let mut short = REPLY;
        short[55] = 4;
        assert!(Message::parse(&short).is_err());
    }

    #[test]
    fn an_address_refused_inside_its_ia_is_not_leased() {
        let mut refused = REPLY.to_vec();
        // IAADDR grows by a status option "NoAddrsAvail".
        refused[55] += 6;
        refused[39] += 6;
        let at = 56 + 24;
        refused.splice(at..at, [0x00, 0x0d, 0x00, 0x02, 0x00, 0x02]);
        let m = Message::parse(&refused).unwrap();
        assert_eq!(m.ia_na.unwrap().addresses, vec![]);
    }
}

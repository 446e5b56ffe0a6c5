//! An HTTP server in memory, implementing [`Transport`] with a scripted
//! clock: it serves files (with or without Range support, as one piece or
//! chunked), and misbehaves on cue: refuses connections, answers 5xx, cuts
//! connections after N body bytes, redirects, or never answers.

use super::{ConnId, NetError, NetErrorKind, Transport};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

#[derive(Default)]
struct Conn {
    inbox: Vec<u8>,
    outbox: VecDeque<u8>,
    answered: bool,
    /// Close after the outbox drains.
    closing: bool,
}

#[derive(Default)]
pub struct FakeServer {
    pub now: u64,
    pub files: BTreeMap<String, Vec<u8>>,
    pub ranges: bool,
    pub chunked: bool,
    pub etag: Option<String>,
    /// Body bytes sent on the Nth response before the connection is cut.
    pub cut_after: VecDeque<u64>,
    /// `100 Continue` heads sent before every response's own.
    pub interim: usize,
    /// (N, ETag): after N responses the file's ETag is this one (the file
    /// was replaced on the server).
    pub new_etag: Option<(usize, String)>,
    /// Ranges are served whatever If-Range says (a server that ignores it).
    pub ignore_if_range: bool,
    answered: usize,
    /// Statuses answered (with an empty body) to the first requests; 0:
    /// that request is answered as usual.
    pub fail_with: VecDeque<u16>,
    /// Connections refused before one is accepted.
    pub refuse: u32,
    /// Requests that get no answer at all (the server hangs).
    pub hang: u32,
    /// path → Location
    pub redirects: BTreeMap<String, String>,
    /// Request heads received, in order.
    pub requests: Vec<String>,
    /// (path, body) of POSTs.
    pub posts: Vec<(String, Vec<u8>)>,
    /// Scripted answers (status, JSON body), given to the next requests of
    /// any method before files are looked at: an API server in a test.
    pub answers: VecDeque<(u16, String)>,
    /// Most bytes one recv returns (segmentation).
    pub segment: usize,
    /// Scripted time each recv that returns data takes (a trickling server).
    pub recv_delay_ms: u64,
    /// Hosts a TLS handshake was started with, in order. The connection
    /// stays plaintext here: the record layer is tested in `linux::tls`.
    pub tls_hosts: Vec<String>,
    /// Every handshake fails with this (a certificate the client refuses).
    pub tls_refusal: Option<String>,
    conns: BTreeMap<usize, Conn>,
    next: usize,
}

impl FakeServer {
    /// A server that answers the given (status, body) pairs in order.
    pub fn answering(answers: &[(u16, &str)]) -> FakeServer {
        FakeServer {
            segment: 7_001,
            answers: answers.iter().map(|(s, b)| (*s, b.to_string())).collect(),
            ..Default::default()
        }
    }

    pub fn serving(path: &str, data: Vec<u8>) -> FakeServer {
        let mut s = FakeServer {
            ranges: true,
            segment: 7_001,
            ..Default::default()
        };
        s.files.insert(path.to_string(), data);
        s
    }

    fn respond(&mut self, head: &str, body_in: Vec<u8>) -> (Vec<u8>, bool) {
        let first = head.lines().next().unwrap_or("");
        let mut parts = first.split(' ');
        let (method, path) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("").to_string(),
        );
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
        };
        if let Some((status, body)) = self.answers.pop_front() {
            if method == "POST" {
                self.posts.push((path, body_in));
            }
            return (
                format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
                false,
            );
        }
        if method == "POST" {
            self.posts.push((path, body_in));
            return (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
                false,
            );
        }
        if let Some(status) = self.fail_with.pop_front().filter(|&s| s != 0) {
            return (
                format!("HTTP/1.1 {status} Oops\r\nContent-Length: 0\r\n\r\n").into_bytes(),
                false,
            );
        }
        if let Some(loc) = self.redirects.get(&path) {
            return (
                format!("HTTP/1.1 302 Found\r\nLocation: {loc}\r\nContent-Length: 0\r\n\r\n")
                    .into_bytes(),
                false,
            );
        }
        let Some(data) = self.files.get(&path).cloned() else {
            return (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                false,
            );
        };
        let mut start = 0u64;
        let mut last = data.len().saturating_sub(1) as u64;
        let mut status = "200 OK";
        let interim = "HTTP/1.1 100 Continue\r\n\r\n".repeat(self.interim);
        self.answered += 1;
        let etag = match &self.new_etag {
            Some((after, e)) if self.answered > *after => Some(e.clone()),
            _ => self.etag.clone(),
        };
        let if_range_ok = self.ignore_if_range
            || match (header("If-Range"), &etag) {
                (Some(v), Some(e)) => &v == e,
                (Some(_), None) => false,
                (None, _) => true,
            };
        if let (true, true, Some(r)) = (self.ranges, if_range_ok, header("Range")) {
            let (from, to) = r
                .trim_start_matches("bytes=")
                .split_once('-')
                .unwrap_or(("0", ""));
            start = from.parse().unwrap_or(0);
            if let Ok(to) = to.parse::<u64>() {
                last = last.min(to);
            }
            status = "206 Partial Content";
        }
        let body = &data[start as usize..=last as usize];
        let mut out = format!("{interim}HTTP/1.1 {status}\r\n");
        if let Some(e) = &etag {
            out += &format!("ETag: {e}\r\n");
        }
        if status.starts_with("206") {
            out += &format!("Content-Range: bytes {start}-{last}/{}\r\n", data.len());
        }
        let cut = self.cut_after.pop_front();
        let mut bytes;
        if self.chunked {
            out += "Transfer-Encoding: chunked\r\n\r\n";
            bytes = out.into_bytes();
            for piece in body.chunks(3000) {
                bytes.extend(format!("{:x};x=y\r\n", piece.len()).as_bytes());
                bytes.extend_from_slice(piece);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        } else {
            out += &format!("Content-Length: {}\r\n\r\n", body.len());
            let head_len = out.len();
            bytes = out.into_bytes();
            bytes.extend_from_slice(body);
            if let Some(n) = cut {
                bytes.truncate(head_len + n as usize);
                return (bytes, true);
            }
        }
        (bytes, cut.is_some())
    }
}

impl Transport for FakeServer {
    fn now_ms(&mut self) -> u64 {
        self.now
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.now += ms;
    }
    fn connect(&mut self, host: &str, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        self.now += 1;
        if host == "unresolvable.invalid" {
            return Err(NetError::new(
                NetErrorKind::Dns,
                format!("cannot resolve {host}"),
            ));
        }
        if self.refuse > 0 {
            self.refuse -= 1;
            let _ = timeout_ms;
            return Err(NetError::new(
                NetErrorKind::Refused,
                format!("connection to {host}:{port} refused"),
            ));
        }
        self.next += 1;
        self.conns.insert(self.next, Conn::default());
        Ok(ConnId(self.next))
    }
    fn send(&mut self, conn: ConnId, data: &[u8], _timeout_ms: u64) -> Result<(), NetError> {
        let c = self
            .conns
            .get_mut(&conn.0)
            .ok_or_else(|| NetError::new(NetErrorKind::Reset, "no such connection"))?;
        c.inbox.extend_from_slice(data);
        let Some(end) = c.inbox.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&c.inbox[..end + 4]).into_owned();
        let body_len: usize = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        if c.answered || c.inbox.len() < end + 4 + body_len {
            return Ok(());
        }
        c.answered = true;
        let body = c.inbox[end + 4..end + 4 + body_len].to_vec();
        self.requests.push(head.clone());
        if self.hang > 0 {
            self.hang -= 1;
            return Ok(());
        }
        let (response, cut) = self.respond(&head, body);
        let c = self.conns.get_mut(&conn.0).expect("checked above");
        c.outbox.extend(response);
        c.closing = cut;
        Ok(())
    }
    fn recv(&mut self, conn: ConnId, buf: &mut [u8], timeout_ms: u64) -> Result<usize, NetError> {
        let segment = self.segment.max(1);
        let c = self
            .conns
            .get_mut(&conn.0)
            .ok_or_else(|| NetError::new(NetErrorKind::Reset, "no such connection"))?;
        if c.outbox.is_empty() {
            if c.closing {
                return Ok(0);
            }
            self.now += timeout_ms;
            return Err(NetError::new(
                NetErrorKind::Timeout,
                format!("no data for {timeout_ms} ms"),
            ));
        }
        let n = buf.len().min(c.outbox.len()).min(segment);
        self.now += self.recv_delay_ms;
        for (i, b) in c.outbox.drain(..n).enumerate() {
            buf[i] = b;
        }
        if c.outbox.is_empty() && c.answered {
            c.closing = true; // Connection: close semantics after the response
        }
        Ok(n)
    }
    fn close(&mut self, conn: ConnId) {
        self.conns.remove(&conn.0);
    }
    fn start_tls(&mut self, conn: ConnId, host: &str, _timeout_ms: u64) -> Result<(), NetError> {
        if !self.conns.contains_key(&conn.0) {
            return Err(NetError::new(NetErrorKind::Reset, "no such connection"));
        }
        self.tls_hosts.push(host.to_string());
        match &self.tls_refusal {
            Some(why) => Err(NetError::new(
                NetErrorKind::Tls,
                format!("TLS with {host}: {why}"),
            )),
            None => Ok(()),
        }
    }
}

/// A network that swallows every frame: connections never complete their
/// handshake. Time is scripted: each wait advances the clock.
pub struct Silent {
    pub sent: usize,
}

pub struct SilentTx<'a>(&'a mut usize);

impl smoltcp::phy::TxToken for SilentTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        *self.0 += 1;
        f(&mut alloc::vec![0u8; len])
    }
}

impl smoltcp::phy::RxToken for SilentTx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&[])
    }
}

impl smoltcp::phy::Device for Silent {
    type RxToken<'a> = SilentTx<'a>;
    type TxToken<'a> = SilentTx<'a>;

    fn receive(&mut self, _t: smoltcp::time::Instant) -> Option<(SilentTx<'_>, SilentTx<'_>)> {
        None
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<SilentTx<'_>> {
        Some(SilentTx(&mut self.sent))
    }

    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        let mut caps = smoltcp::phy::DeviceCapabilities::default();
        caps.medium = smoltcp::phy::Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

impl super::stack::Link for Silent {}

/// A link that records every frame sent, hands the stack the frames put
/// in `inbox`, and can be told a bond failed over.
#[derive(Default)]
pub struct Recorder {
    pub sent: alloc::vec::Vec<alloc::vec::Vec<u8>>,
    pub inbox: alloc::collections::VecDeque<alloc::vec::Vec<u8>>,
    pub fail_over: bool,
}

pub struct RecorderTx<'a>(&'a mut alloc::vec::Vec<alloc::vec::Vec<u8>>);
pub struct RecorderRx(alloc::vec::Vec<u8>);

impl smoltcp::phy::TxToken for RecorderTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = alloc::vec![0u8; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl smoltcp::phy::RxToken for RecorderRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::Device for Recorder {
    type RxToken<'a> = RecorderRx;
    type TxToken<'a> = RecorderTx<'a>;

    fn receive(&mut self, _t: smoltcp::time::Instant) -> Option<(RecorderRx, RecorderTx<'_>)> {
        let frame = self.inbox.pop_front()?;
        Some((RecorderRx(frame), RecorderTx(&mut self.sent)))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<RecorderTx<'_>> {
        Some(RecorderTx(&mut self.sent))
    }

    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        let mut caps = smoltcp::phy::DeviceCapabilities::default();
        caps.medium = smoltcp::phy::Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

impl super::stack::Link for Recorder {
    fn failed_over(&mut self) -> bool {
        core::mem::take(&mut self.fail_over)
    }
}

/// A clock that only moves when the stack waits.
#[derive(Default)]
pub struct ScriptedWait {
    pub now: u64,
}

impl super::stack::Wait for ScriptedWait {
    fn now_ms(&mut self) -> u64 {
        self.now
    }
    fn wait(&mut self, ms: u64) {
        self.now += ms.max(1);
    }
}

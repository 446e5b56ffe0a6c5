//! Networking above the wire formats: a transport abstraction (TCP
//! connections with deadlines, a clock), and the HTTP client that streams
//! images over it with resume, redirects and retries. The smoltcp stack over
//! a raw NIC (`linux::packet`) implements [`Transport`]; so does an
//! in-memory server for tests ([`testing`]).

pub mod client;
pub mod dad;
pub mod ipv6;
pub mod listener;
pub mod record;
pub mod server;
pub mod stack;
pub mod testing;
pub mod url;

#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::String;
use core::fmt;

/// A connection handle handed out by a [`Transport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetErrorKind {
    /// Name resolution failed.
    Dns,
    /// Connection refused or reset during connect.
    Refused,
    /// A deadline passed.
    Timeout,
    /// The connection broke while in use.
    Reset,
    /// The TLS handshake failed: the certificate, the protocol version.
    /// Trying again would fail the same way.
    Tls,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    pub kind: NetErrorKind,
    pub message: String,
}

impl NetError {
    pub fn new(kind: NetErrorKind, message: impl Into<String>) -> NetError {
        NetError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// TCP connections and time. Timeouts are durations in milliseconds; the
/// transport measures them on its own clock ([`Transport::now_ms`]), which
/// tests script.
pub trait Transport {
    fn now_ms(&mut self) -> u64;
    /// Waits (backoff between retries), keeping the network serviced.
    fn sleep_ms(&mut self, ms: u64);
    fn connect(&mut self, host: &str, port: u16, timeout_ms: u64) -> Result<ConnId, NetError>;
    fn send(&mut self, conn: ConnId, data: &[u8], timeout_ms: u64) -> Result<(), NetError>;
    /// Returns at least one byte, or 0 when the peer closed cleanly.
    fn recv(&mut self, conn: ConnId, buf: &mut [u8], timeout_ms: u64) -> Result<usize, NetError>;
    fn close(&mut self, conn: ConnId);
    /// Waits up to `timeout_ms` for a peer to connect to `port`. A listener
    /// left waiting stays open for the next call on the same port.
    fn accept(&mut self, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        let _ = timeout_ms;
        Err(NetError::new(
            NetErrorKind::Other,
            format!("port {port}: this transport takes no connections"),
        ))
    }
    /// Ends `conn` gracefully: what was sent is delivered, then the FIN
    /// (`close` resets). Default: `close`.
    fn finish(&mut self, conn: ConnId, timeout_ms: u64) -> Result<(), NetError> {
        let _ = timeout_ms;
        self.close(conn);
        Ok(())
    }
    /// Runs a TLS handshake on `conn` with `host` (the name checked against
    /// the certificate); later sends and receives are encrypted.
    fn start_tls(&mut self, conn: ConnId, host: &str, timeout_ms: u64) -> Result<(), NetError> {
        let _ = (conn, timeout_ms);
        Err(NetError::new(
            NetErrorKind::Tls,
            format!("https://{host}: this transport has no TLS client"),
        ))
    }
}

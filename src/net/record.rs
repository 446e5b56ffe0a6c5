//! A record layer between a TCP connection and HTTP (TLS, in practice).
//! The no_std core moves bytes through it without knowing the protocol;
//! `linux::tls` implements it with rustls. [`TlsTransport`] puts it under
//! the HTTP client: a [`Transport`] whose connections can be upgraded with
//! [`Transport::start_tls`].

use super::{ConnId, NetError, NetErrorKind, Transport};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

pub trait Secure: Send {
    /// Takes bytes received from the peer. An error ends the connection
    /// (a failed handshake, a forged record).
    fn receive(&mut self, wire: &[u8]) -> Result<(), String>;
    /// Appends the plaintext decrypted so far.
    fn plaintext(&mut self, out: &mut Vec<u8>);
    /// Queues plaintext for the peer.
    fn send(&mut self, plain: &[u8]);
    /// Queues the closing alert.
    fn close(&mut self);
    /// Appends the bytes waiting for the wire.
    fn outgoing(&mut self, wire: &mut Vec<u8>);
    /// The handshake is still under way.
    fn handshaking(&self) -> bool;
}

/// Makes the record layer of each accepted connection.
pub type SecureFactory = Box<dyn FnMut() -> Box<dyn Secure> + Send>;

/// Makes the record layer of an outgoing connection to `host`: the name
/// sent as SNI and checked against the server's certificate.
pub type Connector = Box<dyn FnMut(&str) -> Result<Box<dyn Secure>, String> + Send>;

/// The largest TLS record, with its header and overhead.
const RECORD: usize = 16 * 1024 + 512;

struct Session {
    layer: Box<dyn Secure>,
    /// Decrypted bytes not yet handed out, from `read`.
    plain: Vec<u8>,
    read: usize,
}

/// `inner`'s connections, with TLS for those the client upgrades. Derefs
/// to `inner` for everything that is not a client connection (serving,
/// idling, the lease).
pub struct TlsTransport<T> {
    inner: T,
    connector: Option<Connector>,
    sessions: BTreeMap<ConnId, Session>,
    wire: Vec<u8>,
}

impl<T: Transport> TlsTransport<T> {
    /// Without a connector, `start_tls` fails with a clear error.
    pub fn new(inner: T, connector: Option<Connector>) -> TlsTransport<T> {
        TlsTransport {
            inner,
            connector,
            sessions: BTreeMap::new(),
            wire: vec![0u8; RECORD],
        }
    }

    /// Sends what the record layer has queued.
    fn flush(inner: &mut T, layer: &mut dyn Secure, conn: ConnId, ms: u64) -> Result<(), NetError> {
        let mut out = Vec::new();
        layer.outgoing(&mut out);
        if out.is_empty() {
            return Ok(());
        }
        inner.send(conn, &out, ms)
    }

    fn handshake(
        &mut self,
        conn: ConnId,
        host: &str,
        layer: &mut dyn Secure,
        timeout_ms: u64,
    ) -> Result<(), NetError> {
        let deadline = self.inner.now_ms() + timeout_ms;
        loop {
            let left = deadline.saturating_sub(self.inner.now_ms()).max(1);
            Self::flush(&mut self.inner, layer, conn, left)?;
            if !layer.handshaking() {
                return Ok(());
            }
            let n = self
                .inner
                .recv(conn, &mut self.wire, left)
                .map_err(|e| NetError::new(e.kind, format!("TLS handshake with {host}: {e}")))?;
            if n == 0 {
                return Err(NetError::new(
                    NetErrorKind::Reset,
                    format!("{host} closed the connection during the TLS handshake"),
                ));
            }
            if let Err(e) = layer.receive(&self.wire[..n]) {
                // The alert saying why goes to the server before the close.
                let _ = Self::flush(&mut self.inner, layer, conn, 1_000);
                return Err(NetError::new(
                    NetErrorKind::Tls,
                    format!("TLS with {host}: {e}"),
                ));
            }
        }
    }
}

impl<T> core::ops::Deref for TlsTransport<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> core::ops::DerefMut for TlsTransport<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: Transport> Transport for TlsTransport<T> {
    fn now_ms(&mut self) -> u64 {
        self.inner.now_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        self.inner.sleep_ms(ms)
    }

    fn connect(&mut self, host: &str, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        let conn = self.inner.connect(host, port, timeout_ms)?;
        // A handle may be reused after a close: never inherit a session.
        self.sessions.remove(&conn);
        Ok(conn)
    }

    fn start_tls(&mut self, conn: ConnId, host: &str, timeout_ms: u64) -> Result<(), NetError> {
        let connector = self.connector.as_mut().ok_or_else(|| {
            NetError::new(
                NetErrorKind::Tls,
                format!("https://{host}: this transport has no TLS client"),
            )
        })?;
        let mut layer = connector(host)
            .map_err(|e| NetError::new(NetErrorKind::Tls, format!("TLS with {host}: {e}")))?;
        self.handshake(conn, host, layer.as_mut(), timeout_ms)?;
        let mut plain = Vec::new();
        layer.plaintext(&mut plain);
        self.sessions.insert(
            conn,
            Session {
                layer,
                plain,
                read: 0,
            },
        );
        Ok(())
    }

    fn send(&mut self, conn: ConnId, data: &[u8], timeout_ms: u64) -> Result<(), NetError> {
        match self.sessions.get_mut(&conn) {
            None => self.inner.send(conn, data, timeout_ms),
            Some(s) => {
                s.layer.send(data);
                Self::flush(&mut self.inner, s.layer.as_mut(), conn, timeout_ms)
            }
        }
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8], timeout_ms: u64) -> Result<usize, NetError> {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return self.inner.recv(conn, buf, timeout_ms);
        };
        loop {
            if s.read < s.plain.len() {
                let n = buf.len().min(s.plain.len() - s.read);
                buf[..n].copy_from_slice(&s.plain[s.read..s.read + n]);
                s.read += n;
                if s.read == s.plain.len() {
                    s.plain.clear();
                    s.read = 0;
                }
                return Ok(n);
            }
            // A truncation without close_notify is left to HTTP's framing
            // (Content-Length, chunks), which the client checks anyway.
            let n = self.inner.recv(conn, &mut self.wire, timeout_ms)?;
            if n == 0 {
                return Ok(0);
            }
            s.layer
                .receive(&self.wire[..n])
                .map_err(|e| NetError::new(NetErrorKind::Reset, format!("TLS: {e}")))?;
            s.layer.plaintext(&mut s.plain);
            // Key updates and alerts the layer wants answered.
            Self::flush(&mut self.inner, s.layer.as_mut(), conn, timeout_ms)?;
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(mut s) = self.sessions.remove(&conn) {
            s.layer.close();
            let _ = Self::flush(&mut self.inner, s.layer.as_mut(), conn, 200);
        }
        self.inner.close(conn)
    }

    /// Plain TCP (accepted connections have no TLS session).
    fn accept(&mut self, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        let conn = self.inner.accept(port, timeout_ms)?;
        self.sessions.remove(&conn);
        Ok(conn)
    }

    fn finish(&mut self, conn: ConnId, timeout_ms: u64) -> Result<(), NetError> {
        if let Some(mut s) = self.sessions.remove(&conn) {
            s.layer.close();
            Self::flush(&mut self.inner, s.layer.as_mut(), conn, timeout_ms)?;
        }
        self.inner.finish(conn, timeout_ms)
    }
}

//! TLS with rustls. The agent API's side is in [`agent`], the cryptography
//! both sides use in [`provider`]. Here: the client side, for https URLs
//! (servers verified against a CA bundle, the one `rivet mkinitramfs
//! --ca-bundle` carries, or not at all when asked), and the record layer
//! [`Secure`] both give to rivet's own TCP connections.

mod agent;
mod ec;
pub mod provider;

pub use agent::AgentTls;

use crate::net::record::{Connector, Secure};
use crate::wire::anchors::{self, Anchor, Anchors};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::{CertificateError, ClientConnection, Connection};
use std::io::{Read, Write};
use std::sync::Arc;

/// Where rivet looks for CA certificates on a host (Debian's bundle), and
/// what `rivet mkinitramfs` carries by default.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where `rivet mkinitramfs` puts the bundle's trust anchors
/// ([`crate::wire::anchors`]: the bundle less what a client never reads).
pub const CA_ANCHORS: &str = "/etc/ssl/certs/rivet-trust-anchors";

/// What PID 1 checks https servers against unless told otherwise: the
/// initramfs's trust anchors, else a PEM bundle where Debian keeps it.
pub fn default_bundle() -> &'static str {
    if std::path::Path::new(CA_ANCHORS).exists() {
        CA_ANCHORS
    } else {
        CA_BUNDLE
    }
}

/// A PEM bundle's CA certificates as a trust-anchor file, with how many
/// anchors it holds and how many certificates could not be used.
pub fn anchors_from_pem(pem: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{e}"))?;
    let usable: Vec<_> = certs
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    let (file, too_big) = anchors::encode(usable.iter().map(|a| Anchor {
        subject: &a.subject,
        spki: &a.subject_public_key_info,
        name_constraints: a.name_constraints.as_deref(),
    }));
    let kept = usable.len() - too_big;
    Ok((file, kept, certs.len() - kept))
}

/// How the client checks the servers it connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Against the CA certificates in this PEM file.
    Bundle(String),
    /// Not at all (`ipa-insecure=1`): encrypted, but anyone can answer.
    Insecure,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(provider::provider())
}

/// Reads the CA certificates of a PEM bundle.
fn roots(bundle: &str) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(bundle).map_err(|e| format!("CA bundle {bundle}: {e}"))?;
    let mut store = rustls::RootCertStore::empty();
    if pem.starts_with(anchors::MAGIC) {
        let file = Anchors::new_checked(&pem).map_err(|e| format!("CA bundle {bundle}: {e}"))?;
        store.roots.extend(file.iter().map(|a| TrustAnchor {
            subject: a.subject.to_vec().into(),
            subject_public_key_info: a.spki.to_vec().into(),
            name_constraints: a.name_constraints.map(|n| n.to_vec().into()),
        }));
        if store.roots.is_empty() {
            return Err(format!("CA bundle {bundle}: no trust anchor in it"));
        }
        log::info!("TLS: {} CA trust anchors from {bundle}", store.roots.len());
        return Ok(store);
    }
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA bundle {bundle}: {e}"))?;
    let (added, ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("CA bundle {bundle}: no usable CA certificate"));
    }
    log::info!("TLS: {added} CA certificates from {bundle} ({ignored} unusable)");
    Ok(store)
}

fn client_config(verify: &Verify) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?;
    let config = match verify {
        Verify::Bundle(path) => builder
            .with_root_certificates(roots(path)?)
            .with_no_client_auth(),
        Verify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The TLS client for `TlsTransport`. The bundle is read at the first
/// https connection, so plain-HTTP deploys never pay for it.
pub fn connector(verify: Verify) -> Connector {
    let mut config: Option<Result<Arc<rustls::ClientConfig>, String>> = None;
    if verify == Verify::Insecure {
        log::warn!(
            "TLS: server certificates are NOT verified (insecure mode): \
             anyone on the path can serve the image and the API"
        );
    }
    Box::new(move |host: &str| -> Result<Box<dyn Secure>, String> {
        let cfg = config
            .get_or_insert_with(|| client_config(&verify))
            .clone()?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("'{host}' is not a host name or an IP address"))?;
        let conn = ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
        let bundle = match &verify {
            Verify::Bundle(path) => Some(path.clone()),
            Verify::Insecure => None,
        };
        Ok(Box::new(Record::new(
            conn.into(),
            bundle,
            Some(host.to_string()),
        )))
    })
}

/// `ipa-insecure=1`: any certificate is taken, but the handshake's
/// signatures are still checked, as `curl -k` does.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One TLS connection, either side.
struct Record {
    conn: Option<Connection>,
    /// The client's CA bundle, named when a certificate is not trusted.
    bundle: Option<String>,
    /// The server, until the handshake's outcome has been told (clients).
    announce: Option<String>,
}

/// Logs a client handshake's version and suite, once per server and
/// outcome (lookups and heartbeats connect again and again).
fn announce(host: &str, conn: &Connection) {
    static TOLD: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let (Some(version), Some(suite)) = (conn.protocol_version(), conn.negotiated_cipher_suite())
    else {
        return;
    };
    let line = format!("TLS: {version:?} {:?} with {host}", suite.suite());
    let mut told = TOLD.lock().unwrap_or_else(|e| e.into_inner());
    if !told.contains(&line) {
        log::info!("{line}");
        told.push(line);
    }
}

impl Record {
    fn new(mut conn: Connection, bundle: Option<String>, announce: Option<String>) -> Record {
        // rustls holds at most 64 KiB of plaintext by default and refuses
        // the rest; callers here queue whole answers (logs run to MBs) and
        // drain them as the socket allows.
        conn.set_buffer_limit(None);
        Record {
            conn: Some(conn),
            bundle,
            announce,
        }
    }

    fn broken() -> Record {
        Record {
            conn: None,
            bundle: None,
            announce: None,
        }
    }

    /// rustls's reason, with what to do about the common one.
    fn explain(&self, e: rustls::Error) -> String {
        match (&e, &self.bundle) {
            (rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer), Some(bundle)) => {
                format!(
                    "the server's certificate is not signed by a CA in {bundle} ({e}); \
                 carry its CA with `rivet mkinitramfs --ca-bundle FILE`"
                )
            }
            _ => e.to_string(),
        }
    }
}

impl Secure for Record {
    fn receive(&mut self, mut wire: &[u8]) -> Result<(), String> {
        let conn = self.conn.as_mut().ok_or("no TLS session")?;
        while !wire.is_empty() {
            conn.read_tls(&mut wire).map_err(|e| e.to_string())?;
            if let Err(e) = conn.process_new_packets() {
                return Err(self.explain(e));
            }
        }
        if !conn.is_handshaking() {
            if let Some(host) = self.announce.take() {
                announce(&host, conn);
            }
        }
        Ok(())
    }

    fn plaintext(&mut self, out: &mut Vec<u8>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        // WouldBlock (nothing more yet) and a clean close both end the loop.
        while let Ok(n) = conn.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn send(&mut self, plain: &[u8]) {
        if let Some(conn) = self.conn.as_mut() {
            // Unbounded (see `new`): this cannot fail.
            let _ = conn.writer().write_all(plain);
        }
    }

    fn close(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.send_close_notify();
        }
    }

    fn outgoing(&mut self, wire: &mut Vec<u8>) {
        if let Some(conn) = self.conn.as_mut() {
            while conn.wants_write() {
                if conn.write_tls(wire).is_err() {
                    break;
                }
            }
        }
    }

    fn handshaking(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.is_handshaking())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::record::SecureFactory;
    use std::time::SystemTime;

    /// An in-memory TCP peer running `AgentTls`'s server record layer and
    /// answering every request with `body`.
    struct Loopback {
        factory: SecureFactory,
        server: Option<Box<dyn Secure>>,
        request: Vec<u8>,
        to_client: Vec<u8>,
        body: Vec<u8>,
        now: u64,
    }

    impl crate::net::Transport for Loopback {
        fn now_ms(&mut self) -> u64 {
            self.now
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.now += ms;
        }
        fn connect(&mut self, _: &str, _: u16, _: u64) -> Result<ConnId, NetError> {
            self.server = Some((self.factory)());
            self.request.clear();
            self.to_client.clear();
            Ok(ConnId(1))
        }
        fn send(&mut self, _: ConnId, data: &[u8], _: u64) -> Result<(), NetError> {
            let server = self.server.as_mut().unwrap();
            server
                .receive(data)
                .map_err(|e| NetError::new(NetErrorKind::Reset, e))?;
            server.plaintext(&mut self.request);
            if self.request.ends_with(b"\r\n\r\n") {
                self.request.clear();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    self.body.len()
                );
                server.send(head.as_bytes());
                server.send(&self.body);
            }
            server.outgoing(&mut self.to_client);
            Ok(())
        }
        fn recv(&mut self, _: ConnId, buf: &mut [u8], _: u64) -> Result<usize, NetError> {
            if self.to_client.is_empty() {
                return Err(NetError::new(NetErrorKind::Timeout, "nothing to read"));
            }
            let n = buf.len().min(self.to_client.len()).min(1500);
            buf[..n].copy_from_slice(&self.to_client[..n]);
            self.to_client.drain(..n);
            Ok(n)
        }
        fn close(&mut self, _: ConnId) {
            self.server = None;
        }
    }

    use crate::net::client::{Download, Policy};
    use crate::net::record::TlsTransport;
    use crate::net::{ConnId, NetError, NetErrorKind};

    fn serving(ip: &str, body: Vec<u8>) -> (Loopback, String) {
        // Distinct names: a bundle CA of the same name would be tried and
        // fail as BadSignature rather than UnknownIssuer.
        let cn = format!("test {}", random_u32());
        let tls =
            AgentTls::generate(ip.parse().unwrap(), &cn, None, None, SystemTime::now()).unwrap();
        let lb = Loopback {
            factory: tls.factory(),
            server: None,
            request: Vec::new(),
            to_client: Vec::new(),
            body,
            now: 0,
        };
        (lb, tls.pem)
    }

    fn random_u32() -> u32 {
        let mut b = [0u8; 4];
        crate::linux::sys::random(&mut b);
        u32::from_le_bytes(b)
    }

    fn bundle(name: &str, pem: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("rivet-tls-{}-{name}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn get(t: &mut TlsTransport<Loopback>, url: &str) -> Result<Vec<u8>, String> {
        let policy = Policy {
            retries: 0,
            ..Policy::default()
        };
        let (status, body) = crate::net::client::exchange(t, "GET", url, &[], None, policy)
            .map_err(|e| e.to_string())?;
        assert_eq!(status, 200);
        Ok(body)
    }

    #[test]
    fn client_verifies_the_server_against_the_bundle() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (lb, pem) = serving("127.0.0.1", body.clone());
        let path = bundle("good", &pem);
        let mut t = TlsTransport::new(lb, Some(connector(Verify::Bundle(path.clone()))));
        assert_eq!(get(&mut t, "https://127.0.0.1/x").unwrap(), body);
        // A streamed download over many records, through the same client.
        let mut d = Download::start(&mut t, "https://127.0.0.1/image", Policy::default()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            let n = embedded_io::Read::read(&mut d, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, body);
        drop(d);

        // The same check with the CA as rivet mkinitramfs carries it.
        let (lb, pem) = serving("127.0.0.1", b"via anchors".to_vec());
        let (anchors, kept, unusable) = anchors_from_pem(pem.as_bytes()).unwrap();
        assert_eq!((kept, unusable), (1, 0));
        let anchors_path = bundle("anchors", "");
        std::fs::write(&anchors_path, &anchors).unwrap();
        let mut t = TlsTransport::new(lb, Some(connector(Verify::Bundle(anchors_path.clone()))));
        assert_eq!(get(&mut t, "https://127.0.0.1/x").unwrap(), b"via anchors");

        // The bundle holds another CA: refused, naming the host and the bundle.
        let (lb, _) = serving("127.0.0.1", b"x".to_vec());
        let (_, other) = serving("127.0.0.1", Vec::new());
        let other_path = bundle("other", &other);
        let mut t = TlsTransport::new(lb, Some(connector(Verify::Bundle(other_path.clone()))));
        let err = get(&mut t, "https://127.0.0.1/x").unwrap_err();
        assert!(err.contains("TLS with 127.0.0.1"), "{err}");
        assert!(
            err.contains(&format!("not signed by a CA in {other_path}")),
            "{err}"
        );

        // Insecure takes it anyway.
        let (lb, _) = serving("127.0.0.1", b"ok".to_vec());
        let mut t = TlsTransport::new(lb, Some(connector(Verify::Insecure)));
        assert_eq!(get(&mut t, "https://127.0.0.1/x").unwrap(), b"ok");

        // The right CA, but the certificate names another address.
        let (lb, pem) = serving("10.0.0.9", b"x".to_vec());
        let path9 = bundle("nine", &pem);
        let mut t = TlsTransport::new(lb, Some(connector(Verify::Bundle(path9.clone()))));
        let err = get(&mut t, "https://127.0.0.1/x").unwrap_err();
        assert!(err.contains("not valid for"), "{err}");

        // No bundle at all: said before any handshake.
        let (lb, _) = serving("127.0.0.1", b"x".to_vec());
        let mut t = TlsTransport::new(
            lb,
            Some(connector(Verify::Bundle("/nonexistent/ca.pem".into()))),
        );
        let err = get(&mut t, "https://127.0.0.1/x").unwrap_err();
        assert!(err.contains("CA bundle /nonexistent/ca.pem"), "{err}");
        for p in [path, other_path, path9, anchors_path] {
            let _ = std::fs::remove_file(p);
        }
    }
}

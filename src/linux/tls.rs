//! TLS with rustls. The agent API's side: the self-signed certificate
//! ironic-python-agent's auto-TLS makes (EC P-384 key, SubjectAltName = the
//! advertised IP, critical; valid from an hour ago for 30 days). The client
//! side, for https URLs: servers verified against a CA bundle (the one
//! `rivet mkinitramfs --ca-bundle` carries), or not at all when asked.
//! Both give the record layer [`Secure`] to rivet's own TCP connections.

use crate::net::secure::{Connector, Secure, SecureFactory};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConnection, Connection, ServerConnection};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long the certificate lasts and how much clock skew it allows, as
/// ironic-python-agent's defaults (`auto_tls_allowed_clock_skew` = 3600 s).
const VALID_DAYS: u64 = 30;
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The agent's certificate and the server configuration built on it.
pub struct AgentTls {
    /// The certificate in PEM, sent to the conductor as `agent_verify_ca`.
    pub pem: String,
    config: Arc<rustls::ServerConfig>,
}

/// Which protocol versions the lookup's `tls_min_version` allows.
fn versions(
    min: Option<&str>,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], String> {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        None | Some("1.2") => Ok(&BOTH),
        Some("1.3") => Ok(&ONLY_13),
        Some(v) => Err(format!("tls_min_version {v}: rivet speaks TLS 1.2 and 1.3")),
    }
}

impl AgentTls {
    /// Generates the key (from the kernel's blocking getrandom) and the
    /// certificate for `ip`, valid around `now`.
    pub fn generate(
        ip: IpAddr,
        common_name: &str,
        min_version: Option<&str>,
        cipher_suites: Option<&str>,
        now: SystemTime,
    ) -> Result<AgentTls, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .map_err(|e| format!("generating the TLS key: {e}"))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.subject_alt_names = vec![rcgen::SanType::IpAddress(ip)];
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = (now + Duration::from_secs(VALID_DAYS * 86_400)).into();
        let mut serial = [0u8; 16];
        super::sys::random(&mut serial);
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("signing the TLS certificate: {e}"))?;
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let private = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| format!("the TLS key: {e}"))?;
        let mut server_provider = rustls::crypto::ring::default_provider();
        if let Some(list) = cipher_suites {
            server_provider.cipher_suites = suites(list);
        }
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(server_provider))
            .with_protocol_versions(versions(min_version)?)
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| format!("TLS certificate: {e}"))?;
        Ok(AgentTls {
            pem: cert.pem(),
            config: Arc::new(config),
        })
    }

    /// A record layer per accepted connection, for `Listener::secure`.
    pub fn factory(&self) -> SecureFactory {
        let config = self.config.clone();
        Box::new(move || -> Box<dyn Secure> {
            match ServerConnection::new(config.clone()) {
                Ok(c) => Box::new(Record::new(c.into(), None)),
                Err(e) => {
                    log::error!("TLS: {e}");
                    Box::new(Record::broken())
                }
            }
        })
    }
}

/// OpenSSL's names of the TLS 1.2 suites rustls has, with the IANA names.
const OPENSSL_NAMES: &[(&str, &str)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The suites the lookup's `tls_cipher_suites` allows. As with OpenSSL's
/// cipher string, it names TLS 1.2 suites (OpenSSL or IANA names); TLS 1.3
/// suites stay unless the list names some (IANA names, `TLS_AES_…`).
/// Names rustls lacks are skipped with a warning.
fn suites(list: &str) -> Vec<rustls::SupportedCipherSuite> {
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    let iana = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
    let mut wanted = Vec::new();
    for name in list.split(':').map(str::trim).filter(|n| !n.is_empty()) {
        let name = OPENSSL_NAMES
            .iter()
            .find(|(o, _)| *o == name)
            .map_or(name.to_string(), |(_, i)| i.to_string());
        // rustls calls the TLS 1.3 suites TLS13_…, IANA TLS_AES_… and
        // TLS_CHACHA20_POLY1305_SHA256.
        let name = match name.strip_prefix("TLS_") {
            Some(rest) if rest.starts_with("AES_") || rest.starts_with("CHACHA20_") => {
                format!("TLS13_{rest}")
            }
            _ => name,
        };
        match all.iter().find(|s| iana(s) == name) {
            Some(s) => wanted.push(*s),
            None => log::warn!("tls_cipher_suites: {name} is not a suite rivet has; skipped"),
        }
    }
    let names_13 = wanted
        .iter()
        .any(|s| s.version() == &rustls::version::TLS13);
    let mut out: Vec<_> = all
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13 && !names_13)
        .copied()
        .collect();
    // Never empty: without a TLS 1.3 name every TLS 1.3 suite stays.
    out.extend(wanted);
    out
}

/// Where rivet looks for CA certificates: Debian's bundle, on the build
/// host and (put there by `rivet mkinitramfs`) in the initramfs.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How the client checks the servers it connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Against the CA certificates in this PEM file.
    Bundle(String),
    /// Not at all (`ipa-insecure=1`): encrypted, but anyone can answer.
    Insecure,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the CA certificates of a PEM bundle.
fn roots(bundle: &str) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(bundle).map_err(|e| format!("CA bundle {bundle}: {e}"))?;
    let mut store = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA bundle {bundle}: {e:?}"))?;
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
        Ok(Box::new(Record::new(conn.into(), bundle)))
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
}

impl Record {
    fn new(mut conn: Connection, bundle: Option<String>) -> Record {
        // rustls holds at most 64 KiB of plaintext by default and refuses
        // the rest; callers here queue whole answers (logs run to MBs) and
        // drain them as the socket allows.
        conn.set_buffer_limit(None);
        Record {
            conn: Some(conn),
            bundle,
        }
    }

    fn broken() -> Record {
        Record {
            conn: None,
            bundle: None,
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
    use rustls::pki_types::ServerName;

    fn client_for(pem_der: CertificateDer<'static>, tls13_only: bool) -> rustls::ClientConnection {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS12]
        };
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::IpAddress("10.0.2.15".parse::<std::net::IpAddr>().unwrap().into());
        rustls::ClientConnection::new(Arc::new(cfg), name).unwrap()
    }

    /// Runs a handshake and one request through `Server`; returns what the
    /// server's side decrypted, or the first error.
    fn exchange(tls: &AgentTls, tls12: bool) -> Result<Vec<u8>, String> {
        let der = {
            let (_, body) = tls.pem.split_once("-----\n").unwrap();
            let b64: String = body
                .lines()
                .take_while(|l| !l.starts_with("-----"))
                .collect();
            CertificateDer::from(crate::wire::base64::decode(b64.as_bytes()).unwrap())
        };
        let mut client = client_for(der, !tls12);
        let mut server = (tls.factory())();
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut plain = Vec::new();
        for _ in 0..6 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.receive(&wire)?;
            server.plaintext(&mut plain);
            let mut back = Vec::new();
            server.outgoing(&mut back);
            client.read_tls(&mut &back[..]).unwrap();
            client.process_new_packets().map_err(|e| e.to_string())?;
        }
        Ok(plain)
    }

    #[test]
    fn certificate_serves_tls13_and_min_version_is_honoured() {
        let ip: IpAddr = "10.0.2.15".parse().unwrap();
        let tls = AgentTls::generate(ip, "rivet", Some("1.3"), None, SystemTime::now()).unwrap();
        assert!(tls.pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(exchange(&tls, false).unwrap(), b"GET / HTTP/1.1\r\n\r\n");
        // tls_min_version 1.3: a TLS 1.2 client is refused.
        assert!(exchange(&tls, true).is_err());
        let both = AgentTls::generate(ip, "rivet", Some("1.2"), None, SystemTime::now()).unwrap();
        assert_eq!(exchange(&both, true).unwrap(), b"GET / HTTP/1.1\r\n\r\n");
        assert!(
            AgentTls::generate(ip, "rivet", Some("1.1"), None, SystemTime::now())
                .err()
                .unwrap()
                .contains("1.1")
        );
    }

    #[test]
    fn the_lookups_cipher_suites_limit_tls12() {
        let ip: IpAddr = "10.0.2.15".parse().unwrap();
        // Only an RSA suite: useless with an EC key, so TLS 1.2 fails and
        // TLS 1.3 (not named) still works.
        let rsa_only = AgentTls::generate(
            ip,
            "rivet",
            Some("1.2"),
            Some("ECDHE-RSA-AES128-GCM-SHA256:NO-SUCH-SUITE"),
            SystemTime::now(),
        )
        .unwrap();
        assert!(exchange(&rsa_only, true).is_err());
        assert!(exchange(&rsa_only, false).is_ok());
        let ecdsa = AgentTls::generate(
            ip,
            "rivet",
            Some("1.2"),
            Some("ECDHE-ECDSA-AES256-GCM-SHA384"),
            SystemTime::now(),
        )
        .unwrap();
        assert!(exchange(&ecdsa, true).is_ok());
        assert!(
            AgentTls::generate(ip, "rivet", None, Some("NULL-MD5"), SystemTime::now()).is_ok(),
            "TLS 1.3 suites remain"
        );
        let only_13 = suites("TLS_AES_256_GCM_SHA384");
        assert_eq!(only_13.len(), 1);
        assert_eq!(
            format!("{:?}", only_13[0].suite()),
            "TLS13_AES_256_GCM_SHA384"
        );
    }

    #[test]
    fn a_certificate_for_another_address_is_refused_by_the_client() {
        let tls = AgentTls::generate(
            "10.0.2.99".parse().unwrap(),
            "rivet",
            None,
            None,
            SystemTime::now(),
        )
        .unwrap();
        let err = exchange(&tls, false).unwrap_err();
        assert!(
            err.contains("NotValidForName") || err.contains("not valid for"),
            "{err}"
        );
    }

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
    use crate::net::secure::TlsTransport;
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
        for p in [path, other_path, path9] {
            let _ = std::fs::remove_file(p);
        }
    }
}

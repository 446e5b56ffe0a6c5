//! TLS for the agent API with rustls: the self-signed certificate
//! ironic-python-agent's auto-TLS makes (EC P-384 key, SubjectAltName = the
//! advertised IP, critical; valid from an hour ago for 30 days), and the
//! record layer [`Secure`] for each accepted connection.

use crate::net::secure::{Secure, SecureFactory};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConnection;
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let private = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| format!("the TLS key: {e}"))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
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
                Ok(c) => Box::new(Server(Some(c))),
                Err(e) => {
                    log::error!("TLS: {e}");
                    Box::new(Server(None))
                }
            }
        })
    }
}

/// One server-side TLS connection.
struct Server(Option<ServerConnection>);

impl Secure for Server {
    fn receive(&mut self, mut wire: &[u8]) -> Result<(), String> {
        let conn = self.0.as_mut().ok_or("no TLS session")?;
        while !wire.is_empty() {
            conn.read_tls(&mut wire).map_err(|e| e.to_string())?;
            conn.process_new_packets().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn plaintext(&mut self, out: &mut Vec<u8>) {
        let Some(conn) = self.0.as_mut() else { return };
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
        if let Some(conn) = self.0.as_mut() {
            // The buffer is unbounded by default; this cannot fail.
            let _ = conn.writer().write_all(plain);
        }
    }

    fn close(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.send_close_notify();
        }
    }

    fn outgoing(&mut self, wire: &mut Vec<u8>) {
        if let Some(conn) = self.0.as_mut() {
            while conn.wants_write() {
                if conn.write_tls(wire).is_err() {
                    break;
                }
            }
        }
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
        let tls = AgentTls::generate(ip, "rivet", Some("1.3"), SystemTime::now()).unwrap();
        assert!(tls.pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(exchange(&tls, false).unwrap(), b"GET / HTTP/1.1\r\n\r\n");
        // tls_min_version 1.3: a TLS 1.2 client is refused.
        assert!(exchange(&tls, true).is_err());
        let both = AgentTls::generate(ip, "rivet", Some("1.2"), SystemTime::now()).unwrap();
        assert_eq!(exchange(&both, true).unwrap(), b"GET / HTTP/1.1\r\n\r\n");
        assert!(
            AgentTls::generate(ip, "rivet", Some("1.1"), SystemTime::now())
                .err()
                .unwrap()
                .contains("1.1")
        );
    }

    #[test]
    fn a_certificate_for_another_address_is_refused_by_the_client() {
        let tls = AgentTls::generate(
            "10.0.2.99".parse().unwrap(),
            "rivet",
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
}

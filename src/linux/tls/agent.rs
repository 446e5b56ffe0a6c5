//! The agent API's side of TLS: the self-signed certificate
//! ironic-python-agent's auto-TLS makes (EC P-384 key, SubjectAltName = the
//! advertised IP, critical; valid from an hour ago for 30 days), written by
//! [`crate::wire::x509`] and signed by [`super::ec`], and the server configuration
//! built on it.

use super::ec::AgentKey;
use super::provider::{provider, suites, versions};
use super::Record;
use crate::net::record::{Secure, SecureFactory};
use crate::wire::x509::{self, AgentCertificate};
use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ServerConnection;
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

/// A new P-384 key and the self-signed certificate (DER) for it.
fn self_signed(
    ip: IpAddr,
    common_name: &str,
    now: SystemTime,
) -> Result<(AgentKey, Vec<u8>), String> {
    let key = AgentKey::generate();
    let address = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    // 16 random bytes, positive and without a leading zero byte, so the
    // DER INTEGER is always 16 bytes long.
    let mut serial = [0u8; 16];
    crate::linux::sys::random(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let public = key.public_point();
    let tbs = x509::tbs_certificate(&AgentCertificate {
        common_name,
        ip: &address,
        serial: &serial,
        not_before: unix(now).saturating_sub(CLOCK_SKEW.as_secs()),
        not_after: unix(now) + VALID_DAYS * 86_400,
        public_key: &public,
    })
    .map_err(|e| format!("the TLS certificate: {e:?}"))?;
    let signature = key
        .sign_sha512(&tbs)
        .map_err(|e| format!("signing the TLS certificate: {e}"))?;
    Ok((key, x509::certificate(&tbs, &signature)))
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
        let (key, der) = self_signed(ip, common_name, now)?;
        let pem = x509::pem("CERTIFICATE", &der);
        let certified = CertifiedKey::new(vec![CertificateDer::from(der)], Arc::new(key));
        let mut server_provider = provider();
        if let Some(list) = cipher_suites {
            server_provider.cipher_suites = suites(list);
        }
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(server_provider))
            .with_protocol_versions(versions(min_version)?)
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        Ok(AgentTls {
            pem,
            config: Arc::new(config),
        })
    }

    /// A record layer per accepted connection, for `Listener::secure`.
    pub fn factory(&self) -> SecureFactory {
        let config = self.config.clone();
        Box::new(move || -> Box<dyn Secure> {
            match ServerConnection::new(config.clone()) {
                Ok(c) => Box::new(Record::new(c.into(), None, None)),
                Err(e) => {
                    log::error!("TLS: {e}");
                    Box::new(Record::broken())
                }
            }
        })
    }
}

/// The DER inside one PEM block (the tests' way back from `AgentTls::pem`).
#[cfg(test)]
fn der_of(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    crate::wire::base64::decode(b64.as_bytes()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::io::Write;

    fn client_for(pem_der: CertificateDer<'static>, tls13_only: bool) -> rustls::ClientConnection {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_der).unwrap();
        // rivet's own provider: ring's verifies no ECDSA P-384 with SHA-512,
        // the agent certificate's self-signature (as ironic-python-agent's).
        let provider = Arc::new(super::super::provider::provider());
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
        let der = CertificateDer::from(der_of(&tls.pem));
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

    /// What the conductor's OpenSSL makes of the certificate: the fields
    /// ironic-python-agent's certificate has, and a valid self-signature.
    #[test]
    fn openssl_reads_and_verifies_the_certificate() {
        let tls = AgentTls::generate(
            "10.0.2.15".parse().unwrap(),
            "rivet-agent",
            None,
            None,
            SystemTime::now(),
        )
        .unwrap();
        let path = std::env::temp_dir().join(format!("rivet-cert-{}.pem", std::process::id()));
        std::fs::write(&path, &tls.pem).unwrap();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl (tests/setup installs it)");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        };
        let p = path.to_str().unwrap();
        let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", p]);
        assert!(ok, "{text}");
        for want in [
            "Version: 3 (0x2)",
            "Signature Algorithm: ecdsa-with-SHA512",
            "Issuer: CN = rivet-agent",
            "Subject: CN = rivet-agent",
            "Public-Key: (384 bit)",
            "NIST CURVE: P-384",
            "X509v3 Subject Alternative Name: critical",
            "IP Address:10.0.2.15",
        ] {
            assert!(text.contains(want), "no '{want}' in:\n{text}");
        }
        assert!(!text.contains("CA:TRUE"), "{text}");
        let (ok, text) = openssl(&["verify", "-CAfile", p, p]);
        assert!(ok && text.contains(": OK"), "{text}");
        // 30 days from now, an hour back for clock skew.
        let (_, dates) = openssl(&["x509", "-noout", "-checkend", "2505600", "-in", p]);
        assert!(dates.contains("will not expire"), "{dates}");
        let (_, dates) = openssl(&["x509", "-noout", "-checkend", "2595600", "-in", p]);
        assert!(dates.contains("will expire"), "{dates}");
        let _ = std::fs::remove_file(path);
    }
}

/// Benchmark, not a test: `tests/bench/tls-handshake` runs it (on the host,
/// and under qemu-user's TCG). Whole TLS 1.3 handshakes in memory, client
/// and server in this process, per key-exchange group: rivet's provider
/// serving the agent's certificate, against ring's own provider serving a
/// P-384 certificate openssl made (the baseline, same run).
#[cfg(test)]
mod bench {
    use super::super::provider::provider;
    use super::*;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use rustls::{ClientConnection, Connection, ServerConnection};
    use std::time::Instant;

    fn handshake(client: &Arc<rustls::ClientConfig>, server: &Arc<rustls::ServerConfig>) -> String {
        let name = ServerName::IpAddress("10.0.2.15".parse::<IpAddr>().unwrap().into());
        let mut c: Connection = ClientConnection::new(client.clone(), name).unwrap().into();
        let mut s: Connection = ServerConnection::new(server.clone()).unwrap().into();
        fn pass(from: &mut Connection, to: &mut Connection) {
            let mut wire = Vec::new();
            while from.wants_write() {
                from.write_tls(&mut wire).unwrap();
            }
            to.read_tls(&mut &wire[..]).unwrap();
            to.process_new_packets().unwrap();
        }
        while c.is_handshaking() || s.is_handshaking() {
            pass(&mut c, &mut s);
            pass(&mut s, &mut c);
        }
        format!("{:?}", c.negotiated_cipher_suite().unwrap().suite())
    }

    fn client(
        provider: CryptoProvider,
        group: &str,
        ca: CertificateDer<'static>,
    ) -> Arc<rustls::ClientConfig> {
        let mut provider = provider;
        provider
            .kx_groups
            .retain(|g| format!("{:?}", g.name()) == group);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Full handshakes (certificate signed and checked every time), as
        // the conductor's connections make them: no session resumption.
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }

    #[test]
    #[ignore = "a benchmark: tests/bench/tls-handshake"]
    fn handshake_benchmark() {
        let rounds: u32 = std::env::var("RIVET_HANDSHAKES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50);
        let ip: IpAddr = "10.0.2.15".parse().unwrap();
        let started = Instant::now();
        let agent = AgentTls::generate(ip, "rivet", None, None, SystemTime::now()).unwrap();
        let keygen = started.elapsed();
        let agent_ca = CertificateDer::from(der_of(&agent.pem));

        // The baseline: ring's provider, a P-384 certificate from openssl.
        let dir = std::env::temp_dir().join(format!("rivet-hs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert) = (dir.join("k.pem"), dir.join("c.pem"));
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ])
            .args(["-sha384", "-nodes", "-days", "2", "-subj", "/CN=rivet"])
            .args(["-addext", "subjectAltName=critical,IP:10.0.2.15"])
            .args(["-addext", "basicConstraints=CA:FALSE", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl")
            .status
            .success();
        assert!(ok);
        let ring_ca = CertificateDer::from(der_of(&std::fs::read_to_string(&cert).unwrap()));
        let ring_key = std::fs::read_to_string(&key).unwrap();
        let pkcs8 = if ring_key.contains("BEGIN PRIVATE KEY") {
            der_of(&ring_key)
        } else {
            panic!("openssl wrote no PKCS#8 key")
        };
        let _ = std::fs::remove_dir_all(&dir);
        let ring_server = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![ring_ca.clone()],
                PrivateKeyDer::try_from(pkcs8).unwrap(),
            )
            .unwrap(),
        );

        println!(
            "agent key + certificate (P-384, RustCrypto): {:.2} ms",
            keygen.as_secs_f64() * 1e3
        );
        for group in ["X25519", "secp256r1", "secp384r1"] {
            let ours = client(provider(), group, agent_ca.clone());
            let theirs = client(
                rustls::crypto::ring::default_provider(),
                group,
                ring_ca.clone(),
            );
            let time = |c: &Arc<rustls::ClientConfig>, s: &Arc<rustls::ServerConfig>| {
                let suite = handshake(c, s);
                let t = Instant::now();
                for _ in 0..rounds {
                    handshake(c, s);
                }
                (t.elapsed().as_secs_f64() * 1e3 / f64::from(rounds), suite)
            };
            let (rivet_ms, suite) = time(&ours, &agent.config);
            let (ring_ms, _) = time(&theirs, &ring_server);
            println!(
                "TLS 1.3 handshake, {group:<9}, P-384 certificate: rivet {rivet_ms:7.2} ms, \
                 ring {ring_ms:7.2} ms, ratio {:.2} ({suite}, {rounds} rounds, both sides)",
                rivet_ms / ring_ms
            );
        }
    }
}

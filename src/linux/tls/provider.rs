//! The cryptography rivet's TLS uses: a rustls `CryptoProvider` on ring
//! with only what the peers rivet meets offer, and the lookup's
//! `tls_min_version` / `tls_cipher_suites` applied to it.
//!
//! Who rivet talks TLS to, and what they offer by default:
//! - Ironic 39's conductor (Python `requests` on OpenSSL 3) calling the agent
//!   API, and ironic-api / ironic-inspector answering lookups, heartbeats
//!   and inspection: TLS 1.3 with AES-GCM or ChaCha20, X25519 or P-256.
//! - Image servers: nginx (`ssl_ciphers HIGH:!aNULL:!MD5`, `ssl_ecdh_curve
//!   auto`) and Apache httpd (mod_ssl's OpenSSL `DEFAULT`), TLS 1.2 or 1.3,
//!   ECDHE with AES-GCM or ChaCha20; certificates with RSA (PKCS#1 v1.5 or
//!   PSS) or ECDSA P-256/P-384 keys, signed by RSA or ECDSA CAs.
//!
//! So: the AES-GCM and ChaCha20-Poly1305 suites, the three common groups
//! (X25519 for most, P-256/P-384 for FIPS-mode peers), and RSA + ECDSA
//! verification. The suites are offered in the order that is fastest on
//! this CPU, as BoringSSL and Go do: AES-GCM first where the CPU has AES
//! and carry-less multiply instructions, ChaCha20 first where it has not
//! (a QEMU guest's default `qemu64` CPU, older or smaller machines), and
//! servers that honour the client's order (nginx's default, OpenSSL's
//! PRIORITIZE_CHACHA) pick accordingly. ChaCha20 costs 50 KB of `/init`.
//! Left out, each for its size in `/init` (tests/bench/size):
//! - Ed25519 certificates: no public CA issues them.
//! - Loading private keys: the only one rivet has is the agent's own, made
//!   in [`super::ec`]; refusing the rest drops ring's RSA signing code.
//!
//! The NIST curves are [`super::ec`]'s (RustCrypto), not ring's: see there.

use super::ec;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::{SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion};
use std::sync::Arc;
use webpki::ring as algs;

/// In preference order where the CPU has AES instructions: AES-256-GCM,
/// AES-128-GCM, ChaCha20-Poly1305 (ring's defaults).
static AES_FIRST: &[SupportedCipherSuite] = &[
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// Where it has none: ChaCha20-Poly1305 first (3-4x faster in software).
static CHACHA_FIRST: &[SupportedCipherSuite] = &[
    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// Whether AES-GCM runs in hardware here (AES rounds and GHASH's
/// carry-less multiply), as ring itself decides which code to run.
pub fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Every suite rivet has, fastest on this CPU first.
pub fn cipher_suites() -> &'static [SupportedCipherSuite] {
    ordered(aes_in_hardware())
}

fn ordered(aes: bool) -> &'static [SupportedCipherSuite] {
    if aes {
        AES_FIRST
    } else {
        CHACHA_FIRST
    }
}

static VERIFY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        ec::ECDSA_P256_SHA256,
        ec::ECDSA_P256_SHA384,
        ec::ECDSA_P384_SHA256,
        ec::ECDSA_P384_SHA384,
        ec::ECDSA_P384_SHA512,
        algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        algs::RSA_PKCS1_2048_8192_SHA256,
        algs::RSA_PKCS1_2048_8192_SHA384,
        algs::RSA_PKCS1_2048_8192_SHA512,
        algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        // TLS 1.2 does not tie the curve to the scheme; TLS 1.3 does.
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[ec::ECDSA_P384_SHA384, ec::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[ec::ECDSA_P256_SHA256, ec::ECDSA_P384_SHA256],
        ),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[algs::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[algs::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[algs::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// Loads no private keys: the agent's key is made in memory and handed to
/// rustls as a signer (see `agent`), never as DER.
#[derive(Debug)]
struct NoKeys;

impl KeyProvider for NoKeys {
    fn load_private_key(
        &self,
        _key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General("rivet loads no private keys".into()))
    }
}

/// Random bytes from the kernel, for rustls's nonces and ephemeral keys.
#[derive(Debug)]
struct KernelRandom;

impl SecureRandom for KernelRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        crate::linux::sys::secure_random(buf).map_err(|_| GetRandomFailed)
    }
}

/// The provider with every suite above. Built here rather than from ring's
/// `default_provider()`, which would keep every suite ring has linked in.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: cipher_suites().to_vec(),
        kx_groups: vec![kx_group::X25519, ec::SECP256R1, ec::SECP384R1],
        signature_verification_algorithms: VERIFY,
        secure_random: &KernelRandom,
        key_provider: &NoKeys,
    }
}

/// Which protocol versions the lookup's `tls_min_version` allows.
pub fn versions(min: Option<&str>) -> Result<&'static [&'static SupportedProtocolVersion], String> {
    static BOTH: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        None | Some("1.2") => Ok(&BOTH),
        Some("1.3") => Ok(&ONLY_13),
        Some(v) => Err(format!("tls_min_version {v}: rivet speaks TLS 1.2 and 1.3")),
    }
}

/// OpenSSL's names of the TLS 1.2 suites rivet has, with the IANA names.
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
/// Names rivet lacks are skipped with a warning.
pub fn suites(list: &str) -> Vec<SupportedCipherSuite> {
    let iana = |s: &SupportedCipherSuite| format!("{:?}", s.suite());
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
        match cipher_suites().iter().find(|s| iana(s) == name) {
            Some(s) => wanted.push(*s),
            None => log::warn!("tls_cipher_suites: {name} is not a suite rivet has; skipped"),
        }
    }
    let names_13 = wanted
        .iter()
        .any(|s| s.version() == &rustls::version::TLS13);
    let mut out: Vec<_> = cipher_suites()
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13 && !names_13)
        .copied()
        .collect();
    // Never empty: without a TLS 1.3 name every TLS 1.3 suite stays.
    out.extend(wanted);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_follow_openssl_and_iana_names() {
        let only_13 = suites("TLS_AES_256_GCM_SHA384");
        assert_eq!(only_13.len(), 1);
        assert_eq!(
            format!("{:?}", only_13[0].suite()),
            "TLS13_AES_256_GCM_SHA384"
        );
        let names: Vec<String> = suites("ECDHE-RSA-AES128-GCM-SHA256:NO-SUCH-SUITE")
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names[..3].iter().all(|n| n.starts_with("TLS13_")));
        assert_eq!(names[3], "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        let chacha = suites("ECDHE-ECDSA-CHACHA20-POLY1305:TLS_CHACHA20_POLY1305_SHA256");
        let names: Vec<String> = chacha.iter().map(|s| format!("{:?}", s.suite())).collect();
        assert_eq!(
            names,
            [
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256"
            ],
            "named, in the list's order"
        );
    }

    #[test]
    fn no_private_key_loads() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        let key = PrivateKeyDer::try_from(pkcs8.as_ref().to_vec()).unwrap();
        assert!(provider().key_provider.load_private_key(key).is_err());
    }

    #[test]
    fn the_offer_is_aes_gcm_and_chacha20_fastest_first_and_three_groups() {
        let names = |aes| -> Vec<String> {
            ordered(aes)
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect()
        };
        for aes in [true, false] {
            let n = names(aes);
            assert_eq!(n.len(), 9);
            assert_eq!(
                n.iter().filter(|n| n.contains("CHACHA20_POLY1305")).count(),
                3
            );
            assert_eq!(n.iter().filter(|n| n.contains("_GCM_")).count(), 6);
            // The first suite of each TLS version is the fast one.
            let first_13 = &n[0];
            let first_12 = n.iter().find(|n| !n.starts_with("TLS13_")).unwrap();
            for first in [first_13, first_12] {
                assert_eq!(first.contains("CHACHA20"), !aes, "{n:?}");
            }
        }
        let p = provider();
        assert_eq!(p.cipher_suites.len(), 9);
        let groups: Vec<String> = p
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(groups, ["X25519", "secp256r1", "secp384r1"]);
    }
}

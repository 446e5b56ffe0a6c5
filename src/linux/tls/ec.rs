//! The NIST curves for TLS (P-256, P-384) on RustCrypto's pure-Rust `p256`
//! and `p384` crates: ECDHE key exchange, ECDSA verification of servers'
//! certificates and handshakes, and the agent's own P-384 key. ring does the
//! rest (AES-GCM, X25519, RSA, the hashes of the handshake).
//!
//! Why not ring for these too: ring's P-256 code carries a 151,552-byte
//! table of precomputed points, and any use of ring's NIST-curve code links
//! it. Random-looking points do not compress: moving the curves here took
//! 205 KB from `/init` and 170 KB from the xz initramfs, for ~100 KB of
//! RustCrypto code (tests/bench/size). The price is speed: a P-384
//! handshake costs a few milliseconds more (README, TLS).

use super::super::sys;
use ecdsa::hazmat::{bits2field, SignPrimitive};
use p256::elliptic_curve::rand_core::{self, CryptoRng, RngCore};
use p384::ecdsa::signature::hazmat::PrehashVerifier;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::pki_types::SignatureVerificationAlgorithm;
use rustls::pki_types::{alg_id, AlgorithmIdentifier, InvalidSignature};
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, NamedGroup, PeerMisbehaved, SignatureAlgorithm, SignatureScheme};

/// The kernel's random numbers (getrandom, waiting for an initialised
/// pool) where RustCrypto asks for an RNG.
pub struct KernelRng;

impl RngCore for KernelRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if let Err(e) = sys::secure_random(dest) {
            // getrandom(2) without flags fails only on a bad buffer or a
            // kernel before 3.17; GRND_INSECURE's bytes beat none.
            log::warn!("getrandom: {e}; using the kernel's unblocked pool");
            sys::random(dest);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for KernelRng {}

/// ECDHE on one curve: the same code for both, over each crate's types.
macro_rules! key_exchange {
    ($group:ident, $active:ident, $krate:ident, $name:expr, $point_len:expr) => {
        #[derive(Debug)]
        pub struct $group;

        struct $active {
            secret: $krate::ecdh::EphemeralSecret,
            public: Vec<u8>,
        }

        impl SupportedKxGroup for $group {
            fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
                let secret = $krate::ecdh::EphemeralSecret::random(&mut KernelRng);
                let public = $krate::EncodedPoint::from(secret.public_key())
                    .as_bytes()
                    .to_vec();
                Ok(Box::new($active { secret, public }))
            }
            fn name(&self) -> NamedGroup {
                $name
            }
        }

        impl ActiveKeyExchange for $active {
            fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
                // TLS sends uncompressed points only (RFC 8446 4.2.8.2).
                if peer.len() != $point_len || peer[0] != 0x04 {
                    return Err(PeerMisbehaved::InvalidKeyShare.into());
                }
                let peer = $krate::PublicKey::from_sec1_bytes(peer)
                    .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
                let shared = self.secret.diffie_hellman(&peer);
                Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
            }
            fn pub_key(&self) -> &[u8] {
                &self.public
            }
            fn group(&self) -> NamedGroup {
                $name
            }
        }
    };
}

key_exchange!(Secp256r1, ActiveP256, p256, NamedGroup::secp256r1, 65);
key_exchange!(Secp384r1, ActiveP384, p384, NamedGroup::secp384r1, 97);

pub static SECP256R1: &dyn SupportedKxGroup = &Secp256r1;
pub static SECP384R1: &dyn SupportedKxGroup = &Secp384r1;

#[derive(Debug, Clone, Copy)]
enum Curve {
    P256,
    P384,
}

#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// ECDSA verification for webpki (certificates) and rustls (handshakes).
#[derive(Debug)]
struct Ecdsa {
    curve: Curve,
    hash: Hash,
}

impl SignatureVerificationAlgorithm for Ecdsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        // ring's digests: one SHA-2 implementation in /init (stream.rs).
        let digest = ring::digest::digest(
            match self.hash {
                Hash::Sha256 => &ring::digest::SHA256,
                Hash::Sha384 => &ring::digest::SHA384,
                Hash::Sha512 => &ring::digest::SHA512,
            },
            message,
        );
        let digest = digest.as_ref();
        // The same steps over each crate's types.
        macro_rules! verify {
            ($krate:ident) => {{
                let key = $krate::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                    .map_err(|_| InvalidSignature)?;
                let sig =
                    $krate::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
                key.verify_prehash(digest, &sig)
                    .map_err(|_| InvalidSignature)
            }};
        }
        match self.curve {
            Curve::P256 => verify!(p256),
            Curve::P384 => verify!(p384),
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        match self.curve {
            Curve::P256 => alg_id::ECDSA_P256,
            Curve::P384 => alg_id::ECDSA_P384,
        }
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self.hash {
            Hash::Sha256 => alg_id::ECDSA_SHA256,
            Hash::Sha384 => alg_id::ECDSA_SHA384,
            Hash::Sha512 => alg_id::ECDSA_SHA512,
        }
    }
}

pub static ECDSA_P256_SHA256: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P256,
    hash: Hash::Sha256,
};
pub static ECDSA_P256_SHA384: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P256,
    hash: Hash::Sha384,
};
pub static ECDSA_P384_SHA256: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P384,
    hash: Hash::Sha256,
};
pub static ECDSA_P384_SHA384: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P384,
    hash: Hash::Sha384,
};
/// Certificates only (no TLS scheme pairs them): the agent's own, as
/// ironic-python-agent signs it.
pub static ECDSA_P384_SHA512: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P384,
    hash: Hash::Sha512,
};

/// The agent's P-384 key, as ironic-python-agent makes it.
#[derive(Clone)]
pub struct AgentKey(p384::ecdsa::SigningKey);

impl core::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AgentKey(P-384)")
    }
}

impl AgentKey {
    pub fn generate() -> AgentKey {
        AgentKey(p384::ecdsa::SigningKey::random(&mut KernelRng))
    }

    /// The uncompressed public point (0x04 ‖ X ‖ Y), 97 bytes.
    pub fn public_point(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// ECDSA-P384-SHA384 of `message`, as a DER ECDSA-Sig-Value.
    pub fn sign_sha384(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_prehash(ring::digest::digest(&ring::digest::SHA384, message).as_ref())
    }

    /// ECDSA-P384-SHA512 (the digest cut to 384 bits), for the certificate.
    pub fn sign_sha512(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_prehash(ring::digest::digest(&ring::digest::SHA512, message).as_ref())
    }

    /// ECDSA of a digest, as a DER ECDSA-Sig-Value. The nonce
    /// is random (from getrandom), as ring's is: RFC 6979's deterministic
    /// nonce would link a second SHA-512 implementation (RustCrypto's older
    /// sha2, which `p384` uses for HMAC) for no gain here.
    fn sign_prehash(&self, digest: &[u8]) -> Result<Vec<u8>, Error> {
        let z = bits2field::<p384::NistP384>(digest)
            .map_err(|_| Error::General("ECDSA: digest too short".into()))?;
        let k = *p384::NonZeroScalar::random(&mut KernelRng).as_ref();
        let (sig, _) = self
            .0
            .as_nonzero_scalar()
            .as_ref()
            .try_sign_prehashed(k, &z)
            .map_err(|_| Error::General("ECDSA signing failed".into()))?;
        // Low-S form, as most signers write it; verifiers take either.
        let sig = sig.normalize_s().unwrap_or(sig);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

impl SigningKey for AgentKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP384_SHA384)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

impl Signer for AgentKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_sha384(message)
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP384_SHA384
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 signature made by ring (a second implementation) verifies
    /// here, and a changed message or signature does not.
    #[test]
    fn verifies_what_ring_signs() {
        use ring::signature::{EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        for (alg, verify) in [
            (
                &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                ECDSA_P256_SHA256,
            ),
            (
                &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                ECDSA_P384_SHA384,
            ),
        ] {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
            let sig = pair.sign(&rng, b"the handshake").unwrap();
            let public = pair.public_key().as_ref();
            assert!(verify
                .verify_signature(public, b"the handshake", sig.as_ref())
                .is_ok());
            assert!(verify
                .verify_signature(public, b"another handshake", sig.as_ref())
                .is_err());
            let mut bad = sig.as_ref().to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(verify
                .verify_signature(public, b"the handshake", &bad)
                .is_err());
        }
    }

    /// ring verifies what the agent's key signs.
    #[test]
    fn ring_verifies_what_the_agent_signs() {
        let key = AgentKey::generate();
        let sig = key.sign_sha384(b"handshake").unwrap();
        let public = key.public_point();
        let ring_key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_ASN1,
            &public,
        );
        assert!(ring_key.verify(b"handshake", &sig).is_ok());
        assert!(ring_key.verify(b"handshak", &sig).is_err());
        // SHA-512 (ring verifies no such pair): our own verifier.
        let sig = key.sign_sha512(b"certificate").unwrap();
        assert!(ECDSA_P384_SHA512
            .verify_signature(&public, b"certificate", &sig)
            .is_ok());
        assert!(ECDSA_P384_SHA384
            .verify_signature(&public, b"certificate", &sig)
            .is_err());
    }

    /// Both sides of ECDHE agree, with ring as the peer; a compressed or
    /// off-curve peer key is refused.
    #[test]
    fn key_exchange_agrees_with_ring() {
        use ring::agreement;
        let rng = ring::rand::SystemRandom::new();
        for (group, alg) in [
            (SECP256R1, &agreement::ECDH_P256),
            (SECP384R1, &agreement::ECDH_P384),
        ] {
            let ours = group.start().unwrap();
            let theirs = agreement::EphemeralPrivateKey::generate(alg, &rng).unwrap();
            let their_public = theirs.compute_public_key().unwrap().as_ref().to_vec();
            let ring_secret = agreement::agree_ephemeral(
                theirs,
                &agreement::UnparsedPublicKey::new(alg, ours.pub_key()),
                |s| s.to_vec(),
            )
            .unwrap();
            let secret = ours.complete(&their_public).unwrap();
            assert_eq!(secret.secret_bytes(), &ring_secret[..]);

            let mut compressed = their_public[..1 + (their_public.len() - 1) / 2].to_vec();
            compressed[0] = 0x02;
            assert!(group.start().unwrap().complete(&compressed).is_err());
            let mut off_curve = their_public.clone();
            off_curve[5] ^= 1;
            assert!(group.start().unwrap().complete(&off_curve).is_err());
        }
    }
}

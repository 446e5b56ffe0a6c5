//! The one X.509 certificate rivet writes: the self-signed certificate
//! ironic-python-agent's auto-TLS makes for its API (`tls_utils.py`):
//! subject = issuer = CN only, an EC P-384 key, a random serial, valid from
//! `not_before` to `not_after`, and a single *critical* SubjectAltName
//! holding the advertised IP address. No basicConstraints: with CA:TRUE,
//! TLS clients (webpki) refuse a CA certificate used as the server's own.
//!
//! DER is written by hand (a few tag-length-value helpers): the structure
//! is fixed, and a general certificate library cost ~50 KB of `/init`.
//! Signing is the caller's (it needs a crypto library): build the
//! to-be-signed part with [`tbs_certificate`], sign its bytes with
//! ECDSA-P384-SHA512, and wrap both with [`certificate`].

use alloc::string::String;
use alloc::vec::Vec;

/// id-ecPublicKey 1.2.840.10045.2.1
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// secp384r1 1.3.132.0.34
const OID_SECP384R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// ecdsa-with-SHA512 1.2.840.10045.4.3.4 (ironic-python-agent signs with
/// `hashes.SHA512()`)
const OID_ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
/// commonName 2.5.4.3
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// subjectAltName 2.5.29.17
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const BOOLEAN: u8 = 0x01;
/// [0] EXPLICIT (version), [3] EXPLICIT (extensions).
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_3: u8 = 0xa3;
/// GeneralName iPAddress: [7] IMPLICIT OCTET STRING.
const SAN_IP: u8 = 0x87;

/// What goes into the certificate besides the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCertificate<'a> {
    pub common_name: &'a str,
    /// 4 bytes (IPv4) or 16 (IPv6), network order.
    pub ip: &'a [u8],
    /// Positive, big-endian, at most 20 bytes (RFC 5280 4.1.2.2).
    pub serial: &'a [u8],
    /// Seconds since 1970-01-01 UTC.
    pub not_before: u64,
    pub not_after: u64,
    /// The uncompressed P-384 point (0x04 ‖ X ‖ Y), 97 bytes.
    pub public_key: &'a [u8],
}

/// Why a certificate cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The IP address is neither 4 nor 16 bytes.
    Address,
    /// The serial is empty, longer than 20 bytes or negative.
    Serial,
    /// The public key is not an uncompressed P-384 point.
    PublicKey,
    /// A time beyond 9999-12-31.
    Time,
}

/// Appends a tag, the DER length and the content.
fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    tlv(&mut out, tag, content);
    out
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The day count since 1970-01-01 as (year, month, day) — Howard Hinnant's
/// civil_from_days, for days ≥ 0.
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn time(out: &mut Vec<u8>, unix: u64) -> Result<(), Error> {
    let (year, month, day) = civil(unix / 86_400);
    if year > 9999 {
        return Err(Error::Time);
    }
    let secs = unix % 86_400;
    let mut text = String::new();
    let two = |t: &mut String, v: u64| {
        t.push(char::from(b'0' + (v / 10 % 10) as u8));
        t.push(char::from(b'0' + (v % 10) as u8));
    };
    let tag = if year < 2050 {
        two(&mut text, year % 100);
        UTC_TIME
    } else {
        two(&mut text, year / 100);
        two(&mut text, year % 100);
        GENERALIZED_TIME
    };
    for v in [month, day, secs / 3600, secs / 60 % 60, secs % 60] {
        two(&mut text, v);
    }
    text.push('Z');
    tlv(out, tag, text.as_bytes());
    Ok(())
}

/// The DER of the signature algorithm, ecdsa-with-SHA512 (no parameters).
fn signature_algorithm() -> Vec<u8> {
    wrap(SEQUENCE, &wrap(OID, OID_ECDSA_SHA512))
}

/// The to-be-signed part (TBSCertificate) in DER.
pub fn tbs_certificate(c: &AgentCertificate<'_>) -> Result<Vec<u8>, Error> {
    if c.ip.len() != 4 && c.ip.len() != 16 {
        return Err(Error::Address);
    }
    let serial_ok = !c.serial.is_empty()
        && c.serial.len() <= 20
        && c.serial[0] & 0x80 == 0
        && !(c.serial.len() > 1 && c.serial[0] == 0 && c.serial[1] & 0x80 == 0);
    if !serial_ok {
        return Err(Error::Serial);
    }
    if c.public_key.len() != 97 || c.public_key[0] != 0x04 {
        return Err(Error::PublicKey);
    }
    let name = wrap(
        SEQUENCE,
        &wrap(
            SET,
            &wrap(
                SEQUENCE,
                &concat(&[
                    &wrap(OID, OID_COMMON_NAME),
                    &wrap(UTF8_STRING, c.common_name.as_bytes()),
                ]),
            ),
        ),
    );
    let mut validity = Vec::new();
    time(&mut validity, c.not_before)?;
    time(&mut validity, c.not_after)?;
    let algorithm = wrap(
        SEQUENCE,
        &concat(&[&wrap(OID, OID_EC_PUBLIC_KEY), &wrap(OID, OID_SECP384R1)]),
    );
    let mut bits = Vec::with_capacity(98);
    bits.push(0); // no unused bits
    bits.extend_from_slice(c.public_key);
    let spki = wrap(SEQUENCE, &concat(&[&algorithm, &wrap(BIT_STRING, &bits)]));
    let san = wrap(SEQUENCE, &wrap(SAN_IP, c.ip));
    let extension = wrap(
        SEQUENCE,
        &concat(&[
            &wrap(OID, OID_SUBJECT_ALT_NAME),
            &wrap(BOOLEAN, &[0xff]),
            &wrap(OCTET_STRING, &san),
        ]),
    );
    let extensions = wrap(CONTEXT_3, &wrap(SEQUENCE, &extension));
    Ok(wrap(
        SEQUENCE,
        &concat(&[
            &wrap(CONTEXT_0, &wrap(INTEGER, &[2])), // v3
            &wrap(INTEGER, c.serial),
            &signature_algorithm(),
            &name,
            &wrap(SEQUENCE, &validity),
            &name,
            &spki,
            &extensions,
        ]),
    ))
}

/// The whole certificate: the TBS part, the algorithm and the DER
/// ECDSA-Sig-Value the signer returned.
pub fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend_from_slice(signature);
    wrap(
        SEQUENCE,
        &concat(&[tbs, &signature_algorithm(), &wrap(BIT_STRING, &bits)]),
    )
}

/// PEM armour, 64 columns, as OpenSSL writes it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = super::base64::encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 is ASCII.
        out.push_str(core::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        let mut out = Vec::new();
        tlv(&mut out, 0x04, &[0xaa; 3]);
        assert_eq!(out, [0x04, 0x03, 0xaa, 0xaa, 0xaa]);
        let long = wrap(0x04, &[0u8; 0x80]);
        assert_eq!(&long[..3], &[0x04, 0x81, 0x80]);
        let longer = wrap(0x04, &[0u8; 0x1234]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x12, 0x34]);
        assert_eq!(longer.len(), 4 + 0x1234);
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        let mut out = Vec::new();
        // 2026-11-30 08:16:43 UTC
        time(&mut out, 1_796_026_603).unwrap();
        assert_eq!(out, b"\x17\x0d261130081643Z");
        out.clear();
        time(&mut out, 0).unwrap();
        assert_eq!(out, b"\x17\x0d700101000000Z");
        out.clear();
        // 2050-01-01 00:00:00 UTC
        time(&mut out, 2_524_608_000).unwrap();
        assert_eq!(out, b"\x18\x0f20500101000000Z");
        out.clear();
        // 2024-02-29 23:59:59 UTC, a leap day.
        time(&mut out, 1_709_251_199).unwrap();
        assert_eq!(out, b"\x17\x0d240229235959Z");
        assert_eq!(time(&mut out, u64::MAX / 2), Err(Error::Time));
    }

    fn sample<'a>(ip: &'a [u8], serial: &'a [u8], key: &'a [u8]) -> AgentCertificate<'a> {
        AgentCertificate {
            common_name: "rivet",
            ip,
            serial,
            not_before: 1_796_026_603,
            not_after: 1_796_026_603 + 30 * 86_400,
            public_key: key,
        }
    }

    #[test]
    fn the_tbs_part_is_byte_for_byte_what_the_agent_writes() {
        let mut key = [0x11u8; 97];
        key[0] = 0x04;
        let tbs = tbs_certificate(&sample(&[10, 0, 2, 15], &[0x42, 0x01], &key)).unwrap();
        let mut want: Vec<u8> = Vec::new();
        want.extend_from_slice(&[0x30, 0x81, 0xe9]); // TBSCertificate, 233 bytes
        want.extend_from_slice(&[0xa0, 0x03, 0x02, 0x01, 0x02]); // v3
        want.extend_from_slice(&[0x02, 0x02, 0x42, 0x01]); // serial
        want.extend_from_slice(&[
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
        ]);
        let name = [
            0x30, 0x10, 0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b'r',
            b'i', b'v', b'e', b't',
        ];
        want.extend_from_slice(&name);
        want.extend_from_slice(&[0x30, 0x1e]);
        want.extend_from_slice(b"\x17\x0d261130081643Z\x17\x0d261230081643Z");
        want.extend_from_slice(&name);
        want.extend_from_slice(&[
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
        ]);
        want.extend_from_slice(&key);
        want.extend_from_slice(&[
            0xa3, 0x16, 0x30, 0x14, 0x30, 0x12, 0x06, 0x03, 0x55, 0x1d, 0x11, 0x01, 0x01, 0xff,
            0x04, 0x08, 0x30, 0x06, 0x87, 0x04, 10, 0, 2, 15,
        ]);
        assert_eq!(tbs, want);

        let sig = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02];
        let cert = certificate(&tbs, &sig);
        assert_eq!(&cert[..4], &[0x30, 0x82, 0x01, 0x03]);
        assert_eq!(&cert[4..4 + tbs.len()], &tbs[..]);
        assert_eq!(
            &cert[4 + tbs.len()..],
            &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04, 0x03, 0x09,
                0x00, 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02
            ]
        );
    }

    #[test]
    fn ipv6_and_bad_inputs() {
        let mut key = [0u8; 97];
        key[0] = 0x04;
        let v6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let tbs = tbs_certificate(&sample(&v6, &[1], &key)).unwrap();
        let mut san = vec![0x87, 0x10];
        san.extend_from_slice(&v6);
        assert!(tbs.ends_with(&san));

        assert_eq!(
            tbs_certificate(&sample(&[1, 2, 3], &[1], &key)),
            Err(Error::Address)
        );
        for serial in [&[][..], &[0x80], &[0x00, 0x01], &[1; 21]] {
            assert_eq!(
                tbs_certificate(&sample(&[1, 2, 3, 4], serial, &key)),
                Err(Error::Serial),
                "{serial:?}"
            );
        }
        assert!(tbs_certificate(&sample(&[1, 2, 3, 4], &[0x00, 0x80], &key)).is_ok());
        assert_eq!(
            tbs_certificate(&sample(&[1, 2, 3, 4], &[1], &key[..65])),
            Err(Error::PublicKey)
        );
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let text = pem("CERTIFICATE", &[0u8; 60]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1], "A".repeat(64));
        assert_eq!(lines[2], "A".repeat(16));
        assert_eq!(lines[3], "-----END CERTIFICATE-----");
        assert!(text.ends_with("-----\n"));
    }
}

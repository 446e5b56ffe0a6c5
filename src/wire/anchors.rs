//! rivet's trust-anchor file: what a TLS client keeps of each CA certificate
//! (its subject, its public key and any name constraints, as webpki uses
//! them), without the rest (signature, serial, validity, extensions), which
//! a client never reads of a trust anchor. `rivet mkinitramfs` writes it
//! from a PEM bundle; the CA signatures alone are ~55 KB of random bytes
//! that xz cannot shrink, so the initramfs carries ~75 KB less.
//!
//! Layout: the magic `RIVETTA1`, then per anchor three fields, each a
//! big-endian u16 length and that many bytes: subject (DER contents of the
//! Name), SubjectPublicKeyInfo (DER contents), name constraints (DER
//! contents, or length 0 for none).

use alloc::vec::Vec;

pub const MAGIC: &[u8; 8] = b"RIVETTA1";

/// One trust anchor, borrowed from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor<'a> {
    pub subject: &'a [u8],
    pub spki: &'a [u8],
    pub name_constraints: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No `RIVETTA1` at the start.
    Magic,
    /// A field runs past the end of the file (at this offset).
    Truncated(usize),
    /// A subject or key of length 0 (at this offset).
    Empty(usize),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Magic => write!(f, "not a trust-anchor file (no RIVETTA1)"),
            Error::Truncated(at) => write!(f, "a field runs past the end of the file at byte {at}"),
            Error::Empty(at) => write!(f, "an empty subject or key at byte {at}"),
        }
    }
}

/// A checked view of a trust-anchor file.
#[derive(Debug, Clone, Copy)]
pub struct Anchors<'a> {
    body: &'a [u8],
}

fn field(body: &[u8], at: usize) -> Result<(&[u8], usize), Error> {
    let len = body
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or(Error::Truncated(at + MAGIC.len()))?;
    let bytes = body
        .get(at + 2..at + 2 + len)
        .ok_or(Error::Truncated(at + MAGIC.len()))?;
    Ok((bytes, at + 2 + len))
}

fn anchor_at(body: &[u8], at: usize) -> Result<(Anchor<'_>, usize), Error> {
    let (subject, next) = field(body, at)?;
    let (spki, after_spki) = field(body, next)?;
    let (nc, end) = field(body, after_spki)?;
    if subject.is_empty() || spki.is_empty() {
        return Err(Error::Empty(at + MAGIC.len()));
    }
    let anchor = Anchor {
        subject,
        spki,
        name_constraints: (!nc.is_empty()).then_some(nc),
    };
    Ok((anchor, end))
}

impl<'a> Anchors<'a> {
    /// Checks the magic and every field's bounds.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Anchors<'a>, Error> {
        let body = bytes.strip_prefix(&MAGIC[..]).ok_or(Error::Magic)?;
        let mut at = 0;
        while at < body.len() {
            at = anchor_at(body, at)?.1;
        }
        Ok(Anchors { body })
    }

    pub fn iter(&self) -> impl Iterator<Item = Anchor<'a>> + 'a {
        let body = self.body;
        let mut at = 0;
        core::iter::from_fn(move || {
            // new_checked walked every field already.
            let (anchor, next) = anchor_at(body, at).ok()?;
            at = next;
            Some(anchor)
        })
    }
}

/// The file for `anchors`. Fields longer than 65,535 bytes cannot be
/// written: such an anchor is left out, and counted in the second value.
pub fn encode<'a>(anchors: impl IntoIterator<Item = Anchor<'a>>) -> (Vec<u8>, usize) {
    let mut out = MAGIC.to_vec();
    let mut skipped = 0;
    for a in anchors {
        let nc = a.name_constraints.unwrap_or_default();
        let fits = [a.subject, a.spki, nc]
            .iter()
            .all(|f| f.len() <= usize::from(u16::MAX));
        if !fits || a.subject.is_empty() || a.spki.is_empty() {
            skipped += 1;
            continue;
        }
        for f in [a.subject, a.spki, nc] {
            out.extend_from_slice(&(f.len() as u16).to_be_bytes());
            out.extend_from_slice(f);
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = b"RIVETTA1\x00\x02su\x00\x03key\x00\x00\x00\x01S\x00\x01K\x00\x02nc";

    #[test]
    fn reads_anchors_with_and_without_name_constraints() {
        let anchors = Anchors::new_checked(FILE).unwrap();
        let all: Vec<Anchor> = anchors.iter().collect();
        assert_eq!(
            all,
            [
                Anchor {
                    subject: b"su",
                    spki: b"key",
                    name_constraints: None
                },
                Anchor {
                    subject: b"S",
                    spki: b"K",
                    name_constraints: Some(b"nc")
                }
            ]
        );
        assert_eq!(encode(all), (FILE.to_vec(), 0));
        assert_eq!(Anchors::new_checked(b"RIVETTA1").unwrap().iter().count(), 0);
    }

    #[test]
    fn damage_is_named() {
        assert_eq!(
            Anchors::new_checked(b"-----BEGIN").err(),
            Some(Error::Magic)
        );
        for cut in MAGIC.len() + 1..FILE.len() {
            if cut == 19 {
                // The end of the first anchor: a whole file of one.
                assert_eq!(
                    Anchors::new_checked(&FILE[..cut]).unwrap().iter().count(),
                    1
                );
                continue;
            }
            let err = Anchors::new_checked(&FILE[..cut]).err();
            assert!(matches!(err, Some(Error::Truncated(_))), "{cut}: {err:?}");
        }
        assert_eq!(
            Anchors::new_checked(b"RIVETTA1\x00\x00\x00\x01k\x00\x00").err(),
            Some(Error::Empty(8))
        );
        let huge = alloc::vec![1u8; 70_000];
        let (file, skipped) = encode([Anchor {
            subject: b"s",
            spki: &huge,
            name_constraints: None,
        }]);
        assert_eq!((file.as_slice(), skipped), (&MAGIC[..], 1));
    }
}

//! The image path's building blocks: one fixed buffer aligned for O_DIRECT,
//! streaming hashers, a fill loop that absorbs short reads, and a progress
//! meter that is given the time rather than reading a clock.

use crate::plan::HashAlgo;
use alloc::string::String;
use alloc::vec::Vec;
use embedded_io::Read;
use md5::Digest;

/// A heap buffer whose start is aligned to `align` bytes. It over-allocates
/// by `align` and slices at the aligned offset, so no `unsafe` is needed.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize, align: usize) -> AlignedBuf {
        assert!(align.is_power_of_two(), "alignment must be a power of two");
        let storage = alloc::vec![0u8; len + align];
        let start = storage.as_ptr().align_offset(align);
        AlignedBuf {
            storage,
            start,
            len,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// `value` with `decimals` digits after the point (width and alignment as
/// asked; halves round up), by integer arithmetic: core's float formatting would cost /init
/// 13 KB for a few progress lines.
pub struct Fixed(pub f64, pub u32);

impl core::fmt::Display for Fixed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        let scale = 10u64.pow(self.1.min(9));
        let negative = self.0 < 0.0;
        let magnitude = if negative { -self.0 } else { self.0 };
        // `as` saturates: NaN prints 0, infinity the largest u64.
        let scaled = (magnitude * scale as f64 + 0.5) as u64;
        let mut text = String::new();
        let sign = if negative && scaled > 0 { "-" } else { "" };
        let _ = match self.1 {
            0 => write!(text, "{sign}{scaled}"),
            d => write!(
                text,
                "{sign}{}.{:0w$}",
                scaled / scale,
                scaled % scale,
                w = d as usize
            ),
        };
        f.pad(&text)
    }
}

/// md5 / sha256 / sha512 over a stream.
///
/// With `std` the SHA-2 digests are ring's, which the TLS stack links
/// anyway (SHA-NI, AVX and plain paths chosen at run time): the sha2 crate's
/// own 25 KB of compression functions would be a second copy in /init. The
/// no_std core keeps the pure-Rust crate.
pub enum Hasher {
    Md5(md5::Md5),
    #[cfg(not(feature = "std"))]
    Sha256(sha2::Sha256),
    #[cfg(not(feature = "std"))]
    Sha512(sha2::Sha512),
    #[cfg(feature = "std")]
    Sha2(ring::digest::Context),
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| {
            [
                DIGITS[(b >> 4) as usize] as char,
                DIGITS[(b & 15) as usize] as char,
            ]
        })
        .collect()
}

impl Hasher {
    pub fn new(algo: HashAlgo) -> Hasher {
        match algo {
            HashAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            #[cfg(not(feature = "std"))]
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            #[cfg(not(feature = "std"))]
            HashAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            #[cfg(feature = "std")]
            HashAlgo::Sha256 => Hasher::Sha2(ring::digest::Context::new(&ring::digest::SHA256)),
            #[cfg(feature = "std")]
            HashAlgo::Sha512 => Hasher::Sha2(ring::digest::Context::new(&ring::digest::SHA512)),
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            #[cfg(not(feature = "std"))]
            Hasher::Sha256(h) => h.update(data),
            #[cfg(not(feature = "std"))]
            Hasher::Sha512(h) => h.update(data),
            #[cfg(feature = "std")]
            Hasher::Sha2(h) => h.update(data),
        }
    }
    /// The digest as lowercase hex, as Ironic compares it.
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex(&h.finalize()),
            #[cfg(not(feature = "std"))]
            Hasher::Sha256(h) => hex(&h.finalize()),
            #[cfg(not(feature = "std"))]
            Hasher::Sha512(h) => hex(&h.finalize()),
            #[cfg(feature = "std")]
            Hasher::Sha2(h) => hex(h.finish().as_ref()),
        }
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
/// Sources may return fewer bytes than asked (network reads do).
pub fn fill<R: Read + ?Sized>(src: &mut R, buf: &mut [u8]) -> Result<usize, R::Error> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Throughput and progress, from times the caller passes in (milliseconds
/// on any monotonic clock), so it is testable without sleeping.
pub struct Meter {
    start_ms: u64,
    last_report_ms: u64,
    every_ms: u64,
    pub total: Option<u64>,
    pub done: u64,
}

impl Meter {
    pub fn new(now_ms: u64, every_ms: u64, total: Option<u64>) -> Meter {
        Meter {
            start_ms: now_ms,
            last_report_ms: now_ms,
            every_ms,
            total,
            done: 0,
        }
    }

    /// Adds `bytes`; returns a progress line when one is due.
    pub fn advance(&mut self, bytes: u64, now_ms: u64) -> Option<String> {
        self.done += bytes;
        if now_ms.saturating_sub(self.last_report_ms) < self.every_ms {
            return None;
        }
        self.last_report_ms = now_ms;
        Some(self.line(now_ms))
    }

    pub fn mb_per_s(&self, now_ms: u64) -> f64 {
        let secs = now_ms.saturating_sub(self.start_ms) as f64 / 1000.0;
        if secs <= 0.0 {
            return 0.0;
        }
        self.done as f64 / 1e6 / secs
    }

    pub fn line(&self, now_ms: u64) -> String {
        let rate = self.mb_per_s(now_ms);
        let mib = self.done as f64 / (1u64 << 20) as f64;
        match self.total {
            Some(total) if total > 0 => {
                let pct = self.done as f64 * 100.0 / total as f64;
                let eta = if rate > 0.0 {
                    (total.saturating_sub(self.done)) as f64 / 1e6 / rate
                } else {
                    0.0
                };
                alloc::format!(
                    "{} MiB ({}%), {} MB/s, ETA {} s",
                    Fixed(mib, 1),
                    Fixed(pct, 0),
                    Fixed(rate, 1),
                    Fixed(eta, 0)
                )
            }
            _ => alloc::format!("{} MiB, {} MB/s", Fixed(mib, 1), Fixed(rate, 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_prints_as_core_formats_floats() {
        use alloc::format;
        for (v, d) in [
            (0.0, 1),
            (36.61, 1),
            (2.0, 2),
            (1234.5678, 2),
            (0.0004, 3),
            (99.96, 1),
            (7.4, 0),
        ] {
            assert_eq!(
                format!("{}", Fixed(v, d)),
                format!("{v:.prec$}", prec = d as usize),
                "{v} {d}"
            );
        }
        assert_eq!(format!("{:>12}", Fixed(2.401239, 6)), "    2.401239");
        // Halves round up (core rounds them to even): a progress line's business.
        assert_eq!(format!("{}", Fixed(0.25, 1)), "0.3");
        assert_eq!(format!("{}", Fixed(-1.26, 1)), "-1.3");
        assert_eq!(format!("{}", Fixed(-0.01, 1)), "0.0");
    }
    use core::convert::Infallible;

    #[test]
    fn aligned_buffers_are_aligned() {
        for align in [512, 4096, 1 << 20] {
            let mut b = AlignedBuf::new(3 * align, align);
            assert_eq!(b.as_mut_slice().as_ptr() as usize % align, 0);
            assert_eq!(b.len(), 3 * align);
        }
    }

    #[test]
    fn known_digests() {
        let cases = [
            (HashAlgo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (HashAlgo::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                HashAlgo::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (algo, want) in cases {
            let mut h = Hasher::new(algo);
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.finish_hex(), want);
        }
    }

    /// A source that returns at most 3 bytes a read.
    struct Trickle<'a>(&'a [u8]);
    impl embedded_io::ErrorType for Trickle<'_> {
        type Error = Infallible;
    }
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fill_absorbs_short_reads() {
        let mut src = Trickle(b"0123456789");
        let mut buf = [0u8; 8];
        assert_eq!(fill(&mut src, &mut buf).unwrap(), 8);
        assert_eq!(&buf, b"01234567");
        assert_eq!(fill(&mut src, &mut buf).unwrap(), 2);
        assert_eq!(fill(&mut src, &mut buf).unwrap(), 0);
    }

    #[test]
    fn meter_reports_on_schedule_with_scripted_time() {
        let mut m = Meter::new(1_000, 5_000, Some(100_000_000));
        assert_eq!(m.advance(10_000_000, 2_000), None);
        let line = m.advance(40_000_000, 6_000).unwrap();
        assert_eq!(line, "47.7 MiB (50%), 10.0 MB/s, ETA 5 s");
        assert_eq!(m.advance(1, 7_000), None);
        assert!((m.mb_per_s(11_000) - 5.0).abs() < 0.01);
    }
}

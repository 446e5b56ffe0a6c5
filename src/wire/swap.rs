//! The Linux swap signature (version 1, 4 KiB pages), what `mkswap -L` writes:
//! the first page holds the header at 1024 and "SWAPSPACE2" at its end.

use super::guid::Guid;
use core::fmt;

pub const PAGE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer than 10 pages: the kernel refuses such swap areas.
    TooSmall,
    /// Labels are at most 16 bytes.
    LabelTooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::TooSmall => "swap area smaller than 10 pages",
            Error::LabelTooLong => "swap label longer than 16 bytes",
        })
    }
}

/// The first page of a swap area of `size_bytes`.
pub fn header(size_bytes: u64, uuid: Guid, label: &str) -> Result<[u8; PAGE], Error> {
    let pages = size_bytes / PAGE as u64;
    if pages < 10 {
        return Err(Error::TooSmall);
    }
    if label.len() > 16 {
        return Err(Error::LabelTooLong);
    }
    let last_page = u32::try_from(pages - 1).unwrap_or(u32::MAX);
    let mut p = [0u8; PAGE];
    p[1024..1028].copy_from_slice(&1u32.to_le_bytes()); // version
    p[1028..1032].copy_from_slice(&last_page.to_le_bytes());
    // nr_badpages stays 0; uuid is stored in text order like libuuid's.
    p[1036..1052].copy_from_slice(&uuid.text_order());
    p[1052..1052 + label.len()].copy_from_slice(label.as_bytes());
    p[PAGE - 10..].copy_from_slice(b"SWAPSPACE2");
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::superblock::{probe, Kind};

    #[test]
    fn header_layout_and_probe_agree() {
        let uuid = Guid::parse("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        let p = header(64 << 20, uuid, "swap1").unwrap();
        assert_eq!(&p[1024..1032], &[1, 0, 0, 0, 0xff, 0x3f, 0, 0]);
        assert_eq!(&p[1036..1040], &[0x01, 0x23, 0x45, 0x67]);
        let fs = probe(&p).unwrap();
        assert_eq!(fs.kind, Kind::Swap);
        assert_eq!(fs.uuid, "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(fs.label.as_deref(), Some("swap1"));
        assert_eq!(header(4096 * 9, uuid, "x"), Err(Error::TooSmall));
        assert_eq!(
            header(1 << 20, uuid, "seventeen-bytes!!"),
            Err(Error::LabelTooLong)
        );
    }
}

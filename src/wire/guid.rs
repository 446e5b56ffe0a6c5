//! GUIDs as GPT stores them: the first three fields little-endian, the last
//! two big-endian ("mixed endian"). Printed lowercase, as blkid and lsblk do.

use core::fmt;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub const ZERO: Guid = Guid([0; 16]);

    /// Parses `C12A7328-F81F-11D2-BA4B-00A0C93EC93B` (any case).
    pub fn parse(s: &str) -> Option<Guid> {
        let b = s.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let hex: alloc::vec::Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut text = [0u8; 16];
        for (i, byte) in text.iter_mut().enumerate() {
            let pair = core::str::from_utf8(&hex[2 * i..2 * i + 2]).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Guid::from_text_order(text))
    }

    /// From the 16 bytes in the order they are printed.
    pub fn from_text_order(t: [u8; 16]) -> Guid {
        let mut g = t;
        g[0..4].reverse();
        g[4..6].reverse();
        g[6..8].reverse();
        Guid(g)
    }

    /// A random (version 4, RFC 4122 variant) GUID from 16 random bytes.
    pub fn random_v4(mut random: [u8; 16]) -> Guid {
        random[6] = (random[6] & 0x0f) | 0x40;
        random[8] = (random[8] & 0x3f) | 0x80;
        Guid::from_text_order(random)
    }

    /// The bytes in printed order (for big-endian UUID fields like ext4's).
    pub fn text_order(&self) -> [u8; 16] {
        let mut t = self.0;
        t[0..4].reverse();
        t[4..6].reverse();
        t[6..8].reverse();
        t
    }
}

/// Formats 16 bytes in printed order as `8-4-4-4-12` lowercase hex.
pub fn fmt_uuid(t: &[u8; 16], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (i, b) in t.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            f.write_str("-")?;
        }
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_uuid(&self.text_order(), f)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// Partition type GUIDs rivet writes (the ones parted uses for Ironic's layout).
pub mod types {
    use super::Guid;
    /// EFI System Partition.
    pub const ESP: Guid = Guid([
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ]);
    /// BIOS boot partition (GRUB's core image on GPT).
    pub const BIOS_BOOT: Guid = Guid([
        0x48, 0x61, 0x68, 0x21, 0x49, 0x64, 0x6f, 0x6e, 0x74, 0x4e, 0x65, 0x65, 0x64, 0x45, 0x46,
        0x49,
    ]);
    /// Linux filesystem data.
    pub const LINUX_DATA: Guid = Guid([
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ]);
    /// Linux swap.
    pub const LINUX_SWAP: Guid = Guid([
        0x6d, 0xfd, 0x57, 0x06, 0xab, 0xa4, 0xc4, 0x43, 0x84, 0xe5, 0x09, 0x33, 0xc8, 0x4b, 0x4f,
        0x4f,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn well_known_types_print_as_sgdisk_names_them() {
        assert_eq!(
            types::ESP.to_string(),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
        assert_eq!(
            types::BIOS_BOOT.to_string(),
            "21686148-6449-6e6f-744e-656564454649"
        );
        assert_eq!(
            types::LINUX_DATA.to_string(),
            "0fc63daf-8483-4772-8e79-3d69d8477de4"
        );
        assert_eq!(
            types::LINUX_SWAP.to_string(),
            "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
        );
        assert_eq!(
            Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
            Some(types::ESP)
        );
    }

    #[test]
    fn bad_text_and_v4_bits() {
        assert_eq!(Guid::parse("c12a7328f81f11d2ba4b00a0c93ec93b"), None);
        assert_eq!(Guid::parse("g12a7328-f81f-11d2-ba4b-00a0c93ec93b"), None);
        let g = Guid::random_v4([0xff; 16]).to_string();
        assert_eq!(&g[14..15], "4");
        assert_eq!(&g[19..20], "b");
    }
}

//! A ustar (POSIX.1-1988) archive writer: regular files only, which is
//! what the logs the conductor collects need (`log.collect_system_logs`
//! returns a base64 gzip tar). Field offsets per POSIX `<tar.h>`.

use alloc::format;
use alloc::vec::Vec;

const BLOCK: usize = 512;
const NAME: (usize, usize) = (0, 100);
const MODE: (usize, usize) = (100, 8);
const UID: (usize, usize) = (108, 8);
const GID: (usize, usize) = (116, 8);
const SIZE: (usize, usize) = (124, 12);
const MTIME: (usize, usize) = (136, 12);
const CHKSUM: (usize, usize) = (148, 8);
const TYPEFLAG: usize = 156;
const MAGIC: (usize, usize) = (257, 8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Names are limited to 100 bytes (no prefix field used).
    NameTooLong,
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    field[width] = 0;
}

/// Appends tar entries; [`Tar::finish`] adds the end-of-archive blocks.
#[derive(Default)]
pub struct Tar {
    out: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    pub fn file(&mut self, name: &str, mode: u32, mtime: u64, data: &[u8]) -> Result<(), Error> {
        if name.len() > NAME.1 {
            return Err(Error::NameTooLong);
        }
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[MODE.0..MODE.0 + MODE.1], mode as u64);
        octal(&mut h[UID.0..UID.0 + UID.1], 0);
        octal(&mut h[GID.0..GID.0 + GID.1], 0);
        octal(&mut h[SIZE.0..SIZE.0 + SIZE.1], data.len() as u64);
        octal(&mut h[MTIME.0..MTIME.0 + MTIME.1], mtime);
        h[TYPEFLAG] = b'0';
        h[MAGIC.0..MAGIC.0 + MAGIC.1].copy_from_slice(b"ustar\x0000");
        // The checksum is computed with its own field as spaces.
        h[CHKSUM.0..CHKSUM.0 + CHKSUM.1].fill(b' ');
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let text = format!("{sum:06o}\0 ");
        h[CHKSUM.0..CHKSUM.0 + CHKSUM.1].copy_from_slice(text.as_bytes());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.resize(self.out.len() + pad, 0);
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 2 * BLOCK, 0);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_header_fields_at_their_offsets() {
        let mut t = Tar::new();
        t.file("rivet.log", 0o644, 1_764_000_000, b"hello\n")
            .unwrap();
        let a = t.finish();
        assert_eq!(a.len(), 512 + 512 + 1024);
        assert_eq!(&a[0..10], b"rivet.log\0");
        assert_eq!(&a[100..108], b"0000644\0");
        assert_eq!(&a[124..136], b"00000000006\0");
        assert_eq!(&a[136..148], b"15111100400\0"); // 1764000000 in octal
        assert_eq!(a[156], b'0');
        assert_eq!(&a[257..265], b"ustar\x0000");
        let stored = core::str::from_utf8(&a[148..154]).unwrap();
        let mut h = a[..512].to_vec();
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
        assert_eq!(&a[156..157], b"0");
        assert_eq!(&a[512..518], b"hello\n");
        assert!(a[518..].iter().all(|&b| b == 0));
        assert_eq!(
            Tar::new().file(&"x".repeat(101), 0o644, 0, b""),
            Err(Error::NameTooLong)
        );
    }
}

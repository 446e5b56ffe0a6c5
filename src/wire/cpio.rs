//! cpio "newc" archives (the initramfs format, `Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Every entry is a 110-byte ASCII header, the NUL-terminated name padded to
//! a multiple of four bytes (counting from the header's start), then the data
//! padded the same way. The archive ends with an entry named `TRAILER!!!`.

use alloc::vec::Vec;
use core::fmt;

pub const MAGIC: &[u8; 6] = b"070701";
pub const HEADER_LEN: usize = 110;
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `mode`.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

mod field {
    //! Byte offsets of the eight-hex-digit fields after the magic.
    pub const INO: usize = 6;
    pub const MODE: usize = 14;
    pub const UID: usize = 22;
    pub const GID: usize = 30;
    pub const NLINK: usize = 38;
    pub const MTIME: usize = 46;
    pub const FILESIZE: usize = 54;
    pub const NAMESIZE: usize = 94;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends inside a header, name or data.
    Truncated,
    /// The header does not start with `070701`.
    BadMagic,
    /// A header field is not eight hex digits.
    BadHex,
    /// The name is empty, not NUL-terminated, or not UTF-8.
    BadName,
    /// The archive has no `TRAILER!!!` entry.
    NoTrailer,
    /// A name or file is too large for the format's 32-bit fields.
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "cpio archive truncated",
            Error::BadMagic => "cpio header magic is not 070701 (newc)",
            Error::BadHex => "cpio header field is not hexadecimal",
            Error::BadName => "cpio entry name is malformed",
            Error::NoTrailer => "cpio archive has no TRAILER!!! entry",
            Error::TooLarge => "cpio entry exceeds 4 GiB",
        })
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// A read-only view of one newc header.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if &b[..6] != MAGIC {
            return Err(Error::BadMagic);
        }
        let header = Header { buffer };
        for i in 0..13 {
            header.hex(6 + 8 * i)?;
        }
        Ok(header)
    }

    fn hex(&self, at: usize) -> Result<u32, Error> {
        let digits = &self.buffer.as_ref()[at..at + 8];
        let mut value = 0u32;
        for &d in digits {
            let v = (d as char).to_digit(16).ok_or(Error::BadHex)?;
            value = value << 4 | v;
        }
        Ok(value)
    }

    // Fields were validated in new_checked, so these cannot fail.
    pub fn ino(&self) -> u32 {
        self.hex(field::INO).unwrap_or(0)
    }
    pub fn mode(&self) -> u32 {
        self.hex(field::MODE).unwrap_or(0)
    }
    pub fn uid(&self) -> u32 {
        self.hex(field::UID).unwrap_or(0)
    }
    pub fn gid(&self) -> u32 {
        self.hex(field::GID).unwrap_or(0)
    }
    pub fn nlink(&self) -> u32 {
        self.hex(field::NLINK).unwrap_or(0)
    }
    pub fn mtime(&self) -> u32 {
        self.hex(field::MTIME).unwrap_or(0)
    }
    pub fn file_size(&self) -> u32 {
        self.hex(field::FILESIZE).unwrap_or(0)
    }
    pub fn name_size(&self) -> u32 {
        self.hex(field::NAMESIZE).unwrap_or(0)
    }
}

/// One archive member as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub data: &'a [u8],
}

/// Iterates over the entries of an archive, stopping at the trailer.
pub struct Reader<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(archive: &'a [u8]) -> Self {
        Reader {
            rest: archive,
            done: false,
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, Error> {
        let buf = self.rest;
        if buf.is_empty() {
            return Err(Error::NoTrailer);
        }
        let header = Header::new_checked(buf)?;
        let name_size = header.name_size() as usize;
        let file_size = header.file_size() as usize;
        if name_size == 0 {
            return Err(Error::BadName);
        }
        let name_end = HEADER_LEN.checked_add(name_size).ok_or(Error::Truncated)?;
        let data_start = name_end + pad4(name_end);
        let data_end = data_start.checked_add(file_size).ok_or(Error::Truncated)?;
        if buf.len() < name_end {
            return Err(Error::Truncated);
        }
        let raw_name = &buf[HEADER_LEN..name_end];
        let (last, name_bytes) = raw_name.split_last().ok_or(Error::BadName)?;
        if *last != 0 || name_bytes.contains(&0) {
            return Err(Error::BadName);
        }
        let name = core::str::from_utf8(name_bytes).map_err(|_| Error::BadName)?;
        if name == TRAILER {
            self.done = true;
            return Ok(None);
        }
        if buf.len() < data_end {
            return Err(Error::Truncated);
        }
        let next = (data_end + pad4(data_end)).min(buf.len());
        let entry = Entry {
            name,
            mode: header.mode(),
            uid: header.uid(),
            gid: header.gid(),
            mtime: header.mtime(),
            data: &buf[data_start..data_end],
        };
        self.rest = &buf[next..];
        Ok(Some(entry))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Appends newc entries to a byte vector. Inode numbers are assigned in
/// order, so the same sequence of calls always gives the same bytes.
pub struct Writer {
    out: Vec<u8>,
    next_ino: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), Error> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), Error> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), Error> {
        self.entry(name, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Writes the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        // The trailer's fields are all zero but nlink 1, as GNU cpio writes it.
        self.raw(TRAILER, 0, 0, 1, &[]);
        self.out
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> Result<(), Error> {
        if name.is_empty() || name.contains('\0') || name == TRAILER {
            return Err(Error::BadName);
        }
        if u32::try_from(data.len()).is_err() || name.len() >= u32::MAX as usize {
            return Err(Error::TooLarge);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.raw(name, ino, mode, nlink, data);
        Ok(())
    }

    fn raw(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, data: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(MAGIC);
        let name_size = name.len() as u32 + 1;
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name_size,
            0,
        ];
        for value in fields {
            push_hex8(&mut self.out, value);
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        let header_and_name = self.out.len() - start;
        self.out.resize(self.out.len() + pad4(header_and_name), 0);
        self.out.extend_from_slice(data);
        self.out.resize(self.out.len() + pad4(data.len()), 0);
    }
}

fn push_hex8(out: &mut Vec<u8>, value: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        out.push(DIGITS[(value >> (shift * 4) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// `echo hi > a; echo a | cpio -o -H newc --reproducible` with ino 1,
    /// uid/gid 0, mtime 0, mode 0100644, written out by hand.
    fn one_file_archive() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"070701");
        v.extend_from_slice(b"00000001"); // ino
        v.extend_from_slice(b"000081a4"); // mode 0100644
        v.extend_from_slice(b"00000000"); // uid
        v.extend_from_slice(b"00000000"); // gid
        v.extend_from_slice(b"00000001"); // nlink
        v.extend_from_slice(b"00000000"); // mtime
        v.extend_from_slice(b"00000003"); // filesize
        v.extend_from_slice(b"00000000"); // devmajor
        v.extend_from_slice(b"00000000"); // devminor
        v.extend_from_slice(b"00000000"); // rdevmajor
        v.extend_from_slice(b"00000000"); // rdevminor
        v.extend_from_slice(b"00000002"); // namesize "a\0"
        v.extend_from_slice(b"00000000"); // check
        v.extend_from_slice(b"a\0"); // 112 bytes: already aligned
        v.extend_from_slice(b"hi\n\0"); // data + 1 pad
        v.extend_from_slice(b"07070100000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000b00000000");
        v.extend_from_slice(b"TRAILER!!!\0\0\0\0"); // 110+11=121 → pad 3
        v
    }

    #[test]
    fn writer_matches_literal_bytes() {
        let mut w = Writer::new();
        w.file("a", 0o644, b"hi\n").unwrap();
        assert_eq!(w.finish(), one_file_archive());
    }

    #[test]
    fn reader_reads_literal_bytes() {
        let bytes = one_file_archive();
        let entries: Vec<_> = Reader::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            entries,
            vec![Entry {
                name: "a",
                mode: 0o100644,
                uid: 0,
                gid: 0,
                mtime: 0,
                data: b"hi\n"
            }]
        );
    }

    #[test]
    fn round_trip_dirs_files_symlinks() {
        let mut w = Writer::new();
        w.dir("dev", 0o755).unwrap();
        w.file("init", 0o755, &[0x7f, b'E', b'L', b'F', 1]).unwrap();
        w.symlink("sbin", "/").unwrap();
        let bytes = w.finish();
        assert_eq!(bytes.len() % 4, 0);
        let entries: Vec<_> = Reader::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, "dev");
        assert_eq!(entries[0].mode, S_IFDIR | 0o755);
        assert_eq!(entries[1].data, &[0x7f, b'E', b'L', b'F', 1]);
        assert_eq!(entries[2].mode & 0o170000, S_IFLNK);
        assert_eq!(entries[2].data, b"/");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = one_file_archive();
        // The last 3 bytes are the trailer's padding, which may be cut off.
        for len in 0..bytes.len() - 3 {
            let result: Result<Vec<_>, _> = Reader::new(&bytes[..len]).collect();
            assert!(result.is_err(), "prefix of {len} bytes accepted");
        }
    }

    #[test]
    fn malformed_headers_are_named() {
        let mut bad_magic = one_file_archive();
        bad_magic[5] = b'7'; // 070707 is the old "odc" format
        assert_eq!(Reader::new(&bad_magic).next(), Some(Err(Error::BadMagic)));

        let mut bad_hex = one_file_archive();
        bad_hex[20] = b'x';
        assert_eq!(Reader::new(&bad_hex).next(), Some(Err(Error::BadHex)));

        let mut no_nul = one_file_archive();
        no_nul[111] = b'b';
        assert_eq!(Reader::new(&no_nul).next(), Some(Err(Error::BadName)));

        let mut zero_name = one_file_archive();
        zero_name[94..102].copy_from_slice(b"00000000");
        assert_eq!(Reader::new(&zero_name).next(), Some(Err(Error::BadName)));

        let mut huge = one_file_archive();
        huge[54..62].copy_from_slice(b"ffffffff");
        assert_eq!(Reader::new(&huge).next(), Some(Err(Error::Truncated)));
    }

    #[test]
    fn writer_refuses_reserved_and_empty_names() {
        let mut w = Writer::new();
        assert_eq!(w.file("", 0o644, b""), Err(Error::BadName));
        assert_eq!(w.file(TRAILER, 0o644, b""), Err(Error::BadName));
        assert_eq!(w.file("a\0b", 0o644, b""), Err(Error::BadName));
    }
}

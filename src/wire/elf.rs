//! Just enough ELF64 to find a section by name in a kernel module (`.ko`):
//! the ELF header, the section header table and the section-name string table.
//! Only little-endian ELF64 is accepted, which is what x86_64 modules are.

use core::fmt;

mod field {
    //! ELF64 header offsets (System V ABI, "ELF Header").
    pub const MAGIC: core::ops::Range<usize> = 0..4;
    pub const CLASS: usize = 4;
    pub const DATA: usize = 5;
    pub const SHOFF: usize = 0x28;
    pub const SHENTSIZE: usize = 0x3a;
    pub const SHNUM: usize = 0x3c;
    pub const SHSTRNDX: usize = 0x3e;
    pub const HEADER_LEN: usize = 0x40;

    /// Section header offsets.
    pub const SH_NAME: usize = 0x00;
    pub const SH_OFFSET: usize = 0x18;
    pub const SH_SIZE: usize = 0x20;
    pub const SH_LEN: usize = 0x40;
}

const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadMagic,
    /// Not ELF64 (e.g. a 32-bit object).
    UnsupportedClass,
    /// Not little-endian.
    UnsupportedEndian,
    /// The section header table or a section lies outside the file.
    BadSectionTable,
    /// No section of the requested name.
    NoSection,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "ELF file truncated",
            Error::BadMagic => "not an ELF file (bad magic)",
            Error::UnsupportedClass => "not a 64-bit ELF file",
            Error::UnsupportedEndian => "not a little-endian ELF file",
            Error::BadSectionTable => "ELF section table points outside the file",
            Error::NoSection => "ELF section not found",
        })
    }
}

/// A checked view of an ELF64 little-endian file.
pub struct Elf<'a> {
    bytes: &'a [u8],
    shoff: usize,
    shnum: usize,
    shstrndx: usize,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, Error> {
    let s = b.get(at..at + 2).ok_or(Error::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, Error> {
    let s = b.get(at..at + 4).ok_or(Error::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, Error> {
    let s = b.get(at..at + 8).ok_or(Error::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

fn to_usize(v: u64) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::BadSectionTable)
}

impl<'a> Elf<'a> {
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < field::HEADER_LEN {
            if bytes.len() >= 4 && &bytes[field::MAGIC] != b"\x7fELF" {
                return Err(Error::BadMagic);
            }
            return Err(Error::Truncated);
        }
        if &bytes[field::MAGIC] != b"\x7fELF" {
            return Err(Error::BadMagic);
        }
        if bytes[field::CLASS] != ELFCLASS64 {
            return Err(Error::UnsupportedClass);
        }
        if bytes[field::DATA] != ELFDATA2LSB {
            return Err(Error::UnsupportedEndian);
        }
        let shoff = to_usize(u64_at(bytes, field::SHOFF)?)?;
        let shentsize = u16_at(bytes, field::SHENTSIZE)? as usize;
        let shnum = u16_at(bytes, field::SHNUM)? as usize;
        let shstrndx = u16_at(bytes, field::SHSTRNDX)? as usize;
        if shnum == 0 || shentsize != field::SH_LEN || shstrndx >= shnum {
            return Err(Error::BadSectionTable);
        }
        let table_end = shnum
            .checked_mul(field::SH_LEN)
            .and_then(|n| n.checked_add(shoff))
            .ok_or(Error::BadSectionTable)?;
        if table_end > bytes.len() {
            return Err(Error::BadSectionTable);
        }
        Ok(Elf {
            bytes,
            shoff,
            shnum,
            shstrndx,
        })
    }

    /// Contents of section `index`, bounds-checked against the file.
    fn section_data(&self, index: usize) -> Result<&'a [u8], Error> {
        let sh = self.shoff + index * field::SH_LEN;
        let offset = to_usize(u64_at(self.bytes, sh + field::SH_OFFSET)?)?;
        let size = to_usize(u64_at(self.bytes, sh + field::SH_SIZE)?)?;
        let end = offset.checked_add(size).ok_or(Error::BadSectionTable)?;
        self.bytes.get(offset..end).ok_or(Error::BadSectionTable)
    }

    /// The bytes of the first section called `name`.
    pub fn section(&self, name: &str) -> Result<&'a [u8], Error> {
        let names = self.section_data(self.shstrndx)?;
        for index in 0..self.shnum {
            let sh = self.shoff + index * field::SH_LEN;
            let name_off = u32_at(self.bytes, sh + field::SH_NAME)? as usize;
            let tail = names.get(name_off..).ok_or(Error::BadSectionTable)?;
            let len = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            if &tail[..len] == name.as_bytes() {
                return self.section_data(index);
            }
        }
        Err(Error::NoSection)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A minimal relocatable ELF64 with three sections: the null section,
    /// `.shstrtab` and `.modinfo` holding `contents`.
    pub(crate) fn tiny_elf(contents: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.shstrtab\0.modinfo\0";
        let mut v = Vec::new();
        // ELF header
        v.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&1u16.to_le_bytes()); // e_type ET_REL
        v.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine x86_64
        v.extend_from_slice(&1u32.to_le_bytes()); // e_version
        v.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        v.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
        let data_start = 0x40;
        let modinfo_at = data_start + shstrtab.len();
        let shoff = (modinfo_at + contents.len() + 7) & !7;
        v.extend_from_slice(&(shoff as u64).to_le_bytes()); // e_shoff
        v.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        v.extend_from_slice(&0x40u16.to_le_bytes()); // e_ehsize
        v.extend_from_slice(&0u16.to_le_bytes()); // e_phentsize
        v.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
        v.extend_from_slice(&0x40u16.to_le_bytes()); // e_shentsize
        v.extend_from_slice(&3u16.to_le_bytes()); // e_shnum
        v.extend_from_slice(&1u16.to_le_bytes()); // e_shstrndx
        assert_eq!(v.len(), 0x40);
        v.extend_from_slice(shstrtab);
        v.extend_from_slice(contents);
        v.resize(shoff, 0);
        let section = |v: &mut Vec<u8>, name: u32, offset: usize, size: usize| {
            let mut sh = [0u8; 0x40];
            sh[0..4].copy_from_slice(&name.to_le_bytes());
            sh[4..8].copy_from_slice(&1u32.to_le_bytes()); // SHT_PROGBITS
            sh[0x18..0x20].copy_from_slice(&(offset as u64).to_le_bytes());
            sh[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            v.extend_from_slice(&sh);
        };
        v.extend_from_slice(&[0u8; 0x40]);
        section(&mut v, 1, data_start, shstrtab.len());
        section(&mut v, 11, modinfo_at, contents.len());
        v
    }

    #[test]
    fn finds_named_section() {
        let elf = tiny_elf(b"name=demo\0");
        let parsed = Elf::new_checked(&elf).unwrap();
        assert_eq!(parsed.section(".modinfo").unwrap(), b"name=demo\0");
        assert_eq!(parsed.section(".text").err(), Some(Error::NoSection));
    }

    #[test]
    fn rejects_non_elf_and_wrong_class() {
        assert_eq!(
            Elf::new_checked(
                b"MZ\x90\x00 this is a PE file, long enough to pass the length check...."
            )
            .err(),
            Some(Error::BadMagic)
        );
        let mut elf32 = tiny_elf(b"");
        elf32[4] = 1;
        assert_eq!(
            Elf::new_checked(&elf32).err(),
            Some(Error::UnsupportedClass)
        );
        let mut big = tiny_elf(b"");
        big[5] = 2;
        assert_eq!(Elf::new_checked(&big).err(), Some(Error::UnsupportedEndian));
    }

    #[test]
    fn section_table_outside_file_is_refused() {
        let mut elf = tiny_elf(b"x");
        elf[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Elf::new_checked(&elf).err(), Some(Error::BadSectionTable));

        // A section whose offset + size runs past the end.
        let mut elf = tiny_elf(b"x");
        let len = elf.len();
        let modinfo_sh = len - 0x40;
        elf[modinfo_sh + 0x20..modinfo_sh + 0x28].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let parsed = Elf::new_checked(&elf).unwrap();
        assert_eq!(
            parsed.section(".modinfo").err(),
            Some(Error::BadSectionTable)
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let elf = tiny_elf(b"name=demo\0");
        for len in 0..elf.len() {
            let ok = Elf::new_checked(&elf[..len]).and_then(|e| e.section(".modinfo").map(|_| ()));
            assert!(ok.is_err(), "prefix of {len} bytes accepted");
        }
    }
}

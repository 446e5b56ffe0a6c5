//! UEFI boot variables as the firmware and efivarfs store them: the
//! `EFI_LOAD_OPTION` of a `Boot####` variable (UEFI 2.10 §3.1.3), the
//! device path nodes it names (§10.3: hard drive media, file path, end),
//! `BootOrder`, and the `BOOTX64.CSV` hint files shim installs next to its
//! loader. No policy here: which loader to register is `boot::uefi`'s.

use super::guid::Guid;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// `EFI_GLOBAL_VARIABLE`, the namespace of `Boot####` and `BootOrder`.
pub const GLOBAL_VARIABLE: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS: what efibootmgr
/// gives boot variables (efivarfs stores them as the first four bytes).
pub const BOOT_VARIABLE_ATTRIBUTES: u32 = 0x7;

/// The entry takes part in the boot order.
pub const LOAD_OPTION_ACTIVE: u32 = 0x1;

mod field {
    pub const ATTRIBUTES: usize = 0;
    pub const FILE_PATH_LIST_LENGTH: usize = 4;
    pub const DESCRIPTION: usize = 6;
}

/// Device path node types and subtypes rivet writes or reads.
pub mod node {
    pub const MEDIA: u8 = 0x04;
    pub const HARD_DRIVE: u8 = 0x01;
    pub const FILE_PATH: u8 = 0x04;
    pub const HARDWARE: u8 = 0x01;
    pub const PCI: u8 = 0x01;
    pub const ACPI: u8 = 0x02;
    pub const ACPI_HID: u8 = 0x01;
    pub const MESSAGING: u8 = 0x03;
    pub const MAC: u8 = 0x0b;
    pub const END: u8 = 0x7f;
    pub const END_ENTIRE: u8 = 0xff;
    pub const HARD_DRIVE_LEN: usize = 42;
    pub const END_NODE: [u8; 4] = [END, END_ENTIRE, 4, 0];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    /// The description has no UCS-2 NUL before the device paths.
    UnterminatedDescription,
    /// A node shorter than its header, longer than the list, or no end node.
    BadDevicePath,
    /// A UCS-2 or u16 array with an odd byte count.
    OddLength,
    /// A boot CSV without a "loader,label" line.
    BadCsv,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "load option truncated",
            Error::UnterminatedDescription => "load option description not terminated",
            Error::BadDevicePath => "malformed device path",
            Error::OddLength => "odd number of bytes in a UCS-2 or u16 array",
            Error::BadCsv => "boot CSV has no 'loader,label' fields",
        })
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn ucs2_nul(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(core::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn decode_ucs2(b: &[u8]) -> String {
    let units = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or('\u{fffd}'))
        .collect()
}

/// How a hard drive node names its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSignature {
    /// GPT: the partition's unique GUID.
    Gpt(Guid),
    /// MBR: the disk signature at byte 440.
    Mbr(u32),
}

/// A partition as the firmware finds it: number, start and size in logical
/// blocks, and the signature that tells it which disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardDrive {
    pub number: u32,
    pub start_lba: u64,
    pub size_lba: u64,
    pub signature: DiskSignature,
}

impl HardDrive {
    pub fn encode(&self) -> [u8; node::HARD_DRIVE_LEN] {
        let mut n = [0u8; node::HARD_DRIVE_LEN];
        n[0] = node::MEDIA;
        n[1] = node::HARD_DRIVE;
        n[2..4].copy_from_slice(&(node::HARD_DRIVE_LEN as u16).to_le_bytes());
        n[4..8].copy_from_slice(&self.number.to_le_bytes());
        n[8..16].copy_from_slice(&self.start_lba.to_le_bytes());
        n[16..24].copy_from_slice(&self.size_lba.to_le_bytes());
        // Partition format then signature type: 1 = MBR, 2 = GPT/GUID.
        match self.signature {
            DiskSignature::Gpt(g) => {
                n[24..40].copy_from_slice(&g.0);
                n[40] = 2;
                n[41] = 2;
            }
            DiskSignature::Mbr(s) => {
                n[24..28].copy_from_slice(&s.to_le_bytes());
                n[40] = 1;
                n[41] = 1;
            }
        }
        n
    }

    /// Reads the data of a hard drive node (after the 4-byte header).
    pub fn parse(data: &[u8]) -> Result<HardDrive, Error> {
        if data.len() != node::HARD_DRIVE_LEN - 4 {
            return Err(Error::BadDevicePath);
        }
        let signature = match (data[36], data[37]) {
            (2, 2) => {
                let mut g = [0u8; 16];
                g.copy_from_slice(&data[20..36]);
                DiskSignature::Gpt(Guid(g))
            }
            (1, 1) => DiskSignature::Mbr(u32_at(data, 20)),
            _ => return Err(Error::BadDevicePath),
        };
        Ok(HardDrive {
            number: u32_at(data, 0),
            start_lba: u64_at(data, 4),
            size_lba: u64_at(data, 12),
            signature,
        })
    }
}

/// A file path node: `\EFI\debian\shimx64.efi`, UCS-2, NUL-terminated.
pub fn file_path_node(path: &str) -> Vec<u8> {
    let name = ucs2_nul(path);
    let mut n = Vec::with_capacity(4 + name.len());
    n.extend_from_slice(&[node::MEDIA, node::FILE_PATH]);
    n.extend_from_slice(&((4 + name.len()) as u16).to_le_bytes());
    n.extend_from_slice(&name);
    n
}

/// The device path efibootmgr writes for `-d DISK -p N -l LOADER`: the
/// partition, the file, the end.
pub fn loader_path(hd: &HardDrive, loader: &str) -> Vec<u8> {
    let mut list = hd.encode().to_vec();
    list.extend_from_slice(&file_path_node(loader));
    list.extend_from_slice(&node::END_NODE);
    list
}

/// Encodes an `EFI_LOAD_OPTION`.
pub fn load_option(attributes: u32, description: &str, file_path_list: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&attributes.to_le_bytes());
    out.extend_from_slice(&(file_path_list.len() as u16).to_le_bytes());
    out.extend_from_slice(&ucs2_nul(description));
    out.extend_from_slice(file_path_list);
    out
}

/// A view over an `EFI_LOAD_OPTION`.
pub struct LoadOption<T: AsRef<[u8]>> {
    buffer: T,
    paths_at: usize,
}

impl<T: AsRef<[u8]>> LoadOption<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < field::DESCRIPTION + 2 {
            return Err(Error::Truncated);
        }
        let mut at = field::DESCRIPTION;
        loop {
            if at + 2 > b.len() {
                return Err(Error::UnterminatedDescription);
            }
            if u16_at(b, at) == 0 {
                break;
            }
            at += 2;
        }
        let paths_at = at + 2;
        let list_len = u16_at(b, field::FILE_PATH_LIST_LENGTH) as usize;
        if paths_at + list_len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(LoadOption { buffer, paths_at })
    }

    pub fn attributes(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::ATTRIBUTES)
    }

    pub fn description(&self) -> String {
        decode_ucs2(&self.buffer.as_ref()[field::DESCRIPTION..self.paths_at])
    }

    pub fn file_path_list(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let len = u16_at(b, field::FILE_PATH_LIST_LENGTH) as usize;
        &b[self.paths_at..self.paths_at + len]
    }

    /// Bytes after the device paths (load options for the loader).
    pub fn optional_data(&self) -> &[u8] {
        &self.buffer.as_ref()[self.paths_at + self.file_path_list().len()..]
    }
}

/// One device path node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node<'a> {
    pub kind: u8,
    pub subtype: u8,
    pub data: &'a [u8],
}

/// The nodes of the first device path in a list, up to its end node.
pub fn nodes(list: &[u8]) -> Result<Vec<Node<'_>>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        if at + 4 > list.len() {
            return Err(Error::BadDevicePath);
        }
        let len = u16_at(list, at + 2) as usize;
        if len < 4 || at + len > list.len() {
            return Err(Error::BadDevicePath);
        }
        let n = Node {
            kind: list[at],
            subtype: list[at + 1],
            data: &list[at + 4..at + len],
        };
        if n.kind == node::END && n.subtype == node::END_ENTIRE {
            return Ok(out);
        }
        out.push(n);
        at += len;
    }
}

/// A device path as efibootmgr -v prints it, for logs:
/// `HD(1,GPT,<guid>,0x800,0x32000)/File(\EFI\BOOT\BOOTX64.EFI)`.
pub fn describe(list: &[u8]) -> String {
    let Ok(nodes) = nodes(list) else {
        return String::from("<malformed device path>");
    };
    let parts: Vec<String> = nodes
        .iter()
        .map(|n| match (n.kind, n.subtype) {
            (node::MEDIA, node::HARD_DRIVE) => match HardDrive::parse(n.data) {
                Ok(hd) => {
                    let sig = match hd.signature {
                        DiskSignature::Gpt(g) => format!("GPT,{g}"),
                        DiskSignature::Mbr(s) => format!("MBR,0x{s:x}"),
                    };
                    format!(
                        "HD({},{sig},0x{:x},0x{:x})",
                        hd.number, hd.start_lba, hd.size_lba
                    )
                }
                Err(_) => String::from("HD(?)"),
            },
            (node::MEDIA, node::FILE_PATH) => format!("File({})", decode_ucs2(n.data)),
            // The nodes a firmware's own entries start with (network, CD).
            (node::ACPI, node::ACPI_HID) if n.data.len() >= 8 => {
                let (hid, uid) = (u32_at(n.data, 0), u32_at(n.data, 4));
                match hid {
                    0x0a03_41d0 => format!("PciRoot(0x{uid:x})"),
                    0x0a08_41d0 => format!("PcieRoot(0x{uid:x})"),
                    _ => format!("Acpi(0x{hid:x},0x{uid:x})"),
                }
            }
            (node::HARDWARE, node::PCI) if n.data.len() >= 2 => {
                format!("Pci(0x{:x},0x{:x})", n.data[1], n.data[0])
            }
            (node::MESSAGING, node::MAC) if n.data.len() >= 33 => {
                let mac: String = n.data[..6].iter().map(|b| format!("{b:02x}")).collect();
                format!("MAC({mac},{})", n.data[32])
            }
            (k, s) => format!("Node({k:#x},{s:#x})"),
        })
        .collect();
    parts.join("/")
}

/// `Boot0003` for 3: the name efibootmgr and the firmware use.
pub fn boot_variable(number: u16) -> String {
    format!("Boot{number:04X}")
}

/// The number of a `Boot####` variable name (four hex digits, any case).
pub fn boot_number(name: &str) -> Option<u16> {
    let hex = name.strip_prefix("Boot")?;
    if hex.len() != 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// `BootOrder`: an array of little-endian u16 entry numbers.
pub fn parse_boot_order(data: &[u8]) -> Result<Vec<u16>, Error> {
    if data.len() % 2 != 0 {
        return Err(Error::OddLength);
    }
    Ok(data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect())
}

pub fn encode_boot_order(order: &[u16]) -> Vec<u8> {
    order.iter().flat_map(|n| n.to_le_bytes()).collect()
}

/// What a `BOOTX64.CSV` says: the loader (a file name in the CSV's own
/// directory) and the entry's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootCsv {
    pub loader: String,
    pub label: String,
}

/// Parses a boot CSV: UTF-16 (little-endian unless a byte order mark says
/// otherwise) `loader,label,options,description`. Fields are taken as
/// written, as ironic-python-agent takes them.
pub fn parse_boot_csv(bytes: &[u8]) -> Result<BootCsv, Error> {
    let (body, big_endian) = match bytes {
        [0xff, 0xfe, rest @ ..] => (rest, false),
        [0xfe, 0xff, rest @ ..] => (rest, true),
        _ => (bytes, false),
    };
    if body.len() % 2 != 0 {
        return Err(Error::OddLength);
    }
    let units = body.chunks_exact(2).map(|c| {
        if big_endian {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_le_bytes([c[0], c[1]])
        }
    });
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or('\u{fffd}'))
        .collect();
    let mut fields = text.splitn(4, ',');
    let loader = fields.next().unwrap_or("");
    let label = fields.next().ok_or(Error::BadCsv)?;
    if loader.is_empty() {
        return Err(Error::BadCsv);
    }
    Ok(BootCsv {
        loader: loader.into(),
        label: label.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const PARTUUID: &str = "9c6a3f2e-5d1b-4c7a-8e0f-112233445566";

    fn debian_entry() -> Vec<u8> {
        let hd = HardDrive {
            number: 1,
            start_lba: 0x800,
            size_lba: 0x32000,
            signature: DiskSignature::Gpt(Guid::parse(PARTUUID).unwrap()),
        };
        load_option(
            LOAD_OPTION_ACTIVE,
            "debian",
            &loader_path(&hd, "\\EFI\\debian\\shimx64.efi"),
        )
    }

    #[test]
    fn load_option_bytes_are_what_efibootmgr_writes() {
        let mut want: Vec<u8> = vec![
            0x01, 0x00, 0x00, 0x00, // LOAD_OPTION_ACTIVE
            0x62, 0x00, // file path list: 42 (HD) + 52 (file) + 4 (end) bytes
        ];
        // "debian" UCS-2 + NUL
        for c in b"debian" {
            want.extend_from_slice(&[*c, 0]);
        }
        want.extend_from_slice(&[0, 0]);
        // HD(1,GPT,9c6a3f2e-…,0x800,0x32000)
        want.extend_from_slice(&[0x04, 0x01, 0x2a, 0x00]);
        want.extend_from_slice(&[0x01, 0, 0, 0]);
        want.extend_from_slice(&[0x00, 0x08, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0x00, 0x20, 0x03, 0, 0, 0, 0, 0]);
        // Mixed-endian GUID, as GPT stores it.
        want.extend_from_slice(&[
            0x2e, 0x3f, 0x6a, 0x9c, 0x1b, 0x5d, 0x7a, 0x4c, 0x8e, 0x0f, 0x11, 0x22, 0x33, 0x44,
            0x55, 0x66,
        ]);
        want.extend_from_slice(&[0x02, 0x02]);
        // File(\EFI\debian\shimx64.efi): 23 chars + NUL = 48 bytes + 4.
        want.extend_from_slice(&[0x04, 0x04, 0x34, 0x00]);
        for c in b"\\EFI\\debian\\shimx64.efi" {
            want.extend_from_slice(&[*c, 0]);
        }
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&[0x7f, 0xff, 0x04, 0x00]);
        assert_eq!(debian_entry(), want);
    }

    #[test]
    fn load_option_reads_back() {
        let bytes = debian_entry();
        let opt = LoadOption::new_checked(&bytes[..]).unwrap();
        assert_eq!(opt.attributes(), LOAD_OPTION_ACTIVE);
        assert_eq!(opt.description(), "debian");
        assert_eq!(opt.optional_data(), &[] as &[u8]);
        assert_eq!(
            describe(opt.file_path_list()),
            format!("HD(1,GPT,{PARTUUID},0x800,0x32000)/File(\\EFI\\debian\\shimx64.efi)")
        );
        let n = nodes(opt.file_path_list()).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(
            HardDrive::parse(n[0].data).unwrap().signature,
            DiskSignature::Gpt(Guid::parse(PARTUUID).unwrap())
        );
    }

    #[test]
    fn mbr_hard_drive_node() {
        let hd = HardDrive {
            number: 2,
            start_lba: 2048,
            size_lba: 1024,
            signature: DiskSignature::Mbr(0x1234_abcd),
        };
        let n = hd.encode();
        assert_eq!(&n[24..28], &[0xcd, 0xab, 0x34, 0x12]);
        assert_eq!(&n[28..40], &[0; 12]);
        assert_eq!(&n[40..], &[1, 1]);
        assert_eq!(HardDrive::parse(&n[4..]).unwrap(), hd);
        assert!(
            describe(&loader_path(&hd, "\\a.efi")).starts_with("HD(2,MBR,0x1234abcd,0x800,0x400)")
        );
    }

    #[test]
    fn firmware_entries_with_optional_data_parse() {
        // OVMF's "UiApp" entry: FvFile path and no end padding issues.
        let bytes: Vec<u8> = [
            &[0x09, 0, 0, 0, 0x2c, 0][..],
            &[b'U', 0, b'i', 0, b'A', 0, b'p', 0, b'p', 0, 0, 0],
            &[0x04, 0x07, 0x14, 0x00],
            &[0u8; 16],
            &[0x04, 0x06, 0x14, 0x00],
            &[0u8; 16],
            &[0x7f, 0xff, 0x04, 0x00],
            b"opts",
        ]
        .concat();
        let opt = LoadOption::new_checked(&bytes[..]).unwrap();
        assert_eq!(opt.description(), "UiApp");
        assert_eq!(opt.optional_data(), b"opts");
        assert_eq!(
            describe(opt.file_path_list()),
            "Node(0x4,0x7)/Node(0x4,0x6)"
        );
    }

    #[test]
    fn malformed_options_are_refused() {
        assert_eq!(
            LoadOption::new_checked(&[1, 0, 0, 0][..]).err(),
            Some(Error::Truncated)
        );
        // Description never terminated.
        assert_eq!(
            LoadOption::new_checked(&[1, 0, 0, 0, 4, 0, b'a', 0, b'b', 0][..]).err(),
            Some(Error::UnterminatedDescription)
        );
        // Path list longer than the variable.
        assert_eq!(
            LoadOption::new_checked(&[1, 0, 0, 0, 9, 0, 0, 0, 0x7f, 0xff, 4, 0][..]).err(),
            Some(Error::Truncated)
        );
        // A node claiming 2 bytes, and a list without an end node.
        assert_eq!(nodes(&[4, 4, 2, 0]), Err(Error::BadDevicePath));
        assert_eq!(nodes(&[4, 4, 4, 0]), Err(Error::BadDevicePath));
        assert_eq!(describe(&[4, 4, 200, 0]), "<malformed device path>");
    }

    #[test]
    fn boot_order_and_names() {
        assert_eq!(
            parse_boot_order(&[0x03, 0x00, 0x00, 0x00, 0x0a, 0x10]).unwrap(),
            vec![3, 0, 0x100a]
        );
        assert_eq!(parse_boot_order(&[1, 0, 2]), Err(Error::OddLength));
        assert_eq!(encode_boot_order(&[3, 0x100a]), vec![3, 0, 0x0a, 0x10]);
        assert_eq!(boot_variable(0x1a), "Boot001A");
        assert_eq!(boot_number("Boot001A"), Some(0x1a));
        assert_eq!(boot_number("Boot001a"), Some(0x1a));
        assert_eq!(boot_number("BootOrder"), None);
        assert_eq!(boot_number("BootNext"), None);
        assert_eq!(boot_number("Boot12345"), None);
    }

    #[test]
    fn shim_csv_with_byte_order_mark() {
        // What Debian's shim-signed installs as EFI/debian/BOOTX64.CSV.
        let mut bytes = vec![0xff, 0xfe];
        for c in "shimx64.efi,debian,,This is the boot entry for debian\n".encode_utf16() {
            bytes.extend_from_slice(&c.to_le_bytes());
        }
        assert_eq!(
            parse_boot_csv(&bytes).unwrap(),
            BootCsv {
                loader: "shimx64.efi".into(),
                label: "debian".into()
            }
        );
        // Big-endian with its mark, and little-endian without one.
        let be: Vec<u8> = [0xfe, 0xff, 0, b'a', 0, b',', 0, b'L']
            .into_iter()
            .collect();
        assert_eq!(parse_boot_csv(&be).unwrap().label, "L");
        assert_eq!(parse_boot_csv(&[b'a', 0, b',', 0]).unwrap().label, "");
        assert_eq!(parse_boot_csv(&[b'a', 0]), Err(Error::BadCsv));
        assert_eq!(parse_boot_csv(&[b',', 0, b'x', 0]), Err(Error::BadCsv));
        assert_eq!(parse_boot_csv(&[b'a', 0, b',']), Err(Error::OddLength));
    }
}

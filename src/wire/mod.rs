//! Byte formats. Each type is a view over a byte buffer with a checked
//! constructor and explicit field offsets; parsing is kept apart from policy.

pub mod anchors;
pub mod arp;
pub mod base64;
pub mod checksum;
pub mod cpio;
pub mod dhcpv6;
pub mod efi;
pub mod elf;
pub mod gpt;
pub mod guid;
pub mod gzip;
pub mod http;
pub mod iso9660;
pub mod lldp;
pub mod magic;
pub mod mbr;
pub mod md;
pub mod modinfo;
pub mod ndisc;
pub mod qcow2;
pub mod superblock;
pub mod swap;
pub mod tar;
pub mod x509;

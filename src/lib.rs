//! rivet: a tiny deploy agent for bare metal.
//!
//! Floors, lowest first; each uses only floors below it (`tests/layers`
//! checks the import graph and prints the order):
//! - [`io`]: the contracts — what a disk is ([`io::BlockDevice`]) and what
//!   an image is ([`io::ImageSource`]) — with the in-memory doubles.
//! - [`wire`]: byte formats as views over buffers with checked
//!   constructors, no policy, no I/O: partition tables (`gpt`, `mbr`,
//!   `guid`), filesystem and image heads (`superblock`, `swap`, `iso9660`,
//!   `qcow2`, `magic`), archives and compression (`cpio`, `tar`, `gzip`),
//!   kernel modules (`elf`, `modinfo`), EFI load options (`efi`), HTTP
//!   (`http`), md RAID superblocks (`md`), the network's own (`checksum`, `ndisc`, `arp`, `dhcpv6`, `lldp`),
//!   TLS trust (`x509`, `anchors`) and `base64`.
//! - [`cmdline`] (the kernel command line), [`plan`] (Ironic's image_info,
//!   checksum files, image server authorization, proxies), [`layout`] (ironic-python-agent's partition layout),
//!   [`stream`] (the aligned buffer, hashers, a meter), [`kmod`] (the
//!   kernel module index, alias matching, load order), [`initramfs`] (its
//!   assembly), [`netdata`] (network_data.json): pure logic.
//! - [`fs`]: filesystem readers (ext4, XFS, FAT, ISO 9660), every walk of
//!   a tenant's bytes within a work budget, and rivet's own mke2fs.
//! - [`deploy`]: the engine — plan + disk + image → Ironic's result — and
//!   the overwrite passes of an erase, written against `io` and an `Env`
//!   (time, randomness, mkfs); [`boot`]: what makes a deployed disk boot
//!   (a partition image's shim/grub chain, UEFI boot entries via an NVRAM
//!   trait, the patterns clean_uefi_nvram matches them with); [`raid`]:
//!   software RAID as the real agent lays it out, its holders' tables and
//!   md superblocks written and erased.
//! - [`net`]: rivet's TCP/IP (smoltcp, IPv6 autoconfiguration and duplicate
//!   address detection), the HTTP
//!   client (an `io::ImageSource`) and server, the TLS record layer; over a
//!   device and a clock passed in.
//! - [`burnin`]: the burn-in steps' work — CPU rounds that must repeat
//!   exactly, memory and disks written and read back with a positional
//!   pattern, a checked stream between two nodes — over `io`, `net`, a
//!   clock and a stop flag passed in.
//! - [`linux`] (feature `std`): everything that touches the kernel: PID 1,
//!   coldplug, block devices with O_DIRECT, the packet socket, efivarfs,
//!   rustls, inventory from /sys; `unsafe` and ioctls only in `linux::sys`.
//! - [`agent`] (feature `std`): orchestration: one deploy session for
//!   every entry point, standalone mode, the Ironic agent, the disk choice.
//!
//! The `rivet` binary's subcommands (`src/cli`) sit on top. Without the
//! `std` feature the crate is `no_std` + `alloc` (everything but `linux`
//! and `agent`).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod boot;
pub mod burnin;
pub mod cmdline;
pub mod deploy;
pub mod fs;
pub mod initramfs;
pub mod io;
pub mod kmod;
pub mod layout;
pub mod net;
pub mod netdata;
pub mod plan;
pub mod raid;
pub mod stream;
pub mod wire;

#[cfg(feature = "std")]
pub mod agent;
#[cfg(feature = "std")]
pub mod linux;

/// The version printed by `rivet version` and logged at boot.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

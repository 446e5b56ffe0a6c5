//! rivet: a tiny deploy agent for bare metal.
//!
//! The library is layered so that each layer reads only downwards:
//! - [`wire`]: byte formats (GPT, MBR, superblocks, cpio, ELF `.modinfo`,
//!   gzip, HTTP, EFI load options, TCP/UDP checksums, router
//!   advertisements, DHCPv6, X.509, trust anchors): views over byte buffers with checked constructors; no
//!   policy, no I/O.
//! - [`cmdline`], [`modules`], [`initramfs`], [`plan`], [`layout`],
//!   [`netdata`], [`stream`]: pure logic over those formats (kernel command
//!   line, module order, initramfs assembly, Ironic's image_info, partition
//!   layout, network_data.json, the aligned streaming buffer and hashers).
//! - [`fs`]: read-only filesystem readers (ext4, XFS) over byte sources,
//!   and rivet's own mke2fs (ext2/3/4) over a block device.
//! - [`deploy`]: the engine, written against traits (block device, image
//!   source, environment, NVRAM), and the overwrite passes of a disk
//!   erase; [`net`]: rivet's TCP/IP, HTTP client and server over a device
//!   and a clock passed in.
//! - [`linux`] (feature `std`): the thin glue that touches syscalls: PID 1
//!   duties, coldplug, O_DIRECT disks, the packet socket, fatfs, efivarfs, TLS.
//! - [`agent`] (feature `std`): orchestration: standalone and Ironic mode,
//!   boot files for partition images.
//!
//! Without the `std` feature the crate is `no_std` + `alloc`.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod boot;
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
pub mod stream;
pub mod wire;

#[cfg(feature = "std")]
pub mod agent;
#[cfg(feature = "std")]
pub mod linux;

/// The version printed by `rivet version` and logged at boot.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! rivet: a tiny deploy agent for bare metal.
//!
//! The library is layered so that each layer reads only downwards:
//! - [`wire`]: byte formats (cpio newc, ELF `.modinfo`, gzip framing), views over
//!   byte buffers with checked constructors; no policy, no I/O.
//! - [`cmdline`], [`modules`], [`initramfs`]: pure logic over those formats
//!   (kernel command line, module alias matching and dependency order,
//!   initramfs assembly).
//! - [`linux`] (feature `std`): the thin glue that touches syscalls: PID 1
//!   duties, coldplug, inventory, the initramfs builder's file walking.
//!
//! Without the `std` feature the crate is `no_std` + `alloc`.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod cmdline;
pub mod deploy;
pub mod fs;
pub mod initramfs;
pub mod layout;
pub mod modules;
pub mod net;
pub mod plan;
pub mod stream;
pub mod wire;

#[cfg(feature = "std")]
pub mod agent;
#[cfg(feature = "std")]
pub mod linux;

/// The version printed by `rivet version` and logged at boot.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! Making a deployed disk boot, apart from writing it: the boot chain a
//! partition image carries (its distribution's shim and grub, found in
//! the image's filesystem) and the UEFI boot entries that name a loader on
//! the ESP, written through an NVRAM trait (efivarfs in `linux/`, a map in
//! memory for tests).

pub mod bootchain;
pub mod pattern;
pub mod uefi;

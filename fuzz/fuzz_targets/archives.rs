//! The initramfs builder's inputs from a kernel package: cpio archives,
//! ELF modules and their .modinfo.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::wire::{cpio, elf, modinfo};

fuzz_target!(|data: &[u8]| {
    guard::bounded(guard::MIB, || {
        for entry in cpio::Reader::new(data).take(10_000) {
            if entry.is_err() {
                break;
            }
        }
        if let Ok(e) = elf::Elf::new_checked(data) {
            if let Ok(section) = e.section(".modinfo") {
                let _ = modinfo::ModInfo::parse(section);
            }
        }
        let _ = modinfo::ModInfo::parse(data);
    });
});

//! An image's ESP as install_bootloader reads it: rivet's own FAT reader
//! (boot sector, cluster chains, long names, the os.walk of the tree) and
//! the loader choice over it. Seeded with whole FAT12 volumes mkfs.vfat and
//! mtools make at run time (fuzz/run), mutated in place.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::fs::fat::Fat;

fuzz_target!(|data: &[u8]| {
    guard::bounded(8 * guard::MIB, || {
        let _ = rivet::boot::uefi::esp_loaders(Box::new(data.to_vec()));
        if let Ok(mut fat) = Fat::open(Box::new(data.to_vec())) {
            let _ = fat.read("EFI/BOOT/BOOTX64.EFI", 1 << 20);
            let _ = fat.verify();
        }
    });
});

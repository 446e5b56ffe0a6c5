//! What the firmware's variables and an ESP hold: load options, device
//! paths, BootOrder (round-trips) and shim's boot CSVs; and the
//! clean_uefi_nvram patterns the conductor sends, searched in those paths.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::wire::efi;

fuzz_target!(|data: &[u8]| {
    guard::bounded(guard::MIB, || {
        if let Ok(o) = efi::LoadOption::new_checked(data) {
            let _ = o.description();
            let _ = efi::nodes(o.file_path_list());
            let path = efi::describe(o.file_path_list());
            // The input's text as a pattern over its own device path:
            // compiled or refused, searched within the step budget.
            if let Ok(p) = rivet::boot::pattern::Pattern::compile(&String::from_utf8_lossy(o.optional_data())) {
                let _ = p.search(&path);
            }
        }
        if let Ok(p) = rivet::boot::pattern::Pattern::compile(&String::from_utf8_lossy(data)) {
            let _ = p.search("HD(1,GPT,2f0c6b8e-1a2b-4c3d-9e8f-0a1b2c3d4e5f,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)");
        }
        let _ = efi::HardDrive::parse(data);
        let _ = efi::parse_boot_csv(data);
        if let Ok(order) = efi::parse_boot_order(data) {
            assert_eq!(efi::parse_boot_order(&efi::encode_boot_order(&order)).unwrap(), order);
        }
    });
});

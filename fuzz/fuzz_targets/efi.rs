//! What the firmware's variables and an ESP hold: load options, device
//! paths, BootOrder (round-trips) and shim's boot CSVs.
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
            let _ = efi::describe(o.file_path_list());
        }
        let _ = efi::HardDrive::parse(data);
        let _ = efi::parse_boot_csv(data);
        if let Ok(order) = efi::parse_boot_order(data) {
            assert_eq!(efi::parse_boot_order(&efi::encode_boot_order(&order)).unwrap(), order);
        }
    });
});

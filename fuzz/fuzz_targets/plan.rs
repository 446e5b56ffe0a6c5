//! Ironic's image_info from the network or a file: parsed and checked, and
//! laid out on a disk the input sizes, all arithmetic checked.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::layout;
use rivet::plan::{BootMode, Label, Plan};

fuzz_target!(|data: &[u8]| {
    guard::bounded(4 * guard::MIB, || {
        let Ok(plan) = Plan::from_json(data) else {
            return;
        };
        for (boot_mode, label) in [(BootMode::Bios, Label::Msdos), (BootMode::Uefi, Label::Gpt)] {
            let req = layout::Request {
                boot_mode,
                label,
                root_mb: plan.root_mb,
                swap_mb: plan.swap_mb,
                ephemeral_mb: plan.ephemeral_mb,
                configdrive_mb: 64,
            };
            for (size, sector) in [(4u64 << 30, 512), (3u64 << 40, 4096), (u64::MAX, 512)] {
                if let Ok(l) = layout::plan(&req, size, sector) {
                    let _ = l.root();
                }
            }
        }
    });
});

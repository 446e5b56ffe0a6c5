//! Ironic's image_info from the network or a file: parsed and checked, and
//! laid out on several disks, all arithmetic checked; and checksum files
//! as an image server publishes them; and the same JSON as a node's
//! target_raid_config, validated and laid out on holders of several sizes
//! (every span inside its disk, in order).
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::layout;
use rivet::plan::{self, BootMode, HashAlgo, Label, Plan};
use rivet::raid;

fuzz_target!(|data: &[u8]| {
    guard::bounded(4 * guard::MIB, || {
        if let Ok(text) = core::str::from_utf8(data) {
            for algo in [None, Some(HashAlgo::Sha256), Some(HashAlgo::Md5)] {
                let _ = plan::parse_checksum_file(text, "http://h/images/root.img?x=1", algo);
            }
        }
        if let Ok(config) = serde_json::from_slice::<serde_json::Value>(data) {
            raid_layouts(&config);
        }
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

fn raid_layouts(config: &serde_json::Value) {
    for disks in [1, 3, 4] {
        let Ok(c) = raid::validate(config, "fuzz", disks == 4, disks) else {
            continue;
        };
        assert!(matches!(c.logical_disks.len(), 1 | 2));
        let sizes: Vec<raid::Size> = c.logical_disks.iter().map(|d| d.size).collect();
        for (boot, label) in [(BootMode::Uefi, Label::Gpt), (BootMode::Bios, Label::Msdos)] {
            for sectors in [1u64 << 21, 41_943_140, u64::MAX / 512] {
                if let Ok(spans) = raid::holder_spans(sectors, boot, label, &sizes) {
                    let mut at = 0;
                    for s in spans {
                        assert!(at <= s.start && s.start < s.end && s.end <= sectors, "{s:?}");
                        at = s.end;
                    }
                }
            }
        }
    }
}

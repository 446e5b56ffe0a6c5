//! The trust-anchor file PID 1 reads from its initramfs: never a panic, and
//! whatever parses is written back byte for byte.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::wire::anchors::{encode, Anchors};

fuzz_target!(|data: &[u8]| {
    guard::bounded(guard::MIB, || {
        if let Ok(file) = Anchors::new_checked(data) {
            let (again, skipped) = encode(file.iter());
            assert_eq!(skipped, 0);
            assert_eq!(again, data);
        }
    });
});

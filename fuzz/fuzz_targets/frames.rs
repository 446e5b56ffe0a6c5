//! Frames off the wire before smoltcp sees them: the transport checksum
//! verdict, and LLDP TLVs.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::wire::{checksum, lldp};

fuzz_target!(|data: &[u8]| {
    guard::bounded(guard::MIB, || {
        let _ = checksum::check_frame(data);
        if let Some(t) = lldp::tlvs(data) {
            assert!(t.iter().map(|(_, v)| v.len() + 2).sum::<usize>() <= data.len());
        }
    });
});

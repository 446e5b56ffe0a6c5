//! Config drives as Ironic sends them (base64 of gzip) and gzip itself:
//! bounded however the stream lies; base64 round-trips.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::deploy::configdrive;
use rivet::wire::{base64, gzip};

fuzz_target!(|data: &[u8]| {
    guard::bounded(70 * guard::MIB, || {
        let _ = gzip::decompress_limited(data, guard::MIB);
        if let Ok(text) = core::str::from_utf8(data) {
            let _ = configdrive::decode(text);
        }
        let _ = configdrive::decode_downloaded(data.to_vec());
    });
    let text = base64::encode(data);
    assert_eq!(base64::decode(text.as_bytes()).unwrap(), data);
    if let Ok(decoded) = base64::decode(data) {
        let again = base64::encode(&decoded);
        assert_eq!(base64::decode(again.as_bytes()).unwrap(), decoded);
    }
});

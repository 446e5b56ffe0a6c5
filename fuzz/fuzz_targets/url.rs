//! URLs from plans, kernel parameters and redirects: parsed, joined, and a
//! parsed URL prints as one that parses to itself.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::net::url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, "/"));
    guard::bounded(guard::MIB, || {
        if let Ok(u) = Url::parse(a) {
            assert_eq!(Url::parse(&u.to_string()).as_ref(), Ok(&u), "{a}");
            if let Ok(j) = u.join(b) {
                assert_eq!(Url::parse(&j.to_string()).as_ref(), Ok(&j), "{a} + {b}");
            }
        }
    });
});

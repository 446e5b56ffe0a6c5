//! What any host on the provisioning network sends the agent API: request
//! heads and bodies in arbitrary pieces, pipelined.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::net::server::{Conn, Event};

fuzz_target!(|data: &[u8]| {
    guard::bounded(4 * guard::MIB, || {
        let mut c = Conn::new();
        let step = 1 + data.first().map_or(0, |b| *b as usize % 31);
        for piece in data.chunks(step) {
            let mut event = c.feed(piece);
            while let Some(e) = event {
                match e {
                    Event::Request(req) => assert!(req.body.len() <= data.len()),
                    Event::Reject(_) => break,
                }
                event = c.feed(&[]);
            }
            if c.closing() {
                break;
            }
        }
    });
});

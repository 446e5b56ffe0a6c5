//! What an image, checksum or config-drive server answers: response heads
//! (interim ones included), framing, and chunked bodies fed in pieces.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::wire::http::{Chunked, Response, Step};

fuzz_target!(|data: &[u8]| {
    guard::bounded(guard::MIB, || {
        let mut buf = data.to_vec();
        let Ok(Some(r)) = Response::parse_final(&mut buf, &mut 0) else {
            return;
        };
        let _ = r.framing("GET");
        let mut d = Chunked::new();
        let mut rest = &buf[r.head_len.min(buf.len())..];
        let mut body = 0usize;
        while !rest.is_empty() {
            let piece = &rest[..rest.len().min(7)];
            match d.step(piece) {
                Ok(Step::Skip(n)) | Ok(Step::End(n)) if n == 0 => break,
                Ok(Step::Skip(n)) | Ok(Step::End(n)) => rest = &rest[n..],
                Ok(Step::Data(n)) => {
                    body += n;
                    rest = &rest[n..];
                }
                Err(_) => break,
            }
        }
        assert!(body <= data.len());
    });
});

//! Config drives as Ironic sends them (base64 of gzip) and gzip itself:
//! bounded however the stream lies (a config drive is held compressed, so
//! even a 64 MiB one costs little), the pieces add up to the length the
//! counting pass found, the streaming inflater agrees with the one-shot
//! one, and base64 round-trips.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::deploy::configdrive::{ConfigDrive, StreamDecoder};
use rivet::wire::{base64, gzip};

/// The download decoder, fed the bytes in uneven pieces, agrees with the
/// whole-bytes path: the same length, or both refuse.
fn streamed_agrees(data: &[u8], whole: &Result<ConfigDrive, String>) {
    let mut d = StreamDecoder::default();
    let mut nothing = |_: &[u8]| Ok(());
    let mut pushed = Ok(());
    for piece in data.chunks(997) {
        pushed = pushed.and_then(|()| d.push(piece, &mut nothing));
    }
    let streamed = pushed.and_then(|()| d.finish(&mut nothing));
    if let (Ok(w), Ok((len, _))) = (whole, &streamed) {
        assert_eq!(w.len(), *len);
    }
}

fn pieces_add_up(cd: &ConfigDrive) {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    cd.write_pieces(
        &mut buf,
        &mut |_, _| None,
        |at, piece| {
            assert_eq!(at, total);
            total += piece.len() as u64;
            Ok::<(), String>(())
        },
        |e| e,
    )
    .unwrap();
    assert_eq!(total, cd.len());
}

fuzz_target!(|data: &[u8]| {
    guard::bounded(4 * guard::MIB, || {
        let whole = gzip::decompress_limited(data, guard::MIB);
        if let Ok(mut inflater) = gzip::Inflater::new(data) {
            let mut buf = vec![0u8; 4096];
            let mut out = Vec::new();
            let streamed = loop {
                match inflater.read(&mut buf) {
                    Ok(0) => break Ok(out),
                    Ok(n) if out.len() + n > guard::MIB => break Err(()),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(_) => break Err(()),
                }
            };
            if let (Ok(a), Ok(b)) = (&whole, &streamed) {
                assert_eq!(a, b);
            }
        }
        if let Ok(text) = core::str::from_utf8(data) {
            if let Ok(cd) = ConfigDrive::from_inline(text) {
                pieces_add_up(&cd);
            }
        }
        let downloaded = ConfigDrive::from_downloaded(data.to_vec());
        if let Ok(cd) = &downloaded {
            pieces_add_up(cd);
        }
        streamed_agrees(data, &downloaded);
    });
    let text = base64::encode(data);
    assert_eq!(base64::decode(text.as_bytes()).unwrap(), data);
    if let Ok(decoded) = base64::decode(data) {
        let again = base64::encode(&decoded);
        assert_eq!(base64::decode(again.as_bytes()).unwrap(), decoded);
    }
});

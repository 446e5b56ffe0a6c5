//! Images as a server might serve them (qcow2, gzip, zstd): whatever the
//! bytes, the deploy's image path refuses or writes, within its memory
//! bound, never outside the target's span of the disk, and never panics.
//! The first input byte picks whether the source reads at offsets.
//! libzstd allocates with malloc, out of the guard's sight: its memory is
//! asked of the decoder itself and held to the window rivet allows.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::deploy::decompress::{Unzstd, ZSTD_MAX_WINDOW};
use rivet::deploy::format::{self, Format};
use rivet::deploy::image::{Erased, Sniffed};
use rivet::deploy::testing::ScriptedEnv;
use rivet::io::{BlockDevice, MemDisk, SliceImage};
use rivet::plan::HashAlgo;

/// libzstd's state, input and output blocks beside the window.
const ZSTD_BESIDE_WINDOW: usize = 1 << 20;

/// Inflates a zstd stream (at most 4 MiB of it) and checks what libzstd
/// held at every step.
fn zstd_memory_is_bounded(file: &[u8]) {
    use embedded_io::Read;
    let mut src = SliceImage::new(file);
    let mut z = Unzstd::new(&mut src);
    let mut out = vec![0u8; 64 * 1024];
    for _ in 0..64 {
        let step = z.read(&mut out);
        let held = z.decoder_memory();
        assert!(
            held <= ZSTD_MAX_WINDOW as usize + ZSTD_BESIDE_WINDOW,
            "libzstd holds {held} bytes"
        );
        if !matches!(step, Ok(n) if n > 0) {
            return;
        }
    }
}

const AT: u64 = 64 << 10;
const SPAN: u64 = 2 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    guard::bounded(48 * guard::MIB, || {
        let mut src = SliceImage {
            ranges: mode & 1 != 0,
            size_known: mode & 2 == 0,
            ..SliceImage::new(file)
        };
        let mut erased = Erased::new(&mut src);
        let Ok(mut image) = Sniffed::new(&mut erased, 512) else { return };
        let Ok(fmt) = Format::decide(None, image.head(), &Default::default(), "fuzz") else { return };
        if fmt == Format::Raw {
            return;
        }
        if fmt == Format::Zstd {
            zstd_memory_is_bounded(file);
        }
        let Ok(ready) = fmt.prepare(&mut image, SPAN) else { return };
        let mut disk = MemDisk::new(AT + SPAN + AT, 512);
        let mut buf = vec![0u8; 64 * 1024];
        let _ = format::stream(
            ready,
            &mut disk,
            &mut ScriptedEnv::default(),
            &mut image,
            AT,
            SPAN,
            &mut buf,
            HashAlgo::Sha256,
            &mut |_, _| Ok(()),
        );
        let mut outside = vec![0u8; AT as usize];
        disk.read_at(0, &mut outside).unwrap();
        assert!(outside.iter().all(|&c| c == 0), "wrote before the target");
        disk.read_at(AT + SPAN, &mut outside).unwrap();
        assert!(outside.iter().all(|&c| c == 0), "wrote past the target");
    });
});

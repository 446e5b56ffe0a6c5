//! Images as a server might serve them (qcow2, gzip, zstd): whatever the
//! bytes, the deploy's image path refuses or writes, within its memory
//! bound, never outside the target's span of the disk, and never panics.
//! The first input byte picks whether the source reads at offsets.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::deploy::format::{self, Format};
use rivet::deploy::image::{Erased, Sniffed};
use rivet::deploy::testing::ScriptedEnv;
use rivet::io::{BlockDevice, MemDisk, SliceImage};
use rivet::plan::HashAlgo;

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

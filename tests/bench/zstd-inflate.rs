//! tests/bench/images' "zstd decoder alone": rivet's streaming zstd decoder
//! (`deploy::decompress::Unzstd` over libzstd, built with /init's CFLAGS
//! and profile) inflating a file into memory — no hash, no disk, no thread
//! — to compare with `zstd -d` doing the same. Prints "BYTES SECONDS".
//!   cargo run --release --example zstd-inflate -- FILE.zst
use embedded_io::Read;
use rivet::deploy::decompress::Unzstd;
use rivet::linux::source::FileImage;
use std::process::exit;
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: zstd-inflate FILE.zst");
        exit(2);
    };
    let mut file = FileImage::open(&path).unwrap_or_else(|e| {
        eprintln!("{e}");
        exit(1)
    });
    let start = Instant::now();
    let mut zstd = Unzstd::new(&mut file);
    // As the deploy reads: its 1 MiB buffer.
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match zstd.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => {
                eprintln!("{path}: {e}");
                exit(1)
            }
        }
    }
    println!("{total} {:.3}", start.elapsed().as_secs_f64());
}

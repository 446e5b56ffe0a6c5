//! A root filesystem rivet reads for boot files: XFS and ext4 readers and
//! the boot chain search over whatever the partition holds; and the
//! superblock probes that name filesystems.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::boot::bootchain;
use rivet::fs::{ext4::Ext4Root, xfs::Xfs, RootFs};

fn walk(fs: &mut dyn RootFs) {
    let _ = fs.list("/");
    let _ = fs.list("/boot/efi/EFI");
    let _ = fs.read("/etc/os-release", 64 << 10);
    let _ = fs.kind("/usr/lib/shim/shimx64.efi.signed");
    let _ = bootchain::find(fs, "5e1f2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
}

fuzz_target!(|data: &[u8]| {
    guard::bounded(48 * guard::MIB, || {
        let _ = rivet::wire::superblock::probe(data);
        if let Ok(mut fs) = Xfs::load(Box::new(data.to_vec())) {
            walk(&mut fs);
        }
        if let Ok(mut fs) = Ext4Root::load(Box::new(data.to_vec())) {
            walk(&mut fs);
        }
    });
});

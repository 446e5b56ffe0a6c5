//! inject_files' ext4 writer on a tenant's filesystem: whatever its
//! superblock, descriptors, bitmaps, inodes and directory blocks say, a
//! write, a replacement, a new directory and a delete end in success or a
//! named refusal: never a panic, bounded memory. (Every write is checked
//! against the partition's end in `Ext4Writer::write`.)
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::fs::ext4_writer::{Attributes, Ext4Writer};
use rivet::io::{BlockDevice, MemDisk};

/// The partition starts 4 KiB into the disk.
const BASE: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    guard::bounded(48 * guard::MIB, || {
        let len = data.len() as u64 / 1024 * 1024;
        if len < 2048 {
            return;
        }
        let mut disk = MemDisk::new(BASE + len + 4096, 512);
        disk.write_at(BASE, &data[..len as usize]).unwrap();
        let Ok(mut w) = Ext4Writer::open(Box::new(disk), BASE, len, 1) else {
            return;
        };
        let attrs = Attributes { mode: Some(0o600), owner: Some(1), group: Some(2), dirmode: Some(0o700) };
        let _ = w.write_file("/etc/os-release", b"ID=fuzz\n", &attrs);
        let _ = w.write_file("/etc/new/dir/file", &[7u8; 3000], &attrs);
        let _ = w.delete("/usr/lib/shim/link");
        let _ = w.is_dir("boot");
    });
});

//! Partition tables left on a disk by anyone: the first bytes of the input
//! go to the disk's start, the rest to its end (a backup GPT), on a sparse
//! disk whose size the input picks (up to 2 TiB), read as the deploy and
//! erase_devices_metadata read them, and as install_bootloader reads a
//! software RAID holder's GPT to add the mirrored ESP; as a whole-disk
//! image's head; and as an md RAID member's 1.x superblock (a previous
//! tenant's array).
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::deploy::{table, whole_disk};
use rivet::io::{BlockDevice, MemDisk};
use rivet::wire::md;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let sectors = 64 + (u64::from(u16::from_le_bytes([data[0], data[1]])) << 16);
    let size = sectors.min((2u64 << 40) / 512) * 512;
    let body = &data[2..];
    let (head, tail) = body.split_at(body.len() / 2);
    let mut disk = MemDisk::new(size, 512);
    let pad = |b: &[u8]| {
        let mut v = b.to_vec();
        v.resize(b.len().div_ceil(512).max(1) * 512, 0);
        v
    };
    let _ = disk.write_at(0, &pad(head));
    let tail = pad(tail);
    let _ = disk.write_at(size - tail.len() as u64, &tail);
    guard::bounded(4 * guard::MIB, || {
        if let Ok(Some(t)) = table::read_existing(&mut disk) {
            for p in &t.parts {
                // Trusted partitions lie on the disk.
                assert!(p.offset.checked_add(p.len).is_some_and(|e| e <= size), "{p:?}");
            }
        }
        if let Ok(h) = rivet::raid::esp::HolderTable::read(&mut disk) {
            // The ESP's place, if any, is free, aligned and on the disk.
            if let Ok((first, last)) = h.esp_place() {
                let g = h.table.geometry;
                assert!(first % 2048 == 0 && first >= g.first_usable() && last <= g.last_usable());
                for p in &h.table.partitions {
                    assert!(last < p.first_lba || first > p.last_lba, "{p:?}");
                }
            }
        }
        let _ = whole_disk::image_table(body, 512);
        if let Ok(sb) = md::Superblock::new_checked(body) {
            // Every role the superblock lists is readable; none past it.
            for dev in 0..sb.max_dev() {
                assert!(sb.role(dev).is_some());
            }
            assert!(sb.role(sb.max_dev()).is_none());
            let _ = (sb.slot(), sb.name(), sb.set_uuid(), md::Level::from_number(sb.level()));
        }
    });
});

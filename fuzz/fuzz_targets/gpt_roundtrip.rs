//! The GPT writer and reader agree: any table the writer accepts reads
//! back as written, primary and backup.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::wire::gpt::{self, Geometry, Partition, Table};
use rivet::wire::guid::Guid;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let sector = if data[0] & 1 == 0 { 512 } else { 4096 };
    let sectors = 4096 + u64::from(u32::from_le_bytes([data[1], data[2], data[3], 0]));
    let Ok(geometry) = Geometry::new(sector, sectors, 128) else {
        return;
    };
    let partitions: Vec<Partition> = data[4..]
        .chunks_exact(10)
        .take(8)
        .map(|c| {
            let first = u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            let len = u64::from(u16::from_le_bytes([c[4], c[5]])) + 1;
            Partition {
                type_guid: Guid([c[6] | 1; 16]),
                unique_guid: Guid([c[7]; 16]),
                first_lba: first,
                last_lba: first + len - 1,
                attributes: u64::from(c[8]),
                name: "p".repeat(usize::from(c[9] % 37)),
            }
        })
        .collect();
    let table = Table { geometry, disk_guid: Guid([9; 16]), partitions };
    if table.validate().is_err() {
        return;
    }
    guard::bounded(4 * guard::MIB, || {
        let entries = table.entries();
        let crc = gpt::entries_crc(&entries);
        for primary in [true, false] {
            let sector_bytes = table.header(primary, crc);
            let header = gpt::Header::new_checked(&sector_bytes[..]).expect("own header");
            let parsed = gpt::parse_entries(&header, &entries).expect("own entries");
            let got: Vec<&Partition> = parsed.iter().map(|(_, p)| p).collect();
            let want: Vec<&Partition> = table.partitions.iter().collect();
            assert_eq!(got, want);
        }
    });
});

//! A config drive is whatever medium a BMC or a former tenant left: its
//! ISO 9660 or FAT directories and its network_data.json are read by PID 1
//! before any network is up. Whatever the bytes, reading them ends with a
//! file, nothing, or an error, within the memory bound, never a panic.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::io::{BlockDevice, MemDisk};
use rivet::netdata::{choose, Nic};

fuzz_target!(|data: &[u8]| {
    guard::bounded(8 * guard::MIB, || {
        let nics = [
            Nic { name: "eth0".into(), mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], carrier: Some(true) },
            Nic { name: "eth1".into(), mac: [0xa0, 0x36, 0x9f, 0x2c, 0xe8, 0x81], carrier: Some(false) },
        ];
        let _ = choose(data, &nics, Some(nics[1].mac));
        // The same bytes as a disk: sector 16 onwards is the fuzzer's.
        let mut disk = MemDisk::new(((data.len() as u64 + 32768).div_ceil(4096) * 4096).max(65536), 512);
        let mut image = vec![0u8; disk.size() as usize];
        image[32768..32768 + data.len()].copy_from_slice(data);
        disk.write_at(0, &image).unwrap();
        let _ = rivet::fs::iso9660::label(&mut disk);
        if let Ok(Some(file)) =
            rivet::fs::iso9660::read_file(&mut disk, "openstack/latest/network_data.json", 1 << 20)
        {
            let _ = choose(&file, &nics, None);
        }
        // A vfat config-2 medium: the bytes as the volume.
        if let Ok(mut fat) = rivet::fs::fat::Fat::open(Box::new(data.to_vec())) {
            if let Ok(file) = fat.read("openstack/latest/network_data.json", 1 << 20) {
                let _ = choose(&file, &nics, None);
            }
        }
    });
});

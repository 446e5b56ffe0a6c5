//! The reader against ESPs mkfs.vfat and mtools make (FAT12, FAT16,
//! FAT32), then the same ESPs with one lie each: refused by name, at once.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rivet-fat-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An ESP as a distribution's installer leaves it, `fat` 12, 16 or 32.
fn esp(dir: &Path, fat: &str, kib: &str) -> Vec<u8> {
    let img = dir.join(format!("esp{fat}.img"));
    let _ = std::fs::remove_file(&img);
    let i = img.to_str().unwrap();
    run("mkfs.vfat", &["-C", "-F", fat, "-n", "ESP", i, kib]);
    let shim = dir.join("shim");
    std::fs::write(&shim, vec![0x4d; 70_000]).unwrap();
    let csv = dir.join("csv");
    std::fs::write(&csv, b"shimx64.efi,debian,,boot entry\n").unwrap();
    run(
        "mmd",
        &[
            "-i",
            i,
            "::EFI",
            "::EFI/BOOT",
            "::EFI/debian",
            "::EFI/Long Directory Name",
        ],
    );
    let s = shim.to_str().unwrap();
    run("mcopy", &["-i", i, s, "::EFI/BOOT/BOOTX64.EFI"]);
    run("mcopy", &["-i", i, s, "::EFI/debian/shimx64.efi"]);
    run(
        "mcopy",
        &["-i", i, csv.to_str().unwrap(), "::EFI/debian/BOOTX64.CSV"],
    );
    std::fs::read(&img).unwrap()
}

fn open(bytes: &[u8]) -> Result<Fat, FsError> {
    Fat::open(Box::new(bytes.to_vec()))
}

#[test]
fn walks_and_reads_what_mkfs_vfat_and_mtools_made() {
    let dir = scratch("esp");
    for (fat, kib, kind) in [
        ("12", "2048", FatType::Fat12),
        ("16", "16384", FatType::Fat16),
        ("32", "65536", FatType::Fat32),
    ] {
        let img = esp(&dir, fat, kib);
        let mut fs = open(&img).unwrap();
        assert_eq!(fs.geometry.kind, kind);
        let walk = fs.walk().unwrap();
        let got: Vec<(&str, Vec<&str>)> = walk
            .iter()
            .map(|d| {
                (
                    d.path.as_str(),
                    d.files.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("", vec![]),
                ("EFI", vec![]),
                ("EFI/BOOT", vec!["BOOTX64.EFI"]),
                ("EFI/debian", vec!["shimx64.efi", "BOOTX64.CSV"]),
                ("EFI/Long Directory Name", vec![]),
            ],
            "FAT{fat}"
        );
        assert_eq!(
            fs.read("EFI/debian/shimx64.efi", 1 << 20).unwrap(),
            vec![0x4d; 70_000]
        );
        assert_eq!(
            fs.read("efi/boot/bootx64.efi", 1 << 20).unwrap().len(),
            70_000
        );
        assert!(matches!(
            fs.read("EFI/debian/shimx64.efi", 1000),
            Err(FsError::TooLarge { size: 70_000, .. })
        ));
        assert!(matches!(
            fs.read("EFI/nothing", 10),
            Err(FsError::NotFound(_))
        ));
        assert!(matches!(fs.read("EFI", 10), Err(FsError::NotAFile(_))));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The FAT entry of `cluster` set to `value` in every copy of the FAT.
fn set_fat(img: &mut [u8], cluster: u32, value: u32) {
    let fs = open(img).unwrap();
    let g = &fs.geometry;
    let fat_len = (g.data_at - g.fat_at - g.fixed_root.map_or(0, |r| r.1)) / u64::from(img[16]);
    for copy in 0..u64::from(img[16]) {
        let base = (g.fat_at + copy * fat_len) as usize;
        match g.kind {
            FatType::Fat32 => {
                img[base + cluster as usize * 4..][..4].copy_from_slice(&value.to_le_bytes())
            }
            FatType::Fat16 => img[base + cluster as usize * 2..][..2]
                .copy_from_slice(&(value as u16).to_le_bytes()),
            FatType::Fat12 => unimplemented!(),
        }
    }
}

fn entry(fs: &mut Fat, dir: u32, name: &str) -> Entry {
    fs.list(dir)
        .unwrap()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap()
}

/// Issue 33, item 7: a directory's chain that loops hung fatfs's walk,
/// a file's grew an 800 MB read; a subdirectory pointing back at the root
/// read the tree again and again. Each is refused at once.
#[test]
fn loops_in_chains_and_trees_are_refused() {
    let dir = scratch("loops");
    for (fat, kib) in [("16", "16384"), ("32", "65536")] {
        let good = esp(&dir, fat, kib);
        let mut fs = open(&good).unwrap();
        let efi = entry(&mut fs, 0, "EFI");
        let debian = entry(&mut fs, efi.cluster, "debian");
        let shim = entry(&mut fs, debian.cluster, "shimx64.efi");

        let mut img = good.clone();
        set_fat(&mut img, debian.cluster, debian.cluster);
        let err = open(&img).unwrap().walk().unwrap_err().to_string();
        assert!(
            err.contains(&format!("loops at cluster {}", debian.cluster)),
            "FAT{fat}: {err}"
        );

        let mut img = good.clone();
        let second = shim.cluster + 1; // mtools writes files contiguously
        set_fat(&mut img, second, shim.cluster);
        let err = open(&img)
            .unwrap()
            .read("EFI/debian/shimx64.efi", 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("loops"), "FAT{fat}: {err}");

        // EFI/BOOT's entry made to point at EFI itself.
        let mut img = good.clone();
        let efi_bytes = {
            let fs = open(&img).unwrap();
            fs.cluster_at(efi.cluster) as usize
        };
        let raw = &mut img[efi_bytes..efi_bytes + 4096];
        let at = raw
            .chunks(32)
            .position(|e| &e[..11] == b"BOOT       ")
            .unwrap()
            * 32;
        raw[at + 26..at + 28].copy_from_slice(&(efi.cluster as u16).to_le_bytes());
        raw[at + 20..at + 22].copy_from_slice(&((efi.cluster >> 16) as u16).to_le_bytes());
        let err = open(&img).unwrap().walk().unwrap_err().to_string();
        assert!(err.contains("already walked"), "FAT{fat}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn boot_sectors_that_lie_are_refused() {
    let dir = scratch("geometry");
    let good = esp(&dir, "32", "65536");
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        open(&b).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(patched(0, &[0]).contains("no boot sector"));
    assert!(patched(11, &[0x00, 0x03]).contains("768 bytes per sector"));
    assert!(patched(13, &[3]).contains("3 per cluster"));
    assert!(patched(16, &[0]).contains("0 FATs"));
    // Twice the sectors the 64 MiB device has.
    assert!(patched(32, &(262_144u32).to_le_bytes()).contains("past the 67108864-byte partition"));
    // A FAT too small for its clusters.
    assert!(patched(36, &(8u32).to_le_bytes()).contains("a FAT of 8 sectors"));
    assert!(patched(44, &(0x0fff_ffffu32).to_le_bytes()).contains("FAT32 root at cluster"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Literal entries: a long name over two pieces, its 8.3 alias, a short
/// name with NT's lowercase bits, a deleted entry, a volume label, `.`,
/// and an orphaned long-name piece whose checksum does not match.
#[test]
fn directory_entries_as_bytes() {
    fn short(name: &[u8; 11], attr: u8, case: u8, cluster: u32, size: u32) -> Vec<u8> {
        let mut e = name.to_vec();
        e.push(attr);
        e.push(case);
        e.extend([0u8; 7]);
        e.extend(((cluster >> 16) as u16).to_le_bytes());
        e.extend([0u8; 4]);
        e.extend((cluster as u16).to_le_bytes());
        e.extend(size.to_le_bytes());
        e
    }
    fn lfn(order: u8, sum: u8, text: &str) -> Vec<u8> {
        let mut units: Vec<u16> = text.encode_utf16().collect();
        if units.len() < 13 {
            units.push(0);
        }
        units.resize(13, 0xffff);
        let mut e = vec![order];
        let put = |e: &mut Vec<u8>, r: std::ops::Range<usize>| {
            for u in &units[r] {
                e.extend(u.to_le_bytes());
            }
        };
        put(&mut e, 0..5);
        e.extend([0x0f, 0, sum]);
        put(&mut e, 5..11);
        e.extend([0, 0]);
        put(&mut e, 11..13);
        e
    }
    let alias = b"LONGFI~1EFI";
    let sum = short_checksum(alias);
    let mut raw = Vec::new();
    raw.extend(short(b".          ", ATTR_DIR, 0, 5, 0));
    raw.extend(short(b"ESP        ", ATTR_VOLUME, 0, 0, 0));
    raw.extend(lfn(0x42, sum, "ame.efi"));
    raw.extend(lfn(0x01, sum, "a long file n"));
    raw.extend(short(alias, 0x20, 0, 7, 1234));
    raw.extend(short(b"GRUBX64 EFI", 0x20, 0x18, 9, 10));
    let mut deleted = short(b"OLD     TXT", 0x20, 0, 11, 1);
    deleted[0] = 0xe5;
    raw.extend(deleted);
    raw.extend(lfn(0x41, sum ^ 1, "orphan"));
    raw.extend(short(b"BOOT       ", ATTR_DIR, 0, 12, 0));
    raw.extend([0u8; 32]);
    raw.extend(short(b"AFTER   END", 0x20, 0, 13, 1));
    let got = parse_dir(&raw);
    let e = |name: &str, dir, cluster, size| Entry {
        name: name.into(),
        dir,
        cluster,
        size,
    };
    assert_eq!(
        got,
        vec![
            e("a long file name.efi", false, 7, 1234),
            e("grubx64.efi", false, 9, 10),
            e("BOOT", true, 12, 0),
        ]
    );
}

/// What fatfs would trust before writing: chains to their ends, each
/// cluster once, a file's chain as long as its size.
#[test]
fn verify_passes_real_volumes_and_refuses_what_a_writer_would_trip_on() {
    let dir = scratch("verify");
    for (fat, kib) in [("12", "2048"), ("16", "16384"), ("32", "65536")] {
        let good = esp(&dir, fat, kib);
        assert_eq!(open(&good).unwrap().verify(), Ok(()), "FAT{fat}");
        if fat == "12" {
            continue; // set_fat speaks FAT16 and FAT32
        }
        let mut fs = open(&good).unwrap();
        let efi = entry(&mut fs, 0, "EFI");
        let boot = entry(&mut fs, efi.cluster, "BOOT");
        let loader = entry(&mut fs, boot.cluster, "BOOTX64.EFI");
        let debian = entry(&mut fs, efi.cluster, "debian");
        let shim = entry(&mut fs, debian.cluster, "shimx64.efi");
        let last = shim.cluster + (70_000u64.div_ceil(fs.geometry.cluster_bytes) as u32) - 1;
        let verify = |img: &[u8]| open(img).unwrap().verify().unwrap_err().to_string();

        // The file's chain, past its size, loops back to its start: reads
        // stop at the size, fatfs's truncate never would.
        let mut img = good.clone();
        set_fat(&mut img, last, shim.cluster);
        let err = verify(&img);
        assert!(
            err.contains("/EFI/debian/shimx64.efi") && err.contains("loops"),
            "FAT{fat}: {err}"
        );

        // BOOTX64.EFI's chain runs into shim's.
        let mut img = good.clone();
        set_fat(&mut img, loader.cluster, shim.cluster);
        let err = verify(&img);
        assert!(err.contains("belongs to two chains"), "FAT{fat}: {err}");

        // shim's chain cut short of its size.
        let mut img = good.clone();
        set_fat(&mut img, shim.cluster, 0x0fff_ffff);
        let err = verify(&img);
        assert!(
            err.contains("70000 bytes in a chain of 1 clusters"),
            "FAT{fat}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

use super::configdrive::ConfigDrive;
use super::testing::ScriptedEnv;
use super::*;
use crate::io::SliceImage;
use crate::io::{FailingDisk, MemDisk};
use crate::plan::{Label, Plan};
use crate::wire::{gpt, mbr, superblock::Kind};

const GIB: u64 = 1 << 30;
const EXT4_UUID: &str = "0b3e3f1a-4d7c-4e2b-9a6f-0123456789ab";

/// A fake ext4 filesystem image: a superblock with a known UUID, then noise.
fn ext4_image(len: usize) -> Vec<u8> {
    let mut img: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    img[1024..2048].fill(0);
    img[1080..1082].copy_from_slice(&[0x53, 0xef]);
    img[1120] = 0x40; // extents → ext4
    img[1128..1144].copy_from_slice(&[
        0x0b, 0x3e, 0x3f, 0x1a, 0x4d, 0x7c, 0x4e, 0x2b, 0x9a, 0x6f, 0x01, 0x23, 0x45, 0x67, 0x89,
        0xab,
    ]);
    img
}

fn sha256(data: &[u8]) -> String {
    let mut h = crate::stream::Hasher::new(HashAlgo::Sha256);
    h.update(data);
    h.finish_hex()
}

fn plan(json: &str, image: &[u8]) -> Plan {
    let with_sum = json.replacen(
        '{',
        &format!(
            "{{\"os_hash_algo\": \"sha256\", \"os_hash_value\": \"{}\", ",
            sha256(image)
        ),
        1,
    );
    Plan::from_json(with_sum.as_bytes()).unwrap()
}

fn request<'a>(plan: &'a Plan, boot_mode: BootMode) -> Request<'a> {
    Request {
        plan,
        boot_mode,
        configdrive: None,
        disk_path: "/dev/vda".into(),
        buffer_size: 1 << 20,
        image_checks: Default::default(),
    }
}

#[test]
fn bios_msdos_partition_image_with_swap_and_ephemeral() {
    let img = ext4_image(3 << 20 | 777); // not a whole number of blocks
    let p = plan(
        r#"{"image_type": "partition", "root_mb": 64, "swap_mb": 16, "ephemeral_mb": 8, "ephemeral_format": "vfat"}"#,
        &img,
    );
    let mut disk = MemDisk::new(GIB, 512);
    let mut env = ScriptedEnv::default();
    let out = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut env,
        &request(&p, BootMode::Bios),
    )
    .unwrap();

    let sector0 = disk.bytes(0, 512);
    let m = mbr::Mbr::new_checked(&sector0).unwrap();
    let parts = m.partitions();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        (parts[0].1.first_lba, parts[0].1.sectors, parts[0].1.kind),
        (2048, 8 * 2048, 0x83)
    );
    assert_eq!((parts[1].1.first_lba, parts[1].1.kind), (9 * 2048, 0x82));
    assert_eq!(
        (
            parts[2].1.first_lba,
            parts[2].1.sectors,
            parts[2].1.bootable
        ),
        (25 * 2048, 64 * 2048, true)
    );
    assert_eq!(
        disk.bytes(25 << 20, img.len()),
        img,
        "root partition holds the image"
    );
    assert_eq!(out.root_uuid, EXT4_UUID);
    assert_eq!(out.root_filesystem.as_ref().unwrap().kind, Kind::Ext4);
    let swap = out
        .partitions
        .iter()
        .find(|p| p.role == Role::Swap)
        .unwrap();
    assert_eq!(
        swap.filesystem.as_ref().unwrap().label.as_deref(),
        Some("swap1")
    );
    assert_eq!(swap.path, "/dev/vda2");
    assert_eq!(
        env.mkfs_calls,
        vec![(
            1 << 20,
            8 << 20,
            Mkfs::Vfat {
                label: "ephemeral0"
            }
        )]
    );
    assert_eq!(out.image_bytes, img.len() as u64);
    assert_eq!(disk.flushes, 1);
    let json = result::to_json(&out, "/dev/vda");
    assert_eq!(json["root uuid"], EXT4_UUID);
    assert_eq!(json["partitions"]["root"], "/dev/vda3");
    assert_eq!(json["efi system partition uuid"], serde_json::Value::Null);
    // Where the time went, in the order the steps ran, within the total.
    let names: Vec<&str> = out.phases.list.iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        [
            "checks",
            "tables",
            "stream",
            "mkswap",
            "mkfs",
            "first MiB",
            "sync"
        ]
    );
    let sum: u64 = out.phases.list.iter().map(|p| p.1).sum();
    assert!(sum > 0 && sum <= out.total_ms, "{sum} of {}", out.total_ms);
    assert_eq!(json["phases_ms"][2][0], "stream");
    assert_eq!(json["phases_ms"][2][1], out.phases.list[2].1);
}

#[test]
fn uefi_gpt_layout_with_config_drive() {
    let img = ext4_image(1 << 20);
    let p = plan(
        r#"{"image_type": "partition", "root_mb": 100, "deploy_boot_mode": "uefi", "disk_label": "msdos"}"#,
        &img,
    );
    let mut disk = MemDisk::new(2 * GIB, 4096);
    let mut env = ScriptedEnv::default();
    let mut req = request(&p, BootMode::Uefi);
    req.configdrive = Some(ConfigDrive::raw(vec![0xcd; (1 << 20) + 5]).unwrap()); // rounds up to 2 MiB
    let out = deploy(&mut disk, &mut SliceImage::new(&img), &mut env, &req).unwrap();
    assert_eq!(out.label, Some(Label::Gpt), "uefi forces gpt");
    let existing = table::read_existing(&mut disk).unwrap().unwrap();
    let got: Vec<_> = existing
        .parts
        .iter()
        .map(|p| {
            (
                p.number,
                p.offset >> 20,
                p.len >> 20,
                p.name.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1, 550, "primary".into()),
            (2, 551, 2, "primary".into()),
            (3, 553, 100, "primary".into())
        ]
    );
    assert_eq!(
        existing.parts[0].gpt_type,
        Some(crate::wire::guid::types::ESP)
    );
    assert_eq!(disk.bytes(551 << 20, 4), vec![0xcd; 4]);
    assert_eq!(
        env.mkfs_calls,
        vec![(1 << 20, 550 << 20, Mkfs::Vfat { label: "efi-part" })]
    );
    // The backup GPT sits at the very end.
    let last = disk.bytes(2 * GIB - 4096, 4096);
    let h = gpt::Header::new_checked(&last[..]).unwrap();
    assert_eq!(h.my_lba(), 2 * GIB / 4096 - 1);
}

#[test]
fn checksum_mismatch_names_both_values_and_leaves_no_filesystem() {
    let img = ext4_image(2 << 20);
    let mut p = plan(r#"{"image_type": "partition", "root_mb": 64}"#, &img);
    p.checksum = Checksum::Value(HashAlgo::Sha256, "0".repeat(64));
    let mut disk = MemDisk::new(GIB, 512);
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &request(&p, BootMode::Bios),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&"0".repeat(64)) && text.contains(&sha256(&img)),
        "{text}"
    );
    assert_eq!(err.step(), "checksum");
    // The first MiB of root (with the superblock) was never written.
    assert!(crate::wire::superblock::probe(&disk.bytes(1 << 20, 70_000)).is_none());
    assert_eq!(
        disk.bytes(2 << 20, 16),
        img[1 << 20..(1 << 20) + 16].to_vec()
    );
}

#[test]
fn an_image_rivet_cannot_write_is_refused_by_name_before_any_write() {
    for (magic, says) in [
        // cluster_bits read from the ext4 bytes that follow.
        (
            &b"QFI\xfb\0\0\0\x03"[..],
            "is a qcow2 rivet cannot read: cluster_bits",
        ),
        (
            &[0x1f, 0x8b, 0x08, 0xe0][..],
            "is not valid gzip: reserved header flags",
        ),
        // A zstd frame asking for a 2 GiB window (exponent 21 + 10).
        (
            &[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8][..],
            "is not usable zstd",
        ),
        (&b"KDMV"[..], "is vmdk, which rivet does not write"),
        (&b"conectix"[..], "is vhd, which rivet does not write"),
    ] {
        let mut img = ext4_image(5 << 20);
        img[..magic.len()].copy_from_slice(magic);
        for json in [
            r#"{"image_type": "partition", "root_mb": 64}"#,
            r#"{"image_type": "whole-disk"}"#,
        ] {
            let p = plan(json, &img);
            let mut disk = MemDisk::new(GIB, 512);
            let err = deploy(
                &mut disk,
                &mut SliceImage::new(&img),
                &mut ScriptedEnv::default(),
                &request(&p, BootMode::Bios),
            )
            .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(says), "{text}");
            assert_eq!(err.step(), "validate");
            assert_eq!(disk.writes, 0, "{says}: wrote before refusing");
        }
    }
}

#[test]
fn refusals_happen_before_any_write() {
    let img = ext4_image(5 << 20);
    let cases: Vec<(&str, u64, &str)> = vec![
        (
            r#"{"image_type": "partition", "root_mb": 4}"#,
            GIB,
            "larger than the 4 MiB root",
        ),
        (
            r#"{"image_type": "partition", "root_mb": 2000}"#,
            GIB,
            "but the disk has 1024 MiB",
        ),
        (
            r#"{"image_type": "partition", "root_mb": 64, "ephemeral_mb": 10, "ephemeral_format": "ext4"}"#,
            GIB,
            "ephemeral_format ext4",
        ),
        (
            r#"{"image_type": "partition", "root_mb": 64, "ephemeral_mb": 1, "ephemeral_format": "ext3"}"#,
            GIB,
            "the 1 MiB ephemeral partition cannot hold ext3",
        ),
        (
            r#"{"image_type": "partition", "root_mb": 64, "preserve_ephemeral": true, "ephemeral_mb": 10}"#,
            GIB,
            "no partition table to preserve",
        ),
        (
            r#"{"image_type": "whole-disk"}"#,
            4 << 20,
            "larger than the disk",
        ),
    ];
    for (json, size, want) in cases {
        let p = plan(json, &img);
        let mut disk = MemDisk::new(size, 512);
        let mut env = ScriptedEnv {
            ext_supported: false,
            ..Default::default()
        };
        let err = deploy(
            &mut disk,
            &mut SliceImage::new(&img),
            &mut env,
            &request(&p, BootMode::Bios),
        )
        .unwrap_err();
        assert!(err.to_string().contains(want), "{json}: {err}");
        assert_eq!(disk.writes, 0, "{json}: wrote before refusing");
    }
}

#[test]
fn unknown_size_image_stops_at_the_partition_boundary() {
    let img = ext4_image(5 << 20);
    let p = plan(r#"{"image_type": "partition", "root_mb": 4}"#, &img);
    let mut disk = MemDisk::new(GIB, 512);
    let mut src = SliceImage {
        size_known: false,
        ..SliceImage::new(&img)
    };
    let err = deploy(
        &mut disk,
        &mut src,
        &mut ScriptedEnv::default(),
        &request(&p, BootMode::Bios),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::ImageTooLarge { limit, .. } if limit == 4 << 20),
        "{err}"
    );
    assert!(
        disk.bytes((1 << 20) + (4 << 20), 16)
            .iter()
            .all(|&b| b == 0),
        "wrote past the partition"
    );
}

#[test]
fn io_errors_name_disk_and_offset() {
    let img = ext4_image(3 << 20);
    let p = plan(r#"{"image_type": "partition", "root_mb": 64}"#, &img);
    let mut disk = FailingDisk {
        inner: MemDisk::new(GIB, 512),
        fail_at: (2 << 20) + 4096,
    };
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &request(&p, BootMode::Bios),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "memdisk: write at byte 2097152: Input/output error (errno 5)"
    );
}

#[test]
fn preserve_ephemeral_keeps_its_bytes_and_refuses_another_layout() {
    let img = ext4_image(2 << 20);
    let json = r#"{"image_type": "partition", "root_mb": 64, "ephemeral_mb": 16, "ephemeral_format": "vfat"}"#;
    let p = plan(json, &img);
    let mut disk = MemDisk::new(GIB, 512);
    deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &request(&p, BootMode::Bios),
    )
    .unwrap();
    disk.write_at(3 << 20, &[0x5a; 4096]).unwrap(); // user data on the ephemeral partition
    let before = disk.bytes(1 << 20, 16 << 20);

    let img2 = ext4_image(3 << 20);
    let p2 = plan(
        &json.replace(
            r#""root_mb": 64"#,
            r#""root_mb": 64, "preserve_ephemeral": true"#,
        ),
        &img2,
    );
    let mut env = ScriptedEnv::default();
    let out = deploy(
        &mut disk,
        &mut SliceImage::new(&img2),
        &mut env,
        &request(&p2, BootMode::Bios),
    )
    .unwrap();
    assert_eq!(disk.bytes(1 << 20, 16 << 20), before, "ephemeral changed");
    assert!(env.mkfs_calls.is_empty(), "ephemeral was formatted");
    assert_eq!(disk.bytes(17 << 20, img2.len()), img2);
    assert_eq!(out.root_uuid, EXT4_UUID);

    let p3 = plan(
        &json.replace(
            r#""root_mb": 64"#,
            r#""root_mb": 60, "preserve_ephemeral": true"#,
        ),
        &img2,
    );
    let writes = disk.writes;
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&img2),
        &mut env,
        &request(&p3, BootMode::Bios),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("the table on the disk differs"),
        "{err}"
    );
    assert_eq!(disk.writes, writes);
}

/// A whole-disk image with a GPT made for a 64 MiB disk, one partition.
fn gpt_disk_image() -> Vec<u8> {
    let table = gpt::Table {
        geometry: gpt::Geometry::new(512, (64 << 20) / 512, gpt::ENTRY_COUNT).unwrap(),
        disk_guid: crate::wire::guid::Guid([7; 16]),
        partitions: vec![gpt::Partition {
            type_guid: crate::wire::guid::types::LINUX_DATA,
            unique_guid: crate::wire::guid::Guid([9; 16]),
            first_lba: 2048,
            last_lba: 2048 * 40 - 1,
            attributes: 0,
            name: "root".into(),
        }],
    };
    let mut img = vec![0u8; 64 << 20];
    let primary = table.primary_region().unwrap();
    img[..primary.len()].copy_from_slice(&primary);
    let backup = table.backup_region().unwrap();
    let at = table.geometry.backup_entries_lba() as usize * 512;
    img[at..at + backup.len()].copy_from_slice(&backup);
    let fs = ext4_image(4096);
    img[1 << 20..(1 << 20) + 4096].copy_from_slice(&fs);
    img
}

#[test]
fn whole_disk_gpt_moves_backup_and_adds_config_drive() {
    let img = gpt_disk_image();
    let p = plan(r#"{"disk_format": "raw"}"#, &img);
    let mut disk = MemDisk::new(GIB, 512);
    let mut req = request(&p, BootMode::Uefi);
    req.configdrive = Some(ConfigDrive::raw(b"config-2 contents".to_vec()).unwrap());
    let out = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &req,
    )
    .unwrap();
    assert_eq!(out.root_uuid, "0x00000000");
    let last = disk.bytes(GIB - 512, 512);
    let backup = gpt::Header::new_checked(&last[..]).unwrap();
    assert_eq!(backup.my_lba(), GIB / 512 - 1);
    assert_eq!(backup.last_usable(), GIB / 512 - 34);
    let primary_sector = disk.bytes(512, 512);
    let primary = gpt::Header::new_checked(&primary_sector[..]).unwrap();
    assert_eq!(primary.alternate_lba(), GIB / 512 - 1);
    let existing = table::read_existing(&mut disk).unwrap().unwrap();
    assert_eq!(existing.parts.len(), 2);
    let cd = &existing.parts[1];
    // sgdisk -n 0:-64MB:0 on a 1 GiB disk starts at 959 MiB.
    assert_eq!((cd.number, cd.offset >> 20), (2, 959));
    assert_eq!(cd.offset + cd.len, (GIB / 512 - 33) * 512);
    assert_eq!(disk.bytes(cd.offset, 17), b"config-2 contents");
    assert_eq!(
        out.partitions[0].filesystem.as_ref().unwrap().uuid,
        EXT4_UUID
    );
    // The stale image backup header at 64 MiB is gone? It is image data now;
    // what matters is that the real backup is valid and current.
    assert_eq!(
        disk.bytes(0, 512)[446 + 12..446 + 16],
        ((GIB / 512 - 1) as u32).to_le_bytes()
    );
    let names: Vec<&str> = out.phases.list.iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        [
            "checks",
            "stream",
            "tables",
            "config drive",
            "first MiB",
            "sync"
        ]
    );
}

#[test]
fn whole_disk_mbr_gets_config_drive_in_last_64_mib_and_reports_signature() {
    let mut img = vec![0u8; 8 << 20];
    let part = mbr::Partition {
        bootable: true,
        kind: 0x83,
        first_lba: 2048,
        sectors: 8192,
    };
    mbr::write(&mut img[..512], 0xdead_beef, &[part]).unwrap();
    let p = plan(r#"{"disk_format": "raw"}"#, &img);
    let mut disk = MemDisk::new(GIB, 512);
    let mut req = request(&p, BootMode::Bios);
    req.configdrive = Some(ConfigDrive::raw(vec![1; 1000]).unwrap());
    let out = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &req,
    )
    .unwrap();
    assert_eq!(out.root_uuid, "0xdeadbeef");
    let s0 = disk.bytes(0, 512);
    let parts = mbr::Mbr::new_checked(&s0).unwrap().partitions();
    assert_eq!(
        parts[1].1,
        mbr::Partition {
            bootable: false,
            kind: 0x0c,
            first_lba: (GIB as u32 - (64 << 20)) / 512,
            sectors: (64 << 20) / 512
        }
    );
    assert_eq!(disk.bytes(GIB - (64 << 20), 4), vec![1; 4]);

    let mut four = img.clone();
    let p4: Vec<_> = (0..4)
        .map(|i| mbr::Partition {
            bootable: false,
            kind: 0x83,
            first_lba: 2048 + i * 100,
            sectors: 100,
        })
        .collect();
    mbr::write(&mut four[..512], 1, &p4).unwrap();
    let p = plan(r#"{"disk_format": "raw"}"#, &four);
    let mut req = request(&p, BootMode::Bios);
    req.configdrive = Some(ConfigDrive::raw(vec![1; 1000]).unwrap());
    // On a disk that holds the first deploy: the refusal must come before
    // the wipe and the image's first bytes, and leave it as it was.
    let before = disk.bytes(0, 16 << 20);
    let end_before = disk.bytes(GIB - (64 << 20), 64 << 20);
    let writes = disk.writes;
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&four),
        &mut ScriptedEnv::default(),
        &req,
    )
    .unwrap_err();
    assert!(err.to_string().contains("4 primary partitions"), "{err}");
    assert_eq!(disk.writes, writes, "nothing written");
    assert_eq!(disk.bytes(0, 16 << 20), before);
    assert_eq!(disk.bytes(GIB - (64 << 20), 64 << 20), end_before);
    // An image without a table is refused as early.
    let bare = vec![0x5au8; 4 << 20];
    let p = plan(r#"{"disk_format": "raw"}"#, &bare);
    let mut req = request(&p, BootMode::Bios);
    req.configdrive = Some(ConfigDrive::raw(vec![1; 1000]).unwrap());
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&bare),
        &mut ScriptedEnv::default(),
        &req,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no partition table"), "{err}");
    assert_eq!(disk.writes, writes, "nothing written");
}

#[test]
fn mbr_config_drive_beyond_2_tib_is_refused_with_a_reason() {
    let mut img = vec![0u8; 2 << 20];
    let part = mbr::Partition {
        bootable: true,
        kind: 0x83,
        first_lba: 2048,
        sectors: 2048,
    };
    mbr::write(&mut img[..512], 0x1234_5678, &[part]).unwrap();
    let p = plan(r#"{"disk_format": "raw"}"#, &img);
    let mut req = request(&p, BootMode::Bios);
    req.configdrive = Some(ConfigDrive::raw(vec![1; 10]).unwrap());
    let mut disk = MemDisk::new(3 << 40, 512);
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &req,
    )
    .unwrap_err();
    assert!(err.to_string().contains("larger than 2 TiB"), "{err}");
    assert!(
        disk.bytes(0, 512).iter().all(|&b| b == 0),
        "the image's first MiB was written despite the failure"
    );
}

#[test]
fn erase_metadata_leaves_no_table_and_no_filesystem_signature() {
    let img = ext4_image(3 << 20);
    let p = plan(
        r#"{"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "uefi"}"#,
        &img,
    );
    let mut disk = MemDisk::new(GIB, 512);
    deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &request(&p, BootMode::Uefi),
    )
    .unwrap();
    assert!(table::read_existing(&mut disk).unwrap().is_some());
    let root = 551 * MIB;
    assert!(superblock::probe(&disk.bytes(root, PROBE_LEN)).is_some());
    // Data in the middle of a partition is not metadata: it stays.
    let middle = disk.bytes(root + 2 * MIB, 4096);
    erase_metadata(&mut disk).unwrap();
    assert!(table::read_existing(&mut disk).unwrap().is_none());
    assert_eq!(
        disk.bytes(GIB - 33 * 512, 33 * 512),
        vec![0u8; 33 * 512],
        "backup GPT"
    );
    assert!(superblock::probe(&disk.bytes(root, PROBE_LEN)).is_none());
    assert_eq!(disk.bytes(root + 2 * MIB, 4096), middle);
}

/// A disk that remembers the largest single read asked of it.
struct Watched {
    disk: MemDisk,
    largest_read: usize,
}

impl BlockDevice for Watched {
    fn name(&self) -> &str {
        self.disk.name()
    }
    fn size(&self) -> u64 {
        self.disk.size()
    }
    fn logical_block(&self) -> u32 {
        self.disk.logical_block()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.largest_read = self.largest_read.max(buf.len());
        self.disk.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        self.disk.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.disk.flush()
    }
}

fn primary_header(sectors: u64, entry_count: u32, entry_size: u32, entries: &[u8]) -> Vec<u8> {
    gpt::header_sector(gpt::HeaderFields {
        sector_size: 512,
        my_lba: 1,
        alternate_lba: sectors - 1,
        first_usable: 2048,
        last_usable: sectors - 34,
        disk_guid: crate::wire::guid::Guid([7; 16]),
        entries_lba: 2,
        entry_count,
        entry_size,
        entries_crc: gpt::entries_crc(entries),
    })
}

#[test]
fn a_hostile_gpt_header_is_garbage_not_a_2_gib_allocation() {
    // 4096 entries of 512 KiB, valid CRC: 2 GiB of "entries" on a 1 TiB disk.
    let sectors = (1u64 << 40) / 512;
    let mut disk = Watched {
        disk: MemDisk::new(1 << 40, 512),
        largest_read: 0,
    };
    let header = primary_header(sectors, 4096, 512 << 10, &[]);
    disk.write_at(512, &header).unwrap();
    assert_eq!(table::read_existing(&mut disk).unwrap(), None);
    assert!(
        disk.largest_read <= 4096,
        "read {} bytes at once",
        disk.largest_read
    );
    // The wipe treats it as what it is: garbage on the disk.
    erase_metadata(&mut disk).unwrap();
    assert_eq!(disk.disk.bytes(512, 8), vec![0u8; 8]);
}

#[test]
fn partitions_past_the_disk_make_the_table_untrusted_and_preserve_ephemeral_refuses() {
    let img = ext4_image(2 << 20);
    let json = r#"{"image_type": "partition", "root_mb": 64, "ephemeral_mb": 16, "ephemeral_format": "vfat", "disk_label": "gpt"}"#;
    let mut disk = MemDisk::new(GIB, 512);
    deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &request(&plan(json, &img), BootMode::Bios),
    )
    .unwrap();
    // Every partition moved by 2^55 sectors: multiplied by 512 unchecked,
    // the byte offsets wrap round to where the plan would put them.
    let sectors = GIB / 512;
    let existing = table::read_existing(&mut disk)
        .unwrap()
        .expect("the deploy's GPT");
    let mut entries = disk.bytes(1024, 128 * 128);
    for part in &existing.parts {
        let n = part.number as usize;
        let e = &mut entries[(n - 1) * 128..n * 128];
        for field in [32usize, 40] {
            let lba = u64::from_le_bytes(e[field..field + 8].try_into().unwrap()) + (1 << 55);
            e[field..field + 8].copy_from_slice(&lba.to_le_bytes());
        }
    }
    disk.write_at(1024, &entries).unwrap();
    disk.write_at(512, &primary_header(sectors, 128, 128, &entries))
        .unwrap();
    disk.write_at((sectors - 1) * 512, &[0u8; 512]).unwrap(); // no backup to fall back on
    assert_eq!(table::read_existing(&mut disk).unwrap(), None);
    let preserve = json.replace(
        r#""root_mb": 64"#,
        r#""root_mb": 64, "preserve_ephemeral": true"#,
    );
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &request(&plan(&preserve, &img), BootMode::Bios),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no partition table to preserve"),
        "{err}"
    );
}

#[test]
fn a_write_that_failed_behind_the_caller_is_reported_at_its_own_offset() {
    // The writer thread reports a queued write's failure on the next call.
    let disk = MemDisk::new(GIB, 512);
    let e = Error::device(
        &disk,
        "write",
        8 << 20,
        IoError {
            at: Some(4 << 20),
            errno: 5,
            message: "Input/output error".into(),
        },
    );
    let text = e.to_string();
    assert!(text.contains("write at byte 4194304"), "{text}");
    assert!(
        !text.contains("8388608"),
        "one offset, the right one: {text}"
    );
}

/// A disk that holds a previous deploy: every byte a known pattern.
fn used_disk(bytes: u64) -> MemDisk {
    let mut disk = MemDisk::new(bytes, 512);
    let pattern: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    disk.write_at(0, &pattern).unwrap();
    disk.writes = 0;
    disk
}

/// Whole-disk GPT images this disk cannot take are refused from the held
/// first MiB, before the old disk is wiped: one whose GPT was made for a
/// larger disk (a partition past this disk's end), and one that is full
/// when a config drive is asked for. Both leave every byte as it was.
#[test]
fn whole_disk_gpt_images_that_cannot_fit_are_refused_before_the_wipe() {
    // Made for a 1 GiB disk: a partition up to 800 MiB; the file itself 2 MiB.
    let big = gpt::Table {
        geometry: gpt::Geometry::new(512, GIB / 512, gpt::ENTRY_COUNT).unwrap(),
        disk_guid: crate::wire::guid::Guid([7; 16]),
        partitions: vec![gpt::Partition {
            type_guid: crate::wire::guid::types::LINUX_DATA,
            unique_guid: crate::wire::guid::Guid([9; 16]),
            first_lba: 2048,
            last_lba: (800 << 20) / 512 - 1,
            attributes: 0,
            name: "root".into(),
        }],
    };
    let mut img = vec![0u8; 2 << 20];
    let primary = big.primary_region().unwrap();
    img[..primary.len()].copy_from_slice(&primary);
    let p = plan(r#"{"disk_format": "raw"}"#, &img);
    let mut disk = used_disk(64 << 20);
    let before = disk.bytes(0, 64 << 20);
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &request(&p, BootMode::Uefi),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("ends at sector 1638399, past the disk's last usable sector 131038"),
        "{err}"
    );
    assert_eq!(disk.writes, 0);
    assert!(disk.bytes(0, 64 << 20) == before, "the disk was touched");

    // Fits, but its partition (up to 40 MiB) reaches into the last 64 MiB
    // of a 100 MiB disk: no room for the config drive asked for.
    let img = gpt_disk_image();
    let p = plan(r#"{"disk_format": "raw"}"#, &img);
    let mut disk = used_disk(100 << 20);
    let before = disk.bytes(0, 100 << 20);
    let mut req = request(&p, BootMode::Uefi);
    req.configdrive = Some(ConfigDrive::raw(b"config-2 contents".to_vec()).unwrap());
    let err = deploy(
        &mut disk,
        &mut SliceImage::new(&img),
        &mut ScriptedEnv::default(),
        &req,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no room for a config drive: the image's partition 1 reaches into the disk's last 64 MiB"),
        "{err}"
    );
    assert_eq!(disk.writes, 0);
    assert!(disk.bytes(0, 100 << 20) == before, "the disk was touched");
}

/// A source that says it hashed its own stream (as the read-ahead does for
/// a file) and reports `digest`, or nothing, at the end.
struct SelfHashing<'a> {
    inner: SliceImage<'a>,
    digest: Option<String>,
}

impl embedded_io::ErrorType for SelfHashing<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for SelfHashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.inner.read(buf)
    }
}

impl ImageSource for SelfHashing<'_> {
    fn size(&self) -> Option<u64> {
        self.inner.size()
    }
    fn describe(&self) -> String {
        "self-hashing".into()
    }
    fn hashes_stream(&self, algo: HashAlgo) -> bool {
        algo == HashAlgo::Sha256
    }
    fn stream_digest(&mut self) -> Option<String> {
        self.digest.take()
    }
}

#[test]
fn a_source_that_hashes_its_own_stream_is_held_to_the_plan_and_fails_closed_without_a_digest() {
    let img = ext4_image(2 << 20);
    let p = plan(r#"{"image_type": "partition", "root_mb": 64}"#, &img);
    let run = |digest: Option<String>| {
        let mut disk = MemDisk::new(GIB, 512);
        let mut src = SelfHashing {
            inner: SliceImage::new(&img),
            digest,
        };
        let result = deploy(
            &mut disk,
            &mut src,
            &mut ScriptedEnv::default(),
            &request(&p, BootMode::Bios),
        );
        let bootable = crate::wire::superblock::probe(&disk.bytes(1 << 20, 70_000)).is_some();
        (result, bootable)
    };
    let (ok, bootable) = run(Some(sha256(&img)));
    assert_eq!(ok.unwrap().root_uuid, EXT4_UUID);
    assert!(bootable);
    // Its digest, not a hash of the bytes, is what is compared.
    let (wrong, bootable) = run(Some("1".repeat(64)));
    assert_eq!(wrong.unwrap_err().step(), "checksum");
    assert!(!bootable, "the held-back MiB stays unwritten");
    let (none, bootable) = run(None);
    let text = none.unwrap_err().to_string();
    assert!(text.contains("not read to its end"), "{text}");
    assert!(!bootable);
}

use super::*;
use crate::io::MemDisk;

fn opts(kind: Kind) -> Options<'static> {
    Options {
        kind,
        label: "ephemeral0",
        uuid: *b"\x11\x22\x33\x44\x55\x66\x47\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x00",
        hash_seed: [7; 16],
        now: 1_764_460_800,
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn made(kind: Kind, mib: u64) -> (MemDisk, Made, Vec<u8>) {
    let mut disk = MemDisk::new((mib + 2) << 20, 512);
    let m = format(&mut disk, 1 << 20, mib << 20, &opts(kind)).unwrap();
    let sb = disk.bytes((1 << 20) + 1024, 1024);
    (disk, m, sb)
}

#[test]
fn the_superblock_of_a_64_mib_ext4() {
    let (_, m, sb) = made(Kind::Ext4, 64);
    assert_eq!(le16(&sb, 0x38), 0xef53);
    assert_eq!(le32(&sb, 0x04), 65536, "1 KiB blocks under 512 MiB");
    assert_eq!(le32(&sb, 0x18), 0, "log2(1024) - 10");
    assert_eq!(le32(&sb, 0x14), 1, "first data block");
    assert_eq!(le32(&sb, 0x00), 16384, "one inode per 4 KiB");
    assert_eq!(le32(&sb, 0x08), 3276, "5% reserved");
    assert_eq!(le16(&sb, 0x58), 256);
    assert_eq!(&sb[0x78..0x82], b"ephemeral0");
    assert_eq!(le32(&sb, 0x5c), 0x2c, "has_journal ext_attr dir_index");
    assert_eq!(le32(&sb, 0x60), 0x2c2, "filetype extent 64bit flex_bg");
    assert_eq!(
        le32(&sb, 0x64),
        0x46b,
        "sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"
    );
    assert_eq!(le32(&sb, 0xe0), 8, "journal inode");
    assert_eq!(m.journal_blocks, 4096);
    assert_eq!(le16(&sb, 0xfe), 64);
    assert_eq!(sb[0x175], 1, "crc32c");
    assert_eq!(
        crc32c::update(!0, &sb[..0x3fc]),
        le32(&sb, 0x3fc),
        "s_checksum"
    );
}

#[test]
fn group_descriptors_and_bitmaps_carry_their_checksums() {
    let (disk, m, _) = made(Kind::Ext4, 64);
    let g = &m.geometry;
    let uuid = opts(Kind::Ext4).uuid;
    let seed = crc32c::update(!0, &uuid);
    let gdt = disk.bytes((1 << 20) + 2048, (g.groups * 64) as usize);
    let mut free = 0u64;
    for n in 0..g.groups as usize {
        let mut d = gdt[n * 64..n * 64 + 64].to_vec();
        let stored = le16(&d, 0x1e);
        d[0x1e] = 0;
        d[0x1f] = 0;
        let c = crc32c::update(crc32c::update(seed, &(n as u32).to_le_bytes()), &d);
        assert_eq!(stored, c as u16, "group {n}");
        free += u64::from(le16(&d, 0x0c));
    }
    let sb = disk.bytes((1 << 20) + 1024, 1024);
    assert_eq!(free, u64::from(le32(&sb, 0x0c)), "free blocks add up");
    // Group 0's block bitmap: its checksum, and the blocks in use.
    let bb_block = u64::from(le32(&gdt, 0));
    let bb = disk.bytes((1 << 20) + bb_block * 1024, 1024);
    let c = crc32c::update(seed, &bb[..1024]);
    assert_eq!(
        (le16(&gdt, 0x18), le16(&gdt, 0x38)),
        (c as u16, (c >> 16) as u16)
    );
    assert_eq!(le16(&gdt, 0x12) & BG_INODE_ZEROED, BG_INODE_ZEROED);
    assert_eq!(le16(&gdt[64..], 0x12) & BG_INODE_UNINIT, BG_INODE_UNINIT);
}

#[test]
fn root_and_lost_found_are_directories_with_checksummed_blocks() {
    let (mut disk, _, _) = made(Kind::Ext4, 64);
    let gdt = disk.bytes((1 << 20) + 2048, 64);
    let itable = u64::from(le32(&gdt, 8));
    let inode =
        |disk: &mut MemDisk, ino: u64| disk.bytes((1 << 20) + itable * 1024 + (ino - 1) * 256, 256);
    let root = inode(&mut disk, 2);
    assert_eq!(le16(&root, 0), 0o40755);
    assert_eq!(le16(&root, 0x1a), 3, "links: ., .. and lost+found's ..");
    assert_eq!(le16(&root, 0x28), 0xf30a, "an extent tree");
    let seed = crc32c::update(!0, &opts(Kind::Ext4).uuid);
    let iseed = crc32c::update(
        crc32c::update(seed, &2u32.to_le_bytes()),
        &0u32.to_le_bytes(),
    );
    let mut z = root.clone();
    z[0x7c..0x7e].fill(0);
    z[0x82..0x84].fill(0);
    let c = crc32c::update(iseed, &z);
    assert_eq!(
        (le16(&root, 0x7c), le16(&root, 0x82)),
        (c as u16, (c >> 16) as u16)
    );
    let block = u64::from(le32(&root, 0x28 + 20));
    let dir = disk.bytes((1 << 20) + block * 1024, 1024);
    assert_eq!(&dir[8..9], b".");
    assert_eq!(&dir[12 + 8..12 + 10], b"..");
    assert_eq!(&dir[24 + 8..24 + 18], b"lost+found");
    assert_eq!(le32(&dir, 1024 - 4), crc32c::update(iseed, &dir[..1012]));
    let lf = inode(&mut disk, 11);
    assert_eq!((le16(&lf, 0), le32(&lf, 4)), (0o40700, 16384));
}

#[test]
fn the_journal_has_a_clean_jbd2_superblock() {
    let (disk, m, sb) = made(Kind::Ext4, 64);
    // s_jnl_blocks: the journal inode's first extent.
    let start = u64::from(le32(&sb, 0x10c + 12 + 8));
    let jsb = disk.bytes((1 << 20) + start * 1024, 1024);
    assert_eq!(&jsb[..4], &[0xc0, 0x3b, 0x39, 0x98]);
    assert_eq!(
        u32::from_be_bytes(jsb[0x10..0x14].try_into().unwrap()),
        m.journal_blocks
    );
    assert_eq!(
        u32::from_be_bytes(jsb[0x1c..0x20].try_into().unwrap()),
        0,
        "s_start 0: nothing to replay"
    );
}

#[test]
fn ext2_and_ext3_have_no_checksums_and_their_features() {
    for (kind, compat, journal) in [(Kind::Ext2, 0x28, 0), (Kind::Ext3, 0x2c, 4096)] {
        let (_, m, sb) = made(kind, 64);
        assert_eq!(le32(&sb, 0x5c), compat);
        assert_eq!(le32(&sb, 0x60), 0x2);
        assert_eq!(le32(&sb, 0x64), 0x3);
        assert_eq!(le32(&sb, 0x3fc), 0);
        assert_eq!(m.journal_blocks, journal);
    }
}

#[test]
fn too_small_is_refused_before_writing() {
    let mut disk = MemDisk::new(4 << 20, 512);
    let e = format(&mut disk, 0, 1 << 20, &opts(Kind::Ext4)).unwrap_err();
    assert!(e.contains("ext4 on 1048576 bytes"), "{e}");
    assert_eq!(disk.writes, 0);
}

/// What rivet's own ext4 reader (ext4-view) finds in what rivet made.
#[test]
fn the_ext4_reader_opens_what_was_made() {
    use crate::fs::{ext4::Ext4Root, Kind as FileKind, RootFs};
    for kind in [Kind::Ext4, Kind::Ext3, Kind::Ext2] {
        let (disk, m, _) = made(kind, 16);
        let len = (m.geometry.blocks * u64::from(m.geometry.block_size)) as usize;
        let image = disk.bytes(1 << 20, len);
        let mut fs = Ext4Root::load(Box::new(image)).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let names: Vec<String> = fs.list("/").unwrap().into_iter().map(|e| e.0).collect();
        assert!(
            names.iter().any(|n| n == "lost+found"),
            "{kind:?}: {names:?}"
        );
        assert_eq!(
            fs.kind("/lost+found").unwrap(),
            Some(FileKind::Dir),
            "{kind:?}"
        );
    }
}

#[test]
fn bits_are_set_in_runs_and_singly() {
    let mut b = vec![0u8; 4];
    set_bits(&mut b, 3, 21);
    assert_eq!(b, [0xf8, 0xff, 0x1f, 0]);
    let mut b = vec![0u8; 2];
    set_bits(&mut b, 10, 99);
    assert_eq!(b, [0, 0xfc], "clamped to the bitmap");
    assert!(Geometry::new(Kind::Ext4, 16 << 40).is_err(), "past 16 TiB");
}

//! The readers against images the real tools make: `mkfs.ext4 -d` (then
//! `e2fsck -fD` for hashed directories) and `mkfs.xfs -p protofile`, from
//! one tree with what a root filesystem has: boot files, relative and
//! absolute symlinks, a symlink loop, a directory of thousands of entries,
//! a file of many blocks. Then damaged copies: refused, never a panic.

use super::ext4::Ext4Root;
use super::xfs::Xfs;
use super::{FsError, Kind, ReadAt, RootFs};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct FileAt {
    file: std::fs::File,
    len: u64,
    /// Bytes changed on the way out (damage without touching the file).
    patch: BTreeMap<u64, u8>,
}

impl FileAt {
    fn open(path: &Path) -> FileAt {
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        FileAt {
            file,
            len,
            patch: BTreeMap::new(),
        }
    }
}

impl ReadAt for FileAt {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(FsError::Io(format!(
                "{} bytes at {offset}: past the end",
                buf.len()
            )));
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| FsError::Io(e.to_string()))?;
        for (&at, &b) in self.patch.range(offset..offset + buf.len() as u64) {
            buf[(at - offset) as usize] = b;
        }
        Ok(())
    }
    fn size(&self) -> u64 {
        self.len
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success() || (cmd == "e2fsck" && out.status.code() == Some(1)),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0] ^ seed)
        .collect()
}

const BIG_DIR: usize = 3000;

/// The tree both images are made from.
fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("tree");
    let _ = std::fs::remove_dir_all(&root);
    let mk = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    mk("etc");
    mk("boot/efi/EFI/rocky");
    mk("usr/lib/many");
    std::fs::write(
        root.join("etc/os-release"),
        "ID=rocky\nVERSION_ID=\"9.4\"\n",
    )
    .unwrap();
    std::fs::write(root.join("boot/vmlinuz-6.1.0"), pattern(3 << 20, 7)).unwrap();
    std::fs::write(
        root.join("boot/efi/EFI/rocky/shimx64.efi"),
        pattern(70_000, 1),
    )
    .unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
    link("boot/vmlinuz-6.1.0", "vmlinuz");
    link("/etc/os-release", "usr/lib/os-release-abs");
    link("../../etc/./os-release", "usr/lib/os-release-rel");
    // Longer than ext4's 60 inline bytes. (Not past XFS's room in the
    // inode: mkfs.xfs 6.1's protofile writes remote symlinks without their
    // v5 block header, which xfs_db and this reader rightly refuse.)
    let long = format!("/{}etc/os-release", "./".repeat(60));
    link(&long, "long-link");
    link("loop-b", "loop-a");
    link("loop-a", "loop-b");
    for i in 0..BIG_DIR {
        std::fs::write(
            root.join(format!("usr/lib/many/entry-{i:05}")),
            i.to_string(),
        )
        .unwrap();
    }
    root
}

/// `mkfs.ext4 -q -F [EXTRA…] -d ROOT DIR/NAME SIZE`, afresh.
fn mkfs_ext4(dir: &Path, name: &str, root: &Path, size: &str, extra: &[&str]) -> PathBuf {
    let img = dir.join(name);
    let _ = std::fs::remove_file(&img);
    let mut args = vec!["-q", "-F"];
    args.extend(extra);
    args.extend(["-d", root.to_str().unwrap(), img.to_str().unwrap(), size]);
    run("mkfs.ext4", &args);
    img
}

fn ext4_image(dir: &Path) -> PathBuf {
    let root = tree(dir);
    let img = mkfs_ext4(dir, "root.ext4", &root, "64M", &[]);
    // Hash-indexed directories, as a long-lived root filesystem has them.
    run("e2fsck", &["-fyD", img.to_str().unwrap()]);
    img
}

fn protofile(root: &Path, out: &mut String, depth: usize) {
    let mut names: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().into_string().unwrap();
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let pad = " ".repeat(depth);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(e.path()).unwrap();
            out.push_str(&format!("{pad}{name} l--777 0 0 {}\n", target.display()));
        } else if meta.is_dir() {
            out.push_str(&format!("{pad}{name} d--755 0 0\n"));
            protofile(&e.path(), out, depth + 1);
            out.push_str(&format!("{pad}$\n"));
        } else {
            out.push_str(&format!("{pad}{name} ---644 0 0 {}\n", e.path().display()));
        }
    }
}

fn xfs_image(dir: &Path) -> PathBuf {
    let root = tree(dir);
    let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
    protofile(&root, &mut proto, 1);
    proto.push_str("$\n");
    let pf = dir.join("proto");
    std::fs::write(&pf, proto).unwrap();
    let img = dir.join("root.xfs");
    let _ = std::fs::remove_file(&img);
    std::fs::File::create(&img)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    run(
        "mkfs.xfs",
        &["-q", "-p", pf.to_str().unwrap(), img.to_str().unwrap()],
    );
    img
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rivet-fs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What both readers must answer for the tree.
fn check_tree(fs: &mut dyn RootFs) {
    let name = fs.kind_name();
    assert_eq!(
        fs.read("/etc/os-release", 1 << 20).unwrap(),
        b"ID=rocky\nVERSION_ID=\"9.4\"\n",
        "{name}"
    );
    assert_eq!(
        fs.read("/vmlinuz", 8 << 20).unwrap(),
        pattern(3 << 20, 7),
        "{name}: via a symlink"
    );
    assert_eq!(
        fs.read("/boot/efi/EFI/rocky/shimx64.efi", 1 << 20).unwrap(),
        pattern(70_000, 1)
    );
    assert_eq!(fs.read("/empty", 10).unwrap(), b"");
    for p in [
        "/usr/lib/os-release-abs",
        "/usr/lib/os-release-rel",
        "/long-link",
        "/usr/../etc/os-release",
    ] {
        assert_eq!(
            fs.read(p, 100).unwrap(),
            b"ID=rocky\nVERSION_ID=\"9.4\"\n",
            "{name}: {p}"
        );
    }
    assert_eq!(fs.kind("/boot").unwrap(), Some(Kind::Dir));
    assert_eq!(
        fs.kind("/vmlinuz").unwrap(),
        Some(Kind::File),
        "kind follows links"
    );
    assert_eq!(fs.kind("/boot/nothing").unwrap(), None);
    assert_eq!(fs.kind("/nothing/below").unwrap(), None);
    let mut top: Vec<(String, Kind)> = fs.list("/").unwrap();
    top.retain(|(n, _)| n != "lost+found");
    top.sort();
    let expect: Vec<(String, Kind)> = [
        ("boot", Kind::Dir),
        ("empty", Kind::File),
        ("etc", Kind::Dir),
        ("long-link", Kind::Symlink),
        ("loop-a", Kind::Symlink),
        ("loop-b", Kind::Symlink),
        ("usr", Kind::Dir),
        ("vmlinuz", Kind::Symlink),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), *k))
    .collect();
    assert_eq!(top, expect, "{name}");
    let many = fs.list("/usr/lib/many").unwrap();
    assert_eq!(
        many.len(),
        BIG_DIR,
        "{name}: every entry of a large directory"
    );
    assert_eq!(fs.read("/usr/lib/many/entry-02999", 10).unwrap(), b"2999");
    assert_eq!(fs.read("/usr/lib/many/entry-00000", 10).unwrap(), b"0");
    assert!(
        matches!(fs.read("/loop-a", 10), Err(FsError::SymlinkLoop(_))),
        "{name}"
    );
    assert!(matches!(fs.read("/boot", 10), Err(FsError::NotAFile(_))));
    assert!(matches!(
        fs.read("/etc/nothing", 10),
        Err(FsError::NotFound(_))
    ));
    assert!(matches!(
        fs.list("/etc/os-release"),
        Err(FsError::NotADirectory(_))
    ));
    assert!(matches!(
        fs.read("/vmlinuz", 1000),
        Err(FsError::TooLarge { size, limit: 1000, .. }) if size == 3 << 20
    ));
}

#[test]
fn ext4_reader_finds_files_links_and_large_directories() {
    let dir = scratch("ext4");
    let img = ext4_image(&dir);
    let mut fs = Ext4Root::load(Box::new(FileAt::open(&img))).unwrap();
    check_tree(&mut fs);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn xfs_reader_finds_files_links_and_large_directories() {
    let dir = scratch("xfs");
    let img = xfs_image(&dir);
    let mut fs = Xfs::load(Box::new(FileAt::open(&img))).unwrap();
    check_tree(&mut fs);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn damaged_xfs_is_refused_with_what_is_wrong_never_a_panic() {
    let dir = scratch("xfs-bad");
    let img = xfs_image(&dir);
    let load = |patch: &[(u64, u8)]| {
        let mut f = FileAt::open(&img);
        f.patch.extend(patch.iter().copied());
        Xfs::load(Box::new(f))
    };
    assert!(matches!(load(&[(0, b'Y')]), Err(FsError::Corrupt(m)) if m.contains("XFSB")));
    // Block size 4096 claimed as 8192: geometry no longer agrees.
    assert!(matches!(load(&[(6, 0x20)]), Err(FsError::Corrupt(m)) if m.contains("geometry")));
    // An unknown incompatible feature bit.
    assert!(matches!(load(&[(216, 0x80)]), Err(FsError::Unsupported(m)) if m.contains("feature")));
    // The root inode number pointed at the superblock itself.
    let mut fs = load(&[
        (56, 0),
        (57, 0),
        (58, 0),
        (59, 0),
        (60, 0),
        (61, 0),
        (62, 0),
        (63, 0),
    ])
    .unwrap();
    assert!(matches!(fs.list("/"), Err(FsError::Corrupt(m)) if m.contains("inode 0")));

    // Mutations of the metadata the tree lives in: whatever comes back,
    // an answer and not a panic, within the reads' bounds.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut refused = 0;
    for _ in 0..300 {
        let mut f = FileAt::open(&img);
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // The first 256 KiB: superblock, AG headers, inodes, directories.
            f.patch.insert(seed % (256 << 10), (seed >> 32) as u8);
        }
        let Ok(mut fs) = Xfs::load(Box::new(f)) else {
            refused += 1;
            continue;
        };
        let a = fs.list("/usr/lib/many").map(|v| v.len());
        let b = fs.read("/vmlinuz", 8 << 20).map(|v| v.len());
        refused += usize::from(a.is_err() || b.is_err());
    }
    assert!(refused > 0, "some damage must be seen");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn damaged_ext4_is_refused_never_a_panic() {
    let dir = scratch("ext4-bad");
    let img = ext4_image(&dir);
    let mut f = FileAt::open(&img);
    f.patch.insert(1024 + 56, 0); // superblock magic
    assert!(Ext4Root::load(Box::new(f)).is_err());
    // A high word of the block count without the 64bit feature: the
    // reader would size its group table from it.
    let mut f = FileAt::open(&img);
    f.patch.insert(1024 + 0x150 + 1, 0x11);
    match Ext4Root::load(Box::new(f)) {
        Err(e) => assert!(e.to_string().contains("do not fit"), "{e}"),
        Ok(_) => panic!("a block count past the partition was taken"),
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let mut f = FileAt::open(&img);
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            f.patch.insert(seed % (2 << 20), (seed >> 32) as u8);
        }
        if let Ok(mut fs) = Ext4Root::load(Box::new(f)) {
            let _ = fs.list("/usr/lib/many");
            let _ = fs.read("/vmlinuz", 8 << 20);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// An ext4 image of `root` as `mkfs.ext4 -d` makes it (1 KiB blocks at
/// this size), and where inode `path` sits in it: debugfs's imap.
fn small_ext4(dir: &Path, root: &Path) -> PathBuf {
    let img = dir.join("small.ext4");
    let _ = std::fs::remove_file(&img);
    let (root, out) = (root.to_str().unwrap(), img.to_str().unwrap());
    run(
        "mkfs.ext4",
        &["-q", "-F", "-b", "1024", "-d", root, out, "16M"],
    );
    img
}

fn inode_offset(img: &Path, path: &str) -> u64 {
    let out = Command::new("debugfs")
        .args(["-R", &format!("imap {path}"), img.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let block: u64 = text
        .split("located at block ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let offset = text.split("offset 0x").nth(1).unwrap().trim();
    block * 1024 + u64::from_str_radix(offset, 16).unwrap()
}

fn put(f: &mut FileAt, at: u64, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        f.patch.insert(at + i as u64, *b);
    }
}

/// An extent tree node's header: magic, entries, max, depth.
fn node_header(entries: u16, max: u16, depth: u16) -> Vec<u8> {
    [0xf30au16, entries, max, depth, 0, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn leaf(file_block: u32, len: u16, start: u32) -> Vec<u8> {
    let mut e = file_block.to_le_bytes().to_vec();
    e.extend(len.to_le_bytes());
    e.extend(0u16.to_le_bytes());
    e.extend(start.to_le_bytes());
    e
}

/// Issue 33, item 5: a directory whose map repeats one device block, an
/// extent tree that reaches one node twice, empty extents, a directory
/// claiming 2³² bytes: each refused by name, at once, never walked.
#[test]
fn crafted_ext4_maps_are_refused_before_they_multiply_work() {
    let dir = scratch("ext4-maps");
    let root = dir.join("tree");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("d")).unwrap();
    for i in 0..300 {
        std::fs::write(root.join(format!("d/f{i}")), b"x").unwrap();
    }
    let img = small_ext4(&dir, &root);
    let at = inode_offset(&img, "/d");
    let first_block = {
        let mut f = FileAt::open(&img);
        let mut b = [0u8; 4];
        f.read_at(at + 40 + 12 + 8, &mut b).unwrap();
        u32::from_le_bytes(b)
    };
    let list = |patch: &dyn Fn(&mut FileAt)| {
        let mut f = FileAt::open(&img);
        patch(&mut f);
        Ext4Root::load(Box::new(f))
            .unwrap()
            .list("/d")
            .map(|l| l.len())
    };
    assert_eq!(list(&|_| {}), Ok(300));
    // Four blocks, every one the first: 4 × its entries before.
    let same = |f: &mut FileAt| {
        let mut map = node_header(4, 4, 0);
        for i in 0..4 {
            map.extend(leaf(i, 1, first_block));
        }
        put(f, at + 40, &map);
    };
    assert!(
        matches!(list(&same), Err(FsError::Corrupt(m)) if m.contains("mapped twice")),
        "{:?}",
        list(&same)
    );
    // The root points twice at one leaf (written into a free block).
    let spare = 15 * 1024;
    let twice = |f: &mut FileAt| {
        let mut node = node_header(1, 84, 0);
        node.extend(leaf(0, 1, first_block));
        put(f, spare * 1024, &node);
        let mut map = node_header(2, 4, 1);
        for i in 0..2u32 {
            map.extend(i.to_le_bytes());
            map.extend((spare as u32).to_le_bytes());
            map.extend([0u8; 4]);
        }
        put(f, at + 40, &map);
    };
    assert!(
        matches!(list(&twice), Err(FsError::Corrupt(m)) if m.contains("reached twice")),
        "{:?}",
        list(&twice)
    );
    let empty = |f: &mut FileAt| {
        let mut map = node_header(4, 4, 0);
        for i in 0..4 {
            map.extend(leaf(i, 0, first_block));
        }
        put(f, at + 40, &map);
    };
    assert!(matches!(list(&empty), Err(FsError::Corrupt(m)) if m.contains("empty extent")));
    // i_size_high: 2³² bytes more, four million blocks of lookups.
    let huge = |f: &mut FileAt| put(f, at + 108, &[1, 0, 0, 0]);
    assert!(
        matches!(list(&huge), Err(FsError::OutOfWork(m)) if m.contains("4194308 blocks")),
        "{:?}",
        list(&huge)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 33, item 6: directories of sixteen symlinks to the next such
/// directory, five deep below the ESP tree: every path within the depth
/// and per-path link bounds, 16⁵ of them to list. The boot-chain search
/// ends on the reader's budget of links followed.
#[test]
fn a_fan_of_symlinked_directories_ends_on_the_budget() {
    let dir = scratch("ext4-fan");
    let root = dir.join("tree");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("boot/efi/EFI/rocky/fan")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=rocky\n").unwrap();
    std::fs::write(root.join("boot/efi/EFI/rocky/shimx64.efi"), b"MZ").unwrap();
    for level in 0..5 {
        let here = if level == 0 {
            "boot/efi/EFI/rocky/fan".to_string()
        } else {
            format!("fan{level}")
        };
        std::fs::create_dir_all(root.join(&here)).unwrap();
        for i in 0..16 {
            let to = format!("/fan{}", level + 1);
            std::os::unix::fs::symlink(to, root.join(format!("{here}/l{i}"))).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("fan5")).unwrap();
    let img = small_ext4(&dir, &root);
    let mut fs = Ext4Root::load(Box::new(FileAt::open(&img))).unwrap();
    let err = crate::boot::bootchain::find(&mut fs, "5e1f2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("work budget spent: more than 4096 symbolic links followed"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// ext3 keeps block maps, not extents: read through the same tree.
#[test]
fn ext3_block_maps_are_read() {
    let dir = scratch("ext3");
    let root = tree(&dir);
    let img = dir.join("root.ext3");
    let _ = std::fs::remove_file(&img);
    run(
        "mkfs.ext3",
        &[
            "-q",
            "-F",
            "-d",
            root.to_str().unwrap(),
            img.to_str().unwrap(),
            "64M",
        ],
    );
    let mut fs = Ext4Root::load(Box::new(FileAt::open(&img))).unwrap();
    check_tree(&mut fs);
    let _ = std::fs::remove_dir_all(dir);
}

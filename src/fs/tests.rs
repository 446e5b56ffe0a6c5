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

fn ext4_image(dir: &Path) -> PathBuf {
    let img = dir.join("root.ext4");
    let root = tree(dir);
    let _ = std::fs::remove_file(&img);
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            root.to_str().unwrap(),
            img.to_str().unwrap(),
            "64M",
        ],
    );
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

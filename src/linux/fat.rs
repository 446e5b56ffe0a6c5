//! FAT filesystems (the EFI system partition, a vfat ephemeral) made with
//! `fatfs`. fatfs speaks std's Read/Write/Seek in small, unaligned pieces;
//! [`Window`] gives it a view of one partition with a write-back cache of
//! whole blocks, so the device still sees aligned O_DIRECT writes.

use crate::boot::bootchain::EspFile;
use crate::io::BlockDevice;
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A partition of a block device as a seekable stream, caching the blocks
/// it touches (a fresh FAT32 ESP touches about 1 MiB) until [`Window::flush_blocks`].
pub struct Window<'a> {
    dev: &'a mut dyn BlockDevice,
    offset: u64,
    len: u64,
    pos: u64,
    block: u64,
    cache: BTreeMap<u64, (Vec<u8>, bool)>,
}

impl<'a> Window<'a> {
    pub fn new(dev: &'a mut dyn BlockDevice, offset: u64, len: u64) -> Window<'a> {
        let block = (dev.logical_block() as u64).max(4096);
        Window {
            dev,
            offset,
            len,
            pos: 0,
            block,
            cache: BTreeMap::new(),
        }
    }

    fn load(&mut self, index: u64) -> io::Result<&mut (Vec<u8>, bool)> {
        if !self.cache.contains_key(&index) {
            let mut data = vec![0u8; self.block as usize];
            self.dev
                .read_at(self.offset + index * self.block, &mut data)
                .map_err(|e| io::Error::other(e.to_string()))?;
            self.cache.insert(index, (data, false));
        }
        Ok(self.cache.get_mut(&index).expect("just inserted"))
    }

    /// Writes every dirty block, runs of adjacent blocks in one write.
    pub fn flush_blocks(&mut self) -> io::Result<()> {
        let dirty: Vec<u64> = self
            .cache
            .iter()
            .filter(|(_, (_, d))| *d)
            .map(|(i, _)| *i)
            .collect();
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        let mut prev: Option<u64> = None;
        for index in dirty {
            if prev.is_some_and(|p| p + 1 != index) {
                self.write_run(run_start, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = index;
            }
            run.extend_from_slice(&self.cache[&index].0);
            prev = Some(index);
        }
        if !run.is_empty() {
            self.write_run(run_start, &run)?;
        }
        for entry in self.cache.values_mut() {
            entry.1 = false;
        }
        Ok(())
    }

    fn write_run(&mut self, first: u64, data: &[u8]) -> io::Result<()> {
        self.dev
            .write_at(self.offset + first * self.block, data)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        let mut done = 0;
        while done < n {
            let at = self.pos + done as u64;
            let (index, within) = (at / self.block, (at % self.block) as usize);
            let take = (self.block as usize - within).min(n - done);
            let block = self.load(index)?;
            buf[done..done + take].copy_from_slice(&block.0[within..within + take]);
            done += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pos + buf.len() as u64 > self.len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        let mut done = 0;
        while done < buf.len() {
            let at = self.pos + done as u64;
            let (index, within) = (at / self.block, (at % self.block) as usize);
            let take = (self.block as usize - within).min(buf.len() - done);
            let block = self.load(index)?;
            block.0[within..within + take].copy_from_slice(&buf[done..done + take]);
            block.1 = true;
            done += take;
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_blocks()
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the partition",
            ));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}

/// Writes `files` (paths from the root, `/`-separated) onto the FAT
/// filesystem at `offset`, making directories and replacing files that are
/// there; everything reaches the device before this returns.
pub fn write_files(
    dev: &mut dyn BlockDevice,
    offset: u64,
    len: u64,
    files: &[EspFile],
) -> Result<(), String> {
    let what = format!("{} at offset {offset}", dev.name());
    let mut window = Window::new(dev, offset, len);
    {
        let fs = fatfs::FileSystem::new(&mut window, fatfs::FsOptions::new())
            .map_err(|e| format!("{what}: not a FAT filesystem: {e}"))?;
        for f in files {
            let root = fs.root_dir();
            let (dir_path, name) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
            let mut dir = root;
            for part in dir_path.split('/').filter(|p| !p.is_empty()) {
                dir = dir
                    .create_dir(part)
                    .map_err(|e| format!("{what}: making {dir_path}: {e}"))?;
            }
            let mut file = dir
                .create_file(name)
                .map_err(|e| format!("{what}: creating {}: {e}", f.path))?;
            file.truncate()
                .and_then(|_| file.write_all(&f.data))
                .and_then(|_| file.flush())
                .map_err(|e| format!("{what}: writing {} ({} bytes): {e}", f.path, f.data.len()))?;
        }
        fs.unmount()
            .map_err(|e| format!("{what}: closing the filesystem: {e}"))?;
    }
    repair_dot_entries(&mut window).map_err(|e| format!("{what}: {e}"))?;
    window
        .flush_blocks()
        .map_err(|e| format!("{what}: writing back: {e}"))?;
    window
        .dev
        .flush()
        .map_err(|e| format!("{what}: flush: {e}"))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

const DIR_ENTRY: usize = 32;
const ATTR_DIR: u8 = 0x10;
const ATTR_LFN: u8 = 0x0f;
const DOT: &[u8; 11] = b".          ";
const DOTDOT: &[u8; 11] = b"..         ";

/// fatfs 0.3.6 puts a long-name entry before the `.` and `..` of every
/// directory it makes, and points `..` at the root's cluster instead of 0:
/// firmware copes, but the FAT specification and fsck.vfat want `.` and
/// `..` as the first two entries. Walks a FAT32 tree and, where a
/// directory begins [LFN, `.`, LFN, `..`], rewrites it [`.`, `..`, deleted,
/// deleted]; directories made by other tools are left as they are.
fn repair_dot_entries(w: &mut Window) -> io::Result<()> {
    let mut boot = [0u8; 512];
    w.seek(SeekFrom::Start(0))?;
    w.read_exact(&mut boot)?;
    let bps = u64::from(le16(&boot, 11));
    let spc = u64::from(boot[13]);
    let (reserved, fats) = (u64::from(le16(&boot, 14)), u64::from(boot[16]));
    let (fat16_size, fat32_size, root) =
        (le16(&boot, 22), u64::from(le32(&boot, 36)), le32(&boot, 44));
    if fat16_size != 0 || bps == 0 || spc == 0 {
        return Ok(()); // FAT12/16: the ESP rivet makes is FAT32
    }
    let fat_at = reserved * bps;
    let data_at = (reserved + fats * fat32_size) * bps;
    let cluster_bytes = (spc * bps) as usize;
    let cluster_at = |c: u32| data_at + (u64::from(c).saturating_sub(2)) * cluster_bytes as u64;
    let mut todo = vec![(root, 0u32)];
    let mut seen = std::collections::BTreeSet::new();
    while let Some((dir, parent)) = todo.pop() {
        // A corrupt FAT could loop or fan out: ESPs are small.
        if !seen.insert(dir) || seen.len() > 4096 {
            continue;
        }
        let mut cluster = dir;
        let mut first = true;
        for _ in 0..64 {
            let mut data = vec![0u8; cluster_bytes];
            w.seek(SeekFrom::Start(cluster_at(cluster)))?;
            w.read_exact(&mut data)?;
            if first
                && dir != root
                && &data[DIR_ENTRY..DIR_ENTRY + 11] == DOT
                && &data[3 * DIR_ENTRY..3 * DIR_ENTRY + 11] == DOTDOT
                && data[11] == ATTR_LFN
                && data[2 * DIR_ENTRY + 11] == ATTR_LFN
            {
                let mut head = [0u8; 4 * DIR_ENTRY];
                head[..DIR_ENTRY].copy_from_slice(&data[DIR_ENTRY..2 * DIR_ENTRY]);
                head[DIR_ENTRY..2 * DIR_ENTRY].copy_from_slice(&data[3 * DIR_ENTRY..4 * DIR_ENTRY]);
                // `..` of a directory in the root names cluster 0.
                head[DIR_ENTRY + 20..DIR_ENTRY + 22]
                    .copy_from_slice(&((parent >> 16) as u16).to_le_bytes());
                head[DIR_ENTRY + 26..DIR_ENTRY + 28]
                    .copy_from_slice(&(parent as u16).to_le_bytes());
                head[2 * DIR_ENTRY] = 0xe5;
                head[3 * DIR_ENTRY] = 0xe5;
                data[..head.len()].copy_from_slice(&head);
                w.seek(SeekFrom::Start(cluster_at(cluster)))?;
                w.write_all(&head)?;
            }
            first = false;
            for e in data.chunks_exact(DIR_ENTRY) {
                if e[0] == 0 {
                    break;
                }
                if e[0] == 0xe5 || e[11] == ATTR_LFN || e[11] & ATTR_DIR == 0 || e[0] == b'.' {
                    continue;
                }
                let child = u32::from(le16(e, 20)) << 16 | u32::from(le16(e, 26));
                if child >= 2 {
                    todo.push((child, if dir == root { 0 } else { dir }));
                }
            }
            let mut next = [0u8; 4];
            w.seek(SeekFrom::Start(fat_at + u64::from(cluster) * 4))?;
            w.read_exact(&mut next)?;
            cluster = u32::from_le_bytes(next) & 0x0fff_ffff;
            if !(2..0x0fff_fff8).contains(&cluster) {
                break;
            }
        }
    }
    Ok(())
}

/// An 11-byte FAT label, space padded.
fn fat_label(label: &str) -> [u8; 11] {
    let mut out = [b' '; 11];
    for (o, b) in out.iter_mut().zip(label.bytes()) {
        *o = b;
    }
    out
}

/// Formats the partition at `offset` as FAT (FAT32 when it is large enough,
/// as mkfs.vfat chooses for an ESP) with `label` and the volume serial `id`.
pub fn format(
    dev: &mut dyn BlockDevice,
    offset: u64,
    len: u64,
    label: &str,
    id: u32,
) -> Result<(), String> {
    let sector = dev.logical_block().max(512);
    let sectors = len / sector as u64;
    // FAT32 needs ≥ 65525 clusters; with 512-byte clusters that is ~32 MiB.
    let fat32 = len >= 64 << 20;
    let mut options = fatfs::FormatVolumeOptions::new()
        .bytes_per_sector(sector as u16)
        .total_sectors(
            u32::try_from(sectors).map_err(|_| "partition too large for FAT".to_string())?,
        )
        .volume_label(fat_label(label))
        .volume_id(id);
    if fat32 {
        options = options.fat_type(fatfs::FatType::Fat32);
    }
    let mut window = Window::new(dev, offset, len);
    fatfs::format_volume(&mut window, options).map_err(|e| format!("formatting FAT: {e}"))?;
    window
        .flush_blocks()
        .map_err(|e| format!("writing FAT: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::uefi::{esp_loaders, Loader};
    use crate::io::MemDisk;
    use crate::wire::superblock::{probe, Kind};

    #[test]
    fn esp_sized_fat32_probes_with_label_and_serial() {
        for block in [512, 4096] {
            let mut disk = MemDisk::new(600 << 20, block);
            format(&mut disk, 1 << 20, 550 << 20, "efi-part", 0x45ab_2312).unwrap();
            let fs = probe(&disk.bytes(1 << 20, 70_000)).unwrap();
            assert_eq!(fs.kind, Kind::Vfat);
            assert_eq!(fs.uuid, "45AB-2312");
            assert_eq!(fs.label.as_deref(), Some("efi-part"));
            assert!(
                disk.writes < 20,
                "{} writes: the cache should batch them",
                disk.writes
            );
            // fatfs can mount what it made.
            let mut w = Window::new(&mut disk, 1 << 20, 550 << 20);
            let fs = fatfs::FileSystem::new(&mut w, fatfs::FsOptions::new()).unwrap();
            assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
        }
    }

    #[test]
    fn loaders_are_found_on_a_debian_like_esp() {
        let mut disk = MemDisk::new(80 << 20, 512);
        format(&mut disk, 1 << 20, 64 << 20, "ESP", 1).unwrap();
        {
            let mut w = Window::new(&mut disk, 1 << 20, 64 << 20);
            {
                let fs = fatfs::FileSystem::new(&mut w, fatfs::FsOptions::new()).unwrap();
                let root = fs.root_dir();
                let efi = root.create_dir("EFI").unwrap();
                efi.create_dir("BOOT")
                    .unwrap()
                    .create_file("BOOTX64.EFI")
                    .unwrap()
                    .write_all(b"MZ")
                    .unwrap();
                let debian = efi.create_dir("debian").unwrap();
                debian.create_file("shimx64.efi").unwrap();
                let mut csv: Vec<u8> = vec![0xff, 0xfe];
                csv.extend(
                    "shimx64.efi,debian,,This is the boot entry for debian\n"
                        .encode_utf16()
                        .flat_map(u16::to_le_bytes),
                );
                debian
                    .create_file("BOOTX64.CSV")
                    .unwrap()
                    .write_all(&csv)
                    .unwrap();
            }
            w.flush_blocks().unwrap();
        }
        // fatfs wrote it; rivet's own reader reads it.
        let esp =
            |disk: &MemDisk, at: u64, len: u64| esp_loaders(Box::new(disk.bytes(at, len as usize)));
        let loaders = esp(&disk, 1 << 20, 64 << 20).unwrap();
        assert_eq!(
            loaders,
            vec![Loader {
                path: "\\EFI\\debian\\shimx64.efi".into(),
                label: "debian".into()
            }]
        );
        // An empty ESP has none; something else is an error that says where.
        format(&mut disk, 1 << 20, 64 << 20, "ESP", 2).unwrap();
        assert_eq!(esp(&disk, 1 << 20, 64 << 20), Ok(vec![]));
        let err = esp(&disk, 70 << 20, 8 << 20).unwrap_err();
        assert!(err.starts_with("not a FAT filesystem"), "{err}");
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;
    use crate::io::MemDisk;

    /// fsck.vfat -n: whether it found nothing to fix, and what it said.
    fn fsck(dev: &mut MemDisk, len: u64, name: &str) -> (bool, String) {
        let path =
            std::env::temp_dir().join(format!("rivet-fat-{}-{name}.img", std::process::id()));
        let mut data = vec![0u8; len as usize];
        dev.read_at(0, &mut data).unwrap();
        std::fs::write(&path, &data).unwrap();
        let out = std::process::Command::new("fsck.vfat")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    #[test]
    fn files_written_onto_a_fresh_esp_leave_a_clean_filesystem() {
        let len = 550u64 << 20;
        let mut dev = MemDisk::new(len, 512);
        format(&mut dev, 0, len, "efi-part", 0x730cae59).unwrap();
        let file = |p: &str, n: usize| EspFile {
            path: p.into(),
            from: "test".into(),
            data: vec![0x5a; n],
        };
        let files = [
            file("EFI/debian/shimx64.efi", 1_048_504),
            file("EFI/debian/grubx64.efi", 4_183_488),
            file("EFI/debian/grub.cfg", 116),
            file("EFI/BOOT/BOOTX64.EFI", 1_048_504),
            file("EFI/BOOT/grub.cfg", 116),
            file("EFI/debian/BOOTX64.CSV", 108),
        ];
        write_files(&mut dev, 0, len, &files).unwrap();
        // Twice, as a re-run of install_bootloader does: files replaced.
        write_files(&mut dev, 0, len, &files).unwrap();
        // What rivet checks before writing into an ESP passes its own.
        let mut fat = crate::fs::fat::Fat::open(Box::new(dev.bytes(0, len as usize))).unwrap();
        assert_eq!(fat.verify(), Ok(()));
        let (ok, report) = fsck(&mut dev, len, "esp");
        assert!(ok && !report.contains("Expected"), "{report}");
        // What fatfs reads back is what was written.
        let mut window = Window::new(&mut dev, 0, len);
        let fs = fatfs::FileSystem::new(&mut window, fatfs::FsOptions::new()).unwrap();
        for f in &files {
            let mut data = Vec::new();
            fs.root_dir()
                .open_file(&f.path)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            assert_eq!(data, f.data, "{}", f.path);
        }
    }
}

//! A file's map from its blocks to the device's, as ext4 and XFS both
//! keep it, and the checks that keep a crafted map from multiplying work:
//! extents in file order without overlap, no empty extents, and (for
//! directories) no device block mapped twice.

use super::{FsError, ReadAt};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First block of the file this extent maps.
    pub file_block: u64,
    /// Where it is: a block number in the filesystem's own addressing.
    pub fs_block: u64,
    pub count: u64,
    /// Allocated but never written: reads as zeros.
    pub unwritten: bool,
}

/// Extents must be non-empty, in file order and not overlap: a crafted
/// map would otherwise have the same bytes read again and again (a
/// million empty extents made every block's lookup walk them all).
pub fn check_order(
    extents: &[Extent],
    what: &dyn Fn() -> alloc::string::String,
) -> Result<(), FsError> {
    if extents.iter().any(|e| e.count == 0) {
        return Err(FsError::Corrupt(format!("{}: an empty extent", what())));
    }
    for pair in extents.windows(2) {
        if pair[0].file_block.saturating_add(pair[0].count) > pair[1].file_block {
            return Err(FsError::Corrupt(format!("{}: overlapping extents", what())));
        }
    }
    Ok(())
}

/// No device block twice: a directory's blocks are its own (files may
/// share blocks through reflinks; directories never do). One block mapped
/// 65,536 times made one directory of 65,536 copies of its entries.
pub fn check_distinct(
    extents: &[Extent],
    what: &dyn Fn() -> alloc::string::String,
) -> Result<(), FsError> {
    let mut by_place: Vec<(u64, u64)> = extents.iter().map(|e| (e.fs_block, e.count)).collect();
    by_place.sort_unstable();
    for pair in by_place.windows(2) {
        if pair[0].0.saturating_add(pair[0].1) > pair[1].0 {
            return Err(FsError::Corrupt(format!(
                "{}: device block {} mapped twice",
                what(),
                pair[1].0
            )));
        }
    }
    Ok(())
}

/// `len` bytes of a file's space from byte `start`: holes and unwritten
/// extents read as zeros. `extents` are checked ([`check_order`]);
/// `offset_of` turns a filesystem block number into a device byte offset
/// (and refuses one past the device). Finds the first extent by binary
/// search, so a block costs O(log n), not a walk of the map.
pub fn read_mapped(
    src: &mut dyn ReadAt,
    extents: &[Extent],
    block: u64,
    start: u64,
    len: usize,
    offset_of: &dyn Fn(u64) -> Result<u64, FsError>,
) -> Result<Vec<u8>, FsError> {
    let mut out = vec![0u8; len];
    let end = start + len as u64;
    let first = extents
        .partition_point(|e| e.file_block.saturating_add(e.count).saturating_mul(block) <= start);
    for e in &extents[first..] {
        let (e_start, e_end) = match (e.file_block.checked_mul(block), e.count.checked_mul(block)) {
            (Some(s), Some(n)) => (s, s.saturating_add(n)),
            _ => return Err(FsError::Corrupt("extent past 2^64 bytes".into())),
        };
        if e_start >= end {
            break;
        }
        let (from, to) = (e_start.max(start), e_end.min(end));
        if from >= to || e.unwritten {
            continue;
        }
        let disk = offset_of(e.fs_block)?
            .checked_add(from - e_start)
            .ok_or_else(|| FsError::Corrupt("extent past 2^64 bytes".into()))?;
        let at = (from - start) as usize;
        src.read_at(disk, &mut out[at..at + (to - from) as usize])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn e(file_block: u64, fs_block: u64, count: u64) -> Extent {
        Extent {
            file_block,
            fs_block,
            count,
            unwritten: false,
        }
    }

    #[test]
    fn maps_are_refused_when_they_would_multiply_work() {
        let what = || String::from("inode 12");
        assert_eq!(check_order(&[e(0, 100, 2), e(2, 50, 1)], &what), Ok(()));
        assert!(matches!(check_order(&[e(0, 100, 2), e(1, 50, 1)], &what),
            Err(FsError::Corrupt(m)) if m == "inode 12: overlapping extents"));
        assert!(matches!(check_order(&[e(0, 100, 0)], &what),
            Err(FsError::Corrupt(m)) if m.contains("empty extent")));
        assert_eq!(check_distinct(&[e(0, 100, 2), e(2, 50, 50)], &what), Ok(()));
        assert!(
            matches!(check_distinct(&[e(0, 100, 1), e(1, 100, 1)], &what),
            Err(FsError::Corrupt(m)) if m.contains("device block 100 mapped twice"))
        );
    }

    #[test]
    fn reads_across_extents_holes_and_unwritten_space() {
        let mut dev: Vec<u8> = (0..=255u8).cycle().take(64 * 16).collect();
        let mut map = [e(0, 4, 1), e(2, 1, 2), e(4, 8, 1)];
        map[2].unwritten = true;
        let got = read_mapped(&mut dev, &map, 16, 8, 72, &|b| Ok(b * 16)).unwrap();
        let mut want = vec![0u8; 72];
        want[..8].copy_from_slice(&dev[72..80]); // block 0 → 4, from byte 8
        want[24..56].copy_from_slice(&dev[16..48]); // blocks 2, 3 → 1, 2
        assert_eq!(got, want, "block 1 a hole, block 4 unwritten");
    }
}

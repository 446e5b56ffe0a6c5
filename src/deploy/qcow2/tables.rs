//! The image's tables: the header's checks, the L1 and L2 tables decoded
//! and every offset checked against the file and the other tables.

use crate::wire::qcow2::{self, Cluster, Header};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Largest L1 table qemu accepts (QCOW_MAX_L1_SIZE).
pub(super) const MAX_L1_BYTES: u64 = 32 << 20;

/// The checks on a header that need nothing else: what rivet can write.
pub fn check_header(h: &Header, file_size: Option<u64>, limit: u64) -> Result<(), String> {
    if h.backing_file_offset != 0 {
        return Err(
            "it has a backing file: only self-contained images are written \
                    (qemu-img convert -O qcow2 makes one)"
                .into(),
        );
    }
    if h.crypt_method != 0 {
        return Err(format!("it is encrypted (crypt_method {})", h.crypt_method));
    }
    if h.incompatible & qcow2::incompatible::EXTERNAL_DATA_FILE != 0 {
        return Err("its data is in an external data file".into());
    }
    if h.incompatible & qcow2::incompatible::CORRUPT != 0 {
        return Err("qemu marked it corrupt".into());
    }
    let unknown = h.incompatible & !qcow2::incompatible::KNOWN;
    if unknown != 0 {
        return Err(format!("unknown incompatible features {unknown:#x}"));
    }
    if h.size > limit {
        return Err(format!(
            "its virtual size is {} bytes, larger than its {limit}-byte target",
            h.size
        ));
    }
    if (h.l1_size as u64) < h.l1_needed() {
        return Err(format!(
            "l1_size {} cannot map a virtual size of {} bytes",
            h.l1_size, h.size
        ));
    }
    let l1_len = h.l1_size as u64 * 8;
    if l1_len > MAX_L1_BYTES {
        return Err(format!("an L1 table of {l1_len} bytes"));
    }
    if h.l1_size > 0 {
        if h.l1_table_offset == 0 || h.l1_table_offset % h.cluster_size() != 0 {
            return Err(format!(
                "L1 table offset {:#x} is not a cluster past the header",
                h.l1_table_offset
            ));
        }
        within(file_size, h.l1_table_offset, l1_len, "the L1 table")?;
    }
    Ok(())
}

pub(super) fn within(
    file_size: Option<u64>,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<(), String> {
    match file_size {
        Some(size) if offset.checked_add(len).is_none_or(|end| end > size) => Err(format!(
            "{what} at {offset:#x} ({len} bytes) lies outside the {size}-byte file"
        )),
        _ => Ok(()),
    }
}

/// One byte range of the file and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Region {
    L1,
    L2 {
        index: u64,
    },
    /// `guest` is a guest cluster index; `run` guest clusters from it map
    /// the same host cluster (one, unless an image shares a cluster among
    /// many: the run keeps that to one mapping held, however many).
    Data {
        guest: u64,
        from_file: u32,
        run: u64,
    },
    Compressed {
        guest: u64,
    },
    /// A table read by range before the pass (0: the L1 table, n + 1: L2
    /// table n): its bytes as served must be the bytes read, or the server
    /// has mapped the disk with tables the checksum does not cover.
    Recheck {
        table: u64,
    },
}

/// Regions sort by where they start, then by a tag that keeps two regions
/// starting at one offset (a cluster mapped twice) apart.
pub(super) type Key = (u64, u64);

pub(super) fn key(start: u64, r: Region) -> Key {
    let tag = match r {
        Region::L1 => u64::MAX,
        Region::L2 { index } => u64::MAX - 1 - index,
        Region::Data { guest, .. } | Region::Compressed { guest } => guest,
        Region::Recheck { table } => (u64::MAX >> 1) - table,
    };
    (start, tag)
}

/// The image's metadata: where the tables are, what is known so far.
pub(super) struct Tables {
    pub(super) h: Header,
    pub(super) cs: u64,
    pub(super) file_size: Option<u64>,
    /// L2 table offsets by L1 index (0: none), once the L1 is read.
    pub(super) l1: Option<Vec<u64>>,
    /// The same offsets, sorted, for overlap checks.
    pub(super) l2_sorted: Vec<u64>,
    /// L2 tables not yet read.
    pub(super) l2_unread: usize,
}

impl Tables {
    pub(super) fn table_at(&self, offset: u64, len: u64) -> Option<&'static str> {
        let end = offset.saturating_add(len.max(1));
        let overlaps = |start: u64, n: u64| offset < start.saturating_add(n) && start < end;
        if overlaps(0, self.cs) {
            return Some("the header");
        }
        if overlaps(self.h.l1_table_offset, self.h.l1_size as u64 * 8) {
            return Some("the L1 table");
        }
        if overlaps(
            self.h.refcount_table_offset,
            self.h.refcount_table_clusters as u64 * self.cs,
        ) {
            return Some("the refcount table");
        }
        let i = self.l2_sorted.partition_point(|&t| t + self.cs <= offset);
        if self.l2_sorted.get(i).is_some_and(|&t| t < end) {
            return Some("an L2 table");
        }
        None
    }

    /// Decodes the L1 table; checks every L2 table's place.
    pub(super) fn read_l1(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut l1 = Vec::with_capacity(self.h.l1_size as usize);
        for (i, e) in bytes.chunks_exact(8).enumerate() {
            let e = u64::from_be_bytes(e.try_into().unwrap_or([0; 8]));
            let offset = qcow2::l1_entry(e, self.h.cluster_bits)
                .map_err(|e| format!("L1 entry {i}: {e}"))?
                .unwrap_or(0);
            l1.push(offset);
        }
        let mut sorted: Vec<u64> = l1.iter().copied().filter(|&o| o != 0).collect();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two L1 entries share the L2 table at {:#x}", w[0]));
        }
        self.l2_sorted = Vec::new();
        for &o in &sorted {
            if let Some(what) = self.table_at(o, self.cs) {
                return Err(format!("an L2 table at {o:#x} lies on {what}"));
            }
            within(self.file_size, o, 1, "an L2 table")?;
        }
        self.l2_unread = sorted.len();
        self.l2_sorted = sorted;
        self.l1 = Some(l1);
        Ok(())
    }

    /// Decodes L2 table `index`; returns its clusters that hold data:
    /// where they start, what they are, how many bytes (at most).
    pub(super) fn read_l2(
        &self,
        index: u64,
        bytes: &[u8],
    ) -> Result<Vec<(u64, Region, u64)>, String> {
        let per = self.h.l2_entries();
        let width = self.h.l2_entry_len();
        let mut out = Vec::new();
        for (j, e) in bytes.chunks_exact(width).enumerate() {
            let word = |k: usize| u64::from_be_bytes(e[k..k + 8].try_into().unwrap_or([0; 8]));
            let bitmap = (width == 16).then(|| word(8));
            let guest = index * per + j as u64;
            let cluster = qcow2::l2_entry(word(0), bitmap, self.h.cluster_bits)
                .map_err(|e| format!("L2 table {index}, entry {j}: {e}"))?;
            let (start, len, region) = match cluster {
                Cluster::Unallocated | Cluster::Zero => continue,
                Cluster::Data { offset, from_file } => (
                    offset,
                    self.cs,
                    Region::Data {
                        guest,
                        from_file,
                        run: 1,
                    },
                ),
                Cluster::Compressed { offset, len } => (offset, len, Region::Compressed { guest }),
            };
            if guest * self.cs >= self.h.size {
                continue; // past the virtual size: never read by a guest
            }
            if let Some(what) = self.table_at(start, len) {
                return Err(format!(
                    "guest cluster {guest} is stored at {start:#x}, on {what}"
                ));
            }
            within(self.file_size, start, 1, "a data cluster")?;
            out.push((start, region, len));
        }
        Ok(out)
    }
}

pub(super) fn describe(r: Region) -> String {
    match r {
        Region::L1 => "the L1 table".into(),
        Region::L2 { index } => format!("L2 table {index}"),
        Region::Data { guest, .. } => format!("guest cluster {guest}"),
        Region::Compressed { guest } => format!("compressed guest cluster {guest}"),
        Region::Recheck { table: 0 } => "the L1 table read by range".into(),
        Region::Recheck { table } => format!("L2 table {} read by range", table - 1),
    }
}

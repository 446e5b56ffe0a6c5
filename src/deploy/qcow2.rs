//! A qcow2 image written onto the disk in one pass over the file as it is
//! served: no staging, no second copy, the same fixed memory whatever the
//! image's size. The result equals `qemu-img convert -O raw` byte for byte.
//!
//! The pass reads the file in order, hashing every byte (the checksum is
//! of the file), and writes each data cluster to its guest offset as it
//! goes by. Where the source can read at an offset (a file, an HTTP server
//! that honours `Range`), every table is read and checked first, so a bad
//! image is refused before the disk is touched. Otherwise the tables are
//! read as the pass reaches them; qemu-img writes each table before the
//! clusters it maps, so nothing waits, and bytes that do come before their
//! table wait in memory within [`Limits::waiting`].
//!
//! Refused: backing files, external data files, encryption, a virtual
//! size larger than the target, unknown incompatible features, table or
//! cluster offsets outside the file, clusters or tables on top of the
//! header or of other tables (the tricks behind CVE-2024-44082).
//!
//! Memory: the L1 table (8 bytes per 512 MiB of a 64 KiB-cluster disk:
//! 16 KiB for 1 TiB), one bit per guest cluster for the holes (2 MiB for
//! 1 TiB at 64 KiB), one decompressed cluster, and the mapping of clusters
//! whose table has been read and whose data is still ahead (48 bytes each;
//! all of them, up to [`Limits::entries`], when the tables were read first).

use super::device::BlockDevice;
use super::image::{write_at_any, BeforeWrite, ImageSource, Streamed, HOLD_BACK};
use super::{Env, Error};
use crate::stream::{fill, Meter};
use crate::wire::qcow2::{self, Cluster, Compression, Header};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Bounds on what the converter holds besides the stream buffer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cluster mappings held at once (~48 bytes each).
    pub entries: usize,
    /// Bytes that passed before the table mapping them was read, or that
    /// belong past the first MiB of a whole-disk image whose first MiB is
    /// not yet complete.
    pub waiting: usize,
    /// Bytes of the hole bitmap (one bit per guest cluster).
    pub bitmap: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            entries: 1 << 18,
            waiting: 16 << 20,
            bitmap: 16 << 20,
        }
    }
}

/// Largest L1 table qemu accepts (QCOW_MAX_L1_SIZE).
const MAX_L1_BYTES: u64 = 32 << 20;

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

fn within(file_size: Option<u64>, offset: u64, len: u64, what: &str) -> Result<(), String> {
    match file_size {
        Some(size) if offset.checked_add(len).is_none_or(|end| end > size) => Err(format!(
            "{what} at {offset:#x} ({len} bytes) lies outside the {size}-byte file"
        )),
        _ => Ok(()),
    }
}

/// One byte range of the file and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    L1,
    L2 {
        index: u64,
    },
    /// `guest` is a guest cluster index.
    Data {
        guest: u64,
        from_file: u32,
    },
    Compressed {
        guest: u64,
    },
}

/// Regions sort by where they start, then by a tag that keeps two regions
/// starting at one offset (a cluster mapped twice) apart.
type Key = (u64, u64);

fn key(start: u64, r: Region) -> Key {
    let tag = match r {
        Region::L1 => u64::MAX,
        Region::L2 { index } => u64::MAX - 1 - index,
        Region::Data { guest, .. } | Region::Compressed { guest } => guest,
    };
    (start, tag)
}

/// The image's metadata: where the tables are, what is known so far.
struct Tables {
    h: Header,
    cs: u64,
    file_size: Option<u64>,
    /// L2 table offsets by L1 index (0: none), once the L1 is read.
    l1: Option<Vec<u64>>,
    /// The same offsets, sorted, for overlap checks.
    l2_sorted: Vec<u64>,
    /// L2 tables not yet read.
    l2_unread: usize,
}

impl Tables {
    fn table_at(&self, offset: u64, len: u64) -> Option<&'static str> {
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
    fn read_l1(&mut self, bytes: &[u8]) -> Result<(), String> {
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
    fn read_l2(&self, index: u64, bytes: &[u8]) -> Result<Vec<(u64, Region, u64)>, String> {
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
                Cluster::Data { offset, from_file } => {
                    (offset, self.cs, Region::Data { guest, from_file })
                }
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

/// Where guest bytes go: the held first MiB, or the disk through the
/// staging half of the stream buffer, coalesced into large writes.
struct Sink<'b> {
    base: u64,
    size: u64,
    held: Vec<u8>,
    stage: &'b mut [u8],
    stage_at: u64,
    stage_len: usize,
    /// Writes past the first MiB before it is complete (whole-disk images
    /// check their table there before anything is written).
    ready: bool,
    deferred: Vec<(u64, Vec<u8>)>,
    deferred_bytes: usize,
    /// A bit per guest cluster that was written (the rest are zeroed).
    covered: Vec<u64>,
    cs: u64,
}

impl Sink<'_> {
    fn mark(&mut self, guest: u64) {
        self.covered[(guest / 64) as usize] |= 1 << (guest % 64);
    }

    fn is_covered(&self, guest: u64) -> bool {
        self.covered[(guest / 64) as usize] & (1 << (guest % 64)) != 0
    }

    /// Guest bytes at `at`, clipped to the virtual size.
    fn put(
        &mut self,
        dev: &mut dyn BlockDevice,
        at: u64,
        mut data: &[u8],
        limits: &Limits,
    ) -> Result<(), Error> {
        if at >= self.size {
            return Ok(());
        }
        data = &data[..data.len().min((self.size - at) as usize)];
        let mut at = at;
        if at < self.held.len() as u64 {
            let n = data.len().min(self.held.len() - at as usize);
            self.held[at as usize..at as usize + n].copy_from_slice(&data[..n]);
            at += n as u64;
            data = &data[n..];
        }
        if data.is_empty() {
            return Ok(());
        }
        if !self.ready {
            self.deferred_bytes += data.len();
            if self.deferred_bytes > limits.waiting {
                return Err(Error::Refused(format!(
                    "the image's first MiB is not complete after {} bytes of later clusters; \
                     serve it from a server that honours Range, or convert it with qemu-img",
                    self.deferred_bytes
                )));
            }
            self.deferred.push((at, data.to_vec()));
            return Ok(());
        }
        while !data.is_empty() {
            if self.stage_len > 0
                && (at != self.stage_at + self.stage_len as u64
                    || self.stage_len == self.stage.len())
            {
                self.flush(dev)?;
            }
            if self.stage_len == 0 {
                self.stage_at = at;
            }
            let n = data.len().min(self.stage.len() - self.stage_len);
            self.stage[self.stage_len..self.stage_len + n].copy_from_slice(&data[..n]);
            self.stage_len += n;
            at += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn flush(&mut self, dev: &mut dyn BlockDevice) -> Result<(), Error> {
        if self.stage_len > 0 {
            write_at_any(
                dev,
                self.base + self.stage_at,
                &self.stage[..self.stage_len],
            )?;
            self.stage_len = 0;
        }
        Ok(())
    }

    /// The first MiB is complete: what was deferred goes to the disk.
    fn open(&mut self, dev: &mut dyn BlockDevice, limits: &Limits) -> Result<(), Error> {
        self.ready = true;
        for (at, data) in core::mem::take(&mut self.deferred) {
            self.put(dev, at, &data, limits)?;
        }
        self.deferred_bytes = 0;
        Ok(())
    }

    /// Zeroes every guest range past the held MiB that no cluster wrote.
    fn zero_holes(&mut self, dev: &mut dyn BlockDevice) -> Result<u64, Error> {
        self.flush(dev)?;
        let clusters = self.size.div_ceil(self.cs);
        let mut zeroed = 0;
        let mut i = 0;
        while i < clusters {
            if self.is_covered(i) {
                i += 1;
                continue;
            }
            let first = i;
            while i < clusters && !self.is_covered(i) {
                i += 1;
            }
            let start = (first * self.cs).max(self.held.len() as u64);
            let end = (i * self.cs).min(self.size);
            if start < end {
                zero(dev, self.stage, self.base + start, end - start)?;
                zeroed += end - start;
            }
        }
        Ok(zeroed)
    }
}

/// Zeroes `len` bytes at `offset`: by the device where it can (BLKZEROOUT,
/// a hole in a file), written zeros at unaligned edges or otherwise.
fn zero(dev: &mut dyn BlockDevice, buf: &mut [u8], offset: u64, len: u64) -> Result<(), Error> {
    let b = dev.logical_block() as u64;
    let first = offset.next_multiple_of(b).min(offset + len);
    let last = ((offset + len) / b * b).max(first);
    buf.fill(0);
    let written = |dev: &mut dyn BlockDevice, mut at: u64, end: u64| -> Result<(), Error> {
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            write_at_any(dev, at, &buf[..n])?;
            at += n as u64;
        }
        Ok(())
    };
    written(dev, offset, first)?;
    if last > first {
        match dev.zero_range(first, last - first) {
            Ok(true) => {}
            Ok(false) => written(dev, first, last)?,
            Err(e) => return Err(Error::device(dev, "zero", first, e)),
        }
    }
    written(dev, last, offset + len)
}

/// The pass over the file.
struct Pass<'l> {
    t: Tables,
    limits: &'l Limits,
    /// Regions not yet fully passed, with their lengths.
    ahead: BTreeMap<Key, (Region, u64)>,
    /// Bytes of table and compressed regions gathered so far.
    partial: BTreeMap<Key, Vec<u8>>,
    /// Spans that passed before anything claimed them.
    waiting: BTreeMap<u64, Vec<u8>>,
    waiting_bytes: usize,
    /// File ranges of the current buffer that a region took.
    claimed: Vec<(u64, u64)>,
    /// The region the pass over the current buffer has reached.
    cursor: Option<Key>,
    /// Regions inside the held MiB still ahead (whole-disk readiness).
    first_pending: usize,
    /// Tables were all read before the pass: nothing can wait.
    tables_first: bool,
    inflated: Vec<u8>,
}

/// The file bytes at hand: the current buffer and where it starts.
#[derive(Clone, Copy)]
struct Bytes<'d> {
    at: u64,
    data: &'d [u8],
}

impl Bytes<'_> {
    fn end(&self) -> u64 {
        self.at + self.data.len() as u64
    }
}

impl Pass<'_> {
    fn hold_clusters(&self) -> u64 {
        (HOLD_BACK as u64).div_ceil(self.t.cs)
    }

    fn complete(&self) -> bool {
        self.t.l1.is_some() && self.t.l2_unread == 0
    }

    fn first_mib_known(&self) -> bool {
        let Some(l1) = &self.t.l1 else { return false };
        let l2_zero_read = match l1.first() {
            None | Some(0) => true,
            Some(&o) => !self.ahead.contains_key(&key(o, Region::L2 { index: 0 })),
        };
        l2_zero_read && self.first_pending == 0
    }

    fn refused(&self, why: String) -> Error {
        Error::Refused(format!("qcow2 image: {why}"))
    }

    fn add(&mut self, start: u64, r: Region, len: u64) -> Result<(), Error> {
        if self.ahead.len() >= self.limits.entries {
            return Err(self.refused(format!(
                "more than {} clusters mapped ahead of the pass",
                self.limits.entries
            )));
        }
        if let Region::Data { guest, .. } | Region::Compressed { guest } = r {
            if guest < self.hold_clusters() {
                self.first_pending += 1;
            }
        }
        self.ahead.insert(key(start, r), (r, len));
        Ok(())
    }

    /// The bytes of `[start, end)` that waited, if all did.
    fn take_waiting(&self, start: u64, end: u64) -> Option<Vec<u8>> {
        let (&at, span) = self.waiting.range(..=start).next_back()?;
        (at + span.len() as u64 >= end)
            .then(|| span[(start - at) as usize..(end - at) as usize].to_vec())
    }

    /// Feeds a region the part of it in `bytes`; at the end of the file
    /// (`eof`) it is complete with what it has. Returns whether complete.
    fn feed(
        &mut self,
        k: Key,
        (r, len): (Region, u64),
        bytes: Bytes,
        eof: bool,
        dev: &mut dyn BlockDevice,
        sink: &mut Sink,
    ) -> Result<bool, Error> {
        let (start, end) = (k.0, k.0 + len);
        let a = start.max(bytes.at);
        let b = end.min(bytes.end()).max(a);
        let piece = &bytes.data[(a - bytes.at) as usize..(b - bytes.at) as usize];
        if a < b {
            self.claimed.push((a, b));
        }
        let done = b >= end || eof;
        match r {
            Region::Data { guest, from_file } => {
                let base = guest * self.t.cs;
                put_cluster(
                    dev,
                    sink,
                    self.limits,
                    base,
                    a - start,
                    piece,
                    from_file,
                    self.t.cs,
                )?;
                if done {
                    if b < end {
                        // Cut short by the end of the file: zeros past it,
                        // as qemu reads it.
                        put_zeros(dev, sink, self.limits, base + (b - start), end - b)?;
                    }
                    sink.mark(guest);
                }
            }
            Region::L1 | Region::L2 { .. } | Region::Compressed { .. } => {
                self.partial.entry(k).or_default().extend_from_slice(piece);
                if done {
                    let mut gathered = self.partial.remove(&k).unwrap_or_default();
                    self.finish(r, start, &mut gathered, bytes, eof, dev, sink)?;
                }
            }
        }
        if done {
            if let Region::Data { guest, .. } | Region::Compressed { guest } = r {
                if guest < self.hold_clusters() {
                    self.first_pending -= 1;
                }
            }
        }
        Ok(done)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        r: Region,
        start: u64,
        gathered: &mut Vec<u8>,
        bytes: Bytes,
        eof: bool,
        dev: &mut dyn BlockDevice,
        sink: &mut Sink,
    ) -> Result<(), Error> {
        match r {
            Region::L1 => {
                gathered.resize(self.t.h.l1_size as usize * 8, 0);
                self.t.read_l1(gathered).map_err(|e| self.refused(e))?;
                let l1 = self.t.l1.clone().unwrap_or_default();
                for (i, &o) in l1.iter().enumerate() {
                    if o != 0 {
                        let r = Region::L2 { index: i as u64 };
                        self.claim(o, r, self.t.cs, bytes, eof, dev, sink)?;
                    }
                }
            }
            Region::L2 { index } => {
                gathered.resize(self.t.cs as usize, 0);
                let found = self
                    .t
                    .read_l2(index, gathered)
                    .map_err(|e| self.refused(e))?;
                self.t.l2_unread -= 1;
                for (s, region, len) in found {
                    self.claim(s, region, len, bytes, eof, dev, sink)?;
                }
            }
            Region::Compressed { guest } => {
                let cs = self.t.cs;
                self.inflated.resize(cs as usize, 0);
                let n =
                    inflate(self.t.h.compression, gathered, &mut self.inflated).map_err(|e| {
                        self.refused(format!(
                            "compressed guest cluster {guest} at {start:#x}: {e}"
                        ))
                    })?;
                if n as u64 != cs {
                    return Err(self.refused(format!(
                        "compressed guest cluster {guest} at {start:#x} inflates to {n} bytes, not {cs}"
                    )));
                }
                put_cluster(
                    dev,
                    sink,
                    self.limits,
                    guest * cs,
                    0,
                    &self.inflated,
                    u32::MAX,
                    cs,
                )?;
                sink.mark(guest);
            }
            Region::Data { .. } => {}
        }
        Ok(())
    }

    /// A region just became known. What of it already passed comes from
    /// the waiting spans; what is in the current buffer is fed now if the
    /// pass over the buffer is beyond it (else the pass will reach it).
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &mut self,
        start: u64,
        r: Region,
        len: u64,
        bytes: Bytes,
        eof: bool,
        dev: &mut dyn BlockDevice,
        sink: &mut Sink,
    ) -> Result<(), Error> {
        self.add(start, r, len)?;
        let k = key(start, r);
        let mut done = false;
        if start < bytes.at {
            let end = (start + len).min(bytes.at);
            let before = self.take_waiting(start, end).ok_or_else(|| {
                self.refused(format!(
                    "{} at {start:#x} comes before the table that maps it, and its bytes \
                     were not kept (a server that honours Range avoids this)",
                    describe(r)
                ))
            })?;
            let at = Bytes {
                at: start,
                data: &before,
            };
            done = self.feed(k, (r, len), at, false, dev, sink)?;
        }
        if !done && self.cursor.is_some_and(|c| k < c) {
            done = self.feed(
                k,
                (r, len),
                bytes,
                eof && start + len > bytes.end(),
                dev,
                sink,
            )?;
        }
        if done {
            self.ahead.remove(&k);
        }
        Ok(())
    }

    /// Feeds every region in `bytes`, in file order.
    fn pass_over(
        &mut self,
        bytes: Bytes,
        eof: bool,
        dev: &mut dyn BlockDevice,
        sink: &mut Sink,
    ) -> Result<(), Error> {
        use core::ops::Bound::{Excluded, Unbounded};
        self.claimed.clear();
        self.cursor = None;
        loop {
            let from = self.cursor.map_or(Unbounded, Excluded);
            let next = self
                .ahead
                .range((from, Excluded((bytes.end(), 0))))
                .next()
                .map(|(k, v)| (*k, *v));
            let Some((k, region)) = next else { break };
            self.cursor = Some(k);
            if self.feed(k, region, bytes, false, dev, sink)? {
                self.ahead.remove(&k);
            }
        }
        if eof {
            // Regions cut short by the end of the file end with it.
            while let Some((&k, &(r, _))) = self.ahead.iter().next() {
                if k.0 >= bytes.end() {
                    return Err(self.refused(format!(
                        "{} at {:#x} lies past the end of the file ({} bytes)",
                        describe(r),
                        k.0,
                        bytes.end()
                    )));
                }
                let region = self.ahead[&k];
                self.cursor = Some(k);
                let end = Bytes {
                    at: bytes.end(),
                    data: &[],
                };
                self.feed(k, region, end, true, dev, sink)?;
                self.ahead.remove(&k);
            }
        }
        if !self.complete() && !self.tables_first {
            self.keep_unclaimed(bytes)?;
        } else if !self.waiting.is_empty() {
            self.waiting.clear();
            self.waiting_bytes = 0;
        }
        Ok(())
    }

    /// Keeps what no region took while the tables are not all known: they
    /// may be clusters whose table comes later.
    fn keep_unclaimed(&mut self, bytes: Bytes) -> Result<(), Error> {
        let mut claimed = core::mem::take(&mut self.claimed);
        claimed.sort_unstable();
        let mut cursor = bytes.at.max(self.t.cs); // the header cluster is no one's data
        for &(a, b) in claimed
            .iter()
            .chain(core::iter::once(&(bytes.end(), bytes.end())))
        {
            let a = a.min(bytes.end());
            if a > cursor {
                self.keep(bytes, cursor, a)?;
            }
            cursor = cursor.max(b);
        }
        self.claimed = claimed;
        Ok(())
    }

    fn keep(&mut self, bytes: Bytes, a: u64, b: u64) -> Result<(), Error> {
        self.waiting_bytes += (b - a) as usize;
        if self.waiting_bytes > self.limits.waiting {
            return Err(self.refused(format!(
                "more than {} bytes come before the tables that map them; \
                 serve the image from a server that honours Range",
                self.limits.waiting
            )));
        }
        let piece = &bytes.data[(a - bytes.at) as usize..(b - bytes.at) as usize];
        match self.waiting.iter_mut().next_back() {
            Some((&s, span)) if s + span.len() as u64 == a => span.extend_from_slice(piece),
            _ => {
                self.waiting.insert(a, piece.to_vec());
            }
        }
        Ok(())
    }
}

/// Bytes of one cluster from `at` within it; subclusters not from the
/// file read as zeros.
#[allow(clippy::too_many_arguments)]
fn put_cluster(
    dev: &mut dyn BlockDevice,
    sink: &mut Sink,
    limits: &Limits,
    base: u64,
    mut at: u64,
    mut piece: &[u8],
    from_file: u32,
    cs: u64,
) -> Result<(), Error> {
    if from_file == u32::MAX {
        return sink.put(dev, base + at, piece, limits);
    }
    let sub = cs / 32;
    while !piece.is_empty() {
        let n = piece.len().min((sub - at % sub) as usize);
        if from_file & (1 << (at / sub)) != 0 {
            sink.put(dev, base + at, &piece[..n], limits)?;
        } else {
            put_zeros(dev, sink, limits, base + at, n as u64)?;
        }
        at += n as u64;
        piece = &piece[n..];
    }
    Ok(())
}

fn put_zeros(
    dev: &mut dyn BlockDevice,
    sink: &mut Sink,
    limits: &Limits,
    mut at: u64,
    len: u64,
) -> Result<(), Error> {
    let end = at + len;
    while at < end {
        let n = (end - at).min(ZEROS.len() as u64);
        sink.put(dev, at, &ZEROS[..n as usize], limits)?;
        at += n;
    }
    Ok(())
}

const ZEROS: [u8; 4096] = [0; 4096];

/// Inflates one compressed cluster into `out`; returns the bytes made.
/// The input may run on past the stream's end (the next cluster's bytes).
fn inflate(c: Compression, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
    match c {
        Compression::Deflate => {
            use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
            use miniz_oxide::inflate::TINFLStatus;
            let mut d = DecompressorOxide::new();
            let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
            let (status, _, n) = decompress(&mut d, input, out, 0, flags);
            match status {
                TINFLStatus::Done | TINFLStatus::HasMoreOutput => Ok(n),
                other => Err(format!("deflate: {other:?}")),
            }
        }
        Compression::Zstd => {
            let mut d = ruzstd::decoding::FrameDecoder::new();
            let (mut input, mut n) = (input, 0);
            loop {
                let (read, written) = d
                    .decode_from_to(input, &mut out[n..])
                    .map_err(|e| format!("zstd: {e}"))?;
                input = &input[read..];
                n += written;
                if (d.is_finished() && d.can_collect() == 0) || (read == 0 && written == 0) {
                    return Ok(n);
                }
                if n == out.len() && d.can_collect() > 0 {
                    return Err("zstd: inflates past the cluster".into());
                }
            }
        }
    }
}

/// Reads `len` bytes at `offset` apart from the stream.
fn read_at<S: ImageSource + ?Sized>(
    src: &mut S,
    offset: u64,
    len: usize,
) -> Option<Result<Vec<u8>, String>> {
    let mut buf = vec![0u8; len];
    src.read_at(offset, &mut buf).map(|r| r.map(|()| buf))
}

/// Writes the qcow2 image `src` (header already parsed) to `offset`.
#[allow(clippy::too_many_arguments)]
pub fn stream<S: ImageSource + ?Sized>(
    dev: &mut dyn BlockDevice,
    env: &mut dyn Env,
    src: &mut S,
    h: &Header,
    offset: u64,
    limit: u64,
    buf: &mut [u8],
    limits: &Limits,
    before_write: BeforeWrite<'_>,
) -> Result<Streamed, Error>
where
    S::Error: core::fmt::Display,
{
    let file_size = src.size();
    let name = src.describe();
    check_header(h, file_size, limit)
        .map_err(|e| Error::Refused(format!("qcow2 image {name}: {e}")))?;
    let cs = h.cluster_size();
    let clusters = h.size.div_ceil(cs);
    if clusters.div_ceil(8) > limits.bitmap as u64 {
        return Err(Error::Refused(format!(
            "qcow2 image {name}: {clusters} clusters of {cs} bytes; rivet keeps a bit per cluster \
             and allows {} bytes for them (convert with a larger cluster size)",
            limits.bitmap
        )));
    }
    let align = (dev.logical_block() as usize).max(4096);
    let half = buf.len() / 2 / align * align;
    if half == 0 {
        return Err(Error::Refused(format!(
            "a {}-byte buffer is too small for qcow2 images",
            buf.len()
        )));
    }
    let (stage, read) = buf.split_at_mut(half);
    let mut pass = Pass {
        t: Tables {
            h: h.clone(),
            cs,
            file_size,
            l1: None,
            l2_sorted: Vec::new(),
            l2_unread: 0,
        },
        limits,
        ahead: BTreeMap::new(),
        partial: BTreeMap::new(),
        waiting: BTreeMap::new(),
        waiting_bytes: 0,
        claimed: Vec::new(),
        cursor: None,
        first_pending: 0,
        tables_first: false,
        inflated: Vec::new(),
    };
    let mut sink = Sink {
        base: offset,
        size: h.size,
        held: vec![0u8; (HOLD_BACK as u64).min(h.size) as usize],
        stage,
        stage_at: 0,
        stage_len: 0,
        ready: false,
        deferred: Vec::new(),
        deferred_bytes: 0,
        covered: vec![0u64; clusters.div_ceil(64) as usize],
        cs,
    };
    read_tables(src, &mut pass, &name)?;
    log::info!(
        "qcow2 v{}: {} bytes virtual, {cs}-byte clusters{}{}",
        h.version,
        h.size,
        if h.extended_l2() { ", extended L2" } else { "" },
        match h.compression {
            Compression::Deflate => "",
            Compression::Zstd => ", zstd-compressed clusters",
        }
    );

    let start_ms = env.now_ms();
    let mut meter = Meter::new(start_ms, 5_000, file_size);
    let mut pos = 0u64;
    loop {
        if !sink.ready && pass.first_mib_known() {
            before_write(dev, &sink.held)?;
            sink.open(dev, limits)?;
        }
        let n = fill(src, read).map_err(|e| image_err(&name, pos, format!("{e}")))?;
        let eof = n < read.len();
        pass.pass_over(
            Bytes {
                at: pos,
                data: &read[..n],
            },
            eof,
            dev,
            &mut sink,
        )?;
        pos += n as u64;
        if let Some(line) = meter.advance(n as u64, env.now_ms()) {
            log::info!("image: {line}");
        }
        if eof {
            break;
        }
    }
    if !pass.complete() {
        return Err(pass.refused("the file ended before all its tables".into()));
    }
    if !sink.ready {
        before_write(dev, &sink.held)?;
        sink.open(dev, limits)?;
    }
    let zeroed = sink.zero_holes(dev)?;
    log::info!("qcow2: {zeroed} bytes of unallocated or zero clusters zeroed on the disk");
    Ok(Streamed {
        bytes: pos,
        digest: String::new(),
        held: sink.held,
        elapsed_ms: env.now_ms().saturating_sub(start_ms),
    })
}

/// Reads and checks every table before the pass where the source can read
/// at an offset; otherwise the pass reads the L1 table when it gets there.
fn read_tables<S: ImageSource + ?Sized>(
    src: &mut S,
    pass: &mut Pass,
    name: &str,
) -> Result<(), Error> {
    let h = pass.t.h.clone();
    let cs = pass.t.cs;
    if h.l1_size == 0 {
        pass.t.l1 = Some(Vec::new());
        return Ok(());
    }
    let l1_len = h.l1_size as u64 * 8;
    let l1 = match read_at(src, h.l1_table_offset, l1_len as usize) {
        Some(Ok(l1)) => l1,
        Some(Err(e)) => return Err(image_err(name, h.l1_table_offset, e)),
        None => {
            log::info!("qcow2: {name} cannot be read at an offset; tables are read as the pass reaches them");
            return pass.add(h.l1_table_offset, Region::L1, l1_len);
        }
    };
    pass.t.read_l1(&l1).map_err(|e| pass.refused(e))?;
    let offsets = pass.t.l1.clone().unwrap_or_default();
    let mut regions = Vec::new();
    let mut mapped = 0usize;
    for (i, &o) in offsets.iter().enumerate().filter(|(_, &o)| o != 0) {
        let table = match read_at(src, o, cs as usize) {
            Some(Ok(t)) => t,
            Some(Err(e)) => return Err(image_err(name, o, e)),
            None => {
                return Err(image_err(
                    name,
                    o,
                    "the source stopped reading at offsets".into(),
                ))
            }
        };
        let found = pass
            .t
            .read_l2(i as u64, &table)
            .map_err(|e| pass.refused(e))?;
        mapped += found.len();
        if mapped <= pass.limits.entries {
            regions.extend(found);
        } else {
            regions = Vec::new();
        }
    }
    let tables = pass.t.l2_sorted.len();
    if mapped <= pass.limits.entries {
        for (s, r, len) in regions {
            pass.add(s, r, len)?;
        }
        pass.tables_first = true;
        pass.t.l2_unread = 0;
        log::info!("qcow2: {tables} tables read and checked; {mapped} clusters to write");
    } else {
        // Checked, but too many to hold at once: each table is mapped
        // again when the pass reaches it.
        pass.t.l2_unread = tables;
        for (i, &o) in offsets.iter().enumerate().filter(|(_, &o)| o != 0) {
            pass.add(o, Region::L2 { index: i as u64 }, cs)?;
        }
        log::info!(
            "qcow2: {tables} tables read and checked; {mapped} clusters, mapped as the pass reaches their tables"
        );
    }
    Ok(())
}

fn describe(r: Region) -> String {
    match r {
        Region::L1 => "the L1 table".into(),
        Region::L2 { index } => format!("L2 table {index}"),
        Region::Data { guest, .. } => format!("guest cluster {guest}"),
        Region::Compressed { guest } => format!("compressed guest cluster {guest}"),
    }
}

fn image_err(name: &str, offset: u64, message: String) -> Error {
    Error::Image {
        source: String::from(name),
        offset,
        message,
    }
}

//! The pass over the file: each byte range fed to the region it belongs
//! to (a table, a data or compressed cluster), regions that become known
//! late served from the bytes kept for them.

use super::super::image::HOLD_BACK;
use super::super::Error;
use super::sink::Sink;
use super::tables::{describe, key, Key, Region, Tables};
use super::Limits;
use crate::io::BlockDevice;
use crate::wire::qcow2::Compression;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The pass over the file.
pub(super) struct Pass {
    pub(super) t: Tables,
    pub(super) limits: Limits,
    /// Regions not yet fully passed, with their lengths.
    pub(super) ahead: BTreeMap<Key, (Region, u64)>,
    /// Bytes of table and compressed regions gathered so far.
    pub(super) partial: Vec<(Key, Vec<u8>)>,
    /// Spans that passed before anything claimed them.
    pub(super) waiting: Vec<(u64, Vec<u8>)>,
    pub(super) waiting_bytes: usize,
    /// File ranges of the current buffer that a region took.
    pub(super) claimed: Vec<(u64, u64)>,
    /// The region the pass over the current buffer has reached.
    pub(super) cursor: Option<Key>,
    /// Regions inside the held MiB still ahead (whole-disk readiness).
    pub(super) first_pending: usize,
    /// Tables were all read before the pass: nothing can wait.
    pub(super) tables_first: bool,
    /// SHA-256 of each table read by range, by [`Region::Recheck`]'s
    /// number, until the pass has seen the same bytes served.
    pub(super) rechecks: BTreeMap<u64, String>,
    pub(super) inflated: Vec<u8>,
}

/// The file bytes at hand: the current buffer and where it starts.
#[derive(Clone, Copy)]
pub(super) struct Bytes<'d> {
    pub(super) at: u64,
    pub(super) data: &'d [u8],
}

impl Bytes<'_> {
    pub(super) fn end(&self) -> u64 {
        self.at + self.data.len() as u64
    }
}

impl Pass {
    pub(super) fn hold_clusters(&self) -> u64 {
        (HOLD_BACK as u64).div_ceil(self.t.cs)
    }

    pub(super) fn complete(&self) -> bool {
        self.t.l1.is_some() && self.t.l2_unread == 0 && self.rechecks.is_empty()
    }

    pub(super) fn first_mib_known(&self) -> bool {
        let Some(l1) = &self.t.l1 else { return false };
        let l2_zero_read = match l1.first() {
            None | Some(0) => true,
            Some(&o) => !self.ahead.contains_key(&key(o, Region::L2 { index: 0 })),
        };
        l2_zero_read && self.first_pending == 0
    }

    pub(super) fn refused(&self, why: String) -> Error {
        Error::Refused(format!("qcow2 image: {why}"))
    }

    /// A region becomes known. `fed_below`: file bytes before this offset
    /// may have been fed already (the pass's position): a data cluster
    /// wholly past it joins a run of guests mapping the same host cluster
    /// held for the guest just before it, instead of a mapping of its own.
    pub(super) fn add(
        &mut self,
        start: u64,
        r: Region,
        len: u64,
        fed_below: u64,
    ) -> Result<(), Error> {
        if let Region::Data {
            guest,
            from_file,
            run: 1,
        } = r
        {
            if start >= fed_below && self.join_run(start, guest, from_file) {
                if guest < self.hold_clusters() {
                    self.first_pending += 1;
                }
                return Ok(());
            }
        }
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

    /// Extends the run at `start` that ends just before `guest`, if any.
    fn join_run(&mut self, start: u64, guest: u64, from_file: u32) -> bool {
        let Some(before) = guest.checked_sub(1) else {
            return false;
        };
        let Some((_, (region, _))) = self
            .ahead
            .range_mut((start, 0)..=(start, before))
            .next_back()
        else {
            return false;
        };
        match region {
            Region::Data {
                guest: first,
                from_file: f,
                run,
            } if *f == from_file && *first + *run == guest => {
                *run += 1;
                true
            }
            _ => false,
        }
    }

    /// The bytes of `[start, end)` that waited, if all did.
    pub(super) fn take_waiting(&self, start: u64, end: u64) -> Option<Vec<u8>> {
        // Spans are kept in file order and never touch (adjacent ones merge).
        let i = self
            .waiting
            .partition_point(|(at, _)| *at <= start)
            .checked_sub(1)?;
        let (at, span) = &self.waiting[i];
        let at = *at;
        (at + span.len() as u64 >= end)
            .then(|| span[(start - at) as usize..(end - at) as usize].to_vec())
    }

    /// Feeds a region the part of it in `bytes`; at the end of the file
    /// (`eof`) it is complete with what it has. Returns whether complete.
    pub(super) fn feed(
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
            Region::Data {
                guest: first,
                from_file,
                run,
            } => {
                for guest in first..first + run {
                    let base = guest * self.t.cs;
                    put_cluster(
                        dev,
                        sink,
                        &self.limits,
                        base,
                        a - start,
                        piece,
                        from_file,
                        self.t.cs,
                    )?;
                    if done {
                        if b < end {
                            // Cut short by the end of the file: zeros past
                            // it, as qemu reads it.
                            put_zeros(dev, sink, &self.limits, base + (b - start), end - b)?;
                        }
                        sink.mark(guest);
                    }
                }
            }
            Region::L1 | Region::L2 { .. } | Region::Compressed { .. } | Region::Recheck { .. } => {
                // Few regions are in progress at once: a table or two, a
                // compressed cluster across a buffer's end.
                let i = match self.partial.iter().position(|(p, _)| *p == k) {
                    Some(i) => i,
                    None => {
                        self.partial.push((k, Vec::new()));
                        self.partial.len() - 1
                    }
                };
                self.partial[i].1.extend_from_slice(piece);
                if done {
                    let mut gathered = self.partial.swap_remove(i).1;
                    self.finish(r, start, &mut gathered, bytes, eof, dev, sink)?;
                }
            }
        }
        if done {
            let (first, run) = match r {
                Region::Data { guest, run, .. } => (guest, run),
                Region::Compressed { guest } => (guest, 1),
                _ => (0, 0),
            };
            let held = first.saturating_add(run).min(self.hold_clusters());
            self.first_pending -= held.saturating_sub(first) as usize;
        }
        Ok(done)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish(
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
                    &self.limits,
                    guest * cs,
                    0,
                    &self.inflated,
                    u32::MAX,
                    cs,
                )?;
                sink.mark(guest);
            }
            Region::Recheck { table } => {
                let len = match table {
                    0 => self.t.h.l1_size as usize * 8,
                    _ => self.t.cs as usize,
                };
                gathered.resize(len, 0);
                if self.rechecks.remove(&table).as_deref() != Some(digest(gathered).as_str()) {
                    return Err(self.refused(format!(
                        "{} at {start:#x} is not what the file holds there as served: the \
                         server answered the range request with other bytes than it streams",
                        describe(r)
                    )));
                }
            }
            Region::Data { .. } => {}
        }
        Ok(())
    }

    /// A region just became known. What of it already passed comes from
    /// the waiting spans; what is in the current buffer is fed now if the
    /// pass over the buffer is beyond it (else the pass will reach it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn claim(
        &mut self,
        start: u64,
        r: Region,
        len: u64,
        bytes: Bytes,
        eof: bool,
        dev: &mut dyn BlockDevice,
        sink: &mut Sink,
    ) -> Result<(), Error> {
        // The pass feeds regions in file order: nothing from just past
        // the one it is at has been fed (outside a pass: nothing in `bytes`).
        let fed_below = self.cursor.map_or(bytes.end(), |c| c.0 + 1).max(bytes.at);
        self.add(start, r, len, fed_below)?;
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
    pub(super) fn pass_over(
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
    pub(super) fn keep_unclaimed(&mut self, bytes: Bytes) -> Result<(), Error> {
        let mut claimed = core::mem::take(&mut self.claimed);
        // Nearly in order already (the pass feeds regions in file order):
        // an insertion sort, and no sort routine more in /init.
        for i in 1..claimed.len() {
            let mut j = i;
            while j > 0 && claimed[j - 1] > claimed[j] {
                claimed.swap(j - 1, j);
                j -= 1;
            }
        }
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

    pub(super) fn keep(&mut self, bytes: Bytes, a: u64, b: u64) -> Result<(), Error> {
        self.waiting_bytes += (b - a) as usize;
        if self.waiting_bytes > self.limits.waiting {
            return Err(self.refused(format!(
                "more than {} bytes come before the tables that map them; \
                 serve the image from a server that honours Range",
                self.limits.waiting
            )));
        }
        let piece = &bytes.data[(a - bytes.at) as usize..(b - bytes.at) as usize];
        match self.waiting.last_mut() {
            Some((s, span)) if *s + span.len() as u64 == a => span.extend_from_slice(piece),
            _ => self.waiting.push((a, piece.to_vec())),
        }
        Ok(())
    }
}

/// Bytes of one cluster from `at` within it; subclusters not from the
/// file read as zeros.
#[allow(clippy::too_many_arguments)]
pub(super) fn put_cluster(
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

pub(super) fn put_zeros(
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

pub(super) const ZEROS: [u8; 4096] = [0; 4096];

/// Inflates one compressed cluster into `out`; returns the bytes made.
/// The input may run on past the stream's end (the next cluster's bytes).
pub(super) fn inflate(c: Compression, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
    match c {
        Compression::Deflate => {
            use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
            use miniz_oxide::inflate::TINFLStatus;
            let mut d = DecompressorOxide::new();
            let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
            let (status, _, n) = decompress(&mut d, input, out, 0, flags);
            match status {
                TINFLStatus::Done | TINFLStatus::HasMoreOutput => Ok(n),
                _ => Err("bad deflate data".into()),
            }
        }
        Compression::Zstd => inflate_zstd(input, out).map_err(|e| format!("zstd: {e}")),
    }
}

/// One cluster's zstd frame into `out`. A cluster is at most 2 MiB, so a
/// frame whose window is larger than `out` or 1 MiB is refused (qemu
/// writes single-segment frames, whose window is their content; other
/// encoders' windows start at 1 KiB), and so is one that makes more than
/// `out` holds. The cluster's sectors run on past the frame: libzstd stops
/// at the frame's end.
fn inflate_zstd(input: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let window = (out.len() as u64).max(1 << 20);
    let mut frame = crate::deploy::decompress::ZstdFrame::new(input, window)?;
    match frame.fill(out)? {
        (n, true) => Ok(n),
        (_, false) => Err("inflates past the cluster".into()),
    }
}

/// SHA-256 of a table's bytes, through the image checksum's own hasher
/// (a second instantiation of SHA-256 would cost /init 15 KB).
pub(super) fn digest(bytes: &[u8]) -> String {
    let mut h = crate::stream::Hasher::new(crate::plan::HashAlgo::Sha256);
    h.update(bytes);
    h.finish_hex()
}

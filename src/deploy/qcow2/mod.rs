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

mod pass;
mod sink;
mod tables;
#[cfg(test)]
mod tests;

use super::image::{BeforeWrite, Streamed, HOLD_BACK};
use super::{Env, Error};
use crate::io::BlockDevice;
use crate::io::ImageSource;
use crate::stream::{fill, Meter};
use crate::wire::qcow2::{Compression, Header};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use pass::{Bytes, Pass};
use sink::Sink;
pub use tables::check_header;
use tables::{Region, Tables};

/// Bounds on what the converter holds besides the stream buffer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cluster mappings held at once (~64 bytes each with the map's
    /// nodes). Images with up to half as many allocated clusters are mapped
    /// whole before the pass (when the source reads at offsets); larger
    /// ones a table at a time, as the pass reaches each.
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

/// Reads `len` bytes at `offset` apart from the stream.
fn read_at<S: ImageSource + ?Sized>(
    src: &mut S,
    offset: u64,
    len: usize,
) -> Option<Result<Vec<u8>, String>> {
    let mut buf = vec![0u8; len];
    src.read_at(offset, &mut buf).map(|r| r.map(|()| buf))
}

/// A qcow2 image checked as far as it can be before the disk is touched:
/// its header, and every table where the source reads at an offset.
pub struct Prepared {
    pass: Pass,
    name: String,
}

/// Checks the image for a target of `limit` bytes, before any write.
pub fn prepare<S: ImageSource + ?Sized>(
    src: &mut S,
    h: &Header,
    limit: u64,
    limits: Limits,
) -> Result<Prepared, Error> {
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
        partial: Vec::new(),
        waiting: Vec::new(),
        waiting_bytes: 0,
        claimed: Vec::new(),
        cursor: None,
        first_pending: 0,
        tables_first: false,
        rechecks: BTreeMap::new(),
        inflated: Vec::new(),
    };
    read_tables(src, &mut pass, &name)?;
    Ok(Prepared { pass, name })
}

/// Writes the prepared qcow2 image `src` to `offset`.
pub fn stream<S: ImageSource + ?Sized>(
    prepared: Prepared,
    dev: &mut dyn BlockDevice,
    env: &mut dyn Env,
    src: &mut S,
    offset: u64,
    buf: &mut [u8],
    before_write: BeforeWrite<'_>,
) -> Result<Streamed, Error>
where
    S::Error: core::fmt::Display,
{
    let Prepared { mut pass, name } = prepared;
    let h = pass.t.h.clone();
    let (cs, limits) = (pass.t.cs, pass.limits);
    let clusters = h.size.div_ceil(cs);
    let file_size = pass.t.file_size;
    let align = (dev.logical_block() as usize).max(4096);
    let half = buf.len() / 2 / align * align;
    if half == 0 {
        return Err(Error::Refused(format!(
            "a {}-byte buffer is too small for qcow2 images",
            buf.len()
        )));
    }
    let (stage, read) = buf.split_at_mut(half);
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
            sink.open(dev, &limits)?;
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
        sink.open(dev, &limits)?;
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
            return pass.add(h.l1_table_offset, Region::L1, l1_len, 0);
        }
    };
    pass.t.read_l1(&l1).map_err(|e| pass.refused(e))?;
    // Every table read here decides where data lands on the disk, and
    // none of it passed through the checksum: each is compared with the
    // same bytes as the pass serves them (Region::Recheck).
    pass.rechecks.insert(0, pass::digest(&l1));
    pass.add(h.l1_table_offset, Region::Recheck { table: 0 }, l1_len, 0)?;
    let offsets = pass.t.l1.clone().unwrap_or_default();
    let mut regions = Vec::new();
    let mut digests = Vec::new();
    let mut mapped = 0usize;
    // Half the bound: the other half is room for the tables mapped as the
    // pass reaches them when there are more.
    let preload = pass.limits.entries / 2;
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
        // A digest for each table counts against the mappings' bound.
        mapped += found.len() + 1;
        if mapped <= preload {
            regions.extend(found);
            digests.push((i as u64, o, pass::digest(&table)));
        } else {
            regions = Vec::new();
            digests = Vec::new();
        }
    }
    let tables = pass.t.l2_sorted.len();
    if mapped <= preload {
        for (s, r, len) in regions {
            pass.add(s, r, len, 0)?;
        }
        for (i, o, d) in digests {
            pass.rechecks.insert(i + 1, d);
            pass.add(o, Region::Recheck { table: i + 1 }, cs, 0)?;
        }
        pass.tables_first = true;
        pass.t.l2_unread = 0;
        log::info!(
            "qcow2: {tables} tables read and checked; {} clusters to write",
            mapped - tables
        );
    } else {
        // Checked, but too many to hold at once: each table is mapped
        // again when the pass reaches it.
        pass.t.l2_unread = tables;
        for (i, &o) in offsets.iter().enumerate().filter(|(_, &o)| o != 0) {
            pass.add(o, Region::L2 { index: i as u64 }, cs, 0)?;
        }
        log::info!(
            "qcow2: {tables} tables read and checked; {} clusters, mapped as the pass reaches their tables",
            mapped - tables
        );
    }
    Ok(())
}

fn image_err(name: &str, offset: u64, message: String) -> Error {
    Error::Image {
        source: String::from(name),
        offset,
        message,
    }
}

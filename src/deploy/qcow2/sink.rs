//! Where guest bytes go: the held first MiB, or the disk through the
//! staging half of the stream buffer; and the holes, zeroed at the end.

use super::super::image::write_at_any;
use super::super::Error;
use super::Limits;
use crate::io::BlockDevice;
use alloc::format;
use alloc::vec::Vec;

/// Where guest bytes go: the held first MiB, or the disk through the
/// staging half of the stream buffer, coalesced into large writes.
pub(super) struct Sink<'b> {
    pub(super) base: u64,
    pub(super) size: u64,
    pub(super) held: Vec<u8>,
    pub(super) stage: &'b mut [u8],
    pub(super) stage_at: u64,
    pub(super) stage_len: usize,
    /// Writes past the first MiB before it is complete (whole-disk images
    /// check their table there before anything is written).
    pub(super) ready: bool,
    pub(super) deferred: Vec<(u64, Vec<u8>)>,
    pub(super) deferred_bytes: usize,
    /// A bit per guest cluster that was written (the rest are zeroed).
    pub(super) covered: Vec<u64>,
    pub(super) cs: u64,
}

impl Sink<'_> {
    pub(super) fn mark(&mut self, guest: u64) {
        self.covered[(guest / 64) as usize] |= 1 << (guest % 64);
    }

    pub(super) fn is_covered(&self, guest: u64) -> bool {
        self.covered[(guest / 64) as usize] & (1 << (guest % 64)) != 0
    }

    /// Guest bytes at `at`, clipped to the virtual size.
    pub(super) fn put(
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

    pub(super) fn flush(&mut self, dev: &mut dyn BlockDevice) -> Result<(), Error> {
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
    pub(super) fn open(&mut self, dev: &mut dyn BlockDevice, limits: &Limits) -> Result<(), Error> {
        self.ready = true;
        for (at, data) in core::mem::take(&mut self.deferred) {
            self.put(dev, at, &data, limits)?;
        }
        self.deferred_bytes = 0;
        Ok(())
    }

    /// Zeroes every guest range past the held MiB that no cluster wrote.
    pub(super) fn zero_holes(&mut self, dev: &mut dyn BlockDevice) -> Result<u64, Error> {
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
pub(super) fn zero(
    dev: &mut dyn BlockDevice,
    buf: &mut [u8],
    offset: u64,
    len: u64,
) -> Result<(), Error> {
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

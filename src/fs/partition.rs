//! A partition of a [`BlockDevice`] as byte-addressed [`ReadAt`]: requests
//! of any offset and length become block-aligned reads.

use super::{FsError, ReadAt};
use crate::io::BlockDevice;
use alloc::boxed::Box;
use alloc::format;
use alloc::vec;

pub struct Partition {
    dev: Box<dyn BlockDevice>,
    offset: u64,
    len: u64,
}

impl Partition {
    /// The `len` bytes at `offset` of `dev`; they must lie on the device.
    pub fn new(dev: Box<dyn BlockDevice>, offset: u64, len: u64) -> Result<Partition, FsError> {
        if offset.checked_add(len).is_none_or(|end| end > dev.size()) {
            return Err(FsError::Io(format!(
                "{}: partition at {offset} of {len} bytes ends past the disk ({} bytes)",
                dev.name(),
                dev.size()
            )));
        }
        Ok(Partition { dev, offset, len })
    }
}

impl ReadAt for Partition {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                FsError::Io(format!(
                    "{}: {} bytes at partition offset {offset}: past its end ({} bytes)",
                    self.dev.name(),
                    buf.len(),
                    self.len
                ))
            })?;
        let block = u64::from(self.dev.logical_block()).max(512);
        let start = (self.offset + offset) / block * block;
        let stop = (self.offset + end).div_ceil(block) * block;
        let mut bounce = vec![0u8; (stop - start) as usize];
        self.dev
            .read_at(start, &mut bounce)
            .map_err(|e| FsError::Io(format!("{} at byte {start}: {e}", self.dev.name())))?;
        let skip = (self.offset + offset - start) as usize;
        buf.copy_from_slice(&bounce[skip..skip + buf.len()]);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len
    }
}

//! What the engine needs of a disk, and in-memory doubles for tests: a
//! sparse disk, and one that fails on cue.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// An I/O error from a device: errno (0 if none) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError {
    /// The byte offset that failed, when it is not the one the caller
    /// asked about (a write queued earlier failed on a later call).
    pub at: Option<u64>,
    pub errno: i32,
    pub message: String,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errno != 0 {
            write!(f, "{} (errno {})", self.message, self.errno)
        } else {
            f.write_str(&self.message)
        }
    }
}

/// A disk addressed in bytes. Offsets and lengths given to `read_at` and
/// `write_at` are multiples of `logical_block()`; the buffer may have any
/// alignment (implementations that need alignment bounce small buffers).
pub trait BlockDevice {
    /// Path or name, for messages.
    fn name(&self) -> &str;
    fn size(&self) -> u64;
    fn logical_block(&self) -> u32;
    fn physical_block(&self) -> u32 {
        self.logical_block()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError>;
    /// Makes written data durable.
    fn flush(&mut self) -> Result<(), IoError>;
    /// Makes `len` bytes at `offset` (block multiples) read as zeros without
    /// writing them, where the device can (BLKZEROOUT, a hole in a file).
    /// `Ok(false)`: it cannot; the caller writes zeros.
    fn zero_range(&mut self, _offset: u64, _len: u64) -> Result<bool, IoError> {
        Ok(false)
    }
    /// Asks the kernel to re-read the partition table (block devices only).
    fn reread_partitions(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

const CHUNK: u64 = 64 * 1024;

/// A sparse in-memory disk: unwritten bytes read as zero.
pub struct MemDisk {
    name: String,
    size: u64,
    block: u32,
    chunks: BTreeMap<u64, Vec<u8>>,
    pub writes: u64,
    pub flushes: u64,
}

impl MemDisk {
    pub fn new(size: u64, block: u32) -> MemDisk {
        MemDisk {
            name: "memdisk".to_string(),
            size,
            block,
            chunks: BTreeMap::new(),
            writes: 0,
            flushes: 0,
        }
    }

    fn check(&self, offset: u64, len: usize) -> Result<(), IoError> {
        let b = self.block as u64;
        if offset % b != 0 || len as u64 % b != 0 {
            return Err(IoError {
                at: None,
                errno: 22,
                message: alloc::format!("unaligned I/O at {offset}+{len}"),
            });
        }
        if offset + len as u64 > self.size {
            return Err(IoError {
                at: None,
                errno: 28,
                message: alloc::format!("I/O past the end at {offset}+{len}"),
            });
        }
        Ok(())
    }

    /// Reads without alignment rules, for assertions.
    pub fn bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let within = (at % CHUNK) as usize;
            let n = (CHUNK as usize - within).min(len - done);
            if let Some(c) = self.chunks.get(&(at / CHUNK)) {
                out[done..done + n].copy_from_slice(&c[within..within + n]);
            }
            done += n;
        }
        out
    }
}

impl BlockDevice for MemDisk {
    fn name(&self) -> &str {
        &self.name
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn logical_block(&self) -> u32 {
        self.block
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.check(offset, buf.len())?;
        buf.copy_from_slice(&self.bytes(offset, buf.len()));
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        self.check(offset, buf.len())?;
        self.writes += 1;
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let within = (at % CHUNK) as usize;
            let n = (CHUNK as usize - within).min(buf.len() - done);
            let chunk = self
                .chunks
                .entry(at / CHUNK)
                .or_insert_with(|| vec![0u8; CHUNK as usize]);
            chunk[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }
    fn zero_range(&mut self, offset: u64, len: u64) -> Result<bool, IoError> {
        self.check(offset, len as usize)?;
        // Unwritten bytes read as zero: whole chunks are dropped.
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let (index, base) = (at / CHUNK, at / CHUNK * CHUNK);
            let n = (base + CHUNK).min(end) - at;
            if n == CHUNK {
                self.chunks.remove(&index);
            } else if let Some(c) = self.chunks.get_mut(&index) {
                let from = (at - base) as usize;
                c[from..from + n as usize].fill(0);
            }
            at += n;
        }
        Ok(true)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.flushes += 1;
        Ok(())
    }
}

/// Wraps a device and fails the first write that touches `fail_at`.
pub struct FailingDisk<D: BlockDevice> {
    pub inner: D,
    pub fail_at: u64,
}

impl<D: BlockDevice> BlockDevice for FailingDisk<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn logical_block(&self) -> u32 {
        self.inner.logical_block()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        if offset <= self.fail_at && self.fail_at < offset + buf.len() as u64 {
            return Err(IoError {
                at: None,
                errno: 5,
                message: "Input/output error".to_string(),
            });
        }
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.inner.flush()
    }
}

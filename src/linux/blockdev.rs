//! The target disk: a block device or a regular file, opened with O_DIRECT
//! so the image goes straight to the disk through rivet's one aligned buffer
//! instead of the page cache.

use super::sys;
use crate::deploy::{BlockDevice, IoError};
use crate::stream::AlignedBuf;
use rustix::fs::{FileType, Mode, OFlags};
use std::os::fd::OwnedFd;

pub struct Disk {
    path: String,
    fd: OwnedFd,
    size: u64,
    logical: u32,
    physical: u32,
    is_block: bool,
    direct: bool,
}

fn io_err(e: rustix::io::Errno) -> IoError {
    IoError {
        errno: e.raw_os_error(),
        message: std::io::Error::from(e).to_string(),
    }
}

impl Disk {
    /// Opens `path` for deploying. Block devices are opened O_EXCL, so a disk
    /// with a mounted partition is refused by the kernel. `file_sector` is
    /// the sector size to assume for regular files (512 unless told).
    pub fn open(path: &str, file_sector: u32) -> Result<Disk, String> {
        Disk::open_with(path, file_sector, true)
    }

    /// Opens for reading only (`rivet inspect`): no O_EXCL, no O_DIRECT.
    pub fn open_read_only(path: &str, file_sector: u32) -> Result<Disk, String> {
        Disk::open_with(path, file_sector, false)
    }

    fn open_with(path: &str, file_sector: u32, writable: bool) -> Result<Disk, String> {
        let stat = rustix::fs::stat(path).map_err(|e| format!("{path}: {e}"))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        let is_block = kind == FileType::BlockDevice;
        if !is_block && kind != FileType::RegularFile {
            return Err(format!("{path}: not a block device or a regular file"));
        }
        let mut flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::DIRECT;
        if is_block {
            flags |= OFlags::EXCL;
        }
        if !writable {
            flags = OFlags::RDONLY | OFlags::CLOEXEC;
        }
        let (fd, direct) = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => (fd, flags.contains(OFlags::DIRECT)),
            // tmpfs and some other filesystems refuse O_DIRECT on files.
            Err(rustix::io::Errno::INVAL) if !is_block => {
                let fd = rustix::fs::open(path, flags - OFlags::DIRECT, Mode::empty())
                    .map_err(|e| format!("{path}: {e}"))?;
                log::warn!(
                    "{path}: the filesystem refuses O_DIRECT; writing through the page cache"
                );
                (fd, false)
            }
            Err(rustix::io::Errno::BUSY) => {
                return Err(format!(
                    "{path}: in use (a partition is mounted, or another program holds it)"
                ))
            }
            Err(e) => return Err(format!("{path}: {e}")),
        };
        let (size, logical, physical) = if is_block {
            sys::block_geometry(&fd)
                .map_err(|e| format!("{path}: reading its size and sector sizes: {e}"))?
        } else {
            if !matches!(file_sector, 512 | 4096) {
                return Err(format!("sector size {file_sector}: must be 512 or 4096"));
            }
            (stat.st_size as u64, file_sector, file_sector)
        };
        Ok(Disk {
            path: path.to_string(),
            fd,
            size,
            logical,
            physical,
            is_block,
            direct,
        })
    }

    pub fn is_block_device(&self) -> bool {
        self.is_block
    }

    /// O_DIRECT needs the memory address aligned too: small metadata
    /// buffers from the engine are copied into an aligned one first.
    fn aligned(&self, buf: &[u8]) -> Option<AlignedBuf> {
        let align = (self.logical as usize).max(512);
        if !self.direct || (buf.as_ptr() as usize) % align == 0 {
            return None;
        }
        let mut bounce = AlignedBuf::new(buf.len(), align);
        bounce.as_mut_slice().copy_from_slice(buf);
        Some(bounce)
    }
}

impl BlockDevice for Disk {
    fn name(&self) -> &str {
        &self.path
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn logical_block(&self) -> u32 {
        self.logical
    }
    fn physical_block(&self) -> u32 {
        self.physical
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let mut bounce = self.aligned(buf);
        let target: &mut [u8] = match bounce.as_mut() {
            Some(b) => b.as_mut_slice(),
            None => &mut *buf,
        };
        let mut done = 0;
        while done < target.len() {
            match rustix::io::pread(&self.fd, &mut target[done..], offset + done as u64) {
                Ok(0) => {
                    return Err(IoError {
                        errno: 0,
                        message: "unexpected end of device".into(),
                    })
                }
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        if let Some(b) = bounce {
            buf.copy_from_slice(b.as_slice());
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        if offset + buf.len() as u64 > self.size {
            return Err(IoError {
                errno: 28,
                message: format!("write past the end of {} bytes", self.size),
            });
        }
        let bounce = self.aligned(buf);
        let source = bounce.as_ref().map(|b| b.as_slice()).unwrap_or(buf);
        let mut done = 0;
        while done < source.len() {
            match rustix::io::pwrite(&self.fd, &source[done..], offset + done as u64) {
                Ok(0) => {
                    return Err(IoError {
                        errno: 0,
                        message: "device accepted no bytes".into(),
                    })
                }
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        rustix::fs::fdatasync(&self.fd).map_err(io_err)
    }

    fn reread_partitions(&mut self) -> Result<(), IoError> {
        if !self.is_block {
            return Ok(());
        }
        sys::reread_partitions(&self.fd).map_err(|e| IoError {
            errno: e.raw_os_error().unwrap_or(0),
            message: e.to_string(),
        })
    }
}

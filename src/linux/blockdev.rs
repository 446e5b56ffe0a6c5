//! The target disk: a block device or a regular file, opened with O_DIRECT
//! so the image goes straight to the disk through rivet's one aligned buffer
//! instead of the page cache.

use super::channel::{sync_channel, Receiver, SyncSender};
use super::sys;
use crate::io::{BlockDevice, IoError};
use crate::stream::AlignedBuf;
use rustix::fs::{FileType, Mode, OFlags};
use std::os::fd::OwnedFd;
use std::thread::JoinHandle;

/// Writes at least this large go to the writer thread.
const ASYNC_MIN: usize = 256 * 1024;

/// One write handed to the writer thread, and what comes back.
struct Job {
    offset: u64,
    buf: AlignedBuf,
    len: usize,
}
struct Done {
    buf: AlignedBuf,
    result: Result<(), IoError>,
}

/// A thread that performs large writes while the caller reads and hashes the
/// next chunk: the disk and the hash run in parallel, so throughput is the
/// slower of the two rather than their harmonic sum. One write is in flight
/// at a time, in order, through one spare buffer.
struct Writer {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
    spare: Option<AlignedBuf>,
    in_flight: bool,
    failed: Option<IoError>,
}

fn pwrite_all(fd: &OwnedFd, data: &[u8], offset: u64) -> Result<(), IoError> {
    let mut done = 0;
    while done < data.len() {
        match rustix::io::pwrite(fd, &data[done..], offset + done as u64) {
            Ok(0) => {
                return Err(IoError {
                    at: None,
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

impl Writer {
    fn start(fd: OwnedFd) -> Writer {
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (done_tx, done) = sync_channel::<Done>(1);
        let thread = std::thread::Builder::new()
            .name("rivet-writer".into())
            .spawn(move || {
                for job in job_rx {
                    let result = pwrite_all(&fd, &job.buf.as_slice()[..job.len], job.offset)
                        .map_err(|e| IoError {
                            at: Some(job.offset),
                            errno: e.errno,
                            message: e.message,
                        });
                    if done_tx
                        .send(Done {
                            buf: job.buf,
                            result,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .ok();
        Writer {
            jobs: Some(jobs),
            done,
            thread,
            spare: None,
            in_flight: false,
            failed: None,
        }
    }

    /// Waits for the write in flight, if any; returns the first failure.
    fn drain(&mut self) -> Result<(), IoError> {
        if self.in_flight {
            self.in_flight = false;
            match self.done.recv() {
                Ok(d) => {
                    self.spare = Some(d.buf);
                    if let Err(e) = d.result {
                        self.failed.get_or_insert(e);
                    }
                }
                Err(_) => {
                    self.failed.get_or_insert(IoError {
                        at: None,
                        errno: 0,
                        message: "writer thread ended".into(),
                    });
                }
            }
        }
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn submit(&mut self, offset: u64, data: &[u8], align: usize) -> Result<(), IoError> {
        self.drain()?;
        let mut buf = match self.spare.take() {
            Some(b) if b.len() >= data.len() => b,
            _ => AlignedBuf::new(data.len(), align),
        };
        buf.as_mut_slice()[..data.len()].copy_from_slice(data);
        let job = Job {
            offset,
            buf,
            len: data.len(),
        };
        match self.jobs.as_ref().map(|j| j.send(job)) {
            Some(Ok(())) => {
                self.in_flight = true;
                Ok(())
            }
            _ => Err(IoError {
                at: None,
                errno: 0,
                message: "writer thread ended".into(),
            }),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.drain();
        self.jobs = None; // ends the thread's loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Disk {
    path: String,
    fd: OwnedFd,
    size: u64,
    logical: u32,
    physical: u32,
    is_block: bool,
    direct: bool,
    writer: Option<Writer>,
}

fn io_err(e: rustix::io::Errno) -> IoError {
    IoError {
        at: None,
        errno: e.raw_os_error(),
        message: std::io::Error::from(e).to_string(),
    }
}

impl Disk {
    /// Opens `path` for deploying. Block devices are opened O_EXCL, so a disk
    /// with a mounted partition is refused by the kernel. `file_sector` is
    /// the sector size to assume for regular files (512 unless told).
    pub fn open(path: &str, file_sector: u32) -> Result<Disk, String> {
        Disk::open_with(path, file_sector, true, true)
    }

    /// Opens a disk for writing beside the kernel's own holders: a software
    /// RAID holder whose partitions md claims (an O_EXCL open of it fails),
    /// for writes outside those partitions.
    pub fn open_shared(path: &str, file_sector: u32) -> Result<Disk, String> {
        Disk::open_with(path, file_sector, true, false)
    }

    /// Opens for reading only (`rivet inspect`): no O_EXCL, no O_DIRECT.
    pub fn open_read_only(path: &str, file_sector: u32) -> Result<Disk, String> {
        Disk::open_with(path, file_sector, false, false)
    }

    fn open_with(
        path: &str,
        file_sector: u32,
        writable: bool,
        exclusive: bool,
    ) -> Result<Disk, String> {
        let stat = rustix::fs::stat(path).map_err(|e| format!("{path}: {e}"))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        let is_block = kind == FileType::BlockDevice;
        if !is_block && kind != FileType::RegularFile {
            return Err(format!("{path}: not a block device or a regular file"));
        }
        let mut flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::DIRECT;
        if is_block && exclusive {
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
        // Found at open, not at the first write halfway through a deploy.
        if writable && is_block && sys::block_read_only(&fd).unwrap_or(false) {
            return Err(format!(
                "{path}: the device is read-only (write-protected, or set read-only with blockdev --setro)"
            ));
        }
        let (size, logical, physical) = if is_block {
            sys::block_geometry(&fd)
                .map_err(|e| format!("{path}: reading its size and sector sizes: {e}"))?
        } else {
            if !matches!(file_sector, 512 | 4096) {
                return Err(format!("sector size {file_sector}: must be 512 or 4096"));
            }
            (stat.st_size as u64, file_sector, file_sector)
        };
        let writer = if writable {
            let clone = fd.try_clone().map_err(|e| format!("{path}: {e}"))?;
            Some(Writer::start(clone))
        } else {
            None
        };
        Ok(Disk {
            path: path.to_string(),
            fd,
            size,
            logical,
            physical,
            is_block,
            direct,
            writer,
        })
    }

    /// The open device, for ioctls (NVMe and ATA pass-through).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
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
        if let Some(w) = self.writer.as_mut() {
            w.drain()?;
        }
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
                        at: None,
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
                at: None,
                errno: 28,
                message: format!("write past the end of {} bytes", self.size),
            });
        }
        let align = (self.logical as usize).max(4096);
        if let Some(w) = self.writer.as_mut() {
            if buf.len() >= ASYNC_MIN {
                return w.submit(offset, buf, align);
            }
            w.drain()?;
        }
        let bounce = self.aligned(buf);
        let source = bounce.as_ref().map(|b| b.as_slice()).unwrap_or(buf);
        pwrite_all(&self.fd, source, offset)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if let Some(w) = self.writer.as_mut() {
            w.drain()?;
        }
        rustix::fs::fdatasync(&self.fd).map_err(io_err)
    }

    fn zero_range(&mut self, offset: u64, len: u64) -> Result<bool, IoError> {
        if offset + len > self.size {
            return Err(IoError {
                at: None,
                errno: 28,
                message: format!("zeroing past the end of {} bytes", self.size),
            });
        }
        // Writes queued before must land first: they may overlap.
        if let Some(w) = self.writer.as_mut() {
            w.drain()?;
        }
        let done = if self.is_block {
            sys::zero_out(&self.fd, offset, len).map_err(|e| IoError {
                at: Some(offset),
                errno: e.raw_os_error().unwrap_or(0),
                message: format!("BLKZEROOUT: {e}"),
            })
        } else {
            use rustix::fs::FallocateFlags as F;
            rustix::fs::fallocate(&self.fd, F::PUNCH_HOLE | F::KEEP_SIZE, offset, len)
                .map_err(io_err)
        };
        match done {
            Ok(()) => Ok(true),
            // Not supported here: the caller writes zeros.
            Err(e) if [95, 25, 22].contains(&e.errno) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn reread_partitions(&mut self) -> Result<(), IoError> {
        if !self.is_block {
            return Ok(());
        }
        sys::reread_partitions(&self.fd).map_err(|e| IoError {
            at: None,
            errno: e.raw_os_error().unwrap_or(0),
            message: e.to_string(),
        })
    }
}

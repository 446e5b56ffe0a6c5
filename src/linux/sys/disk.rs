//! Block devices: size, read-only flag, partition re-read; NVMe admin
//! commands; SG_IO (ATA PASS-THROUGH).

use rustix::fd::AsFd;
use std::io;

/// `_IOR(0x12, 114, size_t)`: a block device's size in bytes.
const BLKGETSIZE64: rustix::ioctl::Opcode = 0x8008_1272;
/// `_IO(0x12, 95)`: re-read the partition table.
const BLKRRPART: rustix::ioctl::Opcode = 0x125f;

/// Size in bytes, logical and physical sector size of a block device.
pub fn block_geometry(fd: impl AsFd) -> io::Result<(u64, u32, u32)> {
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer Getter passes.
    let size =
        unsafe { rustix::ioctl::ioctl(&fd, rustix::ioctl::Getter::<BLKGETSIZE64, u64>::new())? };
    let logical = rustix::fs::ioctl_blksszget(&fd)?;
    let physical = rustix::fs::ioctl_blkpbszget(&fd)?;
    Ok((size, logical, physical))
}

/// `_IO(0x12, 94)`: whether a block device is read-only (an int).
const BLKROGET: rustix::ioctl::Opcode = 0x125e;

/// Whether the kernel holds the block device read-only (a write-protected
/// medium, `blockdev --setro`, a read-only virtual disk).
pub fn block_read_only(fd: impl AsFd) -> io::Result<bool> {
    // SAFETY: BLKROGET writes one int through the pointer Getter passes.
    let ro = unsafe {
        rustix::ioctl::ioctl(&fd, rustix::ioctl::Getter::<BLKROGET, libc::c_int>::new())?
    };
    Ok(ro != 0)
}

/// Asks the kernel to re-read a block device's partition table.
pub fn reread_partitions(fd: impl AsFd) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    unsafe { rustix::ioctl::ioctl(&fd, rustix::ioctl::NoArg::<BLKRRPART>::new())? };
    Ok(())
}

const BLKZEROOUT: u64 = 0x127f;

/// Zeroes `len` bytes at `offset` of a block device without sending them
/// (WRITE ZEROES or UNMAP where the device has it; the kernel writes zeros
/// itself otherwise).
pub fn zero_out(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let range = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64s from the pointer, which points at
    // `range`, alive for the call.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct nvme_passthru_cmd` (linux/nvme_ioctl.h), for admin commands.
#[repr(C)]
#[derive(Default)]
pub struct NvmeAdminCmd {
    pub opcode: u8,
    pub flags: u8,
    pub rsvd1: u16,
    pub nsid: u32,
    pub cdw2: u32,
    pub cdw3: u32,
    pub metadata: u64,
    pub addr: u64,
    pub metadata_len: u32,
    pub data_len: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
    pub timeout_ms: u32,
    pub result: u32,
}

const NVME_IOCTL_ID: libc::c_ulong = 0x4e40;
const NVME_IOCTL_ADMIN_CMD: libc::c_ulong = 0xc048_4e41;

/// The namespace id of an NVMe namespace's block device.
pub fn nvme_namespace_id(fd: impl AsFd) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: NVME_IOCTL_ID takes no argument and returns the id.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NVME_IOCTL_ID as _) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u32)
    }
}

/// Runs an NVMe admin command; `data` is the transfer buffer (in or out).
/// Returns the NVMe status (0: success) and the completion's result.
pub fn nvme_admin(
    fd: impl AsFd,
    cmd: &mut NvmeAdminCmd,
    data: Option<&mut [u8]>,
) -> io::Result<(u32, u32)> {
    use std::os::fd::AsRawFd;
    if let Some(d) = data {
        cmd.addr = d.as_mut_ptr() as u64;
        cmd.data_len = d.len() as u32;
    }
    // SAFETY: cmd is a live nvme_passthru_cmd; addr/data_len describe a
    // buffer that outlives the call (the kernel copies in and out).
    let r = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            NVME_IOCTL_ADMIN_CMD as _,
            cmd as *mut NvmeAdminCmd,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((r as u32, cmd.result))
    }
}

/// `sg_io_hdr_t` (scsi/sg.h).
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut libc::c_void,
    cmdp: *mut u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: libc::c_int,
    duration: u32,
    info: u32,
}

const SG_IO: libc::c_ulong = 0x2285;

/// Which way an SG_IO command moves data.
pub enum SgData<'a> {
    None,
    In(&'a mut [u8]),
    Out(&'a [u8]),
}

/// Sends a SCSI CDB (here: ATA PASS-THROUGH) with SG_IO. Returns the SCSI
/// status, host and driver status, and the sense bytes.
pub fn sg_io(
    fd: impl AsFd,
    cdb: &[u8],
    data: SgData<'_>,
    timeout_ms: u32,
) -> io::Result<(u8, u16, u16, Vec<u8>)> {
    use std::os::fd::AsRawFd;
    let mut cdb = cdb.to_vec();
    let mut sense = vec![0u8; 32];
    let (dir, ptr, len) = match data {
        SgData::None => (-1, std::ptr::null_mut(), 0),
        SgData::Out(d) => (-2, d.as_ptr() as *mut libc::c_void, d.len()),
        SgData::In(d) => (-3, d.as_mut_ptr().cast(), d.len()),
    };
    let mut h = SgIoHdr {
        interface_id: b'S' as libc::c_int,
        dxfer_direction: dir,
        cmd_len: cdb.len() as u8,
        mx_sb_len: sense.len() as u8,
        iovec_count: 0,
        dxfer_len: len as u32,
        dxferp: ptr,
        cmdp: cdb.as_mut_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: h points at the CDB, sense and data buffers above, all alive
    // for the call, with their lengths.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), SG_IO as _, &mut h as *mut SgIoHdr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    sense.truncate(h.sb_len_wr as usize);
    Ok((h.status, h.host_status, h.driver_status, sense))
}

//! The one place for syscalls that need `unsafe` or raw ioctls. Everything
//! else in rivet calls these safe functions: here the process, the clock,
//! mounts, modules and randomness; in [`disk`] block devices, NVMe admin
//! commands and SCSI/ATA pass-through; in [`net`] links and the packet
//! socket, in [`packet_rx`] its receive ring.

mod disk;
mod net;
mod packet_rx;
pub use disk::*;
pub use net::*;
pub use packet_rx::*;

use rustix::fd::AsFd;
pub use rustix::io::Errno;
use std::ffi::CString;
use std::io;
use std::path::Path;

pub use rustix::system::RebootCommand;

/// Seconds since boot (CLOCK_BOOTTIME), the clock the kernel's log uses.
pub fn boot_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

pub fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    use rustix::mount::MountFlags;
    rustix::mount::mount(source, target, fstype, MountFlags::NOSUID, None).map_err(io::Error::from)
}

/// Loads a kernel module from a file. `EEXIST` (already loaded) is success.
pub fn load_module(path: &Path) -> Result<(), Errno> {
    let file =
        std::fs::File::open(path).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    match rustix::system::finit_module(file.as_fd(), c"", 0) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Loads a kernel module from its ELF image in memory (one rivet inflated).
pub fn load_module_image(image: &[u8]) -> Result<(), Errno> {
    match rustix::system::init_module(image, c"") {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Clears the immutable attribute efivarfs puts on variables it does not
/// know to be safe to change (chattr -i), so they can be written or removed.
pub fn clear_immutable(path: &Path) -> io::Result<()> {
    use rustix::fs::IFlags;
    let file = std::fs::File::open(path)?;
    let flags = rustix::fs::ioctl_getflags(file.as_fd())?;
    if flags.contains(IFlags::IMMUTABLE) {
        rustix::fs::ioctl_setflags(file.as_fd(), flags - IFlags::IMMUTABLE)?;
    }
    Ok(())
}

/// Flushes all filesystems and block devices to stable storage.
pub fn sync() {
    rustix::fs::sync();
}

/// Power off, reboot or halt. Returns only if the kernel refused.
pub fn reboot(cmd: RebootCommand) -> io::Error {
    match rustix::system::reboot(cmd) {
        Ok(()) => io::Error::other("reboot(2) returned"),
        Err(e) => e.into(),
    }
}

/// A C string for paths handed to the kernel.
pub fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in string"))
}

/// Random bytes from the kernel. GRND_INSECURE never blocks, even in an
/// early-boot PID 1 before the pool is initialised; rivet needs uniqueness
/// (partition GUIDs, disk signatures, volume serials), not secrecy.
pub fn random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::INSECURE) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(_) => {
                // Kernels before 5.6 lack GRND_INSECURE: ask without flags.
                match rustix::rand::getrandom(
                    &mut buf[filled..],
                    rustix::rand::GetRandomFlags::empty(),
                ) {
                    Ok(n) => filled += n,
                    Err(e) => panic!("getrandom failed: {e}"),
                }
            }
        }
    }
}

/// Random bytes fit for keys: getrandom without flags, which waits until
/// the kernel's pool is initialised (virtio_rng or RDRAND make that quick).
pub fn secure_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

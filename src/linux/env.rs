//! The engine's environment on Linux: a monotonic clock, the kernel's
//! random numbers, and the formatters rivet carries.

use super::{fat, sys};
use crate::deploy::{BlockDevice, Env, Mkfs};
use std::time::Instant;

pub struct LinuxEnv {
    start: Instant,
}

impl Default for LinuxEnv {
    fn default() -> Self {
        LinuxEnv {
            start: Instant::now(),
        }
    }
}

impl Env for LinuxEnv {
    fn now_ms(&mut self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn random(&mut self, buf: &mut [u8]) {
        sys::random(buf);
    }

    fn can_mkfs(&self, fs: Mkfs) -> bool {
        // ext2/3/4 would need a mkfs of rivet's own; refused before writing.
        matches!(fs, Mkfs::Vfat { .. })
    }

    fn mkfs(
        &mut self,
        dev: &mut dyn BlockDevice,
        offset: u64,
        len: u64,
        fs: Mkfs,
    ) -> Result<(), String> {
        match fs {
            Mkfs::Vfat { label } => {
                let mut id = [0u8; 4];
                sys::random(&mut id);
                fat::format(dev, offset, len, label, u32::from_le_bytes(id))
            }
            Mkfs::Ext { kind, .. } => Err(format!("rivet cannot make {} filesystems", kind.name())),
        }
    }
}

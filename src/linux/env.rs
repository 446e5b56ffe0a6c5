//! The engine's environment on Linux: a monotonic clock, the kernel's
//! random numbers, and the formatters rivet carries.

use super::{fat, sys};
use crate::deploy::{Env, Mkfs};
use crate::fs::mkext;
use crate::io::BlockDevice;
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

    fn can_mkfs(&self, _fs: Mkfs) -> bool {
        // vfat through fatfs; ext2/3/4 with rivet's own (fs::mkext).
        true
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
            Mkfs::Ext { kind, label } => {
                let mut uuid = [0u8; 16];
                sys::random(&mut uuid);
                // A random (version 4) UUID, as mke2fs makes.
                uuid[6] = (uuid[6] & 0x0f) | 0x40;
                uuid[8] = (uuid[8] & 0x3f) | 0x80;
                let mut hash_seed = [0u8; 16];
                sys::random(&mut hash_seed);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as u32);
                let kind = crate::deploy::ext_kind(kind);
                let options = mkext::Options {
                    kind,
                    label,
                    uuid,
                    hash_seed,
                    now,
                };
                let made = mkext::format(dev, offset, len, &options)?;
                log::info!(
                    "{}: {} blocks of {} bytes, {} inodes, journal {} blocks",
                    kind.name(),
                    made.geometry.blocks,
                    made.geometry.block_size,
                    made.geometry.inodes(),
                    made.journal_blocks
                );
                Ok(())
            }
        }
    }
}

//! Doubles for exercising the engine: an environment with scripted time,
//! seeded randomness and a recorder in place of mkfs, and an NVRAM in
//! memory. (The disk and image doubles are in [`crate::io`].)

use super::{Env, Mkfs};
use crate::io::BlockDevice;
use alloc::string::String;
use alloc::vec::Vec;

/// Time advances 10 ms per call; randomness is a counter; mkfs writes a
/// recognisable marker and records the call.
pub struct ScriptedEnv {
    pub now: u64,
    pub counter: u8,
    pub mkfs_calls: Vec<(u64, u64, Mkfs)>,
    pub ext_supported: bool,
}

impl Default for ScriptedEnv {
    fn default() -> Self {
        ScriptedEnv {
            now: 0,
            counter: 1,
            mkfs_calls: Vec::new(),
            ext_supported: true,
        }
    }
}

impl Env for ScriptedEnv {
    fn now_ms(&mut self) -> u64 {
        self.now += 10;
        self.now
    }
    fn random(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.counter;
            self.counter = self.counter.wrapping_add(1);
        }
    }
    fn can_mkfs(&self, fs: Mkfs) -> bool {
        matches!(fs, Mkfs::Vfat { .. }) || self.ext_supported
    }
    fn mkfs(
        &mut self,
        dev: &mut dyn BlockDevice,
        offset: u64,
        len: u64,
        fs: Mkfs,
    ) -> Result<(), String> {
        self.mkfs_calls.push((offset, len, fs));
        let block = dev.logical_block() as usize;
        let mut marker = alloc::vec![0u8; block];
        marker[..4].copy_from_slice(b"MKFS");
        dev.write_at(offset, &marker)
            .map_err(|e| alloc::format!("{e}"))
    }
}

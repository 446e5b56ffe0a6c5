//! Doubles for exercising the engine without a disk or a network: an image
//! held in memory (size known or not), and an environment with scripted
//! time, seeded randomness and a recorder in place of mkfs.

use super::{BlockDevice, Env, ImageSource, Mkfs};
use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;

/// Image bytes from memory, optionally hiding their size (as a chunked
/// HTTP response would).
pub struct SliceImage<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub size_known: bool,
    /// Serves reads at an offset (as a file or a server with Range would).
    pub ranges: bool,
    /// What reads at an offset return instead of `data`: a server that
    /// answers range requests with other bytes than it streams.
    pub ranged_from: Option<&'a [u8]>,
}

impl<'a> SliceImage<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        SliceImage {
            data,
            pos: 0,
            size_known: true,
            ranges: false,
            ranged_from: None,
        }
    }
}

impl embedded_io::ErrorType for SliceImage<'_> {
    type Error = Infallible;
}

impl embedded_io::Read for SliceImage<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        // Short reads on purpose: at most 100 000 bytes a call.
        let n = buf.len().min(self.data.len() - self.pos).min(100_000);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ImageSource for SliceImage<'_> {
    fn size(&self) -> Option<u64> {
        self.size_known.then_some(self.data.len() as u64)
    }
    fn describe(&self) -> String {
        String::from("memory")
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        if !self.ranges {
            return None;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let data = self.ranged_from.unwrap_or(self.data);
        Some(match data.get(start..start.saturating_add(buf.len())) {
            Some(part) => {
                buf.copy_from_slice(part);
                Ok(())
            }
            None => Err(alloc::format!(
                "{} bytes at {offset}: past the end",
                buf.len()
            )),
        })
    }
}

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

/// Firmware variables in memory; `fail_set` makes writes to one name fail
/// (a firmware whose variable store is full, say).
#[derive(Default)]
pub struct MemNvram {
    pub vars: alloc::collections::BTreeMap<String, Vec<u8>>,
    pub fail_set: Option<String>,
}

impl super::uefi::Nvram for MemNvram {
    fn names(&mut self) -> Result<Vec<String>, String> {
        Ok(self.vars.keys().cloned().collect())
    }
    fn get(&mut self, name: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.vars.get(name).cloned())
    }
    fn set(&mut self, name: &str, data: &[u8]) -> Result<(), String> {
        if self.fail_set.as_deref() == Some(name) {
            return Err(alloc::format!("{name}: No space left on device"));
        }
        self.vars.insert(name.into(), data.to_vec());
        Ok(())
    }
    fn delete(&mut self, name: &str) -> Result<(), String> {
        self.vars.remove(name);
        Ok(())
    }
}

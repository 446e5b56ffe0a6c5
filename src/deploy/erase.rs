//! Overwriting a whole device, as ironic-python-agent's `erase_devices`
//! does when no secure erase applies (`shred -n ITERATIONS [-z]`): random
//! passes, then a pass of zeros, through one buffer at the device's speed;
//! and a check afterwards that a sample of it reads back zero.

use super::Error;
use crate::io::BlockDevice;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Random,
    Zeros,
}

/// `iterations` random passes, then zeros when `zeroize` (Ironic's
/// `agent_erase_devices_iterations` and `agent_erase_devices_zeroize`).
pub fn passes(iterations: u32, zeroize: bool) -> Vec<Pass> {
    let mut p: Vec<Pass> = (0..iterations).map(|_| Pass::Random).collect();
    if zeroize {
        p.push(Pass::Zeros);
    }
    p
}

/// Where an overwrite is, for the log and the command's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// 1-based.
    pub pass: usize,
    pub passes: usize,
    pub kind: Pass,
    pub done: u64,
    pub total: u64,
    pub elapsed_ms: u64,
}

impl core::fmt::Display for Progress {
    /// `pass 1/2 (Random): 48 of 160 MiB, 36.6 MB/s`, for the log and the
    /// command's status.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "pass {}/{} ({:?}): {} of {} MiB, {} MB/s",
            self.pass,
            self.passes,
            self.kind,
            self.done >> 20,
            self.total >> 20,
            crate::stream::Fixed(self.mb_per_s(), 1)
        )
    }
}

impl Progress {
    pub fn mb_per_s(&self) -> f64 {
        if self.elapsed_ms == 0 {
            0.0
        } else {
            self.done as f64 / 1000.0 / self.elapsed_ms as f64
        }
    }
}

/// What the overwrite needs from outside: random bytes fast, a clock,
/// and somewhere to report (every `REPORT_MS` and at each pass's end).
pub trait Eraser {
    /// Fills `buf` with unpredictable bytes (a keystream, not a syscall per
    /// block).
    fn random(&mut self, buf: &mut [u8]);
    fn now_ms(&mut self) -> u64;
    fn report(&mut self, p: &Progress);
}

pub const REPORT_MS: u64 = 5_000;

/// Writes every pass over the whole of `dev` through `buf`.
pub fn overwrite(
    dev: &mut dyn BlockDevice,
    passes: &[Pass],
    buf: &mut [u8],
    eraser: &mut dyn Eraser,
) -> Result<(), Error> {
    let total = dev.size();
    let block = u64::from(dev.logical_block().max(512));
    if buf.is_empty() || buf.len() as u64 % block != 0 {
        return Err(Error::Refused(format!(
            "erase buffer of {} bytes is not a multiple of the {block}-byte sector",
            buf.len()
        )));
    }
    for (i, &kind) in passes.iter().enumerate() {
        let start = eraser.now_ms();
        let mut last = start;
        if kind == Pass::Zeros {
            buf.fill(0);
        }
        let mut at = 0u64;
        while at < total {
            let n = (total - at).min(buf.len() as u64) as usize;
            if kind == Pass::Random {
                eraser.random(&mut buf[..n]);
            }
            dev.write_at(at, &buf[..n])
                .map_err(|e| Error::device(dev, "erase write", at, e))?;
            at += n as u64;
            let now = eraser.now_ms();
            if now >= last + REPORT_MS || at == total {
                last = now;
                eraser.report(&Progress {
                    pass: i + 1,
                    passes: passes.len(),
                    kind,
                    done: at,
                    total,
                    elapsed_ms: now - start,
                });
            }
        }
        dev.flush().map_err(|e| Error::device(dev, "flush", 0, e))?;
    }
    Ok(())
}

/// Reads back the first and last MiB and `samples` random 4 KiB blocks;
/// all must be zero. `random` picks the blocks.
pub fn check_zeroed(
    dev: &mut dyn BlockDevice,
    samples: u32,
    random: &mut dyn FnMut() -> u64,
) -> Result<(), String> {
    const MIB: u64 = 1 << 20;
    let size = dev.size();
    let block = u64::from(dev.logical_block().max(512)).max(4096);
    let mut spans: Vec<(u64, u64)> = Vec::new();
    spans.push((0, MIB.min(size)));
    if size > MIB {
        let tail = (size - MIB) / block * block;
        spans.push((tail, size - tail));
    }
    let blocks = size / block;
    for _ in 0..samples {
        if blocks == 0 {
            break;
        }
        spans.push((random() % blocks * block, block.min(size)));
    }
    let mut buf = alloc::vec![0u8; MIB as usize];
    for (at, len) in spans {
        let b = &mut buf[..len as usize];
        dev.read_at(at, b)
            .map_err(|e| format!("{}: reading back at byte {at}: {e}", dev.name()))?;
        if let Some(i) = b.iter().position(|&x| x != 0) {
            return Err(format!(
                "{}: byte {} is {:#04x} after the zero pass",
                dev.name(),
                at + i as u64,
                b[i]
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FailingDisk, MemDisk};

    struct Scripted {
        now: u64,
        n: u8,
        reports: Vec<Progress>,
    }
    impl Eraser for Scripted {
        fn random(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.n = self.n.wrapping_mul(31).wrapping_add(7);
                *b = self.n | 1;
            }
        }
        fn now_ms(&mut self) -> u64 {
            self.now += 1000;
            self.now
        }
        fn report(&mut self, p: &Progress) {
            self.reports.push(p.clone());
        }
    }

    fn scripted() -> Scripted {
        Scripted {
            now: 0,
            n: 1,
            reports: Vec::new(),
        }
    }

    #[test]
    fn a_random_pass_leaves_no_zero_byte_and_the_zero_pass_leaves_only_zeros() {
        let size = (3 << 20) + 4096;
        let mut disk = MemDisk::new(size, 512);
        let mut buf = alloc::vec![0u8; 1 << 20];
        let mut e = scripted();
        overwrite(&mut disk, &[Pass::Random], &mut buf, &mut e).unwrap();
        assert!(disk.bytes(0, size as usize).iter().all(|&b| b != 0));
        overwrite(&mut disk, &passes(0, true), &mut buf, &mut e).unwrap();
        assert!(disk.bytes(0, size as usize).iter().all(|&b| b == 0));
        let mut r = 0u64;
        check_zeroed(&mut disk, 16, &mut || {
            r += 12345;
            r
        })
        .unwrap();
    }

    #[test]
    fn progress_is_reported_per_pass_and_ends_at_the_size() {
        let mut disk = MemDisk::new(8 << 20, 512);
        let mut buf = alloc::vec![0u8; 1 << 20];
        let mut e = scripted();
        overwrite(&mut disk, &passes(2, true), &mut buf, &mut e).unwrap();
        let ends: Vec<(usize, Pass, u64)> = e
            .reports
            .iter()
            .filter(|p| p.done == p.total)
            .map(|p| (p.pass, p.kind, p.total))
            .collect();
        assert_eq!(
            ends,
            [
                (1, Pass::Random, 8 << 20),
                (2, Pass::Random, 8 << 20),
                (3, Pass::Zeros, 8 << 20)
            ]
        );
        assert!(e.reports.iter().all(|p| p.passes == 3));
    }

    #[test]
    fn a_failed_write_names_the_disk_and_offset() {
        let mut disk = FailingDisk {
            inner: MemDisk::new(4 << 20, 512),
            fail_at: (2 << 20) + 100,
        };
        let mut buf = alloc::vec![0u8; 1 << 20];
        let err = overwrite(&mut disk, &[Pass::Zeros], &mut buf, &mut scripted()).unwrap_err();
        assert!(err.to_string().contains("at byte 2097152"), "{err}");
    }

    #[test]
    fn a_non_zero_byte_is_found_and_named() {
        let mut disk = MemDisk::new(4 << 20, 512);
        disk.write_at((4 << 20) - 512, &[9u8; 512]).unwrap();
        let err = check_zeroed(&mut disk, 0, &mut || 0).unwrap_err();
        assert!(err.contains("byte 4193792 is 0x09"), "{err}");
    }
}

//! Disk burn-in (fio's verified read/write job in ironic-python-agent):
//! each pass writes a positional pattern over the whole device through one
//! aligned buffer, flushes, reads it all back and compares. A pass's seed
//! differs from the last, so stale data from a pass before never passes
//! for new. Destructive: cleaning only, never servicing (as the real
//! agent: "it would be destructive to data on a disk").

use crate::io::BlockDevice;
use alloc::format;
use alloc::string::String;

/// How long to go: `loops` passes (`agent_burnin_fio_disk_loops`), or,
/// with `runtime_ms` > 0 (`agent_burnin_fio_disk_runtime`), passes until
/// that time is up, the last one cut short and checked as far as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub loops: u32,
    pub runtime_ms: u64,
}

/// What a burn-in did to one disk.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub passes: u32,
    pub written: u64,
    pub write_ms: u64,
    pub read: u64,
    pub read_ms: u64,
}

impl Figures {
    pub fn write_mb_s(&self) -> f64 {
        super::mb_per_s(self.written, self.write_ms)
    }
    pub fn read_mb_s(&self) -> f64 {
        super::mb_per_s(self.read, self.read_ms)
    }
}

/// Time and progress from outside (the agent's clock; its log and the
/// running command's status every [`REPORT_MS`]).
pub trait Meter {
    fn now_ms(&mut self) -> u64;
    fn report(&mut self, line: &str);
}

pub const REPORT_MS: u64 = 5_000;

/// Burns `dev` in through `buf` (a multiple of its block size).
pub fn burn(
    dev: &mut dyn BlockDevice,
    buf: &mut [u8],
    plan: Plan,
    seed: u64,
    meter: &mut dyn Meter,
) -> Result<Figures, String> {
    let size = dev.size();
    let block = u64::from(dev.logical_block().max(512));
    let name = String::from(dev.name());
    if buf.is_empty() || buf.len() as u64 % block != 0 || size % block != 0 {
        return Err(format!(
            "{name}: a {}-byte buffer cannot burn in {size} bytes of {block}-byte sectors",
            buf.len()
        ));
    }
    let start = meter.now_ms();
    let end = (plan.runtime_ms > 0).then(|| start + plan.runtime_ms);
    let mut f = Figures::default();
    let mut last = start;
    loop {
        let pass = f.passes;
        let (s, total) = (seed.wrapping_add(u64::from(pass)), size);
        let mut done = 0;
        let t0 = meter.now_ms();
        while done < total && end.is_none_or(|e| meter.now_ms() < e) {
            let n = (total - done).min(buf.len() as u64) as usize;
            super::fill(&mut buf[..n], s, done);
            dev.write_at(done, &buf[..n])
                .map_err(|e| format!("{name}: pass {}: write at byte {done}: {e}", pass + 1))?;
            done += n as u64;
            let now = meter.now_ms();
            if now >= last + REPORT_MS {
                last = now;
                meter.report(&format!(
                    "pass {}: wrote {} of {} MiB",
                    pass + 1,
                    done >> 20,
                    total >> 20
                ));
            }
        }
        dev.flush()
            .map_err(|e| format!("{name}: pass {}: flush: {e}", pass + 1))?;
        f.written += done;
        let t1 = meter.now_ms();
        f.write_ms += t1 - t0;
        let mut at = 0;
        while at < done {
            let n = (done - at).min(buf.len() as u64) as usize;
            dev.read_at(at, &mut buf[..n])
                .map_err(|e| format!("{name}: pass {}: read at byte {at}: {e}", pass + 1))?;
            if let Some((i, found, want)) = super::mismatch(&buf[..n], s, at) {
                return Err(format!(
                    "{name}: pass {}: byte {} read back {found:#04x}, {want:#04x} was written",
                    pass + 1,
                    at + i as u64
                ));
            }
            at += n as u64;
        }
        f.read += done;
        let t2 = meter.now_ms();
        f.read_ms += t2 - t1;
        if done == total {
            f.passes += 1;
        }
        meter.report(&format!(
            "pass {}: {} MiB written at {} MB/s and verified at {} MB/s",
            pass + 1,
            done >> 20,
            crate::stream::Fixed(super::mb_per_s(done, t1 - t0), 1),
            crate::stream::Fixed(super::mb_per_s(done, t2 - t1), 1)
        ));
        let more = match end {
            Some(e) => meter.now_ms() < e,
            None => f.passes < plan.loops,
        };
        if !more {
            return Ok(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FailingDisk, MemDisk};

    struct Ticks {
        now: u64,
        step: u64,
        lines: alloc::vec::Vec<String>,
    }
    impl Meter for Ticks {
        fn now_ms(&mut self) -> u64 {
            self.now += self.step;
            self.now
        }
        fn report(&mut self, line: &str) {
            self.lines.push(line.into());
        }
    }
    fn ticks(step: u64) -> Ticks {
        Ticks {
            now: 0,
            step,
            lines: alloc::vec::Vec::new(),
        }
    }

    #[test]
    fn loops_write_and_verify_the_whole_disk_with_a_new_pattern_each_pass() {
        let size = (3 << 20) + 4096;
        let mut disk = MemDisk::new(size, 512);
        let mut buf = alloc::vec![0u8; 1 << 20];
        let plan = Plan {
            loops: 2,
            runtime_ms: 0,
        };
        let f = burn(&mut disk, &mut buf, plan, 5, &mut ticks(10)).unwrap();
        assert_eq!((f.passes, f.written, f.read), (2, 2 * size, 2 * size));
        // The disk holds the last pass's pattern.
        assert_eq!(
            super::super::mismatch(&disk.bytes(0, size as usize), 6, 0),
            None
        );
    }

    #[test]
    fn a_runtime_passes_until_the_time_is_up() {
        let mut disk = MemDisk::new(8 << 20, 512);
        let mut buf = alloc::vec![0u8; 1 << 20];
        let plan = Plan {
            loops: 1,
            runtime_ms: 30_000,
        };
        // 1 s per clock read: the time is up within the second pass.
        let mut m = ticks(1000);
        let f = burn(&mut disk, &mut buf, plan, 1, &mut m).unwrap();
        assert_eq!(f.passes, 1, "{:?}", m.lines);
        assert!(f.written > 8 << 20 && f.written < 2 * (8 << 20), "{f:?}");
        assert_eq!(f.read, f.written, "what was written was checked");
        assert!(m.now >= 30_000 && m.now < 40_000, "{}", m.now);
    }

    /// A disk that loses a write (reads return what was there before).
    struct LosesWrite {
        inner: MemDisk,
        at: u64,
    }
    impl BlockDevice for LosesWrite {
        fn name(&self) -> &str {
            "/dev/lossy"
        }
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn logical_block(&self) -> u32 {
            512
        }
        fn read_at(&mut self, o: u64, b: &mut [u8]) -> Result<(), crate::io::IoError> {
            self.inner.read_at(o, b)
        }
        fn write_at(&mut self, o: u64, b: &[u8]) -> Result<(), crate::io::IoError> {
            self.inner.write_at(o, b)?;
            if (o..o + b.len() as u64).contains(&self.at) {
                self.inner.write_at(self.at, &[0u8; 512])?;
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<(), crate::io::IoError> {
            Ok(())
        }
    }

    #[test]
    fn a_lost_write_and_a_failing_disk_are_named_by_disk_pass_and_byte() {
        let mut buf = alloc::vec![0u8; 1 << 20];
        let plan = Plan {
            loops: 1,
            runtime_ms: 0,
        };
        let mut lossy = LosesWrite {
            inner: MemDisk::new(4 << 20, 512),
            at: 3 << 20,
        };
        let err = burn(&mut lossy, &mut buf, plan, 1, &mut ticks(1)).unwrap_err();
        assert!(err.starts_with("/dev/lossy: pass 1: byte 314572"), "{err}");
        assert!(err.contains("was written"), "{err}");
        let mut failing = FailingDisk {
            inner: MemDisk::new(4 << 20, 512),
            fail_at: (2 << 20) + 100,
        };
        let err = burn(&mut failing, &mut buf, plan, 1, &mut ticks(1)).unwrap_err();
        assert!(err.contains("pass 1: write at byte 2097152"), "{err}");
        let err = burn(
            &mut MemDisk::new(4 << 20, 4096),
            &mut buf[..512],
            plan,
            1,
            &mut ticks(1),
        )
        .unwrap_err();
        assert!(err.contains("cannot burn in"), "{err}");
    }
}

//! Memory burn-in (stress-ng's `--vm`): each worker owns a slice of RAM,
//! writes a pattern over all of it, reads every word back, and repeats
//! with the next pattern and then its complement (every bit both ways)
//! until told to stop. How much RAM: stress-ng's `--vm-bytes` syntax,
//! bounded by what the kernel says is available less what rivet keeps.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};

/// `agent_burnin_vm_vm-bytes`: a share of available memory or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Percent(u64),
    Bytes(u64),
}

/// stress-ng's sizes: `98%`, `512m`, `2G`, `4096` (bytes), `64k`.
pub fn parse_amount(s: &str) -> Result<Amount, String> {
    let s = s.trim();
    let bad = || format!("vm-bytes {s:?}: expected N%, or a size such as 512M or 2G");
    if let Some(p) = s.strip_suffix('%') {
        let p: u64 = p.trim().parse().map_err(|_| bad())?;
        return if (1..=100).contains(&p) {
            Ok(Amount::Percent(p))
        } else {
            Err(bad())
        };
    }
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_lowercase() {
                'b' => 0,
                'k' => 10,
                'm' => 20,
                'g' => 30,
                't' => 40,
                _ => return Err(bad()),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .map(Amount::Bytes)
        .ok_or_else(bad)
}

/// What rivet leaves untouched for itself (its stack's buffers, a disk
/// buffer, the API): the kernel must never run out under PID 1.
pub const RESERVE: u64 = 48 << 20;

/// The bytes to test: the amount asked, never more than `available`
/// (MemAvailable) less [`RESERVE`], in whole MiB.
pub fn bytes_to_test(amount: Amount, available: u64) -> Result<u64, String> {
    let usable = available.saturating_sub(RESERVE);
    let asked = match amount {
        Amount::Percent(p) => (u128::from(usable) * u128::from(p) / 100) as u64,
        Amount::Bytes(b) => b,
    };
    let bytes = asked.min(usable) >> 20 << 20;
    if bytes == 0 {
        return Err(format!(
            "{} MiB available, {} MiB of it kept for rivet: no memory left to test",
            available >> 20,
            RESERVE >> 20
        ));
    }
    Ok(bytes)
}

/// Words written between looks at the stop flag (1 MiB).
const STRIDE: usize = 1 << 17;

/// Tests `words` until `stop`; returns the passes completed (a pass: one
/// pattern written over all of it and read back). `seed` differs per
/// worker; `base` is the slice's first word's index among all workers',
/// for the error message.
pub fn work(words: &mut [u64], seed: u64, base: u64, stop: &AtomicBool) -> Result<u64, String> {
    let mut pass = 0u64;
    loop {
        let s = seed.wrapping_add(pass / 2);
        // Odd passes write the complement of the even pass before them.
        let flip = if pass % 2 == 1 { u64::MAX } else { 0 };
        let mut written = 0;
        for (c, chunk) in words.chunks_mut(STRIDE).enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let first = (c * STRIDE) as u64;
            for (i, w) in chunk.iter_mut().enumerate() {
                *w = super::word(s, first + i as u64) ^ flip;
            }
            written += chunk.len();
        }
        // Through an opaque `&mut`: the reads go to memory, not to what
        // the optimiser knows was just stored.
        let tested: &mut [u64] = core::hint::black_box(&mut words[..written]);
        check(tested, s, flip, base)?;
        if written < words.len() {
            return Ok(pass);
        }
        pass += 1;
    }
}

/// Reads every word back against pattern `seed` (complemented by `flip`).
fn check(words: &[u64], seed: u64, flip: u64, base: u64) -> Result<(), String> {
    for (i, &w) in words.iter().enumerate() {
        let want = super::word(seed, i as u64) ^ flip;
        if w != want {
            return Err(format!(
                "memory word {} (byte {:#x} of the tested memory) read {w:#018x}, \
                 {want:#018x} was written (bits {:#018x} differ)",
                base + i as u64,
                (base + i as u64) * 8,
                w ^ want
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_as_stress_ng_reads_them() {
        assert_eq!(parse_amount("98%"), Ok(Amount::Percent(98)));
        assert_eq!(parse_amount("512M"), Ok(Amount::Bytes(512 << 20)));
        assert_eq!(parse_amount("2g"), Ok(Amount::Bytes(2 << 30)));
        assert_eq!(parse_amount("4096"), Ok(Amount::Bytes(4096)));
        assert_eq!(parse_amount("64k"), Ok(Amount::Bytes(64 << 10)));
        for bad in [
            "",
            "0%",
            "101%",
            "lots",
            "12x",
            "0",
            "-5M",
            "99999999999999T",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_tested_size_leaves_rivet_its_reserve() {
        let avail = 200 << 20;
        assert_eq!(
            bytes_to_test(Amount::Percent(50), avail),
            Ok(((avail - RESERVE) / 2) >> 20 << 20)
        );
        assert_eq!(
            bytes_to_test(Amount::Bytes(1 << 40), avail),
            Ok(avail - RESERVE)
        );
        assert_eq!(bytes_to_test(Amount::Bytes(16 << 20), avail), Ok(16 << 20));
        assert!(bytes_to_test(Amount::Percent(98), RESERVE)
            .unwrap_err()
            .contains("no memory left"));
    }

    #[test]
    fn passes_alternate_patterns_and_a_flipped_bit_is_named() {
        let mut words = alloc::vec![0u64; 3 * STRIDE + 5];
        let stop = AtomicBool::new(true);
        assert_eq!(work(&mut words, 1, 0, &stop), Ok(0));
        // A stop after some passes: the count says how many completed.
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let w = s.spawn(|| work(&mut words, 1, 0, &stop));
            std::thread::sleep(std::time::Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            assert!(w.join().unwrap().unwrap() >= 1);
        });
        // Memory with a bit that reads flipped: found, and named by where.
        let mut words: alloc::vec::Vec<u64> =
            (0..1024).map(|i| !super::super::word(9, i)).collect();
        assert_eq!(check(&words, 9, u64::MAX, 100), Ok(()));
        words[700] ^= 8;
        let err = check(&words, 9, u64::MAX, 100).unwrap_err();
        assert!(
            err.contains("memory word 800 (byte 0x1900")
                && err.contains("0x0000000000000008 differ"),
            "{err}"
        );
    }
}

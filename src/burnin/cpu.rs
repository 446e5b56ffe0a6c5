//! CPU burn-in (stress-ng's `--cpu`): one worker per core spins on integer
//! and floating-point work until told to stop, and checks each round's
//! result against the first, so a core that computes wrong under heat or
//! load fails the step instead of passing it.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};

/// Words hashed and terms summed per round (a round is well under a
/// millisecond on a server core, so a stop is seen at once).
const ROUND: u64 = 4096;

/// One round: a fold of the pattern's words and a float series whose
/// exact bits depend on every step.
fn round(n: u64) -> (u64, u64) {
    let mut h = 0u64;
    let mut x = 0.0f64;
    for i in 0..ROUND {
        h = h.rotate_left(5) ^ super::word(n, i);
        let t = (i + 1) as f64;
        x += 1.0 / (t * t) + (h & 0xff) as f64 / t;
    }
    (h, x.to_bits())
}

/// Runs rounds until `stop`; returns how many (stress-ng's bogo ops).
/// `seed` varies per worker so the cores do not compute in lockstep.
pub fn work(seed: u64, stop: &AtomicBool) -> Result<u64, String> {
    let want = round(seed);
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let got = round(core::hint::black_box(seed));
        if got != want {
            return Err(format!(
                "round {rounds} computed {:#x}/{:#x}, the first round {:#x}/{:#x}",
                got.0, got.1, want.0, want.1
            ));
        }
        rounds += 1;
    }
    Ok(rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_repeat_exactly_and_a_stop_ends_the_work() {
        assert_eq!(round(3), round(3));
        assert_ne!(round(3), round(4));
        let stop = AtomicBool::new(true);
        assert_eq!(work(1, &stop), Ok(0));
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let worker = s.spawn(|| work(2, &stop));
            std::thread::sleep(std::time::Duration::from_millis(20));
            stop.store(true, Ordering::Relaxed);
            assert!(worker.join().unwrap().unwrap() > 0);
        });
    }
}

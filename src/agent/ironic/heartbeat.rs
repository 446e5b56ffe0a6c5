//! When to heartbeat, as ironic-python-agent times it: at once, then after
//! a success every `heartbeat_timeout × U(0.3, 0.6)`, after a failure every
//! `5 s × U(1, 2)`, and soon (≥ 5 s after the last) once a command ends.
//! Time and randomness are passed in.

const MIN_GAP_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    timeout_ms: u64,
    next_ms: u64,
    last_ms: Option<u64>,
    forced: bool,
}

/// `lo + (hi - lo) × r/2³²`, in thousandths, without floats.
fn spread(base_ms: u64, lo_milli: u64, hi_milli: u64, r: u32) -> u64 {
    let milli = lo_milli + (hi_milli - lo_milli) * r as u64 / (1u64 << 32);
    base_ms * milli / 1000
}

impl Schedule {
    pub fn new(heartbeat_timeout_s: u64, now_ms: u64) -> Schedule {
        Schedule {
            timeout_ms: heartbeat_timeout_s.max(1) * 1000,
            next_ms: now_ms,
            last_ms: None,
            forced: false,
        }
    }

    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_ms
            || (self.forced && self.last_ms.is_none_or(|l| now_ms >= l + MIN_GAP_MS))
    }

    /// A command ended: tell the conductor soon.
    pub fn force(&mut self) {
        self.forced = true;
    }

    /// Records a heartbeat sent at `now_ms`; `r` is a random number.
    pub fn sent(&mut self, now_ms: u64, ok: bool, r: u32) {
        self.last_ms = Some(now_ms);
        self.forced = false;
        self.next_ms = now_ms
            + if ok {
                spread(self.timeout_ms, 300, 600, r)
            } else {
                spread(MIN_GAP_MS, 1000, 2000, r)
            };
    }

    pub fn next_ms(&self) -> u64 {
        self.next_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_once_then_by_the_timeout_and_forced_after_commands() {
        let mut s = Schedule::new(300, 1_000);
        assert!(s.due(1_000));
        s.sent(1_000, true, 0);
        assert_eq!(s.next_ms(), 1_000 + 90_000);
        assert!(!s.due(90_999));
        assert!(s.due(91_000));
        s.sent(91_000, true, u32::MAX);
        assert!(s.next_ms() > 91_000 + 179_000 && s.next_ms() <= 91_000 + 180_000);
        s.force();
        assert!(!s.due(95_999), "not within 5 s of the last");
        assert!(s.due(96_000));
        s.sent(96_000, false, 1 << 31);
        assert_eq!(s.next_ms(), 96_000 + 7_500);
        assert!(!s.due(103_499));
    }
}

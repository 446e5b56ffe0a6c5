//! Duplicate address detection for rivet's own global IPv6 addresses
//! (RFC 4862 §5.4): each new address is tentative, probed once, and used
//! only when no other node claimed it within a second; one claimed is
//! never used (a previous tenant's machine still up with the address, a
//! mistyped static address in network_data.json). Pure policy over
//! scripted time: the stack sends the probes and hands in what it saw.
//! (The link-local address is the MAC's EUI-64 and is not probed.)

use crate::net::ipv6::fmt_v6;
use alloc::vec::Vec;

/// RetransTimer (RFC 4861 §10), with DupAddrDetectTransmits = 1.
pub const WAIT_MS: u64 = 1_000;
/// Addresses tracked at once: far more than one interface holds.
const MAX_TRACKED: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Tentative { until: u64 },
    Usable,
    Duplicate,
}

#[derive(Debug, Default)]
pub struct Dad {
    tracked: Vec<([u8; 16], State)>,
}

impl Dad {
    /// The addresses configuration holds now: each new one becomes
    /// tentative and is returned, to be probed; ones no longer held are
    /// forgotten (held again later, they are probed again).
    pub fn track(&mut self, held: &[[u8; 16]], now: u64) -> Vec<[u8; 16]> {
        self.tracked.retain(|(a, _)| held.contains(a));
        let mut probe = Vec::new();
        for a in held {
            if self.tracked.len() < MAX_TRACKED && !self.tracked.iter().any(|(t, _)| t == a) {
                self.tracked.push((
                    *a,
                    State::Tentative {
                        until: now + WAIT_MS,
                    },
                ));
                probe.push(*a);
            }
        }
        probe
    }

    pub fn state(&self, a: &[u8; 16]) -> Option<State> {
        self.tracked.iter().find(|(t, _)| t == a).map(|(_, s)| *s)
    }

    pub fn usable(&self, a: &[u8; 16]) -> bool {
        self.state(a) == Some(State::Usable)
    }

    /// Another node claims `target` (its advertisement, or its own probe
    /// for it); whether an address of ours changed state.
    pub fn on_claim(&mut self, target: &[u8; 16]) -> bool {
        let Some((_, state)) = self.tracked.iter_mut().find(|(t, _)| t == target) else {
            return false;
        };
        match *state {
            State::Tentative { .. } => {
                log::error!(
                    "IPv6: {} is in use by another node on the link (duplicate address \
                     detection): rivet will not use it",
                    fmt_v6(target)
                );
                *state = State::Duplicate;
                true
            }
            State::Usable => {
                log::warn!(
                    "IPv6: another node claims {}, which rivet holds",
                    fmt_v6(target)
                );
                false
            }
            State::Duplicate => false,
        }
    }

    /// Tentative addresses whose wait ended become usable; whether any did.
    pub fn poll(&mut self, now: u64) -> bool {
        let mut changed = false;
        for (_, state) in &mut self.tracked {
            if matches!(*state, State::Tentative { until } if now >= until) {
                *state = State::Usable;
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 16] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42];
    const B: [u8; 16] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x43];

    #[test]
    fn an_address_is_used_after_a_silent_second_and_never_when_claimed() {
        let mut dad = Dad::default();
        assert_eq!(dad.track(&[A, B], 5_000), vec![A, B]);
        assert_eq!(
            dad.track(&[A, B], 5_100),
            Vec::<[u8; 16]>::new(),
            "probed once"
        );
        assert!(!dad.poll(5_999) && !dad.usable(&A));
        assert!(dad.on_claim(&B));
        assert!(dad.poll(6_000));
        assert!(dad.usable(&A));
        assert_eq!(dad.state(&B), Some(State::Duplicate));
        assert!(!dad.poll(9_000) && !dad.usable(&B), "a duplicate stays one");
        // A claim on a usable address is a conflict, logged, not a change.
        assert!(!dad.on_claim(&A) && dad.usable(&A));
        // Dropped and held again: probed again.
        assert_eq!(dad.track(&[A], 10_000), Vec::<[u8; 16]>::new());
        assert_eq!(dad.track(&[A, B], 10_000), vec![B]);
        assert_eq!(dad.state(&B), Some(State::Tentative { until: 11_000 }));
    }
}

//! What the provisioning network sends before rivet has an address, and
//! while it resolves a name: frames from the input, delivered to rivet's
//! stack (smoltcp with rivet's DHCP and DNS use) on a scripted clock.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::net::stack::{Addressing, Link, Stack, Wait};
use rivet::net::Transport;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

struct Frames {
    frames: std::collections::VecDeque<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx;

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        f(&mut vec![0u8; len])
    }
}

impl Link for Frames {}

impl Device for Frames {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;
    fn receive(&mut self, _t: Instant) -> Option<(Rx, Tx)> {
        self.frames.pop_front().map(|f| (Rx(f), Tx))
    }
    fn transmit(&mut self, _t: Instant) -> Option<Tx> {
        Some(Tx)
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

struct Clock(u64);

impl Wait for Clock {
    fn now_ms(&mut self) -> u64 {
        self.0
    }
    fn wait(&mut self, ms: u64) {
        self.0 += ms.max(1);
    }
}

fuzz_target!(|data: &[u8]| {
    // Frames, each prefixed by its length (one byte, times 8).
    let mut frames = std::collections::VecDeque::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (usize::from(len) * 8).min(tail.len());
        frames.push_back(tail[..n].to_vec());
        rest = &tail[n..];
    }
    guard::bounded(16 * guard::MIB, || {
        let mut stack = Stack::new(
            Frames { frames },
            Clock(0),
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            Addressing::Dhcp,
            7,
        );
        if stack.wait_for_address(3_000).is_ok() {
            let _ = stack.connect("images.example", 80, 2_000);
        }
    });
});

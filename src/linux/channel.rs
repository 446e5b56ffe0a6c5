//! A bounded channel between rivet's few threads (the disk writer, the
//! image reader): what they used of `std::sync::mpsc::sync_channel` —
//! `send` that waits for room, `try_send`, `recv` that waits for a
//! message, senders that clone, and either side's drop seen by the other
//! as disconnection — as a queue under a mutex and a condition variable.
//! std's version carries its lock-free mpmc machinery, ~20 KB of /init
//! for a handful of messages per MiB.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct State<T> {
    queue: VecDeque<T>,
    /// At least 1 (std's 0, a rendezvous, is not used here).
    cap: usize,
    senders: usize,
    receiver: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn wait<'a>(&self, g: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }
}

pub struct SyncSender<T>(Arc<Shared<T>>);
pub struct Receiver<T>(Arc<Shared<T>>);

/// The receiver is gone (send) or every sender is (recv); a message not
/// delivered comes back.
#[derive(PartialEq, Eq)]
pub struct Disconnected<T>(pub T);

impl<T> std::fmt::Debug for Disconnected<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disconnected")
    }
}

/// A channel holding up to `cap` (at least 1) messages.
pub fn sync_channel<T>(cap: usize) -> (SyncSender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            cap: cap.max(1),
            senders: 1,
            receiver: true,
        }),
        changed: Condvar::new(),
    });
    (SyncSender(shared.clone()), Receiver(shared))
}

impl<T> SyncSender<T> {
    /// Waits for room, then queues `msg`.
    pub fn send(&self, msg: T) -> Result<(), Disconnected<T>> {
        let mut g = self.0.lock();
        loop {
            if !g.receiver {
                return Err(Disconnected(msg));
            }
            if g.queue.len() < g.cap {
                g.queue.push_back(msg);
                self.0.changed.notify_all();
                return Ok(());
            }
            g = self.0.wait(g);
        }
    }

    /// Queues `msg` if there is room now.
    pub fn try_send(&self, msg: T) -> Result<(), Disconnected<T>> {
        let mut g = self.0.lock();
        if !g.receiver || g.queue.len() >= g.cap {
            return Err(Disconnected(msg));
        }
        g.queue.push_back(msg);
        self.0.changed.notify_all();
        Ok(())
    }
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        SyncSender(self.0.clone())
    }
}

impl<T> Drop for SyncSender<T> {
    fn drop(&mut self) {
        self.0.lock().senders -= 1;
        self.0.changed.notify_all();
    }
}

impl<T> Receiver<T> {
    /// The next message, waiting for one; `Err` once the queue is empty
    /// and every sender is gone.
    pub fn recv(&self) -> Result<T, Disconnected<()>> {
        let mut g = self.0.lock();
        loop {
            if let Some(msg) = g.queue.pop_front() {
                self.0.changed.notify_all();
                return Ok(msg);
            }
            if g.senders == 0 {
                return Err(Disconnected(()));
            }
            g = self.0.wait(g);
        }
    }
}

impl<T> Iterator for Receiver<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv().ok()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.receiver = false;
        // Messages nobody will read go now (a buffer, a sender waiting).
        g.queue.clear();
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_in_order_and_a_full_channel_waits() {
        let (tx, rx) = sync_channel::<u32>(2);
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..100 {
                    tx.send(i).unwrap();
                }
            });
            let got: Vec<u32> = rx.collect();
            assert_eq!(got, (0..100).collect::<Vec<_>>());
        });
    }

    #[test]
    fn each_side_sees_the_other_go() {
        let (tx, rx) = sync_channel::<u32>(1);
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        assert_eq!(tx2.try_send(2), Err(Disconnected(2)), "full");
        drop(tx);
        assert_eq!(rx.recv(), Ok(1));
        drop(tx2);
        assert_eq!(rx.recv(), Err(Disconnected(())), "every sender gone");
        let (tx, rx) = sync_channel::<u32>(1);
        tx.send(1).unwrap();
        std::thread::scope(|s| {
            // A sender waiting for room is released when the receiver goes.
            let waiting = s.spawn(|| tx.send(2));
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(rx);
            assert_eq!(waiting.join().unwrap(), Err(Disconnected(2)));
        });
    }
}

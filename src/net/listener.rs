//! Serving HTTP on rivet's stack (the agent API): a pool of listening
//! sockets standing in for a backlog, one HTTP connection state machine per
//! socket, TLS through a record layer, and the handler's deferred answers.

use super::record::{Secure, SecureFactory};
use super::server::{Conn, Event, Handler, Reply};
use super::stack::{Stack, Wait};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

/// Listening sockets for one port. smoltcp has no listen backlog: each
/// socket takes one connection, so the pool keeps a few sockets in Listen
/// at all times, growing up to `max` while connections are busy (or
/// closing) and shrinking back as they end.
pub struct Listener {
    port: u16,
    max: usize,
    slots: Vec<Slot>,
    /// TLS (or another record layer) for every connection, if set.
    secure: Option<SecureFactory>,
    /// Peers whose connections are never closed to make room: the
    /// conductor's address given with [`Listener::keep_for`], and every
    /// peer that has proven itself (see [`Handler::proves`]).
    kept_peers: Vec<IpAddress>,
}

/// How many peers [`Listener::kept_peers`] remembers (the oldest goes).
const KEPT_PEERS: usize = 4;

impl Listener {
    /// Serves every connection through `factory`'s record layer. Call it
    /// before serving: the slots already listening are given one too.
    pub fn secure(&mut self, mut factory: SecureFactory) {
        for slot in &mut self.slots {
            slot.tls = Some(factory());
        }
        self.secure = Some(factory);
    }

    /// Never closes `peer`'s connections to make room (the conductor's
    /// address, where it is known).
    pub fn keep_for(&mut self, peer: IpAddress) {
        keep(&mut self.kept_peers, peer);
    }
}

/// From accepting a connection, or answering its last request, to the
/// next complete request head (TLS handshake included): slow or idle
/// clients give their slot back.
pub const HEAD_DEADLINE_MS: u64 = 10_000;
/// From a complete head to the whole body (bodies are at most 1 MiB).
pub const BODY_DEADLINE_MS: u64 = 120_000;
/// A body from a peer that has not proven itself must keep arriving at
/// this rate (bytes per second, averaged from its head) once
/// [`BODY_GRACE_MS`] have passed: a body trickled to hold a slot is closed
/// long before [`BODY_DEADLINE_MS`]. A conductor on any link sends its
/// commands' bodies (a few KiB) at once.
pub const MIN_BODY_RATE: u64 = 16 * 1024;
pub const BODY_GRACE_MS: u64 = 2_000;

struct Slot {
    handle: SocketHandle,
    conn: Conn,
    /// When the connection was accepted or last answered (None: listening).
    since_ms: Option<u64>,
    /// Requests answered or deferred so far.
    requests: u64,
    /// Bytes for the wire (ciphertext under TLS).
    outbox: Vec<u8>,
    /// A request whose answer the handler deferred.
    waiting: Option<u64>,
    tls: Option<Box<dyn Secure>>,
    /// The closing alert has been queued.
    notified: bool,
    /// When the request whose body is arriving had its head complete, and
    /// the bytes received since (for [`MIN_BODY_RATE`]).
    body_since_ms: Option<u64>,
    body_bytes: u64,
    /// A request on this connection proved its sender.
    proven: bool,
    peer: Option<IpAddress>,
}

impl Slot {
    fn new(handle: SocketHandle, secure: &mut Option<SecureFactory>) -> Slot {
        Slot {
            handle,
            conn: Conn::new(),
            since_ms: None,
            requests: 0,
            outbox: Vec::new(),
            waiting: None,
            tls: secure.as_mut().map(|f| f()),
            notified: false,
            body_since_ms: None,
            body_bytes: 0,
            proven: false,
            peer: None,
        }
    }

    /// Feeds received HTTP bytes; the handler bounds each body and says
    /// whether a head proves its sender.
    fn feed(&mut self, data: &[u8], handler: &mut dyn Handler) -> Option<Event> {
        let mut proven = false;
        let event = self.conn.feed_limited(data, &mut |m, t| {
            proven |= handler.proves(m, t);
            handler.body_limit(m, t)
        });
        self.proven |= proven;
        event
    }

    /// Whether the body in flight arrives too slowly, at `now`.
    fn body_too_slow(&self, now: u64) -> Option<u64> {
        let since = self.body_since_ms?;
        let elapsed = now.saturating_sub(since);
        let rate = self.body_bytes.saturating_mul(1000) / elapsed.max(1);
        (!self.proven && elapsed > BODY_GRACE_MS && rate < MIN_BODY_RATE).then_some(rate)
    }

    /// Sends HTTP bytes, through the record layer if there is one.
    fn emit(&mut self, bytes: &[u8]) {
        match &mut self.tls {
            Some(tls) => {
                tls.send(bytes);
                tls.outgoing(&mut self.outbox);
            }
            None => self.outbox.extend_from_slice(bytes),
        }
    }

    /// Bytes from the wire → HTTP bytes (decrypted under TLS).
    fn take_in(&mut self, wire: &[u8]) -> Result<Vec<u8>, String> {
        match &mut self.tls {
            Some(tls) => {
                let r = tls.receive(wire);
                // Handshake replies, or the alert that explains a failure.
                tls.outgoing(&mut self.outbox);
                r?;
                let mut plain = Vec::new();
                tls.plaintext(&mut plain);
                Ok(plain)
            }
            None => Ok(wire.to_vec()),
        }
    }

    /// Answers `event` and any pipelined requests after it, until one is
    /// deferred or the input runs out.
    fn answer(&mut self, mut event: Option<Event>, handler: &mut dyn Handler) {
        while let Some(e) = event {
            match e {
                Event::Request(req) => {
                    self.requests += 1;
                    match handler.handle(&req) {
                        Reply::Now(resp) => {
                            let bytes = self.conn.respond(&resp);
                            self.emit(&bytes);
                            event = self.feed(&[], handler);
                        }
                        Reply::Later(ticket) => {
                            self.waiting = Some(ticket);
                            return;
                        }
                    }
                }
                Event::Reject(bytes) => {
                    self.emit(&bytes);
                    return;
                }
            }
        }
    }
}

impl<D: Device + super::stack::Link, W: Wait> Stack<D, W> {
    /// Listens on `port` with up to `max` concurrent connections.
    pub fn listen(&mut self, port: u16, max: usize) -> Listener {
        let mut l = Listener {
            port,
            max: max.max(1),
            slots: Vec::new(),
            secure: None,
            kept_peers: Vec::new(),
        };
        for _ in 0..l.max.min(4) {
            self.add_listening(&mut l);
        }
        l
    }

    fn add_listening(&mut self, l: &mut Listener) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0u8; 64 * 1024]),
        );
        if let Err(e) = socket.listen(l.port) {
            log::warn!("cannot listen on port {}: {e:?}", l.port);
        }
        let handle = self.sockets.add(socket);
        l.slots.push(Slot::new(handle, &mut l.secure));
    }

    /// Services the listener without blocking: accepts, reads, answers
    /// complete requests with `handler` (or later, if it defers them),
    /// writes, closes finished connections.
    pub fn serve(&mut self, l: &mut Listener, handler: &mut dyn Handler) {
        self.poll();
        let now = self.waiter.now_ms();
        let mut chunk = [0u8; 4096];
        for slot in l.slots.iter_mut() {
            let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            // Both sides have closed: free the socket now rather than hold
            // it in TIME-WAIT.
            if socket.state() == tcp::State::TimeWait {
                socket.abort();
            }
            if !socket.is_open() {
                slot.waiting = None;
                continue;
            }
            if socket.state() == tcp::State::Listen {
                continue;
            }
            let since = *slot.since_ms.get_or_insert(now);
            if slot.peer.is_none() {
                slot.peer = socket.remote_endpoint().map(|e| e.addr);
            }
            if let Some(rate) = slot.body_too_slow(now) {
                log::debug!(
                    "agent API: closing {}: request body arriving at {rate} B/s (at least {} B/s)",
                    peer(socket),
                    MIN_BODY_RATE
                );
                socket.abort();
                continue;
            }
            let deadline = if slot.conn.awaiting_head() {
                HEAD_DEADLINE_MS
            } else {
                BODY_DEADLINE_MS
            };
            if slot.waiting.is_none()
                && slot.outbox.is_empty()
                && now.saturating_sub(since) > deadline
            {
                log::debug!(
                    "agent API: closing {}: no complete request within {} s",
                    peer(socket),
                    deadline / 1000
                );
                socket.abort();
                continue;
            }
            let answered = slot.requests;
            if let Some(ticket) = slot.waiting {
                if let Some(resp) = handler.resume(ticket) {
                    slot.waiting = None;
                    let bytes = slot.conn.respond(&resp);
                    slot.emit(&bytes);
                    let next = slot.feed(&[], handler);
                    slot.answer(next, handler);
                }
            }
            while slot.waiting.is_none() && socket.can_recv() && slot.outbox.len() < 256 * 1024 {
                let n = match socket.recv_slice(&mut chunk) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                let plain = match slot.take_in(&chunk[..n]) {
                    Ok(p) => p,
                    Err(e) => {
                        log::warn!("agent API: TLS from {}: {e}", peer(socket));
                        // The alert explaining why goes out before the FIN.
                        let _ = socket.send_slice(&slot.outbox);
                        slot.outbox.clear();
                        slot.notified = true;
                        socket.close();
                        break;
                    }
                };
                if slot.body_since_ms.is_some() {
                    slot.body_bytes += plain.len() as u64;
                }
                // After a rejection the rest of the request is read and
                // dropped, so the client sees the answer, not a reset.
                let event = slot.feed(&plain, handler);
                slot.answer(event, handler);
            }
            if slot.waiting.is_none() && !slot.conn.awaiting_head() {
                slot.body_since_ms.get_or_insert(now);
            } else {
                slot.body_since_ms = None;
                slot.body_bytes = 0;
            }
            if slot.proven {
                if let Some(peer) = slot.peer {
                    if !l.kept_peers.contains(&peer) {
                        log::debug!(
                            "agent API: {peer} proved itself; its connections keep their slots"
                        );
                    }
                    keep(&mut l.kept_peers, peer);
                }
            }
            if slot.requests != answered {
                slot.since_ms = Some(now);
            }
            if !slot.outbox.is_empty() && socket.can_send() {
                if let Ok(n) = socket.send_slice(&slot.outbox) {
                    slot.outbox.drain(..n);
                }
            }
            if slot.outbox.is_empty()
                && slot.waiting.is_none()
                && (slot.conn.closing() || !socket.may_recv())
                && socket.may_send()
            {
                match &mut slot.tls {
                    // close_notify first, so TLS clients see a clean end.
                    Some(tls) if !slot.notified => {
                        tls.close();
                        tls.outgoing(&mut slot.outbox);
                        slot.notified = true;
                    }
                    _ => socket.close(),
                }
            }
        }
        // Like a listen backlog: keep SPARE sockets listening (closed ones
        // are re-armed first), grow up to `max`, drop the surplus.
        const SPARE: usize = 4;
        let is_listening = |s: &tcp::Socket| s.state() == tcp::State::Listen;
        let mut listening = l
            .slots
            .iter()
            .filter(|s| is_listening(self.sockets.get(s.handle)))
            .count();
        // Every slot taken: the worst connection makes room, so the
        // conductor can always connect. Worst is the one that has gone
        // longest without progress (accepted or answered and idle since,
        // or with a body arriving since its head): never the newcomer that
        // has not had time to send its request; never a connection that
        // proved itself, nor one from a kept peer (the conductor's
        // address), nor one being answered.
        if listening == 0 && l.slots.len() >= l.max {
            let victim = l
                .slots
                .iter()
                .filter(|s| s.waiting.is_none() && s.outbox.is_empty() && !s.proven)
                .filter(|s| !s.peer.is_some_and(|p| l.kept_peers.contains(&p)))
                .filter(|s| self.sockets.get::<tcp::Socket>(s.handle).is_open())
                .min_by_key(|s| s.body_since_ms.or(s.since_ms).unwrap_or(0));
            if let Some(worst) = victim {
                let socket = self.sockets.get_mut::<tcp::Socket>(worst.handle);
                log::debug!(
                    "agent API: all {} connections busy; closing the {} ({})",
                    l.max,
                    if worst.body_since_ms.is_some() {
                        "oldest unfinished request"
                    } else {
                        "oldest idle one"
                    },
                    peer(socket)
                );
                socket.abort();
            }
        }
        // Send the resets of aborted connections now: re-arming a socket
        // below (listen) forgets its peer, and the RST with it.
        self.poll();
        let mut kept = Vec::new();
        for mut slot in l.slots.drain(..) {
            let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            if socket.is_open() {
                kept.push(slot);
            } else if listening < SPARE {
                slot = Slot::new(slot.handle, &mut l.secure);
                let _ = socket.listen(l.port);
                listening += 1;
                kept.push(slot);
            } else {
                self.sockets.remove(slot.handle);
            }
        }
        l.slots = kept;
        while listening < SPARE && l.slots.len() < l.max {
            self.add_listening(l);
            listening += 1;
        }
        self.poll();
    }

    /// Waits up to `ms` for network activity (for serve loops).
    pub fn idle(&mut self, ms: u64) {
        self.turn(ms);
    }
}

/// Remembers `peer` among the kept peers (the oldest goes past the bound).
/// The connection's peer as `address:port`, for the log.
fn peer(socket: &tcp::Socket) -> String {
    socket
        .remote_endpoint()
        .map(|e| alloc::format!("{e}"))
        .unwrap_or_else(|| "a closed connection".into())
}

fn keep(peers: &mut Vec<IpAddress>, peer: IpAddress) {
    if !peers.contains(&peer) {
        if peers.len() == KEPT_PEERS {
            peers.remove(0);
        }
        peers.push(peer);
    }
}

//! Serving HTTP on rivet's stack (the agent API): a pool of listening
//! sockets standing in for a backlog, one HTTP connection state machine per
//! socket, TLS through a record layer, and the handler's deferred answers.

use super::secure::{Secure, SecureFactory};
use super::server::{Conn, Event, Handler, Reply};
use super::stack::{Stack, Wait};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::Device;
use smoltcp::socket::tcp;

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
}

impl Listener {
    /// Serves every connection through `factory`'s record layer. Call it
    /// before serving: the slots already listening are given one too.
    pub fn secure(&mut self, mut factory: SecureFactory) {
        for slot in &mut self.slots {
            slot.tls = Some(factory());
        }
        self.secure = Some(factory);
    }
}

/// From accepting a connection, or answering its last request, to the
/// next complete request head (TLS handshake included): slow or idle
/// clients give their slot back.
pub const HEAD_DEADLINE_MS: u64 = 10_000;
/// From a complete head to the whole body (bodies are at most 1 MiB).
pub const BODY_DEADLINE_MS: u64 = 120_000;

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
        }
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
                            event = self
                                .conn
                                .feed_limited(&[], &mut |m, t| handler.body_limit(m, t));
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

impl<D: Device, W: Wait> Stack<D, W> {
    /// Listens on `port` with up to `max` concurrent connections.
    pub fn listen(&mut self, port: u16, max: usize) -> Listener {
        let mut l = Listener {
            port,
            max: max.max(1),
            slots: Vec::new(),
            secure: None,
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
                    "agent API: closing {:?}: no complete request within {} s",
                    socket.remote_endpoint(),
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
                    let next = slot
                        .conn
                        .feed_limited(&[], &mut |m, t| handler.body_limit(m, t));
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
                        log::warn!("agent API: TLS from {:?}: {e}", socket.remote_endpoint());
                        // The alert explaining why goes out before the FIN.
                        let _ = socket.send_slice(&slot.outbox);
                        slot.outbox.clear();
                        slot.notified = true;
                        socket.close();
                        break;
                    }
                };
                // After a rejection the rest of the request is read and
                // dropped, so the client sees the answer, not a reset.
                let event = slot
                    .conn
                    .feed_limited(&plain, &mut |m, t| handler.body_limit(m, t));
                slot.answer(event, handler);
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
        // Every slot taken: the oldest idle connection makes room, so the
        // conductor can always connect (an idle client can hold no slot
        // the conductor needs).
        if listening == 0 && l.slots.len() >= l.max {
            let idle = l
                .slots
                .iter()
                .filter(|s| s.waiting.is_none() && s.outbox.is_empty() && s.conn.awaiting_head())
                .filter(|s| self.sockets.get::<tcp::Socket>(s.handle).is_open())
                .min_by_key(|s| s.since_ms.unwrap_or(0));
            if let Some(oldest) = idle {
                let socket = self.sockets.get_mut::<tcp::Socket>(oldest.handle);
                log::debug!(
                    "agent API: all {} connections busy; closing the oldest idle one ({:?})",
                    l.max,
                    socket.remote_endpoint()
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

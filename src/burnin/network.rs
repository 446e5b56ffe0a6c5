//! Network burn-in between two nodes (fio's `net` engine in
//! ironic-python-agent, port 9000): the writer listens and streams a
//! positional pattern for the runtime, then ends the connection; the
//! reader connects (retrying until its partner listens), reads to the end
//! and checks every byte. Then the two swap roles, so each link is loaded
//! both ways. Over any [`Transport`]: rivet's own TCP in the agent.

use crate::net::{NetErrorKind, Transport};
use alloc::format;
use alloc::string::String;

/// fio's port for its network job, kept so firewalls set up for the real
/// agent's burn-in pass rivet's.
pub const PORT: u16 = 9000;
/// The stream's seed: both ends compute the same bytes.
const SEED: u64 = 0x7269_7665_7462_7572;
/// Bytes per send.
const CHUNK: usize = 64 * 1024;
/// A connection attempt that gets no answer: 10 s, then again.
const CONNECT_MS: u64 = 10_000;
/// The reader waits between attempts while its partner is not listening
/// (fio's reader in the real agent: 30 s).
const RETRY_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "writer" => Ok(Role::Writer),
            "reader" => Ok(Role::Reader),
            other => Err(format!(
                "fio (network) found an unknown role: {other} (writer or reader)"
            )),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

/// One direction's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub role: Role,
    pub bytes: u64,
    pub ms: u64,
}

impl Figures {
    pub fn mb_per_s(&self) -> f64 {
        super::mb_per_s(self.bytes, self.ms)
    }
}

impl core::fmt::Display for Figures {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}: {} MiB in {} s, {} MB/s",
            self.role.name(),
            self.bytes >> 20,
            crate::stream::Fixed(self.ms as f64 / 1000.0, 1),
            crate::stream::Fixed(self.mb_per_s(), 1)
        )
    }
}

/// Listens on [`PORT`] until a reader connects (up to `wait_ms`), then
/// streams for `runtime_ms`.
pub fn write(t: &mut impl Transport, runtime_ms: u64, wait_ms: u64) -> Result<Figures, String> {
    let conn = t
        .accept(PORT, wait_ms)
        .map_err(|e| format!("fio (network) writer: no reader: {e}"))?;
    let start = t.now_ms();
    let mut buf = alloc::vec![0u8; CHUNK];
    let mut sent = 0u64;
    while t.now_ms() < start + runtime_ms {
        super::fill(&mut buf, SEED, sent);
        if let Err(e) = t.send(conn, &buf, CONNECT_MS) {
            t.close(conn);
            return Err(format!("fio (network) writer: after {sent} bytes: {e}"));
        }
        sent += CHUNK as u64;
    }
    t.finish(conn, CONNECT_MS)
        .map_err(|e| format!("fio (network) writer: ending the stream: {e}"))?;
    Ok(Figures {
        role: Role::Writer,
        bytes: sent,
        ms: t.now_ms() - start,
    })
}

/// Connects to `partner`'s [`PORT`] (retrying for up to `wait_ms`) and
/// reads the stream to its end, checking each byte.
pub fn read(t: &mut impl Transport, partner: &str, wait_ms: u64) -> Result<Figures, String> {
    let give_up = t.now_ms() + wait_ms;
    let conn = loop {
        match t.connect(partner, PORT, CONNECT_MS) {
            Ok(c) => break c,
            Err(e)
                if matches!(e.kind, NetErrorKind::Refused | NetErrorKind::Timeout)
                    && t.now_ms() < give_up =>
            {
                t.sleep_ms(RETRY_MS)
            }
            Err(e) => return Err(format!("fio (network) reader: {partner}:{PORT}: {e}")),
        }
    };
    let start = t.now_ms();
    let mut buf = alloc::vec![0u8; CHUNK];
    let mut got = 0u64;
    let outcome = loop {
        match t.recv(conn, &mut buf, CONNECT_MS) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Some((i, found, want)) = super::mismatch(&buf[..n], SEED, got) {
                    break Err(format!(
                        "fio (network) reader: byte {} from {partner} was {found:#04x}, \
                         {want:#04x} was sent",
                        got + i as u64
                    ));
                }
                got += n as u64;
            }
            Err(e) => {
                break Err(format!(
                    "fio (network) reader: {partner}:{PORT} after {got} bytes: {e}"
                ))
            }
        }
    };
    t.close(conn);
    outcome?;
    if got == 0 {
        return Err(format!("fio (network) reader: {partner} sent nothing"));
    }
    Ok(Figures {
        role: Role::Reader,
        bytes: got,
        ms: t.now_ms() - start,
    })
}

/// Both directions, `role` first, then swapped: the real agent's order.
pub fn pair<T: Transport>(
    t: &mut T,
    role: Role,
    partner: &str,
    runtime_ms: u64,
    wait_ms: u64,
) -> Result<[Figures; 2], String> {
    let one = |t: &mut T, r| match r {
        Role::Writer => write(t, runtime_ms, wait_ms),
        Role::Reader => read(t, partner, wait_ms),
    };
    let first = one(t, role)?;
    let other = match role {
        Role::Writer => Role::Reader,
        Role::Reader => Role::Writer,
    };
    Ok([first, one(t, other)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ConnId, NetError};
    use alloc::collections::VecDeque;

    /// Both ends of one connection in one process: what the writer sends
    /// the reader receives, after it; each send takes 100 ms.
    #[derive(Default)]
    struct Wire {
        now: u64,
        bytes: VecDeque<u8>,
        ended: bool,
        refusals: u32,
        corrupt_at: Option<usize>,
    }
    impl Transport for Wire {
        fn now_ms(&mut self) -> u64 {
            self.now
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.now += ms;
        }
        fn connect(&mut self, host: &str, port: u16, _: u64) -> Result<ConnId, NetError> {
            assert_eq!((host, port), ("10.0.0.2", PORT));
            if self.refusals > 0 {
                self.refusals -= 1;
                return Err(NetError::new(NetErrorKind::Refused, "refused"));
            }
            Ok(ConnId(1))
        }
        fn accept(&mut self, port: u16, _: u64) -> Result<ConnId, NetError> {
            assert_eq!(port, PORT);
            Ok(ConnId(1))
        }
        fn send(&mut self, _: ConnId, data: &[u8], _: u64) -> Result<(), NetError> {
            self.now += 100;
            self.bytes.extend(data);
            if let Some(at) = self.corrupt_at.filter(|&a| a < self.bytes.len()) {
                self.bytes[at] ^= 1;
                self.corrupt_at = None;
            }
            Ok(())
        }
        fn recv(&mut self, _: ConnId, buf: &mut [u8], _: u64) -> Result<usize, NetError> {
            if self.bytes.is_empty() {
                return if self.ended {
                    Ok(0)
                } else {
                    Err(NetError::new(NetErrorKind::Reset, "connection reset"))
                };
            }
            let n = buf.len().min(self.bytes.len()).min(1000);
            for (i, b) in self.bytes.drain(..n).enumerate() {
                buf[i] = b;
            }
            Ok(n)
        }
        fn close(&mut self, _: ConnId) {}
        fn finish(&mut self, _: ConnId, _: u64) -> Result<(), NetError> {
            self.ended = true;
            Ok(())
        }
    }

    #[test]
    fn the_reader_checks_every_byte_the_writer_streamed_for_the_runtime() {
        let mut w = Wire {
            refusals: 3,
            ..Wire::default()
        };
        let sent = write(&mut w, 2_000, 1_000).unwrap();
        assert_eq!(sent.bytes, 20 * CHUNK as u64, "a send per 100 ms for 2 s");
        let got = read(&mut w, "10.0.0.2", 10_000).unwrap();
        assert_eq!((got.role, got.bytes), (Role::Reader, sent.bytes));
        assert!(
            sent.to_string().starts_with("writer: 1 MiB in 2.0 s"),
            "{sent}"
        );
    }

    #[test]
    fn a_corrupted_byte_a_cut_stream_and_no_partner_fail_by_name() {
        let mut w = Wire {
            corrupt_at: Some(70_000),
            ..Wire::default()
        };
        write(&mut w, 1_000, 1_000).unwrap();
        let err = read(&mut w, "10.0.0.2", 1_000).unwrap_err();
        assert!(err.contains("byte 70000 from 10.0.0.2"), "{err}");
        // The writer vanished without ending the stream.
        let mut w = Wire::default();
        w.bytes.extend([0u8; 10]);
        let err = read(&mut w, "10.0.0.2", 1_000).unwrap_err();
        assert!(err.contains("byte 0"), "{err}");
        let mut w = Wire::default();
        let err = read(&mut w, "10.0.0.2", 1_000).unwrap_err();
        assert!(err.contains("after 0 bytes: connection reset"), "{err}");
        // A partner that never listens: retried until the wait is over.
        let mut w = Wire {
            refusals: u32::MAX,
            ..Wire::default()
        };
        let err = read(&mut w, "10.0.0.2", 5_000).unwrap_err();
        assert!(err.contains("refused") && w.now >= 5_000, "{err}");
        assert!(Role::parse("both")
            .unwrap_err()
            .contains("unknown role: both"));
    }

    #[test]
    fn a_pair_runs_its_role_then_the_other() {
        let mut w = Wire::default();
        // The writer's half streams into the wire; the reader half reads it.
        let [a, b] = pair(&mut w, Role::Writer, "10.0.0.2", 500, 1_000).unwrap();
        assert_eq!((a.role, b.role), (Role::Writer, Role::Reader));
        assert_eq!(a.bytes, b.bytes);
    }
}

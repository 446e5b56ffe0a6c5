//! A small HTTP/1.1 server: per connection, a state machine that turns
//! received bytes into requests (bounded head and body, keep-alive,
//! pipelining) and takes the responses to send. No I/O here: the network
//! stack feeds it (see `Stack::serve`), tests feed it literal bytes.

use crate::wire::http::{self, RequestHead};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Largest request body accepted (a deploy command's JSON is far smaller).
pub const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// A query parameter's value, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(&self.query, name)
    }
}

/// The first `name=` parameter of a query string, `%XX` and `+` decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` and `+` in a query value.
fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

/// A handler's answer: now, or later for requests that wait on work in
/// progress (the agent API's `wait=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Now(Response),
    /// Ask [`Handler::resume`] with this ticket until it answers.
    Later(u64),
}

/// Answers requests; see `Stack::serve`.
pub trait Handler {
    fn handle(&mut self, request: &Request) -> Reply;
    /// The largest body accepted for a request, decided from its method and
    /// target (path and query) before the body is read.
    fn body_limit(&mut self, _method: &str, _target: &str) -> usize {
        MAX_BODY
    }
    /// The answer for a deferred request, once there is one.
    fn resume(&mut self, _ticket: u64) -> Option<Response> {
        None
    }
    /// Whether a request head proves its sender (the agent API: a valid
    /// agent token). A proven connection, and its peer's address from then
    /// on, keep their slot when the server is full.
    fn proves(&mut self, _method: &str, _target: &str) -> bool {
        false
    }
}

impl<F: FnMut(&Request) -> Response> Handler for F {
    fn handle(&mut self, request: &Request) -> Reply {
        Reply::Now(self(request))
    }
}

/// What the connection wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete request to answer.
    Request(Request),
    /// A malformed or oversized request: send these bytes, then close.
    Reject(Vec<u8>),
}

#[derive(Default)]
pub struct Conn {
    buf: Vec<u8>,
    /// The head of a request whose body is still arriving.
    head: Option<RequestHead>,
    keep_alive: bool,
    closing: bool,
}

fn reject(status: u16, why: &str) -> Event {
    let body =
        alloc::format!("{{\"faultcode\": \"Client\", \"faultstring\": \"{status}: {why}\"}}");
    Event::Reject(http::response_bytes(
        status,
        "application/json",
        body.as_bytes(),
        false,
    ))
}

impl Conn {
    pub fn new() -> Conn {
        Conn::default()
    }

    /// Whether the connection should be closed once output is sent.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// No request head is complete yet (a new or idle connection).
    pub fn awaiting_head(&self) -> bool {
        self.head.is_none()
    }

    /// Adds received bytes; returns the next event, if a request is complete.
    /// Call again with an empty slice after answering, for pipelined requests.
    pub fn feed(&mut self, data: &[u8]) -> Option<Event> {
        self.feed_limited(data, &mut |_, _| MAX_BODY)
    }

    /// As [`Conn::feed`], with the body limit `limit` gives for a request's
    /// method and target.
    pub fn feed_limited(
        &mut self,
        data: &[u8],
        limit: &mut dyn FnMut(&str, &str) -> usize,
    ) -> Option<Event> {
        if self.closing {
            return None;
        }
        self.buf.extend_from_slice(data);
        if self.head.is_none() {
            match RequestHead::parse(&self.buf) {
                Ok(h) => self.head = Some(h),
                Err(http::Error::Incomplete) => return None,
                Err(http::Error::HeadTooLarge) => {
                    self.closing = true;
                    return Some(reject(431, "request head too large"));
                }
                Err(_) => {
                    self.closing = true;
                    return Some(reject(400, "malformed request"));
                }
            }
        }
        let head = self.head.as_ref().expect("set above");
        if head.header("transfer-encoding").is_some() {
            self.closing = true;
            return Some(reject(501, "chunked request bodies are not supported"));
        }
        let lengths = head.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let length = match http::content_length(lengths) {
            Ok(n) => n.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            Err(_) => {
                self.closing = true;
                return Some(reject(400, "bad or conflicting Content-Length"));
            }
        };
        if length > limit(&head.method, &head.target) {
            self.closing = true;
            return Some(reject(413, "request body too large"));
        }
        let total = head.head_len + length;
        if self.buf.len() < total {
            return None;
        }
        let head = self.head.take().expect("set above");
        let body = self.buf[head.head_len..total].to_vec();
        self.buf.drain(..total);
        self.keep_alive = head.keep_alive();
        if !self.keep_alive {
            self.closing = true;
        }
        let (path, query) = match head.target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (head.target.clone(), String::new()),
        };
        Some(Event::Request(Request {
            method: head.method,
            path,
            query,
            headers: head.headers,
            body,
        }))
    }

    /// The bytes to send for `response` to the last request.
    pub fn respond(&self, response: &Response) -> Vec<u8> {
        http::response_bytes(
            response.status,
            response.content_type,
            &response.body,
            self.keep_alive && !self.closing,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn pipelined_keep_alive_requests_in_pieces() {
        let mut c = Conn::new();
        let wire = b"GET /v1/status HTTP/1.1\r\nHost: a\r\n\r\nPOST /v1/commands/?wait=true&agent_token=t HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n\r\n{\"name\": \"x\"}";
        let mut events = vec![];
        for piece in wire.chunks(5) {
            let mut e = c.feed(piece);
            while let Some(ev) = e {
                events.push(ev);
                e = c.feed(&[]);
            }
        }
        assert_eq!(events.len(), 2);
        let Event::Request(first) = &events[0] else {
            panic!()
        };
        assert_eq!(
            (first.method.as_str(), first.path.as_str()),
            ("GET", "/v1/status")
        );
        let Event::Request(second) = &events[1] else {
            panic!()
        };
        assert_eq!(second.path, "/v1/commands/");
        assert_eq!(second.query_param("agent_token").as_deref(), Some("t"));
        assert_eq!(second.query_param("wait").as_deref(), Some("true"));
        assert_eq!(
            query_param("a=1&agent_token=x%2By+z%zz&b", "agent_token").as_deref(),
            Some("x+y z%zz")
        );
        assert_eq!(query_param("b&a=1", "b").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "b"), None);
        assert_eq!(second.body, b"{\"name\": \"x\"}");
        assert!(!c.closing());
        let bytes = c.respond(&Response::json(200, "{}"));
        assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(bytes.windows(22).any(|w| w == b"Connection: keep-alive"));
    }

    #[test]
    fn bounds_and_garbage_are_refused_then_closed() {
        let mut c = Conn::new();
        let Some(Event::Reject(r)) = c.feed(b"NOT HTTP AT ALL\r\n\r\n") else {
            panic!()
        };
        assert!(r.starts_with(b"HTTP/1.1 400"));
        assert!(c.closing());

        let mut c = Conn::new();
        let big = alloc::format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let Some(Event::Reject(r)) = c.feed(big.as_bytes()) else {
            panic!()
        };
        assert!(r.starts_with(b"HTTP/1.1 413"));

        let mut c = Conn::new();
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        head.extend(vec![b'a'; http::MAX_HEAD]);
        let Some(Event::Reject(r)) = c.feed(&head) else {
            panic!()
        };
        assert!(r.starts_with(b"HTTP/1.1 431"));

        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\nab",
            // Which one frames the body? Smuggling starts here: refuse.
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\nab",
        ] {
            let mut c = Conn::new();
            let Some(Event::Reject(r)) = c.feed(bad) else {
                panic!("{}", String::from_utf8_lossy(bad))
            };
            assert!(
                r.starts_with(b"HTTP/1.1 400"),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(c.closing());
        }
    }

    #[test]
    fn http10_and_connection_close_end_the_connection() {
        let mut c = Conn::new();
        assert!(matches!(
            c.feed(b"GET / HTTP/1.0\r\n\r\n"),
            Some(Event::Request(_))
        ));
        assert!(c.closing());
        assert!(c
            .respond(&Response::json(200, "{}"))
            .windows(17)
            .any(|w| w == b"Connection: close"));
        let mut c = Conn::new();
        assert!(matches!(
            c.feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            Some(Event::Request(_))
        ));
        assert!(c.closing());
    }
}

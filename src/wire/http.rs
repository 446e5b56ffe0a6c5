//! HTTP/1.1 message framing: request heads out, response heads in (parsed
//! by httparse, bounded), and the chunked transfer coding. No I/O here.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Largest response head rivet accepts (status line + headers).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The head is not complete yet: read more.
    Incomplete,
    /// The head exceeds [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers.
    HeadTooLarge,
    /// Malformed status line or header (httparse's reason).
    BadHead(&'static str),
    BadContentLength,
    BadChunk,
    /// A chunk-size line (extensions included) longer than
    /// [`MAX_CHUNK_LINE`], or trailers longer than [`MAX_TRAILERS`]: framing
    /// that never ends would otherwise count no body bytes and never stop.
    ChunkFramingTooLarge,
    /// Transfer-Encoding other than chunked.
    UnsupportedEncoding(String),
    /// More than [`MAX_INTERIM`] interim (1xx) heads before the final one:
    /// a server sending `100 Continue` for ever would hold the request.
    TooManyInterim,
}

/// Interim (1xx) heads accepted before a final response: servers send one
/// `100 Continue`, perhaps a `103 Early Hints`.
pub const MAX_INTERIM: u32 = 8;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Incomplete => f.write_str("HTTP head incomplete"),
            Error::HeadTooLarge => write!(
                f,
                "HTTP response head larger than {MAX_HEAD} bytes or {MAX_HEADERS} headers"
            ),
            Error::BadHead(why) => write!(f, "malformed HTTP response head: {why}"),
            Error::BadContentLength => f.write_str("malformed or conflicting Content-Length"),
            Error::BadChunk => f.write_str("malformed chunked encoding"),
            Error::TooManyInterim => write!(
                f,
                "more than {MAX_INTERIM} interim (1xx) responses before the final one"
            ),
            Error::ChunkFramingTooLarge => write!(
                f,
                "chunked encoding: a chunk line longer than {MAX_CHUNK_LINE} bytes or trailers longer than {MAX_TRAILERS}"
            ),
            Error::UnsupportedEncoding(e) => write!(f, "unsupported Transfer-Encoding '{e}'"),
        }
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
    /// No body (HEAD, 204, 304).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Bytes the head took (the body starts after them).
    pub head_len: usize,
}

impl Response {
    /// The final response head at the start of `buf`, after dropping any
    /// interim 1xx heads (`100 Continue`, `103 Early Hints`) from `buf`;
    /// `None` while the head is incomplete. 101 is final: rivet never asks
    /// to switch protocols.
    /// `interim` counts the interim heads dropped so far for this request
    /// (keep it across calls): past [`MAX_INTERIM`] the response is refused.
    pub fn parse_final(buf: &mut Vec<u8>, interim: &mut u32) -> Result<Option<Response>, Error> {
        loop {
            match Response::parse(buf) {
                Ok(r) if (100..200).contains(&r.status) && r.status != 101 => {
                    *interim += 1;
                    if *interim > MAX_INTERIM {
                        return Err(Error::TooManyInterim);
                    }
                    buf.drain(..r.head_len);
                }
                Ok(r) => return Ok(Some(r)),
                Err(Error::Incomplete) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses a response head from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Response, Error> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                if head_len > MAX_HEAD {
                    return Err(Error::HeadTooLarge);
                }
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                Ok(Response {
                    status: r.code.unwrap_or(0),
                    reason: r.reason.unwrap_or("").to_string(),
                    headers,
                    head_len,
                })
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(Error::HeadTooLarge),
            Ok(httparse::Status::Partial) => Err(Error::Incomplete),
            Err(httparse::Error::TooManyHeaders) => Err(Error::HeadTooLarge),
            Err(e) => Err(Error::BadHead(match e {
                httparse::Error::Status => "bad status code",
                httparse::Error::Version => "not HTTP/1.x",
                httparse::Error::HeaderName => "bad header name",
                httparse::Error::HeaderValue => "bad header value",
                httparse::Error::NewLine => "bad line ending",
                httparse::Error::Token => "bad token",
                _ => "unparseable",
            })),
        }
    }

    /// The body framing per RFC 9112 §6.3, for a response to `method`.
    pub fn framing(&self, method: &str) -> Result<Framing, Error> {
        if method == "HEAD"
            || self.status == 204
            || self.status == 304
            || (100..200).contains(&self.status)
        {
            return Ok(Framing::None);
        }
        if let Some(te) = self.header("transfer-encoding") {
            let last = te
                .rsplit(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            return if last == "chunked" {
                Ok(Framing::Chunked)
            } else {
                Err(Error::UnsupportedEncoding(te.to_string()))
            };
        }
        Ok(
            content_length(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))?
                .map(Framing::Length)
                .unwrap_or(Framing::Close),
        )
    }
}

/// The one Content-Length among `headers` (lower-case names): digits only
/// (RFC 9110 8.6: no sign, no spaces inside); several that differ are an
/// error (RFC 9112 6.3), as is one that does not parse.
pub fn content_length<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Option<u64>, Error> {
    let mut length: Option<u64> = None;
    for (name, value) in headers {
        if name != "content-length" {
            continue;
        }
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadContentLength);
        }
        let v: u64 = value.parse().map_err(|_| Error::BadContentLength)?;
        if length.is_some_and(|l| l != v) {
            return Err(Error::BadContentLength);
        }
        length = Some(v);
    }
    Ok(length)
}

/// Writes a request head. `headers` are added after Host.
pub fn request_head(method: &str, target: &str, host: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for part in [method, " ", target, " HTTP/1.1\r\nHost: ", host, "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    for (name, value) in headers {
        for part in [*name, ": ", *value, "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Longest chunk-size line accepted, extensions included.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Incremental decoder of the chunked transfer coding. Feed it bytes; it
/// says which of them are body data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
    size_digits: u32,
    /// Framing bytes since the last data byte (a size line, or trailers).
    framing: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of a chunk size (value so far).
    Size(u64),
    /// Skipping a chunk extension up to CR.
    Extension(u64),
    /// Expecting LF after the size line.
    SizeLf(u64),
    /// Inside chunk data, bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last (zero) chunk: trailer lines until an empty one.
    Trailer {
        line_empty: bool,
    },
    TrailerLf {
        line_empty: bool,
    },
    Done,
}

/// What one step of decoding found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `n` bytes of input were framing, not data.
    Skip(usize),
    /// The next `n` bytes of input are body data.
    Data(usize),
    /// The body is complete after consuming `n` more bytes.
    End(usize),
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked {
            state: ChunkState::Size(0),
            size_digits: 0,
            framing: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from the start of `input`.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, Error> {
        use ChunkState::*;
        if let Data(left) = self.state {
            let n = (left.min(input.len() as u64)) as usize;
            self.state = if left == n as u64 {
                DataCr
            } else {
                Data(left - n as u64)
            };
            return Ok(Step::Data(n));
        }
        let mut used = 0;
        for &b in input {
            used += 1;
            self.framing += 1;
            let bound = match self.state {
                Trailer { .. } | TrailerLf { .. } => MAX_TRAILERS,
                _ => MAX_CHUNK_LINE,
            };
            if self.framing > bound {
                return Err(Error::ChunkFramingTooLarge);
            }
            self.state = match (self.state, b) {
                (Size(v), b) if b.is_ascii_hexdigit() => {
                    self.size_digits += 1;
                    if self.size_digits > 15 {
                        return Err(Error::BadChunk);
                    }
                    Size(v * 16 + (b as char).to_digit(16).unwrap_or(0) as u64)
                }
                (Size(v), b';' | b' ' | b'\t') if self.size_digits > 0 => Extension(v),
                (Size(v), b'\r') if self.size_digits > 0 => SizeLf(v),
                (Extension(v), b'\r') => SizeLf(v),
                (Extension(v), _) => Extension(v),
                (SizeLf(0), b'\n') => {
                    self.framing = 0;
                    Trailer { line_empty: true }
                }
                (SizeLf(v), b'\n') => {
                    self.state = Data(v);
                    self.framing = 0;
                    return Ok(Step::Skip(used));
                }
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.size_digits = 0;
                    Size(0)
                }
                (Trailer { line_empty }, b'\r') => TrailerLf { line_empty },
                (Trailer { .. }, _) => Trailer { line_empty: false },
                (TrailerLf { line_empty: true }, b'\n') => {
                    self.state = Done;
                    return Ok(Step::End(used));
                }
                (TrailerLf { line_empty: false }, b'\n') => Trailer { line_empty: true },
                (Done, _) => return Ok(Step::End(0)),
                _ => return Err(Error::BadChunk),
            };
        }
        Ok(Step::Skip(used))
    }
}

/// Parses `Content-Range: bytes START-END/TOTAL` → (start, total if known).
pub fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = if total.trim() == "*" {
        None
    } else {
        Some(total.trim().parse().ok()?)
    };
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parses_a_real_head() {
        let raw =
            b"HTTP/1.1 206 Partial Content\r\nServer: nginx/1.22.1\r\nContent-Length: 100\r\n\
ETag: \"6565b4b0-80000000\"\r\nContent-Range: bytes 100-199/2147483648\r\n\r\nBODY";
        let r = Response::parse(raw).unwrap();
        assert_eq!((r.status, r.reason.as_str()), (206, "Partial Content"));
        assert_eq!(r.header("etag"), Some("\"6565b4b0-80000000\""));
        assert_eq!(&raw[r.head_len..], b"BODY");
        assert_eq!(r.framing("GET"), Ok(Framing::Length(100)));
        assert_eq!(
            content_range(r.header("content-range").unwrap()),
            Some((100, Some(2147483648)))
        );
        assert_eq!(r.framing("HEAD"), Ok(Framing::None));
    }

    #[test]
    fn malformed_heads_are_named_errors() {
        assert_eq!(
            Response::parse(b"HTTP/1.1 200 OK\r\nContent-"),
            Err(Error::Incomplete)
        );
        assert_eq!(
            Response::parse(b"ICY 200 OK\r\n\r\n"),
            Err(Error::BadHead("not HTTP/1.x"))
        );
        assert_eq!(
            Response::parse(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(Error::BadHead("bad status code"))
        );
        assert!(matches!(
            Response::parse(b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n"),
            Err(Error::BadHead(_))
        ));
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(vec![b'a'; MAX_HEAD]);
        assert_eq!(Response::parse(&huge), Err(Error::HeadTooLarge));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..100 {
            many.extend(alloc::format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(Response::parse(&many), Err(Error::HeadTooLarge));
    }

    #[test]
    fn interim_heads_are_skipped() {
        let mut buf =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec();
        let r = Response::parse_final(&mut buf, &mut 0).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&buf[r.head_len..], b"ok");
        let mut part = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2".to_vec();
        assert_eq!(Response::parse_final(&mut part, &mut 0).unwrap(), None);
        assert_eq!(part, b"HTTP/1.1 2", "the interim head is consumed");
        // Counted across calls: the ninth interim head is refused, however
        // the heads arrive.
        let mut seen = 0;
        let mut buf = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(5);
        assert_eq!(Response::parse_final(&mut buf, &mut seen).unwrap(), None);
        let mut buf = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(4);
        assert_eq!(
            Response::parse_final(&mut buf, &mut seen),
            Err(Error::TooManyInterim)
        );
    }

    #[test]
    fn framing_rules() {
        let r =
            Response::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
                .unwrap();
        assert_eq!(r.framing("GET"), Err(Error::BadContentLength));
        let r = Response::parse(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n").unwrap();
        assert_eq!(r.framing("GET"), Err(Error::BadContentLength));
        let r = Response::parse(b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n").unwrap();
        assert_eq!(r.framing("GET"), Err(Error::BadContentLength));
        let r =
            Response::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
                .unwrap();
        assert_eq!(
            r.framing("GET"),
            Ok(Framing::Length(5)),
            "repeated but equal is fine"
        );
        let r = Response::parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.framing("GET"), Ok(Framing::Chunked));
        let r = Response::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap();
        assert!(matches!(
            r.framing("GET"),
            Err(Error::UnsupportedEncoding(_))
        ));
        let r = Response::parse(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(r.framing("GET"), Ok(Framing::Close));
        let r = Response::parse(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(r.framing("GET"), Ok(Framing::None));
    }

    /// Decodes a whole chunked body fed `piece` bytes at a time.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), Error> {
        let mut d = Chunked::new();
        let mut out = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let end = (at + piece).min(input.len());
            match d.step(&input[at..end])? {
                Step::Skip(n) => at += n,
                Step::Data(n) => {
                    out.extend_from_slice(&input[at..at + n]);
                    at += n;
                }
                Step::End(n) => return Ok((out, at + n)),
            }
        }
        Err(Error::Incomplete)
    }

    #[test]
    fn chunked_bodies_in_any_pieces() {
        let body = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 1000] {
            let (data, used) = decode(body, piece).unwrap();
            assert_eq!(data, b"Wikipedia in \r\n\r\nchunks.", "piece {piece}");
            assert_eq!(&body[used..], b"NEXT");
        }
    }

    #[test]
    fn endless_extensions_and_trailers_are_errors_not_hangs() {
        let mut endless_ext = b"4;".to_vec();
        endless_ext.extend(core::iter::repeat_n(b'x', MAX_CHUNK_LINE));
        assert_eq!(decode(&endless_ext, 1000), Err(Error::ChunkFramingTooLarge));
        let mut endless_trailer = b"0\r\n".to_vec();
        for _ in 0..MAX_TRAILERS / 8 + 1 {
            endless_trailer.extend_from_slice(b"X: yyy\r\n");
        }
        assert_eq!(
            decode(&endless_trailer, 333),
            Err(Error::ChunkFramingTooLarge)
        );
        // The bounds are per size line: many chunks with extensions are fine.
        let mut many = Vec::new();
        for _ in 0..100 {
            many.extend_from_slice(b"1;name=value-under-the-bound\r\na\r\n");
        }
        many.extend_from_slice(b"0\r\nT: 1\r\n\r\n");
        assert_eq!(decode(&many, 64).unwrap().0, vec![b'a'; 100]);
    }

    #[test]
    fn bad_chunks_are_errors() {
        assert_eq!(decode(b"zz\r\n", 10), Err(Error::BadChunk));
        assert_eq!(decode(b"\r\n", 10), Err(Error::BadChunk));
        assert_eq!(decode(b"3\r\nabcX\r\n", 10), Err(Error::BadChunk));
        assert_eq!(decode(b"3\nabc\r\n", 10), Err(Error::BadChunk));
        assert_eq!(decode(b"1000000000000000\r\n", 100), Err(Error::BadChunk));
        assert_eq!(decode(b"5\r\nab", 10), Err(Error::Incomplete));
    }

    #[test]
    fn request_heads() {
        let h = request_head(
            "GET",
            "/img/root.img?x=1",
            "10.0.2.2:8080",
            &[("Range", "bytes=100-")],
        );
        assert_eq!(
            h,
            b"GET /img/root.img?x=1 HTTP/1.1\r\nHost: 10.0.2.2:8080\r\nRange: bytes=100-\r\n\r\n"
        );
        assert_eq!(content_range("bytes 5-4/10"), None);
        assert_eq!(content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(content_range("items 0-9/10"), None);
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
    pub head_len: usize,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn parse(buf: &[u8]) -> Result<RequestHead, Error> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) if head_len <= MAX_HEAD => Ok(RequestHead {
                method: r.method.unwrap_or("").to_string(),
                target: r.path.unwrap_or("/").to_string(),
                minor_version: r.version.unwrap_or(1),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect(),
                head_len,
            }),
            Ok(httparse::Status::Complete(_)) => Err(Error::HeadTooLarge),
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(Error::HeadTooLarge),
            Ok(httparse::Status::Partial) => Err(Error::Incomplete),
            Err(httparse::Error::TooManyHeaders) => Err(Error::HeadTooLarge),
            Err(_) => Err(Error::BadHead("malformed request")),
        }
    }

    /// HTTP/1.1 keeps the connection unless told to close; 1.0 the reverse.
    pub fn keep_alive(&self) -> bool {
        match self.header("connection").map(|c| c.to_ascii_lowercase()) {
            Some(c) if c.contains("close") => false,
            Some(c) if c.contains("keep-alive") => true,
            _ => self.minor_version >= 1,
        }
    }
}

/// A complete response with a Content-Length body.
pub fn response_bytes(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Status",
    };
    let mut out = alloc::format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

//! HTTP/1.1 client over a [`Transport`]: streaming GET that survives dropped
//! connections (resume with `Range`, guarded by `If-Range`), bounded
//! redirects, retries with backoff on refused connections and 5xx, timeouts;
//! small GETs and JSON POSTs for plans and callbacks.

use super::url::Url;
use super::{ConnId, NetError, NetErrorKind, Transport};
use crate::plan::auth::Authorization;
use crate::plan::proxy::{Proxies, Proxy};
use crate::wire::http::{self, Chunked, Framing, Response, Step};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Timeouts and retry budget (ironic-python-agent retries a download 9
/// times; rivet does the same, with exponential backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub connect_timeout_ms: u64,
    /// Longest wait for the next byte.
    pub idle_timeout_ms: u64,
    /// Consecutive failed attempts tolerated (each reconnect counts).
    pub retries: u32,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub max_redirects: u32,
    /// Documents fetched whole ([`get`]) must arrive at least this fast on
    /// average: a server trickling bytes just inside the idle timeout
    /// cannot hold a deploy for ever. Deadline: idle timeout + size / rate.
    pub min_rate_bytes_per_s: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            connect_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            retries: 9,
            backoff_ms: 1_000,
            max_backoff_ms: 10_000,
            max_redirects: 5,
            min_rate_bytes_per_s: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub url: String,
    pub status: Option<u16>,
    pub message: String,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.message)
    }
}

impl core::error::Error for HttpError {}

impl embedded_io::Error for HttpError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

/// Why an attempt failed, and whether another may succeed.
enum Attempt {
    Retry(String),
    Fatal(HttpError),
}

impl From<NetError> for Attempt {
    fn from(e: NetError) -> Attempt {
        Attempt::Retry(e.message)
    }
}

enum Body {
    Length(u64),
    Chunked(Chunked),
    Close,
    Done,
}

const USER_AGENT: &str = concat!("rivet/", env!("CARGO_PKG_VERSION"));

/// A GET whose body is read through [`embedded_io::Read`]; reconnects and
/// resumes transparently. Implements [`crate::io::ImageSource`].
pub struct Download<'t, T: Transport + ?Sized> {
    t: &'t mut T,
    policy: Policy,
    original: String,
    url: Url,
    conn: Option<ConnId>,
    body: Body,
    /// Body bytes received with the head, not yet handed out.
    pending: Vec<u8>,
    /// Chunked responses are decoded from here.
    raw: Vec<u8>,
    raw_len: usize,
    /// Bytes handed to the caller.
    pos: u64,
    /// Bytes to discard after a server ignored our Range (restart from 0).
    skip: u64,
    total: Option<u64>,
    validator: Option<String>,
    /// The last byte wanted, for a part read apart from the stream.
    range_end: Option<u64>,
    /// The server answered a part's Range with the whole file.
    range_ignored: bool,
    /// The stream was closed to read a part: reopening it is no resume.
    after_part: bool,
    pub resumes: u32,
    pub restarts: u32,
    /// Failed attempts since the body last made [`PROGRESS`] bytes of
    /// progress, and where it was then: a server that sends a few bytes on
    /// each connection and drops it runs out of retries like one that
    /// sends none (a count kept per read would start again at every byte).
    failures: u32,
    progress_mark: u64,
    /// When the download started: a body of known size must arrive at the
    /// policy's minimum average rate (deadline: idle timeout + size / rate).
    started_ms: u64,
    /// The `Authorization` header and the origin (scheme, host, port) it
    /// may go to: the first URL's. A redirect or a resume elsewhere (a
    /// registry's 307 to a CDN) goes without it, as python-requests does
    /// since CVE-2018-18074.
    auth: Option<(Origin, Authorization)>,
    proxies: Proxies,
}

/// What a GET carries besides its URL: the plan's authorization (for the
/// first URL's origin) and proxies.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub auth: Option<Authorization>,
    pub proxies: Proxies,
}

impl Access {
    /// The image's and checksum's, from the plan.
    pub fn of(plan: &crate::plan::Plan) -> Access {
        Access {
            auth: plan.authorization.clone(),
            proxies: plan.proxies.clone(),
        }
    }
}

type Origin = (bool, String, u16);

fn origin(u: &Url) -> Origin {
    (u.https, u.host.to_ascii_lowercase(), u.port)
}

/// Bytes of body that make a failed attempt count as progress, so that a
/// long download over a flaky link keeps its retries.
const PROGRESS: u64 = 1 << 20;

fn header_value<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.header(name)
}

impl<'t, T: Transport + ?Sized> Download<'t, T> {
    /// Sends the request and reads the response head, retrying as the
    /// policy allows, so the size is known before the first read.
    pub fn start(t: &'t mut T, url: &str, policy: Policy) -> Result<Download<'t, T>, HttpError> {
        Download::start_with(t, url, policy, &Access::default())
    }

    /// As [`Download::start`], with `access`'s authorization (to the URL's
    /// own origin) and proxies.
    pub fn start_with(
        t: &'t mut T,
        url: &str,
        policy: Policy,
        access: &Access,
    ) -> Result<Download<'t, T>, HttpError> {
        let parsed = Url::parse(url).map_err(|m| HttpError {
            url: url.to_string(),
            status: None,
            message: m,
        })?;
        let parsed_for_auth = parsed.clone();
        let mut d = Download {
            t,
            policy,
            original: url.to_string(),
            url: parsed,
            conn: None,
            body: Body::Done,
            pending: Vec::new(),
            raw: vec![0u8; 16 * 1024],
            raw_len: 0,
            pos: 0,
            skip: 0,
            total: None,
            validator: None,
            range_end: None,
            range_ignored: false,
            after_part: false,
            resumes: 0,
            restarts: 0,
            failures: 0,
            progress_mark: 0,
            started_ms: 0,
            auth: access
                .auth
                .as_ref()
                .map(|a| (origin(&parsed_for_auth), a.clone())),
            proxies: access.proxies.clone(),
        };
        d.started_ms = d.t.now_ms();
        d.open_with_retries()?;
        Ok(d)
    }

    /// Reads `buf.len()` bytes at `offset` with a `Range` request on a
    /// connection of its own (guarded by `If-Range`, as resumes are); the
    /// stream goes on from where it was at its next read. `Ok(false)`: the
    /// server does not serve ranges.
    pub fn read_range(&mut self, offset: u64, buf: &mut [u8]) -> Result<bool, HttpError> {
        if buf.is_empty() {
            return Ok(true);
        }
        // One connection at a time: the stream's reopens at its position.
        if self.conn.is_some() {
            self.close();
            self.after_part = true;
        }
        let now = self.t.now_ms();
        let mut part = Download {
            t: &mut *self.t,
            policy: self.policy,
            original: self.original.clone(),
            url: self.url.clone(),
            conn: None,
            body: Body::Done,
            pending: Vec::new(),
            raw: vec![0u8; 16 * 1024],
            raw_len: 0,
            pos: offset,
            skip: 0,
            total: self.total,
            validator: self.validator.clone(),
            range_end: Some(offset + buf.len() as u64 - 1),
            range_ignored: false,
            after_part: false,
            resumes: 0,
            restarts: 0,
            failures: 0,
            progress_mark: offset,
            started_ms: now,
            auth: self.auth.clone(),
            proxies: self.proxies.clone(),
        };
        part.open_with_retries()?;
        if part.range_ignored {
            return Ok(false);
        }
        let mut got = 0;
        while got < buf.len() {
            match part.read_some(&mut buf[got..])? {
                0 => {
                    return Err(part.err(
                        None,
                        format!(
                            "the range at {offset} ended after {got} of {} bytes",
                            buf.len()
                        ),
                    ))
                }
                n => got += n,
            }
        }
        Ok(true)
    }

    pub fn url(&self) -> &str {
        &self.original
    }

    pub fn total(&self) -> Option<u64> {
        self.total
    }

    fn err(&self, status: Option<u16>, message: String) -> HttpError {
        HttpError {
            url: self.original.clone(),
            status,
            message,
        }
    }

    fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            self.t.close(c);
        }
    }

    fn open_with_retries(&mut self) -> Result<(), HttpError> {
        let mut failures = 0;
        let mut backoff = self.policy.backoff_ms;
        loop {
            match self.open() {
                Ok(()) => return Ok(()),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(why)) => {
                    self.close();
                    failures += 1;
                    if failures > self.policy.retries {
                        return Err(
                            self.err(None, format!("giving up after {failures} attempts: {why}"))
                        );
                    }
                    log::warn!(
                        "{}: {why}; retry {failures}/{} in {} ms",
                        self.original,
                        self.policy.retries,
                        backoff
                    );
                    self.t.sleep_ms(backoff);
                    backoff = (backoff * 2).min(self.policy.max_backoff_ms);
                }
            }
        }
    }

    /// One request: connect, send, read the head, follow redirects.
    fn open(&mut self) -> Result<(), Attempt> {
        for _ in 0..=self.policy.max_redirects {
            self.close();
            let via = self
                .proxies
                .for_url(self.url.https, &self.url.host, self.url.port)
                .cloned();
            let (host, port) = match &via {
                Some(p) => (p.host.clone(), p.port),
                None => (self.url.host.clone(), self.url.port),
            };
            let conn = self
                .t
                .connect(&host, port, self.policy.connect_timeout_ms)?;
            self.conn = Some(conn);
            if let (Some(p), true) = (&via, self.url.https) {
                self.tunnel(conn, p)?;
            }
            if self.url.https {
                self.t
                    .start_tls(conn, &self.url.host, self.policy.connect_timeout_ms)
                    .map_err(|e| match e.kind {
                        NetErrorKind::Tls => Attempt::Fatal(self.err(None, e.message)),
                        _ => Attempt::Retry(e.message),
                    })?;
            }
            let range = match self.range_end {
                Some(end) => format!("bytes={}-{end}", self.pos),
                None => format!("bytes={}-", self.pos),
            };
            let mut headers: Vec<(&str, &str)> =
                vec![("User-Agent", USER_AGENT), ("Accept", "*/*")];
            if self.pos > 0 || self.range_end.is_some() {
                headers.push(("Range", &range));
                if let Some(v) = &self.validator {
                    headers.push(("If-Range", v));
                }
            }
            if let Some((home, a)) = &self.auth {
                if *home == origin(&self.url) {
                    headers.push(("Authorization", a.value()));
                }
            }
            // Plain http through a proxy: the absolute URL, and the
            // proxy's credentials (https ones went with the CONNECT).
            let target = match (&via, self.url.https) {
                (Some(p), false) => {
                    if let Some(a) = p.authorization() {
                        headers.push(("Proxy-Authorization", a));
                    }
                    format!("http://{}{}", self.url.host_header(), self.url.target)
                }
                _ => self.url.target.clone(),
            };
            let head = http::request_head("GET", &target, &self.url.host_header(), &headers);
            self.t.send(conn, &head, self.policy.idle_timeout_ms)?;
            let (response, rest) = self.read_head(conn)?;
            let status = response.status;
            match status {
                200 | 206 => {
                    self.accept(&response, rest)?;
                    return Ok(());
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = header_value(&response, "location").ok_or_else(|| {
                        Attempt::Fatal(self.err(Some(status), format!("{status} without Location")))
                    })?;
                    let next = self
                        .url
                        .join(location)
                        .map_err(|m| Attempt::Fatal(self.err(Some(status), m)))?;
                    if self.url.https && !next.https {
                        log::warn!(
                            "{}: redirected from https to {next}: the rest is not encrypted",
                            self.original
                        );
                    } else {
                        log::info!("{}: redirected to {next}", self.original);
                    }
                    if self
                        .auth
                        .as_ref()
                        .is_some_and(|(home, _)| *home != origin(&next))
                    {
                        log::info!("{}: the authorization stays with its origin", self.original);
                    }
                    self.url = next;
                }
                500..=599 => {
                    return Err(Attempt::Retry(format!(
                        "server answered {status} {}",
                        response.reason
                    )))
                }
                _ => {
                    return Err(Attempt::Fatal(self.err(
                        Some(status),
                        format!("server answered {status} {}", response.reason),
                    )))
                }
            }
        }
        Err(Attempt::Fatal(self.err(
            None,
            format!("more than {} redirects", self.policy.max_redirects),
        )))
    }

    /// Asks the proxy for a tunnel to the URL's host and port (CONNECT);
    /// TLS then runs inside it, checked against the origin's name.
    fn tunnel(&mut self, conn: ConnId, p: &Proxy) -> Result<(), Attempt> {
        let host = if self.url.host.contains(':') {
            format!("[{}]:{}", self.url.host, self.url.port)
        } else {
            format!("{}:{}", self.url.host, self.url.port)
        };
        let mut headers: Vec<(&str, &str)> = vec![("User-Agent", USER_AGENT)];
        if let Some(a) = p.authorization() {
            headers.push(("Proxy-Authorization", a));
        }
        let head = http::request_head("CONNECT", &host, &host, &headers);
        self.t.send(conn, &head, self.policy.idle_timeout_ms)?;
        let (response, rest) = self.read_head(conn)?;
        match response.status {
            200..=299 if rest.is_empty() => Ok(()),
            500..=599 => Err(Attempt::Retry(format!(
                "the proxy {p} answered CONNECT {host} with {} {}",
                response.status, response.reason
            ))),
            status => Err(Attempt::Fatal(self.err(
                Some(status),
                format!(
                    "the proxy {p} answered CONNECT {host} with {status} {}",
                    response.reason
                ),
            ))),
        }
    }

    /// Reads until a complete response head; returns it and the body bytes
    /// that came with it.
    fn read_head(&mut self, conn: ConnId) -> Result<(Response, Vec<u8>), Attempt> {
        let mut head = Vec::new();
        let mut chunk = [0u8; 2048];
        let mut interim = 0;
        loop {
            let n = self.t.recv(conn, &mut chunk, self.policy.idle_timeout_ms)?;
            if n == 0 {
                return Err(Attempt::Retry("connection closed before a response".into()));
            }
            head.extend_from_slice(&chunk[..n]);
            match Response::parse_final(&mut head, &mut interim) {
                Ok(Some(r)) => {
                    let rest = head[r.head_len..].to_vec();
                    return Ok((r, rest));
                }
                Ok(None) => continue,
                Err(e) => return Err(Attempt::Fatal(self.err(None, e.to_string()))),
            }
        }
    }

    fn accept(&mut self, r: &Response, rest: Vec<u8>) -> Result<(), Attempt> {
        let framing = r
            .framing("GET")
            .map_err(|e| Attempt::Fatal(self.err(Some(r.status), e.to_string())))?;
        let validator = header_value(r, "etag")
            .or(header_value(r, "last-modified"))
            .map(ToString::to_string);
        if let (true, Some(before), Some(now)) = (self.pos > 0, &self.validator, &validator) {
            // Whatever the status: the bytes from here on are of another
            // file than the bytes already handed out (a server that ignored
            // If-Range, or one that answered it with the new file).
            if before != now {
                return Err(Attempt::Fatal(self.err(
                    Some(r.status),
                    format!(
                        "the file changed on the server between connections (validator \
                         {before}, now {now}): its parts would mix; refused at byte {}",
                        self.pos
                    ),
                )));
            }
        }
        if self.range_end.is_some() && r.status != 206 {
            // A part read apart from the stream: the whole file is of no use.
            self.range_ignored = true;
            self.body = Body::Done;
            return Ok(());
        }
        let total = if r.status == 206 {
            let (start, total) = header_value(r, "content-range")
                .and_then(http::content_range)
                .ok_or_else(|| {
                    Attempt::Fatal(self.err(Some(206), "206 without a valid Content-Range".into()))
                })?;
            if start != self.pos {
                return Err(Attempt::Fatal(self.err(
                    Some(206),
                    format!("asked for bytes from {}, got from {start}", self.pos),
                )));
            }
            total
        } else {
            if self.pos > 0 {
                // The server ignored Range (or If-Range found the image changed,
                // which the checksum will catch): start over, dropping what
                // the caller already has.
                self.skip = self.pos;
                self.restarts += 1;
                log::warn!(
                    "{}: the server does not resume (answered 200 to a Range request); \
                     restarting from 0 and skipping {} bytes already written",
                    self.original,
                    self.pos
                );
            }
            match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            }
        };
        if let (Some(before), Some(now)) = (self.total, total) {
            if before != now {
                return Err(Attempt::Fatal(self.err(
                    Some(r.status),
                    format!(
                        "the image changed size from {before} to {now} bytes between connections"
                    ),
                )));
            }
        }
        if self.pos > 0 && r.status == 206 && self.after_part {
            log::debug!("{}: back at byte {} after a part", self.original, self.pos);
        } else if self.pos > 0 && r.status == 206 {
            self.resumes += 1;
            log::info!("{}: resumed at byte {}", self.original, self.pos);
        }
        self.after_part = false;
        self.total = self.total.or(total);
        if self.validator.is_none() {
            self.validator = validator;
        }
        self.body = match framing {
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunked::new()),
            Framing::Close => Body::Close,
            Framing::None => Body::Done,
        };
        self.pending = rest;
        self.raw_len = 0;
        Ok(())
    }

    /// Reads body bytes of the current response into `out` (0 = complete).
    fn read_body(&mut self, out: &mut [u8]) -> Result<usize, Attempt> {
        let conn = match self.conn {
            Some(c) => c,
            None => return Err(Attempt::Retry("not connected".into())),
        };
        loop {
            match &mut self.body {
                Body::Done => return Ok(0),
                Body::Length(0) => {
                    self.body = Body::Done;
                    return Ok(0);
                }
                Body::Length(left) => {
                    let want = (out.len() as u64).min(*left) as usize;
                    let n = if !self.pending.is_empty() {
                        let n = want.min(self.pending.len());
                        out[..n].copy_from_slice(&self.pending[..n]);
                        self.pending.drain(..n);
                        n
                    } else {
                        let n = self
                            .t
                            .recv(conn, &mut out[..want], self.policy.idle_timeout_ms)?;
                        if n == 0 {
                            return Err(Attempt::Retry(format!(
                                "connection closed with {left} bytes of the response missing"
                            )));
                        }
                        n
                    };
                    *left -= n as u64;
                    return Ok(n);
                }
                Body::Close => {
                    if !self.pending.is_empty() {
                        let n = out.len().min(self.pending.len());
                        out[..n].copy_from_slice(&self.pending[..n]);
                        self.pending.drain(..n);
                        return Ok(n);
                    }
                    let n = self.t.recv(conn, out, self.policy.idle_timeout_ms)?;
                    if n == 0 {
                        self.body = Body::Done;
                    }
                    return Ok(n);
                }
                Body::Chunked(decoder) => {
                    if self.raw_len == 0 {
                        if !self.pending.is_empty() {
                            let n = self.raw.len().min(self.pending.len());
                            self.raw[..n].copy_from_slice(&self.pending[..n]);
                            self.pending.drain(..n);
                            self.raw_len = n;
                        } else {
                            let n =
                                self.t
                                    .recv(conn, &mut self.raw, self.policy.idle_timeout_ms)?;
                            if n == 0 {
                                return Err(Attempt::Retry(
                                    "connection closed inside a chunked response".into(),
                                ));
                            }
                            self.raw_len = n;
                        }
                    }
                    // Never offer the decoder more than `out` can take, so a
                    // data step always fits.
                    let offer = self.raw_len.min(out.len());
                    let step = decoder.step(&self.raw[..offer]).map_err(|e| {
                        Attempt::Fatal(HttpError {
                            url: self.original.clone(),
                            status: None,
                            message: e.to_string(),
                        })
                    })?;
                    let (consumed, data) = match step {
                        Step::Skip(n) => (n, 0),
                        Step::Data(n) => {
                            out[..n].copy_from_slice(&self.raw[..n]);
                            (n, n)
                        }
                        Step::End(n) => {
                            self.body = Body::Done;
                            (n, 0)
                        }
                    };
                    self.raw.copy_within(consumed..self.raw_len, 0);
                    self.raw_len -= consumed;
                    if data > 0 {
                        return Ok(data);
                    }
                }
            }
        }
    }

    fn read_some(&mut self, out: &mut [u8]) -> Result<usize, HttpError> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(total) = self.total {
            let rate = self.policy.min_rate_bytes_per_s.max(1);
            let allowed_ms = self
                .policy
                .idle_timeout_ms
                .saturating_add(total.saturating_mul(1000) / rate);
            let took = self.t.now_ms().saturating_sub(self.started_ms);
            if took > allowed_ms {
                return Err(self.err(
                    None,
                    format!(
                        "{} of {total} bytes in {} s: slower than {rate} bytes/s on average, given up",
                        self.pos,
                        took / 1000
                    ),
                ));
            }
        }
        let mut backoff = self.policy.backoff_ms;
        loop {
            let result = if self.conn.is_none() {
                Err(Attempt::Retry("reconnecting".into()))
            } else {
                self.read_body(out)
            };
            match result {
                Ok(0) => {
                    if self.skip > 0 {
                        return Err(self.err(
                            None,
                            "the restarted download ended before reaching the resume point".into(),
                        ));
                    }
                    if let Some(total) = self.total {
                        if self.pos < total {
                            return Err(self.err(
                                None,
                                format!("body ended at {} of {total} bytes", self.pos),
                            ));
                        }
                    }
                    self.close();
                    return Ok(0);
                }
                Ok(n) if self.skip > 0 => {
                    let dropped = (n as u64).min(self.skip);
                    self.skip -= dropped;
                    if (dropped as usize) < n {
                        out.copy_within(dropped as usize..n, 0);
                        let kept = n - dropped as usize;
                        self.pos += kept as u64;
                        return Ok(kept);
                    }
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(why)) => {
                    self.close();
                    if self.total == Some(self.pos) && self.skip == 0 {
                        return Ok(0);
                    }
                    if self.pos.saturating_sub(self.progress_mark) >= PROGRESS {
                        self.failures = 0;
                    }
                    self.progress_mark = self.pos;
                    self.failures += 1;
                    if self.failures > self.policy.retries {
                        return Err(self.err(
                            None,
                            format!(
                                "giving up after {} attempts at byte {} (less than {PROGRESS} \
                                 bytes between them): {why}",
                                self.failures, self.pos
                            ),
                        ));
                    }
                    if why != "reconnecting" {
                        log::warn!("{}: {why} (at byte {}); resuming", self.original, self.pos);
                        self.t.sleep_ms(backoff);
                        backoff = (backoff * 2).min(self.policy.max_backoff_ms);
                    }
                    match self.open() {
                        Ok(()) => {}
                        Err(Attempt::Fatal(e)) => return Err(e),
                        Err(Attempt::Retry(w)) => {
                            log::warn!("{}: {w}", self.original);
                            self.close();
                        }
                    }
                }
            }
        }
    }
}

impl<T: Transport + ?Sized> Drop for Download<'_, T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T: Transport + ?Sized> embedded_io::ErrorType for Download<'_, T> {
    type Error = HttpError;
}

impl<T: Transport + ?Sized> embedded_io::Read for Download<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpError> {
        self.read_some(buf)
    }
}

impl<T: Transport + ?Sized> crate::io::ImageSource for Download<'_, T> {
    fn size(&self) -> Option<u64> {
        self.total
    }
    fn describe(&self) -> String {
        self.original.clone()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        match self.read_range(offset, buf) {
            Ok(true) => Some(Ok(())),
            Ok(false) => None,
            Err(e) => Some(Err(e.to_string())),
        }
    }
    fn fetch_other(
        &mut self,
        url: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Option<Result<(), String>> {
        let max = crate::deploy::configdrive::MAX_DOWNLOAD;
        Some(
            get_streaming(self.t, url, max, self.policy, &Access::default(), sink)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        )
    }
}

/// GETs a small resource (a plan, a checksum file) whole.
pub fn get<T: Transport + ?Sized>(
    t: &mut T,
    url: &str,
    max_bytes: usize,
    policy: Policy,
) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    get_streaming(
        t,
        url,
        max_bytes as u64,
        policy,
        &Access::default(),
        &mut |piece| {
            out.extend_from_slice(piece);
            Ok(())
        },
    )?;
    Ok(out)
}

/// GETs a resource of at most `max_bytes`, handing its body to `sink` as
/// it arrives (a config drive is never held): at the policy's minimum
/// average rate, resumed and retried as an image is. A sink's error ends
/// the download.
pub fn get_streaming<T: Transport + ?Sized>(
    t: &mut T,
    url: &str,
    max_bytes: u64,
    policy: Policy,
    access: &Access,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<u64, HttpError> {
    let mut d = Download::start_with(t, url, policy, access)?;
    if let Some(total) = d.total() {
        if total > max_bytes {
            return Err(d.err(
                None,
                format!("{total} bytes, more than the {max_bytes} allowed"),
            ));
        }
    }
    let expected = d.total().unwrap_or(max_bytes);
    let rate = policy.min_rate_bytes_per_s.max(1);
    let allowed_ms = policy
        .idle_timeout_ms
        .saturating_add(expected.saturating_mul(1000) / rate);
    let deadline = d.t.now_ms().saturating_add(allowed_ms);
    let mut got = 0u64;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = d.read_some(&mut chunk)?;
        if n == 0 {
            return Ok(got);
        }
        got += n as u64;
        if got > max_bytes {
            return Err(d.err(None, format!("more than the {max_bytes} bytes allowed")));
        }
        sink(&chunk[..n]).map_err(|e| d.err(None, e))?;
        if d.t.now_ms() > deadline {
            return Err(d.err(
                None,
                format!(
                    "{got} bytes in {} s: slower than {rate} bytes/s, given up",
                    allowed_ms / 1000
                ),
            ));
        }
    }
}

/// POSTs JSON; returns the status and (bounded) body. Retries connection
/// failures and 5xx answers.
pub fn post_json<T: Transport>(
    t: &mut T,
    url: &str,
    body: &[u8],
    policy: Policy,
) -> Result<(u16, Vec<u8>), HttpError> {
    exchange(
        t,
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(body),
        policy,
    )
}

/// Largest response body [`exchange`] keeps (API answers, not images).
pub const MAX_EXCHANGE_BODY: usize = 1 << 20;

/// One request with a small answer (an API call): sends `method` with
/// `headers` and `body`, returns the status and the whole body whatever the
/// status. Connection failures and 5xx answers are retried as `policy`
/// allows; a 5xx that outlasts the retries is returned as an answer.
/// Not generic: one copy serves the agent's loop and its jobs.
pub fn exchange(
    t: &mut dyn Transport,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    policy: Policy,
) -> Result<(u16, Vec<u8>), HttpError> {
    let parsed = Url::parse(url).map_err(|m| HttpError {
        url: url.to_string(),
        status: None,
        message: m,
    })?;
    let fail = |m: String| HttpError {
        url: url.to_string(),
        status: None,
        message: m,
    };
    let len = body.map(|b| b.len().to_string());
    let mut all_headers: Vec<(&str, &str)> = vec![("User-Agent", USER_AGENT)];
    all_headers.extend_from_slice(headers);
    if let Some(len) = &len {
        all_headers.push(("Content-Length", len));
    }
    all_headers.push(("Connection", "close"));
    let head = http::request_head(method, &parsed.target, &parsed.host_header(), &all_headers);
    let mut backoff = policy.backoff_ms;
    let mut last = String::new();
    let mut last_answer = None;
    for attempt in 0..=policy.retries {
        if attempt > 0 {
            log::warn!(
                "{url}: {last}; retry {attempt}/{} in {backoff} ms",
                policy.retries
            );
            t.sleep_ms(backoff);
            backoff = (backoff * 2).min(policy.max_backoff_ms);
        }
        let conn = match t.connect(&parsed.host, parsed.port, policy.connect_timeout_ms) {
            Ok(c) => c,
            Err(e) => {
                last = e.message;
                continue;
            }
        };
        let result = (|| -> Result<(u16, Vec<u8>), NetError> {
            if parsed.https {
                t.start_tls(conn, &parsed.host, policy.connect_timeout_ms)?;
            }
            t.send(conn, &head, policy.idle_timeout_ms)?;
            if let Some(b) = body {
                t.send(conn, b, policy.idle_timeout_ms)?;
            }
            read_answer(t, conn, method, policy.idle_timeout_ms)
        })();
        t.close(conn);
        match result {
            Ok((status, b)) if (500..600).contains(&status) => {
                last = format!("server answered {status}");
                last_answer = Some((status, b));
            }
            Ok(r) => return Ok(r),
            // A certificate fails the same way every time.
            Err(e) if e.kind == NetErrorKind::Tls => return Err(fail(e.message)),
            Err(e) => last = e.message,
        }
    }
    match last_answer {
        Some(answer) => Ok(answer),
        None => Err(fail(format!(
            "giving up after {} attempts: {last}",
            policy.retries + 1
        ))),
    }
}

/// Reads a response head and its body (Content-Length, chunked, or until
/// close), bounded by [`MAX_EXCHANGE_BODY`].
fn read_answer(
    t: &mut dyn Transport,
    conn: ConnId,
    method: &str,
    timeout_ms: u64,
) -> Result<(u16, Vec<u8>), NetError> {
    let other = |m: String| NetError::new(NetErrorKind::Other, m);
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut interim = 0;
    let response = loop {
        let n = t.recv(conn, &mut chunk, timeout_ms)?;
        raw.extend_from_slice(&chunk[..n]);
        match Response::parse_final(&mut raw, &mut interim) {
            Ok(Some(r)) => break r,
            Ok(None) if n > 0 => continue,
            Ok(None) => return Err(other("connection closed before the response head".into())),
            Err(e) => return Err(other(e.to_string())),
        }
    };
    let mut rest = raw.split_off(response.head_len);
    let framing = response.framing(method).map_err(|e| other(e.to_string()))?;
    let too_big = || other(format!("response body over {MAX_EXCHANGE_BODY} bytes"));
    match framing {
        Framing::Length(n) => {
            if n > MAX_EXCHANGE_BODY as u64 {
                return Err(too_big());
            }
            while (rest.len() as u64) < n {
                let got = t.recv(conn, &mut chunk, timeout_ms)?;
                if got == 0 {
                    return Err(other(format!("body ended at {} of {n} bytes", rest.len())));
                }
                rest.extend_from_slice(&chunk[..got]);
            }
            rest.truncate(n as usize);
            Ok((response.status, rest))
        }
        Framing::Chunked => {
            let mut decoder = Chunked::new();
            let mut body = Vec::new();
            let mut input = rest;
            loop {
                while !input.is_empty() && !decoder.is_done() {
                    match decoder.step(&input).map_err(|e| other(e.to_string()))? {
                        Step::Data(n) => {
                            body.extend_from_slice(&input[..n]);
                            input.drain(..n);
                        }
                        Step::Skip(n) | Step::End(n) => {
                            input.drain(..n);
                        }
                    }
                    if body.len() > MAX_EXCHANGE_BODY {
                        return Err(too_big());
                    }
                }
                if decoder.is_done() {
                    return Ok((response.status, body));
                }
                let got = t.recv(conn, &mut chunk, timeout_ms)?;
                if got == 0 {
                    return Err(other("chunked body ended early".into()));
                }
                input.extend_from_slice(&chunk[..got]);
            }
        }
        _ => {
            loop {
                let got = t.recv(conn, &mut chunk, timeout_ms)?;
                if got == 0 {
                    break;
                }
                rest.extend_from_slice(&chunk[..got]);
                if rest.len() > MAX_EXCHANGE_BODY {
                    return Err(too_big());
                }
            }
            Ok((response.status, rest))
        }
    }
}

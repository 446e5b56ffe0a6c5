//! `http://host[:port]/path?query` split into what a request needs.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least "/".
    pub target: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        // Schemes are case-insensitive (RFC 3986 3.1).
        let (https, rest) = match scheme(s) {
            Some((sc, rest)) if sc.eq_ignore_ascii_case("http") => (false, rest),
            Some((sc, rest)) if sc.eq_ignore_ascii_case("https") => (true, rest),
            Some((sc, _)) => {
                return Err(format!(
                    "'{s}': the scheme {sc}: is not supported (http:// or https:// only)"
                ))
            }
            None => return Err(format!("'{s}': not an http:// or https:// URL")),
        };
        let rest = rest
            .strip_prefix("//")
            .ok_or_else(|| format!("'{s}': no //host after the scheme"))?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let target = target.split('#').next().unwrap_or("/").to_string();
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("'{s}': unclosed [ in host"))?;
            match after.strip_prefix(':') {
                Some(p) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("'{s}': bad port"))?,
                ),
                None => (h.to_string(), default_port),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("'{s}': bad port '{p}'"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("'{s}': no host"));
        }
        // A name or IPv4 address; inside brackets an IPv6 address (with an
        // optional %zone). Anything else would be a different host to
        // different parsers.
        let ok = if authority.starts_with('[') {
            let (addr, zone) = host.split_once('%').unwrap_or((&host, ""));
            addr.contains(':')
                && addr
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        } else {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        };
        if !ok {
            return Err(format!("'{s}': '{host}' is not a host name or address"));
        }
        if target.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{s}': whitespace in the path"));
        }
        Ok(Url {
            https,
            host,
            port,
            target,
        })
    }

    /// The Host header value.
    pub fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves a Location header against this URL.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let this = if self.https { "https" } else { "http" };
        if scheme(location).is_some() {
            // http(s) as such; file:, ftp: and the rest refused by name.
            return Url::parse(location).map_err(|e| format!("redirect to {e}"));
        }
        if location.starts_with("//") {
            return Url::parse(&format!("{this}:{location}"));
        }
        let base = format!("{this}://{}", self.host_header());
        if location.starts_with('/') {
            return Url::parse(&format!("{base}{location}"));
        }
        let dir = match self.target.split('?').next().unwrap_or("/").rfind('/') {
            Some(i) => &self.target[..=i],
            None => "/",
        };
        Url::parse(&format!("{base}{dir}{location}"))
    }
}

/// A URL's scheme (RFC 3986: a letter, then letters, digits, `+-.`) and
/// what follows its colon.
fn scheme(s: &str) -> Option<(&str, &str)> {
    let (sc, rest) = s.split_once(':')?;
    let mut b = sc.bytes();
    let first = b.next()?;
    (first.is_ascii_alphabetic() && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c)))
        .then_some((sc, rest))
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.host_header(),
            self.target
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let u = Url::parse("http://10.0.2.2:8080/images/root.img?sig=a#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("10.0.2.2", 8080, "/images/root.img?sig=a")
        );
        assert_eq!(u.host_header(), "10.0.2.2:8080");
        let u = Url::parse("https://images.example.com").unwrap();
        assert_eq!((u.port, u.target.as_str(), u.https), (443, "/", true));
        let u = Url::parse("http://[fd00::1]:81/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fd00::1", 81));
        assert_eq!(u.to_string(), "http://[fd00::1]:81/x");
        assert_eq!(Url::parse("http://h?q=1").unwrap().target, "/?q=1");
        assert!(Url::parse("ftp://h/x").is_err());
        assert!(Url::parse("http://:80/x").is_err());
        assert!(Url::parse("http://h:99999/x").is_err());
        assert!(Url::parse("http://h/a b").is_err());
    }

    #[test]
    fn redirects_resolve() {
        let u = Url::parse("http://h:8080/a/b/img?x").unwrap();
        assert_eq!(u.join("/c").unwrap().to_string(), "http://h:8080/c");
        assert_eq!(
            u.join("c.img").unwrap().to_string(),
            "http://h:8080/a/b/c.img"
        );
        assert_eq!(u.join("https://o/z").unwrap().to_string(), "https://o/z");
        // Scheme-relative: another host, same scheme.
        assert_eq!(
            u.join("//mirror:81/p").unwrap().to_string(),
            "http://mirror:81/p"
        );
        assert_eq!(u.join("HTTPS://o/z").unwrap().to_string(), "https://o/z");
        let e = u.join("file:///etc/shadow").unwrap_err();
        assert!(e.contains("scheme file: is not supported"), "{e}");
        assert!(u.join("ftp://o/x").unwrap_err().contains("ftp:"));
    }

    #[test]
    fn hosts_that_are_not_hosts_are_refused() {
        for bad in [
            "http://a[b]/x",
            "http://a:b:80/x",
            "http://[fd00::1/x",
            "http://[zz::1]/x",
            "http://h%2f/x",
            "http:/h/x",
            "http:h/x",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Url::parse("HTTP://Host.Example/x").unwrap().host,
            "Host.Example"
        );
        assert_eq!(
            Url::parse("http://[fe80::1%eth0]:8080/").unwrap().host,
            "fe80::1%eth0"
        );
        assert_eq!(Url::parse("http://user@h/x").unwrap().host, "h");
    }
}

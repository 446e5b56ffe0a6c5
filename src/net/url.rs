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
        let (https, rest) = if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("'{s}': not an http:// or https:// URL"));
        };
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
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{s}': no host"));
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
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        let base = format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.host_header()
        );
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
    }
}

//! HTTP proxies for the image and checksum GETs, as Ironic passes them in
//! `image_info` (`proxies`: scheme → proxy URL, from the node's
//! `image_http_proxy` / `image_https_proxy`; `no_proxy`: a comma list) and
//! ironic-python-agent hands them to python-requests. Proxies are reached
//! over plain HTTP (`http://[user:password@]host[:port]`); the userinfo
//! becomes `Proxy-Authorization: Basic …` and prints as `******`.

use super::{err, string, Error};
use crate::wire::base64;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde_json::{Map, Value};

#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value, from the URL's userinfo.
    authorization: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.authorization.is_some() {
            "******@"
        } else {
            ""
        };
        write!(f, "http://{auth}{}:{}", self.host, self.port)
    }
}

impl Proxy {
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// `http://[user[:password]@]host[:port][/]`.
    pub fn parse(url: &str) -> Result<Proxy, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                "a {scheme}:// proxy is not supported: rivet reaches proxies over http:// (https \
                     URLs still go through them encrypted, with CONNECT)"
            ))
            }
            // requests takes a bare host:port as an http proxy.
            None => url,
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = host_port(hostport)?;
        let authorization = userinfo.map(|u| {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            let pair = format!("{}:{}", percent_decoded(user), percent_decoded(password));
            format!("Basic {}", base64::encode(pair.as_bytes()))
        });
        Ok(Proxy {
            host,
            port,
            authorization,
        })
    }
}

fn host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("'{s}' is no host[:port]");
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
        return Err(bad());
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The proxies of a plan and the hosts that bypass them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    no_proxy: Vec<String>,
}

impl Proxies {
    /// From `proxies` and `no_proxy`; none when absent.
    pub fn from_plan(o: &Map<String, Value>) -> Result<Proxies, Error> {
        let mut p = Proxies::default();
        match o.get("proxies") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (scheme, url) in m {
                    let key = format!("proxies.{scheme}");
                    let url = match url {
                        Value::Null => continue,
                        Value::String(s) if s.is_empty() => continue,
                        Value::String(s) => s,
                        other => {
                            return Err(err(&key, format!("expected a proxy URL, got {other}")))
                        }
                    };
                    let proxy = Proxy::parse(url).map_err(|e| err(&key, e))?;
                    match scheme.as_str() {
                        "http" => p.http = Some(proxy),
                        "https" => p.https = Some(proxy),
                        // requests also knows "all" and "scheme://host" keys.
                        "all" => {
                            p.http.get_or_insert(proxy.clone());
                            p.https.get_or_insert(proxy);
                        }
                        other => {
                            return Err(err(
                                &key,
                                format!("'{other}': the schemes are http, https, all"),
                            ))
                        }
                    }
                }
            }
            Some(other) => return Err(err("proxies", format!("expected an object, got {other}"))),
        }
        if let Some(list) = string(o, "no_proxy")? {
            p.no_proxy = list
                .split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect();
        }
        Ok(p)
    }

    /// The proxy a URL of this scheme, host and port goes through, if any.
    pub fn for_url(&self, https: bool, host: &str, port: u16) -> Option<&Proxy> {
        let proxy = if https {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }?;
        (!self.bypassed(host, port)).then_some(proxy)
    }

    /// no_proxy as curl and python-requests read it: `*` for every host;
    /// a name for itself and every name below it (`example.com` and
    /// `.example.com` both cover `img.example.com`); `host:port` for that
    /// port only; an IPv4 address or CIDR range for the addresses in it.
    fn bypassed(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let with_port = format!("{host}:{port}");
        self.no_proxy.iter().any(|e| {
            if e == "*" || *e == with_port {
                return true;
            }
            if let Some(net) = cidr(e) {
                return ipv4(&host).is_some_and(|a| in_net(a, net));
            }
            let name = e.trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        })
    }
}

fn ipv4(s: &str) -> Option<u32> {
    let parts: Vec<u8> = s
        .split('.')
        .map(|p| p.parse::<u8>().ok())
        .collect::<Option<_>>()?;
    (parts.len() == 4).then(|| u32::from_be_bytes([parts[0], parts[1], parts[2], parts[3]]))
}

/// `a.b.c.d/n` (or a bare address, /32).
fn cidr(e: &str) -> Option<(u32, u32)> {
    let (addr, bits) = match e.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok().filter(|&b| b <= 32)?),
        None => (e, 32),
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some((ipv4(addr)? & mask, mask))
}

fn in_net(a: u32, (net, mask): (u32, u32)) -> bool {
    a & mask == net
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(json: &str) -> Result<Proxies, Error> {
        let v: Value = serde_json::from_str(json).unwrap();
        Proxies::from_plan(v.as_object().unwrap())
    }

    #[test]
    fn proxies_and_no_proxy_as_ironic_passes_them() {
        let p = from(r#"{"proxies": {"http": "http://squid.lab:3128", "https": "http://ironic:s%40cret@10.0.0.9:8080/"},
                         "no_proxy": " .internal, 10.77.0.0/16,images.lab:8080 ,localhost"}"#)
        .unwrap();
        let via = |https, host: &str, port| p.for_url(https, host, port).map(|x| x.to_string());
        assert_eq!(
            via(false, "cdn.example.com", 80).as_deref(),
            Some("squid.lab:3128")
        );
        assert_eq!(
            via(true, "registry.example.com", 443).as_deref(),
            Some("10.0.0.9:8080")
        );
        let https = p.for_url(true, "x", 443).unwrap();
        // base64 of "ironic:s@cret"
        assert_eq!(https.authorization(), Some("Basic aXJvbmljOnNAY3JldA=="));
        assert_eq!(format!("{https:?}"), "http://******@10.0.0.9:8080");
        for (host, port) in [
            ("a.internal", 80),
            ("internal", 80),
            ("10.77.3.4", 80),
            ("images.lab", 8080),
            ("LOCALHOST", 80),
        ] {
            assert_eq!(via(false, host, port), None, "{host}:{port} bypasses");
        }
        for (host, port) in [
            ("notinternal", 80),
            ("10.78.0.1", 80),
            ("images.lab", 80),
            ("localhost.evil", 80),
        ] {
            assert!(
                via(false, host, port).is_some(),
                "{host}:{port} goes through"
            );
        }
        assert_eq!(
            from(r#"{"proxies": {"all": "proxy:81"}, "no_proxy": "*"}"#)
                .unwrap()
                .for_url(true, "a", 1),
            None
        );
        assert_eq!(
            from(r#"{"proxies": {"all": "proxy:81"}}"#)
                .unwrap()
                .for_url(true, "a", 1)
                .unwrap()
                .to_string(),
            "proxy:81"
        );
        assert_eq!(from("{}").unwrap(), Proxies::default());
    }

    #[test]
    fn proxies_rivet_cannot_use_are_refused_by_key() {
        let e = from(r#"{"proxies": {"https": "https://proxy:443"}}"#).unwrap_err();
        assert_eq!(e.key, "proxies.https");
        assert!(e.problem.contains("https:// proxy is not supported"), "{e}");
        let e = from(r#"{"proxies": {"ftp": "http://p:1"}}"#).unwrap_err();
        assert!(
            e.problem.contains("the schemes are http, https, all"),
            "{e}"
        );
        assert!(from(r#"{"proxies": {"http": "http://p:99999"}}"#).is_err());
        assert!(from(r#"{"proxies": "http://p:1"}"#).is_err());
    }
}

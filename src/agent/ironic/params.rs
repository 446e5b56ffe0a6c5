//! The kernel parameters ironic-python-agent reads, as far as they mean
//! something to rivet. Ironic mode is on when `ipa-api-url=` is given.

use crate::cmdline::Cmdline;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Ironic API endpoints, tried in order (`ipa-api-url=a,b`).
    pub api_urls: Vec<String>,
    /// A token given on the command line (virtual media boots).
    pub agent_token: Option<String>,
    /// Sent as `X-OpenStack-Request-ID` on every Ironic API call.
    pub global_request_id: Option<String>,
    pub lookup_timeout_s: u64,
    pub lookup_interval_s: u64,
    pub listen_port: u16,
    /// The address put in `callback_url`; default: our own address.
    pub advertise_host: Option<String>,
    pub advertise_port: u16,
    /// `ipa-ironic-api-version`: skip discovery and use this version.
    pub api_version: Option<(u32, u32)>,
    pub insecure: bool,
    /// `ipa-advertise-protocol=http`: serve the agent API without TLS even
    /// when the conductor could take it (the default is auto-TLS).
    pub plain_http: bool,
    /// `ipa-debug=1`: debug logging.
    pub debug: bool,
    pub warnings: Vec<String>,
}

fn version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl Params {
    /// None when the command line does not ask for Ironic mode.
    pub fn from_cmdline(c: &Cmdline) -> Option<Params> {
        let urls = c.ipa.get("ipa-api-url")?;
        let mut p = Params {
            api_urls: Vec::new(),
            agent_token: c
                .ipa
                .get("ipa-agent-token")
                .cloned()
                .filter(|t| !t.is_empty()),
            global_request_id: c.ipa.get("ipa-global-request-id").cloned(),
            lookup_timeout_s: 600,
            lookup_interval_s: 1,
            listen_port: 9999,
            advertise_host: c.ipa.get("ipa-advertise-host").cloned(),
            advertise_port: 9999,
            api_version: None,
            insecure: false,
            plain_http: false,
            debug: false,
            warnings: Vec::new(),
        };
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            if url.starts_with("http://") || url.starts_with("https://") {
                p.api_urls.push(url.trim_end_matches('/').to_string());
            } else {
                p.warnings.push(format!("ipa-api-url {url}: not an http:// or https:// URL (mdns discovery is not supported); skipped"));
            }
        }
        let mut number = |key: &str, into: &mut u64| {
            if let Some(v) = c.ipa.get(key) {
                match v.parse::<f64>() {
                    Ok(n) if n >= 0.0 => *into = n.ceil() as u64,
                    _ => p.warnings.push(format!(
                        "{key}='{v}' is not a number of seconds; using {into}"
                    )),
                }
            }
        };
        number("ipa-lookup-timeout", &mut p.lookup_timeout_s);
        number("ipa-lookup-interval", &mut p.lookup_interval_s);
        for (key, into) in [
            ("ipa-listen-port", &mut p.listen_port),
            ("ipa-advertise-port", &mut p.advertise_port),
        ] {
            if let Some(v) = c.ipa.get(key) {
                match v.parse::<u16>() {
                    Ok(n) if n > 0 => *into = n,
                    _ => p
                        .warnings
                        .push(format!("{key}='{v}' is not a TCP port; using {into}")),
                }
            }
        }
        if let Some(v) = c.ipa.get("ipa-ironic-api-version") {
            match version(v) {
                Some(ver) => p.api_version = Some(ver),
                None => p.warnings.push(format!(
                    "ipa-ironic-api-version='{v}' is not MAJOR.MINOR; discovering it"
                )),
            }
        }
        let truthy = |v: &String| crate::cmdline::truthy(v);
        p.insecure = c.ipa.get("ipa-insecure").is_some_and(truthy);
        p.debug = c.ipa.get("ipa-debug").is_some_and(truthy);
        match c.ipa.get("ipa-advertise-protocol").map(String::as_str) {
            None | Some("https") => {}
            Some("http") => p.plain_http = true,
            Some(v) => p.warnings.push(format!(
                "ipa-advertise-protocol={v}: not http or https; using auto-TLS"
            )),
        }
        for key in c.ipa.keys() {
            if !HONOURED.contains(&key.as_str()) {
                p.warnings.push(format!("{key} is not used by rivet"));
            }
        }
        Some(p)
    }
}

/// The `ipa-*` keys rivet acts on (the README lists them).
pub const HONOURED: &[&str] = &[
    "ipa-api-url",
    "ipa-agent-token",
    "ipa-global-request-id",
    "ipa-lookup-timeout",
    "ipa-lookup-interval",
    "ipa-listen-port",
    "ipa-advertise-host",
    "ipa-advertise-port",
    "ipa-advertise-protocol",
    "ipa-ironic-api-version",
    "ipa-insecure",
    "ipa-debug",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_ironic_puts_on_the_command_line() {
        let c = Cmdline::parse(
            "nofb vga=normal ipa-api-url=http://10.0.2.2:6385/,https://ironic.example:6385,mdns \
             ipa-global-request-id=req-1 BOOTIF=01-52-54-00-12-34-56 ipa-lookup-timeout=30 \
             ipa-advertise-port=19999 ipa-inspection-collectors=default ipa-lookup-interval=x \
             ipa-insecure=True",
        );
        let p = Params::from_cmdline(&c).expect("ironic mode");
        assert_eq!(
            p.api_urls,
            vec!["http://10.0.2.2:6385", "https://ironic.example:6385"]
        );
        assert!(p.insecure);
        assert_eq!(p.global_request_id.as_deref(), Some("req-1"));
        assert_eq!((p.lookup_timeout_s, p.lookup_interval_s), (30, 1));
        assert_eq!((p.listen_port, p.advertise_port), (9999, 19999));
        let w = p.warnings.join("\n");
        assert!(
            w.contains("ipa-api-url mdns: not an http:// or https:// URL"),
            "{w}"
        );
        assert!(w.contains("ipa-inspection-collectors is not used"), "{w}");
        assert!(w.contains("ipa-lookup-interval='x'"), "{w}");
        assert!(Params::from_cmdline(&Cmdline::parse("rivet.plan=http://a/p")).is_none());
    }
}

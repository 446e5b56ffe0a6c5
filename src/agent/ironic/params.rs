//! The kernel parameters ironic-python-agent reads, as far as they mean
//! something to rivet. Ironic mode is on when `ipa-api-url=` or
//! `ipa-inspection-callback-url=` is given.

use crate::cmdline::Cmdline;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Ironic API endpoints, tried in order (`ipa-api-url=a,b`).
    pub api_urls: Vec<String>,
    /// A token given on the command line (virtual media boots).
    pub agent_token: Option<super::token::AgentToken>,
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
    /// Where inspection data goes (`ipa-inspection-callback-url`, else
    /// `{api}/v1/continue_inspection` when collectors are named); empty:
    /// no inspection.
    pub inspection_urls: Vec<String>,
    /// `ipa-inspection-collectors` as given.
    pub inspection_collectors: Option<String>,
    /// `ipa-collect-lldp=1` and how long to listen (`ipa-lldp-timeout`).
    pub collect_lldp: bool,
    pub lldp_timeout_s: u64,
    /// `ipa-inspection-dhcp-all-interfaces=1`.
    pub dhcp_all_interfaces: bool,
    /// `ipa-enable-vlan-interfaces=` entries: `NIC.ID`, `NIC` or `all`.
    pub enable_vlan_interfaces: Vec<String>,
    /// `ipa-cafile=`: the CA the Ironic API's certificate is checked
    /// against (else [`ironic_ca`] finds Metal3's).
    pub cafile: Option<String>,
    pub warnings: Vec<String>,
}

impl Params {
    /// None when the command line does not ask for Ironic mode.
    pub fn from_cmdline(c: &Cmdline) -> Option<Params> {
        let callback = c.ipa.get("ipa-inspection-callback-url");
        let urls = match (c.ipa.get("ipa-api-url"), callback) {
            (Some(u), _) => u.clone(),
            (None, Some(_)) => String::new(),
            (None, None) => return None,
        };
        let mut p = Params {
            api_urls: Vec::new(),
            agent_token: c
                .ipa
                .get("ipa-agent-token")
                .filter(|t| !t.is_empty())
                .map(super::token::AgentToken::new),
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
            inspection_urls: Vec::new(),
            inspection_collectors: c.ipa.get("ipa-inspection-collectors").cloned(),
            collect_lldp: false,
            lldp_timeout_s: 30,
            dhcp_all_interfaces: false,
            enable_vlan_interfaces: Vec::new(),
            cafile: c.ipa.get("ipa-cafile").cloned(),
            warnings: Vec::new(),
        };
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            if url.starts_with("http://") || url.starts_with("https://") {
                p.api_urls.push(url.trim_end_matches('/').to_string());
            } else {
                p.warnings.push(format!("ipa-api-url {url}: not an http:// or https:// URL (mdns discovery is not supported); skipped"));
            }
        }
        match callback.map(String::as_str) {
            Some("mdns") => p
                .warnings
                .push("ipa-inspection-callback-url=mdns: mDNS discovery is not supported".into()),
            Some(list) => {
                p.inspection_urls = list
                    .split(',')
                    .map(str::trim)
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                    .map(str::to_string)
                    .collect()
            }
            None if p.inspection_collectors.is_some() => {
                p.inspection_urls = p
                    .api_urls
                    .iter()
                    .map(|u| format!("{u}/v1/continue_inspection"))
                    .collect()
            }
            None => {}
        }
        let mut number = |key: &str, into: &mut u64| {
            if let Some(v) = c.ipa.get(key) {
                match crate::cmdline::decimal(v) {
                    Some(n) if n >= 0.0 => *into = n.ceil() as u64,
                    _ => p.warnings.push(format!(
                        "{key}='{v}' is not a number of seconds; using {into}"
                    )),
                }
            }
        };
        number("ipa-lookup-timeout", &mut p.lookup_timeout_s);
        number("ipa-lookup-interval", &mut p.lookup_interval_s);
        number("ipa-lldp-timeout", &mut p.lldp_timeout_s);
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
            match super::conductor::version(v) {
                Some(ver) => p.api_version = Some(ver),
                None => p.warnings.push(format!(
                    "ipa-ironic-api-version='{v}' is not MAJOR.MINOR; discovering it"
                )),
            }
        }
        let truthy = |v: &String| crate::cmdline::truthy(v);
        p.insecure = c.ipa.get("ipa-insecure").is_some_and(truthy);
        p.debug = c.ipa.get("ipa-debug").is_some_and(truthy);
        p.collect_lldp = c.ipa.get("ipa-collect-lldp").is_some_and(truthy);
        p.enable_vlan_interfaces = c
            .ipa
            .get("ipa-enable-vlan-interfaces")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        p.dhcp_all_interfaces = c
            .ipa
            .get("ipa-inspection-dhcp-all-interfaces")
            .is_some_and(truthy);
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
    "ipa-enable-vlan-interfaces",
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
    "ipa-inspection-callback-url",
    "ipa-inspection-collectors",
    "ipa-collect-lldp",
    "ipa-lldp-timeout",
    "ipa-inspection-dhcp-all-interfaces",
    "ipa-cafile",
];

/// Where Metal3 puts the CA of Ironic's API: a second initrd carrying
/// `/etc/ironic-python-agent/ironic.crt` and a config file naming it
/// (`[DEFAULT] cafile = …` in `/etc/ironic-python-agent.d/*.conf`).
pub const METAL3_CA: &str = "/etc/ironic-python-agent/ironic.crt";
pub const CONF_DIR: &str = "/etc/ironic-python-agent.d";

/// `cafile = PATH` of an oslo.config file's [DEFAULT] section.
pub fn conf_cafile(text: &str) -> Option<String> {
    let mut section = "DEFAULT".to_string();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if section == "DEFAULT" {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "cafile" && !v.trim().is_empty() {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

/// The CA bundle for Ironic's API: `ipa-cafile=`, else a config file's
/// `cafile`, else Metal3's `ironic.crt` when present; `None`: the system's.
pub fn ironic_ca(param: Option<&str>, root: &std::path::Path) -> Option<String> {
    if let Some(p) = param {
        return Some(p.to_string());
    }
    let mut confs: Vec<_> = std::fs::read_dir(root.join(CONF_DIR.trim_start_matches('/')))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    confs.sort_unstable();
    for conf in confs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
    {
        if let Some(ca) = std::fs::read_to_string(conf)
            .ok()
            .and_then(|t| conf_cafile(&t))
        {
            return Some(ca);
        }
    }
    let metal3 = root.join(METAL3_CA.trim_start_matches('/'));
    metal3.exists().then(|| METAL3_CA.to_string())
}

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
        assert!(w.contains("ipa-lookup-interval='x'"), "{w}");
        // Collectors with an API URL: inspection at the API.
        assert_eq!(
            p.inspection_urls,
            [
                "http://10.0.2.2:6385/v1/continue_inspection",
                "https://ironic.example:6385/v1/continue_inspection"
            ]
        );
        assert!(Params::from_cmdline(&Cmdline::parse("rivet.plan=http://a/p")).is_none());
    }

    #[test]
    fn the_ca_comes_from_the_parameter_a_config_file_or_metal3s_second_initrd() {
        let root = std::env::temp_dir().join(format!("rivet-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(ironic_ca(None, &root), None);
        std::fs::create_dir_all(root.join("etc/ironic-python-agent")).unwrap();
        std::fs::write(root.join("etc/ironic-python-agent/ironic.crt"), "PEM").unwrap();
        assert_eq!(ironic_ca(None, &root).as_deref(), Some(METAL3_CA));
        std::fs::create_dir_all(root.join("etc/ironic-python-agent.d")).unwrap();
        std::fs::write(
            root.join("etc/ironic-python-agent.d/ironic-tls.conf"),
            "[DEFAULT]\ncafile = /etc/ironic-python-agent/other.crt\n[agent]\ncafile = no\n",
        )
        .unwrap();
        assert_eq!(
            ironic_ca(None, &root).as_deref(),
            Some("/etc/ironic-python-agent/other.crt")
        );
        assert_eq!(ironic_ca(Some("/x.pem"), &root).as_deref(), Some("/x.pem"));
        assert_eq!(conf_cafile("[agent]\ncafile=/a\n"), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn what_metal3_puts_on_the_command_line_for_inspection() {
        let c = Cmdline::parse(
            "ipa-inspection-callback-url=https://172.22.0.2:6385/v1/continue_inspection              ipa-inspection-collectors=default,logs ipa-enable-vlan-interfaces=all              ipa-inspection-dhcp-all-interfaces=1 ipa-collect-lldp=1 ipa-lldp-timeout=5 ipa-insecure=1",
        );
        let p = Params::from_cmdline(&c).expect("inspection alone is Ironic mode");
        assert!(p.api_urls.is_empty());
        assert_eq!(
            p.inspection_urls,
            ["https://172.22.0.2:6385/v1/continue_inspection"]
        );
        assert_eq!(p.inspection_collectors.as_deref(), Some("default,logs"));
        assert!(p.collect_lldp && p.dhcp_all_interfaces && p.insecure);
        assert_eq!(p.lldp_timeout_s, 5);
        let w = p.warnings.join("\n");
        assert!(!w.contains("ipa-enable-vlan-interfaces"), "{w}");
        assert_eq!(p.enable_vlan_interfaces, ["all"]);
        let mdns =
            Params::from_cmdline(&Cmdline::parse("ipa-inspection-callback-url=mdns")).unwrap();
        assert!(mdns.inspection_urls.is_empty());
        assert!(mdns.warnings[0].contains("mDNS"), "{:?}", mdns.warnings);
    }
}

//! rivet as a client of the Ironic API: version discovery, lookup and
//! heartbeat, with the headers and bodies ironic-python-agent sends
//! (`ironic_api_client.py`). Over any [`Transport`], so tests script it.

use crate::net::client::{exchange, Policy};
use crate::net::Transport;
use serde_json::{json, Value};

/// Lowest API version with the ramdisk endpoints and agent_version.
pub const MIN_VERSION: (u32, u32) = (1, 31);
/// Lookup asks for ≥ 1.62 to receive the agent token.
const LOOKUP_VERSION: (u32, u32) = (1, 62);
/// Heartbeat at 1.68 carries agent_verify_ca (sent only with TLS).
const HEARTBEAT_VERSION: (u32, u32) = (1, 68);

pub struct IronicApi {
    /// Base URL without a trailing slash.
    pub url: String,
    pub version: (u32, u32),
    pub request_id: Option<String>,
    pub policy: Policy,
}

/// What lookup tells the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub node_uuid: String,
    pub node: Value,
    pub heartbeat_timeout_s: u64,
    /// None when the conductor has handed it out already ("******").
    pub token: Option<String>,
    pub token_required: bool,
    pub md5_enabled: bool,
    /// `permitted_image_formats` and `disable_deep_image_inspection`.
    pub image_checks: crate::deploy::format::Checks,
    /// The lowest TLS version the agent API may speak ("1.2", "1.3").
    pub tls_min_version: Option<String>,
    /// OpenSSL-style `A:B:C` list for the agent API's TLS 1.2 suites.
    pub tls_cipher_suites: Option<String>,
    /// `[agent]enable_bios_bootloader_install`: asks for grub-install,
    /// which rivet never runs (said by name when it matters).
    pub bios_bootloader_install: bool,
}

/// A lookup attempt that did not find the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotYet {
    pub why: String,
    /// The conductor holds the node (409): wait longer.
    pub conflict: bool,
}

fn v(s: (u32, u32)) -> String {
    format!("{}.{}", s.0, s.1)
}

impl IronicApi {
    pub fn new(url: &str, request_id: Option<String>) -> IronicApi {
        IronicApi {
            url: url.trim_end_matches('/').to_string(),
            version: MIN_VERSION,
            request_id,
            policy: Policy {
                connect_timeout_ms: 10_000,
                idle_timeout_ms: 30_000,
                retries: 0,
                ..Policy::default()
            },
        }
    }

    fn call<T: Transport>(
        &self,
        t: &mut T,
        method: &str,
        path: &str,
        version: (u32, u32),
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), String> {
        let ver = v(version.min(self.version));
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("X-OpenStack-Ironic-API-Version", ver.as_str()),
        ];
        if let Some(id) = &self.request_id {
            headers.push(("X-OpenStack-Request-ID", id.as_str()));
        }
        let url = format!("{}{path}", self.url);
        exchange(t, method, &url, &headers, body, self.policy).map_err(|e| e.to_string())
    }

    /// `GET /`: the API's default version, else the minimum (as the real
    /// agent falls back).
    pub fn discover_version<T: Transport>(&mut self, t: &mut T) {
        self.version = (u32::MAX, u32::MAX);
        let found = self
            .call(t, "GET", "/", (u32::MAX, u32::MAX), None)
            .ok()
            .filter(|(s, _)| *s == 200)
            .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|j| j["default_version"]["version"].as_str().map(str::to_string))
            .and_then(|s| {
                let (a, b) = s.split_once('.')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            });
        self.version = found.unwrap_or(MIN_VERSION);
        log::info!(
            "Ironic API {} version {}{}",
            self.url,
            v(self.version),
            if found.is_none() {
                " (not discovered; assumed)"
            } else {
                ""
            }
        );
    }

    /// One `GET /v1/lookup?addresses=…`.
    pub fn lookup_once<T: Transport>(&self, t: &mut T, macs: &[String]) -> Result<Lookup, NotYet> {
        let path = format!("/v1/lookup?addresses={}", macs.join(","));
        let (status, body) = self
            .call(t, "GET", &path, LOOKUP_VERSION, None)
            .map_err(|why| NotYet {
                why,
                conflict: false,
            })?;
        let text = String::from_utf8_lossy(&body);
        if status != 200 {
            return Err(NotYet {
                why: format!(
                    "lookup answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                ),
                conflict: status == 409,
            });
        }
        let j: Value = serde_json::from_slice(&body).map_err(|e| NotYet {
            why: format!("lookup answer is not JSON: {e}"),
            conflict: false,
        })?;
        parse_lookup(&j).ok_or_else(|| NotYet {
            why: format!(
                "lookup answer has no node uuid: {}",
                text.chars().take(300).collect::<String>()
            ),
            conflict: false,
        })
    }

    /// Whether the conductor takes `agent_verify_ca` (auto-TLS, API 1.68).
    pub fn supports_auto_tls(&self) -> bool {
        self.version >= HEARTBEAT_VERSION
    }

    /// `POST /v1/heartbeat/{node}`; Ok on 202, as the only success.
    pub fn heartbeat<T: Transport>(
        &self,
        t: &mut T,
        node: &str,
        callback_url: &str,
        token: Option<&str>,
        verify_ca: Option<&str>,
    ) -> Result<(), String> {
        let mut body = json!({"callback_url": callback_url, "agent_version": crate::VERSION});
        if let Some(tok) = token {
            body["agent_token"] = json!(tok);
        }
        if let Some(pem) = verify_ca {
            body["agent_verify_ca"] = json!(pem);
        }
        let bytes = body.to_string();
        let path = format!("/v1/heartbeat/{node}");
        match self.call(t, "POST", &path, HEARTBEAT_VERSION, Some(bytes.as_bytes()))? {
            (202, _) => Ok(()),
            (409, b) => Err(format!("heartbeat conflict (409): {}", refusal_reason(&b))),
            (s, b) => {
                let why = refusal_reason(&b);
                Err(format!("heartbeat refused ({s}): {why}{}", hint(&why)))
            }
        }
    }
}

/// The reason in an Ironic API error: `error_message` holds a JSON string
/// whose `faultstring` says it (older APIs put the text there directly).
fn refusal_reason(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return text;
    };
    match v["error_message"].as_str() {
        Some(inner) => serde_json::from_str::<Value>(inner)
            .ok()
            .and_then(|i| i["faultstring"].as_str().map(str::to_string))
            .unwrap_or_else(|| inner.to_string()),
        None => text,
    }
}

/// What to do about the refusals an operator can act on.
fn hint(why: &str) -> &'static str {
    if why.contains("TLS is required") {
        " (the conductor requires TLS: drop ipa-advertise-protocol=http, or set \
         [agent]require_tls=False there)"
    } else if why.contains("agent_verify_ca") {
        " (the conductor holds the certificate of an earlier agent on this node; \
         it forgets it when Ironic itself reboots the node into the ramdisk)"
    } else {
        ""
    }
}

/// Reads a lookup answer (new format with `config`, or the old one with a
/// top-level `heartbeat_timeout`).
pub fn parse_lookup(j: &Value) -> Option<Lookup> {
    let node = j.get("node")?;
    let uuid = node.get("uuid")?.as_str()?.to_string();
    let config = j.get("config").unwrap_or(j);
    let token = config["agent_token"]
        .as_str()
        .filter(|t| t.len() >= 32 && *t != "******")
        .map(str::to_string);
    Some(Lookup {
        node_uuid: uuid,
        node: node.clone(),
        heartbeat_timeout_s: config["heartbeat_timeout"].as_u64().unwrap_or(300),
        token,
        token_required: config["agent_token_required"].as_bool().unwrap_or(false),
        md5_enabled: config["agent_md5_checksum_enable"]
            .as_bool()
            .unwrap_or(true),
        image_checks: crate::deploy::format::Checks {
            permitted: config["permitted_image_formats"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            inspect: !config["disable_deep_image_inspection"]
                .as_bool()
                .unwrap_or(false),
        },
        tls_min_version: config["tls_min_version"].as_str().map(str::to_string),
        tls_cipher_suites: config["tls_cipher_suites"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        bios_bootloader_install: config["enable_bios_bootloader_install"]
            .as_bool()
            .unwrap_or(false),
    })
}

/// Looks up across the API URLs until found or `timeout_ms` passes, with
/// the real agent's backoff: random exponential from `interval_ms` to 60 s,
/// longer after a 409. `rand` gives random numbers.
pub fn lookup<T: Transport>(
    t: &mut T,
    apis: &mut [IronicApi],
    macs: &[String],
    timeout_ms: u64,
    interval_ms: u64,
    rand: &mut dyn FnMut() -> u32,
) -> Result<(usize, Lookup), String> {
    let deadline = t.now_ms() + timeout_ms;
    let mut ceiling = interval_ms.max(100);
    let mut conflicts = 0u32;
    let mut last = String::from("no Ironic API URL");
    loop {
        for (i, api) in apis.iter_mut().enumerate() {
            if api.version == MIN_VERSION {
                api.discover_version(t);
            }
            match api.lookup_once(t, macs) {
                Ok(found) => return Ok((i, found)),
                Err(e) => {
                    log::warn!("lookup at {}: {}", api.url, e.why);
                    if e.conflict {
                        conflicts += 1;
                    }
                    last = e.why;
                }
            }
        }
        let now = t.now_ms();
        if now >= deadline {
            return Err(format!(
                "no node found by lookup within {} s: {last}",
                timeout_ms / 1000
            ));
        }
        let wait = if conflicts > 0 {
            [5_000, 10_000, 30_000][(conflicts as usize - 1).min(2)]
        } else {
            let w =
                interval_ms + (ceiling - interval_ms.min(ceiling)) * rand() as u64 / (1u64 << 32);
            ceiling = (ceiling * 2).min(60_000);
            w
        };
        t.sleep_ms(wait.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::testing::FakeServer;

    #[test]
    fn lookup_reads_ironic_39_config_and_old_format() {
        let j = json!({"node": {"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "instance_info": {}},
                       "config": {"heartbeat_timeout": 300, "agent_token": "x".repeat(43),
                                  "agent_token_required": true, "agent_md5_checksum_enable": false}});
        let l = parse_lookup(&j).unwrap();
        assert_eq!(l.node_uuid, "1be26c0b-03f2-4d2e-ae87-c02d7f33c123");
        assert_eq!(
            (l.heartbeat_timeout_s, l.token_required, l.md5_enabled),
            (300, true, false)
        );
        assert_eq!(l.token.as_deref().map(str::len), Some(43));
        let masked = json!({"node": {"uuid": "u"}, "config": {"agent_token": "******"}});
        assert_eq!(parse_lookup(&masked).unwrap().token, None);
        let old = json!({"node": {"uuid": "u"}, "heartbeat_timeout": 60});
        assert_eq!(parse_lookup(&old).unwrap().heartbeat_timeout_s, 60);
        assert!(parse_lookup(&json!({"node": {}})).is_none());
    }

    #[test]
    fn lookup_carries_the_image_checks() {
        let j = json!({"node": {"uuid": "u"},
                       "config": {"permitted_image_formats": ["raw", "gpt", "qcow2", "iso"],
                                  "disable_deep_image_inspection": false}});
        let c = parse_lookup(&j).unwrap().image_checks;
        assert_eq!(
            (c.permitted, c.inspect),
            (
                vec!["raw".into(), "gpt".into(), "qcow2".into(), "iso".into()],
                true
            )
        );
        let off = json!({"node": {"uuid": "u"}, "config": {"disable_deep_image_inspection": true}});
        let c = parse_lookup(&off).unwrap().image_checks;
        assert_eq!((c.permitted.len(), c.inspect), (0, false));
    }

    #[test]
    fn lookup_retries_404_then_finds_the_node_with_the_right_headers() {
        let found = json!({"node": {"uuid": "n1"}, "config": {"heartbeat_timeout": 30, "agent_token": "t".repeat(32)}});
        let found = found.to_string();
        let mut server = FakeServer::answering(&[
            (200, r#"{"default_version": {"version": "1.115"}}"#),
            (404, r#"{"error_message": "Node not found"}"#),
            (200, &found),
        ]);
        let mut apis = vec![IronicApi::new(
            "http://10.0.2.2:6385/",
            Some("req-9".into()),
        )];
        let macs = vec![
            "52:54:00:12:34:56".to_string(),
            "52:54:00:ab:cd:ef".to_string(),
        ];
        let (i, l) = lookup(&mut server, &mut apis, &macs, 60_000, 1_000, &mut || 0).unwrap();
        assert_eq!((i, l.node_uuid.as_str()), (0, "n1"));
        assert_eq!(apis[0].version, (1, 115));
        let reqs = &server.requests;
        assert!(reqs[0].starts_with("GET / HTTP/1.1\r\n"), "{}", reqs[0]);
        assert!(reqs[1].starts_with(
            "GET /v1/lookup?addresses=52:54:00:12:34:56,52:54:00:ab:cd:ef HTTP/1.1\r\n"
        ));
        assert!(
            reqs[1].contains("X-OpenStack-Ironic-API-Version: 1.62\r\n"),
            "{}",
            reqs[1]
        );
        assert!(reqs[1].contains("X-OpenStack-Request-ID: req-9\r\n"));
        assert!(server.now >= 1_000, "waited between attempts");
    }

    #[test]
    fn lookup_gives_up_at_the_timeout() {
        let mut server = FakeServer::answering(&[(404, "{}"); 200]);
        let mut apis = vec![IronicApi::new("http://10.0.2.2:6385", None)];
        let err = lookup(
            &mut server,
            &mut apis,
            &["m".into()],
            10_000,
            1_000,
            &mut || u32::MAX,
        )
        .unwrap_err();
        assert!(err.contains("within 10 s") && err.contains("404"), "{err}");
        assert!(
            server.now >= 10_000 && server.now < 20_000,
            "{}",
            server.now
        );
    }

    #[test]
    fn heartbeat_sends_what_the_conductor_checks() {
        let mut server = FakeServer::answering(&[
            (202, ""),
            (
                400,
                r#"{"error_message": "Invalid or missing agent token received."}"#,
            ),
        ]);
        let mut api = IronicApi::new("http://10.0.2.2:6385", None);
        api.version = (1, 115);
        assert!(api.supports_auto_tls());
        api.heartbeat(
            &mut server,
            "n1",
            "https://10.0.2.15:9999",
            Some("tok"),
            Some("-----BEGIN CERTIFICATE-----\n"),
        )
        .unwrap();
        let req = &server.requests[0];
        assert!(req.starts_with("POST /v1/heartbeat/n1 HTTP/1.1\r\n"));
        assert!(req.contains("X-OpenStack-Ironic-API-Version: 1.68\r\n"));
        assert_eq!(server.posts[0].0, "/v1/heartbeat/n1");
        let body: Value = serde_json::from_slice(&server.posts[0].1).unwrap();
        assert_eq!(
            body,
            json!({"callback_url": "https://10.0.2.15:9999", "agent_token": "tok", "agent_version": crate::VERSION,
                   "agent_verify_ca": "-----BEGIN CERTIFICATE-----\n"})
        );
        let err = api
            .heartbeat(&mut server, "n1", "http://10.0.2.15:9999", None, None)
            .unwrap_err();
        let body: Value = serde_json::from_slice(&server.posts[1].1).unwrap();
        assert_eq!(body.get("agent_verify_ca"), None, "only sent with TLS");
        api.version = (1, 67);
        assert!(!api.supports_auto_tls());
        assert!(err.contains("400") && err.contains("agent token"), "{err}");
    }

    #[test]
    fn refusals_are_read_from_ironics_nested_faultstring() {
        let nested = br#"{"error_message": "{\"faultstring\": \"TLS is required by configuration\", \"faultcode\": \"Client\", \"debuginfo\": null}"}"#;
        assert_eq!(refusal_reason(nested), "TLS is required by configuration");
        assert_eq!(
            refusal_reason(br#"{"error_message": "Node not found"}"#),
            "Node not found"
        );
        assert_eq!(refusal_reason(b"<html>502</html>"), "<html>502</html>");
        let mut server = FakeServer::answering(&[(400, core::str::from_utf8(nested).unwrap())]);
        let api = IronicApi::new("http://10.0.2.2:6385", None);
        let err = api
            .heartbeat(&mut server, "n1", "http://10.0.2.15:9999", Some("t"), None)
            .unwrap_err();
        assert!(
            err.starts_with("heartbeat refused (400): TLS is required by configuration (the conductor requires TLS"),
            "{err}"
        );
    }
}

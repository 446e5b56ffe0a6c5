//! rivet as a client of the Ironic API: version discovery, lookup and
//! heartbeat, with the headers and bodies ironic-python-agent sends
//! (`ironic_api_client.py`). Over any [`Transport`], so tests script it.

use super::token::AgentToken;
use crate::net::client::{exchange, Policy};
use crate::net::Transport;
use serde_json::{json, Value};

/// Lowest API version with the ramdisk endpoints; what the agent assumes
/// while discovery has not succeeded.
pub const MIN_VERSION: (u32, u32) = (1, 31);
/// From 1.36 a heartbeat may carry `agent_version`.
const AGENT_VERSION_VERSION: (u32, u32) = (1, 36);
/// Lookup asks for ≥ 1.62 to receive the agent token.
const LOOKUP_VERSION: (u32, u32) = (1, 62);
/// Heartbeat at 1.68 carries agent_verify_ca (sent only with TLS).
const HEARTBEAT_VERSION: (u32, u32) = (1, 68);

pub struct IronicApi {
    /// Base URL without a trailing slash.
    pub url: String,
    /// The API's version: discovered from `GET /`, or given with
    /// `ipa-ironic-api-version`. None until then, and discovery is tried
    /// again before the next request (as the real agent keeps only a
    /// version it found).
    pub version: Option<(u32, u32)>,
    pub request_id: Option<String>,
    pub policy: Policy,
}

/// What the lookup answer said of the agent token (`config.agent_token`),
/// each as ironic-python-agent's `process_lookup_data` tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    /// A token of at least 32 characters: this agent's.
    Given(AgentToken),
    /// `"******"`: the conductor handed it out before (to an earlier agent
    /// on this node, or pre-generated for virtual media and given to this
    /// one with `ipa-agent-token=`).
    AlreadyTaken,
    /// No `agent_token` key, or `null`: an API before tokens (< 1.62).
    Absent,
    /// Anything else (too short, not a string): ignored, as the real agent
    /// does, and named in the error when a token is required.
    Invalid(String),
}

impl TokenAnswer {
    fn read(v: &Value) -> TokenAnswer {
        match v {
            Value::Null => TokenAnswer::Absent,
            Value::String(s) if s == "******" => TokenAnswer::AlreadyTaken,
            Value::String(s) if s.chars().count() >= 32 => {
                TokenAnswer::Given(AgentToken::new(s.clone()))
            }
            other => {
                let shown: String = other.to_string().chars().take(40).collect();
                TokenAnswer::Invalid(shown)
            }
        }
    }
}

/// The token the agent works with: the lookup's own, else the one given
/// on the command line (`ipa-agent-token=`, virtual media). An error where
/// the conductor requires one and none is at hand, saying what the lookup
/// actually answered; the real agent locks itself down there too.
pub fn choose_token(
    answer: &TokenAnswer,
    required: bool,
    preshared: Option<&AgentToken>,
) -> Result<Option<AgentToken>, String> {
    if let TokenAnswer::Given(t) = answer {
        return Ok(Some(t.clone()));
    }
    if let TokenAnswer::AlreadyTaken = answer {
        log::warn!("the agent token was handed out before this lookup (\"******\")");
    }
    if let TokenAnswer::Invalid(shown) = answer {
        log::warn!("the lookup's agent_token is not a token: {shown}");
    }
    if let Some(p) = preshared {
        return Ok(Some(p.clone()));
    }
    if !required {
        return Ok(None);
    }
    let said = match answer {
        TokenAnswer::Given(_) => unreachable!("returned above"),
        TokenAnswer::AlreadyTaken => {
            "\"******\": it was handed out before, to another agent or for virtual media"
                .to_string()
        }
        TokenAnswer::Absent => "no agent_token at all".to_string(),
        TokenAnswer::Invalid(shown) => format!("agent_token {shown}, which is not a token"),
    };
    Err(format!(
        "the conductor requires an agent token, the lookup answered {said}, \
         and no ipa-agent-token= was given"
    ))
}

/// What lookup tells the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub node_uuid: String,
    pub node: Value,
    pub heartbeat_timeout_s: u64,
    pub token: TokenAnswer,
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
            version: None,
            request_id,
            policy: Policy {
                connect_timeout_ms: 10_000,
                idle_timeout_ms: 30_000,
                retries: 0,
                ..Policy::default()
            },
        }
    }

    /// The version requests are made with: the API's, or the minimum
    /// while it is unknown.
    pub fn api_version(&self) -> (u32, u32) {
        self.version.unwrap_or(MIN_VERSION)
    }

    /// One request; `version` None sends no version header (Ironic then
    /// answers as its oldest API, and `GET /` lists every version).
    fn call<T: Transport>(
        &self,
        t: &mut T,
        method: &str,
        path: &str,
        version: Option<(u32, u32)>,
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), String> {
        let ver = version.map(|w| v(w.min(self.api_version())));
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ];
        if let Some(ver) = &ver {
            headers.push(("X-OpenStack-Ironic-API-Version", ver.as_str()));
        }
        if let Some(id) = &self.request_id {
            headers.push(("X-OpenStack-Request-ID", id.as_str()));
        }
        let url = format!("{}{path}", self.url);
        exchange(t, method, &url, &headers, body, self.policy).map_err(|e| e.to_string())
    }

    /// `GET /` without a version header, as ironic-python-agent asks:
    /// Ironic answers with every version it has, `default_version.version`
    /// being its highest. Requests are then made at the lower of that and
    /// what each endpoint needs. When discovery fails, the minimum is used
    /// for now and discovery is tried again before the next request.
    pub fn discover_version<T: Transport>(&mut self, t: &mut T) {
        match self
            .call(t, "GET", "/", None, None)
            .and_then(|(status, body)| read_root(status, &body))
        {
            Ok(found) => {
                self.version = Some(found);
                log::info!("Ironic API {} version {}", self.url, v(found));
            }
            Err(why) => log::warn!(
                "Ironic API {}: version discovery failed ({why}); using {} for now",
                self.url,
                v(MIN_VERSION)
            ),
        }
    }

    /// Discovers the version unless it is known.
    pub fn ensure_version<T: Transport>(&mut self, t: &mut T) {
        if self.version.is_none() {
            self.discover_version(t);
        }
    }

    /// One `GET /v1/lookup?addresses=…`.
    pub fn lookup_once<T: Transport>(&self, t: &mut T, macs: &[String]) -> Result<Lookup, NotYet> {
        let path = format!("/v1/lookup?addresses={}", macs.join(","));
        let (status, body) = self
            .call(t, "GET", &path, Some(LOOKUP_VERSION), None)
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
        self.api_version() >= HEARTBEAT_VERSION
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
        // Each field only at the versions that know it: an older API
        // refuses a heartbeat with a field it does not know (406/400).
        let version = self.api_version();
        let mut body = json!({ "callback_url": callback_url });
        if version >= AGENT_VERSION_VERSION {
            body["agent_version"] = json!(crate::VERSION);
        }
        if let (Some(tok), true) = (token, version >= LOOKUP_VERSION) {
            body["agent_token"] = json!(tok);
        }
        if let (Some(pem), true) = (verify_ca, version >= HEARTBEAT_VERSION) {
            body["agent_verify_ca"] = json!(pem);
        }
        let bytes = body.to_string();
        let path = format!("/v1/heartbeat/{node}");
        match self.call(
            t,
            "POST",
            &path,
            Some(HEARTBEAT_VERSION),
            Some(bytes.as_bytes()),
        )? {
            (202, _) => Ok(()),
            (409, b) => Err(format!("heartbeat conflict (409): {}", refusal_reason(&b))),
            (s, b) => {
                let why = refusal_reason(&b);
                Err(format!("heartbeat refused ({s}): {why}{}", hint(&why)))
            }
        }
    }
}

/// Reads Ironic's root document (`GET /`): the highest version is
/// `default_version.version` ("1.115"). The error says what came instead.
pub fn read_root(status: u16, body: &[u8]) -> Result<(u32, u32), String> {
    if status != 200 {
        return Err(format!("answered {status}: {}", refusal_reason(body)));
    }
    let shown = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(200)
            .collect::<String>()
    };
    let j: Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e}): {}", shown()))?;
    let text = j["default_version"]["version"]
        .as_str()
        .ok_or_else(|| format!("no default_version.version in {}", shown()))?;
    version(text).ok_or_else(|| format!("default_version.version {text:?} is not MAJOR.MINOR"))
}

/// "1.68" → (1, 68).
pub fn version(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
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
    let token = TokenAnswer::read(&config["agent_token"]);
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
            api.ensure_version(t);
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
        assert_eq!(l.token, TokenAnswer::Given(AgentToken::new("x".repeat(43))));
        let masked = json!({"node": {"uuid": "u"}, "config": {"agent_token": "******"}});
        assert_eq!(
            parse_lookup(&masked).unwrap().token,
            TokenAnswer::AlreadyTaken
        );
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
        assert_eq!(apis[0].version, Some((1, 115)));
        let reqs = &server.requests;
        assert!(reqs[0].starts_with("GET / HTTP/1.1\r\n"), "{}", reqs[0]);
        assert!(
            !reqs[0].contains("X-OpenStack-Ironic-API-Version"),
            "{}",
            reqs[0]
        );
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
        api.version = Some((1, 115));
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
        api.version = Some((1, 67));
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
        let mut api = IronicApi::new("http://10.0.2.2:6385", None);
        api.version = Some((1, 115));
        let err = api
            .heartbeat(&mut server, "n1", "http://10.0.2.15:9999", Some("t"), None)
            .unwrap_err();
        assert!(
            err.starts_with("heartbeat refused (400): TLS is required by configuration (the conductor requires TLS"),
            "{err}"
        );
    }

    /// Ironic 39's root document, as `GET /` without a version header
    /// answers it (abridged: links left out).
    const ROOT_39: &str = r#"{"name": "OpenStack Ironic API", "description": "Ironic is an OpenStack project which enables the provision and management of baremetal machines.", "default_version": {"id": "v1", "links": [], "status": "CURRENT", "min_version": "1.1", "version": "1.115"}, "versions": [{"id": "v1", "links": [], "status": "CURRENT", "min_version": "1.1", "version": "1.115"}]}"#;

    #[test]
    fn discovery_asks_without_a_version_header_and_uses_the_highest() {
        let mut server = FakeServer::answering(&[(200, ROOT_39)]);
        let mut api = IronicApi::new("https://10.0.2.2:6385", None);
        api.discover_version(&mut server);
        assert_eq!(api.version, Some((1, 115)));
        let req = &server.requests[0];
        assert!(req.starts_with("GET / HTTP/1.1\r\n"), "{req}");
        assert!(!req.contains("X-OpenStack-Ironic-API-Version"), "{req}");
        assert!(req.contains("Accept: application/json\r\n"), "{req}");
    }

    #[test]
    fn a_failed_discovery_uses_the_minimum_and_is_tried_again() {
        // What Ironic 39 answers a version beyond its range; then a proxy's
        // page; then the real answer.
        let refused = r#"{"error_message": "{\"faultstring\": \"Mutually exclusive versions requested. Version 4294967295.4294967295 requested but not supported by this service. The supported version range is: [1.1, 1.115].\", \"faultcode\": \"Client\", \"debuginfo\": null}"}"#;
        let mut server =
            FakeServer::answering(&[(406, refused), (200, "<html>proxy</html>"), (200, ROOT_39)]);
        let mut api = IronicApi::new("http://10.0.2.2:6385", None);
        api.ensure_version(&mut server);
        assert_eq!((api.version, api.api_version()), (None, MIN_VERSION));
        api.ensure_version(&mut server);
        assert_eq!(api.version, None);
        api.ensure_version(&mut server);
        assert_eq!(api.version, Some((1, 115)));
        api.ensure_version(&mut server);
        assert_eq!(server.requests.len(), 3, "a version found is kept");
        assert_eq!(
            read_root(406, refused.as_bytes()).unwrap_err(),
            "answered 406: Mutually exclusive versions requested. Version 4294967295.4294967295 \
             requested but not supported by this service. The supported version range is: [1.1, 1.115]."
        );
        assert_eq!(
            read_root(200, b"<html>proxy</html>").unwrap_err(),
            "not JSON (expected value at line 1 column 1): <html>proxy</html>"
        );
        assert_eq!(
            read_root(200, br#"{"versions": []}"#).unwrap_err(),
            r#"no default_version.version in {"versions": []}"#
        );
        assert!(read_root(200, br#"{"default_version": {"version": "v1"}}"#).is_err());
    }

    #[test]
    fn requests_carry_the_lower_of_the_apis_version_and_the_endpoints() {
        let found =
            json!({"node": {"uuid": "n1"}, "config": {"heartbeat_timeout": 30}}).to_string();
        let mut server = FakeServer::answering(&[(200, &found), (202, "")]);
        let mut api = IronicApi::new("http://10.0.2.2:6385", None);
        api.version = Some((1, 46));
        let l = api.lookup_once(&mut server, &["m".into()]).unwrap();
        assert_eq!(l.token, TokenAnswer::Absent);
        api.heartbeat(
            &mut server,
            "n1",
            "http://10.0.2.15:9999",
            None,
            Some("pem"),
        )
        .unwrap();
        assert!(server.requests[0].contains("X-OpenStack-Ironic-API-Version: 1.46\r\n"));
        assert!(server.requests[1].contains("X-OpenStack-Ironic-API-Version: 1.46\r\n"));
        let body: Value = serde_json::from_slice(&server.posts[0].1).unwrap();
        assert_eq!(
            body,
            json!({"callback_url": "http://10.0.2.15:9999", "agent_version": crate::VERSION}),
            "no agent_verify_ca before 1.68"
        );
        // Before 1.36 a heartbeat carries the callback URL alone.
        let mut server = FakeServer::answering(&[(202, "")]);
        api.version = None;
        api.heartbeat(&mut server, "n1", "http://10.0.2.15:9999", Some("t"), None)
            .unwrap();
        assert!(server.requests[0].contains("X-OpenStack-Ironic-API-Version: 1.31\r\n"));
        let body: Value = serde_json::from_slice(&server.posts[0].1).unwrap();
        assert_eq!(body, json!({"callback_url": "http://10.0.2.15:9999"}));
    }

    #[test]
    fn each_token_answer_is_handled_as_the_real_agent_does() {
        let read = |v: Value| TokenAnswer::read(&v);
        let long = "k".repeat(43);
        let long = AgentToken::new(long);
        assert_eq!(read(json!(long.expose())), TokenAnswer::Given(long.clone()));
        assert_eq!(read(json!("******")), TokenAnswer::AlreadyTaken);
        assert_eq!(read(Value::Null), TokenAnswer::Absent);
        assert_eq!(
            read(json!("short")),
            TokenAnswer::Invalid("\"short\"".into())
        );
        assert_eq!(read(json!(7)), TokenAnswer::Invalid("7".into()));

        let given = TokenAnswer::Given(long.clone());
        let p = AgentToken::new("p");
        assert_eq!(choose_token(&given, true, Some(&p)), Ok(Some(long)));
        // Virtual media: the token was pre-generated and given on the
        // command line, so the lookup masks it.
        let p = AgentToken::new("v".repeat(43));
        assert_eq!(
            choose_token(&TokenAnswer::AlreadyTaken, true, Some(&p)),
            Ok(Some(p.clone()))
        );
        assert_eq!(choose_token(&TokenAnswer::Absent, false, None), Ok(None));
        assert_eq!(
            choose_token(&TokenAnswer::Invalid("\"x\"".into()), true, Some(&p)),
            Ok(Some(p))
        );
        let err = |a: &TokenAnswer| choose_token(a, true, None).unwrap_err();
        assert_eq!(
            err(&TokenAnswer::AlreadyTaken),
            "the conductor requires an agent token, the lookup answered \"******\": it was handed \
             out before, to another agent or for virtual media, and no ipa-agent-token= was given"
        );
        assert!(
            err(&TokenAnswer::Absent).contains("the lookup answered no agent_token at all"),
            "{}",
            err(&TokenAnswer::Absent)
        );
        assert!(err(&TokenAnswer::Invalid("null".into()))
            .contains("agent_token null, which is not a token"));
    }
}

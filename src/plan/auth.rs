//! The `Authorization` header an image GET carries, as ironic-python-agent
//! chooses it (`standby.py`): `image_request_authorization` (base64 of the
//! whole header value, an OCI registry's `Bearer …` token that the
//! conductor resolved), else `image_server_auth_strategy: http_basic` with
//! `image_server_user` and `image_server_password`. The value is a secret:
//! it prints as `******` and is never logged.

use super::{err, string, Error};
use crate::wire::base64;
use alloc::format;
use alloc::string::String;
use core::fmt;
use serde_json::{Map, Value};

/// Longest header value taken (registry tokens run to a few KiB).
const MAX_LEN: usize = 16 << 10;

#[derive(Clone, PartialEq, Eq)]
pub struct Authorization(String);

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorization(******)")
    }
}

impl Authorization {
    /// The header value, for the request head only.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// From a plan's (image_info's) keys; `None` when it asks for none.
    pub fn from_plan(o: &Map<String, Value>) -> Result<Option<Authorization>, Error> {
        if let Some(encoded) = string(o, "image_request_authorization")? {
            let key = "image_request_authorization";
            let bytes = base64::decode(encoded.as_bytes())
                .map_err(|e| err(key, format!("not base64: {e}")))?;
            let value = String::from_utf8(bytes).map_err(|_| err(key, "not UTF-8 text"))?;
            return Authorization::checked(key, value).map(Some);
        }
        if string(o, "image_server_auth_strategy")?.as_deref() != Some("http_basic") {
            return Ok(None);
        }
        let user = string(o, "image_server_user")?;
        let password = string(o, "image_server_password")?;
        let missing: alloc::vec::Vec<&str> = [("user", &user), ("password", &password)]
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        if !missing.is_empty() {
            return Err(err(
                "image_server_auth_strategy",
                format!(
                    "http_basic without {} (image_server_user, image_server_password)",
                    missing.join(" and ")
                ),
            ));
        }
        let pair = format!(
            "{}:{}",
            user.unwrap_or_default(),
            password.unwrap_or_default()
        );
        Authorization::checked(
            "image_server_user",
            format!("Basic {}", base64::encode(pair.as_bytes())),
        )
        .map(Some)
    }

    /// A value that can stand in a request head: visible ASCII and spaces,
    /// no line breaks (a header injected through the token is refused).
    fn checked(key: &str, value: String) -> Result<Authorization, Error> {
        if value.is_empty() || value.len() > MAX_LEN {
            return Err(err(key, format!("{} bytes: 1 to {MAX_LEN}", value.len())));
        }
        if !value
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            return Err(err(
                key,
                "a header value holds visible ASCII only (no line breaks)",
            ));
        }
        Ok(Authorization(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(json: &str) -> Result<Option<Authorization>, Error> {
        let v: Value = serde_json::from_str(json).unwrap();
        Authorization::from_plan(v.as_object().unwrap())
    }

    #[test]
    fn as_ironic_python_agent_chooses_it() {
        // base64 of "Bearer abc.def" as the conductor sends an OCI token.
        let a = from(r#"{"image_request_authorization": "QmVhcmVyIGFiYy5kZWY="}"#)
            .unwrap()
            .unwrap();
        assert_eq!(a.value(), "Bearer abc.def");
        assert_eq!(format!("{a:?}"), "Authorization(******)");
        // The token wins over http_basic.
        let both = r#"{"image_request_authorization": "QmVhcmVyIGFiYy5kZWY=",
            "image_server_auth_strategy": "http_basic", "image_server_user": "u", "image_server_password": "p"}"#;
        assert_eq!(from(both).unwrap().unwrap().value(), "Bearer abc.def");
        let basic = r#"{"image_server_auth_strategy": "http_basic", "image_server_user": "ironic", "image_server_password": "s3cret"}"#;
        assert_eq!(
            from(basic).unwrap().unwrap().value(),
            "Basic aXJvbmljOnMzY3JldA=="
        );
        assert_eq!(
            from(r#"{"image_server_auth_strategy": "noauth"}"#),
            Ok(None)
        );
        assert_eq!(from("{}"), Ok(None));
    }

    #[test]
    fn what_cannot_be_a_header_is_refused_by_key() {
        let e = from(r#"{"image_server_auth_strategy": "http_basic", "image_server_user": "u"}"#)
            .unwrap_err();
        assert_eq!(e.key, "image_server_auth_strategy");
        assert!(e.problem.contains("without password"), "{e}");
        // "Bearer x\r\nX-Evil: 1"
        let e =
            from(r#"{"image_request_authorization": "QmVhcmVyIHgNClgtRXZpbDogMQ=="}"#).unwrap_err();
        assert!(e.problem.contains("no line breaks"), "{e}");
        let e = from(r#"{"image_request_authorization": "%%%"}"#).unwrap_err();
        assert!(e.problem.starts_with("not base64"), "{e}");
    }
}

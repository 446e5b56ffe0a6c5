//! What an Ironic API (or anything answering at its URL) sends the agent:
//! the root document version discovery reads, and lookup answers with
//! their agent token in every form. Never a panic; bounded memory; a token
//! is only ever the one the lookup gave or the one given on the command
//! line.
#![no_main]
#[path = "guard.rs"]
mod guard;
use libfuzzer_sys::fuzz_target;

use rivet::agent::ironic::conductor::{choose_token, parse_lookup, read_root, TokenAnswer};
use rivet::agent::ironic::token::AgentToken;

fuzz_target!(|data: &[u8]| {
    guard::bounded(8 * guard::MIB, || {
        if let Ok((major, minor)) = read_root(200, data) {
            let _ = (major, minor);
        }
        let _ = read_root(406, data);
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        let Some(found) = parse_lookup(&v) else {
            return;
        };
        let given = match &found.token {
            TokenAnswer::Given(t) => Some(t.clone()),
            _ => None,
        };
        let cmdline = AgentToken::new("pre-shared-token-from-the-command-line");
        for preshared in [None, Some(&cmdline)] {
            match choose_token(&found.token, found.token_required, preshared) {
                Ok(Some(t)) => assert!(
                    Some(&t) == given.as_ref() || Some(&t) == preshared,
                    "a token from nowhere: {t:?}"
                ),
                Ok(None) => assert!(given.is_none() && preshared.is_none()),
                Err(e) => assert!(
                    found.token_required && given.is_none() && preshared.is_none(),
                    "{e}"
                ),
            }
        }
    })
});

//! The agent token the lookup hands out (or `ipa-agent-token=` gives): the
//! conductor's proof on every command. It is compared in constant time,
//! never printed (`Debug` is redacted), and leaves rivet only in the
//! heartbeat ([`AgentToken::expose`]).

use core::fmt;

#[derive(Clone)]
pub struct AgentToken(String);

impl AgentToken {
    pub fn new(token: impl Into<String>) -> AgentToken {
        AgentToken(token.into())
    }

    /// The token's text, for the heartbeat that sends it to the conductor.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, compared without an early exit, so
    /// timing says nothing about it.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (given.as_bytes(), self.0.as_bytes());
        let mut diff = (a.len() != b.len()) as u8;
        for (i, expected) in b.iter().enumerate() {
            diff |= a.get(i).copied().unwrap_or(0) ^ expected;
        }
        diff == 0
    }

    /// Whether a request's query string carries this token as
    /// `agent_token=` (percent-decoded, as the conductor may encode it).
    pub fn in_query(&self, query: &str) -> bool {
        crate::net::server::query_param(query, "agent_token").is_some_and(|g| self.matches(&g))
    }
}

impl PartialEq for AgentToken {
    fn eq(&self, other: &AgentToken) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for AgentToken {}

impl fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AgentToken(<{} characters, redacted>)",
            self.0.chars().count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly_and_never_print() {
        let t = AgentToken::new("a".repeat(32) + "+/=");
        assert!(t.matches(&("a".repeat(32) + "+/=")));
        for wrong in ["", "a", &"a".repeat(35), &("a".repeat(32) + "+/")] {
            assert!(!t.matches(wrong), "{wrong}");
        }
        assert!(t.in_query(&format!(
            "wait=true&agent_token={}%2B%2F%3D",
            "a".repeat(32)
        )));
        assert!(!t.in_query("wait=true"));
        assert!(!t.in_query(&format!("agent_token={}", "a".repeat(32))));
        let shown = format!("{t:?}");
        assert_eq!(shown, "AgentToken(<35 characters, redacted>)");
    }
}

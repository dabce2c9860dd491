//! Typing indicators (issue 15, item 3): a `typing` frame from a client reaches the other
//! party of a one-to-one chat as a `typing` frame, on whichever gateway their socket is.
//! Ephemeral: no event, no inbox row, nothing to catch up on; the receiver hides the
//! indicator after `expires_in` ms unless a newer frame keeps it up. A socket forwards at
//! most one frame per `IM_TYPING_INTERVAL_MS` (plus the `false` that ends a `true`);
//! what exceeds it is dropped silently (`crate::settings::TypingSettings`). A full socket queue drops the frame too (it is
//! never a reason to close a socket).

use crate::auth::Me;
use crate::error::ApiError;
use crate::state::AppState;
use im_domain::UserId;
use im_domain::message::{ChatType, permit_single};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// A client's `{"type":"typing","data":{"chatType":"single","id":2,"typing":true}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typing {
    /// The other party.
    pub to: i64,
    /// Started (or still) typing; `false`: stopped.
    pub typing: bool,
}

impl Typing {
    /// `chatType` (`single`; absent means single), `id` (the other user), `typing`
    /// (default true; `false`, `0` or `"false"` stop).
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, ApiError> {
        match fields.get("chatType").and_then(Value::as_str).map(ChatType::parse) {
            None | Some(Some(ChatType::Single)) => {}
            Some(Some(ChatType::Group)) => return Err(ApiError::bad("typing_single_only", "正在输入只用于单聊")),
            Some(None) => return Err(ApiError::bad("invalid_chatType", "chatType 只能是 single 或 group")),
        }
        let to = match fields.get("id") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::bad("invalid_id", "id 必须是正整数"))?;
        let typing = match fields.get("typing") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            Some(Value::String(s)) => !matches!(s.trim(), "false" | "0"),
            Some(_) => return Err(ApiError::bad("invalid_typing", "typing 只能是 true 或 false")),
        };
        Ok(Self { to, typing })
    }
}

/// One socket's allowance of typing frames.
#[derive(Debug, Default)]
pub struct Gate {
    /// The last frame forwarded: when, to whom, and what it said.
    last: Option<(Instant, i64, bool)>,
}

impl Gate {
    /// Whether a frame goes through now: one per `interval`, and the `false` that
    /// follows a forwarded `true` to the same user.
    pub fn admit(&mut self, typing: &Typing, now: Instant, interval: Duration) -> bool {
        let admitted = match self.last {
            None => true,
            Some((at, to, was)) => now.duration_since(at) >= interval || (to == typing.to && was && !typing.typing),
        };
        if admitted {
            self.last = Some((now, typing.to, typing.typing));
        }
        admitted
    }
}

/// What the other party receives.
pub fn frame(from: UserId, typing: &Typing, ttl: Duration) -> String {
    json!({
        "type": "typing",
        "data": {"chatType": "single", "from_id": from.0, "typing": typing.typing, "expires_in": ttl.as_millis() as u64}
    })
    .to_string()
}

/// Checks that I may message the other user (the rules of a one-to-one send, from the
/// facts kept in memory) and hands the frame to their socket, here or on their gateway.
pub async fn relay(state: &AppState, me: &Me, typing: Typing) -> Result<(), ApiError> {
    let facts = crate::send::single_chat(state, me, typing.to).await?.facts;
    permit_single(facts).map_err(|e| ApiError::from(im_commands::CommandError::Send(e)))?;
    state.offer_ephemeral(UserId(typing.to), frame(me.id, &typing, state.typing().ttl)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn frames_parse_with_defaults_and_refuse_the_rest() {
        assert_eq!(Typing::parse(&fields(json!({"id": 7}))).ok(), Some(Typing { to: 7, typing: true }));
        assert_eq!(
            Typing::parse(&fields(json!({"chatType": "single", "id": "8", "typing": false}))).ok(),
            Some(Typing { to: 8, typing: false })
        );
        assert_eq!(Typing::parse(&fields(json!({"id": 8, "typing": 0}))).ok(), Some(Typing { to: 8, typing: false }));
        assert_eq!(Typing::parse(&fields(json!({"id": 0}))).err().map(|e| e.code), Some("invalid_id".into()));
        assert_eq!(Typing::parse(&fields(json!({}))).err().map(|e| e.code), Some("invalid_id".into()));
        assert_eq!(Typing::parse(&fields(json!({"chatType": "group", "id": 3}))).err().map(|e| e.code), Some("typing_single_only".into()));
        assert_eq!(Typing::parse(&fields(json!({"chatType": "x", "id": 3}))).err().map(|e| e.code), Some("invalid_chatType".into()));
        assert_eq!(Typing::parse(&fields(json!({"id": 3, "typing": [1]}))).err().map(|e| e.code), Some("invalid_typing".into()));
    }

    #[test]
    fn the_gate_lets_one_frame_through_per_interval_and_the_stop_after_a_start() {
        let interval = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut gate = Gate::default();
        let start = Typing { to: 2, typing: true };
        let stop = Typing { to: 2, typing: false };
        assert!(gate.admit(&start, t0, interval));
        assert!(!gate.admit(&start, t0 + Duration::from_millis(300), interval), "a repeat within the interval is dropped");
        assert!(gate.admit(&stop, t0 + Duration::from_millis(400), interval), "the stop that ends a start goes through");
        assert!(!gate.admit(&start, t0 + Duration::from_millis(500), interval), "alternating does not get around the interval");
        assert!(!gate.admit(&stop, t0 + Duration::from_millis(600), interval), "nor does a second stop");
        assert!(gate.admit(&start, t0 + Duration::from_millis(1500), interval), "the next interval admits again");
        assert!(
            !gate.admit(&Typing { to: 3, typing: false }, t0 + Duration::from_millis(1600), interval),
            "a stop to someone else is not a reply"
        );
    }
}

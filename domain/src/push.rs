//! Push targets (issue 15, item 8): the devices a user wants reached when no socket of
//! theirs is live. One stream per user, `push-<user>`, holding at most
//! [`MAX_TARGETS`]: registering one more drops the oldest.

use crate::event::Event;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// The most push targets one user keeps.
pub const MAX_TARGETS: usize = 5;
/// The longest device token (characters).
pub const MAX_TOKEN_CHARS: usize = 512;

/// Who carries the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// DCloud's uni-push (Getui), what a uni-app client registers with.
    Unipush,
    /// Firebase Cloud Messaging.
    Fcm,
    /// Apple Push Notification service.
    Apns,
    /// The operator's own HTTP endpoint.
    Webhook,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::Unipush, Provider::Fcm, Provider::Apns, Provider::Webhook];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Unipush => "unipush",
            Provider::Fcm => "fcm",
            Provider::Apns => "apns",
            Provider::Webhook => "webhook",
        }
    }
}

/// A device token: 1 to [`MAX_TOKEN_CHARS`] visible ASCII characters.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_CHARS && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A device was registered to receive pushes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTargetRegistered {
    pub user: UserId,
    pub provider: Provider,
    pub device_token: String,
    pub at: i64,
}

/// A device no longer receives pushes (unregistered, or the oldest of too many).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTargetRemoved {
    pub user: UserId,
    pub provider: Provider,
    pub device_token: String,
    pub at: i64,
}

/// A user's targets, oldest first.
pub type Targets = Vec<(Provider, String)>;

pub fn evolve(mut state: Targets, event: &Event) -> Targets {
    match event {
        Event::PushTargetRegistered(e) => {
            state.retain(|(p, t)| !(*p == e.provider && *t == e.device_token));
            state.push((e.provider, e.device_token.clone()));
        }
        Event::PushTargetRemoved(e) => state.retain(|(p, t)| !(*p == e.provider && *t == e.device_token)),
        _ => {}
    }
    state
}

/// Registers a target: nothing when it is already there; the oldest goes when the user
/// already has [`MAX_TARGETS`]. The token must be [`valid_token`].
pub fn register(state: &Targets, user: UserId, provider: Provider, device_token: &str, at: i64) -> Vec<Event> {
    if state.iter().any(|(p, t)| *p == provider && t == device_token) {
        return Vec::new();
    }
    let mut events: Vec<Event> = state
        .iter()
        .take((state.len() + 1).saturating_sub(MAX_TARGETS))
        .map(|(p, t)| Event::PushTargetRemoved(PushTargetRemoved { user, provider: *p, device_token: t.clone(), at }))
        .collect();
    events.push(Event::PushTargetRegistered(PushTargetRegistered { user, provider, device_token: device_token.to_owned(), at }));
    events
}

/// Unregisters a target (nothing when it is not there).
pub fn unregister(state: &Targets, user: UserId, provider: Provider, device_token: &str, at: i64) -> Vec<Event> {
    if !state.iter().any(|(p, t)| *p == provider && t == device_token) {
        return Vec::new();
    }
    vec![Event::PushTargetRemoved(PushTargetRemoved { user, provider, device_token: device_token.to_owned(), at })]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(events: &[Event]) -> Targets {
        events.iter().fold(Targets::new(), evolve)
    }

    #[test]
    fn registering_again_changes_nothing_and_the_oldest_makes_room() {
        let me = UserId(1);
        let mut past = Vec::new();
        for n in 0..MAX_TARGETS {
            past.extend(register(&fold(&past), me, Provider::Fcm, &format!("t{n}"), 1));
        }
        assert_eq!(fold(&past).len(), MAX_TARGETS);
        assert!(register(&fold(&past), me, Provider::Fcm, "t3", 2).is_empty());
        let more = register(&fold(&past), me, Provider::Apns, "new", 3);
        assert!(matches!(&more[0], Event::PushTargetRemoved(e) if e.device_token == "t0"));
        past.extend(more);
        let now = fold(&past);
        assert_eq!((now.len(), now.last().cloned()), (MAX_TARGETS, Some((Provider::Apns, "new".to_owned()))));
        assert!(unregister(&now, me, Provider::Fcm, "t0", 4).is_empty());
        assert_eq!(unregister(&now, me, Provider::Fcm, "t1", 4).len(), 1);
    }

    #[test]
    fn tokens_and_providers_are_parsed() {
        assert_eq!(Provider::parse("apns"), Some(Provider::Apns));
        assert_eq!(Provider::parse("APNS"), None);
        assert!(valid_token("abc:DEF-123_x"));
        assert!(!valid_token("") && !valid_token("a b") && !valid_token(&"x".repeat(513)) && !valid_token("中文"));
    }
}

//! A user's settings (`userset`, SPEC 2.1) with every missing key filled by its default.

use serde::{Deserialize, Serialize};

/// How a non-friend may message me: 0 = not at all, 1 = one message, 2 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRule {
    #[serde(rename = "sendCount", default = "one", deserialize_with = "lenient_u8")]
    pub send_count: u8,
    #[serde(rename = "needFollow", default)]
    pub need_follow: bool,
}

impl Default for ChatRule {
    fn default() -> Self {
        Self { send_count: 1, need_follow: false }
    }
}

fn one() -> u8 {
    1
}

/// A small number, also when it arrives as a string ("2"), as the reference accepted.
fn lenient_u8<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|v| u8::try_from(v).ok()).ok_or_else(|| D::Error::custom("not a small number")),
        serde_json::Value::String(s) => s.trim().parse().map_err(D::Error::custom),
        _ => Err(D::Error::custom("not a number")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatSet {
    #[serde(default)]
    pub visitor: ChatRule,
    #[serde(default)]
    pub user: ChatRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendSet {
    /// 1 = a friend request needs my confirmation; 0 = anyone may add me at once.
    #[serde(default = "one", deserialize_with = "lenient_u8")]
    pub invite_confirm: u8,
}

impl Default for FriendSet {
    fn default() -> Self {
        Self { invite_confirm: 1 }
    }
}

/// Who sees what of me (beyond the reference: absent from a `userset` that never set it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacySet {
    /// 1 = my friends see whether I am online and when I was last seen; 0 = nobody.
    #[serde(default = "one", deserialize_with = "lenient_u8")]
    pub presence: u8,
}

impl Default for PrivacySet {
    fn default() -> Self {
        Self { presence: 1 }
    }
}

impl PrivacySet {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserSet {
    #[serde(default)]
    pub chatset: ChatSet,
    #[serde(default)]
    pub friendset: FriendSet,
    /// Kept out of the settings shown while it holds the defaults, so a client that
    /// never set it reads exactly the reference's shape.
    #[serde(default, skip_serializing_if = "PrivacySet::is_default")]
    pub privacyset: PrivacySet,
}

/// Why a submitted `userset` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid userset: {0}")]
pub struct UserSetError(pub String);

impl UserSet {
    /// Parses the JSON string clients send; missing keys take their defaults, values
    /// out of range are refused.
    pub fn parse(raw: &str) -> Result<Self, UserSetError> {
        let set: UserSet = serde_json::from_str(raw).map_err(|e| UserSetError(e.to_string()))?;
        for rule in [set.chatset.visitor, set.chatset.user] {
            if rule.send_count > 2 {
                return Err(UserSetError("sendCount must be 0, 1 or 2".into()));
            }
        }
        if set.friendset.invite_confirm > 1 {
            return Err(UserSetError("invite_confirm must be 0 or 1".into()));
        }
        if set.privacyset.presence > 1 {
            return Err(UserSetError("presence must be 0 or 1".into()));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_defaults() {
        let set = UserSet::parse(r#"{"chatset":{"user":{"sendCount":2}}}"#).unwrap_or_default();
        assert_eq!(set.chatset.user.send_count, 2);
        assert_eq!(set.chatset.visitor, ChatRule::default());
        assert_eq!(set.friendset.invite_confirm, 1);
        assert_eq!(UserSet::parse("{}").ok(), Some(UserSet::default()));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(UserSet::parse(r#"{"chatset":{"user":{"sendCount":3}}}"#).is_err());
        assert!(UserSet::parse(r#"{"friendset":{"invite_confirm":2}}"#).is_err());
        assert!(UserSet::parse("not json").is_err());
        assert!(UserSet::parse(r#"{"chatset":{"user":{"sendCount":-1}}}"#).is_err());
        assert!(UserSet::parse(r#"{"chatset":{"user":{"sendCount":"x"}}}"#).is_err());
    }

    #[test]
    fn numbers_may_arrive_as_strings() {
        let set = UserSet::parse(r#"{"chatset":{"user":{"sendCount":"2"}},"friendset":{"invite_confirm":"0"}}"#).unwrap_or_default();
        assert_eq!((set.chatset.user.send_count, set.friendset.invite_confirm), (2, 0));
    }

    #[test]
    fn serializes_in_the_contract_shape() {
        let json = serde_json::to_value(UserSet::default()).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"chatset":{"visitor":{"sendCount":1,"needFollow":false},
                "user":{"sendCount":1,"needFollow":false}},"friendset":{"invite_confirm":1}})
        );
    }
}

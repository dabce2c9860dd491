//! Value types parsed at the edge ("parse, don't validate"): once a `Username` exists
//! it is known to be valid, so nothing deeper re-checks it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a raw input was not accepted. Each variant is one business reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("username must be 4 to 20 letters, digits or `_ - . @`")]
    Username,
    #[error("password must be 6 to 20 characters")]
    Password,
    #[error("nickname is too long")]
    Nickname,
    #[error("device fingerprint is missing or too long")]
    DeviceFingerprint,
    #[error("text field is too long")]
    TooLong,
}

/// A registered user's login name: 4–20 chars of letters, digits, `_`, `-`, `.`, `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let len = raw.chars().count();
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@');
        if (4..=20).contains(&len) && raw.chars().all(allowed) { Ok(Self(raw.to_owned())) } else { Err(ValueError::Username) }
    }

    /// The generated name of a visitor account, which never collides with a
    /// registered name because registered names cannot contain `#`.
    pub fn for_visitor(id: crate::UserId) -> Self {
        Self(format!("visitor#{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plaintext password as typed (6–20 chars). It only lives long enough to be hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if (6..=20).contains(&raw.chars().count()) { Ok(Self(raw.to_owned())) } else { Err(ValueError::Password) }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A password hash in PHC string form (argon2id). The domain never sees plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

/// The device fingerprint a visitor account is bound to (1–128 printable chars).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceFingerprint(String);

impl DeviceFingerprint {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let raw = raw.trim();
        if !raw.is_empty() && raw.len() <= 128 && raw.chars().all(|c| c.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::DeviceFingerprint)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bounded free text (nickname, avatar URL, signature …).
/// The name a person is shown by: the first of `names` that is not empty (a remark, then
/// a nickname, then the username), else "".
pub fn display_name<'a>(names: impl IntoIterator<Item = &'a str>) -> &'a str {
    names.into_iter().find(|n| !n.is_empty()).unwrap_or("")
}

pub fn bounded(raw: &str, max_chars: usize) -> Result<String, ValueError> {
    if raw.chars().count() <= max_chars { Ok(raw.to_owned()) } else { Err(ValueError::TooLong) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_4_to_20_safe_chars() {
        assert!(Username::parse("abcd").is_ok());
        assert!(Username::parse("张三李四").is_ok());
        assert!(Username::parse("a_b-c.d@e").is_ok());
        assert_eq!(Username::parse("abc"), Err(ValueError::Username));
        assert_eq!(Username::parse(&"a".repeat(21)), Err(ValueError::Username));
        assert_eq!(Username::parse("has space"), Err(ValueError::Username));
        assert_eq!(Username::parse("visitor#1"), Err(ValueError::Username));
    }

    #[test]
    fn passwords_are_6_to_20_chars_and_never_printed() {
        assert!(Password::parse("123456").is_ok());
        assert_eq!(Password::parse("12345"), Err(ValueError::Password));
        assert_eq!(Password::parse(&"x".repeat(21)), Err(ValueError::Password));
        let p = Password::parse("secret99").unwrap_or_else(|_| unreachable!());
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn fingerprints_are_printable_and_bounded() {
        assert!(DeviceFingerprint::parse("abc-123").is_ok());
        assert!(DeviceFingerprint::parse("").is_err());
        assert!(DeviceFingerprint::parse("a b").is_err());
        assert!(DeviceFingerprint::parse(&"a".repeat(129)).is_err());
    }
}

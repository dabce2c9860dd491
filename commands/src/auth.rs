//! Passwords (argon2id) and session tokens (JWT, HS256).

use crate::CommandError;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash as PhcHash};
use im_domain::event::Role;
use im_domain::values::{Password, PasswordHash};
use im_domain::{SessionId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Hashes and verifies passwords off the async runtime (argon2id is slow on purpose).
#[derive(Clone, Copy, Default)]
pub struct Passwords;

impl Passwords {
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, CommandError> {
        let plain = password.expose().to_owned();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(plain.as_bytes(), &salt)
                .map(|h| PasswordHash(h.to_string()))
                .map_err(|e| CommandError::Internal(format!("argon2: {e}")))
        })
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?
    }

    /// True when `plain` matches the stored hash.
    pub async fn verify(&self, plain: &str, hash: &PasswordHash) -> Result<bool, CommandError> {
        let plain = plain.to_owned();
        let hash = hash.0.clone();
        tokio::task::spawn_blocking(move || {
            let parsed = PhcHash::new(&hash).map_err(|e| CommandError::Internal(format!("stored hash: {e}")))?;
            Ok(Argon2::default().verify_password(plain.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?
    }
}

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (the JWT `sub` claim is a string).
    pub sub: String,
    /// The session this token belongs to; only the user's newest session is live.
    pub sid: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    /// The user id; 0 (no such user) when `sub` is not a number.
    pub fn user_id(&self) -> UserId {
        UserId(self.sub.parse().unwrap_or(0))
    }

    pub fn session(&self) -> SessionId {
        SessionId(self.sid)
    }
}

/// Why a token was refused before looking at any state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed or badly signed token")]
    Invalid,
    #[error("token expired")]
    Expired,
}

/// Issues and checks session tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime_secs: i64,
}

impl Tokens {
    pub fn new(secret: &[u8], lifetime_secs: i64) -> Self {
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), lifetime_secs }
    }

    pub fn issue(&self, user: UserId, session: SessionId, role: Role, now_millis: i64) -> Result<String, CommandError> {
        let iat = now_millis / 1000;
        let claims = Claims { sub: user.0.to_string(), sid: session.0, role, iat, exp: iat + self.lifetime_secs };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| CommandError::Internal(format!("jwt: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map(|data| data.claims).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_hashes_are_argon2id_and_verify() {
        let p = Password::parse("secret99").unwrap_or_else(|_| unreachable!());
        let hash = Passwords.hash(&p).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(hash.0.starts_with("$argon2id$"));
        assert!(Passwords.verify("secret99", &hash).await.unwrap_or(false));
        assert!(!Passwords.verify("secret98", &hash).await.unwrap_or(true));
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries_and_expiry() {
        let tokens = Tokens::new(b"k1", 60);
        let sid = SessionId(Uuid::new_v4());
        let now = crate::now_millis();
        let t = tokens.issue(UserId(7), sid, Role::User, now).unwrap_or_default();
        let claims = tokens.verify(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((claims.user_id(), claims.session(), claims.role), (UserId(7), sid, Role::User));
        assert_eq!(Tokens::new(b"k2", 60).verify(&t), Err(TokenError::Invalid));
        assert_eq!(tokens.verify("not.a.token"), Err(TokenError::Invalid));
        let old = tokens.issue(UserId(7), sid, Role::User, now - 120_000).unwrap_or_default();
        assert_eq!(tokens.verify(&old), Err(TokenError::Expired));
    }
}

//! Who is calling: token → claims → the user's live session in the user directory.
//!
//! A token is refused when it is missing, malformed or badly signed, expired, no
//! longer the user's live session (logout, newer login, disabling), or its user is
//! gone or disabled. Visitors may call only the routes that ask for
//! [`Access::UsersAndVisitors`] — the reference's visitor whitelist.

use crate::error::ApiError;
use crate::state::AppState;
use im_commands::auth::{Claims, TokenError};
use im_domain::{SessionId, Slot, UserId};
use im_projections::users::UserRow;
use std::sync::Arc;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Registered users only.
    Users,
    /// Registered users and visitors.
    UsersAndVisitors,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Me {
    pub id: UserId,
    pub session: SessionId,
    /// Which of the user's devices this session is (always the phone's under the
    /// single-device rule).
    pub slot: Slot,
    pub user: Arc<UserRow>,
    /// A fresh token for the same session, when the one presented is in the last quarter
    /// of its life (the client may switch to it; the old one stays valid until it expires).
    pub refreshed: Option<String>,
}

impl Me {
    pub fn is_visitor(&self) -> bool {
        self.user.is_visitor()
    }
}

/// Why a token was not accepted, in the words of the WebSocket contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Invalid,
    Expired,
    UnknownUser,
    Disabled,
    Revoked,
}

impl Refusal {
    pub fn api_error(self) -> ApiError {
        match self {
            Refusal::Missing => ApiError::unauthorized("missing_token", "您没有权限访问即时通讯接口"),
            Refusal::Invalid => ApiError::unauthorized("invalid_token", "Token 令牌不合法!"),
            Refusal::Expired => ApiError::unauthorized("token_expired", "Token已过期!请重新获取令牌"),
            Refusal::UnknownUser => ApiError::unauthorized("user_not_found", "用户不存在"),
            Refusal::Disabled => ApiError::forbidden("user_disabled", "你已被管理员禁用"),
            Refusal::Revoked => ApiError::unauthorized("token_revoked", "Token 令牌已失效,请重新登录"),
        }
    }

    /// The text of the `{"msg":"fail","data":…}` frame sent before closing a socket.
    pub fn ws_reason(self) -> &'static str {
        match self {
            Refusal::Missing => "缺少 token 参数",
            Refusal::Invalid | Refusal::Revoked => "Token 不合法",
            Refusal::Expired => "token 已过期",
            Refusal::UnknownUser => "用户不存在",
            Refusal::Disabled => "你已被管理员禁用",
        }
    }
}

impl AppState {
    /// Resolves a token to its user and live session.
    pub async fn identify(&self, token: Option<&str>) -> Result<Result<Me, Refusal>, ApiError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(Err(Refusal::Missing)) };
        let claims = match self.accounts().tokens().verify(token) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Ok(Err(Refusal::Expired)),
            Err(TokenError::Invalid) => return Ok(Err(Refusal::Invalid)),
        };
        let user = match self.check_session(claims.user_id(), claims.session()).await? {
            Ok(user) => user,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let refreshed = self.refresh(&claims);
        if let Some(fresh) = &refreshed {
            refresh::offer(fresh);
        }
        let slot = user.slot_of(&claims.session().to_string()).unwrap_or_default();
        Ok(Ok(Me { id: claims.user_id(), session: claims.session(), slot, user, refreshed }))
    }

    /// A new token for the claims' session when they are in the last quarter of their
    /// lifetime.
    fn refresh(&self, claims: &Claims) -> Option<String> {
        let now = im_commands::now_millis();
        let lifetime = claims.exp.saturating_sub(claims.iat);
        let left = claims.exp.saturating_sub(now / 1000);
        if lifetime <= 0 || left.saturating_mul(4) > lifetime {
            return None;
        }
        self.accounts().tokens().issue(claims.user_id(), claims.session(), claims.role, now).ok()
    }

    /// Whether `session` is still a live session of the user's (the one, or one of the two
    /// with `IM_MULTI_DEVICE`) and the user may use it: what
    /// a token is checked against on every request, and an open socket on each `send`
    /// frame, each heartbeat and each revocation.
    pub async fn check_session(&self, user: UserId, session: SessionId) -> Result<Result<Arc<UserRow>, Refusal>, ApiError> {
        let session = session.to_string();
        // The live sessions where every gateway records them (Redis): a newer login or a
        // logout anywhere refuses this token without touching the database.
        if let Ok(Some(live)) = self.presence().sessions(user.0).await
            && !live.contains(&session)
        {
            return Ok(Err(Refusal::Revoked));
        }
        let Some(row) = self.directory().user(user.0).await? else { return Ok(Err(Refusal::UnknownUser)) };
        if !row.is_active() {
            return Ok(Err(Refusal::Disabled));
        }
        if row.slot_of(&session).is_none() {
            return Ok(Err(Refusal::Revoked));
        }
        Ok(Ok(row))
    }

    /// Authenticates an HTTP call and checks the caller's role may use the route.
    pub async fn authenticate(&self, token: Option<&str>, access: Access) -> Result<Me, ApiError> {
        let me = self.identify(token).await?.map_err(Refusal::api_error)?;
        if access == Access::Users && me.is_visitor() {
            return Err(ApiError::visitor_forbidden());
        }
        Ok(me)
    }

    /// [`AppState::authenticate`] for a call that writes to the log: each user's writes
    /// share one per-minute budget (`IM_RATE_WRITE`), so nobody grows the log without
    /// bound through profile edits, friend requests, reports, groups or auto-replies.
    pub async fn authenticate_write(&self, token: Option<&str>, access: Access) -> Result<Me, ApiError> {
        let me = self.authenticate(token, access).await?;
        self.limit("write", &me.id.0.to_string(), self.limits().write).await?;
        Ok(me)
    }
}

/// Handing a refreshed token back on the HTTP answer: [`layer`](refresh::layer) makes a
/// place for it around each request, [`offer`](refresh::offer) (called when a token is
/// checked) fills it, and the answer carries it in the `X-Refresh-Token` header.
pub mod refresh {
    use axum::extract::Request;
    use axum::http::HeaderValue;
    use axum::middleware::Next;
    use axum::response::Response;
    use std::sync::{Arc, Mutex};

    /// The response header a fresh token comes in.
    pub const HEADER: &str = "x-refresh-token";

    tokio::task_local! {
        static FRESH: Arc<Mutex<Option<String>>>;
    }

    /// Records a fresh token for the answer to the request being handled (nothing
    /// outside a request: a WebSocket says it in its welcome frame).
    pub fn offer(token: &str) {
        let _ = FRESH.try_with(|slot| *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.to_owned()));
    }

    pub async fn layer(request: Request, next: Next) -> Response {
        let slot = Arc::new(Mutex::new(None::<String>));
        let mut response = FRESH.scope(slot.clone(), next.run(request)).await;
        let fresh = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(value) = fresh.and_then(|t| HeaderValue::from_str(&t).ok()) {
            response.headers_mut().insert(HEADER, value);
        }
        response
    }
}

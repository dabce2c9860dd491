//! Presence for friends (issue 15, item 7): whether a friend is online and when they were
//! last seen, visible to the friends a user has (and has not blocked) unless their
//! `userset.privacyset.presence` is 0. A `presence` frame goes to those friends when a
//! user's first socket opens and when their last one closes; `GET /api/chat/presence`
//! answers for all of my friends at once. Ephemeral, like typing: no event; the last-seen
//! time is kept by presence (Redis, or this process's memory), and without it the user's
//! last login answers.

use crate::error::ApiError;
use crate::state::AppState;
use im_domain::UserId;
use im_projections::users::UserRow;
use serde_json::{Value, json};
use std::sync::Arc;

/// What a friend sees of a user.
pub fn status(user: UserId, online: bool, last_seen: Option<i64>) -> Value {
    json!({"id": user.0, "online": online, "last_seen": if online { None } else { last_seen }})
}

/// The `presence` frame.
pub fn frame(user: UserId, online: bool, last_seen: Option<i64>) -> String {
    json!({"type": "presence", "data": status(user, online, last_seen)}).to_string()
}

/// Whether `viewer` may see `user`'s presence: `user` lets friends see it, has `viewer`
/// as a friend and has not blocked them. Their row when they do.
pub async fn visible(state: &AppState, user: UserId, viewer: UserId) -> Result<Option<Arc<UserRow>>, ApiError> {
    let directory = state.directory();
    let Some(row) = directory.user(user.0).await? else { return Ok(None) };
    if row.settings.privacyset.presence == 0 || !row.is_active() {
        return Ok(None);
    }
    let friend = directory.side(user.0, viewer.0).await?.is_some_and(|side| side.friend && !side.black);
    Ok(friend.then_some(row))
}

/// Tells the friends who may see it that `user` came online or went offline (then their
/// last-seen time is recorded). Best effort: a failure is logged, never the socket's.
pub async fn announce(state: AppState, user: UserId, online: bool) {
    let state = &state;
    let now = crate::now_millis();
    if !online && let Err(e) = state.presence().seen(user.0, now).await {
        tracing::warn!(user_id = user.0, error = %e, "last-seen time not recorded");
    }
    let allowed = match state.directory().user(user.0).await {
        Ok(Some(row)) => row.settings.privacyset.presence != 0,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(user_id = user.0, error = %e, "presence not announced");
            false
        }
    };
    if !allowed {
        return;
    }
    let friends = match state.friends().friends_of(user.0).await {
        Ok(friends) => friends,
        Err(e) => {
            tracing::warn!(user_id = user.0, error = %e, "presence not announced: friends unknown");
            return;
        }
    };
    let text = frame(user, online, Some(now));
    for friend in friends.iter().filter(|f| !f.blocked) {
        state.offer_ephemeral(friend.friend_id, text.clone()).await;
    }
}

/// My friends' presence, as each lets me see it.
pub async fn of_friends(state: &AppState, me: UserId) -> Result<Vec<Value>, ApiError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let friends = state.friends().friends_of(me.0).await?;
    // Each friend costs up to two presence lookups (Redis round trips in distributed
    // mode): a few at a time rather than one after another, in the friend list's order.
    let rows: Vec<Option<Value>> = stream::iter(friends)
        .map(|friend| async move {
            let id = friend.friend_id;
            let Some(row) = visible(state, id, me).await? else { return Ok(None) };
            let online = state.is_online(id).await.map_err(ApiError::internal)?;
            let last_seen = if online {
                None
            } else {
                match state.presence().last_seen(id.0).await.map_err(ApiError::internal)? {
                    Some(at) => Some(at),
                    None => Some(row.last_login).filter(|at| *at > 0),
                }
            };
            Ok::<_, ApiError>(Some(status(id, online, last_seen)))
        })
        .buffered(PRESENCE_LOOKUPS)
        .try_collect()
        .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// Friends whose presence `GET /api/chat/presence` looks up at once.
const PRESENCE_LOOKUPS: usize = 16;

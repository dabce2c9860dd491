//! What other gateways ask of this one, through Redis.

use crate::state::AppState;
use im_adapters::presence::NodeMessage;
use im_domain::UserId;
use tokio::sync::mpsc;

/// `chatGetmessageOffLine` requests from other gateways waiting to be carried out here;
/// beyond it they are dropped (the client asks again, or syncs).
pub const OFFLINE_QUEUED: usize = 256;

/// Carries out what other gateways ask of this one: kicks, session re-checks, offline
/// pushes. Re-checks ask the live session themselves, so a late one never closes a
/// socket of a newer session.
pub async fn carry_out(state: AppState, mut messages: mpsc::Receiver<NodeMessage>) {
    let (offline, mut offline_rx) = mpsc::channel::<i64>(OFFLINE_QUEUED);
    let pusher = state.clone();
    tokio::spawn(async move {
        while let Some(user) = offline_rx.recv().await {
            if let Err(e) = crate::routes::messages::push_pending(&pusher, UserId(user)).await {
                tracing::warn!(user_id = user, error = %e.reason, "offline push for another gateway failed");
            }
        }
    });
    while let Some(message) = messages.recv().await {
        match message {
            NodeMessage::Kick(kick) => {
                state.hub().kick_remote(UserId(kick.user), &kick.session, kick.generation);
            }
            NodeMessage::Recheck { user, notice } => {
                let user = UserId(user);
                let Some((session, conn_id)) = state.hub().session_of(user) else { continue };
                match state.check_session(user, session).await {
                    Ok(Err(_)) => {
                        state.hub().close_conn(user, conn_id, notice);
                    }
                    Ok(Ok(_)) => {}
                    Err(e) => tracing::warn!(user_id = user.0, error = %e.reason, "cannot check the session: left to the heartbeat"),
                }
            }
            NodeMessage::Ephemeral { user, frame } => {
                state.hub().offer_ephemeral(UserId(user), frame);
            }
            NodeMessage::Offline { user } => {
                if offline.try_send(user).is_err() {
                    tracing::warn!(user_id = user, "too many offline pushes queued: dropped");
                }
            }
        }
    }
    tracing::warn!("this gateway no longer hears other gateways");
}

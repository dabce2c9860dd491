//! What other gateways ask of this one, through Redis.

use crate::state::AppState;
use im_adapters::presence::NodeMessage;
use im_domain::{Slot, UserId};
use tokio::sync::mpsc;

/// `chatGetmessageOffLine` requests from other gateways waiting to be carried out here;
/// beyond it they are dropped (the client asks again, or syncs).
pub const OFFLINE_QUEUED: usize = 256;

/// Carries out what other gateways ask of this one: kicks, session re-checks, offline
/// pushes. Re-checks ask the live session themselves, so a late one never closes a
/// socket of a newer session.
pub async fn carry_out(state: AppState, mut messages: mpsc::Receiver<NodeMessage>) {
    let (offline, mut offline_rx) = mpsc::channel::<(i64, Slot)>(OFFLINE_QUEUED);
    let pusher = state.clone();
    tokio::spawn(async move {
        while let Some((user, slot)) = offline_rx.recv().await {
            if let Err(e) = crate::routes::messages::push_pending(&pusher, UserId(user), slot).await {
                tracing::warn!(user_id = user, error = %e.reason, "offline push for another gateway failed");
            }
        }
    });
    while let Some(message) = messages.recv().await {
        match message {
            NodeMessage::Kick(kick) => {
                state.hub().kick_remote(UserId(kick.user), kick.slot, &kick.session, kick.generation);
            }
            NodeMessage::Recheck { user, notice } => {
                let user = UserId(user);
                for (session, conn_id) in state.hub().sockets_of(user) {
                    match state.check_session(user, session).await {
                        Ok(Err(_)) => {
                            state.hub().close_conn(user, conn_id, notice);
                        }
                        Ok(Ok(_)) => {}
                        Err(e) => tracing::warn!(user_id = user.0, error = %e.reason, "cannot check the session: left to the heartbeat"),
                    }
                }
            }
            NodeMessage::Ephemeral { user, frame, except } => {
                let except = except.and_then(|s| s.parse().ok()).map(im_domain::SessionId);
                state.hub().offer_ephemeral(UserId(user), except, frame);
            }
            NodeMessage::Offline { user, slot } => {
                if offline.try_send((user, slot)).is_err() {
                    tracing::warn!(user_id = user, "too many offline pushes queued: dropped");
                }
            }
        }
    }
    tracing::warn!("this gateway no longer hears other gateways");
}

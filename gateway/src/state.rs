//! What every handler shares: [`AppState`], the stores, command handlers, read models,
//! presence, the hub and the settings a request needs, and the small rules built on them
//! (rate limits, read-your-writes, the public base URL). Built by [`crate::app`].

use crate::error::ApiError;
use crate::hub::{Hub, SocketLimits};
use crate::settings::{FileSettings, Limits, Role};
use axum::http::StatusCode;
use im_adapters::kafka::DeliveryConsumer;
use im_adapters::objects::ObjectStore;
use im_adapters::presence::{NodeMessage, Presence};
use im_adapters::ratelimit::RateLimiter;
use im_commands::accounts::Accounts;
use im_commands::askanswer::AskAnswers as AskAnswerCommands;
use im_commands::conversations::Conversations;
use im_commands::friends::Friends as FriendCommands;
use im_commands::groups::Groups as GroupCommands;
use im_commands::messages::Messages;
use im_eventlog::SharedEventStore;
use im_projections::Projector;
use im_projections::askanswer::AskAnswers;
use im_projections::directory::Directory;
use im_projections::friends::Friends;
use im_projections::groups::Groups;
use im_projections::inbox::{Inbox, Ledger};
use im_projections::users::Users;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) store: SharedEventStore,
    pub(crate) accounts: Accounts,
    pub(crate) friend_commands: FriendCommands,
    pub(crate) users: Users,
    pub(crate) friends: Friends,
    pub(crate) messages: Messages,
    pub(crate) inbox: Inbox,
    pub(crate) conversations: Conversations,
    pub(crate) conversation_list: im_projections::conversations::Conversations,
    pub(crate) search: im_projections::search::Search,
    pub(crate) push: im_commands::push::Push,
    pub(crate) push_targets: im_projections::push::PushTargets,
    pub(crate) askanswer_commands: AskAnswerCommands,
    pub(crate) group_commands: GroupCommands,
    pub(crate) groups: Groups,
    pub(crate) askanswers: AskAnswers,
    pub(crate) revoke_window: Duration,
    pub(crate) edit_window: Duration,
    pub(crate) projector: Projector,
    pub(crate) hub: Hub,
    pub(crate) presence: Arc<dyn Presence>,
    pub(crate) deliveries: Option<DeliveryConsumer>,
    pub(crate) node_id: String,
    pub(crate) role: Role,
    pub(crate) heartbeat: Duration,
    pub(crate) typing: crate::settings::TypingSettings,
    pub(crate) multi_device: bool,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) limits: Limits,
    pub(crate) files: FileSettings,
    pub(crate) public_url: Option<String>,
    pub(crate) trusted_proxies: crate::proxy::TrustedProxies,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) cors_credentials: bool,
    pub(crate) uploads: crate::uploads::Uploads,
    pub(crate) local_files: Arc<dyn ObjectStore>,
    pub(crate) admins: im_commands::admin::Admins,
    pub(crate) admin_secret: Vec<u8>,
    pub(crate) object_store: Arc<dyn ObjectStore>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) directory: Directory,
    pub(crate) ledger: Ledger,
    pub(crate) socket_limits: SocketLimits,
    pub(crate) audit: im_projections::audit::Audit,
    pub(crate) samples: crate::samples::Samples,
}

impl AppState {
    pub fn store(&self) -> &SharedEventStore {
        &self.0.store
    }

    pub fn accounts(&self) -> &Accounts {
        &self.0.accounts
    }

    pub fn users(&self) -> &Users {
        &self.0.users
    }

    /// The facts the message path decides on, in memory.
    pub fn directory(&self) -> &Directory {
        &self.0.directory
    }

    /// Where sockets report the inbox rows that reached them.
    pub fn ledger(&self) -> &Ledger {
        &self.0.ledger
    }

    pub fn socket_limits(&self) -> SocketLimits {
        self.0.socket_limits
    }

    pub fn friend_commands(&self) -> &FriendCommands {
        &self.0.friend_commands
    }

    /// The proxies whose forwarding headers count.
    pub fn trusted_proxies(&self) -> &crate::proxy::TrustedProxies {
        &self.0.trusted_proxies
    }

    /// The admin console's audit trail.
    pub fn audit(&self) -> &im_projections::audit::Audit {
        &self.0.audit
    }

    /// The chart samples of the admin console.
    pub fn samples(&self) -> &crate::samples::Samples {
        &self.0.samples
    }

    pub fn friends(&self) -> &Friends {
        &self.0.friends
    }

    pub fn messages(&self) -> &Messages {
        &self.0.messages
    }

    pub fn inbox(&self) -> &Inbox {
        &self.0.inbox
    }

    /// Read marks, pins, mutes, delete-for-me (commands).
    pub fn conversations(&self) -> &Conversations {
        &self.0.conversations
    }

    /// Push targets (commands).
    pub fn push(&self) -> &im_commands::push::Push {
        &self.0.push
    }

    /// Push targets (read model).
    pub fn push_targets(&self) -> &im_projections::push::PushTargets {
        &self.0.push_targets
    }

    /// Full-text search of messages (read model).
    pub fn search(&self) -> &im_projections::search::Search {
        &self.0.search
    }

    /// Each user's chats (read model).
    pub fn conversation_list(&self) -> &im_projections::conversations::Conversations {
        &self.0.conversation_list
    }

    pub fn askanswer_commands(&self) -> &AskAnswerCommands {
        &self.0.askanswer_commands
    }

    pub fn askanswers(&self) -> &AskAnswers {
        &self.0.askanswers
    }

    pub fn group_commands(&self) -> &GroupCommands {
        &self.0.group_commands
    }

    pub fn groups(&self) -> &Groups {
        &self.0.groups
    }

    pub fn revoke_window(&self) -> Duration {
        self.0.revoke_window
    }

    pub fn edit_window(&self) -> Duration {
        self.0.edit_window
    }

    pub fn projector(&self) -> &Projector {
        &self.0.projector
    }

    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// Presence, live sessions and kicks (in-process, or Redis).
    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.0.presence
    }

    /// The Kafka delivery consumer, in the distributed mode.
    pub fn deliveries(&self) -> Option<&DeliveryConsumer> {
        self.0.deliveries.as_ref()
    }

    pub fn node_id(&self) -> &str {
        &self.0.node_id
    }

    pub fn role(&self) -> Role {
        self.0.role
    }

    /// Records a user's live sessions where other gateways look first.
    pub async fn remember_sessions(&self, user: i64, live: &[&str]) {
        if let Err(e) = self.0.presence.set_sessions(user, live).await {
            tracing::warn!(user_id = user, error = %e, "could not record the live session");
        }
    }

    /// Counts one `kind` action by `who` (a user id or a client IP) against `limit` per
    /// minute; 429 when over. A limiter that cannot answer lets the request through.
    pub async fn limit(&self, kind: &str, who: &str, limit: u32) -> Result<(), ApiError> {
        self.charge(kind, who, 1, limit, Duration::from_secs(60)).await
    }

    /// Counts `cost` against `who`'s `limit` of this kind per `window` (0 = no limit).
    pub async fn charge(&self, kind: &str, who: &str, cost: u32, limit: u32, window: Duration) -> Result<(), ApiError> {
        if limit == 0 {
            return Ok(());
        }
        match self.0.limiter.allow_n(&format!("{kind}:{who}"), cost, limit, window).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "请求过于频繁,请稍后再试")),
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable");
                Ok(())
            }
        }
    }

    pub fn files(&self) -> &FileSettings {
        &self.0.files
    }

    pub fn admins(&self) -> &im_commands::admin::Admins {
        &self.0.admins
    }

    /// The key that signs admin console sessions.
    pub fn admin_secret(&self) -> &[u8] {
        &self.0.admin_secret
    }

    /// The user's row and live sessions as the read model has them now (after a
    /// settle), the sessions recorded where other gateways look first.
    pub async fn settled_sessions(
        &self,
        user: im_domain::UserId,
    ) -> Result<(im_projections::users::UserRow, Vec<im_domain::SessionId>), ApiError> {
        let row = self.users().by_id(user.0).await?.ok_or_else(ApiError::user_not_found)?;
        let live = row.live_sessions();
        self.remember_sessions(user.0, &live).await;
        let sessions = live.iter().filter_map(|s| s.parse().ok().map(im_domain::SessionId)).collect();
        Ok((row, sessions))
    }

    /// The user's live sessions changed (they are `live` now): their sockets close
    /// unless they belong to `live` — here at once, and on the gateways that hold them
    /// through Redis, which check the live sessions themselves (so a late message never
    /// closes a socket of a newer session). `notice`: the socket is told it was logged in
    /// elsewhere. Call after the change is settled and remembered.
    pub async fn sessions_changed(&self, user: im_domain::UserId, live: &[im_domain::SessionId], notice: bool) {
        self.hub().close_unless(user, live, notice);
        let nodes = self.other_nodes_of(user).await.unwrap_or_else(|e| {
            tracing::warn!(user_id = user.0, error = %e, "presence unavailable: sockets elsewhere close at their next heartbeat");
            Vec::new()
        });
        for node in nodes {
            if let Err(e) = self.presence().tell(&node, &NodeMessage::Recheck { user: user.0, notice }).await {
                tracing::warn!(user_id = user.0, error = %e, "could not ask the user's gateway to close the socket");
            }
        }
    }

    /// The other gateways holding a socket of the user's, as presence says.
    async fn other_nodes_of(&self, user: im_domain::UserId) -> Result<Vec<String>, im_adapters::presence::PresenceError> {
        let held = self.presence().nodes_of(user.0).await?;
        let mut nodes: Vec<String> = held.into_iter().map(|(_, node)| node).filter(|n| n != self.node_id()).collect();
        nodes.dedup();
        Ok(nodes)
    }

    /// Whether the user has a socket on any gateway (errors: presence cannot tell).
    pub async fn is_online(&self, user: im_domain::UserId) -> Result<bool, im_adapters::presence::PresenceError> {
        if self.hub().is_online(user) {
            return Ok(true);
        }
        Ok(!self.presence().nodes_of(user.0).await?.is_empty())
    }

    /// Hands an ephemeral frame (typing, presence) to the user's sockets: here if they
    /// are here, and on the gateways presence says hold them. Best effort: a full queue,
    /// an offline user or an unreachable gateway drop it.
    pub async fn offer_ephemeral(&self, to: im_domain::UserId, text: String) {
        self.offer_ephemeral_except(to, None, text).await;
    }

    /// [`AppState::offer_ephemeral`] to every socket of the user's but the one of session
    /// `except`.
    pub async fn offer_ephemeral_except(&self, to: im_domain::UserId, except: Option<im_domain::SessionId>, text: String) {
        let here = self.hub().offer_ephemeral(to, except, text.clone()) != crate::hub::Offer::NotHere;
        // One device, and it is here: nobody else to ask.
        if here && !self.multi_device() {
            return;
        }
        let except = except.map(|s| s.to_string());
        let nodes = self.other_nodes_of(to).await.unwrap_or_else(|e| {
            // A typing notice or the like: not worth more than a debug line.
            tracing::debug!(user_id = to.0, error = %e, "presence unavailable");
            Vec::new()
        });
        for node in nodes {
            let message = NodeMessage::Ephemeral { user: to.0, frame: text.clone(), except: except.clone() };
            if let Err(e) = self.presence().tell(&node, &message).await {
                tracing::debug!(user_id = to.0, error = %e, "ephemeral frame not passed on");
            }
        }
    }

    /// Users connected to any gateway (this one's hub when presence is in-process, or
    /// cannot answer).
    pub async fn online_count(&self) -> u64 {
        match self.presence().online_count().await {
            Ok(Some(count)) => count,
            Ok(None) => self.hub().online_count() as u64,
            Err(e) => {
                tracing::warn!(error = %e, "presence cannot count: this gateway's sockets only");
                self.hub().online_count() as u64
            }
        }
    }

    /// The base of the URLs handed to clients: `IM_PUBLIC_URL`, else this request's
    /// `Host` over http.
    pub fn public_base(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(base) = &self.0.public_url {
            return base.clone();
        }
        let (scheme, host) = crate::proxy::scheme_and_host(headers);
        format!("{scheme}://{}", host.as_deref().unwrap_or("127.0.0.1"))
    }

    /// `url` as clients get it: a path of ours gets the public base in front.
    pub fn absolute_url(&self, headers: &axum::http::HeaderMap, url: &str) -> String {
        if url.starts_with('/') { format!("{}{url}", self.public_base(headers)) } else { url.to_owned() }
    }

    /// How many uploads and screenshots are taken on at once.
    pub fn uploads(&self) -> &crate::uploads::Uploads {
        &self.0.uploads
    }

    /// The local upload directory (served under `/public`).
    pub fn local_files(&self) -> &Arc<dyn ObjectStore> {
        &self.0.local_files
    }

    /// Where `uploadAliyun` writes: the S3-compatible store, else the local one.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.0.object_store
    }

    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.0.metrics
    }

    pub fn heartbeat(&self) -> Duration {
        self.0.heartbeat
    }

    pub fn typing(&self) -> crate::settings::TypingSettings {
        self.0.typing
    }

    /// Whether a user may keep a phone and a desktop/web session at once.
    pub fn multi_device(&self) -> bool {
        self.0.multi_device
    }

    /// Flips to `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }

    /// Read-your-writes: waits until the read models include `position`.
    pub async fn settle(&self, position: i64) -> Result<(), ApiError> {
        Ok(self.0.projector.wait_for(position).await?)
    }

    /// Waits until the read models include everything the log held when this was
    /// called (an inbox read: rows handed to sockets before they were written, and after
    /// a restart the ones the projector is still catching up on).
    pub async fn settle_head(&self) -> Result<(), ApiError> {
        let head = *self.0.store.watch_head().borrow();
        self.settle(head).await
    }
}

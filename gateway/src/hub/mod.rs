//! The hub: this process's WebSocket connections by user (one per user, sharded), each
//! with a bounded queue its writer drains; kicks of older connections with the
//! reference's notice; and [`HubSink`], the embedded delivery path. It knows nothing of
//! requests: [`crate::ws`] serves the sockets and registers them here.

mod queue;

use axum::extract::ws::Utf8Bytes;
use im_domain::{SessionId, UserId};
use im_projections::inbox::{Delivery, DeliverySink};
use im_projections::users::UserRow;
pub(crate) use queue::{Mode, Outbound, PUSHED_KEPT, Queue};
pub use queue::{Offer, SocketLimits};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Shards of the hub's map of connections.
const HUB_SHARDS: usize = 64;

pub(crate) struct Conn {
    id: u64,
    /// The cluster-wide connection generation presence gave it (0: unknown).
    generation: u64,
    session: SessionId,
    user: Arc<UserRow>,
    queue: Queue,
    /// Inbox seqs queued on this connection (the newest few thousand): a row is never
    /// pushed twice, though the live path and `chatGetmessageOffLine` may race for it.
    pushed: BTreeSet<i64>,
}

impl Conn {
    pub(crate) fn queue(&self, outbound: Outbound) -> bool {
        self.queue.queue(outbound)
    }

    pub(crate) fn close(&self, notice: Option<String>) {
        if let Some(text) = notice {
            self.queue(Outbound::Frame { text: text.into(), seq: None });
        }
        if !self.queue(Outbound::Close) {
            self.queue.kill.notify_one();
        }
    }
}

/// Live connections of this process, one per user.
#[derive(Clone)]
pub struct Hub {
    shards: Arc<Vec<Mutex<HashMap<UserId, Conn>>>>,
    next_id: Arc<AtomicU64>,
    /// The avatar of the kick notice (a message from the system).
    system_avatar: Arc<str>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(im_commands::accounts::DEFAULT_SYSTEM_AVATAR)
    }
}

impl Hub {
    pub fn new(system_avatar: &str) -> Self {
        Self {
            shards: Arc::new((0..HUB_SHARDS).map(|_| Mutex::new(HashMap::new())).collect()),
            next_id: Arc::default(),
            system_avatar: system_avatar.into(),
        }
    }

    pub(crate) fn kick_frame(&self, user: &UserRow) -> String {
        kick_frame(user, &self.system_avatar)
    }

    pub(crate) fn shard(&self, user: UserId) -> MutexGuard<'_, HashMap<UserId, Conn>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.shards[user.0.unsigned_abs() as usize % HUB_SHARDS].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `tx` the user's connection. The previous one, if any, is told to close:
    /// with the kick notice when it belongs to another session, silently otherwise.
    pub(crate) fn register(&self, user: &Arc<UserRow>, session: SessionId, queue: Queue, generation: u64) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let me = user.id;
        let conn = Conn { id, generation, session, user: user.clone(), queue, pushed: BTreeSet::new() };
        let previous = self.shard(me).insert(me, conn);
        if let Some(old) = previous {
            let notice = (old.session != session).then(|| self.kick_frame(&old.user));
            old.close(notice);
        }
        id
    }

    /// Another node took the user's socket with connection `generation`: close ours if
    /// it is older (a late kick leaves a newer socket open), with the notice unless it is
    /// the same session reconnecting elsewhere. Generation 0 (an older gateway's kick)
    /// closes any.
    pub fn kick_remote(&self, user: UserId, session: &str, generation: u64) -> bool {
        let Some(old) = self.take_if(user, |c| generation == 0 || c.generation < generation) else { return false };
        let notice = (old.session.to_string() != session).then(|| self.kick_frame(&old.user));
        old.close(notice);
        true
    }

    /// Removes the user's connection if `which` says so.
    pub(crate) fn take_if(&self, user: UserId, which: impl FnOnce(&Conn) -> bool) -> Option<Conn> {
        let mut conns = self.shard(user);
        if conns.get(&user).is_some_and(which) { conns.remove(&user) } else { None }
    }

    /// The session and connection id of the user's socket here, if any.
    pub fn session_of(&self, user: UserId) -> Option<(SessionId, u64)> {
        self.shard(user).get(&user).map(|c| (c.session, c.id))
    }

    /// Closes connection `conn_id` of the user if it is still theirs here (its session
    /// was revoked), with the "logged in on another device" notice when `notice`.
    pub fn close_conn(&self, user: UserId, conn_id: u64, notice: bool) -> bool {
        let Some(conn) = self.take_if(user, |c| c.id == conn_id) else { return false };
        let notice = notice.then(|| self.kick_frame(&conn.user));
        conn.close(notice);
        true
    }

    /// Closes the user's socket here unless it belongs to `live`, the session that is
    /// live now (`None`: no session is).
    pub fn close_unless(&self, user: UserId, live: Option<SessionId>, notice: bool) -> bool {
        match self.session_of(user) {
            Some((session, conn_id)) if Some(session) != live => self.close_conn(user, conn_id, notice),
            _ => false,
        }
    }

    pub(crate) fn unregister(&self, user: UserId, conn_id: u64) {
        let mut conns = self.shard(user);
        if conns.get(&user).is_some_and(|c| c.id == conn_id) {
            conns.remove(&user);
        }
    }

    /// Queues a frame for the user's connection; false when they are not connected here.
    pub fn send(&self, user: UserId, frame: &Value) -> bool {
        let text = Utf8Bytes::from(frame.to_string());
        self.shard(user).get(&user).is_some_and(|conn| conn.queue(Outbound::Frame { text, seq: None }))
    }

    /// Queues an ephemeral frame (a typing indicator) if the connection's queue has room
    /// to spare; it is never a reason to close a socket.
    pub fn offer_ephemeral(&self, user: UserId, text: String) -> Offer {
        match self.shard(user).get(&user) {
            Some(conn) => conn.queue.offer(Outbound::Frame { text: Utf8Bytes::from(text), seq: None }, Mode::Gentle),
            None => Offer::NotHere,
        }
    }

    /// Queues a live inbox row unless this connection already has it: true when the user
    /// is connected here and has (or will get) the row. A socket too slow to take it is
    /// closed (the row stays in the inbox).
    pub fn push(&self, delivery: &Delivery, now: i64) -> bool {
        matches!(self.offer(delivery, now, Mode::Live), Offer::Queued | Offer::Had)
    }

    /// Queues an inbox row if the connection's queue has room to spare (catching up on
    /// pending rows never closes a socket for being behind).
    pub fn offer_pending(&self, delivery: &Delivery, now: i64) -> Offer {
        self.offer(delivery, now, Mode::Gentle)
    }

    pub(crate) fn offer(&self, delivery: &Delivery, now: i64, mode: Mode) -> Offer {
        let user = UserId(delivery.user_id);
        let text = Utf8Bytes::from(delivery.frame(now));
        let mut conns = self.shard(user);
        let Some(conn) = conns.get_mut(&user) else { return Offer::NotHere };
        if conn.pushed.contains(&delivery.seq) {
            return Offer::Had;
        }
        let offered = conn.queue.offer(Outbound::Frame { text, seq: Some(delivery.seq) }, mode);
        if offered == Offer::Queued {
            conn.pushed.insert(delivery.seq);
            if conn.pushed.len() > PUSHED_KEPT {
                conn.pushed.pop_first();
            }
        }
        offered
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.shard(user).contains_key(&user)
    }

    pub fn online_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }
}

/// The embedded delivery path: inbox rows go straight to the sockets of this process
/// as the projector assigns their seqs.
#[derive(Clone)]
pub struct HubSink {
    hub: Hub,
    metrics: Arc<crate::metrics::Metrics>,
    /// Where the rows of users without a socket here go (embedded, with push configured).
    pusher: Option<crate::push::Pusher>,
}

impl HubSink {
    pub fn new(hub: Hub, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { hub, metrics, pusher: None }
    }

    /// The rows of users with no socket here are offered to `pusher`: for the sink of a
    /// process that sees every row (the embedded projector's).
    pub fn with_pusher(self, pusher: crate::push::Pusher) -> Self {
        Self { pusher: Some(pusher), ..self }
    }
}

impl DeliverySink for HubSink {
    /// Rows of users who are not connected here stay pending for
    /// `chatGetmessageOffLine` or sync.
    fn deliver(&self, deliveries: Vec<Delivery>) {
        let now = crate::now_millis();
        for d in &deliveries {
            if self.hub.push(d, now) {
                self.metrics.delivered_after((now - d.sent_at).max(0) as u64);
            } else if let Some(pusher) = &self.pusher {
                pusher.offer(d);
            }
        }
    }
}

/// A frame of the contract: `{"type":…,"data":…,"timestamp":ms}`.
pub fn frame(kind: &str, data: Value) -> Value {
    json!({"type": kind, "data": data, "timestamp": crate::now_millis()})
}

/// The notice an older device gets before its socket closes: the reference's
/// `offlineMsg` (`from_id` `redirect-forceLogout-<id>`) with its `showModel`.
fn kick_frame(user: &UserRow, system_avatar: &str) -> String {
    let text = "你的账号在其他设备登录了,您当前设备会下线";
    let message = im_domain::event::SystemMessageSent {
        message_id: uuid::Uuid::now_v7(),
        to: user.id,
        to_name: user.display_name().to_owned(),
        to_avatar: user.avatar.clone(),
        from_key: Some(format!("redirect-forceLogout-{}", user.id)),
        from_name: "账号异地登录".into(),
        from_avatar: system_avatar.to_owned(),
        text: text.into(),
        redirect: None,
        at: crate::now_millis(),
    };
    let mut data = im_projections::inbox::system_message(&message);
    data["showModel"] = json!({"showModelType": "forceLogin", "content": text});
    frame("singleChat", data).to_string()
}

//! The hub: this process's WebSocket connections by user and device (one per device
//! slot: a single one under the seed's rule; sharded by user), each
//! with a bounded queue its writer drains; kicks of older connections with the
//! reference's notice; and [`HubSink`], the embedded delivery path. It knows nothing of
//! requests: [`crate::ws`] serves the sockets and registers them here.

mod queue;

use axum::extract::ws::Utf8Bytes;
use im_domain::{SessionId, Slot, UserId};
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

    /// Queues an inbox row unless this connection already has it (`None`: a row passed
    /// over unseen).
    fn offer(&mut self, text: Option<&Utf8Bytes>, seq: i64, mode: Mode) -> Offer {
        if self.pushed.contains(&seq) {
            return Offer::Had;
        }
        let outbound = match text {
            Some(text) => Outbound::Frame { text: text.clone(), seq: Some(seq) },
            None => Outbound::Passed { seq },
        };
        let offered = self.queue.offer(outbound, mode);
        if offered == Offer::Queued {
            self.pushed.insert(seq);
            if self.pushed.len() > PUSHED_KEPT {
                self.pushed.pop_first();
            }
        }
        offered
    }
}

/// A user's sockets in this process: at most one per device slot (only the phone's
/// slot under the single-device rule).
#[derive(Default)]
pub(crate) struct Devices([Option<Conn>; 2]);

impl Devices {
    fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.0.iter().flatten()
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// What offering one frame to each of a user's sockets here came to: queued on one
/// of them is queued.
fn best(offers: impl Iterator<Item = Offer>) -> Offer {
    offers.fold(Offer::NotHere, |best, offer| match (best, offer) {
        (Offer::Queued, _) | (_, Offer::Queued) => Offer::Queued,
        (Offer::Had, _) | (_, Offer::Had) => Offer::Had,
        (Offer::NoRoom, _) | (_, Offer::NoRoom) => Offer::NoRoom,
        _ => Offer::NotHere,
    })
}

/// Live connections of this process, by user and device.
#[derive(Clone)]
pub struct Hub {
    shards: Arc<Vec<Mutex<HashMap<UserId, Devices>>>>,
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

    pub(crate) fn shard(&self, user: UserId) -> MutexGuard<'_, HashMap<UserId, Devices>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.shards[user.0.unsigned_abs() as usize % HUB_SHARDS].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `queue` the connection of the user's device in `slot`. The previous one of
    /// that device, if any, is told to close: with the kick notice when it belongs to
    /// another session, silently otherwise. The other device's stays.
    pub(crate) fn register(&self, user: &Arc<UserRow>, session: SessionId, slot: Slot, queue: Queue, generation: u64) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let me = user.id;
        let conn = Conn { id, generation, session, user: user.clone(), queue, pushed: BTreeSet::new() };
        let previous = self.shard(me).entry(me).or_default().0[slot.index()].replace(conn);
        if let Some(old) = previous {
            let notice = (old.session != session).then(|| self.kick_frame(&old.user));
            old.close(notice);
        }
        id
    }

    /// Another node took the socket of the user's device in `slot` with connection
    /// `generation`: close ours if it is older (a late kick leaves a newer socket open),
    /// with the notice unless it is the same session reconnecting elsewhere. Generation 0
    /// (an older gateway's kick) closes any.
    pub fn kick_remote(&self, user: UserId, slot: Slot, session: &str, generation: u64) -> bool {
        let Some(old) = self.take_if(user, |c| c.slot_is(slot) && (generation == 0 || c.conn.generation < generation)) else {
            return false;
        };
        let notice = (old.session.to_string() != session).then(|| self.kick_frame(&old.user));
        old.close(notice);
        true
    }

    /// Removes the first of the user's connections that `which` picks.
    fn take_if(&self, user: UserId, which: impl Fn(Seat<'_>) -> bool) -> Option<Conn> {
        let mut conns = self.shard(user);
        let devices = conns.get_mut(&user)?;
        let taken = devices
            .0
            .iter_mut()
            .zip(Slot::ALL)
            .find(|(conn, slot)| conn.as_ref().is_some_and(|conn| which(Seat { conn, slot: *slot })))
            .and_then(|(conn, _)| conn.take());
        if devices.is_empty() {
            conns.remove(&user);
        }
        taken
    }

    /// The sessions and connection ids of the user's sockets here.
    pub fn sockets_of(&self, user: UserId) -> Vec<(SessionId, u64)> {
        self.shard(user).get(&user).map(|d| d.iter().map(|c| (c.session, c.id)).collect()).unwrap_or_default()
    }

    /// Whether the user's device in `slot` has a socket here.
    pub fn has(&self, user: UserId, slot: Slot) -> bool {
        self.shard(user).get(&user).is_some_and(|d| d.0[slot.index()].is_some())
    }

    /// Closes connection `conn_id` of the user if it is still theirs here (its session
    /// was revoked), with the "logged in on another device" notice when `notice`.
    pub fn close_conn(&self, user: UserId, conn_id: u64, notice: bool) -> bool {
        let Some(conn) = self.take_if(user, |c| c.conn.id == conn_id) else { return false };
        let notice = notice.then(|| self.kick_frame(&conn.user));
        conn.close(notice);
        true
    }

    /// Closes the user's sockets here whose session is not one of `live`, the sessions
    /// live now.
    pub fn close_unless(&self, user: UserId, live: &[SessionId], notice: bool) -> bool {
        let mut closed = false;
        for (session, conn_id) in self.sockets_of(user) {
            if !live.contains(&session) {
                closed |= self.close_conn(user, conn_id, notice);
            }
        }
        closed
    }

    pub(crate) fn unregister(&self, user: UserId, conn_id: u64) {
        self.take_if(user, |c| c.conn.id == conn_id);
    }

    /// Queues an ephemeral frame (typing, presence, a `sent` copy) on each of the user's
    /// sockets here that has room to spare — not on the one of session `except`; it is
    /// never a reason to close a socket.
    pub fn offer_ephemeral(&self, user: UserId, except: Option<SessionId>, text: String) -> Offer {
        let text = Utf8Bytes::from(text);
        let conns = self.shard(user);
        let Some(devices) = conns.get(&user) else { return Offer::NotHere };
        let others = devices.iter().filter(|c| Some(c.session) != except);
        best(others.map(|c| c.queue.offer(Outbound::Frame { text: text.clone(), seq: None }, Mode::Gentle)))
    }

    /// Queues a live inbox row on each of the user's sockets that does not have it yet:
    /// true when the user is connected here and has (or will get) the row. A socket too
    /// slow to take it is closed (the row stays in the inbox).
    pub fn push(&self, delivery: &Delivery, now: i64) -> bool {
        matches!(self.offer(delivery, true, None, now, Mode::Live), Offer::Queued | Offer::Had)
    }

    /// Queues an inbox row on the socket of the user's device in `slot` if its queue has
    /// room to spare (catching up on pending rows never closes a socket for being behind).
    /// A row the user hid is passed over: nothing is written, and it counts as delivered.
    pub fn offer_pending(&self, delivery: &Delivery, shown: bool, slot: Slot, now: i64) -> Offer {
        self.offer(delivery, shown, Some(slot), now, Mode::Gentle)
    }

    /// Offers the row to the user's sockets here (only `slot`'s, when given).
    fn offer(&self, delivery: &Delivery, shown: bool, slot: Option<Slot>, now: i64, mode: Mode) -> Offer {
        let user = UserId(delivery.user_id);
        let text = shown.then(|| Utf8Bytes::from(delivery.frame(now)));
        let mut conns = self.shard(user);
        let Some(devices) = conns.get_mut(&user) else { return Offer::NotHere };
        let wanted = devices.0.iter_mut().zip(Slot::ALL).filter(|(_, s)| slot.is_none_or(|only| only == *s));
        best(wanted.filter_map(|(conn, _)| conn.as_mut()).map(|conn| conn.offer(text.as_ref(), delivery.seq, mode)))
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.shard(user).contains_key(&user)
    }

    /// Users with a socket here.
    pub fn online_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }
}

/// A connection and the device slot it holds, as [`Hub::take_if`] shows it.
#[derive(Clone, Copy)]
struct Seat<'a> {
    conn: &'a Conn,
    slot: Slot,
}

impl Seat<'_> {
    fn slot_is(&self, slot: Slot) -> bool {
        self.slot == slot
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

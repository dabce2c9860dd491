//! Messages, inboxes and groups. For every message the fan-out gives each recipient
//! the next `seq` of their inbox — dense, strictly increasing, assigned exactly once —
//! and writes one inbox row per recipient that refers to the message's body, stored once
//! in `messages`. Friend and group notices go through the same inboxes (with their own
//! payload).
//!
//! Sequencing is in memory: the projection keeps each recent recipient's last `seq`,
//! assigns the batch's seqs in log order, hands the rows to the [`DeliverySink`] at
//! once (before the batch's transaction commits, for sinks that push to this process's
//! sockets) and writes them in a few multi-row statements. A seq is a function of the
//! log alone — the user's last seq at the checkpoint plus the rows of the events after
//! it — so after a crash that lost the newest read-model commits the replay gives every
//! message the same seq again, and no seq a client saw ever names another message.
//!
//! Delivery bookkeeping ([`Mark`]) goes through the same writer: a row counts as
//! delivered once its frame was written to a socket, or the client acked it.

use crate::db::{ROWS_PER_STATEMENT, values_list};
use crate::groups::GroupEffect;
use crate::runtime::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::Event;
use im_domain::message::{ChatType, MessageSent};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot};

/// What a recipient's inbox row becomes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    /// A chat message (or its revocation): a `singleChat` frame.
    Message,
    /// A friend or group notice: a `notice` frame.
    Notice,
}

impl InboxKind {
    /// The stored (and `im.deliveries`) form.
    pub fn as_str(self) -> &'static str {
        match self {
            InboxKind::Message => "message",
            InboxKind::Notice => "notice",
        }
    }

    pub fn parse(raw: &str) -> Self {
        if raw == "notice" { InboxKind::Notice } else { InboxKind::Message }
    }

    /// The WebSocket frame type of the contract.
    pub fn frame_type(self) -> &'static str {
        match self {
            InboxKind::Message => "singleChat",
            InboxKind::Notice => "notice",
        }
    }
}

/// The JSON object of a row's `data` without its `seq`: encoded once per message and
/// shared by all its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(Arc<str>);

impl Body {
    pub fn of(value: &Value) -> Self {
        Self(value.to_string().into())
    }

    /// Text that is already a JSON object.
    pub fn from_json(text: impl Into<Arc<str>>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One inbox row, ready to push.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub user_id: i64,
    pub seq: i64,
    pub kind: InboxKind,
    pub body: Body,
    /// When the message or notice was made (ms): the start of its delivery latency.
    pub sent_at: i64,
}

impl Delivery {
    /// The row's `data`: the body with `seq` added.
    pub fn data_json(&self) -> String {
        let body = self.body.as_str().trim_end();
        let mut out = String::with_capacity(body.len() + 24);
        match body.strip_suffix('}') {
            Some(open) => {
                out.push_str(open);
                if !open.trim_end().ends_with('{') {
                    out.push(',');
                }
            }
            // Not an object (never written so): wrap it.
            None => {
                out.push_str("{\"value\":");
                out.push_str(body);
                out.push(',');
            }
        }
        out.push_str("\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push('}');
        out
    }

    pub fn data(&self) -> Value {
        serde_json::from_str(&self.data_json()).unwrap_or(Value::Null)
    }

    /// `{"type":…,"data":{…,"seq":N},"seq":N,"timestamp":ms}`, built by splicing text
    /// (a group message is not encoded again for each member).
    pub fn frame(&self, timestamp: i64) -> String {
        let data = self.data_json();
        let mut out = String::with_capacity(data.len() + 64);
        out.push_str("{\"type\":\"");
        out.push_str(self.kind.frame_type());
        out.push_str("\",\"data\":");
        out.push_str(&data);
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"timestamp\":");
        out.push_str(&timestamp.to_string());
        out.push('}');
        out
    }
}

/// Receives inbox rows, in seq order per user.
pub trait DeliverySink: Send + Sync + 'static {
    fn deliver(&self, deliveries: Vec<Delivery>);
    /// Whether rows may be handed over as soon as their seqs are assigned, before the
    /// batch's transaction commits (pushes to this process's sockets: a seq is
    /// deterministic, so a replay assigns the same). A sink whose consumers mark rows
    /// delivered in the database from elsewhere says no and gets them after the commit.
    fn before_commit(&self) -> bool {
        true
    }
}

/// How many users' last seqs the projection keeps in memory (more are read back).
pub const HEADS_KEPT: usize = 200_000;

#[derive(Default)]
struct Sequencer {
    /// user → last seq given.
    heads: HashMap<i64, i64>,
    /// What `heads` held for the users this batch touched (`None`: not loaded).
    undo: HashMap<i64, Option<i64>>,
    /// Rows produced by the batch that may only leave after its commit.
    held: Vec<Delivery>,
}

pub struct InboxProjection {
    sink: Arc<dyn DeliverySink>,
    state: Mutex<Sequencer>,
}

/// A `messages` row to write.
struct MessageRow {
    id: String,
    position: i64,
    chat_type: &'static str,
    from_id: i64,
    to_id: i64,
    client_msg_id: Option<String>,
    body: Body,
    at: i64,
}

/// An `inbox` row to write.
struct InboxRow {
    user_id: i64,
    seq: i64,
    message_id: Option<String>,
    kind: InboxKind,
    /// Notices only: messages refer to their body by `message_id`.
    payload: Option<Body>,
    at: i64,
}

/// What a batch has planned but not written yet.
#[derive(Default)]
struct Pending {
    messages: Vec<MessageRow>,
    rows: Vec<InboxRow>,
    out: Vec<Delivery>,
}

impl InboxProjection {
    pub fn new(sink: Arc<dyn DeliverySink>) -> Self {
        Self { sink, state: Mutex::new(Sequencer::default()) }
    }

    fn state(&self) -> MutexGuard<'_, Sequencer> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the last seq of the users the map does not hold.
    async fn load_heads(&self, conn: &mut AnyConnection, users: &[i64]) -> Result<(), ReadError> {
        let missing: Vec<i64> = {
            let state = self.state();
            let mut m: Vec<i64> = users.iter().copied().filter(|u| !state.heads.contains_key(u)).collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        for chunk in missing.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH wanted (user_id) AS (VALUES {}) \
                 SELECT user_id, (SELECT MAX(seq) FROM inbox i WHERE i.user_id = wanted.user_id) AS last_seq FROM wanted",
                values_list(conn, chunk.len(), 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for u in chunk {
                query = query.bind(*u);
            }
            let found: HashMap<i64, i64> = query
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|r| Ok((r.try_get("user_id")?, r.try_get::<Option<i64>, _>("last_seq")?.unwrap_or(0))))
                .collect::<Result<_, ReadError>>()?;
            let mut state = self.state();
            for u in chunk {
                let last = found.get(u).copied().unwrap_or(0);
                state.undo.entry(*u).or_insert(None);
                state.heads.insert(*u, last);
            }
        }
        Ok(())
    }

    /// Gives each user their next seq, in order: one row per user.
    async fn fan_out(&self, conn: &mut AnyConnection, pending: &mut Pending, users: &[i64], row: RowOf<'_>) -> Result<(), ReadError> {
        self.load_heads(conn, users).await?;
        let mut state = self.state();
        for user in users {
            let before = state.heads.get(user).copied().unwrap_or(0);
            state.undo.entry(*user).or_insert(Some(before));
            let seq = before + 1;
            state.heads.insert(*user, seq);
            pending.rows.push(InboxRow {
                user_id: *user,
                seq,
                message_id: row.message_id.map(str::to_owned),
                kind: row.kind,
                payload: row.payload.cloned(),
                at: row.at,
            });
            pending.out.push(Delivery { user_id: *user, seq, kind: row.kind, body: row.body.clone(), sent_at: row.at });
        }
        Ok(())
    }

    /// Hands the planned rows on and writes everything planned so far.
    async fn flush(&self, conn: &mut AnyConnection, pending: &mut Pending) -> Result<(), ReadError> {
        if !pending.out.is_empty() {
            let out = std::mem::take(&mut pending.out);
            if self.sink.before_commit() {
                self.sink.deliver(out);
            } else {
                self.state().held.extend(out);
            }
        }
        write_messages(conn, &std::mem::take(&mut pending.messages)).await?;
        let rows = std::mem::take(&mut pending.rows);
        write_rows(conn, &rows).await
    }
}

/// What every row of one fan-out shares.
struct RowOf<'a> {
    message_id: Option<&'a str>,
    kind: InboxKind,
    payload: Option<&'a Body>,
    body: &'a Body,
    at: i64,
}

async fn write_messages(conn: &mut AnyConnection, rows: &[MessageRow]) -> Result<(), ReadError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO messages (id, position, chat_type, from_id, to_id, client_msg_id, body, create_time) VALUES {} \
             ON CONFLICT (id) DO NOTHING",
            values_list(conn, chunk.len(), 8)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            query = query
                .bind(m.id.clone())
                .bind(m.position)
                .bind(m.chat_type)
                .bind(m.from_id)
                .bind(m.to_id)
                .bind(m.client_msg_id.clone())
                .bind(m.body.as_str().to_owned())
                .bind(m.at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn write_rows(conn: &mut AnyConnection, rows: &[InboxRow]) -> Result<(), ReadError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO inbox (user_id, seq, message_id, kind, payload, create_time) VALUES {}",
            values_list(conn, chunk.len(), 6)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            query = query
                .bind(r.user_id)
                .bind(r.seq)
                .bind(r.message_id.clone())
                .bind(r.kind.as_str())
                .bind(r.payload.as_ref().map(|p| p.as_str().to_owned()))
                .bind(r.at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The message object of the contract, as its recipients see it.
pub fn message_json(e: &MessageSent) -> Value {
    let mut m = json!({
        "id": e.message_id.to_string(),
        "from_avatar": e.from.avatar, "from_name": e.from.name, "from_id": e.from.id,
        "to_id": e.to.id, "to_name": e.to.name, "to_avatar": e.to.avatar,
        "chatType": e.chat_type.as_str(), "type": e.kind, "data": e.data,
        "options": if e.options.is_null() { json!({}) } else { e.options.clone() },
        "create_time": e.at, "isremove": 0,
    });
    if let Some(group) = &e.group {
        m["group"] = group.clone();
    }
    if let Some(key) = &e.client_msg_id {
        m["client_msg_id"] = json!(key);
    }
    m
}

/// A revoked message shows no content.
fn revoked(mut message: Value) -> Value {
    message["isremove"] = json!(1);
    message["data"] = json!("");
    message
}

/// The event types this projection reads.
const HANDLES: &[&str] =
    &["MessageSent", "MessageRevoked", "GroupCreated", "GroupChanged", "FriendRequested", "FriendRequestAccepted", "FriendAdded"];

#[async_trait]
impl Projection for InboxProjection {
    fn name(&self) -> &'static str {
        "inbox"
    }

    fn handles(&self, event_type: &str) -> bool {
        HANDLES.contains(&event_type)
    }

    fn committed(&self) {
        let held = {
            let mut state = self.state();
            state.undo.clear();
            if state.heads.len() > HEADS_KEPT {
                // Bounded: every seq is written, so any user's can be read back.
                state.heads.clear();
            }
            std::mem::take(&mut state.held)
        };
        if !held.is_empty() {
            self.sink.deliver(held);
        }
    }

    fn aborted(&self) {
        let mut state = self.state();
        let undo = std::mem::take(&mut state.undo);
        for (user, before) in undo {
            match before {
                Some(seq) => state.heads.insert(user, seq),
                None => state.heads.remove(&user),
            };
        }
        state.held.clear();
    }

    fn forget(&self) {
        let mut state = self.state();
        state.heads.clear();
        state.undo.clear();
        state.held.clear();
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        let mut pending = Pending::default();
        for a in events {
            let stored = a.stored;
            match a.event {
                Event::MessageSent(e) => {
                    let body = Body::of(&message_json(e));
                    let id = e.message_id.to_string();
                    let users: Vec<i64> = e.recipients.iter().map(|r| r.0).collect();
                    let row = RowOf { message_id: Some(&id), kind: InboxKind::Message, payload: None, body: &body, at: e.at };
                    self.fan_out(conn, &mut pending, &users, row).await?;
                    pending.messages.push(MessageRow {
                        id,
                        position: stored.position,
                        chat_type: e.chat_type.as_str(),
                        from_id: e.from.id,
                        to_id: e.to.id,
                        client_msg_id: e.client_msg_id.clone(),
                        body,
                        at: e.at,
                    });
                }
                Event::MessageRevoked(e) => {
                    // Reads what earlier events of the batch wrote.
                    self.flush(conn, &mut pending).await?;
                    let id = e.message_id.to_string();
                    let Some(row) =
                        sqlx::query("SELECT body, isremove FROM messages WHERE id = $1").bind(&id).fetch_optional(&mut *conn).await?
                    else {
                        continue;
                    };
                    if row.try_get::<i64, _>("isremove")? == 1 {
                        continue;
                    }
                    let message = revoked(serde_json::from_str(&row.try_get::<String, _>("body")?)?);
                    let body = Body::of(&message);
                    sqlx::query("UPDATE messages SET isremove = 1, body = $2 WHERE id = $1")
                        .bind(&id)
                        .bind(body.as_str().to_owned())
                        .execute(&mut *conn)
                        .await?;
                    // Every recipient gets the revocation as a new row, so an online
                    // client learns of it; the rows they have show it revoked too.
                    let users: Vec<i64> = sqlx::query_scalar(
                        "SELECT DISTINCT user_id FROM inbox WHERE message_id = $1 AND kind = 'message' ORDER BY user_id",
                    )
                    .bind(&id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let row = RowOf { message_id: Some(&id), kind: InboxKind::Message, payload: None, body: &body, at: e.at };
                    self.fan_out(conn, &mut pending, &users, row).await?;
                }
                Event::GroupCreated(_) | Event::GroupChanged(_) => {
                    self.flush(conn, &mut pending).await?;
                    for effect in crate::groups::apply(conn, a.event).await? {
                        match effect {
                            GroupEffect::System { group_id, recipients, text } => {
                                let group = crate::groups::summary(conn, group_id).await?;
                                let id = stored.event_id.to_string();
                                let at = stored.recorded_at;
                                let body = Body::of(&json!({
                                    "id": id, "from_avatar": "", "from_name": "系统消息", "from_id": 0,
                                    "to_id": group_id, "to_name": group["name"], "to_avatar": group["avatar"],
                                    "chatType": "group", "type": "system", "data": text, "options": {},
                                    "create_time": at, "isremove": 0, "group": group,
                                }));
                                let row = RowOf { message_id: Some(&id), kind: InboxKind::Message, payload: None, body: &body, at };
                                self.fan_out(conn, &mut pending, &recipients, row).await?;
                                pending.messages.push(MessageRow {
                                    id: id.clone(),
                                    position: stored.position,
                                    chat_type: ChatType::Group.as_str(),
                                    from_id: 0,
                                    to_id: group_id,
                                    client_msg_id: None,
                                    body,
                                    at,
                                });
                            }
                            GroupEffect::Notice { user, data } => {
                                self.notice(conn, &mut pending, user, &data, stored.recorded_at).await?;
                            }
                        }
                    }
                }
                Event::FriendRequested(e) => {
                    let request = json!({
                        "id": e.request_id, "user_id": e.from.0, "friend_id": e.to.0, "nickname": e.nickname,
                        "lookme": i64::from(e.lookme), "lookhim": i64::from(e.lookhim), "status": "pending", "create_time": e.at,
                    });
                    let data = json!({"kind": "friend_apply", "request_id": e.request_id, "user_id": e.from.0, "request": request});
                    self.notice(conn, &mut pending, e.to.0, &data, e.at).await?;
                }
                Event::FriendRequestAccepted(e) => {
                    let request =
                        json!({"id": e.request_id, "user_id": e.from.0, "friend_id": e.to.0, "status": "agree", "update_time": e.at});
                    let data = json!({"kind": "friend_accepted", "request_id": e.request_id, "friend_id": e.to.0, "request": request});
                    self.notice(conn, &mut pending, e.from.0, &data, e.at).await?;
                }
                Event::FriendAdded(e) => {
                    let data = json!({"kind": "friend_added", "user_id": e.from.0, "friend_id": e.to.0, "create_time": e.at});
                    self.notice(conn, &mut pending, e.to.0, &data, e.at).await?;
                }
                _ => {}
            }
        }
        self.flush(conn, &mut pending).await
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        for sql in [
            "DELETE FROM messages",
            "DELETE FROM inbox",
            "DELETE FROM chat_groups",
            "DELETE FROM group_members",
            "DELETE FROM group_join_requests",
        ] {
            sqlx::query(sql).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

impl InboxProjection {
    async fn notice(&self, conn: &mut AnyConnection, pending: &mut Pending, user: i64, data: &Value, at: i64) -> Result<(), ReadError> {
        let body = Body::of(data);
        let row = RowOf { message_id: None, kind: InboxKind::Notice, payload: Some(&body), body: &body, at };
        self.fan_out(conn, pending, &[user], row).await
    }
}

/// Delivery bookkeeping for one user.
#[derive(Debug)]
pub enum Mark {
    /// These rows' frames were written to the user's socket.
    Pushed { user: i64, seqs: Vec<i64> },
    /// The client acknowledged everything up to this seq.
    UpTo { user: i64, seq: i64 },
    /// Answered once every mark queued before it is written.
    Flushed(oneshot::Sender<()>),
}

impl Mark {
    /// Answers a [`Mark::Flushed`] (its marks committed); others need nothing.
    pub(crate) fn done(self) {
        if let Mark::Flushed(tx) = self {
            let _ = tx.send(());
        }
    }
}

/// Marks waiting for the writer; beyond this many they are dropped (a dropped mark only
/// means the row may be pushed again: clients de-duplicate by id).
pub const MARKS_QUEUED: usize = 65_536;

/// Where sockets report what reached them. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Mark>,
}

impl Ledger {
    /// A ledger and the receiving end for the projector (or [`Ledger::write_alone`]).
    pub fn channel() -> (Self, mpsc::Receiver<Mark>) {
        let (tx, rx) = mpsc::channel(MARKS_QUEUED);
        (Self { tx }, rx)
    }

    pub fn mark(&self, mark: Mark) {
        if self.tx.try_send(mark).is_err() {
            tracing::debug!("delivery marks queue full; rows stay pending");
        }
    }

    /// Waits until every mark queued before this call is written (a request that reads
    /// delivery state, such as `chatGetmessageOffLine`, sees the writes before it).
    pub async fn flushed(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Mark::Flushed(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// In a process without a projector (a gateway): a task of its own writes the marks.
    pub fn write_alone(db: ReadDb, mut rx: mpsc::Receiver<Mark>) {
        tokio::spawn(async move {
            let mut marks = Vec::new();
            while rx.recv_many(&mut marks, 20_000).await > 0 {
                let written = async {
                    let mut tx = db.begin_write().await?;
                    apply_marks(&mut tx, &marks).await?;
                    tx.commit().await
                }
                .await;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "could not record deliveries; the rows stay pending");
                }
                marks.drain(..).for_each(Mark::done);
            }
        });
    }
}

/// Writes delivery marks (part of the projector's transaction, or the gateway's own).
pub(crate) async fn apply_marks(conn: &mut AnyConnection, marks: &[Mark]) -> Result<(), ReadError> {
    let mut pushed: Vec<(i64, i64)> = Vec::new();
    let mut up_to: HashMap<i64, i64> = HashMap::new();
    for mark in marks {
        match mark {
            Mark::Pushed { user, seqs } => pushed.extend(seqs.iter().map(|s| (*user, *s))),
            Mark::UpTo { user, seq } => {
                let at = up_to.entry(*user).or_insert(*seq);
                *at = (*at).max(*seq);
            }
            Mark::Flushed(_) => {}
        }
    }
    pushed.sort_unstable();
    pushed.dedup();
    for chunk in pushed.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE inbox SET delivered = 1 WHERE delivered = 0 AND (user_id, seq) IN (VALUES {})",
            values_list(conn, chunk.len(), 2)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (user, seq) in chunk {
            query = query.bind(*user).bind(*seq);
        }
        query.execute(&mut *conn).await?;
    }
    for (user, seq) in up_to {
        sqlx::query("UPDATE inbox SET delivered = 1 WHERE user_id = $1 AND seq <= $2 AND delivered = 0")
            .bind(user)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Queries on messages and inboxes.
#[derive(Clone)]
pub struct Inbox {
    db: ReadDb,
}

/// One page of `GET /api/chat/sync`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPage {
    pub rows: Vec<Delivery>,
    pub last_seq: i64,
    pub has_more: bool,
}

/// An inbox row with its data: a notice's own payload, a message's stored body.
const ROWS: &str = "SELECT i.user_id, i.seq, i.kind, COALESCE(i.payload, m.body) AS payload, i.create_time \
    FROM inbox i LEFT JOIN messages m ON m.id = i.message_id";

fn delivery(r: sqlx::any::AnyRow) -> Result<Delivery, ReadError> {
    Ok(Delivery {
        user_id: r.try_get("user_id")?,
        seq: r.try_get("seq")?,
        kind: InboxKind::parse(&r.try_get::<String, _>("kind")?),
        body: Body::from_json(r.try_get::<Option<String>, _>("payload")?.unwrap_or_else(|| "{}".into())),
        sent_at: r.try_get("create_time")?,
    })
}

impl Inbox {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// A message by id, as stored for history (revoked ones emptied).
    pub async fn message(&self, id: &str) -> Result<Option<(i64, Value)>, ReadError> {
        let row = sqlx::query("SELECT from_id, body FROM messages WHERE id = $1").bind(id).fetch_optional(self.db.pool()).await?;
        row.map(|r| -> Result<(i64, Value), ReadError> {
            Ok((r.try_get("from_id")?, serde_json::from_str(&r.try_get::<String, _>("body")?)?))
        })
        .transpose()
    }

    /// Inbox rows after `since`, oldest first.
    pub async fn sync(&self, user: i64, since: i64, limit: i64) -> Result<SyncPage, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!("{ROWS} WHERE i.user_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3"));
        let rows = sqlx::query(sql).bind(user).bind(since).bind(limit + 1).fetch_all(self.db.pool()).await?;
        let mut rows: Vec<Delivery> = rows.into_iter().map(delivery).collect::<Result<_, _>>()?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let last_seq = rows.last().map_or(since, |d| d.seq);
        Ok(SyncPage { rows, last_seq, has_more })
    }

    /// Rows after `after` not yet delivered, oldest first.
    pub async fn pending(&self, user: i64, after: i64, limit: i64) -> Result<Vec<Delivery>, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!("{ROWS} WHERE i.user_id = $1 AND i.delivered = 0 AND i.seq > $2 ORDER BY i.seq LIMIT $3"));
        let rows = sqlx::query(sql).bind(user).bind(after).bind(limit).fetch_all(self.db.pool()).await?;
        rows.into_iter().map(delivery).collect()
    }

    /// The user's highest seq (0 when the inbox is empty).
    pub async fn last_seq(&self, user: i64) -> Result<i64, ReadError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM inbox WHERE user_id = $1").bind(user).fetch_one(self.db.pool()).await?;
        Ok(seq.unwrap_or(0))
    }

    /// The one-to-one conversation between `me` and `other`, newest first, before the
    /// message `before` (exclusive) when given.
    pub async fn history(
        &self,
        chat_type: ChatType,
        me: i64,
        other: i64,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>, ReadError> {
        let before_position = match before {
            Some(id) => {
                let p: Option<i64> =
                    sqlx::query_scalar("SELECT position FROM messages WHERE id = $1").bind(id).fetch_optional(self.db.pool()).await?;
                p.unwrap_or(0)
            }
            None => i64::MAX,
        };
        let rows: Vec<String> =
            match chat_type {
                ChatType::Single => {
                    sqlx::query_scalar(
                        "SELECT body FROM messages WHERE chat_type = 'single' AND position < $3 \
                     AND ((from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)) ORDER BY position DESC LIMIT $4",
                    )
                    .bind(me)
                    .bind(other)
                    .bind(before_position)
                    .bind(limit)
                    .fetch_all(self.db.pool())
                    .await?
                }
                ChatType::Group => sqlx::query_scalar(
                    "SELECT body FROM messages WHERE chat_type = 'group' AND to_id = $1 AND position < $2 ORDER BY position DESC LIMIT $3",
                )
                .bind(other)
                .bind(before_position)
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?,
            };
        rows.iter().map(|b| Ok(serde_json::from_str(b)?)).collect()
    }

    /// Counts for dashboards: messages stored.
    pub async fn message_count(&self) -> Result<i64, ReadError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(self.db.pool()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: &str, seq: i64) -> Delivery {
        Delivery { user_id: 7, seq, kind: InboxKind::Message, body: Body::from_json(body), sent_at: 0 }
    }

    #[test]
    fn frames_splice_the_seq_into_the_shared_body() {
        let d = delivery(r#"{"id":"m1","data":"你好"}"#, 42);
        assert_eq!(d.data(), json!({"id": "m1", "data": "你好", "seq": 42}));
        let frame: Value = serde_json::from_str(&d.frame(99)).unwrap_or(Value::Null);
        assert_eq!(frame, json!({"type": "singleChat", "data": {"id": "m1", "data": "你好", "seq": 42}, "seq": 42, "timestamp": 99}));
        assert_eq!(delivery("{}", 1).data(), json!({"seq": 1}));
        assert_eq!(delivery("{ }", 2).data(), json!({"seq": 2}));
        let notice = Delivery { kind: InboxKind::Notice, ..delivery(r#"{"kind":"friend_apply"}"#, 3) };
        let frame: Value = serde_json::from_str(&notice.frame(1)).unwrap_or(Value::Null);
        assert_eq!(frame["type"], "notice");
        assert_eq!(frame["data"], json!({"kind": "friend_apply", "seq": 3}));
    }

    #[test]
    fn kinds_round_trip_through_their_stored_form() {
        for kind in [InboxKind::Message, InboxKind::Notice] {
            assert_eq!(InboxKind::parse(kind.as_str()), kind);
        }
    }
}

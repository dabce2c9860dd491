//! Messages, inboxes and groups. For every message the fan-out writes one inbox row per
//! recipient with the next `seq` of that recipient — dense, strictly increasing, given
//! exactly once because it is assigned in the same transaction that moves the
//! checkpoint. Friend notices go through the same inboxes. After each committed batch
//! the new rows are handed to a [`DeliverySink`] (the fast path to connected sockets).

use crate::groups::GroupEffect;
use crate::runtime::Projection;
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::Event;
use im_domain::message::{ChatType, MessageSent};
use im_eventlog::StoredEvent;
use serde_json::{Value, json};
use sqlx::{Any, AnyConnection, Row, Transaction};
use std::sync::{Arc, Mutex};

/// What a recipient's inbox row becomes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    /// A chat message (or its revocation): a `singleChat` frame.
    Message,
    /// A friend or group notice: a `notice` frame.
    Notice,
}

impl InboxKind {
    fn as_str(self) -> &'static str {
        match self {
            InboxKind::Message => "message",
            InboxKind::Notice => "notice",
        }
    }

    fn parse(raw: &str) -> Self {
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

/// One inbox row, ready to push.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub user_id: i64,
    pub seq: i64,
    pub kind: InboxKind,
    /// The frame's `data`, with `seq` filled in.
    pub data: Value,
}

impl Delivery {
    /// `{"type":…,"data":…,"seq":N,"timestamp":ms}`.
    pub fn frame(&self, timestamp: i64) -> Value {
        json!({"type": self.kind.frame_type(), "data": self.data, "seq": self.seq, "timestamp": timestamp})
    }
}

/// Receives the inbox rows of every committed batch, in seq order per user.
pub trait DeliverySink: Send + Sync + 'static {
    fn deliver(&self, deliveries: Vec<Delivery>);
}

pub struct InboxProjection {
    sink: Arc<dyn DeliverySink>,
    pending: Mutex<Vec<Delivery>>,
}

impl InboxProjection {
    pub fn new(sink: Arc<dyn DeliverySink>) -> Self {
        Self { sink, pending: Mutex::new(Vec::new()) }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Delivery>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a row to `user`'s inbox with their next seq.
    async fn push(&self, conn: &mut AnyConnection, user: i64, kind: InboxKind, message_id: Option<String>, data: Value, at: i64) -> Result<(), ReadError> {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO inbox_heads (user_id, last_seq) VALUES ($1, 1) \
             ON CONFLICT (user_id) DO UPDATE SET last_seq = inbox_heads.last_seq + 1 RETURNING last_seq",
        )
        .bind(user)
        .fetch_one(&mut *conn)
        .await?;
        let mut data = data;
        data["seq"] = json!(seq);
        sqlx::query("INSERT INTO inbox (user_id, seq, message_id, kind, payload, create_time) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(user)
            .bind(seq)
            .bind(message_id)
            .bind(kind.as_str())
            .bind(data.to_string())
            .bind(at)
            .execute(&mut *conn)
            .await?;
        self.pending().push(Delivery { user_id: user, seq, kind, data });
        Ok(())
    }
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

#[async_trait]
impl Projection for InboxProjection {
    fn name(&self) -> &'static str {
        "inbox"
    }

    fn batch_started(&self) {
        self.pending().clear();
    }

    fn batch_committed(&self) {
        let deliveries = std::mem::take(&mut *self.pending());
        if !deliveries.is_empty() {
            self.sink.deliver(deliveries);
        }
    }

    async fn apply(&self, tx: &mut Transaction<'static, Any>, event: &Event, stored: &StoredEvent) -> Result<(), ReadError> {
        let conn = &mut **tx;
        match event {
            Event::MessageSent(e) => {
                let body = message_json(e);
                let inserted = sqlx::query(
                    "INSERT INTO messages (id, position, chat_type, from_id, to_id, client_msg_id, body, create_time) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                )
                .bind(e.message_id.to_string())
                .bind(stored.position)
                .bind(e.chat_type.as_str())
                .bind(e.from.id)
                .bind(e.to.id)
                .bind(e.client_msg_id.clone())
                .bind(body.to_string())
                .bind(e.at)
                .execute(&mut *conn)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(());
                }
                for recipient in &e.recipients {
                    self.push(conn, recipient.0, InboxKind::Message, Some(e.message_id.to_string()), body.clone(), e.at).await?;
                }
            }
            Event::MessageRevoked(e) => {
                let id = e.message_id.to_string();
                let Some(row) = sqlx::query("SELECT body, isremove FROM messages WHERE id = $1").bind(&id).fetch_optional(&mut *conn).await?
                else {
                    return Ok(());
                };
                if row.try_get::<i64, _>("isremove")? == 1 {
                    return Ok(());
                }
                let body = revoked(serde_json::from_str(&row.try_get::<String, _>("body")?)?);
                sqlx::query("UPDATE messages SET isremove = 1, body = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(body.to_string())
                    .execute(&mut *conn)
                    .await?;
                let recipients: Vec<i64> =
                    sqlx::query_scalar("SELECT DISTINCT user_id FROM inbox WHERE message_id = $1 AND kind = 'message' ORDER BY user_id")
                        .bind(&id)
                        .fetch_all(&mut *conn)
                        .await?;
                // Rows not yet read now hold the revoked message; every recipient also
                // gets the revocation as a new row, so an online client learns of it.
                let rows = sqlx::query("SELECT user_id, seq FROM inbox WHERE message_id = $1 AND kind = 'message'")
                    .bind(&id)
                    .fetch_all(&mut *conn)
                    .await?;
                for r in rows {
                    let (user, seq): (i64, i64) = (r.try_get("user_id")?, r.try_get("seq")?);
                    let mut data = body.clone();
                    data["seq"] = json!(seq);
                    sqlx::query("UPDATE inbox SET payload = $3 WHERE user_id = $1 AND seq = $2")
                        .bind(user)
                        .bind(seq)
                        .bind(data.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                for user in recipients {
                    self.push(conn, user, InboxKind::Message, Some(id.clone()), body.clone(), e.at).await?;
                }
            }
            Event::GroupCreated(_) | Event::GroupChanged(_) => {
                for effect in crate::groups::apply(conn, event).await? {
                    match effect {
                        GroupEffect::System { group_id, recipients, text } => {
                            let group = crate::groups::summary(conn, group_id).await?;
                            let id = stored.event_id.to_string();
                            let at = stored.recorded_at;
                            let body = json!({
                                "id": id, "from_avatar": "", "from_name": "系统消息", "from_id": 0,
                                "to_id": group_id, "to_name": group["name"], "to_avatar": group["avatar"],
                                "chatType": "group", "type": "system", "data": text, "options": {},
                                "create_time": at, "isremove": 0, "group": group,
                            });
                            sqlx::query(
                                "INSERT INTO messages (id, position, chat_type, from_id, to_id, body, create_time) \
                                 VALUES ($1, $2, 'group', 0, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                            )
                            .bind(&id)
                            .bind(stored.position)
                            .bind(group_id)
                            .bind(body.to_string())
                            .bind(at)
                            .execute(&mut *conn)
                            .await?;
                            for user in recipients {
                                self.push(conn, user, InboxKind::Message, Some(id.clone()), body.clone(), at).await?;
                            }
                        }
                        GroupEffect::Notice { user, data } => {
                            self.push(conn, user, InboxKind::Notice, None, data, stored.recorded_at).await?;
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
                self.push(conn, e.to.0, InboxKind::Notice, None, data, e.at).await?;
            }
            Event::FriendRequestAccepted(e) => {
                let request = json!({"id": e.request_id, "user_id": e.from.0, "friend_id": e.to.0, "status": "agree", "update_time": e.at});
                let data = json!({"kind": "friend_accepted", "request_id": e.request_id, "friend_id": e.to.0, "request": request});
                self.push(conn, e.from.0, InboxKind::Notice, None, data, e.at).await?;
            }
            Event::FriendAdded(e) => {
                let data = json!({"kind": "friend_added", "user_id": e.from.0, "friend_id": e.to.0, "create_time": e.at});
                self.push(conn, e.to.0, InboxKind::Notice, None, data, e.at).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut Transaction<'static, Any>) -> Result<(), ReadError> {
        for sql in [
            "DELETE FROM messages",
            "DELETE FROM inbox",
            "DELETE FROM inbox_heads",
            "DELETE FROM chat_groups",
            "DELETE FROM group_members",
            "DELETE FROM group_join_requests",
        ] {
            sqlx::query(sql).execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// Queries on messages and inboxes, and the delivery bookkeeping.
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

fn delivery(r: sqlx::any::AnyRow) -> Result<Delivery, ReadError> {
    Ok(Delivery {
        user_id: r.try_get("user_id")?,
        seq: r.try_get("seq")?,
        kind: InboxKind::parse(&r.try_get::<String, _>("kind")?),
        data: serde_json::from_str(&r.try_get::<String, _>("payload")?)?,
    })
}

impl Inbox {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// A message by id, as stored for history (revoked ones emptied).
    pub async fn message(&self, id: &str) -> Result<Option<(i64, Value)>, ReadError> {
        let row = sqlx::query("SELECT from_id, body FROM messages WHERE id = $1").bind(id).fetch_optional(self.db.pool()).await?;
        row.map(|r| -> Result<(i64, Value), ReadError> { Ok((r.try_get("from_id")?, serde_json::from_str(&r.try_get::<String, _>("body")?)?)) })
            .transpose()
    }

    /// Inbox rows after `since`, oldest first.
    pub async fn sync(&self, user: i64, since: i64, limit: i64) -> Result<SyncPage, ReadError> {
        let rows = sqlx::query("SELECT user_id, seq, kind, payload FROM inbox WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(user)
            .bind(since)
            .bind(limit + 1)
            .fetch_all(self.db.pool())
            .await?;
        let mut rows: Vec<Delivery> = rows.into_iter().map(delivery).collect::<Result<_, _>>()?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let last_seq = rows.last().map_or(since, |d| d.seq);
        Ok(SyncPage { rows, last_seq, has_more })
    }

    /// Rows not yet delivered, oldest first.
    pub async fn pending(&self, user: i64, limit: i64) -> Result<Vec<Delivery>, ReadError> {
        let rows = sqlx::query(
            "SELECT user_id, seq, kind, payload FROM inbox WHERE user_id = $1 AND delivered = 0 ORDER BY seq LIMIT $2",
        )
        .bind(user)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter().map(delivery).collect()
    }

    /// Marks `user`'s rows up to `seq` delivered (an `ack` frame, or a pushed batch).
    pub async fn mark_delivered(&self, user: i64, up_to_seq: i64) -> Result<u64, ReadError> {
        let done = sqlx::query("UPDATE inbox SET delivered = 1 WHERE user_id = $1 AND seq <= $2 AND delivered = 0")
            .bind(user)
            .bind(up_to_seq)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Marks exactly these rows delivered (pushed live to a socket).
    pub async fn mark_rows_delivered(&self, rows: &[(i64, i64)]) -> Result<(), ReadError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().await?;
        for (user, seq) in rows {
            sqlx::query("UPDATE inbox SET delivered = 1 WHERE user_id = $1 AND seq = $2")
                .bind(user)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The user's highest seq (0 when the inbox is empty).
    pub async fn last_seq(&self, user: i64) -> Result<i64, ReadError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM inbox_heads WHERE user_id = $1").bind(user).fetch_optional(self.db.pool()).await?;
        Ok(seq.unwrap_or(0))
    }

    /// The one-to-one conversation between `me` and `other`, newest first, before the
    /// message `before` (exclusive) when given.
    pub async fn history(&self, chat_type: ChatType, me: i64, other: i64, before: Option<&str>, limit: i64) -> Result<Vec<Value>, ReadError> {
        let before_position = match before {
            Some(id) => {
                let p: Option<i64> =
                    sqlx::query_scalar("SELECT position FROM messages WHERE id = $1").bind(id).fetch_optional(self.db.pool()).await?;
                p.unwrap_or(0)
            }
            None => i64::MAX,
        };
        let rows: Vec<String> = match chat_type {
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
            ChatType::Group => {
                sqlx::query_scalar("SELECT body FROM messages WHERE chat_type = 'group' AND to_id = $1 AND position < $2 ORDER BY position DESC LIMIT $3")
                    .bind(other)
                    .bind(before_position)
                    .bind(limit)
                    .fetch_all(self.db.pool())
                    .await?
            }
        };
        rows.iter().map(|b| Ok(serde_json::from_str(b)?)).collect()
    }

    /// Counts for dashboards: messages stored.
    pub async fn message_count(&self) -> Result<i64, ReadError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(self.db.pool()).await?)
    }
}

//! The conversation list (issue 15): one row per chat per user — the newest message,
//! how far the user read (`read_seq`, in their own inbox's seqs), the unread count and
//! whether an unread message calls them out, pinned and muted — and delete-for-me
//! (`hidden_messages`).
//!
//! Kept by the inbox projection, which alone knows each row's seq: every message it
//! plans leaves a [`Touch`] on its sender's and each recipient's row, written with the
//! plan (one upsert per chat and batch, not per message); the user's own
//! `conversations-<user>` events ([`apply`]) move the read mark, pins, mutes and hidden
//! messages in log order, after the rows before them.

use crate::db::{AnyQuery, Placeholders};
use crate::{ReadDb, ReadError};
use im_domain::Event;
use im_domain::conversation::{Chat, chat_of};
use im_domain::message::ChatType;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// A message's mark on one user's row: it is the chat's newest, and (for a recipient)
/// one more unread.
#[derive(Debug, Clone)]
pub(crate) struct Touch {
    pub user_id: i64,
    pub chat_type: &'static str,
    pub chat_id: i64,
    pub message_id: std::sync::Arc<str>,
    /// The user's seq of the message's row (0 for its sender, who gets none).
    pub seq: i64,
    pub at: i64,
    /// Counts as unread: a recipient's message from a person (not a group's system line).
    pub unread: bool,
    /// It calls the user out.
    pub mentioned: bool,
}

/// One chat's share of a batch's touches.
pub(crate) struct Summed<'a> {
    last: &'a Touch,
    seq: i64,
    unread: i64,
    mentioned: bool,
}

/// A batch's touches per chat: the newest message, the highest seq, the unread messages
/// added, whether one of them calls the user out; in the order the chats were first
/// touched.
pub(crate) fn summed<'a>(touches: impl IntoIterator<Item = &'a Touch>) -> Vec<Summed<'a>> {
    let mut at: HashMap<(i64, &str, i64), usize> = HashMap::new();
    let mut rows: Vec<Summed<'a>> = Vec::new();
    for t in touches {
        let i = *at.entry((t.user_id, t.chat_type, t.chat_id)).or_insert_with(|| {
            rows.push(Summed { last: t, seq: 0, unread: 0, mentioned: false });
            rows.len() - 1
        });
        let summed = &mut rows[i];
        summed.last = t;
        summed.seq = summed.seq.max(t.seq);
        summed.unread += i64::from(t.unread);
        summed.mentioned |= t.mentioned;
    }
    rows
}

/// The statements writing a batch's [`summed`] touches: upserts that add, so each chat
/// is in them once (no padding).
pub(crate) fn touch_queries<'q>(marks: Placeholders, rows: Vec<Summed<'q>>) -> impl Iterator<Item = AnyQuery<'q>> + 'q {
    let greatest = if marks.numbered() { "GREATEST" } else { "MAX" };
    let sizes = crate::db::exact_sizes(rows.len());
    let mut rows = rows.into_iter();
    sizes.map(move |size| {
        let sql = crate::db::statement_text("conversations touch", marks, size, || {
            format!(
                "INSERT INTO conversations (user_id, chat_type, chat_id, last_message_id, last_seq, last_time, unread, mentioned) VALUES {} \
                 ON CONFLICT (user_id, chat_type, chat_id) DO UPDATE SET last_message_id = excluded.last_message_id, \
                 last_seq = {greatest}(conversations.last_seq, excluded.last_seq), last_time = excluded.last_time, \
                 unread = conversations.unread + excluded.unread, mentioned = {greatest}(conversations.mentioned, excluded.mentioned)",
                marks.values(size, 8)
            )
        });
        rows.by_ref().take(size).fold(crate::db::query_for(sql, size * 8), |query, s| {
            query
                .bind(s.last.user_id)
                .bind(s.last.chat_type)
                .bind(s.last.chat_id)
                .bind(&*s.last.message_id)
                .bind(s.seq)
                .bind(s.last.at)
                .bind(s.unread)
                .bind(i64::from(s.mentioned))
        })
    })
}

/// Applies an event of a user's `conversations-<user>` stream (inside the inbox's batch
/// transaction).
pub(crate) async fn apply(conn: &mut AnyConnection, event: &Event) -> Result<(), ReadError> {
    match event {
        Event::ConversationRead(e) => read(conn, e.user.0, e.chat, e.seq).await,
        Event::ConversationPinned(e) => flag(conn, e.user.0, e.chat, "pinned", if e.pinned { e.at.max(1) } else { 0 }).await,
        Event::ConversationMuted(e) => flag(conn, e.user.0, e.chat, "muted", i64::from(e.muted)).await,
        Event::MessageHidden(e) => hide(conn, e.user.0, &e.message_id.to_string()).await,
        _ => Ok(()),
    }
}

/// The SQL that keeps `m` (a `messages` row) to one chat of user `$1`, the chat's id being `$3`.
fn in_chat(chat_type: ChatType) -> &'static str {
    match chat_type {
        ChatType::Single => "m.chat_type = 'single' AND ((m.from_id = $3 AND m.to_id = $1) OR (m.from_id = $1 AND m.to_id = $3))",
        ChatType::Group => "m.chat_type = 'group' AND m.to_id = $3",
    }
}

/// Unread after `upto`: the messages from others whose first row in the user's inbox
/// comes after it (an edit's or a reaction's later row does not make a message unread
/// again), and whether one of them calls the user out.
async fn unread_after(conn: &mut AnyConnection, user: i64, chat: Chat, upto: i64) -> Result<(i64, bool), ReadError> {
    let sql = format!(
        "SELECT COUNT(*) AS unread, CAST(COALESCE(MAX(CASE WHEN i.payload IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS mentioned \
         FROM inbox i JOIN messages m ON m.id = i.message_id \
         WHERE i.user_id = $1 AND i.seq > $2 AND i.kind = 'message' AND m.from_id > 0 AND m.from_id <> $1 AND {} \
         AND NOT EXISTS (SELECT 1 FROM inbox j WHERE j.user_id = $1 AND j.message_id = i.message_id AND j.seq < i.seq) \
         AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $1 AND h.message_id = i.message_id)",
        in_chat(chat.chat_type)
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user).bind(upto).bind(chat.id).fetch_one(&mut *conn).await?;
    Ok((row.try_get("unread")?, row.try_get::<i64, _>("mentioned")? == 1))
}

/// What the projection reads back of a conversation row before changing it.
struct Stored {
    last_message_id: Option<String>,
    last_seq: i64,
    read_seq: i64,
    unread: i64,
}

async fn stored(conn: &mut AnyConnection, user: i64, chat: Chat) -> Result<Option<Stored>, ReadError> {
    let row = sqlx::query(
        "SELECT last_message_id, last_seq, read_seq, unread FROM conversations WHERE user_id = $1 AND chat_type = $2 AND chat_id = $3",
    )
    .bind(user)
    .bind(chat.chat_type.as_str())
    .bind(chat.id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(Stored {
            last_message_id: r.try_get("last_message_id")?,
            last_seq: r.try_get("last_seq")?,
            read_seq: r.try_get("read_seq")?,
            unread: r.try_get("unread")?,
        })
    })
    .transpose()
}

/// Moves the read mark (never back, never past the chat's newest row), recounts the
/// unread messages, and tells the other party of a one-to-one chat how far it was read.
async fn read(conn: &mut AnyConnection, user: i64, chat: Chat, seq: i64) -> Result<(), ReadError> {
    let Some(Stored { last_seq, read_seq, .. }) = stored(conn, user, chat).await? else { return Ok(()) };
    let upto = seq.min(last_seq);
    if upto <= read_seq {
        return Ok(());
    }
    let (unread, mentioned) = if upto >= last_seq { (0, false) } else { unread_after(conn, user, chat, upto).await? };
    sqlx::query(
        "UPDATE conversations SET read_seq = $4, unread = $5, mentioned = $6 WHERE user_id = $1 AND chat_type = $2 AND chat_id = $3",
    )
    .bind(user)
    .bind(chat.chat_type.as_str())
    .bind(chat.id)
    .bind(upto)
    .bind(unread)
    .bind(i64::from(mentioned))
    .execute(&mut *conn)
    .await?;
    if chat.chat_type == ChatType::Single {
        // The newest of the other party's messages this read covers.
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(m.create_time) FROM inbox i JOIN messages m ON m.id = i.message_id \
             WHERE i.user_id = $1 AND i.seq > $2 AND i.seq <= $3 AND i.kind = 'message' \
             AND m.chat_type = 'single' AND m.from_id = $4 AND m.to_id = $1",
        )
        .bind(user)
        .bind(read_seq)
        .bind(upto)
        .bind(chat.id)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(time) = newest {
            let greatest = if conn.backend_name() == "SQLite" { "MAX" } else { "GREATEST" };
            let sql = format!(
                "UPDATE conversations SET peer_read_time = {greatest}(peer_read_time, $3) \
                 WHERE user_id = $1 AND chat_type = 'single' AND chat_id = $2"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(chat.id).bind(user).bind(time).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Sets a chat's `pinned` or `muted` (a chat without messages yet gets its row).
async fn flag(conn: &mut AnyConnection, user: i64, chat: Chat, column: &'static str, value: i64) -> Result<(), ReadError> {
    let sql = format!(
        "INSERT INTO conversations (user_id, chat_type, chat_id, {column}) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, chat_type, chat_id) DO UPDATE SET {column} = excluded.{column}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user).bind(chat.chat_type.as_str()).bind(chat.id).bind(value).execute(&mut *conn).await?;
    Ok(())
}

/// Delete-for-me: the message leaves the user's history and sync; if it was their chat's
/// newest, the one before it (that they still see) takes its place, and an unread one
/// no longer counts.
async fn hide(conn: &mut AnyConnection, user: i64, id: &str) -> Result<(), ReadError> {
    sqlx::query("INSERT INTO hidden_messages (user_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(user)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let Some(message) =
        sqlx::query("SELECT chat_type, from_id, to_id FROM messages WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?
    else {
        return Ok(());
    };
    let from: i64 = message.try_get("from_id")?;
    let Some(chat_type) = ChatType::parse(&message.try_get::<String, _>("chat_type")?) else { return Ok(()) };
    let Some(chat) = chat_of(im_domain::UserId(user), chat_type, from, message.try_get("to_id")?) else { return Ok(()) };
    let Some(Stored { last_message_id: last, read_seq, unread, .. }) = stored(conn, user, chat).await? else { return Ok(()) };
    let first_seq: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM inbox WHERE user_id = $1 AND message_id = $2")
        .bind(user)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let was_unread = from > 0 && from != user && first_seq.is_some_and(|s| s > read_seq);
    let newest = if last.as_deref() == Some(id) {
        let sql = format!(
            "SELECT m.id FROM messages m WHERE {} \
             AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $1 AND h.message_id = m.id) \
             AND (m.from_id = $1 OR EXISTS (SELECT 1 FROM inbox i WHERE i.user_id = $1 AND i.message_id = m.id)) \
             AND m.id <> $2 ORDER BY m.position DESC LIMIT 1",
            in_chat(chat.chat_type)
        );
        let newest: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(user).bind(id).bind(chat.id).fetch_optional(&mut *conn).await?;
        Some(newest)
    } else {
        None
    };
    if !was_unread && newest.is_none() {
        return Ok(());
    }
    sqlx::query("UPDATE conversations SET unread = $4, last_message_id = $5 WHERE user_id = $1 AND chat_type = $2 AND chat_id = $3")
        .bind(user)
        .bind(chat.chat_type.as_str())
        .bind(chat.id)
        .bind(if was_unread { (unread - 1).max(0) } else { unread })
        .bind(newest.unwrap_or(last))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One row of a user's conversation list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRow {
    pub chat: Chat,
    /// The other user's nickname (or username), or the group's name.
    pub name: String,
    pub avatar: String,
    /// The newest message the user still sees, as history shows it (edits, revocation).
    pub last: Option<Value>,
    pub last_time: i64,
    pub last_seq: i64,
    pub read_seq: i64,
    pub unread: i64,
    pub mentioned: bool,
    /// One-to-one: the send time of the newest of my messages the other party read.
    pub peer_read_time: i64,
    pub pinned: bool,
    pub muted: bool,
}

impl ConversationRow {
    /// The row as `GET /api/chat/conversations` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "chatType": self.chat.chat_type.as_str(),
            "id": self.chat.id,
            "name": self.name,
            "avatar": self.avatar,
            "last_message": self.last,
            "last_time": self.last_time,
            "last_seq": self.last_seq,
            "read_seq": self.read_seq,
            "unread": self.unread,
            "mentioned": self.mentioned,
            "peer_read_time": self.peer_read_time,
            "pinned": self.pinned,
            "muted": self.muted,
        })
    }
}

/// A conversation row with its newest message and the chat's name and avatar: the group's
/// name, or the other user as a friend list shows them (my remark for them, their
/// nickname, their username — `display_name`'s order).
const COLUMNS: &str = "SELECT c.chat_type, c.chat_id, c.last_time, c.last_seq, c.read_seq, c.unread, c.mentioned, \
    c.peer_read_time, c.pinned, c.muted, m.body, \
    COALESCE(g.name, CASE WHEN f.nickname <> '' THEN f.nickname WHEN u.nickname <> '' THEN u.nickname ELSE u.username END, '') AS name, \
    COALESCE(g.avatar, u.avatar, '') AS avatar \
    FROM conversations c LEFT JOIN messages m ON m.id = c.last_message_id \
    LEFT JOIN users u ON c.chat_type = 'single' AND u.id = c.chat_id \
    LEFT JOIN friends f ON c.chat_type = 'single' AND f.user_id = c.user_id AND f.friend_id = c.chat_id \
    LEFT JOIN chat_groups g ON c.chat_type = 'group' AND g.id = c.chat_id";

fn conversation_row(r: sqlx::any::AnyRow) -> Result<ConversationRow, ReadError> {
    let raw: String = r.try_get("chat_type")?;
    let chat_type = ChatType::parse(&raw).ok_or_else(|| ReadError::Corrupt(format!("conversation chat_type {raw:?}")))?;
    Ok(ConversationRow {
        chat: Chat { chat_type, id: r.try_get("chat_id")? },
        name: r.try_get("name")?,
        avatar: r.try_get("avatar")?,
        last: r.try_get::<Option<String>, _>("body")?.map(|b| serde_json::from_str(&b)).transpose()?,
        last_time: r.try_get("last_time")?,
        last_seq: r.try_get("last_seq")?,
        read_seq: r.try_get("read_seq")?,
        unread: r.try_get("unread")?,
        mentioned: r.try_get::<i64, _>("mentioned")? != 0,
        peer_read_time: r.try_get("peer_read_time")?,
        pinned: r.try_get::<i64, _>("pinned")? != 0,
        muted: r.try_get::<i64, _>("muted")? != 0,
    })
}

/// Queries on the conversation list.
#[derive(Clone)]
pub struct Conversations {
    db: ReadDb,
}

impl Conversations {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// A user's chats, pinned first (the latest pinned first), then by last activity.
    pub async fn page(&self, user: i64, page: i64, limit: i64) -> Result<Vec<ConversationRow>, ReadError> {
        let sql =
            format!("{COLUMNS} WHERE c.user_id = $1 ORDER BY c.pinned DESC, c.last_time DESC, c.chat_type, c.chat_id LIMIT $2 OFFSET $3");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .bind(limit)
            .bind(crate::db::offset(page, limit))
            .fetch_all(self.db.pool())
            .await?;
        rows.into_iter().map(conversation_row).collect()
    }

    /// One of a user's chats, if they have it.
    pub async fn get(&self, user: i64, chat: Chat) -> Result<Option<ConversationRow>, ReadError> {
        let sql = format!("{COLUMNS} WHERE c.user_id = $1 AND c.chat_type = $2 AND c.chat_id = $3");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .bind(chat.chat_type.as_str())
            .bind(chat.id)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(conversation_row).transpose()
    }

    /// Who received a message and which of them read it (their read mark in the chat
    /// reached the message's first row in their inbox), by user id.
    pub async fn receipts(&self, message_id: &str, chat_type: ChatType, from: i64, to: i64) -> Result<Vec<(i64, bool)>, ReadError> {
        // The chat as each recipient sees it: the group, or the sender.
        let chat_id = match chat_type {
            ChatType::Group => to,
            ChatType::Single => from,
        };
        let rows = sqlx::query(
            "SELECT i.user_id, MIN(i.seq) AS first, MAX(COALESCE(c.read_seq, 0)) AS read_seq FROM inbox i \
             LEFT JOIN conversations c ON c.user_id = i.user_id AND c.chat_type = $2 AND c.chat_id = $3 \
             WHERE i.message_id = $1 AND i.kind = 'message' AND i.user_id <> $4 GROUP BY i.user_id ORDER BY i.user_id",
        )
        .bind(message_id)
        .bind(chat_type.as_str())
        .bind(chat_id)
        .bind(from)
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter().map(|r| Ok((r.try_get("user_id")?, r.try_get::<i64, _>("first")? <= r.try_get::<i64, _>("read_seq")?))).collect()
    }
}

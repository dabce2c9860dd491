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
//! Delivery bookkeeping ([`Mark`]) goes through the same writer: a per-user cursor, every
//! row up to it delivered — moved once a socket has written every frame up to that seq,
//! or the client acked it. The rows after it are pending.

use crate::conversations::Touch;
use crate::db::{AnyQuery, Placeholders, ROWS_PER_STATEMENT, query_for, run_all, statement_text, values_list};
use crate::groups::GroupEffect;
use crate::projection::{Applied, DROP_ASIDE_MIN, Projection, READ_AHEAD, ReadRange, drop_aside};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::message::{ChatType, MessageSent};
use im_domain::{Event, Slot, UserId};
use im_eventlog::FeedBatch;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

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
/// Events the sequencer may plan ahead of the projector's writes.
pub const PLANNED_AHEAD: usize = 20_000;

/// An event's rows, decided once — by whoever reaches the event first in log order,
/// the sequencer or the projector — and kept until the transaction that writes them
/// commits (so a retried batch writes the very same rows).
#[derive(Debug, Clone, Default)]
struct Planned {
    messages: Vec<MessageRow>,
    rows: Vec<InboxRow>,
    /// The marks its messages leave on conversation rows.
    touches: Vec<Touch>,
}

#[derive(Default)]
struct Sequencer {
    /// user → last seq given. A user with planned rows not yet committed is always here.
    heads: HashMap<i64, i64>,
    /// Every user not in `heads` has no row at all (set by a rebuild's reset, which
    /// empties the inbox; cleared when `heads` is emptied to stay bounded): their heads
    /// are known without reading them back.
    emptied: bool,
    /// Every event up to this position has its rows planned (or needs none).
    frontier: i64,
    /// Rows planned and not yet committed, by event position.
    planned: BTreeMap<i64, Arc<Planned>>,
    /// The positions the projector's open transaction writes.
    writing: Vec<i64>,
    /// The event the projector is planning right now (the sequencer waits for it).
    runner_at: Option<i64>,
    /// Rows that may only leave after their commit (sinks that are not early).
    held: Vec<Delivery>,
}

impl Sequencer {
    /// Gives each user their next seq (every user's head must be known).
    fn assign(&mut self, users: &[i64], row: &RowOf<'_>, out: &mut Vec<Delivery>) -> Vec<InboxRow> {
        let mut rows = Vec::with_capacity(users.len());
        for user in users {
            let seq = self.heads.get(user).copied().unwrap_or(0) + 1;
            self.heads.insert(*user, seq);
            rows.push(InboxRow {
                user_id: *user,
                seq,
                message_id: row.message_id.cloned(),
                kind: row.kind,
                payload: row.payload.cloned(),
                at: row.at,
            });
            out.push(Delivery { user_id: *user, seq, kind: row.kind, body: row.body.clone(), sent_at: row.at });
        }
        rows
    }

    fn knows(&self, users: &[i64]) -> bool {
        self.emptied || users.iter().all(|u| self.heads.contains_key(u))
    }
}

pub struct InboxProjection {
    sink: Arc<dyn DeliverySink>,
    state: Mutex<Sequencer>,
    /// Told whenever the projector planned an event (the sequencer may go on).
    advanced: tokio::sync::Notify,
}

/// A `messages` row to write.
#[derive(Debug, Clone)]
struct MessageRow {
    id: Arc<str>,
    position: i64,
    chat_type: &'static str,
    from_id: i64,
    to_id: i64,
    client_msg_id: Option<String>,
    body: Body,
    at: i64,
}

/// An `inbox` row to write.
#[derive(Debug, Clone)]
struct InboxRow {
    user_id: i64,
    seq: i64,
    /// Shared by every row of the message (and its touches and `messages` row): one
    /// allocation per message, not one per recipient.
    message_id: Option<Arc<str>>,
    kind: InboxKind,
    /// Notices only: messages refer to their body by `message_id`.
    payload: Option<Body>,
    at: i64,
}

/// What every row of one fan-out shares.
struct RowOf<'a> {
    message_id: Option<&'a Arc<str>>,
    kind: InboxKind,
    payload: Option<&'a Body>,
    body: &'a Body,
    at: i64,
}

/// A plan made from the event alone, or the reason it needs the database.
enum Ahead {
    Planned(Planned, Vec<Delivery>),
    /// The inbox has nothing to do with this event.
    NoRows,
    /// The rows depend on read-model state (recipients of a revoked message, group
    /// membership) or on a head not in memory: the projector plans it.
    NeedsDb,
}

impl InboxProjection {
    pub fn new(sink: Arc<dyn DeliverySink>) -> Self {
        Self { sink, state: Mutex::new(Sequencer::default()), advanced: tokio::sync::Notify::new() }
    }

    fn state(&self) -> MutexGuard<'_, Sequencer> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hand_on(&self, out: Vec<Delivery>) {
        if out.is_empty() {
            return;
        }
        if self.sink.before_commit() {
            self.sink.deliver(out);
        } else {
            self.state().held.extend(out);
        }
    }

    /// [`Self::hand_on`] with the sequencer's lock held: rows planned ahead must reach
    /// the sink before the frontier they moved lets anyone plan (and hand on) the next
    /// event, or a recipient could get seq N+1 before seq N.
    fn hand_on_locked(&self, state: &mut Sequencer, out: Vec<Delivery>) {
        if out.is_empty() {
            return;
        }
        if self.sink.before_commit() {
            self.sink.deliver(out);
        } else {
            state.held.extend(out);
        }
    }

    /// Plans a message or notice from the event and the heads in memory.
    fn plan_in_memory(state: &mut Sequencer, a: &Applied<'_>) -> Ahead {
        let mut out = Vec::new();
        let event = a.event;
        match event {
            Event::MessageSent(e) => {
                let users: Vec<i64> = e.recipients.iter().map(|r| r.0).collect();
                if !state.knows(&users) {
                    return Ahead::NeedsDb;
                }
                let body = Body::of_message(e);
                let id: Arc<str> = e.message_id.as_hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).into();
                // The members it calls out get a copy of their own (`options.mentioned`),
                // kept in their row; everyone else's row reads the one stored body.
                let (called, others): (Vec<i64>, Vec<i64>) = users.iter().partition(|u| e.mentions.names(UserId(**u)));
                let row = RowOf { message_id: Some(&id), kind: InboxKind::Message, payload: None, body: &body, at: e.at };
                let mut rows = state.assign(&others, &row, &mut out);
                if !called.is_empty() {
                    let flagged = Body::of_mentioned(e);
                    let row = RowOf { message_id: Some(&id), kind: InboxKind::Message, payload: Some(&flagged), body: &flagged, at: e.at };
                    rows.extend(state.assign(&called, &row, &mut out));
                }
                let chat = if e.chat_type == ChatType::Group { e.to.id } else { e.from.id };
                let touch = |user_id: i64, seq: i64, unread: bool, mentioned: bool| Touch {
                    user_id,
                    chat_type: e.chat_type.as_str(),
                    chat_id: if user_id == e.from.id { e.to.id } else { chat },
                    message_id: id.clone(),
                    seq,
                    at: e.at,
                    unread,
                    mentioned,
                };
                let mut touches = vec![touch(e.from.id, 0, false, false)];
                touches.extend(rows.iter().map(|r| touch(r.user_id, r.seq, true, called.contains(&r.user_id))));
                let message = MessageRow {
                    id,
                    position: a.position,
                    chat_type: e.chat_type.as_str(),
                    from_id: e.from.id,
                    to_id: e.to.id,
                    client_msg_id: e.client_msg_id.clone(),
                    body,
                    at: e.at,
                };
                Ahead::Planned(Planned { messages: vec![message], rows, touches }, out)
            }
            Event::FriendRequested(_) | Event::FriendRequestAccepted(_) | Event::FriendAdded(_) | Event::SystemMessageSent(_) => {
                let Some((user, kind, data, at)) = notice_of(event) else { return Ahead::NoRows };
                if !state.knows(&[user]) {
                    return Ahead::NeedsDb;
                }
                let body = Body::of(&data);
                let row = RowOf { message_id: None, kind, payload: Some(&body), body: &body, at };
                let rows = state.assign(&[user], &row, &mut out);
                Ahead::Planned(Planned { messages: Vec::new(), rows, ..Planned::default() }, out)
            }
            Event::MessageRevoked(_)
            | Event::MessageEdited(_)
            | Event::MessageReacted(_)
            | Event::GroupCreated(_)
            | Event::GroupChanged(_)
            | Event::UserDeleted(_) => Ahead::NeedsDb,
            _ => Ahead::NoRows,
        }
    }

    /// New rows of a message changed for everyone (edited, revoked, reacted to), one for
    /// each user who has it, and for `also` (its sender, for a reaction).
    async fn resend(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        body: &Body,
        at: i64,
        also: Option<i64>,
        out: &mut Vec<Delivery>,
    ) -> Result<Vec<InboxRow>, ReadError> {
        let mut users: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM inbox WHERE message_id = $1 AND kind = 'message' \
                 AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = inbox.user_id AND h.message_id = $1) ORDER BY user_id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        if let Some(user) = also.filter(|u| *u > 0 && !users.contains(u)) {
            users.push(user);
            users.sort_unstable();
        }
        self.load_heads(conn, &users).await?;
        let id: Arc<str> = id.into();
        let row = RowOf { message_id: Some(&id), kind: InboxKind::Message, payload: None, body, at };
        Ok(self.state().assign(&users, &row, out))
    }

    /// Loads the last seq of the users the map does not hold (their rows are all
    /// committed: a user with planned rows is always in the map).
    async fn load_heads(&self, conn: &mut AnyConnection, users: &[i64]) -> Result<(), ReadError> {
        let missing: Vec<i64> = {
            let state = self.state();
            if state.emptied {
                return Ok(());
            }
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
                state.heads.entry(*u).or_insert_with(|| found.get(u).copied().unwrap_or(0));
            }
        }
        Ok(())
    }

    /// The projector plans an event the sequencer did not: from the database where it
    /// must. Writes the table changes the event makes besides its rows (group tables, a
    /// revoked message) every time it runs; the rows only when not planned before.
    async fn plan_with_db(&self, conn: &mut AnyConnection, a: &Applied<'_>, planned: bool) -> Result<Option<Planned>, ReadError> {
        let event = a.event;
        let mut out = Vec::new();
        let mut plan = Planned::default();
        match event {
            Event::GroupCreated(_) | Event::GroupChanged(_) => {
                let effects = crate::groups::apply(conn, event).await?;
                if planned {
                    return Ok(None);
                }
                for effect in effects {
                    match effect {
                        GroupEffect::System { group_id, recipients, text } => {
                            let group = crate::groups::summary(conn, group_id).await?;
                            let id: Arc<str> = a.event_id.to_string().into();
                            let at = a.recorded_at;
                            let body = Body::of_view(&MessageView::group_system(id.to_string(), group_id, &group, &text, at));
                            self.load_heads(conn, &recipients).await?;
                            let row = RowOf { message_id: Some(&id), kind: InboxKind::Message, payload: None, body: &body, at };
                            let rows = self.state().assign(&recipients, &row, &mut out);
                            // A group's system line is its members' newest message, not an unread one.
                            plan.touches.extend(rows.iter().map(|r| Touch {
                                user_id: r.user_id,
                                chat_type: ChatType::Group.as_str(),
                                chat_id: group_id,
                                message_id: id.clone(),
                                seq: r.seq,
                                at,
                                unread: false,
                                mentioned: false,
                            }));
                            plan.rows.extend(rows);
                            plan.messages.push(MessageRow {
                                id: id.clone(),
                                position: a.position,
                                chat_type: ChatType::Group.as_str(),
                                from_id: 0,
                                to_id: group_id,
                                client_msg_id: None,
                                body,
                                at,
                            });
                        }
                        GroupEffect::Notice { user, data } => {
                            let body = Body::of(&data);
                            self.load_heads(conn, &[user]).await?;
                            let row =
                                RowOf { message_id: None, kind: InboxKind::Notice, payload: Some(&body), body: &body, at: a.recorded_at };
                            plan.rows.extend(self.state().assign(&[user], &row, &mut out));
                        }
                    }
                }
            }
            Event::ConversationRead(_) | Event::ConversationPinned(_) | Event::ConversationMuted(_) | Event::MessageHidden(_) => {
                // No rows: the user's own view of their chats.
                crate::conversations::apply(conn, event).await?;
                if planned {
                    return Ok(None);
                }
            }
            Event::UserDeleted(e) => {
                // Their messages stay, shown as from a deleted user; no rows for anyone.
                anonymise_sender(conn, e.user_id.0).await?;
                if planned {
                    return Ok(None);
                }
            }
            Event::MessageEdited(e) => {
                let id = e.message_id.to_string();
                let Some(body) = rewrite(conn, &id, Rewrite::Edited { data: &e.data, at: e.at }).await? else {
                    return Ok((!planned).then(Planned::default));
                };
                if planned {
                    return Ok(None);
                }
                // Every recipient gets the edited message as a new row, so an online
                // client learns of it; the rows they have show the new text too.
                plan.rows = self.resend(conn, &id, &body, e.at, None, &mut out).await?;
            }
            Event::MessageReacted(e) => {
                let id = e.message_id.to_string();
                if e.added {
                    sqlx::query(
                        "INSERT INTO message_reactions (message_id, user_id, emoji, create_time) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(&id)
                    .bind(e.user.0)
                    .bind(&e.emoji)
                    .bind(e.at)
                    .execute(&mut *conn)
                    .await?;
                } else {
                    sqlx::query("DELETE FROM message_reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3")
                        .bind(&id)
                        .bind(e.user.0)
                        .bind(&e.emoji)
                        .execute(&mut *conn)
                        .await?;
                }
                let counts = reaction_counts(conn, &id).await?;
                let Some(body) = rewrite(conn, &id, Rewrite::Reacted { counts: &counts }).await? else {
                    return Ok((!planned).then(Planned::default));
                };
                if planned {
                    return Ok(None);
                }
                // Everyone who has the message, and its sender, gets it again as a new row
                // with the counts, so an online client learns of the reaction.
                let sender: Option<i64> =
                    sqlx::query_scalar("SELECT from_id FROM messages WHERE id = $1").bind(&id).fetch_optional(&mut *conn).await?;
                plan.rows = self.resend(conn, &id, &body, e.at, sender, &mut out).await?;
            }
            Event::MessageRevoked(e) => {
                let id = e.message_id.to_string();
                let Some(body) = rewrite(conn, &id, Rewrite::Revoked).await? else {
                    return Ok((!planned).then(Planned::default));
                };
                if planned {
                    return Ok(None);
                }
                // Every recipient gets the revocation as a new row, so an online client
                // learns of it; the rows they have show it revoked too.
                plan.rows = self.resend(conn, &id, &body, e.at, None, &mut out).await?;
            }
            _ => {
                if planned {
                    return Ok(None);
                }
                let users: Vec<i64> = match event {
                    Event::MessageSent(e) => e.recipients.iter().map(|r| r.0).collect(),
                    _ => notice_of(event).map(|(user, ..)| vec![user]).unwrap_or_default(),
                };
                self.load_heads(conn, &users).await?;
                let mut state = self.state();
                match Self::plan_in_memory(&mut state, a) {
                    Ahead::Planned(p, o) => {
                        plan = p;
                        out = o;
                    }
                    Ahead::NoRows | Ahead::NeedsDb => {}
                }
            }
        }
        self.hand_on(out);
        Ok(Some(plan))
    }

    /// Plans the event at `position` from memory — its rows, or none when `event` is
    /// None (an event the inbox ignores) — once everything up to `before` (the event
    /// before it in what the caller follows) is planned, fewer than `limit` plans wait
    /// for their commit and the projector is not planning one itself. `Wait`: try again
    /// when the projector has moved.
    fn plan_next(&self, before: i64, position: i64, event: Option<&Applied<'_>>, limit: usize) -> Next {
        let mut state = self.state();
        if state.frontier >= position {
            return Next::Done;
        }
        let full = state.planned.len() >= limit || state.heads.len() > HEADS_KEPT;
        if state.frontier < before || full || state.runner_at.is_some() {
            return Next::Wait;
        }
        let Some(a) = event else {
            state.frontier = position;
            return Next::Done;
        };
        match Self::plan_in_memory(&mut state, a) {
            Ahead::Planned(plan, out) => {
                state.planned.insert(position, Arc::new(plan));
                state.frontier = position;
                self.hand_on_locked(&mut state, out);
                Next::Done
            }
            Ahead::NoRows => {
                state.planned.insert(position, Arc::default());
                state.frontier = position;
                Next::Done
            }
            // The projector plans it.
            Ahead::NeedsDb => Next::Wait,
        }
    }

    /// Waits until the projector moved: its applied position (taken as planned), or a
    /// plan of its own. False once it stopped.
    async fn projector_moved(&self, applied: &mut watch::Receiver<i64>) -> bool {
        let moved = tokio::select! {
            changed = applied.changed() => changed.is_ok(),
            _ = self.advanced.notified() => true,
        };
        let mut state = self.state();
        state.frontier = state.frontier.max(*applied.borrow());
        moved
    }

    /// Runs ahead of the projector on this process's commits: plans every message it
    /// can from memory and hands its rows to the sink at once; stops at an event that
    /// needs the database (or a gap in what it has seen) until the projector has planned
    /// it. Only for sinks that take rows before their commit.
    async fn run_ahead(self: Arc<Self>, mut feed: broadcast::Receiver<FeedBatch>, mut applied: watch::Receiver<i64>) {
        loop {
            let commit = match feed.recv().await {
                Ok(commit) => commit,
                // The projector reads what was missed from the log.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            {
                let mut state = self.state();
                state.frontier = state.frontier.max(*applied.borrow());
            }
            // The event at `at`, decoded once however often it waits.
            let mut decoded: Option<(usize, Event)> = None;
            let mut at = 0;
            while at < commit.events.len() {
                let stored = &commit.events[at];
                if self.state().frontier >= stored.position {
                    at += 1;
                    continue;
                }
                if HANDLES.contains(&stored.event_type.as_str()) && decoded.as_ref().is_none_or(|(i, _)| *i != at) {
                    let Ok(event) = Event::decode_str(&stored.event_type, stored.schema_version as u32, stored.payload.text()) else {
                        // The projector reports it.
                        break;
                    };
                    decoded = Some((at, event));
                }
                let event = decoded.as_ref().filter(|(i, _)| *i == at).map(|(_, e)| Applied::of(stored, e));
                let before = if at == 0 { commit.after } else { commit.events[at - 1].position };
                match self.plan_next(before, stored.position, event.as_ref(), PLANNED_AHEAD) {
                    Next::Done => at += 1,
                    Next::Wait => {
                        if !self.projector_moved(&mut applied).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Runs ahead of a rebuild: plans each range's events as soon as it is read, while
    /// the ranges before it are written, so the rebuild's writer finds their rows made.
    /// Up to `limit` plans wait for their commits.
    async fn plan_rebuild(self: Arc<Self>, mut ranges: mpsc::Receiver<ReadRange>, mut applied: watch::Receiver<i64>, limit: usize) {
        // The event before the next one, and where the ranges given so far end.
        let (mut before, mut end) = (0, 0);
        while let Some(range) = ranges.recv().await {
            if range.after != end {
                // A range was not given: the projector plans it; go on once it did.
                before = range.after;
            }
            end = range.upto;
            for (stored, event) in range.events.iter().filter(|(stored, _)| HANDLES.contains(&stored.event_type.as_str())) {
                let a = Applied::of(stored, event);
                while let Next::Wait = self.plan_next(before, stored.position, Some(&a), limit) {
                    if !self.projector_moved(&mut applied).await {
                        return;
                    }
                }
                before = stored.position;
            }
        }
    }
}

/// What [`InboxProjection::plan_next`] did.
enum Next {
    /// Planned, or nothing to plan.
    Done,
    Wait,
}

/// Whether applying `event` reads what the events before it in its batch wrote (their
/// plans are written first).
fn reads_written(event: &Event) -> bool {
    matches!(
        event,
        Event::MessageRevoked(_)
            | Event::MessageEdited(_)
            | Event::MessageReacted(_)
            | Event::GroupCreated(_)
            | Event::GroupChanged(_)
            | Event::UserDeleted(_)
            | Event::ConversationRead(_)
            | Event::ConversationPinned(_)
            | Event::ConversationMuted(_)
            | Event::MessageHidden(_)
    )
}

/// The one row a friend event (a notice) or a system message leaves in someone's
/// inbox: (user, kind, data, time).
fn notice_of(event: &Event) -> Option<(i64, InboxKind, Value, i64)> {
    if let Event::SystemMessageSent(e) = event {
        return Some((e.to.0, InboxKind::Message, system_message(e), e.at));
    }
    let (user, data, at) = match event {
        Event::FriendRequested(e) => {
            let request = json!({
                "id": e.request_id, "user_id": e.from.0, "friend_id": e.to.0, "nickname": e.nickname,
                "lookme": i64::from(e.lookme), "lookhim": i64::from(e.lookhim), "status": "pending", "create_time": e.at,
            });
            Some((e.to.0, json!({"kind": "friend_apply", "request_id": e.request_id, "user_id": e.from.0, "request": request}), e.at))
        }
        Event::FriendRequestAccepted(e) => {
            let request = json!({"id": e.request_id, "user_id": e.from.0, "friend_id": e.to.0, "status": "agree", "update_time": e.at});
            Some((e.from.0, json!({"kind": "friend_accepted", "request_id": e.request_id, "friend_id": e.to.0, "request": request}), e.at))
        }
        Event::FriendAdded(e) => {
            Some((e.to.0, json!({"kind": "friend_added", "user_id": e.from.0, "friend_id": e.to.0, "create_time": e.at}), e.at))
        }
        _ => None,
    }?;
    Some((user, InboxKind::Notice, data, at))
}

/// A system message in the reference client's notice shape (its `offlineMsg`): what a
/// `singleChat` frame carries for the visitor's reminder, the avatar-changed message and
/// the kick of an older device.
pub fn system_message(e: &im_domain::event::SystemMessageSent) -> Value {
    MessageView::system(e).to_value()
}

/// Writes the rows of these plans. On SQLite as one run of statements, each made while
/// the one before it runs ([`run_all`]): written one kind after another (messages,
/// fan-outs, the other rows, conversations), the connection waited at each turn for the
/// next kind's first statement to be made.
async fn write_plans(conn: &mut AnyConnection, plans: &[Arc<Planned>]) -> Result<(), ReadError> {
    let marks = Placeholders::of(conn);
    let messages = refs(plans, |p| &p.messages);
    // The touches are summed per chat when their turn comes (while the last inbox rows
    // are written): a range of 20,000 messages leaves ~60,000 of them.
    let conversations = || crate::conversations::touch_queries(marks, crate::conversations::summed(plans.iter().flat_map(|p| &p.touches)));
    if marks.numbered() {
        insert_all(conn, &messages).await?;
        insert_all(conn, &refs(plans, |p| &p.rows)).await?;
        return run_all(conn, conversations()).await;
    }
    // The rows are sorted into fan-outs and the rest while the messages' statements run
    // (sorted first, a range's 40,000 rows and 60,000 touches were gathered while the
    // connection waited for its first statement).
    let rows = || row_queries(marks, plans);
    let queries =
        sqlite_inserts(marks, messages).chain(std::iter::once_with(rows).flatten()).chain(std::iter::once_with(conversations).flatten());
    run_all(conn, queries).await
}

/// The statements writing the plans' inbox rows on SQLite: fan-outs, then the rest.
fn row_queries<'a>(marks: Placeholders, plans: &'a [Arc<Planned>]) -> impl Iterator<Item = AnyQuery<'a>> + 'a {
    let (fanned, rest) = fan_outs(plans);
    fanned.into_iter().flat_map(move |run| fan_out_queries(marks, run)).chain(sqlite_inserts(marks, rest))
}

/// Every plan's `of` rows, in order.
fn refs<'a, T>(plans: &'a [Arc<Planned>], of: impl Fn(&'a Planned) -> &'a Vec<T>) -> Vec<&'a T> {
    let mut out = Vec::with_capacity(plans.iter().map(|p| of(p).len()).sum());
    out.extend(plans.iter().flat_map(|p| of(p)));
    out
}

/// Rows of one message for this many users or more are written as a fan-out.
const FAN_OUT_MIN: usize = 64;

/// Splits the plans' rows into the runs of [`FAN_OUT_MIN`] rows or more of one plan that
/// differ only in their user and seq (a message to a group), and the other rows.
fn fan_outs(plans: &[Arc<Planned>]) -> (Vec<&[InboxRow]>, Vec<&InboxRow>) {
    let shared = |a: &InboxRow, b: &InboxRow| {
        a.payload.is_none() && b.payload.is_none() && a.message_id == b.message_id && a.kind == b.kind && a.at == b.at
    };
    let (mut fanned, mut rest) = (Vec::new(), Vec::with_capacity(plans.iter().map(|p| p.rows.len()).sum()));
    for run in plans.iter().flat_map(|p| p.rows.chunk_by(shared)) {
        if run.len() >= FAN_OUT_MIN && run[0].payload.is_none() {
            fanned.push(run);
        } else {
            rest.extend(run);
        }
    }
    (fanned, rest)
}

/// Writes a fan-out's rows (SQLite), binding what they share once per statement and
/// then only each user and seq: a 1,000-member group's rows bound every value of every
/// row (two texts among them, each copied four times on its way through sqlx's `Any`
/// driver), and a rebuild's range of 100 such messages took 140 ms to write.
fn fan_out_queries<'q>(marks: Placeholders, run: &'q [InboxRow]) -> impl Iterator<Item = AnyQuery<'q>> + 'q {
    let first = &run[0];
    statements(run).map(move |chunk| {
        let rows = padded(chunk.len());
        let sql = statement_text("inbox fan-out", marks, rows, || {
            format!(
                "INSERT OR IGNORE INTO inbox (user_id, seq, message_id, kind, payload, create_time) \
                 SELECT column1, column2, ?, ?, NULL, ? FROM (VALUES {})",
                marks.values(rows, 2)
            )
        });
        let query = query_for(sql, 3 + 2 * rows).bind(first.message_id.as_deref()).bind(first.kind.as_str()).bind(first.at);
        padding(chunk).fold(query, |q, r| q.bind(r.user_id).bind(r.seq))
    })
}

/// A row the inbox writes in bulk: its table, its columns (with their Postgres types, for
/// the one-statement JSON path) and how its values are given.
trait Record {
    /// `INSERT INTO` this.
    const INTO: &'static str;
    /// The columns, in binding order.
    const COLUMNS: &'static [&'static str];
    /// The Postgres type of each column.
    const PG_TYPES: &'static [&'static str];
    /// The columns a repeated row conflicts on (Postgres `ON CONFLICT … DO NOTHING`).
    const KEY: &'static str;
    /// The row as a JSON object, keyed by column.
    fn to_json(&self) -> Value;
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q>;
}

impl Record for MessageRow {
    const INTO: &'static str = "messages";
    const COLUMNS: &'static [&'static str] = &["id", "position", "chat_type", "from_id", "to_id", "client_msg_id", "body", "create_time"];
    const PG_TYPES: &'static [&'static str] = &["TEXT", "BIGINT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT"];
    const KEY: &'static str = "id";

    fn to_json(&self) -> Value {
        json!({"id": &*self.id, "position": self.position, "chat_type": self.chat_type, "from_id": self.from_id, "to_id": self.to_id,
            "client_msg_id": self.client_msg_id, "body": self.body.as_str(), "create_time": self.at})
    }

    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(&*self.id)
            .bind(self.position)
            .bind(self.chat_type)
            .bind(self.from_id)
            .bind(self.to_id)
            .bind(self.client_msg_id.as_deref())
            .bind(self.body.as_str())
            .bind(self.at)
    }
}

impl Record for InboxRow {
    const INTO: &'static str = "inbox";
    const COLUMNS: &'static [&'static str] = &["user_id", "seq", "message_id", "kind", "payload", "create_time"];
    const PG_TYPES: &'static [&'static str] = &["BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT"];
    const KEY: &'static str = "user_id, seq";

    fn to_json(&self) -> Value {
        json!({"user_id": self.user_id, "seq": self.seq, "message_id": self.message_id.as_deref(), "kind": self.kind.as_str(),
            "payload": self.payload.as_ref().map(Body::as_str), "create_time": self.at})
    }

    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(self.user_id)
            .bind(self.seq)
            .bind(self.message_id.as_deref())
            .bind(self.kind.as_str())
            .bind(self.payload.as_ref().map(Body::as_str))
            .bind(self.at)
    }
}

/// Inserts the rows, skipping those already written. Postgres: one statement text for
/// any number of rows (prepared once, planned once), the rows as one JSON array. SQLite:
/// multi-row `INSERT OR IGNORE`s of [`padded`] sizes (OR IGNORE rather than ON CONFLICT:
/// no constraint can abort the statement then, so SQLite keeps no statement journal).
async fn insert_all<R: Record>(conn: &mut AnyConnection, rows: &[&R]) -> Result<(), ReadError> {
    if rows.is_empty() {
        return Ok(());
    }
    let columns = R::COLUMNS.join(", ");
    if conn.backend_name() != "SQLite" {
        let records: Vec<Value> = rows.iter().map(|r| r.to_json()).collect();
        let selected: Vec<String> = R::COLUMNS.iter().map(|c| format!("r.{c}")).collect();
        let typed: Vec<String> = R::COLUMNS.iter().zip(R::PG_TYPES).map(|(c, t)| format!("{c} {t}")).collect();
        let sql = format!(
            "INSERT INTO {} ({columns}) SELECT {} FROM json_to_recordset($1::json) AS r({}) ON CONFLICT ({}) DO NOTHING",
            R::INTO,
            selected.join(", "),
            typed.join(", "),
            R::KEY
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(serde_json::to_string(&records)?).execute(&mut *conn).await?;
        return Ok(());
    }
    run_all(conn, sqlite_inserts(Placeholders::of(conn), rows.to_vec())).await
}

/// The multi-row statements writing `rows` on SQLite (`INSERT OR IGNORE`, so a padding
/// row written twice is written once).
fn sqlite_inserts<'q, R: Record>(marks: Placeholders, rows: Vec<&'q R>) -> impl Iterator<Item = AnyQuery<'q>> + 'q {
    let sizes: Vec<usize> = statements(&rows).map(<[_]>::len).collect();
    let mut at = 0;
    sizes.into_iter().map(move |size| {
        let chunk = &rows[at..at + size];
        at += size;
        let rows = padded(size);
        let sql = statement_text(R::INTO, marks, rows, || {
            format!("INSERT OR IGNORE INTO {} ({}) VALUES {}", R::INTO, R::COLUMNS.join(", "), marks.values(rows, R::COLUMNS.len()))
        });
        padding(chunk).fold(query_for(sql, rows * R::COLUMNS.len()), |q, r| R::bind(r, q))
    })
}

/// Rows a multi-row statement takes at most. (256 before: a rebuild's 20,000-position
/// range took 7 % longer, most of it in handing the more statements over.)
const MAX_ROWS: usize = 1024;

/// Rows of the statements a batch's rest (after its full statements) is written in: the
/// rest is padded in pieces of at most this many, so at most half a piece is padding.
const PIECE_ROWS: usize = 256;

/// The chunks a batch's rows are written in: full statements of [`MAX_ROWS`], then the
/// rest in pieces of [`PIECE_ROWS`] (each [`padded`]).
fn statements<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let (full, rest) = rows.split_at(rows.len() / MAX_ROWS * MAX_ROWS);
    full.chunks(MAX_ROWS).chain(rest.chunks(PIECE_ROWS))
}

/// A multi-row statement's row count: the next power of two, so a handful of statement
/// texts (prepared once, kept in the connection's cache) serve every batch in one
/// statement each.
fn padded(rows: usize) -> usize {
    rows.next_power_of_two().min(MAX_ROWS)
}

/// The rows, then the last one again up to [`padded`] (every such statement ignores a
/// row it already wrote: `OR IGNORE`, `ON CONFLICT DO NOTHING`, or an upsert to the same
/// value).
fn padding<T>(rows: &[T]) -> impl Iterator<Item = &T> {
    let extra = padded(rows.len()) - rows.len();
    rows.iter().chain(rows.last().into_iter().cycle().take(extra))
}

/// The message object of the contract, as its recipients see it: built in this one
/// place for every kind of message (a user's, a group's system line, a system message in
/// the reference's `offlineMsg` shape) and written out without an intermediate JSON tree.
#[derive(serde::Serialize)]
pub struct MessageView<'a> {
    id: String,
    from_avatar: &'a str,
    from_name: &'a str,
    from_id: FromId<'a>,
    to_id: i64,
    to_name: &'a str,
    to_avatar: &'a str,
    #[serde(rename = "chatType")]
    chat_type: &'static str,
    #[serde(rename = "type")]
    kind: &'a str,
    data: Data<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect: Option<Option<&'a im_domain::event::Redirect>>,
    options: &'a Value,
    create_time: i64,
    isremove: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
    #[serde(rename = "msgidKey", skip_serializing_if = "Option::is_none")]
    msgid_key: Option<FromId<'a>>,
    /// Who a group message calls out (`@`).
    #[serde(skip_serializing_if = "Option::is_none")]
    mentions: Option<&'a im_domain::message::Mentions>,
    /// The message this one answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a im_domain::message::Quote>,
    /// The message this one forwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    forwarded_from: Option<&'a im_domain::message::Quote>,
}

/// A sender: a user's id, or a system sender's key (`redirect-forceLogout-<id>`).
#[derive(serde::Serialize, Clone, Copy)]
#[serde(untagged)]
enum FromId<'a> {
    Id(i64),
    Key(&'a str),
}

/// A message's `data`: the text (or file URL) of a user's message, or the notice object
/// of a system message.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Text(&'a str),
    Notice {
        data: &'a str,
        #[serde(rename = "dataType")]
        data_type: bool,
        #[serde(rename = "otherData")]
        other_data: (),
    },
}

/// `{}`, for the fields a system message leaves empty.
static EMPTY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({}));

impl<'a> MessageView<'a> {
    /// A user's message.
    pub fn of(e: &'a MessageSent) -> Self {
        Self {
            id: e.message_id.to_string(),
            from_avatar: &e.from.avatar,
            from_name: &e.from.name,
            from_id: FromId::Id(e.from.id),
            to_id: e.to.id,
            to_name: &e.to.name,
            to_avatar: &e.to.avatar,
            chat_type: e.chat_type.as_str(),
            kind: &e.kind,
            data: Data::Text(&e.data),
            redirect: None,
            // `null` when the sender gave none, as the reference showed it.
            options: &e.options,
            create_time: e.at,
            isremove: 0,
            group: e.group.as_ref(),
            client_msg_id: e.client_msg_id.as_deref(),
            msgid_key: None,
            mentions: Some(&e.mentions).filter(|m| !m.is_empty()),
            reply_to: e.reply_to.as_deref(),
            forwarded_from: e.forwarded_from.as_deref(),
        }
    }

    /// A group's system line (a member joined, the group was renamed…), `group` being its
    /// summary.
    pub fn group_system(id: String, group_id: i64, group: &'a Value, text: &'a str, at: i64) -> Self {
        Self {
            id,
            from_avatar: "",
            from_name: "系统消息",
            from_id: FromId::Id(0),
            to_id: group_id,
            to_name: group["name"].as_str().unwrap_or(""),
            to_avatar: group["avatar"].as_str().unwrap_or(""),
            chat_type: ChatType::Group.as_str(),
            kind: "system",
            data: Data::Text(text),
            redirect: None,
            options: &EMPTY,
            create_time: at,
            isremove: 0,
            group: Some(group),
            client_msg_id: None,
            msgid_key: None,
            mentions: None,
            reply_to: None,
            forwarded_from: None,
        }
    }

    /// A system message in the reference client's notice shape (its `offlineMsg`): the
    /// visitor's reminder, the avatar-changed message, the kick of an older device.
    pub fn system(e: &'a im_domain::event::SystemMessageSent) -> Self {
        let from_id = e.from_key.as_deref().map_or(FromId::Id(0), FromId::Key);
        Self {
            id: e.message_id.to_string(),
            from_avatar: &e.from_avatar,
            from_name: &e.from_name,
            from_id,
            to_id: e.to.0,
            to_name: &e.to_name,
            to_avatar: &e.to_avatar,
            chat_type: ChatType::Single.as_str(),
            kind: "text",
            data: Data::Notice { data: &e.text, data_type: false, other_data: () },
            redirect: Some(e.redirect.as_ref()),
            options: &EMPTY,
            create_time: e.at,
            isremove: 0,
            group: Some(&EMPTY),
            client_msg_id: None,
            msgid_key: Some(from_id),
            mentions: None,
            reply_to: None,
            forwarded_from: None,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The message object of the contract as JSON text, serialized once, straight from the
/// event (a send's `ack` splices it in).
pub fn message_text(e: &MessageSent) -> Box<serde_json::value::RawValue> {
    // A view of plain data always serializes.
    serde_json::value::to_raw_value(&MessageView::of(e)).unwrap_or_default()
}

impl Body {
    /// A message's body, written once.
    pub fn of_message(e: &MessageSent) -> Self {
        Self::of_view(&MessageView::of(e))
    }

    /// The copy of a message for a member it calls out: `options.mentioned` is true.
    pub fn of_mentioned(e: &MessageSent) -> Self {
        let mut options = e.options.as_object().cloned().unwrap_or_default();
        options.insert("mentioned".into(), Value::Bool(true));
        let options = Value::Object(options);
        Self::of_view(&MessageView { options: &options, ..MessageView::of(e) })
    }

    /// A message's body from its view, written once.
    pub fn of_view(view: &MessageView<'_>) -> Self {
        Self(serde_json::to_string(view).unwrap_or_else(|_| "{}".into()).into())
    }
}

/// How a deleted account's messages name their sender.
pub const DELETED_USER: &str = "已注销用户";

/// Rewrites the sender of every message `user` sent (the stored bodies and the copies
/// kept for members they called out) as a deleted user without an avatar.
async fn anonymise_sender(conn: &mut AnyConnection, user: i64) -> Result<(), ReadError> {
    let sqlite = conn.backend_name() == "SQLite";
    let rewrite = |column: &str| {
        if sqlite {
            format!("json_set({column}, '$.from_name', $2, '$.from_avatar', '')")
        } else {
            format!("({column}::jsonb || jsonb_build_object('from_name', $2::text, 'from_avatar', ''))::text")
        }
    };
    let messages = format!("UPDATE messages SET body = {} WHERE from_id = $1", rewrite("body"));
    sqlx::query(sqlx::AssertSqlSafe(messages)).bind(user).bind(DELETED_USER).execute(&mut *conn).await?;
    let copies = format!(
        "UPDATE inbox SET payload = {} WHERE payload IS NOT NULL AND kind = 'message' \
         AND message_id IN (SELECT id FROM messages WHERE from_id = $1)",
        rewrite("payload")
    );
    sqlx::query(sqlx::AssertSqlSafe(copies)).bind(user).bind(DELETED_USER).execute(&mut *conn).await?;
    Ok(())
}

/// How a message changed for everyone.
enum Rewrite<'a> {
    Edited {
        data: &'a str,
        at: i64,
    },
    /// `counts`: each emoji's count, in the order they were first used.
    Reacted {
        counts: &'a Value,
    },
    Revoked,
}

/// A message's reactions as its body shows them: `{"👍": 2, "❤️": 1}`.
async fn reaction_counts(conn: &mut AnyConnection, id: &str) -> Result<Value, ReadError> {
    let rows = sqlx::query(
        "SELECT emoji, COUNT(*) AS n, MIN(create_time) AS first FROM message_reactions WHERE message_id = $1 \
         GROUP BY emoji ORDER BY first, emoji",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = serde_json::Map::new();
    for row in rows {
        counts.insert(row.try_get::<String, _>("emoji")?, json!(row.try_get::<i64, _>("n")?));
    }
    Ok(Value::Object(counts))
}

/// Rewrites a changed message's stored body and its called-out copies; the new body, or
/// `None` when the message is unknown or already revoked (nothing changes then).
async fn rewrite(conn: &mut AnyConnection, id: &str, change: Rewrite<'_>) -> Result<Option<Body>, ReadError> {
    let Some(row) = sqlx::query("SELECT body, isremove FROM messages WHERE id = $1").bind(id).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    if row.try_get::<i64, _>("isremove")? == 1 {
        return Ok(None);
    }
    let message: Value = serde_json::from_str(&row.try_get::<String, _>("body")?)?;
    let removed = matches!(change, Rewrite::Revoked);
    let (body, copies) = match change {
        Rewrite::Edited { data, at } => still_shown(edited(message, data, at)),
        Rewrite::Reacted { counts } => still_shown(reacted(message, counts)),
        // A called-out member's own copy goes back to the (now emptied) shared body.
        Rewrite::Revoked => (Body::of(&revoked(message)), None),
    };
    sqlx::query("UPDATE messages SET body = $2, isremove = $3 WHERE id = $1")
        .bind(id)
        .bind(body.as_str().to_owned())
        .bind(i64::from(removed))
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE inbox SET payload = $2 WHERE message_id = $1 AND kind = 'message' AND payload IS NOT NULL")
        .bind(id)
        .bind(copies)
        .execute(&mut *conn)
        .await?;
    Ok(Some(body))
}

/// The body of a message still shown, and the copy for a member it calls out (the same,
/// still flagged).
fn still_shown(message: Value) -> (Body, Option<String>) {
    let mut mentioned = message.clone();
    mentioned["options"]["mentioned"] = json!(true);
    (Body::of(&message), Some(Body::of(&mentioned).as_str().to_owned()))
}

/// A message shows its reactions' counts (none: no `reactions` key).
fn reacted(mut message: Value, counts: &Value) -> Value {
    if let Some(object) = message.as_object_mut() {
        if counts.as_object().is_some_and(|c| !c.is_empty()) {
            object.insert("reactions".into(), counts.clone());
        } else {
            object.remove("reactions");
        }
    }
    message
}

/// An edited message shows its new text and when it changed.
fn edited(mut message: Value, data: &str, at: i64) -> Value {
    message["data"] = json!(data);
    message["edit_time"] = json!(at);
    message
}

/// A revoked message shows no content.
fn revoked(mut message: Value) -> Value {
    message["isremove"] = json!(1);
    message["data"] = json!("");
    message
}

/// The event types this projection reads.
const HANDLES: &[&str] = &[
    "MessageSent",
    "MessageRevoked",
    "MessageEdited",
    "MessageReacted",
    "GroupCreated",
    "GroupChanged",
    "FriendRequested",
    "FriendRequestAccepted",
    "FriendAdded",
    "SystemMessageSent",
    "UserDeleted",
    "ConversationRead",
    "ConversationPinned",
    "ConversationMuted",
    "MessageHidden",
];

#[async_trait]
impl Projection for InboxProjection {
    fn name(&self) -> &'static str {
        "inbox"
    }

    fn handles(&self, event_type: &str) -> bool {
        HANDLES.contains(&event_type)
    }

    fn run_ahead(self: Arc<Self>, feed: broadcast::Receiver<FeedBatch>, applied: watch::Receiver<i64>) {
        if self.sink.before_commit() {
            tokio::spawn(InboxProjection::run_ahead(self, feed, applied));
        }
    }

    fn ahead_of_rebuild(self: Arc<Self>, range: i64, applied: watch::Receiver<i64>) -> Option<mpsc::Sender<ReadRange>> {
        // Room for every range read ahead of the one being written and two more: a
        // range the sequencer has no room for (it fell behind during a slow one, such as
        // a large group's fan-out) is planned by `apply`, several times slower.
        let (tx, rx) = mpsc::channel(READ_AHEAD + 2);
        // The range being written and the next one.
        let limit = usize::try_from(range).unwrap_or(usize::MAX).saturating_mul(2);
        tokio::spawn(InboxProjection::plan_rebuild(self, rx, applied, limit));
        Some(tx)
    }

    fn committed(&self) {
        let (held, written) = {
            let mut state = self.state();
            let writing = std::mem::take(&mut state.writing);
            // Taken out under the lock, freed outside it (the sequencer waits for it).
            let mut written: Vec<Arc<Planned>> = Vec::with_capacity(writing.len());
            written.extend(writing.iter().filter_map(|position| state.planned.remove(position)));
            if state.heads.len() > HEADS_KEPT && state.planned.is_empty() {
                // Bounded: every seq is written, so any user's can be read back.
                state.heads.clear();
                state.emptied = false;
            }
            (std::mem::take(&mut state.held), written)
        };
        if !held.is_empty() {
            self.sink.deliver(held);
        }
        if written.len() >= DROP_ASIDE_MIN {
            drop_aside(written);
        }
    }

    fn aborted(&self) {
        // The plans stay: the batch is applied again and writes the very same rows.
        {
            let mut state = self.state();
            state.writing.clear();
            state.runner_at = None;
        }
        self.advanced.notify_one();
    }

    fn forget(&self) {
        *self.state() = Sequencer::default();
        self.advanced.notify_one();
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        // The plans of this batch, written together (before an event that reads them).
        let mut plans: Vec<Arc<Planned>> = Vec::with_capacity(events.len());
        let mut at = 0;
        while at < events.len() {
            // The plans made before (by the sequencer, or by an earlier try of this batch)
            // of the events from `at` up to the first one not planned, taken under one
            // lock: the sequencer takes it for every event it plans, and taking it twice
            // per event here had the two wait on each other (0.1 s of a rebuild's range
            // with a 1,000-member group's messages).
            let known: Vec<Arc<Planned>> = {
                let mut state = self.state();
                // The plans are in position order, as the events: one walk along both
                // (a lookup per event was ~1/3 of a range's start on the writer's task).
                let mut planned = state.planned.range(events[at].position..);
                let mut known = Vec::with_capacity(events.len() - at);
                for a in &events[at..] {
                    match planned.next() {
                        Some((position, plan)) if *position == a.position => known.push(plan.clone()),
                        _ => break,
                    }
                }
                state.writing.extend(events[at..at + known.len()].iter().map(|a| a.position));
                known
            };
            let run = &events[at..at + known.len()];
            at += known.len();
            for (a, plan) in run.iter().zip(known) {
                if reads_written(a.event) {
                    write_plans(conn, &std::mem::take(&mut plans)).await?;
                }
                self.plan_with_db(conn, a, true).await?;
                plans.push(plan);
            }
            let Some(a) = events.get(at) else { break };
            // Not planned: claim it (the sequencer waits until it is planned here).
            {
                let mut state = self.state();
                if state.planned.contains_key(&a.position) {
                    // Planned meanwhile.
                    continue;
                }
                if state.frontier >= a.position {
                    return Err(ReadError::Unplanned(a.position));
                }
                state.runner_at = Some(a.position);
            }
            if reads_written(a.event) {
                write_plans(conn, &std::mem::take(&mut plans)).await?;
            }
            let plan = Arc::new(self.plan_with_db(conn, a, false).await?.unwrap_or_default());
            {
                let mut state = self.state();
                state.planned.insert(a.position, plan.clone());
                state.frontier = state.frontier.max(a.position);
                state.runner_at = None;
                state.writing.push(a.position);
            }
            self.advanced.notify_one();
            plans.push(plan);
            at += 1;
        }
        write_plans(conn, &plans).await
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        for sql in [
            "DELETE FROM messages",
            "DELETE FROM message_reactions",
            "DELETE FROM inbox",
            "DELETE FROM inbox_cursor",
            "DELETE FROM conversations",
            "DELETE FROM hidden_messages",
            "DELETE FROM chat_groups",
            "DELETE FROM group_members",
            "DELETE FROM group_join_requests",
            "DELETE FROM group_invitations",
        ] {
            sqlx::query(sql).execute(&mut *conn).await?;
        }
        // Nobody has a row now: every head is 0 until one is given. (A reset whose
        // transaction does not commit fails the rebuild; a rebuild forgets first.)
        self.state().emptied = true;
        Ok(())
    }
}

/// Delivery bookkeeping for one user.
#[derive(Debug)]
pub enum Mark {
    /// Every row up to this seq reached the user's socket in `slot` (or the client acked
    /// it there). Each device has its own cursor; the single-device rule uses the phone's.
    UpTo { user: i64, slot: Slot, seq: i64 },
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

/// Writes delivery marks (part of the projector's transaction, or the gateway's own):
/// each device's cursor moves to the highest seq marked, never back. A desktop cursor
/// that was never set stays NULL (it reads as the phone's) until that device marks.
pub(crate) async fn apply_marks(conn: &mut AnyConnection, marks: &[Mark]) -> Result<(), ReadError> {
    // Per user: the phone's highest mark (0: none) and the desktop's (None: none).
    let mut up_to: HashMap<i64, (i64, Option<i64>)> = HashMap::new();
    for mark in marks {
        if let Mark::UpTo { user, slot, seq } = mark {
            let (mobile, desktop) = up_to.entry(*user).or_insert((0, None));
            match slot {
                Slot::Mobile => *mobile = (*mobile).max(*seq),
                Slot::Desktop => *desktop = Some(desktop.unwrap_or(0).max(*seq)),
            }
        }
    }
    let mut cursors: Vec<(i64, (i64, Option<i64>))> = up_to.into_iter().collect();
    if cursors.is_empty() {
        return Ok(());
    }
    cursors.sort_unstable();
    if conn.backend_name() != "SQLite" {
        // One statement text for any number of users (GREATEST ignores a NULL).
        let records: Vec<Value> = cursors.iter().map(|(u, (s, d))| json!({"u": u, "s": s, "d": d})).collect();
        sqlx::query(
            "INSERT INTO inbox_cursor (user_id, delivered_upto, desktop_upto) SELECT m.u, m.s, m.d FROM json_to_recordset($1::json) \
             AS m(u BIGINT, s BIGINT, d BIGINT) ON CONFLICT (user_id) DO UPDATE SET delivered_upto = \
             GREATEST(inbox_cursor.delivered_upto, excluded.delivered_upto), desktop_upto = GREATEST(inbox_cursor.desktop_upto, excluded.desktop_upto)",
        )
        .bind(serde_json::to_string(&records)?)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    for chunk in statements(&cursors) {
        let sql = format!(
            "INSERT INTO inbox_cursor (user_id, delivered_upto, desktop_upto) VALUES {} ON CONFLICT (user_id) DO UPDATE SET \
             delivered_upto = MAX(inbox_cursor.delivered_upto, excluded.delivered_upto), desktop_upto = CASE WHEN \
             excluded.desktop_upto IS NULL THEN inbox_cursor.desktop_upto ELSE MAX(COALESCE(inbox_cursor.desktop_upto, 0), \
             excluded.desktop_upto) END",
            values_list(conn, padded(chunk.len()), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (user, (seq, desktop)) in padding(chunk) {
            query = query.bind(*user).bind(*seq).bind(*desktop);
        }
        query.execute(&mut *conn).await?;
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
const ROWS: &str = "SELECT i.user_id, i.seq, i.kind, i.message_id, COALESCE(i.payload, m.body) AS payload, i.create_time \
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

    /// Who reacted to a message with what: each emoji (in the order they were first used)
    /// with its users (in the order they reacted).
    pub async fn reactions(&self, id: &str) -> Result<Vec<(String, Vec<i64>)>, ReadError> {
        let rows = sqlx::query("SELECT emoji, user_id FROM message_reactions WHERE message_id = $1 ORDER BY create_time, user_id")
            .bind(id)
            .fetch_all(self.db.pool())
            .await?;
        let mut out: Vec<(String, Vec<i64>)> = Vec::new();
        for row in rows {
            let (emoji, user): (String, i64) = (row.try_get("emoji")?, row.try_get("user_id")?);
            match out.iter_mut().find(|(e, _)| *e == emoji) {
                Some((_, users)) => users.push(user),
                None => out.push((emoji, vec![user])),
            }
        }
        Ok(out)
    }

    /// Inbox rows after `since`, oldest first, without the messages the user hid (the
    /// page's `last_seq` still moves over them).
    pub async fn sync(&self, user: i64, since: i64, limit: i64) -> Result<SyncPage, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT r.*, CASE WHEN h.message_id IS NULL THEN 0 ELSE 1 END AS hidden FROM ({ROWS} WHERE i.user_id = $1 AND i.seq > $2 \
             ORDER BY i.seq LIMIT $3) r LEFT JOIN hidden_messages h ON h.user_id = $1 AND h.message_id = r.message_id ORDER BY r.seq"
        ));
        let rows = sqlx::query(sql).bind(user).bind(since).bind(limit + 1).fetch_all(self.db.pool()).await?;
        let mut rows: Vec<(Delivery, bool)> = rows
            .into_iter()
            .map(|r| Ok((r.try_get::<i64, _>("hidden")? == 1, delivery(r)?)))
            .map(|r| r.map(|(h, d)| (d, h)))
            .collect::<Result<_, ReadError>>()?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let last_seq = rows.last().map_or(since, |(d, _)| d.seq);
        let rows = rows.into_iter().filter(|(_, hidden)| !*hidden).map(|(d, _)| d).collect();
        Ok(SyncPage { rows, last_seq, has_more })
    }

    /// Rows after `after` not yet delivered to the user's device in `slot` (after its
    /// delivery cursor), oldest first, each with whether the user hid its message (such a
    /// row is passed over, never shown).
    pub async fn pending(&self, user: i64, slot: Slot, after: i64, limit: i64) -> Result<Vec<(Delivery, bool)>, ReadError> {
        let from = after.max(self.delivered_upto(user, slot).await?);
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT r.*, CASE WHEN h.message_id IS NULL THEN 0 ELSE 1 END AS hidden FROM ({ROWS} WHERE i.user_id = $1 AND i.seq > $2 \
             ORDER BY i.seq LIMIT $3) r LEFT JOIN hidden_messages h ON h.user_id = $1 AND h.message_id = r.message_id ORDER BY r.seq"
        ));
        let rows = sqlx::query(sql).bind(user).bind(from).bind(limit).fetch_all(self.db.pool()).await?;
        rows.into_iter().map(|r| Ok((r.try_get::<i64, _>("hidden")? == 1, delivery(r)?)).map(|(h, d)| (d, h))).collect()
    }

    /// The delivery cursor of the user's device in `slot`: every row up to it was
    /// delivered there (0: none). A desktop that never had one starts where the phone is.
    pub async fn delivered_upto(&self, user: i64, slot: Slot) -> Result<i64, ReadError> {
        let sql = match slot {
            Slot::Mobile => "SELECT delivered_upto FROM inbox_cursor WHERE user_id = $1",
            Slot::Desktop => "SELECT COALESCE(desktop_upto, delivered_upto) FROM inbox_cursor WHERE user_id = $1",
        };
        let upto: Option<i64> = sqlx::query_scalar(sql).bind(user).fetch_optional(self.db.pool()).await?;
        Ok(upto.unwrap_or(0))
    }

    /// The user's highest seq (0 when the inbox is empty).
    pub async fn last_seq(&self, user: i64) -> Result<i64, ReadError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM inbox WHERE user_id = $1").bind(user).fetch_one(self.db.pool()).await?;
        Ok(seq.unwrap_or(0))
    }

    /// For operators: the messages a user sent or received one-to-one (`Single`), or a
    /// group's (`Group`), created in `[from_ms, to_ms]`, newest first, revoked ones
    /// included; and how many there are.
    pub async fn search_for_operator(
        &self,
        chat_type: ChatType,
        id: i64,
        from_ms: i64,
        to_ms: i64,
        page: i64,
        limit: i64,
    ) -> Result<(i64, Vec<Value>), ReadError> {
        let scope = match chat_type {
            ChatType::Single => "chat_type = 'single' AND (from_id = $1 OR to_id = $1)",
            ChatType::Group => "chat_type = 'group' AND to_id = $1",
        };
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM messages WHERE {scope} AND create_time >= $2 AND create_time <= $3"
        )))
        .bind(id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(self.db.pool())
        .await?;
        let bodies: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT body FROM messages WHERE {scope} AND create_time >= $2 AND create_time <= $3 ORDER BY position DESC LIMIT $4 OFFSET $5"
        )))
        .bind(id)
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .bind(crate::db::offset(page, limit))
        .fetch_all(self.db.pool())
        .await?;
        let rows = bodies.iter().map(|b| serde_json::from_str(b)).collect::<Result<_, _>>()?;
        Ok((count, rows))
    }

    /// The conversation between `me` and `other` (a user or a group), newest first, before
    /// the message `before` (exclusive) when given; a group's from `since` (ms) on when given.
    pub async fn history(
        &self,
        chat_type: ChatType,
        me: i64,
        other: i64,
        before: Option<&str>,
        since: Option<i64>,
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
        let rows: Vec<String> = match chat_type {
            ChatType::Single => {
                sqlx::query_scalar(
                    "SELECT body FROM messages WHERE chat_type = 'single' AND position < $3 \
                     AND ((from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)) \
                     AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $1 AND h.message_id = messages.id) \
                     ORDER BY position DESC LIMIT $4",
                )
                .bind(me)
                .bind(other)
                .bind(before_position)
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?
            }
            ChatType::Group => {
                sqlx::query_scalar(
                    "SELECT body FROM messages WHERE chat_type = 'group' AND to_id = $1 AND position < $2 AND create_time >= $4 \
                     AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $5 AND h.message_id = messages.id) \
                     ORDER BY position DESC LIMIT $3",
                )
                .bind(other)
                .bind(before_position)
                .bind(limit)
                .bind(since.unwrap_or(i64::MIN))
                .bind(me)
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
    fn padding_repeats_the_last_row_up_to_a_power_of_two() {
        assert_eq!(padding(&[1, 2, 3]).copied().collect::<Vec<_>>(), [1, 2, 3, 3]);
        assert_eq!(padding(&[7]).copied().collect::<Vec<_>>(), [7]);
        assert_eq!(padding::<i32>(&[]).count(), 0);
        assert_eq!(padded(200), 256);
        assert_eq!(padded(256), 256);
        assert_eq!(padded(1024), 1024);
    }

    #[test]
    fn a_message_to_many_is_a_fan_out_and_everything_else_is_left_as_it_is() {
        let row = |user: i64, id: &str, payload: Option<&str>| InboxRow {
            user_id: user,
            seq: 1,
            message_id: Some(id.into()),
            kind: if payload.is_some() { InboxKind::Notice } else { InboxKind::Message },
            payload: payload.map(|p| Body::of(&json!(p))),
            at: 5,
        };
        let group: Vec<InboxRow> = (0..FAN_OUT_MIN as i64 + 6).map(|u| row(u, "g", None)).collect();
        let small: Vec<InboxRow> = (0..FAN_OUT_MIN as i64 - 1).map(|u| row(u, "s", None)).collect();
        let notices: Vec<InboxRow> = (0..FAN_OUT_MIN as i64).map(|u| row(u, "n", Some("notice"))).collect();
        let single = row(1, "one", None);
        let plan = |rows: &[InboxRow]| Arc::new(Planned { rows: rows.to_vec(), ..Planned::default() });
        let plans = [plan(std::slice::from_ref(&single)), plan(&group), plan(&small), plan(&notices)];
        let (fanned, rest) = fan_outs(&plans);
        assert_eq!(fanned.len(), 1);
        assert_eq!(fanned[0].len(), group.len());
        assert!(fanned[0].iter().all(|r| r.message_id.as_deref() == Some("g")));
        assert_eq!(rest.len(), 1 + small.len() + notices.len(), "a smaller run and rows with payloads go row by row");
        let order: Vec<(i64, Option<&str>)> = rest.iter().map(|r| (r.user_id, r.message_id.as_deref())).collect();
        let expected: Vec<(i64, Option<&str>)> =
            std::iter::once(&single).chain(&small).chain(&notices).map(|r| (r.user_id, r.message_id.as_deref())).collect();
        assert_eq!(order, expected, "the rest in the plans' order");
    }

    #[test]
    fn a_batch_is_full_statements_then_padded_pieces_of_its_rest() {
        let sizes = |n: usize| statements(&vec![0; n]).map(|c| padded(c.len())).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(300), [256, 64]);
        assert_eq!(sizes(1024), [1024]);
        assert_eq!(sizes(2 * 1024 + 300), [1024, 1024, 256, 64]);
        let rows: Vec<usize> = (0..2 * 1024 + 300).collect();
        let again: Vec<usize> = statements(&rows).flatten().copied().collect();
        assert_eq!(again, rows, "every row once, in order");
    }

    #[test]
    fn every_message_shape_comes_from_one_view() {
        use im_domain::event::{Redirect, SystemMessageSent};
        let system = SystemMessageSent {
            message_id: uuid::Uuid::nil(),
            to: im_domain::UserId(7),
            to_name: "seven".into(),
            to_avatar: "a.png".into(),
            from_key: Some("redirect-forceLogout-7".into()),
            from_name: "账号异地登录".into(),
            from_avatar: "kefu.png".into(),
            text: "hello".into(),
            redirect: Some(Redirect { url: "/pages/x".into(), kind: "navigateTo".into(), doaction: "avatar".into() }),
            at: 5,
        };
        assert_eq!(
            system_message(&system),
            json!({
                "id": uuid::Uuid::nil().to_string(), "from_avatar": "kefu.png", "from_name": "账号异地登录",
                "from_id": "redirect-forceLogout-7", "to_id": 7, "to_name": "seven", "to_avatar": "a.png",
                "chatType": "single", "type": "text", "data": {"data": "hello", "dataType": false, "otherData": null},
                "redirect": {"url": "/pages/x", "type": "navigateTo", "doaction": "avatar"}, "options": {},
                "create_time": 5, "isremove": 0, "group": {}, "msgidKey": "redirect-forceLogout-7",
            })
        );
        let plain = SystemMessageSent { from_key: None, redirect: None, ..system };
        let shown = system_message(&plain);
        assert_eq!((&shown["from_id"], &shown["msgidKey"], &shown["redirect"]), (&json!(0), &json!(0), &Value::Null));
        let group = json!({"id": 3, "name": "g", "avatar": "g.png"});
        let line: Value = serde_json::from_str(Body::of_view(&MessageView::group_system("m1".into(), 3, &group, "joined", 9)).as_str())
            .unwrap_or_default();
        assert_eq!(
            line,
            json!({
                "id": "m1", "from_avatar": "", "from_name": "系统消息", "from_id": 0, "to_id": 3, "to_name": "g", "to_avatar": "g.png",
                "chatType": "group", "type": "system", "data": "joined", "options": {}, "create_time": 9, "isremove": 0, "group": group,
            })
        );
    }

    #[test]
    fn kinds_round_trip_through_their_stored_form() {
        for kind in [InboxKind::Message, InboxKind::Notice] {
            assert_eq!(InboxKind::parse(kind.as_str()), kind);
        }
    }
}

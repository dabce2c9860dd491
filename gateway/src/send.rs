//! Sending a message: one use case for `POST /api/chat/socket/sendmessage` and the
//! WebSocket `send` frame. The parameters are parsed once into a [`SendMessage`];
//! [`submit`] decides on facts held in memory (the directory and the kept group
//! states, not SQL per message), queues the append and returns what resolves once it is
//! durable, with the message object built from the event itself.

use crate::auth::Me;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;
use im_commands::Ctx;
use im_commands::groups::{GroupMessage, GroupSender};
use im_commands::messages::{Outgoing, Sent};
use im_domain::UserId;
use im_domain::message::{
    BodyError, ChatType, MAX_MENTIONS, Mentions, MessageBody, MessageSent, Party, Permit, Quotes, SendFacts, SenderRole,
};
use im_projections::inbox::message_text;
use im_projections::users::UserRow;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A message to send, as the client gave it.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub to: i64,
    pub chat_type: ChatType,
    pub body: MessageBody,
    pub options: Value,
    pub client_msg_id: Option<String>,
    /// Group messages: the members called out (`@`).
    pub mentions: Mentions,
    /// `reply_to`: a message of the same chat this one answers.
    pub reply_to: Option<uuid::Uuid>,
    /// `forward_of`: a message I can read whose `type` and `data` this one repeats.
    pub forward_of: Option<uuid::Uuid>,
}

impl SendMessage {
    /// `sendto_id`, `chatType`, `type`, `data`, `options` (an optional URL-encoded JSON
    /// string, or an object), `client_msg_id`, `mentions` (group messages: user ids, or
    /// `all`), `reply_to` and `forward_of` (message ids; not both).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let to = params.int("sendto_id")?.ok_or_else(|| ApiError::bad("missing_sendto_id", "sendto_id 参数必填"))?;
        if to < 1 {
            return Err(ApiError::bad("invalid_sendto_id", "sendto_id 必须是正整数"));
        }
        let chat_type = ChatType::parse(&params.required("chatType")?)
            .ok_or_else(|| ApiError::bad("invalid_chatType", "chatType 只能是 single 或 group"))?;
        let kind = params.required("type")?;
        let data = params.text("data").unwrap_or_default();
        let body = MessageBody::parse(&kind, &data).map_err(|e| match e {
            BodyError::Kind => ApiError::bad("invalid_type", "type 必须是1到32个字符"),
            BodyError::Empty => ApiError::bad("missing_data", "data 参数必填"),
            BodyError::TooLong => ApiError::bad("invalid_data", "消息内容过长"),
        })?;
        let options = parse_options(params)?;
        if body.kind == "file" {
            check_file_message(&body.data, &options)?;
        }
        let client_msg_id = params.optional_bounded("client_msg_id", 64)?.filter(|k| !k.trim().is_empty());
        let mentions = parse_mentions(params)?;
        if !mentions.is_empty() && chat_type != ChatType::Group {
            return Err(ApiError::bad("invalid_mentions", "只有群消息可以@成员"));
        }
        let reply_to = message_id(params.text("reply_to"), "reply_to")?;
        let forward_of = message_id(params.text("forward_of"), "forward_of")?;
        if reply_to.is_some() && forward_of.is_some() {
            return Err(ApiError::bad("invalid_forward_of", "转发的消息不能同时是回复"));
        }
        Ok(Self { to, chat_type, body, options, client_msg_id, mentions, reply_to, forward_of })
    }
}

/// An optional message id field (`reply_to`, `forward_of`): a UUID, else 400.
fn message_id(value: Option<String>, key: &str) -> Result<Option<uuid::Uuid>, ApiError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => uuid::Uuid::parse_str(&v).map(Some).map_err(|_| ApiError::bad(format!("invalid_{key}"), format!("{key} 必须是消息id"))),
    }
}

/// A `file` message: `data` is the file's URL (what the upload answered: `http(s)://…` or
/// a `/public/…` path) and `options` carries its `name` (1 to 255 characters) and `size`
/// (bytes, a non-negative integer), so that a client can show it before downloading.
fn check_file_message(data: &str, options: &Value) -> Result<(), ApiError> {
    let invalid = || ApiError::bad("invalid_file_message", "文件消息的 data 须为文件地址,options 须带 name(文件名)和 size(字节数)");
    let url = data.trim();
    let is_url =
        (url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/')) && !url.chars().any(char::is_whitespace);
    let name_ok = options["name"].as_str().is_some_and(|n| (1..=255).contains(&n.trim().chars().count()));
    let size_ok = options["size"].as_u64().is_some();
    if is_url && name_ok && size_ok { Ok(()) } else { Err(invalid()) }
}

/// `mentions`: `all`, or user ids — a JSON array (of numbers or numeric strings), or
/// that array as a string, or ids separated by commas; at most [`MAX_MENTIONS`].
fn parse_mentions(params: &Params) -> Result<Mentions, ApiError> {
    let invalid = || ApiError::bad("invalid_mentions", format!("mentions 必须是 all 或最多{MAX_MENTIONS}个用户id"));
    if params.value("mentions").and_then(Value::as_str).is_some_and(|s| s.trim() == "all") {
        return Ok(Mentions { users: Vec::new(), all: true });
    }
    match params.ids("mentions").map_err(|_| invalid())? {
        Some(ids) if ids.len() > MAX_MENTIONS => Err(invalid()),
        ids => Ok(Mentions { users: ids.unwrap_or_default().into_iter().map(UserId).collect(), all: false }),
    }
}

/// A durable message: its object as the contract shows it, and where it is in the log.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The message object, as JSON text (serialized once, straight from the event).
    pub message: Box<serde_json::value::RawValue>,
    pub position: i64,
    /// False when the `client_msg_id` was sent before (this answers with that message).
    pub fresh: bool,
}

impl Accepted {
    /// The message object as a JSON tree (an HTTP answer, the other device's copy).
    pub fn message_tree(&self) -> Value {
        serde_json::from_str(self.message.get()).unwrap_or(Value::Null)
    }
}

/// A queued send.
pub type Pending = Pin<Box<dyn Future<Output = Result<Accepted, ApiError>> + Send>>;

/// The most bytes a message's `options` may take as JSON: they are copied into the
/// event and the message row, and every recipient receives them.
pub const MAX_OPTIONS_BYTES: usize = 4096;

/// `options`: an optional URL-encoded JSON string (or a JSON object; none: `null`, as the
/// reference answered), at most
/// [`MAX_OPTIONS_BYTES`] as JSON and without a NUL character once decoded.
fn parse_options(params: &Params) -> Result<Value, ApiError> {
    let invalid = || ApiError::bad("invalid_options", "options 必须是JSON字符串");
    let options = match params.value("options") {
        // The reference's value when there are none: `JSON.parse` of nothing failed → null.
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Value::Null),
        // Refused before decoding: a longer text cannot decode to something short enough
        // by more than percent-encoding's factor of three.
        Some(Value::String(s)) if s.len() > MAX_OPTIONS_BYTES * 3 => return Err(options_too_large()),
        Some(Value::String(s)) => {
            let decoded = percent_decode(s).ok_or_else(invalid)?;
            match serde_json::from_str::<Value>(&decoded).map_err(|_| invalid())? {
                v @ Value::Object(_) => v,
                _ => return Err(invalid()),
            }
        }
        Some(_) => return Err(invalid()),
    };
    // `%00` decodes to the NUL the edge filter refuses in plain text.
    if crate::params::contains_nul(&options) {
        return Err(crate::error::ApiError::nul_refused());
    }
    if options.to_string().len() > MAX_OPTIONS_BYTES {
        return Err(options_too_large());
    }
    Ok(options)
}

fn options_too_large() -> ApiError {
    ApiError::bad("options_too_large", format!("options 不能超过{MAX_OPTIONS_BYTES}字节"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decides and queues a send. Sends one caller submits one after another are written
/// in that order; the returned future resolves once the message is durable. With
/// `IM_MULTI_DEVICE`, the sender's other device then gets a `sent` frame with it.
pub async fn submit(state: &AppState, me: &Me, command: SendMessage) -> Result<Pending, ApiError> {
    let pending = submit_one(state, me, command).await?;
    if !state.multi_device() {
        return Ok(pending);
    }
    let (state, user, session) = (state.clone(), me.id, me.session);
    Ok(Box::pin(async move {
        let accepted = pending.await?;
        if accepted.fresh {
            let copy = crate::hub::frame("sent", accepted.message_tree()).to_string();
            state.offer_ephemeral_except(user, Some(session), copy).await;
        }
        Ok(accepted)
    }))
}

async fn submit_one(state: &AppState, me: &Me, command: SendMessage) -> Result<Pending, ApiError> {
    state.limit("send", &me.id.to_string(), state.limits().send).await?;
    // My current name and avatar (a socket's `me` is as old as the socket).
    let sender = state.directory().user(me.id.0).await?.unwrap_or_else(|| me.user.clone());
    let naming = crate::quotes::Naming {
        chat_type: command.chat_type,
        to: command.to,
        body: &command.body,
        reply_to: command.reply_to,
        forward_of: command.forward_of,
    };
    let quotes = crate::quotes::resolve(state, me, naming).await?;
    match command.chat_type {
        ChatType::Single => submit_single(state, me, sender, command, quotes).await,
        ChatType::Group => submit_group(state, me, sender, command, quotes).await,
    }
}

/// A one-to-one chat as the directory (in memory) holds it: the other user, both sides
/// of the friendship, and the facts a send to them is decided on.
pub(crate) struct SingleChat {
    pub recipient: Option<Arc<UserRow>>,
    /// The recipient's side (do they have me as a friend, did they block me).
    pub their_side: Option<Arc<im_projections::directory::Side>>,
    pub my_side: Option<Arc<im_projections::directory::Side>>,
    pub facts: SendFacts,
}

/// Gathers [`SingleChat`] for me and user `to_id`.
pub(crate) async fn single_chat(state: &AppState, me: &Me, to_id: i64) -> Result<SingleChat, ApiError> {
    let directory = state.directory();
    let recipient = directory.user(to_id).await?;
    let their_side = directory.side(to_id, me.id.0).await?;
    let my_side = directory.side(me.id.0, to_id).await?;
    let sender_role = if me.is_visitor() { SenderRole::Visitor } else { SenderRole::User };
    let rule = recipient.as_ref().map(|r| match sender_role {
        SenderRole::Visitor => r.settings.chatset.visitor,
        SenderRole::User => r.settings.chatset.user,
    });
    let facts = SendFacts {
        sender_role,
        to_self: to_id == me.id.0,
        recipient_active: recipient.as_ref().is_some_and(|r| r.is_active()),
        blocked: their_side.as_ref().is_some_and(|s| s.black),
        friends: their_side.as_ref().is_some_and(|s| s.friend),
        send_count: rule.unwrap_or_default().send_count,
    };
    Ok(SingleChat { recipient, their_side, my_side, facts })
}

async fn submit_single(state: &AppState, me: &Me, sender: Arc<UserRow>, command: SendMessage, quotes: Quotes) -> Result<Pending, ApiError> {
    let to_id = command.to;
    let SingleChat { recipient, their_side, my_side, facts } = single_chat(state, me, to_id).await?;
    let Some(recipient) = recipient else {
        return Err(ApiError::bad("recipient_unavailable", "对方不存在或者被禁用,不能发消息"));
    };
    let remark = |side: &Option<Arc<im_projections::directory::Side>>| side.as_ref().map(|s| s.remark.clone()).filter(|n| !n.is_empty());
    let outgoing = Outgoing {
        chat_type: ChatType::Single,
        from: Party {
            id: me.id.0,
            name: remark(&their_side).unwrap_or_else(|| sender.display_name().to_owned()),
            avatar: sender.avatar.clone(),
        },
        to: Party {
            id: to_id,
            name: remark(&my_side).unwrap_or_else(|| recipient.display_name().to_owned()),
            avatar: recipient.avatar.clone(),
        },
        recipients: vec![UserId(to_id)],
        body: command.body,
        options: command.options,
        client_msg_id: command.client_msg_id,
        group: None,
        mentions: Mentions::default(),
        quotes,
    };
    let pending = state.messages().submit_single(&Ctx::user(me.id.0), outgoing, facts).await?;
    let state = state.clone();
    Ok(Box::pin(async move {
        let sent = pending.await?;
        if let Sent::New { message, .. } = &sent
            && !state.hub().is_online(UserId(to_id))
        {
            // The message is durable: a failed auto-reply is logged, never answered as
            // the send's error (the client would retry a message that was sent).
            if let Err(e) = auto_reply(&state, message, &recipient).await {
                tracing::warn!(message_id = %message.message_id, error = %e.reason, "auto-reply failed");
            }
        }
        accepted(&state, sent).await
    }))
}

async fn submit_group(state: &AppState, me: &Me, sender: Arc<UserRow>, command: SendMessage, quotes: Quotes) -> Result<Pending, ApiError> {
    let group_id = im_domain::GroupId(command.to);
    let message = GroupMessage {
        sender: GroupSender { id: me.id, name: sender.display_name().to_owned(), avatar: sender.avatar.clone() },
        body: command.body,
        options: command.options,
        client_msg_id: command.client_msg_id,
        mentions: command.mentions,
        quotes,
    };
    let pending = state.group_commands().submit_send(&Ctx::user(me.id.0), group_id, message).await?;
    let state = state.clone();
    Ok(Box::pin(async move { accepted(&state, pending.await?).await }))
}

/// Whether the user has a socket on any gateway (cluster presence).
async fn online_anywhere(state: &AppState, user: i64) -> bool {
    match state.is_online(UserId(user)).await {
        Ok(online) => online,
        Err(e) => {
            // Unknown: no auto-reply rather than one to a user who may be reading.
            tracing::warn!(user, error = %e, "presence lookup failed");
            true
        }
    }
}

/// The answer for a durable send: built from the event; a repeated `client_msg_id`
/// answers with the first message, read back once the read models hold it.
async fn accepted(state: &AppState, sent: Sent) -> Result<Accepted, ApiError> {
    match sent {
        Sent::New { message, position } => Ok(Accepted { message: message_text(&message), position, fresh: true }),
        Sent::Duplicate { message_id, position } => {
            state.settle(position).await?;
            let (_, message) =
                state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::internal("message row missing"))?;
            Ok(Accepted { message: serde_json::value::to_raw_value(&message).map_err(ApiError::internal)?, position, fresh: false })
        }
    }
}

/// The offline recipient's best-matching auto-reply, sent back to the sender from the
/// recipient with `options.autoReply = true`. (The recipient is not connected to this
/// gateway; their pairs come from memory, and only a match asks cluster presence whether
/// they are connected to another one.)
async fn auto_reply(state: &AppState, message: &MessageSent, recipient: &UserRow) -> Result<(), ApiError> {
    if message.kind != "text" || message.options.get("autoReply").is_some_and(|v| v == &json!(true)) {
        return Ok(());
    }
    let rows = state.directory().auto_replies(recipient.id.0).await?;
    if rows.is_empty() {
        return Ok(());
    }
    // Matching reads up to 200 questions against the message's first 1,000 characters:
    // on the blocking pool, not on the workers that drive the sockets.
    let text = message.data.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let pairs: Vec<(i64, im_domain::askanswer::Pair)> =
            rows.iter().map(|r| (r.id, im_domain::askanswer::Pair { ask: r.ask.clone(), answer: r.answer.clone() })).collect();
        im_domain::askanswer::best_match(pairs.iter().map(|(i, p)| (*i, p)), &text).map(|(_, pair)| pair.answer.clone())
    })
    .await
    .map_err(ApiError::internal)?;
    let Some(answer) = answer else { return Ok(()) };
    if online_anywhere(state, recipient.id.0).await {
        return Ok(());
    }
    let Ok(body) = MessageBody::parse("text", &answer) else { return Ok(()) };
    let reply = Outgoing {
        chat_type: ChatType::Single,
        from: Party { id: recipient.id.0, name: message.to.name.clone(), avatar: message.to.avatar.clone() },
        to: Party { id: message.from.id, name: message.from.name.clone(), avatar: message.from.avatar.clone() },
        recipients: vec![UserId(message.from.id)],
        body,
        options: json!({"autoReply": true}),
        client_msg_id: None,
        group: None,
        mentions: Mentions::default(),
        quotes: Quotes::default(),
    };
    state.messages().send(&Ctx::user(recipient.id.0), reply, Permit::Free).await?;
    Ok(())
}

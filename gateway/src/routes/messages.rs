//! SPEC section 5: sending, offline messages, sync, history, revoke.

use crate::app::AppState;
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::ok;
use crate::params::{Params, path_int};
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use std::net::SocketAddr;
use axum::routing::{get, post};
use im_commands::Ctx;
use im_commands::groups::{GroupFace, GroupSender};
use im_commands::messages::{Outgoing, Sent};
use im_domain::UserId;
use im_domain::message::{BodyError, ChatType, MessageBody, Party, SendFacts, SenderRole};
use im_domain::userset::UserSet;
use im_projections::users::UserRow;
use serde_json::{Value, json};

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/chat/socket/sendmessage", post(send))
        .route("/api/chat/chatGetmessageOffLine", post(offline))
        .route("/api/chat/sync", get(sync))
        .route("/api/chat/history/{chat_type}/{id}", get(history))
        .route("/api/chat/revokeMessage", post(revoke))
}

fn display_name(user: &UserRow) -> String {
    if user.nickname.is_empty() { user.username.clone() } else { user.nickname.clone() }
}

/// `options`: an optional URL-encoded JSON string (or a JSON object).
fn parse_options(params: &Params) -> Result<Value, ApiError> {
    let invalid = || ApiError::bad("invalid_options", "options 必须是JSON字符串");
    match params.value("options") {
        None => Ok(json!({})),
        Some(Value::Object(o)) => Ok(Value::Object(o.clone())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => {
            let decoded = percent_decode(s).ok_or_else(invalid)?;
            match serde_json::from_str::<Value>(&decoded).map_err(|_| invalid())? {
                v @ Value::Object(_) => Ok(v),
                _ => Err(invalid()),
            }
        }
        Some(_) => Err(invalid()),
    }
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

/// The send logic shared by `POST /api/chat/socket/sendmessage` and the WebSocket
/// `send` frame. Returns the message object.
pub async fn send_message(state: &AppState, me: &Me, params: &Params) -> Result<Value, ApiError> {
    state.limit("send", &me.id.to_string(), state.limits().send).await?;
    let to_id = params.int("sendto_id")?.ok_or_else(|| ApiError::bad("missing_sendto_id", "sendto_id 参数必填"))?;
    if to_id < 1 {
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
    let client_msg_id = params.optional_bounded("client_msg_id", 64)?.filter(|k| !k.trim().is_empty());
    if chat_type == ChatType::Group {
        return send_to_group(state, me, to_id, body, options, client_msg_id).await;
    }
    let recipient = state.users().by_id(to_id).await?;
    let recipient_active = recipient.as_ref().is_some_and(|r| r.is_active());
    let their_view_of_me = state.friends().friend(to_id, me.id.0).await?;
    let my_view_of_them = state.friends().friend(me.id.0, to_id).await?;
    let sender_role = if me.is_visitor() { SenderRole::Visitor } else { SenderRole::User };
    let userset: UserSet = recipient.as_ref().and_then(|r| serde_json::from_value(r.userset.clone()).ok()).unwrap_or_default();
    let rule = match sender_role {
        SenderRole::Visitor => userset.chatset.visitor,
        SenderRole::User => userset.chatset.user,
    };
    let facts = SendFacts {
        sender_role,
        to_self: to_id == me.id.0,
        recipient_active,
        blocked: their_view_of_me.as_ref().is_some_and(|f| f.isblack == 1),
        friends: their_view_of_me.is_some(),
        send_count: rule.send_count,
    };
    let Some(recipient) = recipient else { return Err(ApiError::bad("recipient_unavailable", "对方不存在或者被禁用,不能发消息")) };
    let remark = |row: &Option<im_projections::friends::FriendRow>| row.as_ref().map(|f| f.nickname.clone()).filter(|n| !n.is_empty());
    let outgoing = Outgoing {
        chat_type,
        from: Party { id: me.id.0, name: remark(&their_view_of_me).unwrap_or_else(|| display_name(&me.user)), avatar: me.user.avatar.clone() },
        to: Party { id: to_id, name: remark(&my_view_of_them).unwrap_or_else(|| display_name(&recipient)), avatar: recipient.avatar.clone() },
        recipients: vec![UserId(to_id)],
        body,
        options,
        client_msg_id,
        group: None,
    };
    let sent = state.messages().send_single(&Ctx::user(me.id.0), outgoing, facts).await?;
    let recipient_online = state.hub().is_online(UserId(to_id));
    let message_id = settle_sent(state, sent, |message| async move {
        if !recipient_online {
            auto_reply(state, &message, &recipient).await?;
        }
        Ok(())
    })
    .await?;
    let (_, message) = state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::internal("message row missing"))?;
    Ok(message)
}

/// Waits until the read models hold the sent message (or the first one a repeated
/// `client_msg_id` made), running `after_new` for a new one.
async fn settle_sent<F, Fut>(state: &AppState, sent: Sent, after_new: F) -> Result<uuid::Uuid, ApiError>
where
    F: FnOnce(im_domain::message::MessageSent) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    Ok(match sent {
        Sent::New { message, position } => {
            state.settle(position).await?;
            let id = message.message_id;
            after_new(message).await?;
            id
        }
        Sent::Duplicate { message_id } => {
            // The first send committed; make sure the read models have it.
            let head = state.store().head().await.map_err(ApiError::internal)?;
            state.settle(head).await?;
            message_id
        }
    })
}

/// A group message: only active, unmuted members of a normal group; every other member
/// receives it through their inbox.
async fn send_to_group(
    state: &AppState,
    me: &Me,
    group_id: i64,
    body: MessageBody,
    options: Value,
    client_msg_id: Option<String>,
) -> Result<Value, ApiError> {
    let summary = state.groups().group(group_id).await?.map(|g| {
        json!({"id": g["id"], "name": g["name"], "avatar": g["avatar"], "user_id": g["user_id"],
            "remark": g["remark"], "invite_confirm": g["invite_confirm"]})
    });
    let avatar = summary.as_ref().and_then(|s| s["avatar"].as_str()).unwrap_or_default().to_owned();
    let face = GroupFace { avatar, summary: summary.unwrap_or_else(|| json!({"id": group_id})) };
    let sender = GroupSender { id: me.id, name: display_name(&me.user), avatar: me.user.avatar.clone() };
    let sent = state.group_commands().send(&Ctx::user(me.id.0), group_id, sender, face, body, options, client_msg_id).await?;
    let message_id = settle_sent(state, sent, |_| async { Ok(()) }).await?;
    let (_, message) = state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::internal("message row missing"))?;
    Ok(message)
}

/// The offline recipient's best-matching auto-reply, sent back to the sender from the
/// recipient with `options.autoReply = true`.
async fn auto_reply(state: &AppState, message: &im_domain::message::MessageSent, recipient: &UserRow) -> Result<(), ApiError> {
    if message.kind != "text" || message.options.get("autoReply").is_some_and(|v| v == &json!(true)) {
        return Ok(());
    }
    let rows = state.askanswers().all(recipient.id).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let pairs: Vec<(i64, im_domain::askanswer::Pair)> =
        rows.iter().map(|r| (r.id, im_domain::askanswer::Pair { ask: r.ask.clone(), answer: r.answer.clone() })).collect();
    let Some((_, pair)) = im_domain::askanswer::best_match(pairs.iter().map(|(i, p)| (*i, p)), &message.data) else { return Ok(()) };
    let Ok(body) = MessageBody::parse("text", &pair.answer) else { return Ok(()) };
    let reply = Outgoing {
        chat_type: ChatType::Single,
        from: Party { id: recipient.id, name: message.to.name.clone(), avatar: message.to.avatar.clone() },
        to: Party { id: message.from.id, name: message.from.name.clone(), avatar: message.from.avatar.clone() },
        recipients: vec![UserId(message.from.id)],
        body,
        options: json!({"autoReply": true}),
        client_msg_id: None,
        group: None,
    };
    let sent = state.messages().send(&Ctx::user(recipient.id), reply, im_domain::message::Permit::Free).await?;
    if let Sent::New { position, .. } = sent {
        state.settle(position).await?;
    }
    Ok(())
}

async fn send(State(state): State<AppState>, addr: ConnectInfo<SocketAddr>, params: Params) -> ApiResult {
    state.limit("send-ip", &addr.0.ip().to_string(), state.limits().send.saturating_mul(4)).await?;
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    Ok(ok(send_message(&state, &me, &params).await?))
}

/// Pushes every undelivered inbox row to my socket, oldest first, then marks them
/// delivered.
async fn offline(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    loop {
        let pending = state.inbox().pending(me.id.0, 500).await?;
        let Some(last) = pending.last().map(|d| d.seq) else { break };
        let now = crate::now_millis();
        for delivery in &pending {
            if !state.hub().push(delivery, now) {
                // Not connected here: leave them pending for the next call or sync.
                return Ok(ok("ok"));
            }
        }
        state.inbox().mark_delivered(me.id.0, last).await?;
        if pending.len() < 500 {
            break;
        }
    }
    Ok(ok("ok"))
}

async fn sync(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let since = params.int("since")?.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad("invalid_since", "since 不能小于0"));
    }
    let limit = params.int("limit")?.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad("invalid_limit", "limit 必须在1到500之间"));
    }
    let page = state.inbox().sync(me.id.0, since, limit).await?;
    let rows: Vec<Value> = page.rows.iter().map(|d| json!({"seq": d.seq, "type": d.kind.frame_type(), "data": d.data})).collect();
    Ok(ok(json!({"rows": rows, "last_seq": page.last_seq, "has_more": page.has_more})))
}

async fn history(State(state): State<AppState>, Path((chat_type, id)): Path<(String, String)>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let chat_type = ChatType::parse(&chat_type).ok_or_else(|| ApiError::bad("invalid_chatType", "chatType 只能是 single 或 group"))?;
    let other = path_int(&id, "id")?;
    if other < 1 {
        return Err(ApiError::bad("invalid_id", "id 必须是正整数"));
    }
    let limit = params.int("limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad("invalid_limit", "limit 必须在1到100之间"));
    }
    let before = params.text("before").filter(|b| !b.is_empty());
    if let Some(b) = &before {
        if uuid::Uuid::parse_str(b).is_err() {
            return Err(ApiError::bad("invalid_before", "before 必须是消息id"));
        }
    }
    if chat_type == ChatType::Group && !state.groups().is_member(other, me.id.0).await? {
        // A removed member cannot read the group any more.
        return Err(ApiError::forbidden("not_member", "你不是该群成员"));
    }
    let rows = state.inbox().history(chat_type, me.id.0, other, before.as_deref(), limit).await?;
    Ok(ok(json!(rows)))
}

async fn revoke(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let id = params.required("id")?;
    let message_id = uuid::Uuid::parse_str(id.trim()).map_err(|_| ApiError::bad("invalid_id", "id 必须是消息id"))?;
    if let Some(chat_type) = params.text("chatType") {
        ChatType::parse(&chat_type).ok_or_else(|| ApiError::bad("invalid_chatType", "chatType 只能是 single 或 group"))?;
    }
    params.int("to_id")?;
    let window = state.revoke_window().as_millis() as i64;
    let position = state.messages().revoke(&Ctx::user(me.id.0), me.id, message_id, window).await?;
    state.settle(position).await?;
    let (_, message) = state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::internal("message row missing"))?;
    Ok(ok(message))
}

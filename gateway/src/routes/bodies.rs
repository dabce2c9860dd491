//! What each route reads from its request, for the OpenAPI description. The handlers
//! read these fields through [`crate::params::Params`] (which takes them from a JSON or
//! form body, or the query string, and accepts integers written as strings, as the
//! reference did); `gateway/tests/openapi.rs` (`every_field_a_handler_reads_is_described`) fails when
//! a handler reads a field its route's type here does not name, or the other way round.
//! Integers may arrive as strings; flags are `0`/`1` (or `true`/`false`).
//!
//! None of these is ever constructed: they are descriptions.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Account name and password.
#[derive(ToSchema)]
pub struct Credentials {
    /// 2–20 letters, digits or underscores (case-insensitive, unique).
    #[schema(example = "alice")]
    username: String,
    /// 6–20 characters.
    #[schema(example = "secret123")]
    password: String,
}

/// A login: account name, password and (with `IM_MULTI_DEVICE`) which device.
#[derive(ToSchema)]
pub struct Login {
    /// 2–20 letters, digits or underscores (case-insensitive).
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "secret123")]
    password: String,
    /// With `IM_MULTI_DEVICE`: `mobile` (the default) or `desktop` (also `web`); the new
    /// session replaces only that device's. Ignored under the single-device rule.
    #[schema(example = "desktop")]
    device_type: Option<String>,
}

/// A device asking for a visitor account; the same fingerprint gets the same visitor.
#[derive(ToSchema)]
pub struct VisitorDevice {
    /// The device's stable fingerprint.
    devicefingeruuid: String,
    /// User agent (≤ 500).
    ua: Option<String>,
    /// ≤ 100 characters each.
    platform: Option<String>,
    system: Option<String>,
    model: Option<String>,
    brand: Option<String>,
    screen: Option<String>,
}

/// A password change; every other session of the user ends.
#[derive(ToSchema)]
pub struct PasswordChange {
    oldpassword: String,
    /// 6–20 characters.
    password: String,
    /// The same again.
    repassword: String,
}

/// Profile fields to change; absent ones stay.
#[derive(ToSchema)]
pub struct ProfileChange {
    /// ≤ 50 characters.
    nickname: Option<String>,
    /// Image URL (≤ 500).
    avatar: Option<String>,
    /// ≤ 10 characters.
    sex: Option<String>,
    /// ≤ 200 characters.
    sign: Option<String>,
    /// ≤ 100 characters.
    area: Option<String>,
}

/// The user's settings (SPEC 2.1), an object or its JSON text (≤ 4096 bytes).
#[derive(ToSchema)]
pub struct Userset {
    #[schema(value_type = Object)]
    userset: Value,
}

/// A search for users by name (≤ 50 characters).
#[derive(ToSchema)]
pub struct Keyword {
    keyword: String,
}

/// A message to a user or a group. The answer is the message object, durable in the log.
#[derive(ToSchema)]
pub struct SendBody {
    /// The recipient: a user id (`single`) or a group id (`group`).
    sendto_id: i64,
    /// `single` or `group`.
    #[schema(example = "single")]
    #[schema(rename = "chatType")]
    chat_type: String,
    /// `text`, `image`, `audio`, `video`, `file`, `iconMenus`… (1–32 characters).
    #[schema(example = "text")]
    r#type: String,
    /// The text, or the file's URL.
    #[schema(example = "你好")]
    data: String,
    /// A JSON object, or its URL-encoded JSON text (≤ 4096 bytes); `file` messages carry `name` and `size`.
    #[schema(value_type = Option<Object>)]
    options: Option<Value>,
    /// The client's own id for the message (≤ 64), echoed in the `ack` frame.
    client_msg_id: Option<String>,
    /// Group messages: `all`, or the user ids called out (an array, its JSON text, or `1,2,3`).
    #[schema(value_type = Option<Object>)]
    mentions: Option<Value>,
    /// The id of a message of this chat that this one answers; the message carries its quote (`reply_to`).
    reply_to: Option<String>,
    /// The id of a message I can read that this one forwards (same `type` and `data`); the message names it (`forwarded_from`).
    forward_of: Option<String>,
}

/// A message to revoke (the sender, within the revoke window).
#[derive(ToSchema)]
pub struct Revoke {
    /// The message id (UUID).
    id: String,
    /// Checked when given: `single` or `group`.
    #[schema(rename = "chatType")]
    chat_type: Option<String>,
    /// Checked when given: an integer.
    to_id: Option<i64>,
}

/// New words for a text message I sent.
#[derive(ToSchema)]
pub struct Edit {
    /// The message id (UUID).
    id: String,
    /// The new text.
    data: String,
}

/// A reaction to a message I can read.
#[derive(ToSchema)]
pub struct React {
    /// The message id (UUID).
    id: String,
    /// The emoji (1 to 8 characters, no letters, digits or spaces).
    #[schema(example = "👍")]
    emoji: String,
    /// 1 adds it (default), 0 takes it back.
    add: Option<i64>,
}

/// `?q=&chatType=&id=&page=&limit=`: a search of my messages or a group's.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to find (1–64 characters with a letter or digit; Chinese needs no spaces).
    q: String,
    /// `single` (one chat with `id`) or `group` (the group `id`); absent: all my one-to-one messages.
    #[param(rename = "chatType")]
    chat_type: Option<String>,
    /// The other user or the group, with `chatType`.
    id: Option<i64>,
    /// Page number, ≥ 1 (default 1).
    page: Option<i64>,
    /// 1–50 (default 20).
    limit: Option<i64>,
}

/// `?page=&limit=`: a page of my conversations.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationsQuery {
    /// Page number, ≥ 1 (default 1).
    page: Option<i64>,
    /// 1–100 (default 20).
    limit: Option<i64>,
}

/// A read mark on one of my chats.
#[derive(ToSchema)]
pub struct ReadMark {
    /// `single` or `group`.
    #[schema(rename = "chatType", example = "single")]
    chat_type: String,
    /// The other user (single) or the group (group).
    id: i64,
    /// Read up to this seq of my inbox (absent: all of it).
    seq: Option<i64>,
}

/// Pins or unpins one of my chats.
#[derive(ToSchema)]
pub struct Pin {
    /// `single` or `group`.
    #[schema(rename = "chatType", example = "single")]
    chat_type: String,
    /// The other user (single) or the group (group).
    id: i64,
    /// 1 pins, 0 unpins.
    pinned: i64,
}

/// Mutes or unmutes one of my chats.
#[derive(ToSchema)]
pub struct Mute {
    /// `single` or `group`.
    #[schema(rename = "chatType", example = "single")]
    chat_type: String,
    /// The other user (single) or the group (group).
    id: i64,
    /// 1 mutes, 0 unmutes.
    muted: i64,
}

/// A device for pushes.
#[derive(ToSchema)]
pub struct PushTarget {
    /// `unipush`, `fcm`, `apns` or `webhook`.
    #[schema(example = "fcm")]
    provider: String,
    /// The device's token with that provider (1–512 visible ASCII characters).
    device_token: String,
}

/// A message to hide from me.
#[derive(ToSchema)]
pub struct Hide {
    /// The message id (UUID).
    id: String,
}

/// `?since=&limit=`: inbox rows after a `seq`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// The last `seq` this device has (default 0).
    since: Option<i64>,
    /// 1–500 (default 100).
    limit: Option<i64>,
}

/// `?before=&limit=`: a page of a conversation, newest first.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// A message id: rows older than it.
    before: Option<String>,
    /// 1–100 (default 20).
    limit: Option<i64>,
}

/// `?limit=`: rows per page.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageLimit {
    /// Rows per page (default 10, at most 100; the friend list: 2000 and 2000).
    limit: Option<i64>,
}

/// `?id=&limit=`: a page of a group's members.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// The group.
    id: i64,
    /// Members per page.
    limit: Option<i64>,
}

/// `?type=H5&chatType=group&http=…`: a QR code that opens the H5 client's join page.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// `H5` for a link into the H5 client.
    r#type: Option<String>,
    /// `group`.
    #[param(rename = "chatType")]
    chat_type: Option<String>,
    /// The H5 client's base URL (≤ 500).
    http: Option<String>,
}

/// Asking someone to be my friend.
#[derive(ToSchema)]
pub struct FriendApply {
    friend_id: i64,
    /// The remark I give them (≤ 50).
    nickname: Option<String>,
    /// They may see my moments (default 1).
    lookme: Option<i64>,
    /// I see theirs (default 1).
    lookhim: Option<i64>,
}

/// Answering a friend request.
#[derive(ToSchema)]
pub struct FriendAnswer {
    /// `agree` or `refuse`.
    status: String,
    nickname: Option<String>,
    lookme: Option<i64>,
    lookhim: Option<i64>,
}

/// Becoming friends at once (both sides agree).
#[derive(ToSchema)]
pub struct AutoAdd {
    friend_id: i64,
    nickname: Option<String>,
}

#[derive(ToSchema)]
pub struct Star {
    /// 1 stars the friend, 0 unstars.
    star: i64,
}

#[derive(ToSchema)]
pub struct Visibility {
    lookme: i64,
    lookhim: i64,
}

#[derive(ToSchema)]
pub struct Remark {
    /// The remark (≤ 50).
    nickname: Option<String>,
    /// Tags, comma separated.
    tags: Option<String>,
}

/// A report to the operators.
#[derive(ToSchema)]
pub struct Report {
    /// The user or group reported.
    reported_id: i64,
    /// `user` or `group`.
    reported_type: String,
    /// The reason's category.
    category: String,
    /// What happened.
    content: String,
}

/// A new group with me as its owner.
#[derive(ToSchema)]
pub struct GroupCreate {
    /// Friends to add: an array, its JSON text, or `1,2,3`.
    #[schema(value_type = Object)]
    ids: Value,
    /// The name (default: the members' names).
    name: Option<String>,
}

#[derive(ToSchema)]
pub struct GroupName {
    id: i64,
    name: String,
}

#[derive(ToSchema)]
pub struct GroupRemark {
    id: i64,
    remark: String,
}

/// A group and one of its (or its future) members.
#[derive(ToSchema)]
pub struct GroupMember {
    id: i64,
    user_id: i64,
}

#[derive(ToSchema)]
pub struct JoinPolicy {
    id: i64,
    /// 1: invitations need the owner's or an admin's approval.
    invite_confirm: i64,
}

/// An owner or admin answering a request to join.
#[derive(ToSchema)]
pub struct JoinAnswer {
    id: i64,
    user_id: i64,
    /// `agree` or `refuse`.
    status: String,
}

/// Answering an invitation to group `id`.
#[derive(ToSchema)]
pub struct InvitationAnswer {
    id: i64,
    /// `agree` or `refuse`.
    status: String,
}

#[derive(ToSchema)]
pub struct GroupNickname {
    id: i64,
    /// My name in the group (≤ 50).
    nickname: String,
}

#[derive(ToSchema)]
pub struct GroupOnly {
    id: i64,
}

/// Muting one member (an owner or admin).
#[derive(ToSchema)]
pub struct GroupMute {
    id: i64,
    user_id: i64,
    /// 1 mutes (default), 0 lifts.
    mute: Option<i64>,
    /// For how long; absent: until lifted.
    minutes: Option<i64>,
}

#[derive(ToSchema)]
pub struct GroupMuteAll {
    id: i64,
    mute: i64,
}

#[derive(ToSchema)]
pub struct GroupLock {
    id: i64,
    lock: i64,
}

#[derive(ToSchema)]
pub struct GroupAvatar {
    id: i64,
    /// Image URL.
    avatar: String,
}

#[derive(ToSchema)]
pub struct GroupSetAdmin {
    id: i64,
    user_id: i64,
    /// 1 makes an admin (default), 0 takes it back.
    admin: Option<i64>,
}

#[derive(ToSchema)]
pub struct GroupShareHistory {
    id: i64,
    /// 1: new members read the history from before they joined.
    share: i64,
}

#[derive(ToSchema)]
pub struct AskNew {
    ask: String,
    answer: String,
}

#[derive(ToSchema)]
pub struct AskChange {
    id: i64,
    ask: String,
    answer: String,
}

#[derive(ToSchema)]
pub struct AskOnly {
    id: i64,
}

#[derive(ToSchema)]
pub struct AskPage {
    /// ≥ 1 (default 1).
    page: Option<i64>,
    /// 1–100 (default 10).
    limit: Option<i64>,
}

#[derive(ToSchema)]
pub struct AskSearch {
    /// Words of the question.
    ask: Option<String>,
    /// Whose answers (a user id).
    #[schema(rename = "create_userId")]
    create_user_id: Option<i64>,
}

/// A multipart upload: one file.
#[derive(ToSchema)]
pub struct Upload {
    /// The file (image, audio, video or document; each kind has its own size limit).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A video (uploaded here) to take a frame of.
#[derive(ToSchema)]
pub struct Screenshot {
    /// The video's URL as the upload answered it.
    url: String,
}

//! The reference's payload shapes, written down from its code (`../shared/seeds/`):
//! the field names and JSON types its client reads, and the values it fixes. Extra
//! fields of ours are allowed; a missing field or another type fails.

use serde_json::Value;

/// JSON types as the reference sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // the catalogue of types, whether or not a shape uses each yet
pub enum Type {
    Str,
    Num,
    Bool,
    Obj,
    Arr,
    Null,
    /// A string or a number (ids the reference builds either way, e.g. `from_id`).
    StrOrNum,
    /// An object or `null`.
    ObjOrNull,
}

fn is(value: &Value, ty: Type) -> bool {
    match ty {
        Type::Str => value.is_string(),
        Type::Num => value.is_number(),
        Type::Bool => value.is_boolean(),
        Type::Obj => value.is_object(),
        Type::Arr => value.is_array(),
        Type::Null => value.is_null(),
        Type::StrOrNum => value.is_string() || value.is_number(),
        Type::ObjOrNull => value.is_object() || value.is_null(),
    }
}

/// Every field present with its type.
pub fn assert_fields(what: &str, value: &Value, fields: &[(&str, Type)]) {
    for (name, ty) in fields {
        let field = value.get(name).unwrap_or_else(|| panic!("{what}: no `{name}` in {value}"));
        assert!(is(field, *ty), "{what}: `{name}` is not {ty:?} in {value}");
    }
}

/// A chat message as `sendmessage` answers it and `singleChat` frames carry it
/// (chatwebsocket.js `sendmessage`: `let message = {…}`).
pub fn assert_chat_message(message: &Value) {
    use Type::*;
    assert_fields(
        "chat message",
        message,
        &[
            ("id", Str),
            ("from_avatar", Str),
            ("from_name", Str),
            ("from_id", Num),
            ("to_id", Num),
            ("to_name", Str),
            ("to_avatar", Str),
            ("chatType", Str),
            ("type", Str),
            ("data", Str),
            ("options", ObjOrNull),
            ("create_time", Num),
            ("isremove", Num),
        ],
    );
}

/// A message from the system (context.js `offlineMsg`, chatuser.js
/// `systemSendLoginRemind`): `data` is `{data, dataType: false, otherData: null}`.
pub fn assert_offline_msg(message: &Value) {
    use Type::*;
    assert_fields(
        "system message",
        message,
        &[
            ("id", Str),
            ("from_avatar", Str),
            ("from_name", Str),
            ("from_id", StrOrNum),
            ("to_id", Num),
            ("to_name", Str),
            ("to_avatar", Str),
            ("chatType", Str),
            ("type", Str),
            ("data", Obj),
            ("redirect", ObjOrNull),
            ("options", Obj),
            ("create_time", Num),
            ("isremove", Num),
            ("group", Obj),
            ("msgidKey", StrOrNum),
        ],
    );
    assert_eq!(message["chatType"], "single");
    assert_eq!(message["type"], "text");
    assert!(message["data"]["data"].is_string(), "{message}");
    assert_eq!(message["data"]["dataType"], false);
    assert!(message["data"]["otherData"].is_null(), "{message}");
    assert_eq!(message["options"], serde_json::json!({}));
    assert_eq!(message["group"], serde_json::json!({}));
    assert_eq!(message["isremove"], 0);
}

/// A user object as login-type routes answer it (the `User` row without `password`, plus
/// `token`): `userset` is the TEXT column.
pub fn assert_user_object(user: &Value) {
    use Type::*;
    assert_fields(
        "user object",
        user,
        &[
            ("id", Num),
            ("uuid", Str),
            ("username", Str),
            ("nickname", Str),
            ("avatar", Str),
            ("role", Str),
            ("status", Num),
            ("userset", Str),
            ("create_time", Num),
            ("update_time", Num),
            ("token", Str),
        ],
    );
    assert!(user.get("password").is_none(), "never the password: {user}");
}

/// `GET /api/userinfo/:uuid` (chatuser.js `userinfo`): the chosen attributes and the
/// `userinfo` association.
pub fn assert_public_profile(user: &Value) {
    use Type::*;
    assert_fields(
        "public profile",
        user,
        &[
            ("id", Num),
            ("uuid", Str),
            ("username", Str),
            ("nickname", Str),
            ("avatar", Str),
            ("role", Str),
            ("userset", Str),
            ("userinfo", Obj),
        ],
    );
}

/// `GET /api/chat/goodfriendlist/:page` (goodfriend.js `goodfriendlist`): `{count, rows}`
/// with rows grouped by letter, each friend as the reference maps it.
pub fn assert_friend_list(list: &Value) {
    use Type::*;
    assert_fields("friend list", list, &[("count", Num), ("rows", Arr)]);
    for group in list["rows"].as_array().into_iter().flatten() {
        assert_fields("friend list group", group, &[("title", Str), ("list", Arr)]);
        for friend in group["list"].as_array().into_iter().flatten() {
            assert_fields(
                "friend list row",
                friend,
                &[
                    ("id", Num),
                    ("beizhu", Str),
                    ("username", Str),
                    ("avatar", Str),
                    ("friend_nickname", Str),
                    ("friend_id", Num),
                    ("name", Str),
                    ("uuid", Str),
                ],
            );
        }
    }
}

/// `POST /api/chat/isApplyfriend/:uuid` (chatuser.js `isApplyfriend`): the pending
/// `Goodfriendapply` row without `order`, `create_time`, `update_time`.
pub fn assert_pending_request(request: &Value) {
    use Type::*;
    assert_fields("friend request", request, &[("id", Num), ("user_id", Num), ("friend_id", Num), ("status", Str)]);
    assert_eq!(request["status"], "pending");
}

/// `POST /api/chat/ismygoodfriend/:id` (goodfriend.js `ismygoodfriend`): the
/// `Goodfriend` row without `order`, `create_time`, `update_time`.
pub fn assert_friend_row(row: &Value) {
    use Type::*;
    assert_fields("friend row", row, &[("id", Num), ("user_id", Num), ("friend_id", Num), ("nickname", Str), ("isblack", Num)]);
    assert_eq!(row["isblack"], 0);
}

/// The group a group message carries (chatwebsocket.js: the `Group` row). Ours is the
/// group without its member list (see README, Compatibility).
pub fn assert_message_group(group: &Value) {
    use Type::*;
    assert_fields(
        "message group",
        group,
        &[
            ("id", Num),
            ("name", Str),
            ("avatar", Str),
            ("user_id", Num),
            ("remark", Str),
            ("invite_confirm", Num),
            ("status", Num),
            ("create_time", Num),
        ],
    );
}

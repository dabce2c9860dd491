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

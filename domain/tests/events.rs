//! The event catalogue as the log stores it: one golden JSON fixture per variant under
//! `tests/fixtures/events/<EventType>.json`, so renaming a field or a variant breaks a
//! test instead of silently breaking every stored event. Plus the decode error paths,
//! `#[serde(default)]` additivity, and proptest round-trips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_domain::conversation::{Chat, ConversationMuted, ConversationPinned, ConversationRead, MessageHidden};
use im_domain::event::{
    AdminCreated, AdminLoggedOut, AskAnswerDeleted, AskAnswerSaved, GroupChanged, GroupCreated, Redirect, SystemMessageSent, UserDeleted,
    UsernameChanged,
};
use im_domain::event::{AllowanceUsed, ClientMessageKeyClaimed, MessageEdited, MessageReacted, MessageRevoked, MessageSent, ReportHandled};
use im_domain::event::{
    DeviceBound, DeviceInfo, PasswordChanged, ProfileUpdated, Role, UserLoggedIn, UserLoggedOut, UserRegistered, UserSettingsChanged,
    UserStatusChanged, UsernameClaimed, VisitorUpgraded,
};
use im_domain::event::{
    FriendAdded, FriendRequestAccepted, FriendRequestRefused, FriendRequested, FriendSideChanged, FriendshipEnded, ReportFiled,
};
use im_domain::friendship::{Side, SideChange};
use im_domain::group::{GroupChange, Named};
use im_domain::message::{ChatType, Party};
use im_domain::push::{Provider, PushTargetRegistered, PushTargetRemoved};
use im_domain::userset::{ChatRule, ChatSet, FriendSet, PrivacySet, UserSet};
use im_domain::values::Username;
use im_domain::{Event, EventDecodeError, SessionId, UserId};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// One stored event as the log keeps it.
#[derive(Debug)]
struct Fixture {
    file: PathBuf,
    event_type: String,
    schema_version: u32,
    payload: Value,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events")
}

fn read_fixture(file: &Path) -> Fixture {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let mut json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", file.display()));
    let obj = json.as_object_mut().unwrap_or_else(|| panic!("{} is not an object", file.display()));
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["event_type", "schema_version", "payload"]),
        "{}: a fixture holds exactly event_type, schema_version and payload",
        file.display()
    );
    Fixture {
        file: file.to_owned(),
        event_type: obj["event_type"].as_str().expect("event_type is a string").to_owned(),
        schema_version: u32::try_from(obj["schema_version"].as_u64().expect("schema_version is a number"))
            .expect("schema_version fits u32"),
        payload: obj.remove("payload").expect("payload present"),
    }
}

fn all_fixtures() -> Vec<Fixture> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("fixture dir exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files.iter().map(|f| read_fixture(f)).collect()
}

fn fixture_for(event_type: &str) -> Fixture {
    let file = fixture_dir().join(format!("{event_type}.json"));
    assert!(file.exists(), "no golden fixture for {event_type}: add {}", file.display());
    read_fixture(&file)
}

// ---------------------------------------------------------------------------
// One sample of every variant, matching the fixtures field for field
// ---------------------------------------------------------------------------

const USER: UserId = UserId(1002);
const FINGERPRINT: &str = "fp-3f9a0c";

fn session() -> SessionId {
    SessionId(Uuid::parse_str("0190d0a4-6c1e-7b3a-8f00-0000000000a1").unwrap())
}

/// Adding a variant to `Event` makes this match non-exhaustive, which is the cue to
/// add a sample to [`samples`], a fixture file, and bump `VARIANT_COUNT`.
fn variant_index(event: &Event) -> usize {
    match event {
        Event::UserRegistered(_) => 0,
        Event::VisitorUpgraded(_) => 1,
        Event::UserLoggedIn(_) => 2,
        Event::UserLoggedOut(_) => 3,
        Event::PasswordChanged(_) => 4,
        Event::ProfileUpdated(_) => 5,
        Event::UserSettingsChanged(_) => 6,
        Event::UserStatusChanged(_) => 7,
        Event::UsernameClaimed(_) => 8,
        Event::DeviceBound(_) => 9,
        Event::FriendRequested(_) => 10,
        Event::FriendRequestAccepted(_) => 11,
        Event::FriendRequestRefused(_) => 12,
        Event::FriendAdded(_) => 13,
        Event::FriendSideChanged(_) => 14,
        Event::FriendshipEnded(_) => 15,
        Event::ReportFiled(_) => 16,
        Event::MessageSent(_) => 17,
        Event::MessageRevoked(_) => 18,
        Event::AllowanceUsed(_) => 19,
        Event::ClientMessageKeyClaimed(_) => 20,
        Event::AskAnswerSaved(_) => 21,
        Event::AskAnswerDeleted(_) => 22,
        Event::GroupCreated(_) => 23,
        Event::GroupChanged(_) => 24,
        Event::AdminCreated(_) => 25,
        Event::UserDeleted(_) => 26,
        Event::UsernameChanged(_) => 27,
        Event::AdminLoggedOut(_) => 28,
        Event::SystemMessageSent(_) => 29,
        Event::ReportHandled(_) => 30,
        Event::MessageEdited(_) => 31,
        Event::MessageReacted(_) => 32,
        Event::ConversationRead(_) => 33,
        Event::ConversationPinned(_) => 34,
        Event::ConversationMuted(_) => 35,
        Event::MessageHidden(_) => 36,
        Event::PushTargetRegistered(_) => 37,
        Event::PushTargetRemoved(_) => 38,
    }
}

const VARIANT_COUNT: usize = 39;

fn named(id: UserId, name: &str) -> Named {
    Named { id, name: name.into() }
}

fn message_id() -> Uuid {
    Uuid::parse_str("0190d0a4-6c1e-7b3a-8f00-0000000000b2").unwrap()
}

const FRIEND: UserId = UserId(1003);

fn side(nickname: &str, black: bool) -> Side {
    Side { nickname: nickname.into(), tags: "同事,朋友".into(), star: true, black, lookme: true, lookhim: false }
}

fn samples() -> Vec<Event> {
    vec![
        Event::UserRegistered(UserRegistered {
            user_id: USER,
            uuid: Uuid::parse_str("0190d0a4-6c1e-7b3a-8f00-000000000001").unwrap(),
            username: "visitor#1002".into(),
            nickname: "游客1002".into(),
            role: Role::Visitor,
            password_hash: None,
            device_fingerprint: Some(FINGERPRINT.into()),
            device: Some(DeviceInfo {
                ua: Some("Mozilla/5.0 (iPhone)".into()),
                platform: Some("ios".into()),
                system: Some("iOS 17.4".into()),
                model: Some("iPhone15,2".into()),
                brand: Some("Apple".into()),
                screen: Some("1179x2556".into()),
            }),
            at: 1_700_000_000_000,
        }),
        Event::VisitorUpgraded(VisitorUpgraded {
            user_id: USER,
            username: "alice_01".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            at: 1_700_000_001_000,
        }),
        Event::UserLoggedIn(UserLoggedIn { user_id: USER, session_id: session(), slot: None, at: 1_700_000_002_000 }),
        Event::UserLoggedOut(UserLoggedOut { user_id: USER, session_id: session(), at: 1_700_000_003_000 }),
        Event::PasswordChanged(PasswordChanged {
            user_id: USER,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA".into(),
            at: 1_700_000_004_000,
        }),
        Event::ProfileUpdated(ProfileUpdated {
            user_id: USER,
            nickname: Some("爱丽丝".into()),
            avatar: Some("https://cdn.example.com/a/1002.png".into()),
            sex: Some("female".into()),
            sign: Some("hello there".into()),
            area: Some("Shanghai".into()),
            at: 1_700_000_005_000,
        }),
        Event::UserSettingsChanged(UserSettingsChanged {
            user_id: USER,
            userset: UserSet {
                chatset: ChatSet {
                    visitor: ChatRule { send_count: 0, need_follow: true },
                    user: ChatRule { send_count: 2, need_follow: false },
                },
                friendset: FriendSet { invite_confirm: 0 },
                privacyset: PrivacySet::default(),
            },
            raw: None,
            at: 1_700_000_006_000,
        }),
        Event::UserStatusChanged(UserStatusChanged { user_id: USER, active: false, at: 1_700_000_007_000 }),
        Event::UsernameClaimed(UsernameClaimed { username: "alice_01".into(), user_id: USER, released_from: None }),
        Event::DeviceBound(DeviceBound { fingerprint: FINGERPRINT.into(), user_id: USER }),
        Event::FriendRequested(FriendRequested {
            request_id: 7,
            from: USER,
            to: FRIEND,
            nickname: "小王".into(),
            lookme: true,
            lookhim: false,
            at: 1_700_000_008_000,
        }),
        Event::FriendRequestAccepted(FriendRequestAccepted {
            request_id: 7,
            from: USER,
            to: FRIEND,
            applicant_side: side("小王", false),
            addressee_side: side("爱丽丝", false),
            at: 1_700_000_009_000,
        }),
        Event::FriendRequestRefused(FriendRequestRefused { request_id: 8, from: FRIEND, to: USER, at: 1_700_000_010_000 }),
        Event::FriendAdded(FriendAdded { from: USER, to: FRIEND, from_side: side("", false), at: 1_700_000_011_000 }),
        Event::FriendSideChanged(FriendSideChanged {
            user_id: USER,
            friend_id: FRIEND,
            change: SideChange::Remark { nickname: Some("王总".into()), tags: None },
            at: 1_700_000_012_000,
        }),
        Event::FriendshipEnded(FriendshipEnded { user_id: FRIEND, friend_id: USER, at: 1_700_000_013_000 }),
        Event::ReportFiled(ReportFiled {
            report_id: 3,
            user_id: USER,
            reported_id: 1003,
            reported_type: "user".into(),
            category: "spam".into(),
            content: "发广告".into(),
            at: 1_700_000_014_000,
        }),
        Event::MessageSent(MessageSent {
            message_id: message_id(),
            chat_type: ChatType::Single,
            from: Party { id: 1002, name: "小王".into(), avatar: "https://cdn.example.com/a/1002.png".into() },
            to: Party { id: 1003, name: "爱丽丝".into(), avatar: String::new() },
            recipients: vec![FRIEND],
            kind: "text".into(),
            data: "你好".into(),
            options: json!({"autoReply": false}),
            client_msg_id: Some("c-1".into()),
            group: None,
            mentions: Default::default(),
            reply_to: None,
            forwarded_from: None,
            at: 1_700_000_015_000,
        }),
        Event::MessageRevoked(MessageRevoked { message_id: message_id(), by: USER, at: 1_700_000_016_000, reason: None }),
        Event::AllowanceUsed(AllowanceUsed { from: USER, to: FRIEND, message_id: message_id() }),
        Event::ClientMessageKeyClaimed(ClientMessageKeyClaimed { from: USER, client_msg_id: "c-1".into(), message_id: message_id() }),
        Event::AskAnswerSaved(AskAnswerSaved {
            user_id: USER,
            id: 4,
            ask: "价格多少".into(),
            answer: "请看商品详情".into(),
            created: true,
            at: 1_700_000_017_000,
        }),
        Event::AskAnswerDeleted(AskAnswerDeleted { user_id: USER, id: 4, at: 1_700_000_018_000 }),
        Event::GroupCreated(GroupCreated {
            group_id: im_domain::GroupId(9),
            owner: named(USER, "小王"),
            name: "小王、爱丽丝".into(),
            members: vec![named(USER, "小王"), named(FRIEND, "爱丽丝")],
            at: 1_700_000_019_000,
        }),
        Event::GroupChanged(GroupChanged {
            group_id: im_domain::GroupId(9),
            by: named(USER, "小王"),
            change: GroupChange::MemberAdded { user: named(UserId(1004), "张三") },
            at: 1_700_000_020_000,
        }),
        Event::AdminCreated(AdminCreated {
            username: "ops".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$YWRtaW5zYWx0$YWRtaW5oYXNo".into(),
            at: 1_700_000_021_000,
        }),
        Event::UserDeleted(UserDeleted { user_id: USER, at: 1_700_000_022_000 }),
        Event::UsernameChanged(UsernameChanged { user_id: USER, username: "alice_02".into(), at: 1_700_000_023_000 }),
        Event::AdminLoggedOut(AdminLoggedOut { username: "ops".into(), at: 1_700_000_024_000 }),
        Event::SystemMessageSent(SystemMessageSent {
            message_id: message_id(),
            to: USER,
            to_name: "小王".into(),
            to_avatar: "/public/avatar/20260101/a.png".into(),
            from_key: Some("redirect-userInfoSet-1002".into()),
            from_name: "头像更换成功".into(),
            from_avatar: "/public/avatar/20260101/a.png".into(),
            text: "不满意你的头像可以继续更换".into(),
            redirect: Some(Redirect {
                url: "/pages/setpageInfo/setpageInfo?action=userinfoSet".into(),
                kind: "navigateTo".into(),
                doaction: "avatar".into(),
            }),
            at: 1_700_000_025_000,
        }),
        Event::ReportHandled(ReportHandled {
            report_id: 3,
            action: "user_disabled".into(),
            note: "屡次发广告".into(),
            at: 1_700_000_026_000,
        }),
        Event::MessageEdited(MessageEdited { message_id: message_id(), by: USER, data: "你好呀".into(), at: 1_700_000_027_000 }),
        Event::MessageReacted(MessageReacted {
            message_id: message_id(),
            user: FRIEND,
            emoji: "👍".into(),
            added: true,
            at: 1_700_000_028_000,
        }),
        Event::ConversationRead(ConversationRead {
            user: FRIEND,
            chat: Chat { chat_type: ChatType::Single, id: USER.0 },
            seq: 41,
            at: 1_700_000_029_000,
        }),
        Event::ConversationPinned(ConversationPinned {
            user: FRIEND,
            chat: Chat { chat_type: ChatType::Group, id: 7 },
            pinned: true,
            at: 1_700_000_030_000,
        }),
        Event::ConversationMuted(ConversationMuted {
            user: FRIEND,
            chat: Chat { chat_type: ChatType::Group, id: 7 },
            muted: true,
            at: 1_700_000_031_000,
        }),
        Event::MessageHidden(MessageHidden { user: FRIEND, message_id: message_id(), at: 1_700_000_032_000 }),
        Event::PushTargetRegistered(PushTargetRegistered {
            user: FRIEND,
            provider: Provider::Fcm,
            device_token: "fcm-device-token-1".into(),
            at: 1_700_000_033_000,
        }),
        Event::PushTargetRemoved(PushTargetRemoved {
            user: FRIEND,
            provider: Provider::Fcm,
            device_token: "fcm-device-token-1".into(),
            at: 1_700_000_034_000,
        }),
    ]
}

// ---------------------------------------------------------------------------
// Golden fixtures
// ---------------------------------------------------------------------------

#[test]
fn every_fixture_decodes_and_reencodes_to_the_same_payload() {
    let fixtures = all_fixtures();
    assert!(!fixtures.is_empty(), "no fixtures found in {}", fixture_dir().display());
    for fx in fixtures {
        let stem = fx.file.file_stem().and_then(|s| s.to_str()).unwrap();
        assert_eq!(stem, fx.event_type, "{}: file name must be the event type", fx.file.display());
        let event =
            Event::decode(&fx.event_type, fx.schema_version, fx.payload.clone()).unwrap_or_else(|e| panic!("{}: {e}", fx.file.display()));
        let (event_type, payload) = event.encode();
        assert_eq!(event_type, fx.event_type, "{}", fx.file.display());
        assert_eq!(event.schema_version(), fx.schema_version, "{}", fx.file.display());
        assert_eq!(payload, fx.payload, "{}: re-encoded payload differs", fx.file.display());
        // What the log stores: the same payload as text, decoding to the same event.
        let (raw_type, raw) = event.encode_raw();
        assert_eq!(raw_type, fx.event_type);
        let tree: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(tree, fx.payload, "{}: encode_raw() differs from encode()", fx.file.display());
        assert_eq!(Event::decode_str(raw_type, fx.schema_version, raw.get()).unwrap(), event, "{}", fx.file.display());
    }
}

#[test]
fn every_variant_has_a_fixture_matching_its_sample() {
    let samples = samples();
    let covered: BTreeSet<usize> = samples.iter().map(variant_index).collect();
    assert_eq!(covered, (0..VARIANT_COUNT).collect(), "samples() must hold exactly one of each variant");
    assert_eq!(samples.len(), VARIANT_COUNT);

    for sample in &samples {
        let fx = fixture_for(sample.event_type());
        let (event_type, payload) = sample.encode();
        assert_eq!(event_type, fx.event_type);
        assert_eq!(sample.schema_version(), fx.schema_version, "{event_type}");
        assert_eq!(payload, fx.payload, "{event_type}: encode() differs from the golden fixture");
        let decoded = Event::decode(&fx.event_type, fx.schema_version, fx.payload).unwrap();
        assert_eq!(&decoded, sample, "{event_type}: fixture decodes to a different event");
    }

    // No stray fixtures for types that no longer exist.
    let sample_types: BTreeSet<&str> = samples.iter().map(Event::event_type).collect();
    let fixture_types: BTreeSet<String> = all_fixtures().into_iter().map(|f| f.event_type).collect();
    assert_eq!(fixture_types.iter().map(String::as_str).collect::<BTreeSet<_>>(), sample_types);
}

#[test]
fn event_type_is_the_serde_tag() {
    for sample in samples() {
        let tagged = serde_json::to_value(&sample).unwrap();
        assert_eq!(tagged["type"], json!(sample.event_type()));
    }
}

// ---------------------------------------------------------------------------
// Decode errors and additive changes
// ---------------------------------------------------------------------------

#[test]
fn the_text_decoder_agrees_with_the_tree_decoder() {
    // Bulk readers (rebuild) decode the stored JSON text directly.
    for fx in all_fixtures() {
        let text = serde_json::to_string(&fx.payload).unwrap();
        let from_tree = Event::decode(&fx.event_type, fx.schema_version, fx.payload.clone()).unwrap();
        let from_text =
            Event::decode_str(&fx.event_type, fx.schema_version, &text).unwrap_or_else(|e| panic!("{}: {e}", fx.file.display()));
        assert_eq!(from_text, from_tree, "{}", fx.file.display());
    }
    let fx = fixture_for("UserLoggedIn");
    let text = fx.payload.to_string();
    assert!(matches!(Event::decode_str("UserTeleported", 1, &text), Err(EventDecodeError::UnknownType(_))));
    assert!(matches!(Event::decode_str("UserLoggedIn", 2, &text), Err(EventDecodeError::FutureVersion { version: 2, .. })));
    assert!(matches!(Event::decode_str("UserLoggedIn", 1, r#"{"user_id": 1, "at": 5}"#), Err(EventDecodeError::Payload { .. })));
    assert!(matches!(Event::decode_str("UserLoggedIn", 1, "{not json"), Err(EventDecodeError::Payload { .. })));
}

#[test]
fn unknown_event_type_is_refused() {
    let err = Event::decode("UserTeleported", 1, json!({"user_id": 1})).unwrap_err();
    assert!(matches!(&err, EventDecodeError::UnknownType(t) if t == "UserTeleported"), "{err:?}");
}

#[test]
fn a_newer_schema_version_is_refused() {
    let fx = fixture_for("UserLoggedIn");
    let err = Event::decode("UserLoggedIn", 2, fx.payload).unwrap_err();
    assert!(matches!(&err, EventDecodeError::FutureVersion { event_type, version: 2 } if event_type == "UserLoggedIn"), "{err:?}");
}

#[test]
fn a_payload_that_does_not_match_its_schema_is_a_payload_error() {
    let err = Event::decode("UserLoggedIn", 1, json!({"user_id": 1, "at": 5})).unwrap_err();
    assert!(matches!(&err, EventDecodeError::Payload { event_type, .. } if event_type == "UserLoggedIn"), "{err:?}");
    let err = Event::decode("UserStatusChanged", 1, json!({"user_id": 1, "active": "yes", "at": 5})).unwrap_err();
    assert!(matches!(&err, EventDecodeError::Payload { .. }), "{err:?}");
    // A bad enum value inside a known type is a payload error, not an unknown type.
    let mut p = fixture_for("UserRegistered").payload;
    p["role"] = json!("admin");
    assert!(matches!(Event::decode("UserRegistered", 1, p), Err(EventDecodeError::Payload { .. })));
}

#[test]
fn every_sample_type_is_decodable() {
    for sample in samples() {
        assert!(Event::TYPES.contains(&sample.event_type()), "{} missing from Event::TYPES", sample.event_type());
    }
    assert_eq!(Event::TYPES.len(), VARIANT_COUNT);
}

#[test]
fn user_registered_without_defaulted_fields_still_decodes() {
    // A registered user as the first schema stored it: no nickname, no device fields.
    let payload = json!({
        "user_id": 7,
        "uuid": "0190d0a4-6c1e-7b3a-8f00-000000000007",
        "username": "bob_1234",
        "role": "user",
        "password_hash": "$argon2id$hash",
        "at": 42
    });
    let event = Event::decode("UserRegistered", 1, payload).unwrap();
    assert_eq!(
        event,
        Event::UserRegistered(UserRegistered {
            user_id: UserId(7),
            uuid: Uuid::parse_str("0190d0a4-6c1e-7b3a-8f00-000000000007").unwrap(),
            username: "bob_1234".into(),
            nickname: String::new(),
            role: Role::User,
            password_hash: Some("$argon2id$hash".into()),
            device_fingerprint: None,
            device: None,
            at: 42,
        })
    );

    // Even the password hash is optional (visitors have none).
    let payload = json!({
        "user_id": 8,
        "uuid": "0190d0a4-6c1e-7b3a-8f00-000000000008",
        "username": "visitor#8",
        "role": "visitor",
        "at": 43
    });
    let Event::UserRegistered(e) = Event::decode("UserRegistered", 1, payload).unwrap() else { panic!("decoded to another variant") };
    assert_eq!((e.password_hash, e.device_fingerprint, e.device, e.nickname), (None, None, None, String::new()));
}

#[test]
fn sparse_optional_payloads_decode_with_defaults() {
    // ProfileUpdated carries only the fields that changed.
    let event = Event::decode("ProfileUpdated", 1, json!({"user_id": 3, "sign": "hi", "at": 9})).unwrap();
    assert_eq!(
        event,
        Event::ProfileUpdated(ProfileUpdated {
            user_id: UserId(3),
            nickname: None,
            avatar: None,
            sex: None,
            sign: Some("hi".into()),
            area: None,
            at: 9,
        })
    );
    // …and encodes back without the absent ones.
    assert_eq!(event.encode().1, json!({"user_id": 3, "sign": "hi", "at": 9}));

    // A userset with missing keys takes its defaults.
    let event = Event::decode("UserSettingsChanged", 1, json!({"user_id": 3, "userset": {"chatset": {"user": {"sendCount": 2}}}, "at": 9}))
        .unwrap();
    let Event::UserSettingsChanged(e) = event else { panic!("decoded to another variant") };
    assert_eq!(e.userset.chatset.user, ChatRule { send_count: 2, need_follow: false });
    assert_eq!(e.userset.chatset.visitor, ChatRule::default());
    assert_eq!(e.userset.friendset, FriendSet::default());

    // A device that reported nothing.
    let Event::UserRegistered(e) = Event::decode(
        "UserRegistered",
        1,
        json!({"user_id": 9, "uuid": "0190d0a4-6c1e-7b3a-8f00-000000000009", "username": "visitor#9",
               "role": "visitor", "device_fingerprint": "fp", "device": {}, "at": 1}),
    )
    .unwrap() else {
        panic!("decoded to another variant")
    };
    assert_eq!(e.device, Some(DeviceInfo::default()));
}

#[test]
fn unknown_payload_fields_are_ignored() {
    // A newer writer may add a defaulted field; an older reader must still read the event.
    let mut payload = fixture_for("UserLoggedOut").payload;
    payload["client"] = json!("web");
    let event = Event::decode("UserLoggedOut", 1, payload).unwrap();
    assert_eq!(event, samples()[3]);
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn round_trip(event: &Event) -> Event {
    let (event_type, payload) = event.encode();
    // Through text too, as the log stores it.
    let payload: Value = serde_json::from_str(&payload.to_string()).unwrap();
    Event::decode(event_type, event.schema_version(), payload).unwrap()
}

fn user_id() -> impl Strategy<Value = UserId> {
    any::<i64>().prop_map(UserId)
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<String>())
}

fn chat_rule() -> impl Strategy<Value = ChatRule> {
    (any::<u8>(), any::<bool>()).prop_map(|(send_count, need_follow)| ChatRule { send_count, need_follow })
}

fn userset() -> impl Strategy<Value = UserSet> {
    (chat_rule(), chat_rule(), any::<u8>(), any::<u8>()).prop_map(|(visitor, user, invite_confirm, presence)| UserSet {
        chatset: ChatSet { visitor, user },
        friendset: FriendSet { invite_confirm },
        privacyset: PrivacySet { presence },
    })
}

fn username_char() -> impl Strategy<Value = char> {
    // Ranges whose characters are letters or digits in every Unicode version, plus the
    // four punctuation marks a username may hold.
    proptest::char::ranges(std::borrow::Cow::Borrowed(&[
        'a'..='z',
        'A'..='Z',
        '0'..='9',
        '_'..='_',
        '-'..='-',
        '.'..='.',
        '@'..='@',
        '一'..='龥',
        'α'..='ω',
        'а'..='я',
        '٠'..='٩',
        'À'..='Ö',
    ]))
}

fn forbidden_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::sample::select(vec![' ', '#', '!', '/', '\\', '\'', '"', '<', '>', '\n', '\t', '\0', '😀', '，', '。', '+', '=']),
        any::<char>().prop_filter("not a username char", |c| { !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@')) }),
    ]
}

fn chars_to_string(chars: Vec<char>) -> String {
    chars.into_iter().collect()
}

proptest! {
    #[test]
    fn profile_updated_round_trips(
        user_id in user_id(),
        nickname in opt_text(),
        avatar in opt_text(),
        sex in opt_text(),
        sign in opt_text(),
        area in opt_text(),
        at in any::<i64>(),
    ) {
        let event = Event::ProfileUpdated(ProfileUpdated { user_id, nickname, avatar, sex, sign, area, at });
        prop_assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn user_settings_changed_round_trips(user_id in user_id(), userset in userset(), at in any::<i64>()) {
        let event = Event::UserSettingsChanged(UserSettingsChanged { user_id, userset, raw: None, at });
        prop_assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn user_logged_in_round_trips(user_id in user_id(), session in any::<u128>(), at in any::<i64>()) {
        let event = Event::UserLoggedIn(UserLoggedIn { user_id, session_id: SessionId(Uuid::from_u128(session)), slot: None, at });
        prop_assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn username_accepts_4_to_20_allowed_chars(chars in proptest::collection::vec(username_char(), 4..=20)) {
        let raw = chars_to_string(chars);
        let parsed = Username::parse(&raw).map(|name| name.as_str().to_owned());
        prop_assert_eq!(parsed, Ok(raw));
    }

    #[test]
    fn username_refuses_a_wrong_length(
        chars in prop_oneof![
            proptest::collection::vec(username_char(), 0..4),
            proptest::collection::vec(username_char(), 21..40),
        ],
    ) {
        let raw = chars_to_string(chars);
        prop_assert!(Username::parse(&raw).is_err(), "{:?} accepted", raw);
    }

    #[test]
    fn username_refuses_any_forbidden_char(
        chars in proptest::collection::vec(username_char(), 3..=19),
        bad in forbidden_char(),
        at in any::<proptest::sample::Index>(),
    ) {
        let mut chars = chars;
        let pos = at.index(chars.len() + 1);
        chars.insert(pos, bad);
        let raw = chars_to_string(chars);
        prop_assert!(Username::parse(&raw).is_err(), "{:?} accepted", raw);
    }
}

#[test]
fn every_event_type_is_documented_for_stream_consumers() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md")).expect("docs/events.md");
    for event_type in Event::TYPES {
        assert!(doc.contains(&format!("### {event_type}\n")), "docs/events.md lacks a section for {event_type}");
    }
}

#[test]
fn a_login_names_its_slot_only_when_it_has_one() {
    let desktop = r#"{"user_id":1002,"session_id":"6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f","slot":"desktop","at":5}"#;
    let Ok(Event::UserLoggedIn(e)) = Event::decode_str("UserLoggedIn", 1, desktop) else { panic!("a desktop login reads") };
    assert_eq!(e.slot, Some(im_domain::Slot::Desktop));
    let again = serde_json::to_value(Event::UserLoggedIn(e.clone())).unwrap_or_default();
    assert_eq!(again["data"]["slot"], json!("desktop"), "{again}");
    // An older login (no slot) is the single-device rule's, and is written back without one.
    let single = UserLoggedIn { slot: None, ..e };
    let text = serde_json::to_string(&single).unwrap_or_default();
    assert!(!text.contains("slot"), "{text}");
}

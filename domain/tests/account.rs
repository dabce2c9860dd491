//! The account aggregate and the claim aggregates, in given/when/then style:
//! `given(past events).when(command).then(new events)` or `.then_err(reason)`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_domain::account::{self, Account, AccountError, AlreadyClaimed, ClaimState, Command, ProfileChanges, State};
use im_domain::event::{
    DeviceBound, DeviceInfo, Event, PasswordChanged, ProfileUpdated, Role, Slot, UserLoggedIn, UserLoggedOut, UserRegistered,
    UserSettingsChanged, UserStatusChanged, UsernameClaimed, VisitorUpgraded,
};
use im_domain::userset::{ChatRule, UserSet};
use im_domain::values::{DeviceFingerprint, PasswordHash, Username};
use im_domain::{SessionId, UserId};
use uuid::Uuid;

mod support;
use support::{Aggregate, Given};

const ACCOUNT: Aggregate<State, Command, AccountError> =
    Aggregate { initial: <State as Default>::default, decide: account::decide, evolve: account::evolve };

fn given(events: Vec<Event>) -> Given<State, Command, AccountError> {
    ACCOUNT.given(events)
}

fn fold(state: State, events: &[Event]) -> State {
    ACCOUNT.fold(state, events)
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const ID: UserId = UserId(1001);
const T0: i64 = 1_700_000_000_000;
const T1: i64 = T0 + 1_000;
const T2: i64 = T0 + 2_000;

fn uuid() -> Uuid {
    Uuid::from_u128(0x0190_d0a4_6c1e_7b3a_8f00_0000_0000_0001)
}

fn s(n: u128) -> SessionId {
    SessionId(Uuid::from_u128(n))
}

fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

fn hash(raw: &str) -> PasswordHash {
    PasswordHash(raw.to_owned())
}

fn fingerprint() -> DeviceFingerprint {
    DeviceFingerprint::parse("fp-3f9a0c").unwrap()
}

fn device() -> DeviceInfo {
    DeviceInfo { ua: Some("Mozilla/5.0".into()), platform: Some("android".into()), ..DeviceInfo::default() }
}

fn user_registered() -> Event {
    Event::UserRegistered(UserRegistered {
        user_id: ID,
        uuid: uuid(),
        username: "alice_01".into(),
        nickname: String::new(),
        role: Role::User,
        password_hash: Some("hash-1".into()),
        device_fingerprint: None,
        device: None,
        at: T0,
    })
}

fn visitor_registered() -> Event {
    Event::UserRegistered(UserRegistered {
        user_id: ID,
        uuid: uuid(),
        username: "visitor#1001".into(),
        nickname: "游客1001".into(),
        role: Role::Visitor,
        password_hash: None,
        device_fingerprint: Some("fp-3f9a0c".into()),
        device: Some(device()),
        at: T0,
    })
}

fn logged_in(session: SessionId, at: i64) -> Event {
    Event::UserLoggedIn(UserLoggedIn { user_id: ID, session_id: session, slot: None, at })
}

fn logged_out(session: SessionId, at: i64) -> Event {
    Event::UserLoggedOut(UserLoggedOut { user_id: ID, session_id: session, at })
}

fn status(active: bool, at: i64) -> Event {
    Event::UserStatusChanged(UserStatusChanged { user_id: ID, active, at })
}

/// A registered user with live session 1.
fn a_user() -> Vec<Event> {
    vec![user_registered(), logged_in(s(1), T0)]
}

/// A visitor with live session 1.
fn a_visitor() -> Vec<Event> {
    vec![visitor_registered(), logged_in(s(1), T0)]
}

/// A registered user an operator disabled.
fn a_disabled_user() -> Vec<Event> {
    let mut events = a_user();
    events.push(status(false, T1));
    events
}

fn register() -> Command {
    Command::Register { id: ID, uuid: uuid(), username: name("alice_01"), password_hash: hash("hash-1"), session: s(1), at: T0 }
}

fn register_visitor() -> Command {
    Command::RegisterVisitor { id: ID, uuid: uuid(), fingerprint: fingerprint(), device: device(), session: s(1), at: T0 }
}

fn upgrade() -> Command {
    Command::UpgradeVisitor { username: name("alice_01"), password_hash: hash("hash-2"), session: s(2), at: T2 }
}

fn some_userset() -> UserSet {
    let mut set = UserSet::default();
    set.chatset.visitor = ChatRule { send_count: 0, need_follow: true };
    set.friendset.invite_confirm = 0;
    set
}

/// One of every command except `Register`/`RegisterVisitor`, all otherwise valid.
fn commands_on_an_account() -> Vec<Command> {
    vec![
        upgrade(),
        Command::LogIn { session: s(2), slot: None, at: T2 },
        Command::LogOut { session: s(1), at: T2 },
        Command::ChangePassword { password_hash: hash("hash-2"), keep: s(1), at: T2 },
        Command::UpdateProfile { changes: ProfileChanges { nickname: Some("Al".into()), ..Default::default() }, at: T2 },
        Command::ChangeSettings { userset: some_userset(), raw: None, at: T2 },
        Command::SetActive { active: false, at: T2 },
    ]
}

fn account(state: State) -> Account {
    state.expect("the account exists")
}

// ---------------------------------------------------------------------------
// Register / RegisterVisitor
// ---------------------------------------------------------------------------

#[test]
fn register_on_empty_state_registers_a_user_and_logs_in() {
    let state = given(vec![]).when(register()).then(vec![user_registered(), logged_in(s(1), T0)]);
    assert_eq!(
        account(state),
        Account {
            id: ID,
            uuid: uuid(),
            username: "alice_01".into(),
            role: Role::User,
            active: true,
            password_hash: Some(hash("hash-1")),
            session: Some(s(1)),
            desktop_session: None,
            userset: UserSet::default(),
            device_fingerprint: None,
        }
    );
}

#[test]
fn register_on_an_existing_account_is_refused() {
    given(a_user()).when(register()).then_err(AccountError::AlreadyRegistered);
    given(a_visitor()).when(register()).then_err(AccountError::AlreadyRegistered);
    given(vec![user_registered()]).when(register()).then_err(AccountError::AlreadyRegistered);
}

#[test]
fn register_visitor_on_empty_state_registers_a_bound_visitor_and_logs_in() {
    let state = given(vec![]).when(register_visitor()).then(vec![
        Event::UserRegistered(UserRegistered {
            user_id: ID,
            uuid: uuid(),
            username: "visitor#1001".into(),
            nickname: "游客1001".into(),
            role: Role::Visitor,
            password_hash: None,
            device_fingerprint: Some("fp-3f9a0c".into()),
            device: Some(device()),
            at: T0,
        }),
        logged_in(s(1), T0),
    ]);
    let visitor = account(state);
    assert_eq!(visitor.role, Role::Visitor);
    assert_eq!(visitor.username, "visitor#1001");
    assert_eq!(visitor.password_hash, None);
    assert_eq!(visitor.device_fingerprint.as_deref(), Some("fp-3f9a0c"));
    assert_eq!(visitor.session, Some(s(1)));
    assert!(visitor.active);
}

#[test]
fn register_visitor_on_an_existing_account_is_refused() {
    given(a_visitor()).when(register_visitor()).then_err(AccountError::AlreadyRegistered);
    given(a_user()).when(register_visitor()).then_err(AccountError::AlreadyRegistered);
}

#[test]
fn every_other_command_on_an_empty_state_is_refused() {
    for command in commands_on_an_account() {
        given(vec![]).when(command).then_err(AccountError::NotRegistered);
    }
    // Events of an unregistered account fold to nothing.
    given(vec![logged_in(s(1), T0), status(true, T1)])
        .when(Command::LogIn { session: s(2), slot: None, at: T2 })
        .then_err(AccountError::NotRegistered);
}

// ---------------------------------------------------------------------------
// Disabled accounts and SetActive
// ---------------------------------------------------------------------------

#[test]
fn a_disabled_account_refuses_everything_but_set_active() {
    for command in commands_on_an_account() {
        if matches!(command, Command::SetActive { .. }) {
            continue;
        }
        given(a_disabled_user()).when(command).then_err(AccountError::Disabled);
    }
    given(a_disabled_user()).when(register()).then_err(AccountError::Disabled);
    given(a_disabled_user()).when(register_visitor()).then_err(AccountError::Disabled);
    let mut disabled_visitor = a_visitor();
    disabled_visitor.push(status(false, T1));
    given(disabled_visitor).when(upgrade()).then_err(AccountError::Disabled);
}

#[test]
fn set_active_disables_and_reenables() {
    let state = given(a_user()).when(Command::SetActive { active: false, at: T1 }).then(vec![status(false, T1)]);
    assert!(!account(state).active);

    let state = given(a_disabled_user()).when(Command::SetActive { active: true, at: T2 }).then(vec![status(true, T2)]);
    let user = account(state);
    assert!(user.active);
    assert_eq!(user.session, None, "re-enabling does not revive the old session");
}

#[test]
fn set_active_to_the_current_value_emits_nothing() {
    given(a_user()).when(Command::SetActive { active: true, at: T1 }).then(vec![]);
    given(a_disabled_user()).when(Command::SetActive { active: false, at: T2 }).then(vec![]);
}

// ---------------------------------------------------------------------------
// UpgradeVisitor
// ---------------------------------------------------------------------------

#[test]
fn upgrading_a_registered_user_is_refused() {
    given(a_user()).when(upgrade()).then_err(AccountError::NotAVisitor);
}

#[test]
fn upgrading_a_visitor_makes_it_a_user_in_place_and_logs_in() {
    let state = given(a_visitor()).when(upgrade()).then(vec![
        Event::VisitorUpgraded(VisitorUpgraded { user_id: ID, username: "alice_01".into(), password_hash: "hash-2".into(), at: T2 }),
        logged_in(s(2), T2),
    ]);
    let user = account(state.clone());
    assert_eq!(user.id, ID);
    assert_eq!(user.role, Role::User);
    assert_eq!(user.username, "alice_01");
    assert_eq!(user.password_hash, Some(hash("hash-2")));
    assert_eq!(user.session, Some(s(2)));

    // Once a user, the upgrade cannot happen twice and the password may change.
    ACCOUNT.given_state(state.clone()).when(upgrade()).then_err(AccountError::NotAVisitor);
    ACCOUNT
        .given_state(state)
        .when(Command::ChangePassword { password_hash: hash("hash-3"), keep: s(2), at: T2 })
        .then(vec![Event::PasswordChanged(PasswordChanged { user_id: ID, password_hash: "hash-3".into(), at: T2 })]);
}

// ---------------------------------------------------------------------------
// LogIn / LogOut
// ---------------------------------------------------------------------------

#[test]
fn log_in_starts_a_new_session() {
    let state = given(a_user()).when(Command::LogIn { session: s(2), slot: None, at: T1 }).then(vec![logged_in(s(2), T1)]);
    assert_eq!(account(state).session, Some(s(2)));

    let state = given(a_visitor()).when(Command::LogIn { session: s(2), slot: None, at: T1 }).then(vec![logged_in(s(2), T1)]);
    assert_eq!(account(state).session, Some(s(2)));

    // Logging in without any session yet.
    let state = given(vec![user_registered()]).when(Command::LogIn { session: s(5), slot: None, at: T1 }).then(vec![logged_in(s(5), T1)]);
    assert_eq!(account(state).session, Some(s(5)));
}

#[test]
fn log_out_of_the_live_session_ends_it() {
    let state = given(a_user()).when(Command::LogOut { session: s(1), at: T1 }).then(vec![logged_out(s(1), T1)]);
    assert_eq!(account(state).session, None);
}

#[test]
fn log_out_with_a_stale_session_is_refused() {
    let mut replaced = a_user();
    replaced.push(logged_in(s(2), T1));
    given(replaced).when(Command::LogOut { session: s(1), at: T2 }).then_err(AccountError::StaleSession);

    let mut logged_out_already = a_user();
    logged_out_already.push(logged_out(s(1), T1));
    given(logged_out_already).when(Command::LogOut { session: s(1), at: T2 }).then_err(AccountError::StaleSession);

    given(vec![user_registered()]).when(Command::LogOut { session: s(1), at: T1 }).then_err(AccountError::StaleSession);
}

// ---------------------------------------------------------------------------
// ChangePassword
// ---------------------------------------------------------------------------

#[test]
fn a_user_changes_their_password() {
    let state = given(a_user())
        .when(Command::ChangePassword { password_hash: hash("hash-2"), keep: s(1), at: T1 })
        .then(vec![Event::PasswordChanged(PasswordChanged { user_id: ID, password_hash: "hash-2".into(), at: T1 })]);
    let user = account(state);
    assert_eq!(user.password_hash, Some(hash("hash-2")));
    assert_eq!(user.session, Some(s(1)), "changing the password keeps the session");
}

#[test]
fn an_operator_reset_ends_the_live_session() {
    let state = given(a_user())
        .when(Command::ResetPassword { password_hash: hash("hash-2"), at: T1 })
        .then(vec![Event::PasswordChanged(PasswordChanged { user_id: ID, password_hash: "hash-2".into(), at: T1 }), logged_out(s(1), T1)]);
    let user = account(state);
    assert_eq!(user.password_hash, Some(hash("hash-2")));
    assert_eq!(user.session, None, "the old password's session is over");
    // Without a live session there is nothing to end.
    let mut logged_off = a_user();
    logged_off.push(logged_out(s(1), T1));
    given(logged_off)
        .when(Command::ResetPassword { password_hash: hash("hash-3"), at: T2 })
        .then(vec![Event::PasswordChanged(PasswordChanged { user_id: ID, password_hash: "hash-3".into(), at: T2 })]);
    given(a_visitor()).when(Command::ResetPassword { password_hash: hash("hash-2"), at: T1 }).then_err(AccountError::VisitorForbidden);
}

#[test]
fn a_visitor_cannot_change_a_password() {
    given(a_visitor())
        .when(Command::ChangePassword { password_hash: hash("hash-2"), keep: s(1), at: T1 })
        .then_err(AccountError::VisitorForbidden);
}

// ---------------------------------------------------------------------------
// UpdateProfile
// ---------------------------------------------------------------------------

fn profile_updated(changes: ProfileChanges, at: i64) -> Event {
    let ProfileChanges { nickname, avatar, sex, sign, area } = changes;
    Event::ProfileUpdated(ProfileUpdated { user_id: ID, nickname, avatar, sex, sign, area, at })
}

fn all_profile_fields() -> ProfileChanges {
    ProfileChanges {
        nickname: Some("Alice".into()),
        avatar: Some("https://cdn.example.com/a.png".into()),
        sex: Some("female".into()),
        sign: Some("hi".into()),
        area: Some("Shanghai".into()),
    }
}

#[test]
fn a_user_updates_any_profile_field() {
    given(a_user())
        .when(Command::UpdateProfile { changes: all_profile_fields(), at: T1 })
        .then(vec![profile_updated(all_profile_fields(), T1)]);
    let only_sign = ProfileChanges { sign: Some("new sign".into()), ..Default::default() };
    given(a_user()).when(Command::UpdateProfile { changes: only_sign.clone(), at: T1 }).then(vec![profile_updated(only_sign, T1)]);
}

#[test]
fn a_visitor_may_change_only_nickname_and_avatar() {
    let nick_and_avatar = ProfileChanges { nickname: Some("Al".into()), avatar: Some("a.png".into()), ..Default::default() };
    given(a_visitor())
        .when(Command::UpdateProfile { changes: nick_and_avatar.clone(), at: T1 })
        .then(vec![profile_updated(nick_and_avatar, T1)]);

    let forbidden = [
        ProfileChanges { sex: Some("male".into()), ..Default::default() },
        ProfileChanges { sign: Some("hi".into()), ..Default::default() },
        ProfileChanges { area: Some("Beijing".into()), ..Default::default() },
        all_profile_fields(),
    ];
    for changes in forbidden {
        given(a_visitor()).when(Command::UpdateProfile { changes, at: T1 }).then_err(AccountError::VisitorForbidden);
    }
}

#[test]
fn an_empty_profile_change_is_refused() {
    given(a_user()).when(Command::UpdateProfile { changes: ProfileChanges::default(), at: T1 }).then_err(AccountError::NothingToChange);
    given(a_visitor()).when(Command::UpdateProfile { changes: ProfileChanges::default(), at: T1 }).then_err(AccountError::NothingToChange);
}

// ---------------------------------------------------------------------------
// ChangeSettings
// ---------------------------------------------------------------------------

#[test]
fn settings_change_and_are_folded() {
    let state = given(a_user())
        .when(Command::ChangeSettings { userset: some_userset(), raw: None, at: T1 })
        .then(vec![Event::UserSettingsChanged(UserSettingsChanged { user_id: ID, userset: some_userset(), raw: None, at: T1 })]);
    assert_eq!(account(state).userset, some_userset());

    // Visitors have settings too.
    given(a_visitor())
        .when(Command::ChangeSettings { userset: UserSet::default(), raw: None, at: T1 })
        .then(vec![Event::UserSettingsChanged(UserSettingsChanged { user_id: ID, userset: UserSet::default(), raw: None, at: T1 })]);
}

// ---------------------------------------------------------------------------
// evolve
// ---------------------------------------------------------------------------

#[test]
fn a_newer_login_replaces_the_session() {
    let state = fold(None, &[user_registered(), logged_in(s(1), T0), logged_in(s(2), T1)]);
    assert_eq!(account(state).session, Some(s(2)));
}

#[test]
fn logging_out_of_the_live_session_clears_it_but_a_stale_logout_does_not() {
    let state = fold(None, &[user_registered(), logged_in(s(1), T0), logged_out(s(1), T1)]);
    assert_eq!(account(state).session, None);

    let state = fold(None, &[user_registered(), logged_in(s(1), T0), logged_in(s(2), T1), logged_out(s(1), T2)]);
    assert_eq!(account(state).session, Some(s(2)));
}

#[test]
fn disabling_clears_the_session_and_enabling_keeps_it() {
    let state = fold(None, &[user_registered(), logged_in(s(1), T0), status(false, T1)]);
    let user = account(state);
    assert!(!user.active);
    assert_eq!(user.session, None);

    let state = fold(None, &[user_registered(), logged_in(s(1), T0), status(true, T1)]);
    let user = account(state);
    assert!(user.active);
    assert_eq!(user.session, Some(s(1)));
}

#[test]
fn evolve_ignores_what_it_does_not_fold() {
    let before = fold(None, &a_user());
    let after = fold(
        before.clone(),
        &[
            profile_updated(all_profile_fields(), T1),
            user_registered(),
            Event::UsernameClaimed(UsernameClaimed { username: "x_y_z_w".into(), user_id: UserId(9), released_from: None }),
            Event::DeviceBound(DeviceBound { fingerprint: "fp".into(), user_id: UserId(9) }),
        ],
    );
    assert_eq!(after, before);
}

// ---------------------------------------------------------------------------
// Claims: username-* and device-* streams
// ---------------------------------------------------------------------------

fn claimed(user: i64) -> Event {
    Event::UsernameClaimed(UsernameClaimed { username: "alice_01".into(), user_id: UserId(user), released_from: None })
}

fn bound(user: i64) -> Event {
    Event::DeviceBound(DeviceBound { fingerprint: "fp-3f9a0c".into(), user_id: UserId(user) })
}

fn claim_state(events: &[Event]) -> ClaimState {
    events.iter().fold(None, account::evolve_claim)
}

#[test]
fn a_free_username_is_claimed() {
    assert_eq!(account::claim_username(&None, &name("alice_01"), UserId(1)), Ok(vec![claimed(1)]));
}

#[test]
fn a_claimed_username_is_refused_naming_the_holder() {
    let state = claim_state(&[claimed(1)]);
    assert_eq!(account::claim_username(&state, &name("alice_01"), UserId(2)), Err(AlreadyClaimed(UserId(1))));
    // Even the holder cannot claim it twice.
    assert_eq!(account::claim_username(&state, &name("alice_01"), UserId(1)), Err(AlreadyClaimed(UserId(1))));
}

#[test]
fn a_device_held_by_a_visitor_stays_bound_to_it() {
    let state = claim_state(&[bound(1)]);
    assert_eq!(account::bind_device(Some(true), &state, &fingerprint(), UserId(2)), Err(AlreadyClaimed(UserId(1))));
}

#[test]
fn a_device_whose_visitor_upgraded_gets_a_fresh_visitor() {
    let state = claim_state(&[bound(1)]);
    assert_eq!(account::bind_device(Some(false), &state, &fingerprint(), UserId(2)), Ok(vec![bound(2)]));
}

#[test]
fn a_free_device_is_bound() {
    assert_eq!(account::bind_device(None, &None, &fingerprint(), UserId(1)), Ok(vec![bound(1)]));
}

#[test]
fn the_first_username_claim_wins() {
    assert_eq!(claim_state(&[]), None);
    assert_eq!(claim_state(&[claimed(1)]), Some(UserId(1)));
    assert_eq!(claim_state(&[claimed(1), claimed(2)]), Some(UserId(1)));
}

#[test]
fn the_latest_device_binding_wins() {
    assert_eq!(claim_state(&[bound(1)]), Some(UserId(1)));
    assert_eq!(claim_state(&[bound(1), bound(2)]), Some(UserId(2)));
    assert_eq!(claim_state(&[bound(1), bound(2), bound(3)]), Some(UserId(3)));
}

#[test]
fn claim_streams_ignore_account_events() {
    assert_eq!(claim_state(&[claimed(1), logged_in(s(1), T0), status(false, T1)]), Some(UserId(1)));
    assert_eq!(claim_state(&[user_registered()]), None);
}

#[test]
fn a_visitor_then_upgrade_then_new_visitor_flow() {
    // Device first bound to visitor 1; visitor 1 upgrades; the device gets visitor 2.
    let mut device_stream = account::bind_device(None, &None, &fingerprint(), UserId(1)).unwrap();
    let state = claim_state(&device_stream);
    assert_eq!(account::bind_device(Some(true), &state, &fingerprint(), UserId(2)), Err(AlreadyClaimed(UserId(1))));
    device_stream.extend(account::bind_device(Some(false), &state, &fingerprint(), UserId(2)).unwrap());
    assert_eq!(claim_state(&device_stream), Some(UserId(2)));
}

#[test]
fn a_deleted_accounts_name_is_taken_over_only_after_the_grace_period() {
    let name = Username::parse("alice_01").unwrap();
    let (old, new) = (UserId(1), UserId(2));
    assert_eq!(account::reclaim_username(old, None, 10_000, 0, &name, new), Err(AlreadyClaimed(old)), "a live holder keeps it");
    assert_eq!(account::reclaim_username(old, Some(5_000), 9_999, 5_000, &name, new), Err(AlreadyClaimed(old)));
    let taken = account::reclaim_username(old, Some(5_000), 10_000, 5_000, &name, new).unwrap();
    // The claim stream now names the new holder (a first claim never replaces one).
    let held = taken.iter().fold(account::evolve_claim(None, &claimed(1)), account::evolve_claim);
    assert_eq!(held, Some(new));
    assert_eq!(account::evolve_claim(Some(old), &claimed(3)), Some(old));
    let deleted = Event::UserDeleted(im_domain::event::UserDeleted { user_id: old, at: 5_000 });
    assert_eq!(account::evolve_deleted_at(None, &deleted), Some(5_000));
}

// Multi-device: one mobile and one desktop session

fn logged_in_to(slot: Slot, session: SessionId, at: i64) -> Event {
    Event::UserLoggedIn(UserLoggedIn { user_id: ID, session_id: session, slot: Some(slot), at })
}

/// A user with session 1 on the phone and session 2 on the desktop.
fn two_devices() -> Vec<Event> {
    let mut events = a_user();
    events.push(logged_in_to(Slot::Desktop, s(2), T1));
    events
}

#[test]
fn a_slot_login_ends_only_that_slots_session() {
    let state = given(a_user()).when(Command::LogIn { session: s(2), slot: Some(Slot::Desktop), at: T1 }).then(vec![logged_in_to(
        Slot::Desktop,
        s(2),
        T1,
    )]);
    let user = account(state.clone());
    assert_eq!((user.session, user.desktop_session), (Some(s(1)), Some(s(2))), "the phone's session stays live");
    assert!(user.is_live(s(1)) && user.is_live(s(2)));
    // A new phone login replaces the phone's session only.
    let state = fold(state, &[logged_in_to(Slot::Mobile, s(3), T2)]);
    let user = account(state.clone());
    assert_eq!((user.session, user.desktop_session), (Some(s(3)), Some(s(2))));
    // A login without a slot (the single-device rule) ends both.
    let user = account(fold(state, &[logged_in(s(4), T2)]));
    assert_eq!((user.session, user.desktop_session), (Some(s(4)), None));
}

#[test]
fn logging_out_ends_the_slot_holding_the_session() {
    let state = given(two_devices()).when(Command::LogOut { session: s(2), at: T2 }).then(vec![logged_out(s(2), T2)]);
    let user = account(state);
    assert_eq!((user.session, user.desktop_session), (Some(s(1)), None));
    let state = given(two_devices()).when(Command::LogOut { session: s(1), at: T2 }).then(vec![logged_out(s(1), T2)]);
    let user = account(state);
    assert_eq!((user.session, user.desktop_session), (None, Some(s(2))));
}

#[test]
fn a_password_change_ends_the_other_devices_session_and_a_reset_both() {
    let state = given(two_devices())
        .when(Command::ChangePassword { password_hash: hash("hash-2"), keep: s(2), at: T2 })
        .then(vec![Event::PasswordChanged(PasswordChanged { user_id: ID, password_hash: "hash-2".into(), at: T2 }), logged_out(s(1), T2)]);
    let user = account(state);
    assert_eq!((user.session, user.desktop_session), (None, Some(s(2))), "the caller's session stays");
    let user = account(given(two_devices()).when(Command::ResetPassword { password_hash: hash("hash-3"), at: T2 }).ok());
    assert_eq!((user.session, user.desktop_session), (None, None));
    let mut disabled = two_devices();
    disabled.push(status(false, T2));
    let user = account(given(disabled).when(Command::SetActive { active: true, at: T2 }).ok());
    assert_eq!((user.session, user.desktop_session), (None, None), "disabling ended both");
}

//! The account aggregate (stream `user-<id>`), plus the two claim aggregates that keep
//! usernames and visitor devices unique (streams `username-<name>`, `device-<fp>`).
//!
//! `decide` holds every rule; `evolve` only folds facts and never fails.

use crate::event::{
    DeviceBound, DeviceInfo, Event, PasswordChanged, ProfileUpdated, Role, Slot, UserLoggedIn, UserLoggedOut, UserRegistered,
    UserSettingsChanged, UserStatusChanged, UsernameClaimed, VisitorUpgraded,
};
use crate::ids::{SessionId, UserId};
use crate::userset::UserSet;
use crate::values::{DeviceFingerprint, PasswordHash, Username};
use uuid::Uuid;

/// What the log says about one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub uuid: Uuid,
    pub username: String,
    pub role: Role,
    pub active: bool,
    pub password_hash: Option<PasswordHash>,
    /// The live session: the only one under the single-device rule, else the mobile slot's.
    pub session: Option<SessionId>,
    /// The desktop slot's live session (`IM_MULTI_DEVICE` only).
    pub desktop_session: Option<SessionId>,
    pub userset: UserSet,
    pub device_fingerprint: Option<String>,
}

impl Account {
    /// The sessions live now: at most one, or one per slot with `IM_MULTI_DEVICE`.
    pub fn live_sessions(&self) -> impl Iterator<Item = SessionId> + use<> {
        self.session.into_iter().chain(self.desktop_session)
    }

    pub fn is_live(&self, session: SessionId) -> bool {
        self.session == Some(session) || self.desktop_session == Some(session)
    }
}

/// `None` until the account is registered.
pub type State = Option<Account>;

/// Profile fields a user may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub sex: Option<String>,
    pub sign: Option<String>,
    pub area: Option<String>,
}

impl ProfileChanges {
    fn only_nickname_and_avatar(&self) -> bool {
        self.sex.is_none() && self.sign.is_none() && self.area.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Register a user and log them in (regChat).
    Register {
        id: UserId,
        uuid: Uuid,
        username: Username,
        password_hash: PasswordHash,
        session: SessionId,
        at: i64,
    },
    /// Create a visitor bound to a device and log it in (visitorRegister).
    RegisterVisitor {
        id: UserId,
        uuid: Uuid,
        fingerprint: DeviceFingerprint,
        device: DeviceInfo,
        session: SessionId,
        at: i64,
    },
    /// Turn this visitor into a registered user in place (visitorregChat).
    UpgradeVisitor {
        username: Username,
        password_hash: PasswordHash,
        session: SessionId,
        at: i64,
    },
    /// Start a new session; the previous one ends (of `slot` only, when given: the other
    /// slot's stays live). The password was checked by the caller.
    LogIn {
        session: SessionId,
        slot: Option<Slot>,
        at: i64,
    },
    LogOut {
        session: SessionId,
        at: i64,
    },
    /// A new password; every live session but `keep` (the caller's) ends.
    ChangePassword {
        password_hash: PasswordHash,
        keep: SessionId,
        at: i64,
    },
    /// Operator: a new password without the old one; the live session ends with it.
    ResetPassword {
        password_hash: PasswordHash,
        at: i64,
    },
    UpdateProfile {
        changes: ProfileChanges,
        at: i64,
    },
    ChangeSettings {
        userset: UserSet,
        /// The text `userset` was parsed from, kept as it was sent.
        raw: Option<String>,
        at: i64,
    },
    SetActive {
        active: bool,
        at: i64,
    },
    /// Operator: delete the account.
    Delete {
        at: i64,
    },
    /// Operator: a new login name (claimed by the caller in the same append).
    Rename {
        username: Username,
        at: i64,
    },
}

/// Why an account command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already registered")]
    AlreadyRegistered,
    #[error("no such account")]
    NotRegistered,
    #[error("the account is disabled")]
    Disabled,
    #[error("only a visitor can do this")]
    NotAVisitor,
    #[error("a visitor cannot do this")]
    VisitorForbidden,
    #[error("this session is not the live one")]
    StaleSession,
    #[error("nothing to change")]
    NothingToChange,
}

pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, AccountError> {
    let Some(account) = state else {
        return match command {
            Command::Register { id, uuid, username, password_hash, session, at } => Ok(vec![
                Event::UserRegistered(UserRegistered {
                    user_id: id,
                    uuid,
                    username: username.as_str().to_owned(),
                    nickname: String::new(),
                    role: Role::User,
                    password_hash: Some(password_hash.0),
                    device_fingerprint: None,
                    device: None,
                    at,
                }),
                Event::UserLoggedIn(UserLoggedIn { user_id: id, session_id: session, slot: None, at }),
            ]),
            Command::RegisterVisitor { id, uuid, fingerprint, device, session, at } => Ok(vec![
                Event::UserRegistered(UserRegistered {
                    user_id: id,
                    uuid,
                    username: Username::for_visitor(id).as_str().to_owned(),
                    nickname: format!("游客{id}"),
                    role: Role::Visitor,
                    password_hash: None,
                    device_fingerprint: Some(fingerprint.as_str().to_owned()),
                    device: Some(device),
                    at,
                }),
                Event::UserLoggedIn(UserLoggedIn { user_id: id, session_id: session, slot: None, at }),
            ]),
            _ => Err(AccountError::NotRegistered),
        };
    };
    let user_id = account.id;
    // An operator may always re-enable; everything else needs an active account.
    if !account.active && !matches!(command, Command::SetActive { .. } | Command::Delete { .. }) {
        return Err(AccountError::Disabled);
    }
    match command {
        Command::Register { .. } | Command::RegisterVisitor { .. } => Err(AccountError::AlreadyRegistered),
        Command::UpgradeVisitor { username, password_hash, session, at } => {
            if account.role != Role::Visitor {
                return Err(AccountError::NotAVisitor);
            }
            Ok(vec![
                Event::VisitorUpgraded(VisitorUpgraded {
                    user_id,
                    username: username.as_str().to_owned(),
                    password_hash: password_hash.0,
                    at,
                }),
                Event::UserLoggedIn(UserLoggedIn { user_id, session_id: session, slot: None, at }),
            ])
        }
        Command::LogIn { session, slot, at } => Ok(vec![Event::UserLoggedIn(UserLoggedIn { user_id, session_id: session, slot, at })]),
        Command::LogOut { session, at } => {
            if !account.is_live(session) {
                return Err(AccountError::StaleSession);
            }
            Ok(vec![Event::UserLoggedOut(UserLoggedOut { user_id, session_id: session, at })])
        }
        Command::ChangePassword { password_hash, keep, at } => {
            if account.role == Role::Visitor {
                return Err(AccountError::VisitorForbidden);
            }
            let mut events = vec![Event::PasswordChanged(PasswordChanged { user_id, password_hash: password_hash.0, at })];
            let others = account.live_sessions().filter(|s| *s != keep);
            events.extend(others.map(|session_id| Event::UserLoggedOut(UserLoggedOut { user_id, session_id, at })));
            Ok(events)
        }
        Command::ResetPassword { password_hash, at } => {
            if account.role == Role::Visitor {
                return Err(AccountError::VisitorForbidden);
            }
            let mut events = vec![Event::PasswordChanged(PasswordChanged { user_id, password_hash: password_hash.0, at })];
            let live = account.live_sessions();
            events.extend(live.map(|session_id| Event::UserLoggedOut(UserLoggedOut { user_id, session_id, at })));
            Ok(events)
        }
        Command::UpdateProfile { changes, at } => {
            if account.role == Role::Visitor && !changes.only_nickname_and_avatar() {
                return Err(AccountError::VisitorForbidden);
            }
            if changes == ProfileChanges::default() {
                return Err(AccountError::NothingToChange);
            }
            let ProfileChanges { nickname, avatar, sex, sign, area } = changes;
            Ok(vec![Event::ProfileUpdated(ProfileUpdated { user_id, nickname, avatar, sex, sign, area, at })])
        }
        Command::ChangeSettings { userset, raw, at } => {
            Ok(vec![Event::UserSettingsChanged(UserSettingsChanged { user_id, userset, raw, at })])
        }
        Command::Delete { at } => Ok(vec![Event::UserDeleted(crate::event::UserDeleted { user_id, at })]),
        Command::Rename { username, at } => {
            if account.role == Role::Visitor {
                return Err(AccountError::VisitorForbidden);
            }
            Ok(vec![Event::UsernameChanged(crate::event::UsernameChanged { user_id, username: username.as_str().to_owned(), at })])
        }
        Command::SetActive { active, at } => {
            if account.active == active {
                return Ok(vec![]);
            }
            Ok(vec![Event::UserStatusChanged(UserStatusChanged { user_id, active, at })])
        }
    }
}

pub fn evolve(state: State, event: &Event) -> State {
    match (state, event) {
        (None, Event::UserRegistered(e)) => Some(Account {
            id: e.user_id,
            uuid: e.uuid,
            username: e.username.clone(),
            role: e.role,
            active: true,
            password_hash: e.password_hash.clone().map(PasswordHash),
            session: None,
            desktop_session: None,
            userset: UserSet::default(),
            device_fingerprint: e.device_fingerprint.clone(),
        }),
        (Some(_), Event::UserDeleted(_)) => None,
        (Some(mut a), event) => {
            match event {
                Event::VisitorUpgraded(e) => {
                    a.role = Role::User;
                    a.username = e.username.clone();
                    a.password_hash = Some(PasswordHash(e.password_hash.clone()));
                }
                Event::UserLoggedIn(e) => match e.slot {
                    None => (a.session, a.desktop_session) = (Some(e.session_id), None),
                    Some(Slot::Mobile) => a.session = Some(e.session_id),
                    Some(Slot::Desktop) => a.desktop_session = Some(e.session_id),
                },
                Event::UsernameChanged(e) => a.username = e.username.clone(),
                Event::UserLoggedOut(e) => {
                    // It ends the slot that holds its session, if any still does.
                    for slot in [&mut a.session, &mut a.desktop_session] {
                        if *slot == Some(e.session_id) {
                            *slot = None;
                        }
                    }
                }
                Event::PasswordChanged(e) => a.password_hash = Some(PasswordHash(e.password_hash.clone())),
                Event::UserSettingsChanged(e) => a.userset = e.userset,
                Event::UserStatusChanged(e) => {
                    a.active = e.active;
                    if !e.active {
                        (a.session, a.desktop_session) = (None, None);
                    }
                }
                _ => {}
            }
            Some(a)
        }
        (None, _) => None,
    }
}

/// Who holds a claimed name or device: the state of a `username-*` or `device-*` stream.
pub type ClaimState = Option<UserId>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("already claimed by user {0}")]
pub struct AlreadyClaimed(pub UserId);

/// Claim a username for a user; fails when someone holds it already.
pub fn claim_username(state: &ClaimState, username: &Username, user_id: UserId) -> Result<Vec<Event>, AlreadyClaimed> {
    match state {
        Some(holder) => Err(AlreadyClaimed(*holder)),
        None => Ok(vec![username_claimed(username, user_id, None)]),
    }
}

/// The claim of `username` by `user_id`, taking it over from `released_from` when that
/// deleted account held it.
pub fn username_claimed(username: &Username, user_id: UserId, released_from: Option<UserId>) -> Event {
    Event::UsernameClaimed(UsernameClaimed { username: username.as_str().to_owned(), user_id, released_from })
}

/// May a name its holder gave up by being deleted (at `deleted_at`) be taken over now?
/// Once `grace_ms` have passed since; a live holder, or one deleted more recently, keeps it.
pub fn reclaimable(holder: UserId, deleted_at: Option<i64>, now: i64, grace_ms: i64) -> Result<(), AlreadyClaimed> {
    match deleted_at {
        Some(at) if now >= at.saturating_add(grace_ms) => Ok(()),
        _ => Err(AlreadyClaimed(holder)),
    }
}

/// Take over a username its holder gave up by being deleted (at `deleted_at`), once
/// `grace_ms` have passed since; a live holder, or one deleted more recently, keeps it.
pub fn reclaim_username(
    holder: UserId,
    deleted_at: Option<i64>,
    now: i64,
    grace_ms: i64,
    username: &Username,
    user_id: UserId,
) -> Result<Vec<Event>, AlreadyClaimed> {
    reclaimable(holder, deleted_at, now, grace_ms)?;
    Ok(vec![username_claimed(username, user_id, Some(holder))])
}

/// When the account was deleted, folded from its stream (`None`: it was not).
pub fn evolve_deleted_at(state: Option<i64>, event: &Event) -> Option<i64> {
    match event {
        Event::UserDeleted(e) => Some(e.at),
        _ => state,
    }
}

/// Bind a device fingerprint to a new visitor. A device stays bound to its visitor
/// while that account is still a visitor; once the visitor upgraded to a registered
/// user the device gets a fresh visitor (a fingerprint must never log into a
/// password-protected account). `holder_is_visitor` is `None` when nobody holds it.
pub fn bind_device(
    holder_is_visitor: Option<bool>,
    holder: &ClaimState,
    fingerprint: &DeviceFingerprint,
    user_id: UserId,
) -> Result<Vec<Event>, AlreadyClaimed> {
    match (holder, holder_is_visitor) {
        (Some(holder), Some(true)) => Err(AlreadyClaimed(*holder)),
        _ => Ok(vec![Event::DeviceBound(DeviceBound { fingerprint: fingerprint.as_str().to_owned(), user_id })]),
    }
}

pub fn evolve_claim(state: ClaimState, event: &Event) -> ClaimState {
    match event {
        // A take-over replaces the deleted holder; a first claim never replaces anyone.
        Event::UsernameClaimed(e) if e.released_from.is_some() => Some(e.user_id),
        Event::UsernameClaimed(e) => state.or(Some(e.user_id)),
        Event::DeviceBound(e) => Some(e.user_id),
        _ => state,
    }
}

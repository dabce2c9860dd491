//! Account commands: registration and login (users and visitors), logout, password,
//! profile, settings and the operator's enable/disable.

use crate::auth::{Passwords, Tokens};
use crate::store::{Deciding, Decision, Loaded, OnConflict, Write, commit, decide_and_append, execute, execute_async, load, stream_append};
use crate::{CommandError, Ctx, now_millis};
use im_domain::account::{self, Account, AccountError, ClaimState, Command, ProfileChanges};
use im_domain::event::{DeviceInfo, Role, SystemMessageSent};
use im_domain::userset::UserSet;
use im_domain::values::{DeviceFingerprint, Password, Username};
use im_domain::{Event, SessionId, Slot, StreamId, UserId};
use im_eventlog::{ExpectedVersion, SharedEventStore};
use uuid::Uuid;

/// A new live session: the token to hand out and the log position to wait for.
#[derive(Debug, Clone)]
pub struct SessionStarted {
    pub user_id: UserId,
    pub session: SessionId,
    pub role: Role,
    pub token: String,
    pub position: i64,
}

#[derive(Clone)]
pub struct Accounts {
    store: SharedEventStore,
    passwords: Passwords,
    tokens: Tokens,
    /// The avatar of messages from the system.
    system_avatar: String,
    /// How long a deleted account's username stays unavailable (`IM_USERNAME_GRACE_SECS`).
    username_grace: std::time::Duration,
}

/// The default of `IM_USERNAME_GRACE_SECS`: 30 days.
pub const DEFAULT_USERNAME_GRACE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// How a username can be claimed: from scratch, or taken over from a deleted account at
/// the claim stream's version.
#[derive(Debug, Clone, Copy)]
struct Claimable {
    expected: ExpectedVersion,
    released_from: Option<UserId>,
}

/// The reference's avatar for messages from the system (`IM_SYSTEM_AVATAR`).
pub const DEFAULT_SYSTEM_AVATAR: &str = "https://docs-51yrc-com.oss-cn-hangzhou.aliyuncs.com/chat/kefu.png";

/// What a new visitor is told once, kept in their inbox.
pub const VISITOR_REMINDER: &str = "欢迎您,登录可以获取更多功能!";

impl Accounts {
    pub fn new(store: SharedEventStore, tokens: Tokens, passwords: Passwords) -> Self {
        Self { store, passwords, tokens, system_avatar: DEFAULT_SYSTEM_AVATAR.to_owned(), username_grace: DEFAULT_USERNAME_GRACE }
    }

    /// A deleted account's username may be taken again this long after the deletion.
    pub fn with_username_grace(self, username_grace: std::time::Duration) -> Self {
        Self { username_grace, ..self }
    }

    /// Messages from the system show this avatar.
    pub fn with_system_avatar(self, system_avatar: String) -> Self {
        Self { system_avatar, ..self }
    }

    pub fn system_avatar(&self) -> &str {
        &self.system_avatar
    }

    /// Sends one user a message from the system (kept in their inbox).
    pub async fn send_system_message(&self, ctx: &Ctx, message: SystemMessageSent) -> Result<i64, CommandError> {
        let stream = StreamId::system(message.message_id).to_string();
        commit(&*self.store, vec![Write::new_stream(ctx, stream, &[Event::SystemMessageSent(message)], CommandError::Contended)]).await
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    async fn load_account(&self, id: UserId) -> Result<Loaded<account::State>, CommandError> {
        load(&*self.store, StreamId::user(id).as_str(), None, account::evolve).await
    }

    async fn load_claim(&self, stream: &StreamId) -> Result<Loaded<ClaimState>, CommandError> {
        load(&*self.store, stream.as_str(), None, account::evolve_claim).await
    }

    /// Decides a command on a user's account and appends the result, retrying on
    /// concurrent changes. Returns the events and the position to wait for.
    async fn execute(
        &self,
        ctx: &Ctx,
        id: UserId,
        mut make: impl FnMut(&Account) -> Result<Command, CommandError>,
    ) -> Result<(Vec<Event>, i64), CommandError> {
        decide_and_append(&*self.store, ctx, StreamId::user(id).as_str(), None, account::evolve, |state| {
            let Some(account) = state else { return Err(CommandError::UnknownUser) };
            Ok(account::decide(state, make(account)?)?)
        })
        .await
    }

    fn started(&self, user_id: UserId, session: SessionId, role: Role, position: i64, now: i64) -> Result<SessionStarted, CommandError> {
        let token = self.tokens.issue(user_id, session, role, now)?;
        Ok(SessionStarted { user_id, session, role, token, position })
    }

    /// regChat: register a user and log them in.
    pub async fn register(&self, ctx: &Ctx, username: &str, password: &str) -> Result<SessionStarted, CommandError> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let claimable = self.claimable(&username).await?;
        let password_hash = self.passwords.hash(&password).await?;
        let id = UserId(self.store.next_id("user").await?);
        // The new user is the one acting (docs/events.md: `metadata.actor`).
        let ctx = &Ctx { actor: Some(id.0), ..ctx.clone() };
        let session = SessionId(Uuid::new_v4());
        let now = now_millis();
        let (_, _, position) = execute(&*self.store, ctx, StreamId::user(id).as_str(), None, account::evolve, |state| {
            let register = Command::Register {
                id,
                uuid: Uuid::new_v4(),
                username: username.clone(),
                password_hash: password_hash.clone(),
                session,
                at: now,
            };
            Ok(Decision { events: account::decide(state, register)?, also: vec![self.claim(ctx, &username, id, claimable)], answer: () })
        })
        .await?;
        self.started(id, session, Role::User, position, now)
    }

    /// Whether `username` can be claimed: nobody holds it, or the account that did was
    /// deleted longer ago than the grace period. Otherwise the command fails as taken.
    async fn claimable(&self, username: &Username) -> Result<Claimable, CommandError> {
        let claim = self.load_claim(&StreamId::username(username)).await?;
        let Some(holder) = claim.state else { return Ok(Claimable { expected: ExpectedVersion::NoStream, released_from: None }) };
        let deleted_at = load(&*self.store, StreamId::user(holder).as_str(), None, account::evolve_deleted_at).await?.state;
        let grace = i64::try_from(self.username_grace.as_millis()).unwrap_or(i64::MAX);
        account::reclaimable(holder, deleted_at, now_millis(), grace).map_err(|_| CommandError::UsernameTaken)?;
        Ok(Claimable { expected: ExpectedVersion::after(claim.version), released_from: Some(holder) })
    }

    /// The claim on `username` for `id`, appended with the account's events: if the name
    /// was claimed meanwhile (the claim stream moved), the command fails as taken.
    fn claim(&self, ctx: &Ctx, username: &Username, id: UserId, claimable: Claimable) -> Write {
        let claim = account::username_claimed(username, id, claimable.released_from);
        Write {
            append: stream_append(ctx, StreamId::username(username).to_string(), claimable.expected, &[claim]),
            on_conflict: OnConflict::Fail(CommandError::UsernameTaken),
        }
    }

    /// loginChat / visitorloginChat: check the password and start a new session, which
    /// ends the previous one — of `slot` only, when given (`IM_MULTI_DEVICE`).
    pub async fn login(&self, ctx: &Ctx, username: &str, password: &str, slot: Option<Slot>) -> Result<SessionStarted, CommandError> {
        let username = Username::parse(username).map_err(|_| CommandError::WrongCredentials)?;
        let claim = self.load_claim(&StreamId::username(&username)).await?;
        let Some(id) = claim.state else { return Err(CommandError::WrongCredentials) };
        let loaded = self.load_account(id).await?;
        let Some(account) = loaded.state else { return Err(CommandError::WrongCredentials) };
        // A name the account gave up (an operator renamed it) no longer logs in.
        if account.username.to_lowercase() != username.as_str().to_lowercase() {
            return Err(CommandError::WrongCredentials);
        }
        let Some(hash) = &account.password_hash else { return Err(CommandError::WrongCredentials) };
        if !self.passwords.verify(password, hash).await? {
            return Err(CommandError::WrongCredentials);
        }
        let ctx = Ctx { actor: Some(id.0), ..ctx.clone() };
        self.log_in(&ctx, id, slot).await
    }

    async fn log_in(&self, ctx: &Ctx, id: UserId, slot: Option<Slot>) -> Result<SessionStarted, CommandError> {
        let session = SessionId(Uuid::new_v4());
        let now = now_millis();
        let mut role = Role::User;
        let (_, position) = self
            .execute(ctx, id, |a| {
                role = a.role;
                Ok(Command::LogIn { session, slot, at: now })
            })
            .await?;
        self.started(id, session, role, position, now)
    }

    /// visitorRegister: the visitor bound to this device, logged in; created on first use.
    pub async fn visitor_register(&self, ctx: &Ctx, fingerprint: &str, device: DeviceInfo) -> Result<SessionStarted, CommandError> {
        let fingerprint = DeviceFingerprint::parse(fingerprint)?;
        let device_stream = StreamId::device(&fingerprint);
        // The visitor this device would become is the one acting; when the device already
        // has its visitor, nothing is appended under this id and that visitor logs in.
        let id = UserId(self.store.next_id("user").await?);
        let ctx = &Ctx { actor: Some(id.0), ..ctx.clone() };
        // The device's stream is the one decided on: another request binding it first
        // makes this one decide again, and find that visitor to log in.
        let decide = |claim: ClaimState| -> Deciding<'_, _> {
            let (fingerprint, device) = (fingerprint.clone(), device.clone());
            Box::pin(async move {
                let holder_is_visitor = match claim {
                    Some(holder) => Some(matches!(self.load_account(holder).await?.state, Some(Account { role: Role::Visitor, .. }))),
                    None => None,
                };
                let bind = match account::bind_device(holder_is_visitor, &claim, &fingerprint, id) {
                    Ok(events) => events,
                    // The device already has its visitor: log that one in.
                    Err(account::AlreadyClaimed(holder)) => return Ok(Decision::answer(Err(holder))),
                };
                let session = SessionId(Uuid::new_v4());
                let now = now_millis();
                let registered = account::decide(
                    &None,
                    Command::RegisterVisitor { id, uuid: Uuid::new_v4(), fingerprint: fingerprint.clone(), device, session, at: now },
                )?;
                // The reminder to log in comes with the registration, once, and stays in the
                // visitor's inbox.
                let reminder = self.visitor_reminder(id, &registered, now);
                let also = vec![
                    Write::new_stream(ctx, StreamId::user(id).to_string(), &registered, CommandError::Contended),
                    Write::new_stream(
                        ctx,
                        StreamId::system(reminder.message_id).to_string(),
                        &[Event::SystemMessageSent(reminder)],
                        CommandError::Contended,
                    ),
                ];
                Ok(Decision { events: bind, also, answer: Ok((id, session, now)) })
            })
        };
        let (outcome, _, position) = execute_async(&*self.store, ctx, device_stream.as_str(), None, account::evolve_claim, decide).await?;
        match outcome {
            Ok((id, session, now)) => self.started(id, session, Role::Visitor, position, now),
            Err(holder) => self.log_in(&Ctx { actor: Some(holder.0), ..ctx.clone() }, holder, None).await,
        }
    }

    /// The message a new visitor finds in their inbox.
    fn visitor_reminder(&self, id: UserId, registered: &[Event], now: i64) -> SystemMessageSent {
        let to_name = registered
            .iter()
            .find_map(|e| match e {
                Event::UserRegistered(r) => Some(im_domain::values::display_name([r.nickname.as_str(), &r.username]).to_owned()),
                _ => None,
            })
            .unwrap_or_default();
        SystemMessageSent {
            message_id: Uuid::now_v7(),
            to: id,
            to_name,
            to_avatar: String::new(),
            from_key: None,
            from_name: "系统消息".into(),
            from_avatar: self.system_avatar.clone(),
            text: VISITOR_REMINDER.into(),
            redirect: None,
            at: now,
        }
    }

    /// visitorregChat: the visitor becomes a registered user in place (same id).
    pub async fn visitor_upgrade(&self, ctx: &Ctx, id: UserId, username: &str, password: &str) -> Result<SessionStarted, CommandError> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let claimable = self.claimable(&username).await?;
        let password_hash = self.passwords.hash(&password).await?;
        let session = SessionId(Uuid::new_v4());
        let now = now_millis();
        let (_, _, position) = execute(&*self.store, ctx, StreamId::user(id).as_str(), None, account::evolve, |state| {
            let upgrade = Command::UpgradeVisitor { username: username.clone(), password_hash: password_hash.clone(), session, at: now };
            Ok(Decision { events: account::decide(state, upgrade)?, also: vec![self.claim(ctx, &username, id, claimable)], answer: () })
        })
        .await?;
        self.started(id, session, Role::User, position, now)
    }

    /// logout: the session ends; its token stops working.
    pub async fn logout(&self, ctx: &Ctx, id: UserId, session: SessionId) -> Result<i64, CommandError> {
        let now = now_millis();
        Ok(self.execute(ctx, id, |_| Ok(Command::LogOut { session, at: now })).await?.1)
    }

    /// setPassword: the old password must match and the new one be typed twice (`[old,
    /// new, repeat]`). Every live session but `keep` (the caller's) ends.
    pub async fn set_password(&self, ctx: &Ctx, id: UserId, keep: SessionId, passwords: [&str; 3]) -> Result<i64, CommandError> {
        let [old, new, repeat] = passwords;
        let password = Password::parse(new)?;
        if new != repeat {
            return Err(CommandError::PasswordMismatch);
        }
        let loaded = self.load_account(id).await?;
        let Some(account) = loaded.state else { return Err(CommandError::UnknownUser) };
        if account.role == Role::Visitor {
            return Err(AccountError::VisitorForbidden.into());
        }
        let Some(hash) = &account.password_hash else { return Err(CommandError::WrongOldPassword) };
        if !self.passwords.verify(old, hash).await? {
            return Err(CommandError::WrongOldPassword);
        }
        let password_hash = self.passwords.hash(&password).await?;
        let now = now_millis();
        Ok(self.execute(ctx, id, |_| Ok(Command::ChangePassword { password_hash: password_hash.clone(), keep, at: now })).await?.1)
    }

    /// updateUserinfo: profile fields (visitors: nickname and avatar only).
    pub async fn update_profile(&self, ctx: &Ctx, id: UserId, changes: ProfileChanges) -> Result<i64, CommandError> {
        let now = now_millis();
        Ok(self.execute(ctx, id, |_| Ok(Command::UpdateProfile { changes: changes.clone(), at: now })).await?.1)
    }

    /// userset: store the settings JSON (missing keys take defaults).
    pub async fn change_settings(&self, ctx: &Ctx, id: UserId, raw: &str) -> Result<i64, CommandError> {
        let userset = UserSet::parse(raw).map_err(|e| CommandError::InvalidSettings(e.0))?;
        let now = now_millis();
        let raw = Some(raw.to_owned());
        Ok(self.execute(ctx, id, |_| Ok(Command::ChangeSettings { userset, raw: raw.clone(), at: now })).await?.1)
    }

    /// Operator: set a new password without the old one. The user's live session ends
    /// (logged out in the same append), so a stolen token dies with the old password.
    pub async fn reset_password(&self, ctx: &Ctx, id: UserId, new: &str) -> Result<i64, CommandError> {
        let password = Password::parse(new)?;
        let password_hash = self.passwords.hash(&password).await?;
        let now = now_millis();
        Ok(self.execute(ctx, id, |_| Ok(Command::ResetPassword { password_hash: password_hash.clone(), at: now })).await?.1)
    }

    /// Operator: change a user's login name (claimed like a registration).
    pub async fn rename(&self, ctx: &Ctx, id: UserId, username: &str) -> Result<i64, CommandError> {
        let username = Username::parse(username)?;
        let claimable = self.claimable(&username).await?;
        let (_, _, position) = execute(&*self.store, ctx, StreamId::user(id).as_str(), None, account::evolve, |state| {
            let rename = Command::Rename { username: username.clone(), at: now_millis() };
            Ok(Decision { events: account::decide(state, rename)?, also: vec![self.claim(ctx, &username, id, claimable)], answer: () })
        })
        .await?;
        Ok(position)
    }

    /// Operator: delete an account.
    pub async fn delete(&self, ctx: &Ctx, id: UserId) -> Result<i64, CommandError> {
        let now = now_millis();
        Ok(self.execute(ctx, id, |_| Ok(Command::Delete { at: now })).await?.1)
    }

    /// Operator: disable (ends the live session) or re-enable an account.
    pub async fn set_active(&self, ctx: &Ctx, id: UserId, active: bool) -> Result<i64, CommandError> {
        let now = now_millis();
        Ok(self.execute(ctx, id, |_| Ok(Command::SetActive { active, at: now })).await?.1)
    }
}

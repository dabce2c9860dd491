//! Group commands on the group's stream, and sending to a group (recipients are the
//! members at that moment, read from the same stream).
//!
//! A group's folded state is kept in memory for sending (a bounded cache keyed by group
//! id, with the stream version it was folded at). A message to the group carries that
//! version as a guard: if the group changed since, the append writes nothing, the state
//! is folded again and the send decided again — so the cache is never trusted past a
//! change, and nothing has to invalidate it.

use crate::messages::{Messages, Outgoing, Pending, Sent};
use crate::store::{Write, commit, decide_and_append, load};
use crate::{CommandError, Ctx, now_millis};
use im_domain::group::{self, Command, Consent, Named, State};
use im_domain::message::{ChatType, Mentions, MessageBody, Party, Permit, Quotes};
use im_domain::{GroupId, StreamId, UserId};
use im_eventlog::{ExpectedVersion, SharedEventStore, StreamAppend};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Groups whose state is kept for sending.
pub const GROUPS_KEPT: usize = 4096;
/// How often a group send is decided again when the group keeps changing under it.
const SEND_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct Groups {
    store: SharedEventStore,
    messages: Messages,
    max_size: usize,
    kept: Arc<Mutex<Kept>>,
}

/// group id → (stream version, state at that version).
type Kept = HashMap<GroupId, (i64, Arc<State>)>;

/// What the sender of a group message looks like in the group.
#[derive(Debug, Clone)]
pub struct GroupSender {
    pub id: UserId,
    /// My display name (nickname, else username), used when I have no in-group nickname.
    pub name: String,
    pub avatar: String,
}

impl Groups {
    pub fn new(store: SharedEventStore, max_size: usize) -> Self {
        Self { messages: Messages::new(store.clone()), store, max_size, kept: Arc::default() }
    }

    /// The group's state for sending: kept, or folded from its stream.
    async fn kept_state(&self, group_id: GroupId) -> Result<(i64, Arc<State>), CommandError> {
        if let Some(hit) = self.kept.lock().unwrap_or_else(|p| p.into_inner()).get(&group_id).cloned() {
            return Ok(hit);
        }
        let loaded = load(&*self.store, StreamId::group(group_id).as_str(), None, group::evolve).await?;
        let entry = (loaded.version, Arc::new(loaded.state));
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= GROUPS_KEPT {
            kept.clear();
        }
        // A newer version kept meanwhile wins.
        let slot = kept.entry(group_id).or_insert_with(|| entry.clone());
        if slot.0 < entry.0 {
            *slot = entry;
        }
        Ok(slot.clone())
    }

    fn forget(&self, group_id: GroupId) {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).remove(&group_id);
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    pub async fn load(&self, group_id: GroupId) -> Result<State, CommandError> {
        Ok(load(&*self.store, StreamId::group(group_id).as_str(), None, group::evolve).await?.state)
    }

    async fn execute(&self, ctx: &Ctx, group_id: GroupId, make: impl Fn() -> Command) -> Result<i64, CommandError> {
        let stream = StreamId::group(group_id);
        let (_, position) =
            decide_and_append(&*self.store, ctx, stream.as_str(), None, group::evolve, |g| Ok(group::decide(g, make())?)).await?;
        // This process's sends decide on the new state at once.
        self.forget(group_id);
        Ok(position)
    }

    /// create: `members` are the owner's friends (checked by the caller).
    pub async fn create(&self, ctx: &Ctx, owner: Named, name: String, members: Vec<Named>) -> Result<(GroupId, i64), CommandError> {
        let group_id = GroupId(self.store.next_id("group").await?);
        let events = group::decide(&None, Command::Create { group_id, owner, name, members, max_size: self.max_size, at: now_millis() })?;
        let position =
            commit(&*self.store, vec![Write::new_stream(ctx, StreamId::group(group_id).to_string(), &events, CommandError::Contended)])
                .await?;
        Ok((group_id, position))
    }

    pub async fn rename(&self, ctx: &Ctx, group_id: GroupId, by: Named, name: String) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Rename { by: by.clone(), name: name.clone(), at }).await
    }

    pub async fn set_remark(&self, ctx: &Ctx, group_id: GroupId, by: Named, remark: String) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetRemark { by: by.clone(), remark: remark.clone(), at }).await
    }

    pub async fn set_join_policy(&self, ctx: &Ctx, group_id: GroupId, by: Named, invite_confirm: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetJoinPolicy { by: by.clone(), invite_confirm, at }).await
    }

    /// `consent`: whether the invitee is the inviter's friend, or has blocked them (the
    /// caller reads it from the friend read model).
    pub async fn invite(
        &self,
        ctx: &Ctx,
        group_id: GroupId,
        by: Named,
        user: Named,
        user_active: bool,
        consent: Consent,
    ) -> Result<i64, CommandError> {
        let at = now_millis();
        let max_size = self.max_size;
        self.execute(ctx, group_id, || Command::Invite { by: by.clone(), user: user.clone(), user_active, consent, max_size, at }).await
    }

    /// The invited user accepts or declines.
    pub async fn answer_invitation(&self, ctx: &Ctx, group_id: GroupId, by: Named, agree: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        let max_size = self.max_size;
        self.execute(ctx, group_id, || Command::AnswerInvitation { by: by.clone(), agree, max_size, at }).await
    }

    pub async fn answer_join(&self, ctx: &Ctx, group_id: GroupId, by: Named, user: Named, agree: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        let max_size = self.max_size;
        self.execute(ctx, group_id, || Command::AnswerJoin { by: by.clone(), user: user.clone(), agree, max_size, at }).await
    }

    pub async fn remove(&self, ctx: &Ctx, group_id: GroupId, by: Named, user: Named) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Remove { by: by.clone(), user: user.clone(), at }).await
    }

    pub async fn set_nickname(&self, ctx: &Ctx, group_id: GroupId, by: Named, nickname: String) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetNickname { by: by.clone(), nickname: nickname.clone(), at }).await
    }

    pub async fn delete_or_quit(&self, ctx: &Ctx, group_id: GroupId, by: Named) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::DeleteOrQuit { by: by.clone(), at }).await
    }

    /// The owner mutes a member for `minutes` (`None`: until lifted), or lifts the mute.
    pub async fn mute(
        &self,
        ctx: &Ctx,
        group_id: GroupId,
        by: Named,
        user: Named,
        muted: bool,
        minutes: Option<i64>,
    ) -> Result<i64, CommandError> {
        let at = now_millis();
        let until = minutes.map(|m| at.saturating_add(m.saturating_mul(60_000)));
        self.execute(ctx, group_id, || Command::Mute { by: by.clone(), user: user.clone(), muted, until, at }).await
    }

    /// The owner appoints an admin (`admin`) or removes one.
    pub async fn set_admin(&self, ctx: &Ctx, group_id: GroupId, by: Named, user: Named, admin: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetAdmin { by: by.clone(), user: user.clone(), admin, at }).await
    }

    /// The owner hands the group to a member.
    pub async fn transfer(&self, ctx: &Ctx, group_id: GroupId, by: Named, to: Named) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Transfer { by: by.clone(), to: to.clone(), at }).await
    }

    /// The owner or an admin sets the group's picture.
    pub async fn set_avatar(&self, ctx: &Ctx, group_id: GroupId, by: Named, avatar: String) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetAvatar { by: by.clone(), avatar: avatar.clone(), at }).await
    }

    /// The owner lets new members read the history from before they joined, or not.
    pub async fn share_history(&self, ctx: &Ctx, group_id: GroupId, by: Named, shared: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::ShareHistory { by: by.clone(), shared, at }).await
    }

    /// The owner or an admin lets only the managers speak, or everyone again.
    pub async fn mute_all(&self, ctx: &Ctx, group_id: GroupId, by: Named, muted: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::MuteAll { by: by.clone(), muted, at }).await
    }

    /// An operator dissolves a group (`by`: the operator as members see them).
    pub async fn dissolve(&self, ctx: &Ctx, group_id: GroupId, by: Named) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Dissolve { by: by.clone(), at }).await
    }

    /// The owner, or an operator (`operator`), locks or unlocks a group.
    pub async fn lock(&self, ctx: &Ctx, group_id: GroupId, by: Named, operator: bool, locked: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Lock { by: by.clone(), operator, locked, at }).await
    }

    /// Sends to every member but the sender, if the group and my membership allow it;
    /// queued like [`Messages::submit`].
    pub async fn submit_send(&self, ctx: &Ctx, group_id: GroupId, message: GroupMessage) -> Result<Pending, CommandError> {
        let pending = self.submit_once(ctx, group_id, &message).await?;
        let (this, ctx) = (self.clone(), ctx.clone());
        Ok(Box::pin(async move {
            let mut pending = pending;
            for _ in 1..SEND_ATTEMPTS {
                match pending.await {
                    Err(CommandError::Stale(_)) => {
                        // The group changed after the send was decided: decide again.
                        this.forget(group_id);
                        pending = this.submit_once(&ctx, group_id, &message).await?;
                    }
                    other => return other,
                }
            }
            match pending.await {
                Err(CommandError::Stale(_)) => Err(CommandError::Contended),
                other => other,
            }
        }))
    }

    /// Sends and waits until it is durable.
    pub async fn send(&self, ctx: &Ctx, group_id: GroupId, message: GroupMessage) -> Result<Sent, CommandError> {
        self.submit_send(ctx, group_id, message).await?.await
    }

    async fn submit_once(&self, ctx: &Ctx, group_id: GroupId, message: &GroupMessage) -> Result<Pending, CommandError> {
        let sender = &message.sender;
        let now = now_millis();
        let (mut version, mut state) = self.kept_state(group_id).await?;
        let refused = |state: &State| {
            group::may_send(state, sender.id, now).and_then(|g| group::may_mention(g, sender.id, &message.mentions)).is_err()
        };
        if refused(&state) {
            // A refusal is decided on the group as it is now, not as it was kept (a mute
            // may have been lifted since, here or on another gateway).
            self.forget(group_id);
            (version, state) = self.kept_state(group_id).await?;
        }
        let group = group::may_send(&state, sender.id, now)?;
        let mentions = group::may_mention(group, sender.id, &message.mentions)?;
        let in_group = group.member(sender.id).map(|m| m.nickname.clone()).filter(|n| !n.is_empty());
        let recipients: Vec<UserId> = group.members.iter().map(|m| m.user_id).filter(|u| *u != sender.id).collect();
        // The compact group summary a group message carries (never the member list).
        let avatar = group.avatar.clone();
        let summary = json!({
            "id": group_id, "name": group.name, "avatar": avatar, "user_id": group.owner.0,
            "remark": group.remark, "invite_confirm": i64::from(group.invite_confirm),
            "status": group.status.code(), "create_time": group.created_at,
        });
        let outgoing = Outgoing {
            chat_type: ChatType::Group,
            from: Party { id: sender.id.0, name: in_group.unwrap_or_else(|| sender.name.clone()), avatar: sender.avatar.clone() },
            to: Party { id: group_id.0, name: group.name.clone(), avatar },
            recipients,
            body: message.body.clone(),
            options: message.options.clone(),
            client_msg_id: message.client_msg_id.clone(),
            group: Some(summary),
            mentions,
            quotes: message.quotes.clone(),
        };
        let guard = StreamAppend {
            stream_id: StreamId::group(group_id).to_string(),
            expected: ExpectedVersion::after(version),
            events: Vec::new(),
        };
        self.messages.submit(ctx, outgoing, Permit::Free, vec![guard]).await
    }
}

/// A message to a group, as the sender gave it.
#[derive(Debug, Clone)]
pub struct GroupMessage {
    pub sender: GroupSender,
    pub body: MessageBody,
    pub options: Value,
    pub client_msg_id: Option<String>,
    /// Who the message calls out (`@`).
    pub mentions: Mentions,
    /// The messages it replies to or forwards (checked by the caller).
    pub quotes: Quotes,
}

//! Group commands on the group's stream, and sending to a group (recipients are the
//! members at that moment, read from the same stream).

use crate::messages::{Messages, Outgoing, Sent};
use crate::store::{decide_and_append, load, stream_append};
use crate::{CommandError, Ctx, now_millis};
use im_domain::group::{self, Command, Named, State};
use im_domain::message::{ChatType, MessageBody, Party, Permit};
use im_domain::{StreamId, UserId};
use im_eventlog::{ExpectedVersion, SharedEventStore};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Groups {
    store: SharedEventStore,
    messages: Messages,
    max_size: usize,
}

/// What the sender of a group message looks like in the group.
#[derive(Debug, Clone)]
pub struct GroupSender {
    pub id: UserId,
    /// My display name (nickname, else username), used when I have no in-group nickname.
    pub name: String,
    pub avatar: String,
}

/// The group's display data for a message to it (from the read model).
#[derive(Debug, Clone)]
pub struct GroupFace {
    pub avatar: String,
    pub summary: Value,
}

impl Groups {
    pub fn new(store: SharedEventStore, max_size: usize) -> Self {
        Self { messages: Messages::new(store.clone()), store, max_size }
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    pub async fn load(&self, group_id: i64) -> Result<State, CommandError> {
        Ok(load(&*self.store, StreamId::group(group_id).as_str(), None, group::evolve).await?.state)
    }

    async fn execute(&self, ctx: &Ctx, group_id: i64, make: impl Fn() -> Command) -> Result<i64, CommandError> {
        let stream = StreamId::group(group_id);
        Ok(decide_and_append(&*self.store, ctx, stream.as_str(), None, group::evolve, |g| Ok(group::decide(g, make())?)).await?.1)
    }

    /// create: `members` are the owner's friends (checked by the caller).
    pub async fn create(&self, ctx: &Ctx, owner: Named, name: String, members: Vec<Named>) -> Result<(i64, i64), CommandError> {
        let group_id = self.store.next_id("group").await?;
        let events = group::decide(&None, Command::Create { group_id, owner, name, members, max_size: self.max_size, at: now_millis() })?;
        let append = stream_append(ctx, StreamId::group(group_id).to_string(), ExpectedVersion::NoStream, &events);
        let committed = self.store.append(vec![append]).await?;
        Ok((group_id, committed.last_position))
    }

    pub async fn rename(&self, ctx: &Ctx, group_id: i64, by: Named, name: String) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Rename { by: by.clone(), name: name.clone(), at }).await
    }

    pub async fn set_remark(&self, ctx: &Ctx, group_id: i64, by: Named, remark: String) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetRemark { by: by.clone(), remark: remark.clone(), at }).await
    }

    pub async fn set_join_policy(&self, ctx: &Ctx, group_id: i64, by: Named, invite_confirm: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetJoinPolicy { by: by.clone(), invite_confirm, at }).await
    }

    pub async fn invite(&self, ctx: &Ctx, group_id: i64, by: Named, user: Named, user_active: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        let max_size = self.max_size;
        self.execute(ctx, group_id, || Command::Invite { by: by.clone(), user: user.clone(), user_active, max_size, at }).await
    }

    pub async fn answer_join(&self, ctx: &Ctx, group_id: i64, by: Named, user: Named, agree: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        let max_size = self.max_size;
        self.execute(ctx, group_id, || Command::AnswerJoin { by: by.clone(), user: user.clone(), agree, max_size, at }).await
    }

    pub async fn remove(&self, ctx: &Ctx, group_id: i64, by: Named, user: Named) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Remove { by: by.clone(), user: user.clone(), at }).await
    }

    pub async fn set_nickname(&self, ctx: &Ctx, group_id: i64, by: Named, nickname: String) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::SetNickname { by: by.clone(), nickname: nickname.clone(), at }).await
    }

    pub async fn delete_or_quit(&self, ctx: &Ctx, group_id: i64, by: Named) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::DeleteOrQuit { by: by.clone(), at }).await
    }

    /// Operator: mute or unmute a member.
    pub async fn mute(&self, ctx: &Ctx, group_id: i64, by: Named, user: Named, muted: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Mute { by: by.clone(), user: user.clone(), muted, at }).await
    }

    /// Operator: lock or unlock a group.
    pub async fn lock(&self, ctx: &Ctx, group_id: i64, by: Named, locked: bool) -> Result<i64, CommandError> {
        let at = now_millis();
        self.execute(ctx, group_id, || Command::Lock { by: by.clone(), locked, at }).await
    }

    /// Sends to every member but the sender, if the group and my membership allow it.
    /// `face` gives the group's name, avatar and summary as the read model shows them.
    pub async fn send(
        &self,
        ctx: &Ctx,
        group_id: i64,
        sender: GroupSender,
        face: GroupFace,
        body: MessageBody,
        options: Value,
        client_msg_id: Option<String>,
    ) -> Result<Sent, CommandError> {
        let state = self.load(group_id).await?;
        let group = group::may_send(&state, sender.id)?;
        let in_group = group.member(sender.id).map(|m| m.nickname.clone()).filter(|n| !n.is_empty());
        let recipients: Vec<UserId> = group.members.iter().map(|m| m.user_id).filter(|u| *u != sender.id).collect();
        let mut summary = face.summary;
        // The stream is the truth for what the group is called right now.
        summary["name"] = json!(group.name);
        let outgoing = Outgoing {
            chat_type: ChatType::Group,
            from: Party { id: sender.id.0, name: in_group.unwrap_or(sender.name), avatar: sender.avatar },
            to: Party { id: group_id, name: group.name.clone(), avatar: face.avatar },
            recipients,
            body,
            options,
            client_msg_id,
            group: Some(summary),
        };
        self.messages.send(ctx, outgoing, Permit::Free).await
    }
}

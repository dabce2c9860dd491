//! Friend commands: requests and their answers, direct adds, each side's flags,
//! ending a friendship, and reports. All decisions between two users are taken on
//! their pair's stream, so concurrent or crossing requests are serialized there.

use crate::store::{Write, commit, decide_and_append, load};
use crate::{CommandError, Ctx, now_millis};
use im_domain::account::{self, Account};
use im_domain::event::ReportFiled;
use im_domain::friendship::{self, Choice, Command, Pair};
use im_domain::report::{self, ReportAction};
use im_domain::{Event, StreamId, UserId};
use im_eventlog::SharedEventStore;

/// Events appended by a command and the position to wait for.
#[derive(Debug, Clone)]
pub struct Appended {
    pub events: Vec<Event>,
    pub position: i64,
}

#[derive(Clone)]
pub struct Friends {
    store: SharedEventStore,
    /// How long after a refusal the same request may not be repeated (ms).
    retry_after: i64,
}

/// The default wait after a refused friend request: a day.
pub const DEFAULT_RETRY_AFTER_MS: i64 = 24 * 3600 * 1000;

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedKind {
    User,
    Group,
}

impl Friends {
    pub fn new(store: SharedEventStore) -> Self {
        Self { store, retry_after: DEFAULT_RETRY_AFTER_MS }
    }

    /// A refused request may be repeated to the same user only this long after.
    pub fn with_retry_after(self, retry_after: std::time::Duration) -> Self {
        Self { retry_after: i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX), ..self }
    }

    async fn account(&self, id: UserId) -> Result<Option<Account>, CommandError> {
        Ok(load(&*self.store, StreamId::user(id).as_str(), None, account::evolve).await?.state)
    }

    /// Decides on the pair's stream and appends, retrying when the stream moved.
    async fn on_pair(&self, ctx: &Ctx, a: UserId, b: UserId, mut make: impl FnMut() -> Command) -> Result<Appended, CommandError> {
        let stream = StreamId::friendship(a, b);
        let (events, position) = decide_and_append(&*self.store, ctx, stream.as_str(), Pair::default(), friendship::evolve, |pair| {
            Ok(friendship::decide(pair, make())?)
        })
        .await?;
        Ok(Appended { events, position })
    }

    /// applyfriend.
    pub async fn request(&self, ctx: &Ctx, from: UserId, to: UserId, choice: Choice) -> Result<(i64, Appended), CommandError> {
        let target_active = from != to && self.account(to).await?.is_some_and(|a| a.active);
        let request_id = self.store.next_id("friend_request").await?;
        let at = now_millis();
        let retry_after = self.retry_after;
        let appended = self
            .on_pair(ctx, from, to, || Command::Request { request_id, from, to, choice: choice.clone(), target_active, retry_after, at })
            .await?;
        Ok((request_id, appended))
    }

    /// handleapply: `from`/`to` name the request's pair (found through the read model);
    /// the pair's stream decides whether `by` may answer.
    pub async fn answer(
        &self,
        ctx: &Ctx,
        request_id: i64,
        pair: (UserId, UserId),
        by: UserId,
        agree: bool,
        choice: Choice,
    ) -> Result<Appended, CommandError> {
        let at = now_millis();
        self.on_pair(ctx, pair.0, pair.1, || Command::Answer { request_id, by, agree, choice: choice.clone(), at }).await
    }

    /// autoAddFriendAndAgree: friends at once when the target confirms nobody.
    pub async fn add_directly(&self, ctx: &Ctx, from: UserId, to: UserId, choice: Choice) -> Result<Appended, CommandError> {
        let target = if from == to { None } else { self.account(to).await? };
        let target_active = target.as_ref().is_some_and(|a| a.active);
        let target_confirms = target.as_ref().is_none_or(|a| a.userset.friendset.invite_confirm != 0);
        let at = now_millis();
        self.on_pair(ctx, from, to, || Command::AddDirectly { from, to, choice: choice.clone(), target_active, target_confirms, at }).await
    }

    /// setblackgoodfriend: blocks `other` (friend or not), or lifts my block.
    pub async fn toggle_black(&self, ctx: &Ctx, by: UserId, other: UserId) -> Result<Appended, CommandError> {
        let other_exists = by != other && self.account(other).await?.is_some();
        let at = now_millis();
        self.on_pair(ctx, by, other, || Command::ToggleBlack { by, other, other_exists, at }).await
    }

    pub async fn set_star(&self, ctx: &Ctx, by: UserId, friend: UserId, star: bool) -> Result<Appended, CommandError> {
        let at = now_millis();
        self.on_pair(ctx, by, friend, || Command::SetStar { by, star, at }).await
    }

    pub async fn set_visibility(
        &self,
        ctx: &Ctx,
        by: UserId,
        friend: UserId,
        lookme: bool,
        lookhim: bool,
    ) -> Result<Appended, CommandError> {
        let at = now_millis();
        self.on_pair(ctx, by, friend, || Command::SetVisibility { by, lookme, lookhim, at }).await
    }

    pub async fn set_remark(
        &self,
        ctx: &Ctx,
        by: UserId,
        friend: UserId,
        nickname: Option<String>,
        tags: Option<String>,
    ) -> Result<Appended, CommandError> {
        let at = now_millis();
        self.on_pair(ctx, by, friend, || Command::SetRemark { by, nickname: nickname.clone(), tags: tags.clone(), at }).await
    }

    /// deletegoodfriend: ends the friendship on both sides.
    pub async fn end(&self, ctx: &Ctx, by: UserId, friend: UserId) -> Result<Appended, CommandError> {
        let at = now_millis();
        self.on_pair(ctx, by, friend, || Command::End { by, at }).await
    }

    /// An operator handles a pending report, once, saying what they did about it.
    pub async fn handle_report(&self, ctx: &Ctx, report_id: i64, action: ReportAction, note: &str) -> Result<i64, CommandError> {
        let stream = StreamId::report(report_id).to_string();
        let at = now_millis();
        let (_, position) =
            decide_and_append(&*self.store, ctx, &stream, None, report::evolve, |state| Ok(report::handle(state, action, note, at)?))
                .await?;
        Ok(position)
    }

    /// report: stored for the operators. A reported user must exist.
    pub async fn report(
        &self,
        ctx: &Ctx,
        by: UserId,
        reported_id: i64,
        kind: ReportedKind,
        category: String,
        content: String,
    ) -> Result<(i64, Appended), CommandError> {
        if kind == ReportedKind::User && self.account(UserId(reported_id)).await?.is_none() {
            return Err(CommandError::UnknownUser);
        }
        let report_id = self.store.next_id("report").await?;
        let events = vec![Event::ReportFiled(ReportFiled {
            report_id,
            user_id: by,
            reported_id,
            reported_type: match kind {
                ReportedKind::User => "user".into(),
                ReportedKind::Group => "group".into(),
            },
            category,
            content,
            at: now_millis(),
        })];
        let position =
            commit(&*self.store, vec![Write::new_stream(ctx, StreamId::report(report_id).to_string(), &events, CommandError::Contended)])
                .await?;
        Ok((report_id, Appended { events, position }))
    }
}

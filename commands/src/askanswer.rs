//! Auto-reply pairs: create, update, delete on the owner's stream.

use crate::store::decide_and_append;
use crate::{CommandError, Ctx, now_millis};
use im_domain::askanswer::{self, Command, Pair, State};
use im_domain::{StreamId, UserId};
use im_eventlog::SharedEventStore;

#[derive(Clone)]
pub struct AskAnswers {
    store: SharedEventStore,
}

impl AskAnswers {
    pub fn new(store: SharedEventStore) -> Self {
        Self { store }
    }

    async fn execute(&self, ctx: &Ctx, owner: UserId, command: Command) -> Result<i64, CommandError> {
        let stream = StreamId::askanswer(owner);
        let decide = |state: &State| Ok(askanswer::decide(state, owner, command.clone())?);
        Ok(decide_and_append(&*self.store, ctx, stream.as_str(), State::new(), askanswer::evolve, decide).await?.1)
    }

    /// Returns the new pair's id and the position to wait for.
    pub async fn create(&self, ctx: &Ctx, owner: UserId, ask: &str, answer: &str) -> Result<(i64, i64), CommandError> {
        let pair = Pair::parse(ask, answer)?;
        let id = self.store.next_id("askanswer").await?;
        let position = self.execute(ctx, owner, Command::Create { id, pair, at: now_millis() }).await?;
        Ok((id, position))
    }

    pub async fn update(&self, ctx: &Ctx, owner: UserId, id: i64, ask: &str, answer: &str) -> Result<i64, CommandError> {
        let pair = Pair::parse(ask, answer)?;
        self.execute(ctx, owner, Command::Update { id, pair, at: now_millis() }).await
    }

    pub async fn delete(&self, ctx: &Ctx, owner: UserId, id: i64) -> Result<i64, CommandError> {
        self.execute(ctx, owner, Command::Delete { id, at: now_millis() }).await
    }
}

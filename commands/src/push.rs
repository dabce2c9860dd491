//! Push targets: a user registers or unregisters the devices reached by push
//! (`push-<user>`, at most `im_domain::push::MAX_TARGETS`).

use crate::store::decide_and_append;
use crate::{CommandError, Ctx, now_millis};
use im_domain::push::{self, Provider, Targets};
use im_domain::{StreamId, UserId};
use im_eventlog::SharedEventStore;

#[derive(Clone)]
pub struct Push {
    store: SharedEventStore,
}

impl Push {
    pub fn new(store: SharedEventStore) -> Self {
        Self { store }
    }

    /// Registers a device (the gateway checked the token). Returns the position to wait
    /// for (0: it was registered already).
    pub async fn register(&self, ctx: &Ctx, user: UserId, provider: Provider, device_token: &str) -> Result<i64, CommandError> {
        let at = now_millis();
        let stream = StreamId::push(user);
        let (_, position) = decide_and_append(&*self.store, ctx, stream.as_str(), Targets::new(), push::evolve, |state| {
            Ok(push::register(state, user, provider, device_token, at))
        })
        .await?;
        Ok(position)
    }

    /// Unregisters a device. Returns the position to wait for (0: it was not registered).
    pub async fn unregister(&self, ctx: &Ctx, user: UserId, provider: Provider, device_token: &str) -> Result<i64, CommandError> {
        let at = now_millis();
        let stream = StreamId::push(user);
        let (_, position) = decide_and_append(&*self.store, ctx, stream.as_str(), Targets::new(), push::evolve, |state| {
            Ok(push::unregister(state, user, provider, device_token, at))
        })
        .await?;
        Ok(position)
    }
}

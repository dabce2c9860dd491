//! Operator accounts of the admin console: created by `im admin create`, checked at
//! login. They are not chat users.

use crate::auth::Passwords;
use crate::store::{load, stream_append};
use crate::{CommandError, Ctx, now_millis};
use im_domain::event::AdminCreated;
use im_domain::values::{Password, PasswordHash, Username};
use im_domain::{Event, StreamId};
use im_eventlog::{AppendError, ExpectedVersion, SharedEventStore};

#[derive(Clone)]
pub struct Admins {
    store: SharedEventStore,
}

fn evolve(state: Option<String>, event: &Event) -> Option<String> {
    match event {
        Event::AdminCreated(e) => Some(e.password_hash.clone()),
        _ => state,
    }
}

impl Admins {
    pub fn new(store: SharedEventStore) -> Self {
        Self { store }
    }

    /// Creates an operator account; fails when the name is taken.
    pub async fn create(&self, username: &str, password: &str) -> Result<(), CommandError> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let hash = Passwords.hash(&password).await?;
        let event = Event::AdminCreated(AdminCreated { username: username.as_str().to_owned(), password_hash: hash.0, at: now_millis() });
        let append = stream_append(&Ctx::anonymous(), StreamId::admin(username.as_str()).to_string(), ExpectedVersion::NoStream, &[event]);
        match self.store.append(vec![append]).await {
            Ok(_) => Ok(()),
            Err(AppendError::Conflict { .. }) => Err(CommandError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// True when the operator exists and the password matches.
    pub async fn verify(&self, username: &str, password: &str) -> Result<bool, CommandError> {
        if Username::parse(username).is_err() {
            return Ok(false);
        }
        let loaded = load(&*self.store, StreamId::admin(username).as_str(), None, evolve).await?;
        match loaded.state {
            Some(hash) => Passwords.verify(password, &PasswordHash(hash)).await,
            None => Ok(false),
        }
    }
}

//! Operator accounts of the admin console: created by `im admin create`, checked at
//! login. They are not chat users.

use crate::auth::Passwords;
use crate::store::{Write, commit, load};
use crate::{CommandError, Ctx, now_millis};
use im_domain::event::{AdminCreated, AdminLoggedOut};
use im_domain::values::{Password, PasswordHash, Username};
use im_domain::{Event, StreamId};
use im_eventlog::SharedEventStore;

#[derive(Clone)]
pub struct Admins {
    store: SharedEventStore,
    passwords: Passwords,
}

/// An operator as their stream says: the password hash, and the time of their last
/// logout (console sessions issued before it are dead).
#[derive(Debug, Clone, Default)]
struct Operator {
    hash: String,
    logged_out_at: i64,
}

fn evolve(state: Option<Operator>, event: &Event) -> Option<Operator> {
    match event {
        Event::AdminCreated(e) => Some(Operator { hash: e.password_hash.clone(), logged_out_at: 0 }),
        Event::AdminLoggedOut(e) => state.map(|o| Operator { logged_out_at: o.logged_out_at.max(e.at), ..o }),
        _ => state,
    }
}

impl Admins {
    /// With a hashing pool of its own (the command line's `im admin create`).
    pub fn new(store: SharedEventStore) -> Self {
        Self::with_passwords(store, Passwords::default())
    }

    /// Sharing the server's hashing pool.
    pub fn with_passwords(store: SharedEventStore, passwords: Passwords) -> Self {
        Self { store, passwords }
    }

    /// Creates an operator account; fails when the name is taken.
    pub async fn create(&self, username: &str, password: &str) -> Result<(), CommandError> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let hash = self.passwords.hash(&password).await?;
        let event = Event::AdminCreated(AdminCreated { username: username.as_str().to_owned(), password_hash: hash.0, at: now_millis() });
        let stream = StreamId::admin(username.as_str()).to_string();
        commit(&*self.store, vec![Write::new_stream(&Ctx::anonymous(), stream, &[event], CommandError::UsernameTaken)]).await?;
        Ok(())
    }

    /// True when the operator exists and the password matches.
    pub async fn verify(&self, username: &str, password: &str) -> Result<bool, CommandError> {
        if Username::parse(username).is_err() {
            return Ok(false);
        }
        match self.operator(username).await? {
            Some(operator) => self.passwords.verify(password, &PasswordHash(operator.hash)).await,
            None => Ok(false),
        }
    }

    async fn operator(&self, username: &str) -> Result<Option<Operator>, CommandError> {
        if Username::parse(username).is_err() {
            return Ok(None);
        }
        Ok(load(&*self.store, StreamId::admin(username).as_str(), None, evolve).await?.state)
    }

    /// True when a console session of `username` issued at `issued_at` (ms) is still
    /// live: the operator exists and has not logged out since.
    pub async fn session_live(&self, username: &str, issued_at: i64) -> Result<bool, CommandError> {
        Ok(self.operator(username).await?.is_some_and(|o| issued_at > o.logged_out_at))
    }

    /// Ends every console session of `username` issued until now.
    pub async fn logout(&self, username: &str) -> Result<(), CommandError> {
        let stream = StreamId::admin(username).to_string();
        // Sessions are issued with millisecond times; a logout at the same millisecond
        // as a login must still end it, and a login after it must live.
        let event = Event::AdminLoggedOut(AdminLoggedOut { username: username.to_owned(), at: now_millis() });
        commit(&*self.store, vec![Write::any(&Ctx::anonymous(), stream, &[event])]).await?;
        Ok(())
    }
}

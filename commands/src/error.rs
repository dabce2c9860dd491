//! Errors of the command layer: business reasons from the domain, plus what can go
//! wrong around them (credentials, conflicts, storage).

use im_domain::account::AccountError;
use im_domain::askanswer::AskAnswerError;
use im_domain::friendship::FriendError;
use im_domain::group::GroupError;
use im_domain::message::{EditError, ReactError, RevokeError, SendError};
use im_domain::report::ReportError;
use im_domain::values::ValueError;
use im_eventlog::{AppendError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Friend(#[from] FriendError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    React(#[from] ReactError),
    #[error(transparent)]
    AskAnswer(#[from] AskAnswerError),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Invalid(#[from] ValueError),
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    #[error("username is taken")]
    UsernameTaken,
    #[error("wrong username or password")]
    WrongCredentials,
    #[error("old password is wrong")]
    WrongOldPassword,
    #[error("passwords do not match")]
    PasswordMismatch,
    #[error("no such user")]
    UnknownUser,
    #[error("the stream kept changing; gave up after retries")]
    Contended,
    #[error("stream {0} changed after the command was decided")]
    Stale(String),
    #[error("stored event could not be decoded: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("too many password checks waiting; try again shortly")]
    Busy,
    #[error("internal: {0}")]
    Internal(String),
}

impl From<AppendError> for CommandError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Conflict { .. } => CommandError::Contended,
            AppendError::Claimed { .. } => CommandError::Contended,
            AppendError::Store(s) => CommandError::Store(s),
        }
    }
}

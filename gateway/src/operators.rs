//! Operator actions of the admin console (and the command line): each changes the log
//! through the account commands, then makes every gateway act on it (sessions revoked,
//! sockets closed).

use crate::error::ApiError;
use crate::state::AppState;

impl AppState {
    /// Operator action: delete an account, revoking its session and closing its socket.
    pub async fn delete_user(&self, user: im_domain::UserId) -> Result<(), ApiError> {
        let position = self.accounts().delete(&im_commands::Ctx::anonymous(), user).await?;
        self.settle(position).await?;
        self.remember_session(user.0, Some("deleted")).await;
        self.sessions_changed(user, None, false).await;
        Ok(())
    }

    /// Operator action: a new password, which ends the user's live session (its token is
    /// refused and its socket closed everywhere).
    pub async fn reset_password(&self, user: im_domain::UserId, password: &str) -> Result<i64, ApiError> {
        let position = self.accounts().reset_password(&im_commands::Ctx::anonymous(), user, password).await?;
        self.settle(position).await?;
        self.remember_session(user.0, None).await;
        self.sessions_changed(user, None, false).await;
        Ok(position)
    }

    /// Operator action: disable (revoking the session and closing the socket at once)
    /// or re-enable an account. Returns when the read models show the change.
    pub async fn set_user_active(&self, user: im_domain::UserId, active: bool) -> Result<(), ApiError> {
        let position = self.accounts().set_active(&im_commands::Ctx::anonymous(), user, active).await?;
        self.settle(position).await?;
        if !active {
            self.remember_session(user.0, None).await;
            // The socket may be on another gateway.
            self.sessions_changed(user, None, false).await;
        }
        Ok(())
    }
}

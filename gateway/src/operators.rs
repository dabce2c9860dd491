//! Operator actions of the admin console (and the command line): each changes the log
//! through the commands with the operator's name on every event (`metadata.operator`,
//! which the audit trail lists), then makes every gateway act on it (sessions revoked,
//! sockets closed) and waits until the read models show it.

use crate::error::ApiError;
use crate::state::AppState;
use im_commands::Ctx;
use im_domain::group::Named;
use im_domain::report::ReportAction;
use im_domain::{GroupId, UserId};

/// How an operator appears to group members in the group's system messages.
pub const OPERATOR_NAME: &str = "系统管理员";

fn as_member() -> Named {
    Named { id: UserId(0), name: OPERATOR_NAME.to_owned() }
}

impl AppState {
    /// Operator action: delete an account, revoking its session and closing its socket.
    pub async fn delete_user(&self, operator: &str, user: UserId) -> Result<(), ApiError> {
        let position = self.accounts().delete(&Ctx::operator(operator), user).await?;
        self.settle(position).await?;
        self.remember_sessions(user.0, &["deleted"]).await;
        self.sessions_changed(user, &[], false).await;
        Ok(())
    }

    /// Operator action: a new password, which ends the user's live sessions (their tokens
    /// are refused and their sockets closed everywhere).
    pub async fn reset_password(&self, operator: &str, user: UserId, password: &str) -> Result<i64, ApiError> {
        let position = self.accounts().reset_password(&Ctx::operator(operator), user, password).await?;
        self.settle(position).await?;
        self.remember_sessions(user.0, &[]).await;
        self.sessions_changed(user, &[], false).await;
        Ok(position)
    }

    /// Operator action: disable (revoking the session and closing the socket at once)
    /// or re-enable an account. Returns when the read models show the change.
    pub async fn set_user_active(&self, operator: &str, user: UserId, active: bool) -> Result<(), ApiError> {
        let position = self.accounts().set_active(&Ctx::operator(operator), user, active).await?;
        self.settle(position).await?;
        if !active {
            self.remember_sessions(user.0, &[]).await;
            // The socket may be on another gateway.
            self.sessions_changed(user, &[], false).await;
        }
        Ok(())
    }

    /// Operator action: lock a group (nobody sends) or unlock it.
    pub async fn lock_group(&self, operator: &str, group: GroupId, locked: bool) -> Result<(), ApiError> {
        let position = self.group_commands().lock(&Ctx::operator(operator), group, as_member(), true, locked).await?;
        self.settle(position).await
    }

    /// Operator action: dissolve a group.
    pub async fn dissolve_group(&self, operator: &str, group: GroupId) -> Result<(), ApiError> {
        let position = self.group_commands().dissolve(&Ctx::operator(operator), group, as_member()).await?;
        self.settle(position).await
    }

    /// Operator action: remove a message for everyone, saying why.
    pub async fn remove_message(&self, operator: &str, message: uuid::Uuid, reason: &str) -> Result<(), ApiError> {
        let position = self.messages().remove(&Ctx::operator(operator), message, reason).await?;
        self.settle(position).await
    }

    /// Operator action: handle a pending report, first doing what `action` says to the
    /// reported user or group (`reported_type`, `reported_id`), then recording it.
    pub async fn handle_report(&self, operator: &str, report_id: i64, action: ReportAction, note: &str) -> Result<(), ApiError> {
        let report = self.friends().report(report_id).await?.ok_or_else(|| ApiError::not_found("report_not_found", "举报不存在"))?;
        if report["status"] != "pending" {
            return Err(ApiError::bad("report_handled", "该举报已处理过了"));
        }
        let (kind, target) = (report["reported_type"].as_str().unwrap_or_default(), report["reported_id"].as_i64().unwrap_or_default());
        if !action.fits(kind) {
            return Err(ApiError::bad("invalid_action", "该处理方式不适用于被举报的对象"));
        }
        match action {
            ReportAction::Dismissed => {}
            ReportAction::UserDisabled => self.set_user_active(operator, UserId(target), false).await?,
            ReportAction::UserDeleted => self.delete_user(operator, UserId(target)).await?,
            ReportAction::GroupLocked => self.lock_group(operator, GroupId(target), true).await?,
            ReportAction::GroupDissolved => self.dissolve_group(operator, GroupId(target)).await?,
        }
        let position = self.friend_commands().handle_report(&Ctx::operator(operator), report_id, action, note).await?;
        self.settle(position).await
    }
}

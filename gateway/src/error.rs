//! The API's error type: an HTTP status, a stable snake_case `code` and a human
//! reason (Chinese, as the reference), rendered as `{"msg":"fail","data":…,"code":…}`.
//! Internal failures are logged and answered with a generic 500; their details never
//! reach the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use im_commands::CommandError;
use im_domain::account::AccountError;
use im_domain::askanswer::AskAnswerError;
use im_domain::friendship::FriendError;
use im_domain::group::GroupError;
use im_domain::message::{EditError, ReactError, RevokeError, SendError};
use im_domain::report::ReportError;
use im_domain::values::ValueError;
use im_projections::ReadError;
use serde_json::json;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub reason: Cow<'static, str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self { status, code: code.into(), reason: reason.into() }
    }

    /// 400: validation or a business rule.
    pub fn bad(code: impl Into<Cow<'static, str>>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, reason)
    }

    pub fn unauthorized(code: &'static str, reason: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, reason)
    }

    pub fn forbidden(code: &'static str, reason: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, reason)
    }

    pub fn not_found(code: &'static str, reason: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, reason)
    }

    pub fn visitor_forbidden() -> Self {
        Self::forbidden("visitor_forbidden", "您没有权限访问,请先注册或登录")
    }

    /// The refusal for input with a NUL character.
    pub fn nul_refused() -> Self {
        Self::bad("invalid_characters", "请求包含非法字符")
    }

    pub fn user_not_found() -> Self {
        Self::not_found("user_not_found", "用户不存在")
    }

    pub fn not_friends() -> Self {
        Self::bad("not_friends", "不是好友")
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "服务器内部错误")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"msg": "fail", "data": self.reason, "code": self.code}))).into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Account(a) => match a {
                AccountError::AlreadyRegistered => Self::bad("already_registered", "账号已注册"),
                AccountError::NotRegistered => Self::user_not_found(),
                AccountError::Disabled => Self::forbidden("user_disabled", "你已被管理员禁用"),
                AccountError::NotAVisitor => Self::bad("not_a_visitor", "当前账号不是游客身份"),
                AccountError::VisitorForbidden => Self::visitor_forbidden(),
                AccountError::StaleSession => Self::unauthorized("token_revoked", "Token 令牌已失效,请重新登录"),
                AccountError::NothingToChange => Self::bad("nothing_to_change", "没有需要修改的内容"),
            },
            CommandError::Friend(f) => match f {
                FriendError::SelfRequest => Self::bad("self_request", "不能添加自己为好友"),
                FriendError::TargetUnavailable => Self::bad("target_unavailable", "对方不存在或已被禁用"),
                FriendError::AlreadyFriends => Self::bad("already_friends", "你们已经是好友了"),
                FriendError::RequestPending => Self::bad("request_pending", "你已经申请过了,请耐心等待对方处理"),
                FriendError::NoSuchRequest => Self::not_found("request_not_found", "好友申请不存在"),
                FriendError::NotAddressee => Self::forbidden("not_addressee", "你无权处理该申请"),
                FriendError::AlreadyHandled => Self::bad("already_handled", "该申请已处理过了"),
                FriendError::NotFriends => Self::not_friends(),
                FriendError::ConfirmationRequired => Self::bad("confirmation_required", "对方设置了加好友需要验证,请先发送好友申请"),
                FriendError::Blocked => Self::bad("blocked", "对方拒绝了你的请求"),
                FriendError::RecentlyRefused => {
                    Self::new(StatusCode::TOO_MANY_REQUESTS, "recently_refused", "对方已拒绝过你的申请,请稍后再试")
                }
                FriendError::UnknownUser => Self::user_not_found(),
            },
            CommandError::Send(e) => match e {
                SendError::ToSelf => Self::bad("send_to_self", "不能给自己发消息"),
                SendError::RecipientUnavailable => Self::bad("recipient_unavailable", "对方不存在或者被禁用,不能发消息"),
                SendError::Blocked => Self::bad("blocked", "对方把你拉黑了,不能发送消息"),
                SendError::VisitorsNeedLogin => Self::bad("login_required", "对方设置成:需要您先登录才能发消息"),
                SendError::FriendsOnly => Self::bad("friends_only", "对方设置成:需要您先成为他的好友才能发消息"),
                SendError::AllowanceUsed => Self::bad("send_limit", "对方设置成:成为好友之前只能发送一条消息"),
            },
            CommandError::Edit(e) => match e {
                EditError::NoSuchMessage => Self::not_found("message_not_found", "消息不存在"),
                EditError::NotSender => Self::forbidden("not_sender", "只能编辑自己发送的消息"),
                EditError::Revoked => Self::bad("already_revoked", "消息已撤回"),
                EditError::NotText => Self::bad("not_text", "只能编辑文字消息"),
                EditError::WindowPassed => Self::bad("edit_window_passed", "消息发送超过可编辑时间,不能编辑"),
            },
            CommandError::React(e) => match e {
                ReactError::NoSuchMessage => Self::not_found("message_not_found", "消息不存在"),
                ReactError::Revoked => Self::bad("already_revoked", "消息已撤回"),
                ReactError::InvalidEmoji => Self::bad("invalid_emoji", "emoji 须为1到8个字符的表情"),
                ReactError::AlreadyReacted => Self::bad("already_reacted", "已经用这个表情回应过"),
                ReactError::NotReacted => Self::bad("not_reacted", "没有这个表情回应"),
                ReactError::TooMany => Self::bad("too_many_reactions", "对一条消息最多回应10个表情"),
            },
            CommandError::Revoke(e) => match e {
                RevokeError::NoSuchMessage => Self::not_found("message_not_found", "消息不存在"),
                RevokeError::NotSender => Self::forbidden("not_sender", "只能撤回自己发送的消息"),
                RevokeError::AlreadyRevoked => Self::bad("already_revoked", "消息已撤回"),
                RevokeError::WindowPassed => Self::bad("revoke_window_passed", "消息发送超过可撤回时间,不能撤回"),
                RevokeError::Reason => Self::bad("invalid_reason", "请填写1到200个字的删除原因"),
            },
            CommandError::Report(e) => match e {
                ReportError::NotFound => Self::not_found("report_not_found", "举报不存在"),
                ReportError::AlreadyHandled => Self::bad("report_handled", "该举报已处理过了"),
                ReportError::ActionDoesNotFit => Self::bad("invalid_action", "该处理方式不适用于被举报的对象"),
                ReportError::NoteTooLong => Self::bad("invalid_note", "处理备注最多500个字"),
            },
            CommandError::AskAnswer(e) => match e {
                AskAnswerError::Ask => Self::bad("invalid_ask", "ask 必须是1到200个字符"),
                AskAnswerError::Answer => Self::bad("invalid_answer", "answer 必须是1到2000个字符"),
                AskAnswerError::NotFound => Self::not_found("askanswer_not_found", "问答不存在"),
                AskAnswerError::TooMany => Self::bad("too_many_askanswers", "问答数量已达上限"),
            },
            CommandError::Group(e) => match e {
                GroupError::NotFound => Self::not_found("group_not_found", "群聊不存在"),
                GroupError::Dissolved => Self::bad("group_dissolved", "该群已被解散"),
                GroupError::Locked => Self::bad("group_locked", "该群已被锁定"),
                GroupError::NotOwner => Self::forbidden("not_owner", "只有群主才能操作"),
                GroupError::NotMember => Self::forbidden("not_member", "你不是该群成员"),
                GroupError::AlreadyMember => Self::bad("already_member", "已经是群成员了"),
                GroupError::Full => Self::bad("group_full", "群人数已达上限"),
                GroupError::TooFewMembers => Self::bad("too_few_members", "请至少选择一位好友"),
                GroupError::UserUnavailable => Self::bad("user_unavailable", "该用户不存在或已被禁用"),
                GroupError::NoPendingRequest => Self::bad("no_join_request", "没有该用户的进群申请"),
                GroupError::AlreadyPending => Self::bad("join_request_pending", "进群申请已提交,请等待群主审核"),
                GroupError::OwnerCannotLeave => Self::bad("owner_cannot_leave", "群主不能移除自己,请解散群聊"),
                GroupError::Muted => Self::bad("muted", "你已被禁言"),
                GroupError::AllMuted => Self::bad("all_muted", "全员禁言中,只有群主和管理员可以发言"),
                GroupError::OwnerCannotBeMuted => Self::bad("owner_cannot_be_muted", "不能禁言群主"),
                GroupError::NotManager => Self::forbidden("not_manager", "只有群主或管理员才能操作"),
                GroupError::Outranked => Self::forbidden("outranked", "不能对群主或其他管理员进行此操作"),
                GroupError::TooManyAdmins => Self::bad("too_many_admins", "管理员最多10人"),
                GroupError::AlreadyOwner => Self::bad("already_owner", "对方已经是群主"),
                GroupError::MuteInPast => Self::bad("invalid_minutes", "禁言时长必须大于0"),
                GroupError::AlreadyExists => Self::bad("group_exists", "群聊已存在"),
                GroupError::Blocked => Self::bad("blocked", "对方拒绝了你的邀请"),
                GroupError::AlreadyInvited => Self::bad("already_invited", "已经邀请过对方了,请等待对方同意"),
                GroupError::NoInvitation => Self::bad("no_invitation", "没有该群的邀请"),
                GroupError::MentionedNotMember => Self::bad("invalid_mentions", "只能@本群成员"),
            },
            CommandError::Invalid(v) => match v {
                ValueError::Username => Self::bad("invalid_username", "用户名须为4-20位的字母、数字、下划线、汉字等"),
                ValueError::Password => Self::bad("invalid_password", "密码长度须为6-20位"),
                ValueError::Nickname | ValueError::TooLong => Self::bad("too_long", "内容过长"),
                ValueError::DeviceFingerprint => Self::bad("invalid_devicefingeruuid", "设备标识 devicefingeruuid 不合法"),
            },
            CommandError::InvalidSettings(_) => Self::bad("invalid_userset", "userset 设置格式不正确"),
            CommandError::UsernameTaken => Self::bad("username_taken", "用户名已存在"),
            CommandError::WrongCredentials => Self::bad("wrong_credentials", "用户名或密码错误"),
            CommandError::WrongOldPassword => Self::bad("wrong_old_password", "旧密码不正确"),
            CommandError::PasswordMismatch => Self::bad("password_mismatch", "两次输入的密码不一致"),
            CommandError::UnknownUser => Self::user_not_found(),
            CommandError::Contended | CommandError::Stale(_) => Self::new(StatusCode::CONFLICT, "conflict", "操作冲突,请重试"),
            CommandError::Busy => Self::new(StatusCode::TOO_MANY_REQUESTS, "busy", "服务器繁忙,请稍后再试"),
            CommandError::Corrupt(_) | CommandError::Store(_) | CommandError::Internal(_) => Self::internal(e),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            // The command is in the log; the read models (another process, perhaps)
            // have not caught up in time.
            ReadError::Lagging(position) => {
                tracing::warn!(position, "read models lagging");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "lagging", "服务繁忙,请稍后再试")
            }
            other => Self::internal(other),
        }
    }
}

/// Middleware: a path with a percent-encoded NUL is refused (400 `invalid_characters`),
/// and a request the framework refused before any handler ran (a malformed
/// multipart body, a path segment that is not a number, an unsupported content type)
/// gets the contract's envelope like every other refusal under `/api/`, not the
/// framework's plain-text reason.
pub async fn envelope_rejections(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    // A NUL percent-encoded in a path segment reaches handlers as text (Postgres refuses
    // it in a query parameter): refused here like a NUL anywhere else.
    if api && request.uri().path().contains("%00") {
        return ApiError::nul_refused().into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || !status.is_client_error() || json {
        return response;
    }
    let refused = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "body_too_large", "请求体过大"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, "unsupported_media_type", "不支持的请求格式"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(status, "method_not_allowed", "请求方法不允许"),
        StatusCode::NOT_FOUND => ApiError::not_found("not_found", "请求的接口不存在"),
        _ => ApiError::new(status, "invalid_request", "请求格式不正确"),
    };
    refused.into_response()
}

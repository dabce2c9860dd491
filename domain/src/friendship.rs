//! The friendship aggregate: one stream per pair of users (`friendship-<lo>-<hi>`)
//! holding the requests between them, whether they are friends, and each side's view
//! of the other (remark, tags, star, blacklist, visibility). Keeping both sides in one
//! stream is what makes acceptance exactly-once: two concurrent acceptances, or two
//! crossing requests, are serialized by the stream's version.

use crate::event::Event;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// A friend request as the pair's stream knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Agree,
    Refuse,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Agree => "agree",
            RequestStatus::Refuse => "refuse",
        }
    }
}

/// One user's view of the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    /// My remark for them (`beizhu`).
    pub nickname: String,
    pub tags: String,
    pub star: bool,
    pub black: bool,
    /// Let them see my moments.
    pub lookme: bool,
    /// I see their moments.
    pub lookhim: bool,
}

impl Default for Side {
    /// No remark, no tags, not starred, not blacklisted, moments visible both ways.
    fn default() -> Self {
        Self { nickname: String::new(), tags: String::new(), star: false, black: false, lookme: true, lookhim: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: i64,
    pub from: UserId,
    pub to: UserId,
    pub status: RequestStatus,
    pub side: Side,
}

/// Everything the pair's stream says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pair {
    pub friends: bool,
    /// Each user's view of the other, while friends: `(user, side)`.
    pub sides: Vec<(UserId, Side)>,
    pub requests: Vec<Request>,
}

impl Pair {
    pub fn side(&self, of: UserId) -> Option<&Side> {
        self.sides.iter().find(|(u, _)| *u == of).map(|(_, s)| s)
    }

    fn side_mut(&mut self, of: UserId) -> Option<&mut Side> {
        self.sides.iter_mut().find(|(u, _)| *u == of).map(|(_, s)| s)
    }

    pub fn request(&self, id: i64) -> Option<&Request> {
        self.requests.iter().find(|r| r.id == id)
    }

    fn pending_from(&self, from: UserId) -> Option<&Request> {
        self.requests.iter().find(|r| r.from == from && r.status == RequestStatus::Pending)
    }
}

/// What each side chose (remark and visibility) when asking or answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub nickname: String,
    pub lookme: bool,
    pub lookhim: bool,
}

impl Default for Choice {
    fn default() -> Self {
        Self { nickname: String::new(), lookme: true, lookhim: true }
    }
}

impl Choice {
    fn side(&self) -> Side {
        Side { nickname: self.nickname.clone(), lookme: self.lookme, lookhim: self.lookhim, ..Side::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// applyfriend. `target_active`: the addressee exists and is enabled.
    Request {
        request_id: i64,
        from: UserId,
        to: UserId,
        choice: Choice,
        target_active: bool,
        at: i64,
    },
    /// handleapply agree/refuse by the addressee.
    Answer {
        request_id: i64,
        by: UserId,
        agree: bool,
        choice: Choice,
        at: i64,
    },
    /// autoAddFriendAndAgree: allowed only when the target needs no confirmation.
    AddDirectly {
        from: UserId,
        to: UserId,
        choice: Choice,
        target_active: bool,
        target_confirms: bool,
        at: i64,
    },
    /// setblackgoodfriend: toggles my blacklist flag.
    ToggleBlack {
        by: UserId,
        at: i64,
    },
    SetStar {
        by: UserId,
        star: bool,
        at: i64,
    },
    SetVisibility {
        by: UserId,
        lookme: bool,
        lookhim: bool,
        at: i64,
    },
    SetRemark {
        by: UserId,
        nickname: Option<String>,
        tags: Option<String>,
        at: i64,
    },
    /// deletegoodfriend: ends the friendship on both sides.
    End {
        by: UserId,
        at: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FriendError {
    #[error("cannot befriend yourself")]
    SelfRequest,
    #[error("the other user does not exist or is disabled")]
    TargetUnavailable,
    #[error("already friends")]
    AlreadyFriends,
    #[error("a request is already pending")]
    RequestPending,
    #[error("no such request")]
    NoSuchRequest,
    #[error("only the addressee handles a request")]
    NotAddressee,
    #[error("the request was already handled")]
    AlreadyHandled,
    #[error("not friends")]
    NotFriends,
    #[error("the other user confirms friend requests")]
    ConfirmationRequired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendRequested {
    pub request_id: i64,
    pub from: UserId,
    pub to: UserId,
    /// The applicant's remark for the addressee.
    #[serde(default)]
    pub nickname: String,
    #[serde(default = "yes")]
    pub lookme: bool,
    #[serde(default = "yes")]
    pub lookhim: bool,
    pub at: i64,
}

fn yes() -> bool {
    true
}

/// The addressee agreed: both sides become friends with their chosen settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendRequestAccepted {
    pub request_id: i64,
    /// The applicant.
    pub from: UserId,
    /// The addressee, who accepted.
    pub to: UserId,
    pub applicant_side: Side,
    pub addressee_side: Side,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendRequestRefused {
    pub request_id: i64,
    pub from: UserId,
    pub to: UserId,
    pub at: i64,
}

/// Friends at once, without a request (the target needs no confirmation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendAdded {
    pub from: UserId,
    pub to: UserId,
    pub from_side: Side,
    pub at: i64,
}

/// One user changed their view of a friend (blacklist, star, visibility, remark, tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendSideChanged {
    pub user_id: UserId,
    pub friend_id: UserId,
    pub change: SideChange,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SideChange {
    Blacklist {
        black: bool,
    },
    Star {
        star: bool,
    },
    Visibility {
        lookme: bool,
        lookhim: bool,
    },
    Remark {
        #[serde(default)]
        nickname: Option<String>,
        #[serde(default)]
        tags: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendshipEnded {
    pub user_id: UserId,
    pub friend_id: UserId,
    pub at: i64,
}

pub fn decide(state: &Pair, command: Command) -> Result<Vec<Event>, FriendError> {
    match command {
        Command::Request { request_id, from, to, choice, target_active, at } => {
            if from == to {
                return Err(FriendError::SelfRequest);
            }
            if !target_active {
                return Err(FriendError::TargetUnavailable);
            }
            if state.friends {
                return Err(FriendError::AlreadyFriends);
            }
            if state.pending_from(from).is_some() {
                return Err(FriendError::RequestPending);
            }
            Ok(vec![Event::FriendRequested(FriendRequested {
                request_id,
                from,
                to,
                nickname: choice.nickname,
                lookme: choice.lookme,
                lookhim: choice.lookhim,
                at,
            })])
        }
        Command::Answer { request_id, by, agree, choice, at } => {
            let request = state.request(request_id).ok_or(FriendError::NoSuchRequest)?;
            if request.to != by {
                return Err(FriendError::NotAddressee);
            }
            if request.status != RequestStatus::Pending {
                return Err(FriendError::AlreadyHandled);
            }
            let (from, to) = (request.from, request.to);
            if !agree {
                return Ok(vec![Event::FriendRequestRefused(FriendRequestRefused { request_id, from, to, at })]);
            }
            if state.friends {
                return Err(FriendError::AlreadyFriends);
            }
            Ok(vec![Event::FriendRequestAccepted(FriendRequestAccepted {
                request_id,
                from,
                to,
                applicant_side: request.side.clone(),
                addressee_side: choice.side(),
                at,
            })])
        }
        Command::AddDirectly { from, to, choice, target_active, target_confirms, at } => {
            if from == to {
                return Err(FriendError::SelfRequest);
            }
            if !target_active {
                return Err(FriendError::TargetUnavailable);
            }
            if state.friends {
                return Err(FriendError::AlreadyFriends);
            }
            if target_confirms {
                return Err(FriendError::ConfirmationRequired);
            }
            Ok(vec![Event::FriendAdded(FriendAdded { from, to, from_side: choice.side(), at })])
        }
        Command::ToggleBlack { by, at } => {
            let side = friend_side(state, by)?;
            side_changed(state, by, SideChange::Blacklist { black: !side.black }, at)
        }
        Command::SetStar { by, star, at } => {
            friend_side(state, by)?;
            side_changed(state, by, SideChange::Star { star }, at)
        }
        Command::SetVisibility { by, lookme, lookhim, at } => {
            friend_side(state, by)?;
            side_changed(state, by, SideChange::Visibility { lookme, lookhim }, at)
        }
        Command::SetRemark { by, nickname, tags, at } => {
            friend_side(state, by)?;
            side_changed(state, by, SideChange::Remark { nickname, tags }, at)
        }
        Command::End { by, at } => {
            friend_side(state, by)?;
            let friend_id = other(state, by)?;
            Ok(vec![Event::FriendshipEnded(FriendshipEnded { user_id: by, friend_id, at })])
        }
    }
}

fn friend_side(state: &Pair, by: UserId) -> Result<&Side, FriendError> {
    if !state.friends {
        return Err(FriendError::NotFriends);
    }
    state.side(by).ok_or(FriendError::NotFriends)
}

fn other(state: &Pair, of: UserId) -> Result<UserId, FriendError> {
    state.sides.iter().map(|(u, _)| *u).find(|u| *u != of).ok_or(FriendError::NotFriends)
}

fn side_changed(state: &Pair, by: UserId, change: SideChange, at: i64) -> Result<Vec<Event>, FriendError> {
    let friend_id = other(state, by)?;
    Ok(vec![Event::FriendSideChanged(FriendSideChanged { user_id: by, friend_id, change, at })])
}

/// Applies a change to one side's view.
pub fn apply_change(side: &mut Side, change: &SideChange) {
    match change {
        SideChange::Blacklist { black } => side.black = *black,
        SideChange::Star { star } => side.star = *star,
        SideChange::Visibility { lookme, lookhim } => {
            side.lookme = *lookme;
            side.lookhim = *lookhim;
        }
        SideChange::Remark { nickname, tags } => {
            if let Some(n) = nickname {
                side.nickname = n.clone();
            }
            if let Some(t) = tags {
                side.tags = t.clone();
            }
        }
    }
}

pub fn evolve(mut state: Pair, event: &Event) -> Pair {
    match event {
        Event::FriendRequested(e) => state.requests.push(Request {
            id: e.request_id,
            from: e.from,
            to: e.to,
            status: RequestStatus::Pending,
            side: Side { nickname: e.nickname.clone(), lookme: e.lookme, lookhim: e.lookhim, ..Side::default() },
        }),
        Event::FriendRequestAccepted(e) => {
            for r in state.requests.iter_mut().filter(|r| r.status == RequestStatus::Pending) {
                r.status = RequestStatus::Agree;
            }
            state.friends = true;
            state.sides = vec![(e.from, e.applicant_side.clone()), (e.to, e.addressee_side.clone())];
        }
        Event::FriendRequestRefused(e) => {
            if let Some(r) = state.requests.iter_mut().find(|r| r.id == e.request_id) {
                r.status = RequestStatus::Refuse;
            }
        }
        Event::FriendAdded(e) => {
            for r in state.requests.iter_mut().filter(|r| r.status == RequestStatus::Pending) {
                r.status = RequestStatus::Agree;
            }
            state.friends = true;
            state.sides = vec![(e.from, e.from_side.clone()), (e.to, Side::default())];
        }
        Event::FriendSideChanged(e) => {
            if let Some(side) = state.side_mut(e.user_id) {
                apply_change(side, &e.change);
            }
        }
        Event::FriendshipEnded(_) => {
            state.friends = false;
            state.sides.clear();
        }
        _ => {}
    }
    state
}

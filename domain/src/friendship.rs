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
    /// When it was refused (0: it was not).
    pub refused_at: i64,
}

/// Everything the pair's stream says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pair {
    pub friends: bool,
    /// Each user's view of the other, while friends: `(user, side)`.
    pub sides: Vec<(UserId, Side)>,
    pub requests: Vec<Request>,
    /// Who has blocked the other. A block is the blocker's: it outlives the friendship
    /// (a friend's side shows it as `black`), and only the blocker lifts it.
    pub blockers: Vec<UserId>,
}

impl Pair {
    pub fn side(&self, of: UserId) -> Option<&Side> {
        self.sides.iter().find(|(u, _)| *u == of).map(|(_, s)| s)
    }

    fn side_mut(&mut self, of: UserId) -> Option<&mut Side> {
        self.sides.iter_mut().find(|(u, _)| *u == of).map(|(_, s)| s)
    }

    /// A new friendship's sides show the blocks that were already there.
    fn show_blocks(&mut self) {
        for (user, side) in &mut self.sides {
            side.black = self.blockers.contains(user);
        }
    }

    pub fn request(&self, id: i64) -> Option<&Request> {
        self.requests.iter().find(|r| r.id == id)
    }

    fn pending_from(&self, from: UserId) -> Option<&Request> {
        self.requests.iter().find(|r| r.from == from && r.status == RequestStatus::Pending)
    }

    /// True when `user` has blocked the other user of the pair.
    pub fn blocks(&self, user: UserId) -> bool {
        self.blockers.contains(&user)
    }

    /// When `to` last refused a request from `from` (0: never).
    fn last_refusal(&self, from: UserId, to: UserId) -> i64 {
        self.requests.iter().filter(|r| r.from == from && r.to == to).map(|r| r.refused_at).max().unwrap_or(0)
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
    /// applyfriend. `target_active`: the addressee exists and is enabled; a request the
    /// addressee refused may not be repeated for `retry_after` milliseconds.
    Request {
        request_id: i64,
        from: UserId,
        to: UserId,
        choice: Choice,
        target_active: bool,
        retry_after: i64,
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
    /// setblackgoodfriend: blocks `other`, or lifts my block; friends or not.
    /// `other_exists`: the other user has an account.
    ToggleBlack {
        by: UserId,
        other: UserId,
        other_exists: bool,
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
    #[error("the other user has blocked this one")]
    Blocked,
    #[error("the other user refused a request lately")]
    RecentlyRefused,
    #[error("no such user")]
    UnknownUser,
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
/// A blacklist change is a block placed or lifted, friends or not; it outlives the
/// friendship.
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

/// What any way of becoming friends needs: two people, the other one reachable, not
/// friends yet, and not blocked by the other.
fn may_befriend(state: &Pair, from: UserId, to: UserId, target_active: bool) -> Result<(), FriendError> {
    if from == to {
        return Err(FriendError::SelfRequest);
    }
    if !target_active {
        return Err(FriendError::TargetUnavailable);
    }
    if state.friends {
        return Err(FriendError::AlreadyFriends);
    }
    if state.blocks(to) {
        return Err(FriendError::Blocked);
    }
    Ok(())
}

pub fn decide(state: &Pair, command: Command) -> Result<Vec<Event>, FriendError> {
    match command {
        Command::Request { request_id, from, to, choice, target_active, retry_after, at } => {
            may_befriend(state, from, to, target_active)?;
            if state.pending_from(from).is_some() {
                return Err(FriendError::RequestPending);
            }
            let refused = state.last_refusal(from, to);
            if refused > 0 && at < refused.saturating_add(retry_after) {
                return Err(FriendError::RecentlyRefused);
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
            may_befriend(state, from, to, target_active)?;
            if target_confirms {
                return Err(FriendError::ConfirmationRequired);
            }
            Ok(vec![Event::FriendAdded(FriendAdded { from, to, from_side: choice.side(), at })])
        }
        Command::ToggleBlack { by, other, other_exists, at } => {
            if by == other {
                return Err(FriendError::SelfRequest);
            }
            // Lifting my block needs nothing more; placing one needs someone to block.
            let black = !state.blocks(by);
            if black && !other_exists {
                return Err(FriendError::UnknownUser);
            }
            Ok(vec![Event::FriendSideChanged(FriendSideChanged {
                user_id: by,
                friend_id: other,
                change: SideChange::Blacklist { black },
                at,
            })])
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
            refused_at: 0,
        }),
        Event::FriendRequestAccepted(e) => {
            for r in state.requests.iter_mut().filter(|r| r.status == RequestStatus::Pending) {
                r.status = RequestStatus::Agree;
            }
            state.friends = true;
            state.sides = vec![(e.from, e.applicant_side.clone()), (e.to, e.addressee_side.clone())];
            state.show_blocks();
        }
        Event::FriendRequestRefused(e) => {
            if let Some(r) = state.requests.iter_mut().find(|r| r.id == e.request_id) {
                r.status = RequestStatus::Refuse;
                r.refused_at = e.at;
            }
        }
        Event::FriendAdded(e) => {
            for r in state.requests.iter_mut().filter(|r| r.status == RequestStatus::Pending) {
                r.status = RequestStatus::Agree;
            }
            state.friends = true;
            state.sides = vec![(e.from, e.from_side.clone()), (e.to, Side::default())];
            state.show_blocks();
        }
        Event::FriendSideChanged(e) => {
            if let SideChange::Blacklist { black } = e.change {
                state.blockers.retain(|u| *u != e.user_id);
                if black {
                    state.blockers.push(e.user_id);
                }
            }
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

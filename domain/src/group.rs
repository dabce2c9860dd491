//! The group aggregate: one stream per group (`group-<id>`) holding its settings,
//! members and pending join requests. Messages live in their own streams; a group
//! message's recipients are read from this state when it is sent.
//!
//! Events carry the display names they mention (resolved by the caller when the
//! command was taken), so the system messages projected from them never have to look
//! anything up.

use crate::event::Event;
use crate::ids::{GroupId, UserId};
use crate::message::Mentions;
use serde::{Deserialize, Serialize};

/// 1 normal, 2 locked (no messages), 0 dissolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    Normal,
    Locked,
    Dissolved,
}

impl GroupStatus {
    pub fn code(self) -> i64 {
        match self {
            GroupStatus::Normal => 1,
            GroupStatus::Locked => 2,
            GroupStatus::Dissolved => 0,
        }
    }
}

/// A user as named in a group event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: UserId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    /// In-group nickname ('' = none).
    pub nickname: String,
    pub muted: bool,
    /// When a mute for a while ends (ms); `None` with `muted`: until it is lifted.
    pub muted_until: Option<i64>,
    /// Helps the owner run the group.
    pub admin: bool,
}

impl Member {
    /// Muted at `now`.
    pub fn is_muted(&self, now: i64) -> bool {
        self.muted && self.muted_until.is_none_or(|until| now < until)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub owner: UserId,
    pub name: String,
    pub remark: String,
    /// The group's picture ('' = none).
    pub avatar: String,
    pub invite_confirm: bool,
    pub status: GroupStatus,
    /// When the group was created (ms).
    pub created_at: i64,
    pub members: Vec<Member>,
    /// Users waiting for the owner's decision, with who asked for them.
    pub pending: Vec<(UserId, UserId)>,
    /// Users invited by someone who is not their friend, waiting for their own
    /// answer, with who invited them.
    pub invited: Vec<(UserId, UserId)>,
    /// Only the owner and admins speak.
    pub all_muted: bool,
    /// New members read the history from before they joined.
    pub share_history: bool,
}

impl Group {
    pub fn member(&self, user: UserId) -> Option<&Member> {
        self.members.iter().find(|m| m.user_id == user)
    }

    pub fn is_member(&self, user: UserId) -> bool {
        self.member(user).is_some()
    }

    /// The owner or an admin.
    pub fn manages(&self, user: UserId) -> bool {
        user == self.owner || self.member(user).is_some_and(|m| m.admin)
    }

    pub fn admins(&self) -> usize {
        self.members.iter().filter(|m| m.admin).count()
    }

    /// May `by` remove or mute `user`? The owner anyone but themself; an admin ordinary
    /// members only.
    fn outranks(&self, by: UserId, user: UserId) -> Result<(), GroupError> {
        if user == self.owner {
            return Err(GroupError::Outranked);
        }
        if by != self.owner && self.manages(user) {
            return Err(GroupError::Outranked);
        }
        Ok(())
    }
}

/// The most admins a group may have.
pub const MAX_ADMINS: usize = 10;

pub type State = Option<Group>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreated {
    pub group_id: GroupId,
    pub owner: Named,
    pub name: String,
    /// Every member, the owner first.
    pub members: Vec<Named>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChanged {
    pub group_id: GroupId,
    pub by: Named,
    pub change: GroupChange,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupChange {
    Renamed {
        name: String,
    },
    RemarkChanged {
        remark: String,
    },
    /// The group's picture (an uploaded image's URL).
    AvatarChanged {
        avatar: String,
    },
    /// The owner made `user` an admin, or took it back.
    AdminSet {
        user: Named,
        admin: bool,
    },
    /// The owner handed the group to `to` (a member), staying an ordinary member.
    OwnerChanged {
        to: Named,
    },
    JoinPolicyChanged {
        invite_confirm: bool,
    },
    MemberAdded {
        user: Named,
    },
    JoinRequested {
        user: Named,
    },
    JoinRefused {
        user: Named,
    },
    /// `by` invited `user`, who is not their friend: `user` is asked first.
    Invited {
        user: Named,
    },
    /// The invited user (`by`) said no.
    InvitationDeclined,
    MemberRemoved {
        user: Named,
    },
    MemberLeft,
    NicknameChanged {
        nickname: String,
    },
    MemberMuted {
        user: Named,
        muted: bool,
        /// The end of a mute for a while (ms); absent: until it is lifted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<i64>,
    },
    /// Only the owner and admins may speak (or everyone again).
    AllMuted {
        muted: bool,
    },
    /// New members read the history from before they joined (or only from their joining).
    HistoryShared {
        shared: bool,
    },
    Locked {
        locked: bool,
    },
    Dissolved,
}

/// What the invitee said, in effect, about being added by the inviter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// They are friends (or it is a self-join): the join policy decides.
    Given,
    /// Not friends: the invitee is asked and joins only by accepting.
    Needed,
    /// The invitee has blocked the inviter.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `members` are the owner's friends (checked by the caller), without the owner.
    Create {
        group_id: GroupId,
        owner: Named,
        name: String,
        members: Vec<Named>,
        max_size: usize,
        at: i64,
    },
    Rename {
        by: Named,
        name: String,
        at: i64,
    },
    /// The owner appoints an admin or removes one.
    SetAdmin {
        by: Named,
        user: Named,
        admin: bool,
        at: i64,
    },
    /// The owner hands the group over to a member.
    Transfer {
        by: Named,
        to: Named,
        at: i64,
    },
    /// The owner or an admin sets the group's picture.
    SetAvatar {
        by: Named,
        avatar: String,
        at: i64,
    },
    SetRemark {
        by: Named,
        remark: String,
        at: i64,
    },
    SetJoinPolicy {
        by: Named,
        invite_confirm: bool,
        at: i64,
    },
    /// `by` invites `user`; `by == user` is a self-join (QR code, visitor).
    Invite {
        by: Named,
        user: Named,
        user_active: bool,
        consent: Consent,
        max_size: usize,
        at: i64,
    },
    /// The invited user (`by`) accepts or declines an invitation.
    AnswerInvitation {
        by: Named,
        agree: bool,
        max_size: usize,
        at: i64,
    },
    AnswerJoin {
        by: Named,
        user: Named,
        agree: bool,
        max_size: usize,
        at: i64,
    },
    Remove {
        by: Named,
        user: Named,
        at: i64,
    },
    SetNickname {
        by: Named,
        nickname: String,
        at: i64,
    },
    /// The owner dissolves the group; a member leaves it.
    DeleteOrQuit {
        by: Named,
        at: i64,
    },
    /// The owner mutes a member until `until` (ms; `None`: until lifted), or lifts it.
    Mute {
        by: Named,
        user: Named,
        muted: bool,
        until: Option<i64>,
        at: i64,
    },
    /// The owner lets new members read the history from before they joined, or not.
    ShareHistory {
        by: Named,
        shared: bool,
        at: i64,
    },
    /// The owner or an admin lets only the managers speak, or everyone again.
    MuteAll {
        by: Named,
        muted: bool,
        at: i64,
    },
    /// An operator dissolves the group (`by` names the operator as members see it).
    Dissolve {
        by: Named,
        at: i64,
    },
    /// The owner or an operator (`operator`) locks the group (nobody sends) or unlocks it.
    Lock {
        by: Named,
        operator: bool,
        locked: bool,
        at: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("no such group")]
    NotFound,
    #[error("the group was dissolved")]
    Dissolved,
    #[error("the group is locked")]
    Locked,
    #[error("only the owner may do this")]
    NotOwner,
    #[error("not a member of the group")]
    NotMember,
    #[error("already a member")]
    AlreadyMember,
    #[error("the group is full")]
    Full,
    #[error("a group needs at least one other member")]
    TooFewMembers,
    #[error("the user does not exist or is disabled")]
    UserUnavailable,
    #[error("no pending join request for this user")]
    NoPendingRequest,
    #[error("a join request is already pending")]
    AlreadyPending,
    #[error("the owner cannot remove themself; dissolve the group instead")]
    OwnerCannotLeave,
    #[error("muted in this group")]
    Muted,
    #[error("only the owner and admins speak in this group now")]
    AllMuted,
    #[error("the owner cannot be muted")]
    OwnerCannotBeMuted,
    #[error("only the owner or an admin may do this")]
    NotManager,
    #[error("the owner and admins are out of an admin's reach")]
    Outranked,
    #[error("a group has at most 10 admins")]
    TooManyAdmins,
    #[error("already the owner")]
    AlreadyOwner,
    #[error("a mute must end in the future")]
    MuteInPast,
    #[error("already exists")]
    AlreadyExists,
    #[error("the user has blocked the inviter")]
    Blocked,
    #[error("the user was invited already")]
    AlreadyInvited,
    #[error("no invitation to this group")]
    NoInvitation,
    #[error("a mentioned user is not a member")]
    MentionedNotMember,
}

fn changed(group: &Group, by: Named, change: GroupChange, at: i64) -> Vec<Event> {
    vec![Event::GroupChanged(GroupChanged { group_id: group.id, by, change, at })]
}

/// A group that can still change (not dissolved).
fn open(state: &State) -> Result<&Group, GroupError> {
    let group = state.as_ref().ok_or(GroupError::NotFound)?;
    if group.status == GroupStatus::Dissolved {
        return Err(GroupError::Dissolved);
    }
    Ok(group)
}

/// The group, if `by` is its owner or an admin.
fn managed<'a>(state: &'a State, by: &Named) -> Result<&'a Group, GroupError> {
    let group = open(state)?;
    if !group.manages(by.id) {
        return Err(GroupError::NotManager);
    }
    Ok(group)
}

fn owned<'a>(state: &'a State, by: &Named) -> Result<&'a Group, GroupError> {
    let group = open(state)?;
    if group.owner != by.id {
        return Err(GroupError::NotOwner);
    }
    Ok(group)
}

pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, GroupError> {
    match command {
        Command::Create { group_id, owner, name, members, max_size, at } => {
            if state.is_some() {
                return Err(GroupError::AlreadyExists);
            }
            let mut all = vec![owner.clone()];
            for m in members {
                if !all.iter().any(|a| a.id == m.id) {
                    all.push(m);
                }
            }
            if all.len() < 2 {
                return Err(GroupError::TooFewMembers);
            }
            if all.len() > max_size {
                return Err(GroupError::Full);
            }
            Ok(vec![Event::GroupCreated(GroupCreated { group_id, owner, name, members: all, at })])
        }
        Command::Rename { by, name, at } => {
            let g = managed(state, &by)?;
            Ok(changed(g, by, GroupChange::Renamed { name }, at))
        }
        Command::SetAdmin { by, user, admin, at } => {
            let g = owned(state, &by)?;
            let member = g.member(user.id).ok_or(GroupError::NotMember)?;
            if user.id == g.owner {
                return Err(GroupError::Outranked);
            }
            if admin && !member.admin && g.admins() >= MAX_ADMINS {
                return Err(GroupError::TooManyAdmins);
            }
            Ok(changed(g, by, GroupChange::AdminSet { user, admin }, at))
        }
        Command::Transfer { by, to, at } => {
            let g = owned(state, &by)?;
            if to.id == g.owner {
                return Err(GroupError::AlreadyOwner);
            }
            if !g.is_member(to.id) {
                return Err(GroupError::NotMember);
            }
            Ok(changed(g, by, GroupChange::OwnerChanged { to }, at))
        }
        Command::SetAvatar { by, avatar, at } => {
            let g = managed(state, &by)?;
            Ok(changed(g, by, GroupChange::AvatarChanged { avatar }, at))
        }
        Command::SetRemark { by, remark, at } => {
            let g = managed(state, &by)?;
            Ok(changed(g, by, GroupChange::RemarkChanged { remark }, at))
        }
        Command::SetJoinPolicy { by, invite_confirm, at } => {
            let g = owned(state, &by)?;
            Ok(changed(g, by, GroupChange::JoinPolicyChanged { invite_confirm }, at))
        }
        Command::Invite { by, user, user_active, consent, max_size, at } => {
            let g = open(state)?;
            if g.status == GroupStatus::Locked {
                return Err(GroupError::Locked);
            }
            let self_join = by.id == user.id;
            if !self_join && !g.is_member(by.id) {
                return Err(GroupError::NotMember);
            }
            if !user_active {
                return Err(GroupError::UserUnavailable);
            }
            if g.is_member(user.id) {
                return Err(GroupError::AlreadyMember);
            }
            if g.members.len() >= max_size {
                return Err(GroupError::Full);
            }
            if !self_join {
                match consent {
                    Consent::Refused => return Err(GroupError::Blocked),
                    Consent::Needed if g.invited.iter().any(|(u, _)| *u == user.id) => return Err(GroupError::AlreadyInvited),
                    Consent::Needed if g.pending.iter().any(|(u, _)| *u == user.id) => return Err(GroupError::AlreadyPending),
                    Consent::Needed => return Ok(changed(g, by, GroupChange::Invited { user }, at)),
                    Consent::Given => {}
                }
            }
            if g.manages(by.id) || !g.invite_confirm {
                return Ok(changed(g, by, GroupChange::MemberAdded { user }, at));
            }
            if g.pending.iter().any(|(u, _)| *u == user.id) {
                return Err(GroupError::AlreadyPending);
            }
            Ok(changed(g, by, GroupChange::JoinRequested { user }, at))
        }
        Command::AnswerInvitation { by, agree, max_size, at } => {
            let g = open(state)?;
            let &(_, inviter) = g.invited.iter().find(|(u, _)| *u == by.id).ok_or(GroupError::NoInvitation)?;
            if !agree {
                return Ok(changed(g, by, GroupChange::InvitationDeclined, at));
            }
            if g.status == GroupStatus::Locked {
                return Err(GroupError::Locked);
            }
            if g.is_member(by.id) {
                return Err(GroupError::AlreadyMember);
            }
            if g.members.len() >= max_size {
                return Err(GroupError::Full);
            }
            // Accepted: now the join policy decides, as for an invitation by a friend.
            let user = by.clone();
            if g.manages(inviter) || !g.invite_confirm {
                return Ok(changed(g, by, GroupChange::MemberAdded { user }, at));
            }
            if g.pending.iter().any(|(u, _)| *u == user.id) {
                return Err(GroupError::AlreadyPending);
            }
            Ok(changed(g, by, GroupChange::JoinRequested { user }, at))
        }
        Command::AnswerJoin { by, user, agree, max_size, at } => {
            let g = managed(state, &by)?;
            if !g.pending.iter().any(|(u, _)| *u == user.id) {
                return Err(GroupError::NoPendingRequest);
            }
            if !agree {
                return Ok(changed(g, by, GroupChange::JoinRefused { user }, at));
            }
            if g.is_member(user.id) {
                return Err(GroupError::AlreadyMember);
            }
            if g.members.len() >= max_size {
                return Err(GroupError::Full);
            }
            Ok(changed(g, by, GroupChange::MemberAdded { user }, at))
        }
        Command::Remove { by, user, at } => {
            let g = managed(state, &by)?;
            if user.id == g.owner {
                return Err(GroupError::OwnerCannotLeave);
            }
            if !g.is_member(user.id) {
                return Err(GroupError::NotMember);
            }
            g.outranks(by.id, user.id)?;
            Ok(changed(g, by, GroupChange::MemberRemoved { user }, at))
        }
        Command::SetNickname { by, nickname, at } => {
            let g = open(state)?;
            if !g.is_member(by.id) {
                return Err(GroupError::NotMember);
            }
            Ok(changed(g, by, GroupChange::NicknameChanged { nickname }, at))
        }
        Command::DeleteOrQuit { by, at } => {
            let g = open(state)?;
            if !g.is_member(by.id) {
                return Err(GroupError::NotMember);
            }
            let change = if by.id == g.owner { GroupChange::Dissolved } else { GroupChange::MemberLeft };
            Ok(changed(g, by, change, at))
        }
        Command::Mute { by, user, muted, until, at } => {
            let g = managed(state, &by)?;
            if !g.is_member(user.id) {
                return Err(GroupError::NotMember);
            }
            if user.id == g.owner {
                return Err(GroupError::OwnerCannotBeMuted);
            }
            g.outranks(by.id, user.id)?;
            if muted && until.is_some_and(|t| t <= at) {
                return Err(GroupError::MuteInPast);
            }
            let until = until.filter(|_| muted);
            Ok(changed(g, by, GroupChange::MemberMuted { user, muted, until }, at))
        }
        Command::ShareHistory { by, shared, at } => {
            let g = owned(state, &by)?;
            Ok(changed(g, by, GroupChange::HistoryShared { shared }, at))
        }
        Command::MuteAll { by, muted, at } => {
            let g = managed(state, &by)?;
            Ok(changed(g, by, GroupChange::AllMuted { muted }, at))
        }
        Command::Dissolve { by, at } => {
            let g = state.as_ref().ok_or(GroupError::NotFound)?;
            if g.status == GroupStatus::Dissolved {
                return Err(GroupError::Dissolved);
            }
            Ok(changed(g, by, GroupChange::Dissolved, at))
        }
        Command::Lock { by, operator, locked, at } => {
            let g = state.as_ref().ok_or(GroupError::NotFound)?;
            if g.status == GroupStatus::Dissolved {
                return Err(GroupError::Dissolved);
            }
            if !operator && by.id != g.owner {
                return Err(GroupError::NotOwner);
            }
            Ok(changed(g, by, GroupChange::Locked { locked }, at))
        }
    }
}

/// May `from` send to this group at `now`?
pub fn may_send(state: &State, from: UserId, now: i64) -> Result<&Group, GroupError> {
    let g = state.as_ref().ok_or(GroupError::NotFound)?;
    match g.status {
        GroupStatus::Dissolved => return Err(GroupError::Dissolved),
        GroupStatus::Locked => return Err(GroupError::Locked),
        GroupStatus::Normal => {}
    }
    let member = g.member(from).ok_or(GroupError::NotMember)?;
    if member.is_muted(now) {
        return Err(GroupError::Muted);
    }
    if g.all_muted && !g.manages(from) {
        return Err(GroupError::AllMuted);
    }
    Ok(g)
}

/// The mentions `from` may put in a message to `g`: everyone only for the owner and
/// admins; members only (the sender and repeats dropped).
pub fn may_mention(g: &Group, from: UserId, mentions: &Mentions) -> Result<Mentions, GroupError> {
    if mentions.all {
        return if g.manages(from) { Ok(Mentions { users: Vec::new(), all: true }) } else { Err(GroupError::NotManager) };
    }
    let mut users: Vec<UserId> = Vec::with_capacity(mentions.users.len());
    for user in &mentions.users {
        if g.member(*user).is_none() {
            return Err(GroupError::MentionedNotMember);
        }
        if *user != from && !users.contains(user) {
            users.push(*user);
        }
    }
    Ok(Mentions { users, all: false })
}

pub fn evolve(state: State, event: &Event) -> State {
    match (state, event) {
        (None, Event::GroupCreated(e)) => Some(Group {
            id: e.group_id,
            owner: e.owner.id,
            name: e.name.clone(),
            remark: String::new(),
            avatar: String::new(),
            invite_confirm: true,
            status: GroupStatus::Normal,
            created_at: e.at,
            members: e
                .members
                .iter()
                .map(|m| Member { user_id: m.id, nickname: String::new(), muted: false, muted_until: None, admin: false })
                .collect(),
            pending: Vec::new(),
            invited: Vec::new(),
            all_muted: false,
            share_history: false,
        }),
        (Some(mut g), Event::GroupChanged(e)) => {
            match &e.change {
                GroupChange::Renamed { name } => g.name = name.clone(),
                GroupChange::RemarkChanged { remark } => g.remark = remark.clone(),
                GroupChange::AvatarChanged { avatar } => g.avatar = avatar.clone(),
                GroupChange::AdminSet { user, admin } => {
                    if let Some(m) = g.members.iter_mut().find(|m| m.user_id == user.id) {
                        m.admin = *admin;
                    }
                }
                GroupChange::OwnerChanged { to } => {
                    g.owner = to.id;
                    if let Some(m) = g.members.iter_mut().find(|m| m.user_id == to.id) {
                        m.admin = false;
                    }
                }
                GroupChange::JoinPolicyChanged { invite_confirm } => g.invite_confirm = *invite_confirm,
                GroupChange::MemberAdded { user } => {
                    g.pending.retain(|(u, _)| *u != user.id);
                    g.invited.retain(|(u, _)| *u != user.id);
                    if !g.is_member(user.id) {
                        g.members.push(Member { user_id: user.id, nickname: String::new(), muted: false, muted_until: None, admin: false });
                    }
                }
                GroupChange::JoinRequested { user } => {
                    g.invited.retain(|(u, _)| *u != user.id);
                    g.pending.push((user.id, e.by.id));
                }
                GroupChange::Invited { user } => {
                    g.invited.retain(|(u, _)| *u != user.id);
                    g.invited.push((user.id, e.by.id));
                }
                GroupChange::InvitationDeclined => g.invited.retain(|(u, _)| *u != e.by.id),
                GroupChange::JoinRefused { user } => g.pending.retain(|(u, _)| *u != user.id),
                GroupChange::MemberRemoved { user } => g.members.retain(|m| m.user_id != user.id),
                GroupChange::MemberLeft => g.members.retain(|m| m.user_id != e.by.id),
                GroupChange::NicknameChanged { nickname } => {
                    if let Some(m) = g.members.iter_mut().find(|m| m.user_id == e.by.id) {
                        m.nickname = nickname.clone();
                    }
                }
                GroupChange::MemberMuted { user, muted, until } => {
                    if let Some(m) = g.members.iter_mut().find(|m| m.user_id == user.id) {
                        m.muted = *muted;
                        m.muted_until = *until;
                    }
                }
                GroupChange::AllMuted { muted } => g.all_muted = *muted,
                GroupChange::HistoryShared { shared } => g.share_history = *shared,
                GroupChange::Locked { locked } => g.status = if *locked { GroupStatus::Locked } else { GroupStatus::Normal },
                GroupChange::Dissolved => g.status = GroupStatus::Dissolved,
            }
            Some(g)
        }
        (state, _) => state,
    }
}

/// The text of the group `system` message an event shows in the conversation.
pub fn system_text(change: &GroupChange, by: &Named) -> Option<String> {
    Some(match change {
        GroupChange::Renamed { name } => format!("{} 修改群名称为 {}", by.name, name),
        GroupChange::RemarkChanged { remark } => format!("{} 修改了群公告: {}", by.name, remark),
        GroupChange::AvatarChanged { .. } => format!("{} 修改了群头像", by.name),
        GroupChange::AdminSet { user, admin: true } => format!("{} 将 {} 设为管理员", by.name, user.name),
        GroupChange::AdminSet { user, admin: false } => format!("{} 取消了 {} 的管理员身份", by.name, user.name),
        GroupChange::OwnerChanged { to } => format!("{} 将群主转让给 {}", by.name, to.name),
        GroupChange::JoinPolicyChanged { invite_confirm: true } => format!("{} 开启了进群验证", by.name),
        GroupChange::JoinPolicyChanged { invite_confirm: false } => format!("{} 关闭了进群验证", by.name),
        GroupChange::MemberAdded { user } if user.id == by.id => format!("{} 加入了群聊", user.name),
        GroupChange::MemberAdded { user } => format!("{} 邀请 {} 加入了群聊", by.name, user.name),
        GroupChange::MemberRemoved { user } => format!("{} 将 {} 移出了群聊", by.name, user.name),
        GroupChange::MemberLeft => format!("{} 退出了群聊", by.name),
        GroupChange::NicknameChanged { nickname } => format!("{} 修改群昵称为 {}", by.name, nickname),
        GroupChange::MemberMuted { user, muted: true, .. } => format!("{} 已被禁言", user.name),
        GroupChange::MemberMuted { user, muted: false, .. } => format!("{} 已被解除禁言", user.name),
        GroupChange::AllMuted { muted: true } => format!("{} 开启了全员禁言", by.name),
        GroupChange::AllMuted { muted: false } => format!("{} 关闭了全员禁言", by.name),
        GroupChange::HistoryShared { shared: true } => format!("{} 允许新成员查看入群前的消息", by.name),
        GroupChange::HistoryShared { shared: false } => format!("{} 关闭了新成员查看入群前的消息", by.name),
        GroupChange::Locked { locked: true } => "该群已被锁定".to_owned(),
        GroupChange::Locked { locked: false } => "该群已解除锁定".to_owned(),
        GroupChange::Dissolved => format!("{} 解散了该群", by.name),
        GroupChange::JoinRequested { .. }
        | GroupChange::JoinRefused { .. }
        | GroupChange::Invited { .. }
        | GroupChange::InvitationDeclined => return None,
    })
}

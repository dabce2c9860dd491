//! The group aggregate's invitation rules (issue 11, item 10): consent before joining.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_domain::group::{self, Command, Consent, GroupChange, GroupChanged, GroupCreated, GroupError, Named, State};
use im_domain::{Event, UserId};

mod support;
use support::Aggregate;

const GROUP: Aggregate<State, Command, GroupError> =
    Aggregate { initial: <State as Default>::default, decide: group::decide, evolve: group::evolve };

const AT: i64 = 1_700_000_000_000;

fn named(id: i64) -> Named {
    Named { id: UserId(id), name: format!("u{id}") }
}

/// Group 1: owner 1, member 2; `invite_confirm` as given.
fn group(invite_confirm: bool) -> State {
    let created = Event::GroupCreated(GroupCreated {
        group_id: im_domain::GroupId(1),
        owner: named(1),
        name: "g".into(),
        members: vec![named(1), named(2)],
        at: AT,
    });
    let mut state = GROUP.given(vec![created]).state().clone();
    if !invite_confirm {
        state = apply(state, Command::SetJoinPolicy { by: named(1), invite_confirm: false, at: AT });
    }
    state
}

fn decide(state: &State, command: Command) -> Result<Vec<GroupChange>, GroupError> {
    GROUP.given_state(state.clone()).when(command).result().map(|events| {
        events
            .into_iter()
            .map(|e| match e {
                Event::GroupChanged(GroupChanged { change, .. }) => change,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    })
}

fn apply(state: State, command: Command) -> State {
    GROUP.given_state(state).when(command).ok()
}

fn invite(by: i64, user: i64, consent: Consent) -> Command {
    Command::Invite { by: named(by), user: named(user), user_active: true, consent, max_size: 500, at: AT }
}

fn answer(by: i64, agree: bool) -> Command {
    Command::AnswerInvitation { by: named(by), agree, max_size: 500, at: AT }
}

#[test]
fn a_stranger_is_asked_even_in_an_open_group() {
    let state = group(false);
    assert_eq!(decide(&state, invite(2, 3, Consent::Needed)), Ok(vec![GroupChange::Invited { user: named(3) }]));
    assert_eq!(decide(&state, invite(2, 3, Consent::Given)), Ok(vec![GroupChange::MemberAdded { user: named(3) }]), "a friend joins");
    let state = apply(state, invite(2, 3, Consent::Needed));
    assert!(!state.as_ref().unwrap().is_member(UserId(3)));
    assert_eq!(decide(&state, invite(1, 3, Consent::Needed)), Err(GroupError::AlreadyInvited));
    let state = apply(state, answer(3, true));
    assert!(state.as_ref().unwrap().is_member(UserId(3)), "accepting an open group's invitation joins");
    assert_eq!(decide(&state, answer(3, true)), Err(GroupError::NoInvitation));
}

#[test]
fn an_accepted_invitation_from_a_member_still_needs_the_owner_when_confirming() {
    let state = apply(group(true), invite(2, 3, Consent::Needed));
    assert_eq!(decide(&state, answer(3, true)), Ok(vec![GroupChange::JoinRequested { user: named(3) }]));
    let state = apply(state, answer(3, true));
    assert_eq!(decide(&state, invite(2, 3, Consent::Needed)), Err(GroupError::AlreadyPending));
    // The owner's own invitation, once accepted, joins at once.
    let state = apply(group(true), invite(1, 4, Consent::Needed));
    assert_eq!(decide(&state, answer(4, true)), Ok(vec![GroupChange::MemberAdded { user: named(4) }]));
}

#[test]
fn a_declined_invitation_is_gone_and_a_block_refuses_at_once() {
    let state = apply(group(false), invite(2, 3, Consent::Needed));
    let state = apply(state, answer(3, false));
    let g = state.as_ref().unwrap();
    assert!(!g.is_member(UserId(3)) && g.invited.is_empty());
    assert_eq!(decide(&state, answer(3, true)), Err(GroupError::NoInvitation));
    assert_eq!(decide(&state, invite(1, 5, Consent::Refused)), Err(GroupError::Blocked), "even the owner");
    // Joining oneself (a QR code) needs no consent from anyone.
    assert_eq!(decide(&state, invite(6, 6, Consent::Refused)), Ok(vec![GroupChange::MemberAdded { user: named(6) }]));
}

fn mute(by: i64, user: i64, muted: bool, until: Option<i64>) -> Command {
    Command::Mute { by: named(by), user: named(user), muted, until, at: AT }
}

#[test]
fn the_owner_mutes_a_member_for_a_while_or_until_lifted() {
    let state = group(false);
    assert_eq!(decide(&state, mute(2, 1, true, None)), Err(GroupError::NotManager));
    assert_eq!(decide(&state, mute(1, 1, true, None)), Err(GroupError::OwnerCannotBeMuted));
    assert_eq!(decide(&state, mute(1, 9, true, None)), Err(GroupError::NotMember));
    assert_eq!(decide(&state, mute(1, 2, true, Some(AT))), Err(GroupError::MuteInPast));
    let muted = apply(state.clone(), mute(1, 2, true, Some(AT + 60_000)));
    assert_eq!(group::may_send(&muted, UserId(2), AT + 59_999).err(), Some(GroupError::Muted));
    assert!(group::may_send(&muted, UserId(2), AT + 60_000).is_ok(), "a mute for a while ends by itself");
    let forever = apply(state, mute(1, 2, true, None));
    assert_eq!(group::may_send(&forever, UserId(2), i64::MAX).err(), Some(GroupError::Muted));
    let lifted = apply(forever, mute(1, 2, false, None));
    assert!(group::may_send(&lifted, UserId(2), AT).is_ok());
}

#[test]
fn mute_all_leaves_only_the_owner_and_a_lock_silences_everyone() {
    let state = group(false);
    assert_eq!(decide(&state, Command::MuteAll { by: named(2), muted: true, at: AT }), Err(GroupError::NotManager));
    let hushed = apply(state.clone(), Command::MuteAll { by: named(1), muted: true, at: AT });
    assert_eq!(group::may_send(&hushed, UserId(2), AT).err(), Some(GroupError::AllMuted));
    assert!(group::may_send(&hushed, UserId(1), AT).is_ok());
    let lock = |by: i64, operator: bool, locked: bool| Command::Lock { by: named(by), operator, locked, at: AT };
    assert_eq!(decide(&state, lock(2, false, true)), Err(GroupError::NotOwner));
    let locked = apply(state, lock(9, true, true));
    assert_eq!(group::may_send(&locked, UserId(1), AT).err(), Some(GroupError::Locked));
    let unlocked = apply(locked, lock(1, false, false));
    assert!(group::may_send(&unlocked, UserId(1), AT).is_ok());
}

fn set_admin(by: i64, user: i64, admin: bool) -> Command {
    Command::SetAdmin { by: named(by), user: named(user), admin, at: AT }
}

#[test]
fn admins_help_run_the_group_but_only_the_owner_appoints_transfers_and_dissolves() {
    // Group 1: owner 1, members 2 and 3 (and 4).
    let mut state = group(false);
    for user in [3, 4] {
        state = apply(state, invite(1, user, Consent::Given));
    }
    assert_eq!(decide(&state, set_admin(2, 3, true)), Err(GroupError::NotOwner));
    assert_eq!(decide(&state, set_admin(1, 1, true)), Err(GroupError::Outranked));
    assert_eq!(decide(&state, set_admin(1, 9, true)), Err(GroupError::NotMember));
    assert_eq!(decide(&state, Command::Rename { by: named(2), name: "x".into(), at: AT }), Err(GroupError::NotManager));
    let state = apply(state, set_admin(1, 2, true));
    // The admin renames, mutes and removes ordinary members, not the owner or other admins.
    assert!(decide(&state, Command::Rename { by: named(2), name: "x".into(), at: AT }).is_ok());
    assert!(decide(&state, mute(2, 3, true, None)).is_ok());
    assert_eq!(decide(&state, mute(2, 1, true, None)), Err(GroupError::OwnerCannotBeMuted));
    let with_two = apply(state.clone(), set_admin(1, 3, true));
    assert_eq!(decide(&with_two, mute(2, 3, true, None)), Err(GroupError::Outranked));
    assert_eq!(decide(&with_two, Command::Remove { by: named(2), user: named(3), at: AT }), Err(GroupError::Outranked));
    assert!(decide(&with_two, Command::Remove { by: named(1), user: named(3), at: AT }).is_ok(), "the owner removes an admin");
    assert!(decide(&state, Command::Remove { by: named(2), user: named(4), at: AT }).is_ok());
    // Mute-all leaves the owner and admins speaking.
    let hushed = apply(state.clone(), Command::MuteAll { by: named(2), muted: true, at: AT });
    assert!(group::may_send(&hushed, UserId(2), AT).is_ok());
    assert_eq!(group::may_send(&hushed, UserId(3), AT).err(), Some(GroupError::AllMuted));
    // Only the owner transfers; the new owner is no longer an admin, the old one a member.
    assert_eq!(decide(&state, Command::Transfer { by: named(2), to: named(3), at: AT }), Err(GroupError::NotOwner));
    assert_eq!(decide(&state, Command::Transfer { by: named(1), to: named(1), at: AT }), Err(GroupError::AlreadyOwner));
    let moved = apply(state, Command::Transfer { by: named(1), to: named(2), at: AT });
    let g = moved.as_ref().unwrap();
    assert_eq!(g.owner, UserId(2));
    assert!(!g.member(UserId(2)).unwrap().admin && g.is_member(UserId(1)) && !g.manages(UserId(1)));
    assert_eq!(decide(&moved, set_admin(1, 3, true)), Err(GroupError::NotOwner), "the old owner appoints no one");
}

#[test]
fn at_most_ten_admins() {
    let mut state = group(false);
    for user in 3..=12 {
        state = apply(state, invite(1, user, Consent::Given));
    }
    for user in 2..=11 {
        state = apply(state, set_admin(1, user, true));
    }
    assert_eq!(state.as_ref().unwrap().admins(), group::MAX_ADMINS);
    assert_eq!(decide(&state, set_admin(1, 12, true)), Err(GroupError::TooManyAdmins));
    assert!(decide(&state, set_admin(1, 11, true)).is_ok(), "re-appointing an admin is no new admin");
}

#[test]
fn mentions_name_members_and_everyone_only_for_managers() {
    use im_domain::message::Mentions;
    let state = group(true);
    let g = state.as_ref().unwrap();
    let some = |ids: &[i64]| Mentions { users: ids.iter().copied().map(UserId).collect(), all: false };
    let everyone = Mentions { users: Vec::new(), all: true };
    // The sender and repeats are dropped; the others kept in order.
    assert_eq!(group::may_mention(g, UserId(2), &some(&[1, 2, 1])), Ok(some(&[1])));
    assert_eq!(group::may_mention(g, UserId(2), &some(&[3])), Err(GroupError::MentionedNotMember));
    assert_eq!(group::may_mention(g, UserId(2), &everyone), Err(GroupError::NotManager));
    assert_eq!(group::may_mention(g, UserId(1), &everyone), Ok(everyone.clone()));
    assert!(everyone.names(UserId(7)) && some(&[1]).names(UserId(1)) && !some(&[1]).names(UserId(2)));
}

//! The friendship aggregate (one stream per pair of users), in given/when/then style:
//! `given(past events).when(command).then(new events)` or `.then_err(reason)`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_domain::UserId;
use im_domain::event::{
    Event, FriendAdded, FriendRequestAccepted, FriendRequestRefused, FriendRequested, FriendSideChanged, FriendshipEnded,
};
use im_domain::friendship::{self, Choice, Command, FriendError, Pair, RequestStatus, Side, SideChange};
use proptest::prelude::*;

mod support;
use support::{Aggregate, Given};

const FRIENDSHIP: Aggregate<Pair, Command, FriendError> =
    Aggregate { initial: Pair::default, decide: friendship::decide, evolve: friendship::evolve };

fn given(events: Vec<Event>) -> Given<Pair, Command, FriendError> {
    FRIENDSHIP.given(events)
}

fn fold(state: Pair, events: &[Event]) -> Pair {
    FRIENDSHIP.fold(state, events)
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const A: UserId = UserId(1);
const B: UserId = UserId(2);
const C: UserId = UserId(3);
const T0: i64 = 1_700_000_000_000;
const T1: i64 = T0 + 1_000;
const T2: i64 = T0 + 2_000;
const T3: i64 = T0 + 3_000;

fn choice_a() -> Choice {
    Choice { nickname: "Bobby".into(), lookme: false, lookhim: true }
}

fn choice_b() -> Choice {
    Choice { nickname: "Ali".into(), lookme: true, lookhim: false }
}

fn side_of(choice: &Choice) -> Side {
    Side { nickname: choice.nickname.clone(), lookme: choice.lookme, lookhim: choice.lookhim, ..Side::default() }
}

fn request(request_id: i64, from: UserId, to: UserId, choice: Choice, at: i64) -> Command {
    Command::Request { request_id, from, to, choice, target_active: true, retry_after: 0, at }
}

fn answer(request_id: i64, by: UserId, agree: bool, choice: Choice, at: i64) -> Command {
    Command::Answer { request_id, by, agree, choice, at }
}

fn add_directly(from: UserId, to: UserId, choice: Choice, at: i64) -> Command {
    Command::AddDirectly { from, to, choice, target_active: true, target_confirms: false, at }
}

fn requested(request_id: i64, from: UserId, to: UserId, choice: &Choice, at: i64) -> Event {
    Event::FriendRequested(FriendRequested {
        request_id,
        from,
        to,
        nickname: choice.nickname.clone(),
        lookme: choice.lookme,
        lookhim: choice.lookhim,
        at,
    })
}

fn accepted(request_id: i64, from: UserId, to: UserId, applicant: &Choice, addressee: &Choice, at: i64) -> Event {
    Event::FriendRequestAccepted(FriendRequestAccepted {
        request_id,
        from,
        to,
        applicant_side: side_of(applicant),
        addressee_side: side_of(addressee),
        at,
    })
}

fn refused(request_id: i64, from: UserId, to: UserId, at: i64) -> Event {
    Event::FriendRequestRefused(FriendRequestRefused { request_id, from, to, at })
}

fn added(from: UserId, to: UserId, choice: &Choice, at: i64) -> Event {
    Event::FriendAdded(FriendAdded { from, to, from_side: side_of(choice), at })
}

fn side_changed(user_id: UserId, friend_id: UserId, change: SideChange, at: i64) -> Event {
    Event::FriendSideChanged(FriendSideChanged { user_id, friend_id, change, at })
}

fn ended(user_id: UserId, friend_id: UserId, at: i64) -> Event {
    Event::FriendshipEnded(FriendshipEnded { user_id, friend_id, at })
}

/// A asked B (request 1).
fn a_pending_request() -> Vec<Event> {
    vec![requested(1, A, B, &choice_a(), T0)]
}

/// A asked B (request 1), B agreed.
fn friends() -> Vec<Event> {
    vec![requested(1, A, B, &choice_a(), T0), accepted(1, A, B, &choice_a(), &choice_b(), T1)]
}

fn status(state: &Pair, id: i64) -> RequestStatus {
    state.request(id).expect("request exists").status
}

/// Every command that needs the pair to be friends, acted by `by`.
fn friend_commands(by: UserId) -> Vec<Command> {
    vec![
        Command::SetStar { by, star: true, at: T2 },
        Command::SetVisibility { by, lookme: false, lookhim: false, at: T2 },
        Command::SetRemark { by, nickname: Some("x".into()), tags: Some("t".into()), at: T2 },
        Command::End { by, at: T2 },
    ]
}

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

#[test]
fn a_request_on_an_empty_pair_is_pending() {
    let state = given(vec![]).when(request(1, A, B, choice_a(), T0)).then(vec![requested(1, A, B, &choice_a(), T0)]);
    assert!(!state.friends);
    assert!(state.sides.is_empty());
    let r = state.request(1).unwrap();
    assert_eq!((r.from, r.to, r.status), (A, B, RequestStatus::Pending));
    assert_eq!(r.side, side_of(&choice_a()));
}

#[test]
fn a_request_to_yourself_is_refused() {
    given(vec![]).when(request(1, A, A, choice_a(), T0)).then_err(FriendError::SelfRequest);
}

#[test]
fn a_request_to_an_unavailable_user_is_refused() {
    given(vec![])
        .when(Command::Request { request_id: 1, from: A, to: B, choice: choice_a(), target_active: false, retry_after: 0, at: T0 })
        .then_err(FriendError::TargetUnavailable);
}

#[test]
fn a_request_between_friends_is_refused() {
    given(friends()).when(request(2, A, B, choice_a(), T2)).then_err(FriendError::AlreadyFriends);
    given(friends()).when(request(2, B, A, choice_b(), T2)).then_err(FriendError::AlreadyFriends);
}

#[test]
fn a_second_request_from_the_same_applicant_is_refused_while_one_is_pending() {
    given(a_pending_request()).when(request(2, A, B, choice_a(), T1)).then_err(FriendError::RequestPending);
}

#[test]
fn after_a_refusal_a_new_request_is_allowed() {
    let mut events = a_pending_request();
    events.push(refused(1, A, B, T1));
    let state = given(events).when(request(2, A, B, choice_a(), T2)).then(vec![requested(2, A, B, &choice_a(), T2)]);
    assert_eq!(status(&state, 1), RequestStatus::Refuse);
    assert_eq!(status(&state, 2), RequestStatus::Pending);
}

#[test]
fn crossing_requests_are_both_pending() {
    let state = given(a_pending_request()).when(request(2, B, A, choice_b(), T1)).then(vec![requested(2, B, A, &choice_b(), T1)]);
    assert_eq!(status(&state, 1), RequestStatus::Pending);
    assert_eq!(status(&state, 2), RequestStatus::Pending);
    assert!(!state.friends);
}

// ---------------------------------------------------------------------------
// Answer
// ---------------------------------------------------------------------------

#[test]
fn answering_an_unknown_request_is_refused() {
    given(vec![]).when(answer(1, B, true, choice_b(), T1)).then_err(FriendError::NoSuchRequest);
    given(a_pending_request()).when(answer(9, B, true, choice_b(), T1)).then_err(FriendError::NoSuchRequest);
}

#[test]
fn only_the_addressee_answers() {
    for agree in [true, false] {
        given(a_pending_request()).when(answer(1, A, agree, choice_a(), T1)).then_err(FriendError::NotAddressee);
        given(a_pending_request()).when(answer(1, C, agree, choice_a(), T1)).then_err(FriendError::NotAddressee);
    }
}

#[test]
fn a_handled_request_cannot_be_answered_again() {
    let mut refused_already = a_pending_request();
    refused_already.push(refused(1, A, B, T1));
    for agree in [true, false] {
        given(refused_already.clone()).when(answer(1, B, agree, choice_b(), T2)).then_err(FriendError::AlreadyHandled);
        given(friends()).when(answer(1, B, agree, choice_b(), T2)).then_err(FriendError::AlreadyHandled);
    }
}

#[test]
fn refusing_marks_the_request_refused() {
    let state = given(a_pending_request()).when(answer(1, B, false, choice_b(), T1)).then(vec![refused(1, A, B, T1)]);
    assert_eq!(status(&state, 1), RequestStatus::Refuse);
    assert!(!state.friends);
    assert!(state.sides.is_empty());
}

#[test]
fn agreeing_makes_both_sides_friends_with_their_choices() {
    let state =
        given(a_pending_request()).when(answer(1, B, true, choice_b(), T1)).then(vec![accepted(1, A, B, &choice_a(), &choice_b(), T1)]);
    assert!(state.friends);
    assert_eq!(state.sides.len(), 2);
    assert_eq!(state.side(A), Some(&side_of(&choice_a())), "the applicant's side comes from the request");
    assert_eq!(state.side(B), Some(&side_of(&choice_b())), "the addressee's side comes from the answer");
    assert_eq!(status(&state, 1), RequestStatus::Agree);
}

#[test]
fn accepting_settles_every_pending_request_of_the_pair() {
    let state = given(vec![requested(1, A, B, &choice_a(), T0), requested(2, B, A, &choice_b(), T1)])
        .when(answer(1, B, true, choice_b(), T2))
        .then(vec![accepted(1, A, B, &choice_a(), &choice_b(), T2)]);
    assert_eq!(status(&state, 1), RequestStatus::Agree);
    assert_eq!(status(&state, 2), RequestStatus::Agree, "the crossing request is settled too");

    // The crossing request cannot produce a second acceptance.
    FRIENDSHIP.given_state(state.clone()).when(answer(2, A, true, choice_a(), T3)).then_err(FriendError::AlreadyHandled);
    FRIENDSHIP.given_state(state).when(answer(2, A, false, choice_a(), T3)).then_err(FriendError::AlreadyHandled);
}

#[test]
fn accepting_the_crossing_request_first_also_settles_the_other() {
    let state = given(vec![requested(1, A, B, &choice_a(), T0), requested(2, B, A, &choice_b(), T1)])
        .when(answer(2, A, true, choice_a(), T2))
        .then(vec![accepted(2, B, A, &choice_b(), &choice_a(), T2)]);
    assert_eq!(status(&state, 1), RequestStatus::Agree);
    assert_eq!(status(&state, 2), RequestStatus::Agree);
    FRIENDSHIP.given_state(state).when(answer(1, B, true, choice_b(), T3)).then_err(FriendError::AlreadyHandled);
}

#[test]
fn refusing_one_of_two_crossing_requests_leaves_the_other_pending() {
    let state = given(vec![requested(1, A, B, &choice_a(), T0), requested(2, B, A, &choice_b(), T1)])
        .when(answer(1, B, false, choice_b(), T2))
        .then(vec![refused(1, A, B, T2)]);
    assert_eq!(status(&state, 1), RequestStatus::Refuse);
    assert_eq!(status(&state, 2), RequestStatus::Pending);
}

// ---------------------------------------------------------------------------
// AddDirectly
// ---------------------------------------------------------------------------

#[test]
fn adding_yourself_is_refused() {
    given(vec![]).when(add_directly(A, A, choice_a(), T0)).then_err(FriendError::SelfRequest);
}

#[test]
fn adding_an_unavailable_user_is_refused() {
    given(vec![])
        .when(Command::AddDirectly { from: A, to: B, choice: choice_a(), target_active: false, target_confirms: false, at: T0 })
        .then_err(FriendError::TargetUnavailable);
}

#[test]
fn adding_a_friend_again_is_refused() {
    given(friends()).when(add_directly(A, B, choice_a(), T2)).then_err(FriendError::AlreadyFriends);
    given(friends()).when(add_directly(B, A, choice_b(), T2)).then_err(FriendError::AlreadyFriends);
}

#[test]
fn adding_a_user_who_confirms_requests_is_refused() {
    given(vec![])
        .when(Command::AddDirectly { from: A, to: B, choice: choice_a(), target_active: true, target_confirms: true, at: T0 })
        .then_err(FriendError::ConfirmationRequired);
}

#[test]
fn adding_directly_makes_friends_and_gives_the_target_the_default_side() {
    let state = given(vec![]).when(add_directly(A, B, choice_a(), T0)).then(vec![added(A, B, &choice_a(), T0)]);
    assert!(state.friends);
    assert_eq!(state.sides.len(), 2);
    assert_eq!(state.side(A), Some(&side_of(&choice_a())));
    let target = state.side(B).unwrap();
    assert_eq!(target, &Side::default());
    assert!(target.lookme && target.lookhim);
}

#[test]
fn adding_directly_settles_pending_requests() {
    let state = given(vec![requested(1, A, B, &choice_a(), T0), requested(2, B, A, &choice_b(), T1)])
        .when(add_directly(A, B, choice_a(), T2))
        .then(vec![added(A, B, &choice_a(), T2)]);
    assert_eq!(status(&state, 1), RequestStatus::Agree);
    assert_eq!(status(&state, 2), RequestStatus::Agree);
    FRIENDSHIP.given_state(state).when(answer(1, B, true, choice_b(), T3)).then_err(FriendError::AlreadyHandled);
}

// ---------------------------------------------------------------------------
// Side changes
// ---------------------------------------------------------------------------

#[test]
fn toggle_black_flips_each_time() {
    let state = given(friends()).when(Command::ToggleBlack { by: A, other: B, other_exists: true, at: T2 }).then(vec![side_changed(
        A,
        B,
        SideChange::Blacklist { black: true },
        T2,
    )]);
    assert!(state.side(A).unwrap().black);
    assert!(!state.side(B).unwrap().black, "only the acting user's side changes");

    let state = FRIENDSHIP
        .given_state(state)
        .when(Command::ToggleBlack { by: A, other: B, other_exists: true, at: T3 })
        .then(vec![side_changed(A, B, SideChange::Blacklist { black: false }, T3)]);
    assert!(!state.side(A).unwrap().black);

    // B's flag is independent of A's.
    let state = FRIENDSHIP
        .given_state(state)
        .when(Command::ToggleBlack { by: B, other: A, other_exists: true, at: T3 })
        .then(vec![side_changed(B, A, SideChange::Blacklist { black: true }, T3)]);
    assert!(state.side(B).unwrap().black);
    assert!(!state.side(A).unwrap().black);
}

#[test]
fn set_star_changes_only_my_side() {
    let before = fold(Pair::default(), &friends());
    let state = given(friends()).when(Command::SetStar { by: B, star: true, at: T2 }).then(vec![side_changed(
        B,
        A,
        SideChange::Star { star: true },
        T2,
    )]);
    assert!(state.side(B).unwrap().star);
    assert_eq!(state.side(A), before.side(A));

    let state = FRIENDSHIP.given_state(state).when(Command::SetStar { by: B, star: false, at: T3 }).then(vec![side_changed(
        B,
        A,
        SideChange::Star { star: false },
        T3,
    )]);
    assert!(!state.side(B).unwrap().star);
}

#[test]
fn set_visibility_changes_only_my_side() {
    let before = fold(Pair::default(), &friends());
    let state = given(friends()).when(Command::SetVisibility { by: A, lookme: true, lookhim: false, at: T2 }).then(vec![side_changed(
        A,
        B,
        SideChange::Visibility { lookme: true, lookhim: false },
        T2,
    )]);
    let a = state.side(A).unwrap();
    assert!(a.lookme);
    assert!(!a.lookhim);
    assert_eq!(a.nickname, "Bobby", "other fields stay");
    assert_eq!(state.side(B), before.side(B));
}

#[test]
fn set_remark_changes_only_the_given_fields_of_my_side() {
    let before = fold(Pair::default(), &friends());
    let state = given(friends())
        .when(Command::SetRemark { by: A, nickname: Some("Bob".into()), tags: Some("work".into()), at: T2 })
        .then(vec![side_changed(A, B, SideChange::Remark { nickname: Some("Bob".into()), tags: Some("work".into()) }, T2)]);
    let a = state.side(A).unwrap();
    assert_eq!((a.nickname.as_str(), a.tags.as_str()), ("Bob", "work"));
    assert_eq!(state.side(B), before.side(B));

    // Only tags: the remark stays.
    let state = FRIENDSHIP
        .given_state(state)
        .when(Command::SetRemark { by: A, nickname: None, tags: Some("family".into()), at: T3 })
        .then(vec![side_changed(A, B, SideChange::Remark { nickname: None, tags: Some("family".into()) }, T3)]);
    let a = state.side(A).unwrap();
    assert_eq!((a.nickname.as_str(), a.tags.as_str()), ("Bob", "family"));

    // Only the remark: the tags stay.
    let state = FRIENDSHIP
        .given_state(state)
        .when(Command::SetRemark { by: A, nickname: Some("Robert".into()), tags: None, at: T3 })
        .then(vec![side_changed(A, B, SideChange::Remark { nickname: Some("Robert".into()), tags: None }, T3)]);
    let a = state.side(A).unwrap();
    assert_eq!((a.nickname.as_str(), a.tags.as_str()), ("Robert", "family"));

    // Neither: nothing changes.
    let unchanged = state.clone();
    let state = FRIENDSHIP
        .given_state(state)
        .when(Command::SetRemark { by: A, nickname: None, tags: None, at: T3 })
        .then(vec![side_changed(A, B, SideChange::Remark { nickname: None, tags: None }, T3)]);
    assert_eq!(state, unchanged);
}

#[test]
fn friend_commands_on_non_friends_are_refused() {
    let mut refused_request = a_pending_request();
    refused_request.push(refused(1, A, B, T1));
    let mut ended_friendship = friends();
    ended_friendship.push(ended(A, B, T2));
    let not_friends = [vec![], a_pending_request(), refused_request, ended_friendship];
    for events in not_friends {
        for by in [A, B] {
            for command in friend_commands(by) {
                given(events.clone()).when(command).then_err(FriendError::NotFriends);
            }
        }
    }
}

#[test]
fn an_outsider_cannot_act_on_the_pair() {
    for command in friend_commands(C) {
        given(friends()).when(command).then_err(FriendError::NotFriends);
    }
}

// ---------------------------------------------------------------------------
// End
// ---------------------------------------------------------------------------

#[test]
fn ending_names_the_other_user_and_clears_both_sides() {
    for (by, other) in [(A, B), (B, A)] {
        let state = given(friends()).when(Command::End { by, at: T2 }).then(vec![ended(by, other, T2)]);
        assert!(!state.friends);
        assert!(state.sides.is_empty());
        assert_eq!(status(&state, 1), RequestStatus::Agree, "history stays");
    }
}

#[test]
fn after_ending_a_new_request_is_allowed_and_can_be_accepted() {
    let state = given(friends()).when(Command::End { by: B, at: T2 }).then(vec![ended(B, A, T2)]);
    let state = FRIENDSHIP.given_state(state).when(request(2, B, A, choice_b(), T3)).then(vec![requested(2, B, A, &choice_b(), T3)]);
    let state =
        FRIENDSHIP.given_state(state).when(answer(2, A, true, choice_a(), T3)).then(vec![accepted(2, B, A, &choice_b(), &choice_a(), T3)]);
    assert!(state.friends);
    assert_eq!(state.side(A), Some(&side_of(&choice_a())));
    assert_eq!(state.side(B), Some(&side_of(&choice_b())));
}

#[test]
fn after_ending_a_direct_add_is_allowed() {
    let mut events = friends();
    events.push(ended(A, B, T2));
    let state = given(events).when(add_directly(B, A, choice_b(), T3)).then(vec![added(B, A, &choice_b(), T3)]);
    assert!(state.friends);
    assert_eq!(state.side(A), Some(&Side::default()), "the earlier side is not revived");
}

#[test]
fn ending_twice_is_refused() {
    let mut events = friends();
    events.push(ended(A, B, T2));
    given(events.clone()).when(Command::End { by: A, at: T3 }).then_err(FriendError::NotFriends);
    given(events).when(Command::End { by: B, at: T3 }).then_err(FriendError::NotFriends);
}

// ---------------------------------------------------------------------------
// Invariants over any command sequence
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Request {
        from: i64,
        to: i64,
        target_active: bool,
    },
    /// `pick` selects an issued request id, or one past the last (unknown).
    Answer {
        pick: usize,
        by: i64,
        agree: bool,
    },
    AddDirectly {
        from: i64,
        to: i64,
        target_active: bool,
        target_confirms: bool,
    },
    ToggleBlack {
        by: i64,
    },
    SetStar {
        by: i64,
        star: bool,
    },
    SetVisibility {
        by: i64,
        lookme: bool,
        lookhim: bool,
    },
    SetRemark {
        by: i64,
        nickname: Option<String>,
        tags: Option<String>,
    },
    End {
        by: i64,
    },
}

fn user() -> impl Strategy<Value = i64> {
    1i64..=2
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (user(), user(), prop::bool::weighted(0.9))
            .prop_map(|(from, to, target_active)| Op::Request { from, to, target_active }),
        3 => (0usize..8, user(), any::<bool>()).prop_map(|(pick, by, agree)| Op::Answer { pick, by, agree }),
        1 => (user(), user(), prop::bool::weighted(0.9), any::<bool>()).prop_map(
            |(from, to, target_active, target_confirms)| Op::AddDirectly { from, to, target_active, target_confirms }
        ),
        1 => user().prop_map(|by| Op::ToggleBlack { by }),
        1 => (user(), any::<bool>()).prop_map(|(by, star)| Op::SetStar { by, star }),
        1 => (user(), any::<bool>(), any::<bool>())
            .prop_map(|(by, lookme, lookhim)| Op::SetVisibility { by, lookme, lookhim }),
        1 => (user(), prop::option::of("[a-c]{0,2}"), prop::option::of("[a-c]{0,2}"))
            .prop_map(|(by, nickname, tags)| Op::SetRemark { by, nickname, tags }),
        1 => user().prop_map(|by| Op::End { by }),
    ]
}

fn command(op: Op, issued: &[i64], next_id: &mut i64, at: i64) -> Command {
    let choice = Choice::default();
    match op {
        Op::Request { from, to, target_active } => {
            let request_id = *next_id;
            *next_id += 1;
            Command::Request { request_id, from: UserId(from), to: UserId(to), choice, target_active, retry_after: 5, at }
        }
        Op::Answer { pick, by, agree } => {
            let request_id = issued.get(pick % (issued.len() + 1)).copied().unwrap_or(*next_id);
            Command::Answer { request_id, by: UserId(by), agree, choice, at }
        }
        Op::AddDirectly { from, to, target_active, target_confirms } => {
            Command::AddDirectly { from: UserId(from), to: UserId(to), choice, target_active, target_confirms, at }
        }
        Op::ToggleBlack { by } => Command::ToggleBlack { by: UserId(by), other: UserId(3 - by), other_exists: true, at },
        Op::SetStar { by, star } => Command::SetStar { by: UserId(by), star, at },
        Op::SetVisibility { by, lookme, lookhim } => Command::SetVisibility { by: UserId(by), lookme, lookhim, at },
        Op::SetRemark { by, nickname, tags } => Command::SetRemark { by: UserId(by), nickname, tags, at },
        Op::End { by } => Command::End { by: UserId(by), at },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_for_any_command_sequence(ops in prop::collection::vec(op(), 0..60)) {
        let mut state = Pair::default();
        let mut next_id = 1i64;
        let mut friendships_since_end = 0usize;
        for (i, op) in ops.into_iter().enumerate() {
            let issued: Vec<i64> = state.requests.iter().map(|r| r.id).collect();
            let cmd = command(op, &issued, &mut next_id, T0 + i64::try_from(i).unwrap());
            let Ok(events) = friendship::decide(&state, cmd.clone()) else { continue };
            // Nobody the other has blocked becomes their friend through a request of theirs.
            if let Command::Request { to, .. } | Command::AddDirectly { to, .. } = &cmd {
                prop_assert!(!state.blocks(*to), "{cmd:?} went through a block");
            }
            prop_assert!(!events.is_empty(), "{cmd:?} succeeded without events");
            let before = state.clone();
            for event in &events {
                match event {
                    Event::FriendRequestAccepted(_) | Event::FriendAdded(_) => friendships_since_end += 1,
                    Event::FriendshipEnded(_) => friendships_since_end = 0,
                    _ => {}
                }
            }
            state = fold(state, &events);

            // At most one pending request per applicant.
            for applicant in [UserId(1), UserId(2)] {
                let pending = state
                    .requests
                    .iter()
                    .filter(|r| r.from == applicant && r.status == RequestStatus::Pending)
                    .count();
                prop_assert!(pending <= 1, "{pending} pending requests from {applicant} after {cmd:?}");
            }
            // A friend's side shows exactly the blocks there are.
            for (user, side) in &state.sides {
                prop_assert_eq!(side.black, state.blocks(*user), "after {:?}", cmd);
            }
            // Only the blocker lifts a block.
            for blocker in &before.blockers {
                if !state.blocks(*blocker) {
                    prop_assert!(matches!(&cmd, Command::ToggleBlack { by, .. } if by == blocker), "{cmd:?} lifted a block");
                }
            }
            // Friends exactly when both sides are present.
            prop_assert_eq!(state.friends, state.sides.len() == 2, "after {:?}: {:?}", cmd, state);
            if state.friends {
                prop_assert!(state.side(UserId(1)).is_some() && state.side(UserId(2)).is_some());
                // No request is left pending between friends.
                prop_assert!(state.requests.iter().all(|r| r.status != RequestStatus::Pending));
            }
            // Requests are never dropped, and a handled one never becomes pending again.
            prop_assert!(state.requests.len() >= before.requests.len());
            for (old, new) in before.requests.iter().zip(&state.requests) {
                prop_assert_eq!(old.id, new.id);
                if old.status != RequestStatus::Pending {
                    prop_assert_eq!(old.status, new.status, "request {} reopened by {:?}", old.id, cmd);
                }
            }
            // Acceptance is exactly-once: one friendship event per friendship.
            prop_assert!(friendships_since_end <= 1, "two friendship events without an end, last {cmd:?}");
            prop_assert_eq!(state.friends, friendships_since_end == 1);
        }
    }
}

// ---------------------------------------------------------------------------
// Blocks outlive the friendship; refused requests wait
// ---------------------------------------------------------------------------

fn toggle(by: UserId, other: UserId, at: i64) -> Command {
    Command::ToggleBlack { by, other, other_exists: true, at }
}

#[test]
fn a_block_outlives_the_friendship_and_stops_requests() {
    let state = given(friends()).when(toggle(A, B, T2)).then(vec![side_changed(A, B, SideChange::Blacklist { black: true }, T2)]);
    // B ends the friendship to shake the block off.
    let state = FRIENDSHIP
        .given_state(state)
        .when(Command::End { by: B, at: T3 })
        .then(vec![Event::FriendshipEnded(friendship::FriendshipEnded { user_id: B, friend_id: A, at: T3 })]);
    assert!(state.blocks(A), "the block is A's, not the friendship's");
    FRIENDSHIP.given_state(state.clone()).when(request(9, B, A, choice_b(), T3)).then_err(FriendError::Blocked);
    FRIENDSHIP.given_state(state.clone()).when(add_directly(B, A, choice_b(), T3)).then_err(FriendError::Blocked);
    // A may still ask B; if they become friends again, A's side shows the block.
    let state = FRIENDSHIP.given_state(state).when(request(10, A, B, choice_a(), T3)).ok();
    let state = FRIENDSHIP.given_state(state).when(answer(10, B, true, choice_b(), T3)).ok();
    assert!(state.side(A).unwrap().black);
    assert!(!state.side(B).unwrap().black);
}

#[test]
fn a_block_is_lifted_or_placed_without_a_friendship() {
    // Blocking a stranger, and lifting it, friends or not.
    let state = given(vec![]).when(toggle(A, B, T1)).then(vec![side_changed(A, B, SideChange::Blacklist { black: true }, T1)]);
    assert!(state.blocks(A) && !state.friends);
    let state =
        FRIENDSHIP.given_state(state).when(toggle(A, B, T2)).then(vec![side_changed(A, B, SideChange::Blacklist { black: false }, T2)]);
    assert!(!state.blocks(A));
    FRIENDSHIP.given_state(state.clone()).when(request(1, B, A, choice_b(), T2)).ok();
    // Nobody to block, and not oneself.
    FRIENDSHIP
        .given_state(state.clone())
        .when(Command::ToggleBlack { by: A, other: C, other_exists: false, at: T2 })
        .then_err(FriendError::UnknownUser);
    FRIENDSHIP.given_state(state).when(toggle(A, A, T2)).then_err(FriendError::SelfRequest);
}

#[test]
fn a_refused_request_is_not_repeated_within_the_cooldown() {
    let retry =
        |at: i64| Command::Request { request_id: 2, from: A, to: B, choice: choice_a(), target_active: true, retry_after: 1000, at };
    let state = given(vec![]).when(request(1, A, B, choice_a(), T0)).ok();
    let state = FRIENDSHIP.given_state(state).when(answer(1, B, false, choice_b(), T1)).ok();
    FRIENDSHIP.given_state(state.clone()).when(retry(T1 + 999)).then_err(FriendError::RecentlyRefused);
    FRIENDSHIP.given_state(state.clone()).when(retry(T1 + 1000)).ok();
    // The one refused may still ask the other way.
    FRIENDSHIP.given_state(state).when(request(3, B, A, choice_b(), T1 + 1)).ok();
}

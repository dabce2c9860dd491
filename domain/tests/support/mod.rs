//! One given/when/then harness for every aggregate:
//! `AGGREGATE.given(past events).when(command).then(new events)`, `.ok()` or `.then_err(reason)`.
//! An aggregate is its `decide` and `evolve` functions and the state before its first event.
#![allow(dead_code)]

use im_domain::Event;
use std::fmt::Debug;

/// The pure functions of one aggregate.
pub struct Aggregate<S, C, E> {
    pub initial: fn() -> S,
    pub decide: fn(&S, C) -> Result<Vec<Event>, E>,
    pub evolve: fn(S, &Event) -> S,
}

impl<S, C, E> Clone for Aggregate<S, C, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, C, E> Copy for Aggregate<S, C, E> {}

impl<S, C, E> Aggregate<S, C, E> {
    /// Folds `events` onto `state` with `evolve`.
    pub fn fold(&self, state: S, events: &[Event]) -> S {
        events.iter().fold(state, self.evolve)
    }

    /// The state the past `events` leave, for a command to be decided against.
    pub fn given(&self, events: Vec<Event>) -> Given<S, C, E> {
        Given { aggregate: *self, state: self.fold((self.initial)(), &events) }
    }

    /// Starts from a state built some other way.
    pub fn given_state(&self, state: S) -> Given<S, C, E> {
        Given { aggregate: *self, state }
    }
}

pub struct Given<S, C, E> {
    aggregate: Aggregate<S, C, E>,
    state: S,
}

impl<S, C, E> Given<S, C, E> {
    pub fn when(self, command: C) -> When<S, C, E> {
        let result = (self.aggregate.decide)(&self.state, command);
        When { aggregate: self.aggregate, state: self.state, result }
    }

    pub fn state(&self) -> &S {
        &self.state
    }
}

pub struct When<S, C, E> {
    aggregate: Aggregate<S, C, E>,
    state: S,
    result: Result<Vec<Event>, E>,
}

impl<S, C, E: Debug + PartialEq> When<S, C, E> {
    /// Asserts the decided events and returns the state after they are applied.
    #[track_caller]
    pub fn then(self, expected: Vec<Event>) -> S {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected);
                self.aggregate.fold(self.state, &events)
            }
            Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
        }
    }

    /// Asserts the command was accepted and returns the state after its events.
    #[track_caller]
    pub fn ok(self) -> S {
        match self.result {
            Ok(events) => self.aggregate.fold(self.state, &events),
            Err(e) => panic!("expected events, got error {e:?}"),
        }
    }

    /// Asserts the command was refused for `expected`.
    #[track_caller]
    pub fn then_err(self, expected: E) {
        match self.result {
            Ok(events) => panic!("expected {expected:?}, got events {events:?}"),
            Err(e) => assert_eq!(e, expected),
        }
    }

    /// The decision itself, for assertions of another shape.
    pub fn result(self) -> Result<Vec<Event>, E> {
        self.result
    }
}

//! The end-to-end suites, one test binary: each module starts real `im` servers (and, for
//! the distributed ones, Redis, Postgres and the Kafka-protocol mock) and talks to them over
//! HTTP and WebSocket as a client would. Shared helpers live in the `im_e2e` library
//! (`tests/support`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod accounts;
mod admin;
mod askanswer;
mod conversations;
mod crash;
mod delivery;
mod devices;
mod distributed;
mod edge;
mod edits;
mod files;
mod friends;
mod groups;
mod limits;
mod messages;
mod observability;
mod presence;
mod projections;
mod proxies;
mod push;
mod quotes;
mod reactions;
mod search;
mod seed_compat;
mod tools;
mod typing;
mod web_client;
mod websocket;

//! Adapters to the outside world for the distributed mode, each beside its embedded
//! sibling: presence and sessions ([`presence`]: in-process or Redis) and the Kafka
//! event stream and delivery bus ([`kafka`]).
//!
//! # Layout
//! * [`presence`] — the [`presence::Presence`] trait: which gateway node holds a user's
//!   socket (`online_<user>` string keys with a TTL, as the reference recommends, holding
//!   the connection's generation and node), the live-session check, the cluster's online
//!   count, and messages between nodes over pub/sub (kicks, session re-checks, offline
//!   pushes), with a subscription that re-opens itself after Redis drops it.
//! * [`kafka`] — the relay (log → `im.events`, in log order, from a checkpoint), the
//!   delivery producer (inbox rows → `im.deliveries`, keyed and partitioned by recipient)
//!   and the gateway's delivery consumer (assigns itself the partitions of the users
//!   connected to it).
//! * [`objects`] — upload stores: a local directory, or an S3-compatible endpoint.
//! * [`ratelimit`] — fixed-window rate limits, in memory or in Redis.
//! * `bin/kafka_mock.rs` — `im-kafka-mock`, librdkafka's mock cluster as a process.
//!
//! # What this crate never does
//! It decides nothing and appends nothing: it moves bytes between the core and Redis
//! or Kafka.

pub mod kafka;
pub mod objects;
pub mod presence;
pub mod ratelimit;

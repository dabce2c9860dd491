//! A standalone Kafka-protocol broker for tests and local runs: librdkafka's mock
//! cluster, with topics pre-created with N partitions and the consumer-group initial
//! rebalance delay set to 0.
//!
//! usage: `im-kafka-mock [brokers] [topic:partitions ...]`; prints
//! `BOOTSTRAP=host:port,...` on stdout and runs until SIGTERM/SIGINT (`--help`: [`USAGE`]).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::expect_used)]

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rd;
use std::ffi::{CStr, CString};
use std::io::Write;

/// What `--help` prints.
const USAGE: &str = "\
im-kafka-mock: a Kafka-protocol broker for tests and local runs (librdkafka's mock cluster).

usage: im-kafka-mock [BROKERS] [TOPIC:PARTITIONS ...]

  BROKERS            how many brokers the cluster has (default 1)
  TOPIC:PARTITIONS   a topic created at start with this many partitions (default 4),
                     e.g. im.events:4 im.deliveries:8

Prints one line, BOOTSTRAP=host:port[,host:port...], on standard output (a new free
loopback port each run: pass it as KAFKA_BROKERS), then serves until SIGTERM or Ctrl-C.
Everything lives in memory and is gone when it stops. Retention is librdkafka's, fixed:
each partition keeps its newest 5 MiB (or 100,000 message sets) and drops older records,
so a consumer reading a busy topic from the beginning sees only the tail (the relay
published everything: `im events` prints the log itself). A broker for tests and trials;
run a real Kafka in production.
";

/// A usage error: the reason and the usage, exit status 2.
fn usage_error(reason: &str) -> ! {
    eprintln!("im-kafka-mock: {reason}\n\n{USAGE}");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return;
    }
    let mut args = all.into_iter().peekable();
    let brokers: i32 = match args.peek().filter(|a| !a.contains(':')) {
        Some(first) => match first.parse() {
            Ok(n) if (1..=16).contains(&n) => {
                args.next();
                n
            }
            _ => usage_error(&format!("BROKERS must be a number from 1 to 16, not {first:?}")),
        },
        None => 1,
    };
    let topics: Vec<(String, i32)> = args
        .map(|topic| {
            let (name, partitions) = topic.split_once(':').unwrap_or((&topic, "4"));
            match partitions.parse() {
                Ok(n) if (1..=1024).contains(&n) && !name.is_empty() => (name.to_owned(), n),
                _ => usage_error(&format!("{topic:?} is not TOPIC:PARTITIONS (1 to 1024 partitions)")),
            }
        })
        .collect();
    let handle: BaseProducer = ClientConfig::new().create().expect("a librdkafka handle");
    // SAFETY: the handle outlives the mock cluster, which is destroyed before exit.
    let cluster = unsafe { rd::rd_kafka_mock_cluster_new(handle.client().native_ptr(), brokers) };
    assert!(!cluster.is_null(), "mock cluster");
    unsafe { rd::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0) };
    for (name, partitions) in topics {
        let c_name = CString::new(name.as_str()).expect("topic name");
        let err = unsafe { rd::rd_kafka_mock_topic_create(cluster, c_name.as_ptr(), partitions, 1) };
        assert_eq!(err, rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, "create {name}");
    }
    let bootstrap = unsafe { CStr::from_ptr(rd::rd_kafka_mock_cluster_bootstraps(cluster)) };
    println!("BOOTSTRAP={}", bootstrap.to_str().expect("utf-8 bootstrap"));
    std::io::stdout().flush().expect("stdout");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
    unsafe { rd::rd_kafka_mock_cluster_destroy(cluster) };
}

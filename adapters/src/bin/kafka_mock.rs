//! A standalone Kafka-protocol broker for tests and local runs: librdkafka's mock
//! cluster, with topics pre-created with N partitions and the consumer-group initial
//! rebalance delay set to 0.
//!
//! usage: `im-kafka-mock [brokers] [topic:partitions ...]`; prints
//! `BOOTSTRAP=host:port,...` on stdout and runs until SIGTERM/SIGINT.
#![allow(clippy::print_stdout, clippy::expect_used)]

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rd;
use std::ffi::{CStr, CString};
use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let brokers: i32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let handle: BaseProducer = ClientConfig::new().create().expect("a librdkafka handle");
    // SAFETY: the handle outlives the mock cluster, which is destroyed before exit.
    let cluster = unsafe { rd::rd_kafka_mock_cluster_new(handle.client().native_ptr(), brokers) };
    assert!(!cluster.is_null(), "mock cluster");
    unsafe { rd::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0) };
    for topic in args {
        let (name, partitions) = topic.split_once(':').unwrap_or((&topic, "4"));
        let c_name = CString::new(name).expect("topic name");
        let partitions: i32 = partitions.parse().expect("partition count");
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

//! The Kafka adapters against a real Kafka-protocol peer (librdkafka's mock cluster):
//! deliveries produced to a user's partition reach a consumer that assigned itself that
//! partition, and only that one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_adapters::kafka::{DeliveryConsumer, KafkaDeliverySink, KafkaSettings, partition_for};
use im_projections::inbox::{Body, Delivery, DeliverySink, InboxKind};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc;

fn delivery(user: i64, seq: i64) -> Delivery {
    let body = Body::of(&json!({"id": format!("m{seq}"), "data": "你好"}));
    Delivery { user_id: user, seq, kind: InboxKind::Message, body, sent_at: 1_700_000_000_000 + seq }
}

/// A mock broker with the delivery topic (8 partitions), and the settings that reach it.
fn broker() -> (MockCluster<'static, DefaultProducerContext>, KafkaSettings) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("im.deliveries", 8, 1).unwrap();
    let settings = KafkaSettings {
        brokers: cluster.bootstrap_servers(),
        events_topic: "im.events".into(),
        deliveries_topic: "im.deliveries".into(),
        delivery_partitions: 8,
        relay_gather: Duration::from_millis(10),
    };
    (cluster, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_reach_the_gateway_that_holds_the_users_partition() {
    let (_cluster, settings) = broker();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer = DeliveryConsumer::start(&settings, "test-node", move |d| {
        let _ = tx.send(d);
    })
    .unwrap();
    let (mine, other) = (7_i64, (1..100).find(|u| partition_for(*u, 8) != partition_for(7, 8)).unwrap());
    consumer.user_connected(mine).await;
    assert_eq!(consumer.assigned(), vec![partition_for(mine, 8)]);

    let sink = KafkaDeliverySink::start(&settings).unwrap();
    sink.deliver(vec![delivery(other, 1), delivery(mine, 1), delivery(mine, 2)]);
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("a delivery").unwrap();
    let second = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("a delivery").unwrap();
    assert_eq!((first.user_id, first.seq), (mine, 1));
    assert_eq!((second.user_id, second.seq), (mine, 2), "in seq order");
    assert_eq!(second, delivery(mine, 2), "the row crosses the bus unchanged");
    assert_eq!(second.data(), json!({"id": "m2", "data": "你好", "seq": 2}));
    assert!(tokio::time::timeout(Duration::from_millis(500), rx.recv()).await.is_err(), "other partitions are not consumed");

    consumer.user_disconnected(mine);
    assert!(consumer.assigned().is_empty());
}

/// Two users of one partition connecting at once: the second must not be told it is
/// connected before the partition is assigned (from the end the first resolved), or a
/// delivery produced meanwhile would pass by after its client's sync already ran.
#[tokio::test(flavor = "current_thread")]
async fn a_user_whose_partition_is_being_assigned_waits_for_the_assignment() {
    let (_cluster, settings) = broker();
    let consumer = DeliveryConsumer::start(&settings, "test-node", |_| {}).unwrap();
    let first = 7_i64;
    let second = (8..1000).find(|u| partition_for(*u, 8) == partition_for(first, 8)).unwrap();
    let connecting = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.user_connected(first).await })
    };
    // The first connection is now asking the broker for the partition's end.
    tokio::task::yield_now().await;
    assert!(!connecting.is_finished());
    consumer.user_connected(second).await;
    assert_eq!(consumer.assigned(), vec![partition_for(first, 8)], "assigned before the second user hears it is connected");
    connecting.await.unwrap();

    consumer.user_disconnected(first);
    assert_eq!(consumer.assigned(), vec![partition_for(first, 8)], "the second user still needs it");
    consumer.user_disconnected(second);
    assert!(consumer.assigned().is_empty());
}

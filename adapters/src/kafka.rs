//! Kafka: the relay of the event log to `im.events`, and the delivery bus
//! `im.deliveries` (one record per inbox row, keyed and partitioned by recipient).

use im_eventlog::{SharedEventStore, StoredEvent};
use im_projections::inbox::{Body, Delivery, DeliverySink, InboxKind};
use im_projections::{ReadDb, ReadError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where the Kafka adapters connect and what they use.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`: bootstrap servers.
    pub brokers: String,
    /// The relay's topic (default `im.events`).
    pub events_topic: String,
    /// The delivery topic (default `im.deliveries`).
    pub deliveries_topic: String,
    /// Partitions of the delivery topic (P in hash(user) mod P).
    pub delivery_partitions: i32,
    /// `IM_RELAY_GATHER_MS`: how long the relay lets the log move after a read that did
    /// not fill its batch before reading again (zero: at once).
    pub relay_gather: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] im_eventlog::StoreError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

fn producer(settings: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        // Idempotence keeps per-partition order through retries.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// How many partitions `topic` has on the brokers; `None` when the brokers do not know
/// it (yet). Blocks for up to `timeout`: call it off the async threads.
pub fn topic_partitions(settings: &KafkaSettings, topic: &str, timeout: Duration) -> Result<Option<usize>, KafkaError> {
    let client: rdkafka::consumer::BaseConsumer = ClientConfig::new().set("bootstrap.servers", &settings.brokers).create()?;
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map(|t| t.partitions().len()).filter(|n| *n > 0))
}

/// The delivery partition of a user: a stable hash of the id, mod P.
pub fn partition_for(user: i64, partitions: i32) -> i32 {
    let mut x = user as u64;
    // splitmix64 finalizer: consecutive ids spread over the partitions.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % partitions.max(1) as u64) as i32
}

/// One record of `im.deliveries`: an inbox row, its body as the JSON object it is.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub user_id: i64,
    pub seq: i64,
    /// `message` (a `singleChat` frame) or `notice`.
    pub kind: String,
    /// The row's `data` without its `seq`.
    pub body: Box<RawValue>,
    pub sent_at: i64,
}

impl DeliveryRecord {
    pub fn from_delivery(d: &Delivery) -> Result<Self, serde_json::Error> {
        let body = RawValue::from_string(d.body.as_str().to_owned())?;
        Ok(Self { user_id: d.user_id, seq: d.seq, kind: d.kind.as_str().to_owned(), body, sent_at: d.sent_at })
    }

    pub fn into_delivery(self) -> Delivery {
        Delivery {
            user_id: self.user_id,
            seq: self.seq,
            kind: InboxKind::parse(&self.kind),
            body: Body::from_json(self.body.get()),
            sent_at: self.sent_at,
        }
    }
}

/// Commits' worth of deliveries waiting for the producer task; past it, a commit's rows
/// are not pushed (they stay in the inbox for `sync`) and a warning says so.
pub const SINK_QUEUE: usize = 4096;
/// Records handed to the producer and not yet acknowledged by the broker, at most.
const OUTSTANDING: usize = 50_000;

/// The projector's side of the delivery bus: every committed inbox row becomes one
/// record on `im.deliveries`, in the recipient's partition, in seq order.
pub struct KafkaDeliverySink {
    tx: mpsc::Sender<Vec<Delivery>>,
}

impl KafkaDeliverySink {
    pub fn start(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let producer = producer(settings)?;
        let (tx, mut rx) = mpsc::channel::<Vec<Delivery>>(SINK_QUEUE);
        let topic = settings.deliveries_topic.clone();
        let partitions = settings.delivery_partitions;
        tokio::spawn(async move {
            // Records are handed to the producer as soon as they arrive (it keeps each
            // partition's order and batches them); their acknowledgements are awaited
            // beside that, oldest first, only to report failures and bound the window.
            let mut outstanding = std::collections::VecDeque::new();
            loop {
                let batch = match outstanding.front_mut() {
                    None => match rx.recv().await {
                        Some(batch) => batch,
                        None => return,
                    },
                    Some(oldest) => {
                        let next = tokio::select! {
                            biased;
                            batch = rx.recv() => Ok(batch),
                            acked = oldest => Err(acked),
                        };
                        match next {
                            Ok(Some(batch)) => batch,
                            Ok(None) => break,
                            Err(acked) => {
                                report(acked);
                                outstanding.pop_front();
                                continue;
                            }
                        }
                    }
                };
                for d in &batch {
                    let Ok(record) = DeliveryRecord::from_delivery(d) else { continue };
                    let Ok(payload) = serde_json::to_string(&record) else { continue };
                    let key = d.user_id.to_string();
                    let record = FutureRecord::to(&topic).key(&key).payload(&payload).partition(partition_for(d.user_id, partitions));
                    match producer.send_result(record) {
                        Ok(f) => outstanding.push_back(f),
                        Err((e, _)) => tracing::warn!(error = %e, "delivery not queued; the inbox still has it"),
                    }
                    while outstanding.len() >= OUTSTANDING {
                        if let Some(oldest) = outstanding.pop_front() {
                            report(oldest.await);
                        }
                    }
                }
            }
            for f in outstanding {
                report(f.await);
            }
        });
        Ok(Self { tx })
    }
}

/// Logs what the broker answered for one delivery record.
fn report<Canceled>(acked: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Canceled>) {
    match acked {
        Ok(Ok(delivery)) => tracing::trace!(partition = delivery.partition, offset = delivery.offset, "delivery produced"),
        Ok(Err((e, _))) => tracing::warn!(error = %e, "delivery not produced; the inbox still has it"),
        Err(_) => tracing::warn!("delivery production canceled; the inbox still has it"),
    }
}

impl DeliverySink for KafkaDeliverySink {
    fn deliver(&self, deliveries: Vec<Delivery>) {
        if let Err(mpsc::error::TrySendError::Full(rows)) = self.tx.try_send(deliveries) {
            tracing::warn!(rows = rows.len(), "delivery producer queue full: these rows are not pushed (the inbox has them)");
        }
    }

    /// Gateways mark consumed rows delivered in the database: they get them once the
    /// rows are written.
    fn before_commit(&self) -> bool {
        false
    }
}

/// The gateway's side: consumes exactly the partitions that hold its connected users.
#[derive(Clone)]
pub struct DeliveryConsumer {
    consumer: Arc<StreamConsumer>,
    topic: String,
    partitions: i32,
    /// The partitions wanted here, with their connected users.
    wanted: Arc<Mutex<HashMap<i32, Wanted>>>,
}

/// Where consuming a delivery partition starts so as to see everything produced from now
/// on: its current end (blocking: asks the broker). When the end cannot be read, the
/// consumer resolves it itself, later: a delivery produced in between then reaches its
/// client only through the client's sync.
fn current_end(consumer: &StreamConsumer, topic: &str, partition: i32) -> Offset {
    match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
        Ok((_, high)) => Offset::Offset(high),
        Err(e) => {
            tracing::warn!(partition, error = %e, "could not read the delivery partition's end");
            Offset::End
        }
    }
}

/// One partition this gateway consumes: how many of its users are connected here, and
/// whether its assignment (from the end resolved when the first of them connected) is made.
struct Wanted {
    users: usize,
    assigned: Arc<tokio::sync::OnceCell<()>>,
}

impl DeliveryConsumer {
    /// Starts consuming; every record is handed to `on_delivery`.
    pub fn start(settings: &KafkaSettings, node: &str, on_delivery: impl Fn(Delivery) + Send + Sync + 'static) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .set("group.id", format!("im-gateway-{node}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            // Deliveries are latency-bound: do not let the broker hold fetches back.
            .set("fetch.wait.max.ms", "5")
            .set("fetch.min.bytes", "1")
            .create()?;
        let this = Self {
            consumer: Arc::new(consumer),
            topic: settings.deliveries_topic.clone(),
            partitions: settings.delivery_partitions,
            wanted: Arc::new(Mutex::new(HashMap::new())),
        };
        let consumer = this.consumer.clone();
        tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(message) => {
                        let Some(Ok(payload)) = message.payload_view::<str>() else { continue };
                        match serde_json::from_str::<DeliveryRecord>(payload) {
                            Ok(record) => {
                                tracing::debug!(
                                    user_id = record.user_id,
                                    seq = record.seq,
                                    partition = message.partition(),
                                    "delivery consumed"
                                );
                                on_delivery(record.into_delivery())
                            }
                            Err(e) => tracing::warn!(error = %e, "unreadable delivery record"),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "delivery consumer");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(this)
    }

    fn wanted(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Wanted>> {
        self.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A user connected here: make sure their partition is assigned, from its current
    /// end (anything earlier is in the inbox, which the client syncs after connecting).
    /// The end is resolved before this returns, so every delivery produced afterwards
    /// reaches this gateway; call it before telling the client it is connected. A user
    /// whose partition another user here is still assigning waits for that assignment:
    /// returning earlier would let a delivery produced before the end was resolved pass
    /// by, after the client's sync had already run.
    pub async fn user_connected(&self, user: i64) {
        let partition = partition_for(user, self.partitions);
        let assigned = {
            let mut wanted = self.wanted();
            let entry = wanted.entry(partition).or_insert_with(|| Wanted { users: 0, assigned: Arc::default() });
            entry.users += 1;
            entry.assigned.clone()
        };
        // The first caller assigns; the others wait for it (or take over if it was dropped).
        assigned.get_or_init(|| self.assign_from_end(partition)).await;
    }

    /// Assigns one partition from its current end.
    async fn assign_from_end(&self, partition: i32) {
        let (consumer, topic) = (self.consumer.clone(), self.topic.clone());
        let start = tokio::task::spawn_blocking(move || current_end(&consumer, &topic, partition)).await.unwrap_or(Offset::End);
        tracing::debug!(partition, ?start, "assigning delivery partition");
        let mut list = TopicPartitionList::new();
        if list.add_partition_offset(&self.topic, partition, start).is_ok()
            && let Err(e) = self.consumer.incremental_assign(&list)
        {
            tracing::warn!(partition, error = %e, "could not assign delivery partition");
        }
    }

    /// A user left: drop their partition when nobody else here needs it.
    pub fn user_disconnected(&self, user: i64) {
        let partition = partition_for(user, self.partitions);
        let mut wanted = self.wanted();
        let Some(entry) = wanted.get_mut(&partition) else { return };
        entry.users -= 1;
        if entry.users == 0 {
            wanted.remove(&partition);
            let mut list = TopicPartitionList::new();
            list.add_partition(&self.topic, partition);
            if let Err(e) = self.consumer.incremental_unassign(&list) {
                tracing::warn!(partition, error = %e, "could not unassign delivery partition");
            }
        }
    }

    /// Consumes every partition from its current end (the pusher: it needs the rows of
    /// users connected nowhere).
    pub async fn follow_all(&self) {
        let (consumer, topic, partitions) = (self.consumer.clone(), self.topic.clone(), self.partitions);
        let ends = tokio::task::spawn_blocking(move || (0..partitions).map(|p| current_end(&consumer, &topic, p)).collect::<Vec<_>>())
            .await
            .unwrap_or_default();
        let mut list = TopicPartitionList::new();
        for (partition, start) in ends.into_iter().enumerate() {
            let _ = list.add_partition_offset(&self.topic, partition as i32, start);
        }
        if let Err(e) = self.consumer.incremental_assign(&list) {
            tracing::warn!(error = %e, "could not assign the delivery partitions");
        }
        for partition in 0..self.partitions {
            let assigned = Arc::new(tokio::sync::OnceCell::new_with(Some(())));
            self.wanted().insert(partition, Wanted { users: 1, assigned });
        }
    }

    /// The partitions this gateway consumes now (the consumer's own assignment).
    pub fn assigned(&self) -> Vec<i32> {
        let mut p: Vec<i32> = match self.consumer.assignment() {
            Ok(list) => list.elements().iter().map(|e| e.partition()).collect(),
            Err(_) => Vec::new(),
        };
        p.sort();
        p
    }
}

/// Events the relay reads, publishes and checkpoints at a time, at most.
const RELAY_BATCH: i64 = 500;

/// The relay's checkpoint name in `projection_checkpoints`.
pub const RELAY_CHECKPOINT: &str = "relay:im.events";

/// Publishes the log to the events topic in log order (key = stream id), from a stored
/// checkpoint that moves only after Kafka acknowledged every record up to it: a crash
/// between commit and publish loses nothing, and a restart republishes from the
/// checkpoint in the same order (consumers de-duplicate by `event_id` or `position`).
pub async fn run_relay(store: SharedEventStore, db: ReadDb, settings: KafkaSettings) -> Result<(), KafkaError> {
    let producer = producer(&settings)?;
    let mut checkpoint = im_projections::checkpoints::load(&db, RELAY_CHECKPOINT).await?;
    let mut head = store.watch_head();
    loop {
        let batch = store.read_all(checkpoint, RELAY_BATCH).await?;
        if batch.is_empty() {
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        match publish(&producer, &settings.events_topic, &batch).await {
            Ok(()) => {
                let last = batch.last().map_or(checkpoint, |e| e.position);
                im_projections::checkpoints::store(&db, RELAY_CHECKPOINT, last).await?;
                checkpoint = last;
                tracing::debug!(position = checkpoint, events = batch.len(), "relayed");
                // Caught up: what the log gains meanwhile goes out as one batch (one read,
                // one produce, one checkpoint) rather than a batch per commit.
                if (batch.len() as i64) < RELAY_BATCH && !settings.relay_gather.is_zero() {
                    tokio::time::sleep(settings.relay_gather).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, checkpoint, "relay batch failed; retrying from the checkpoint");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Produces a batch and waits until Kafka acknowledged all of it.
pub async fn publish(producer: &FutureProducer, topic: &str, batch: &[StoredEvent]) -> Result<(), KafkaError> {
    let mut pending = Vec::with_capacity(batch.len());
    for event in batch {
        // Keyed by the redacted stream name: device claim streams share one key (and so
        // one partition, still in order) rather than publish their fingerprints.
        let public = event.redacted();
        let payload = serde_json::to_string(&public)?;
        let record = FutureRecord::to(topic).key(&public.stream_id).payload(&payload);
        match producer.send_result(record) {
            Ok(f) => pending.push(f),
            Err((e, _)) => return Err(e.into()),
        }
    }
    for f in pending {
        match f.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e.into()),
            Err(_) => return Err(rdkafka::error::KafkaError::Canceled.into()),
        }
    }
    Ok(())
}

/// A producer for one-off publishing (`im replay`).
pub fn events_producer(settings: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    let p = producer(settings)?;
    let _ = p.flush(Duration::from_millis(0));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_for(42, 8), partition_for(42, 8));
        let mut counts = [0; 8];
        for user in 1..=8000 {
            counts[partition_for(user, 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(partition_for(7, 1), 0);
    }
}

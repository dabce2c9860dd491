//! The settings every process of a deployment must share, checked before a process
//! starts serving: `JWT_SECRET` (through a fingerprint recorded in the database, see
//! `im_projections::deployment`) and `IM_DELIVERY_PARTITIONS` (against the partitions
//! the delivery topic really has). A mismatch stops the process with an error that
//! names the setting.

use crate::settings::Settings;
use anyhow::Context;
use im_adapters::kafka::{KafkaSettings, topic_partitions};
use im_projections::ReadDb;
use im_projections::deployment::{self, Disagreement, Held};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long to wait for the brokers' answer about the delivery topic.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the shared settings and keeps this process's values recorded while the
/// returned guards live.
/// `secret` is checked when given (processes that sign or check tokens), the delivery
/// partitions when `kafka` is (processes that produce or consume deliveries).
pub async fn agree(settings: &Settings, db: &ReadDb, secret: Option<&[u8]>, kafka: Option<&KafkaSettings>) -> anyhow::Result<Vec<Held>> {
    let mut held = Vec::new();
    if let Some(secret) = secret {
        held.push(deployment::agree(db, "JWT_SECRET", fingerprint(secret)).await.map_err(|e| explain(e, "JWT_SECRET"))?);
    }
    if let Some(k) = kafka {
        let (k, topic) = (k.clone(), settings.deliveries_topic.clone());
        let found = tokio::task::spawn_blocking(move || topic_partitions(&k, &topic, METADATA_TIMEOUT))
            .await
            .context("asking the brokers about the delivery topic")?
            .with_context(|| format!("asking the brokers how many partitions {} has", settings.deliveries_topic))?;
        match found {
            Some(n) if n != settings.delivery_partitions as usize => anyhow::bail!(
                "IM_DELIVERY_PARTITIONS is {} but the topic {} has {n} partitions: set IM_DELIVERY_PARTITIONS={n} on every \
                 process of this deployment (a user's deliveries would go to a partition their gateway does not read)",
                settings.delivery_partitions,
                settings.deliveries_topic
            ),
            Some(_) => {}
            None => tracing::warn!(
                topic = %settings.deliveries_topic,
                partitions = settings.delivery_partitions,
                "the delivery topic does not exist yet; create it with IM_DELIVERY_PARTITIONS partitions"
            ),
        }
        held.push(
            deployment::agree(db, "IM_DELIVERY_PARTITIONS", settings.delivery_partitions.to_string())
                .await
                .map_err(|e| explain(e, "IM_DELIVERY_PARTITIONS"))?,
        );
    }
    Ok(held)
}

fn explain(e: Disagreement, setting: &str) -> anyhow::Error {
    match e {
        Disagreement::Differs(_) => anyhow::anyhow!(
            "{setting} differs from the one the running processes of this deployment use: every process on this database \
             must share it (to change it on purpose, stop every process, wait {} s, and start them with the new value)",
            deployment::HOLD.as_secs()
        ),
        Disagreement::Read(e) => anyhow::Error::new(e).context(format!("recording {setting} for the other processes")),
    }
}

/// A fingerprint of the token secret: tells secrets apart without revealing them.
fn fingerprint(secret: &[u8]) -> String {
    let digest = Sha256::new().chain_update(b"im: the token secret's fingerprint\0").chain_update(secret).finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

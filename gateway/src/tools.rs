//! Operator tooling behind `im migrate`, `im events`, `im rebuild` and `im replay`.

use crate::app::{open_log, open_stores};
use crate::settings::Settings;
use anyhow::Context;
use im_adapters::kafka::{KafkaSettings, events_producer, publish};
use im_projections::ReadDb;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Why a tool refused to run (exit code 2), as opposed to failing while running (1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// `im migrate`: brings the database schema up to date. Returns the backend's name and
/// the log's head.
pub async fn migrate(settings: &Settings) -> anyhow::Result<(&'static str, i64)> {
    let (store, _) = open_stores(settings).await?;
    Ok((store.backend(), store.head().await?))
}

/// `im events --from N [--follow]`: the log as JSON lines (the records of `im.events`).
pub async fn events(settings: &Settings, from: i64, follow: bool, out: &mut dyn Write) -> anyhow::Result<i64> {
    let (store, _) = open_stores(settings).await?;
    let mut after = from.saturating_sub(1).max(0);
    let mut printed = 0;
    loop {
        let batch = store.read_all(after, 1000).await?;
        for event in &batch {
            serde_json::to_writer(&mut *out, &event.redacted())?;
            out.write_all(b"\n")?;
            after = event.position;
            printed += 1;
        }
        out.flush()?;
        if batch.is_empty() {
            if !follow {
                return Ok(printed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `im rebuild [projection…]`: empties the named read models (all when none are named)
/// and replays the log into them. Stop the projector first.
pub async fn rebuild(
    settings: &Settings,
    names: &[String],
    progress: &mut dyn FnMut(&str, i64, i64),
) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let mut all = im_projections::catalogue(Arc::new(im_projections::Discard));
    // After the inbox: the search index reads the message rows it writes.
    all.extend(im_projections::trailing());
    let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(Usage(format!("no projection named {unknown:?}; known: {}", known.join(", "))).into());
    }
    let chosen: Vec<_> = all.into_iter().filter(|p| names.is_empty() || names.iter().any(|n| n == p.name())).collect();
    let label: Vec<&'static str> = chosen.iter().map(|p| p.name()).collect();
    // Every read model of the embedded store: a new read.db, written without a journal
    // beside the old one, is cheaper than emptying the old one (which reads every page of
    // every table to free it) and rewriting it through its WAL.
    let building =
        (settings.database_url.is_none() && chosen.len() == known.len()).then(|| settings.read_db_path().with_file_name("read.db.rebuild"));
    let (store, db) = match &building {
        Some(building) => {
            remove_sqlite_files(building, true)?;
            let (store, _) = open_log(settings).await?;
            (store, ReadDb::bulk_load(building).await.with_context(|| format!("creating {}", building.display()))?)
        }
        None => open_stores(settings).await?,
    };
    // One pass over the log for all of them.
    let position = im_projections::runtime::rebuild(&*store, &db, &chosen, settings.rebuild_range, &mut |at, head| {
        progress(&label.join("+"), at, head)
    })
    .await
    .with_context(|| format!("rebuilding {}", label.join(", ")))?;
    if let Some(building) = building {
        db.seal().await.with_context(|| format!("sealing {}", building.display()))?;
        // The old file's WAL goes first: beside the new file it would be read as the new
        // file's. (Killed in between, the old file is back at its last checkpoint, whose
        // read models and positions agree.) Then the new file replaces it at once.
        let path = settings.read_db_path();
        remove_sqlite_files(&path, false)?;
        std::fs::rename(&building, &path).with_context(|| format!("renaming {} to {}", building.display(), path.display()))?;
        std::fs::File::open(&settings.data_dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("flushing {}", settings.data_dir.display()))?;
    }
    Ok(label.into_iter().map(|name| (name, position)).collect())
}

/// Removes a SQLite file's WAL, shared-memory and journal files, those that exist, and
/// with `itself` the file too.
fn remove_sqlite_files(path: &std::path::Path, itself: bool) -> anyhow::Result<()> {
    let all = ["", "-wal", "-shm", "-journal"];
    for suffix in if itself { &all[..] } else { &all[1..] } {
        let file = format!("{}{suffix}", path.display());
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("removing {file}"))),
        }
    }
    Ok(())
}

/// `im replay --from N`: publishes the log from position N to the events topic again
/// (the relay's checkpoint is untouched). Returns how many events were published.
pub async fn replay(settings: &Settings, from: i64, progress: &mut dyn FnMut(i64, i64)) -> anyhow::Result<usize> {
    let Some(brokers) = settings.kafka_brokers.clone() else {
        return Err(Usage("im replay needs KAFKA_BROKERS (or --kafka-brokers)".into()).into());
    };
    let kafka = KafkaSettings {
        brokers,
        events_topic: settings.events_topic.clone(),
        deliveries_topic: settings.deliveries_topic.clone(),
        delivery_partitions: settings.delivery_partitions,
        relay_gather: settings.relay_gather,
    };
    let (store, _) = open_stores(settings).await?;
    let producer = events_producer(&kafka)?;
    let head = store.head().await?;
    let mut after = from.saturating_sub(1).max(0);
    let mut published = 0;
    loop {
        let batch = store.read_all(after, 500).await?;
        let Some(last) = batch.last().map(|e| e.position) else { return Ok(published) };
        publish(&producer, &kafka.events_topic, &batch).await?;
        published += batch.len();
        after = last;
        progress(after, head.max(after));
    }
}

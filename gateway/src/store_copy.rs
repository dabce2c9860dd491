//! `im store copy --to postgres://… --to-data-dir DIR`: moves a deployment from the
//! embedded SQLite store to Postgres. The event log is copied in order, as it is
//! (positions, ids, payloads, metadata, times) with the id counters; the copy is checked
//! against the source (event count and a SHA-256 over every event); then the read models
//! are rebuilt in Postgres from the copied log, and the token secret and the local uploads
//! move into the new data dir. Stop the server first: a log that grows during the copy is
//! refused.

use crate::backup::{copy_private, copy_tree};
use crate::settings::Settings;
use crate::tools::Usage;
use anyhow::Context;
use im_eventlog::postgres::PostgresEventStore;
use im_eventlog::sqlite::SqliteEventStore;
use im_eventlog::{EventStore, StoredEvent};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Events read and written per batch.
const BATCH: i64 = 2000;

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub events: u64,
    pub head: i64,
    /// SHA-256 over every event, hex; the same on both sides.
    pub checksum: String,
    pub uploads: u64,
    pub secret: bool,
}

/// Feeds one event into a log checksum: every stored field, the payload and metadata
/// as canonical JSON (keys sorted), so the same log hashes the same in either store.
fn hash_event(hasher: &mut Sha256, e: &StoredEvent) {
    let metadata = serde_json::to_string(&e.metadata).unwrap_or_default();
    for part in [
        e.position.to_string(),
        e.stream_id.clone(),
        e.stream_version.to_string(),
        e.event_id.to_string(),
        e.event_type.clone(),
        e.schema_version.to_string(),
        e.payload.tree().to_string(),
        metadata,
        e.recorded_at.to_string(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
}

/// The count and SHA-256 of a log, fed batch by batch in position order.
#[derive(Default)]
struct LogDigest {
    hasher: Sha256,
    count: u64,
}

impl LogDigest {
    fn add(&mut self, batch: &[StoredEvent]) {
        for e in batch {
            hash_event(&mut self.hasher, e);
        }
        self.count += batch.len() as u64;
    }

    /// The count and the checksum, hex.
    fn finish(self) -> (u64, String) {
        (self.count, hex(&self.hasher.finalize()))
    }
}

/// The count and checksum of a whole log, read in batches.
async fn checksum(store: &dyn EventStore) -> anyhow::Result<(u64, String)> {
    let (mut digest, mut after) = (LogDigest::default(), 0);
    loop {
        let batch = store.read_all(after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        digest.add(&batch);
    }
    Ok(digest.finish())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the embedded deployment of `settings` to the Postgres database `to` (whose log
/// must be empty) and the data dir `to_data_dir` (the secret and uploads); `progress(stage,
/// at, of)` after each batch.
pub async fn copy_to_postgres(
    settings: &Settings,
    to: &str,
    to_data_dir: &Path,
    progress: &mut dyn FnMut(&str, i64, i64),
) -> anyhow::Result<Copied> {
    if settings.database_url.is_some() {
        return Err(Usage("im store copy moves the embedded store: run it without DATABASE_URL (the source is --data-dir)".into()).into());
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(Usage(format!("--to must be a postgres:// URL, not {to:?}")).into());
    }
    let log = settings.sqlite_path();
    if !log.exists() {
        return Err(Usage(format!("{} holds no event log", settings.data_dir.display())).into());
    }
    if to_data_dir.canonicalize().ok().is_some_and(|d| settings.data_dir.canonicalize().ok() == Some(d)) {
        return Err(Usage("--to-data-dir must not be the source data dir".into()).into());
    }
    let source = SqliteEventStore::open(&log).await.with_context(|| format!("opening {}", log.display()))?;
    let target = PostgresEventStore::connect(to).await.context("connecting to the target Postgres")?;
    let already = target.head().await?;
    if already > 0 {
        return Err(Usage(format!("the target database already holds an event log (head {already}): copy into an empty database")).into());
    }
    let head = source.head().await?;
    let (mut digest, mut after) = (LogDigest::default(), 0);
    progress("log", 0, head);
    loop {
        let batch = source.read_all(after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        digest.add(&batch);
        target.import(&batch).await.with_context(|| format!("copying events after position {}", batch[0].position - 1))?;
        progress("log", after, head.max(after));
    }
    if source.head().await? != head || after != head {
        anyhow::bail!("the log grew while it was copied (head {head} → {}): stop the server and copy into an empty database again", after);
    }
    let path = log.clone();
    let counters = tokio::task::spawn_blocking(move || im_eventlog::sqlite::counters(&path)).await??;
    target.finish_import(&counters).await?;
    let (copied, source_sum) = digest.finish();
    let (target_count, target_sum) = checksum(&target).await?;
    if (target_count, &target_sum) != (copied, &source_sum) {
        anyhow::bail!(
            "the copy differs from the source: {target_count} events, checksum {target_sum}; the source has {copied}, {source_sum}"
        );
    }
    drop(target);

    // Read models, rebuilt in Postgres from the copied log.
    let mut moved = settings.clone();
    moved.database_url = Some(to.to_owned());
    moved.data_dir = to_data_dir.to_path_buf();
    moved.files.upload_dir = to_data_dir.join("uploads");
    std::fs::create_dir_all(to_data_dir).with_context(|| format!("creating {}", to_data_dir.display()))?;
    crate::tools::rebuild(&moved, &[], &mut |name, at, of| progress(name, at, of)).await?;

    // The token secret (unless JWT_SECRET is configured: it moves with the configuration)
    // and the local uploads.
    let secret = settings.data_dir.join("jwt_secret");
    let has_secret = settings.jwt_secret.is_none() && secret.exists();
    if has_secret {
        copy_private(&secret, &to_data_dir.join("jwt_secret"))?;
    }
    let uploads = copy_tree(&settings.files.upload_dir, &moved.files.upload_dir)?;
    Ok(Copied { events: copied, head, checksum: source_sum, uploads, secret: has_secret })
}

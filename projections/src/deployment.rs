//! Settings every process of one deployment must share, checked when a process starts:
//! on Postgres each process records what it runs with (a fingerprint, never the secret
//! itself) and refreshes that record while it runs; a process that starts with another
//! value while the record is held fails at once, naming the setting, instead of
//! misbehaving later (tokens signed by one gateway refused by the next). A value whose
//! holders have all been gone for [`HOLD`] may be replaced: that is how an operator
//! changes it on purpose (stop every process, change it, start them again).

use crate::db::Backend;
use crate::{ReadDb, ReadError};
use std::time::Duration;

/// How long a recorded value outlives the last process that refreshed it.
pub const HOLD: Duration = Duration::from_secs(30);

/// Why a process may not run with its value.
#[derive(Debug, thiserror::Error)]
pub enum Disagreement {
    #[error("{0} differs from the value the running processes of this deployment use")]
    Differs(&'static str),
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Records `value` for `name`, or fails when running processes hold another one; while
/// the returned guard lives the record is refreshed. A no-op on the embedded store (one
/// process).
pub async fn agree(db: &ReadDb, name: &'static str, value: String) -> Result<Held, Disagreement> {
    if db.backend() != Backend::Postgres {
        return Ok(Held(None));
    }
    if !hold(db, name, &value).await? {
        return Err(Disagreement::Differs(name));
    }
    let (db, refresh) = (db.clone(), HOLD / 3);
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(refresh).await;
            match hold(&db, name, &value).await {
                Ok(true) => {}
                Ok(false) => tracing::error!(setting = name, "another value replaced this process's while it was not refreshed"),
                Err(e) => tracing::warn!(error = %e, setting = name, "cannot refresh the deployment's shared setting"),
            }
        }
    });
    Ok(Held(Some(task)))
}

/// Keeps a setting's record refreshed until dropped.
pub struct Held(Option<tokio::task::JoinHandle<()>>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Writes `value` when the record is missing, equal, or no longer held; false when
/// another value is held.
async fn hold(db: &ReadDb, name: &str, value: &str) -> Result<bool, ReadError> {
    let sql = format!(
        "INSERT INTO deployment_settings (name, value, refreshed_at) VALUES ($1, $2, now()) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, refreshed_at = now() \
         WHERE deployment_settings.value = excluded.value \
            OR deployment_settings.refreshed_at < now() - interval '{} seconds'",
        HOLD.as_secs()
    );
    let written = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).bind(value).execute(db.pool()).await?;
    Ok(written.rows_affected() > 0)
}

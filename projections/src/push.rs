//! Push targets (issue 15, item 8): the devices each user registered for pushes, read by
//! the pusher when a message finds no live socket.

use crate::projection::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::Event;
use im_domain::push::Provider;
use sqlx::{AnyConnection, Row};

pub struct PushProjection;

#[async_trait]
impl Projection for PushProjection {
    fn name(&self) -> &'static str {
        "push"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(event_type, "PushTargetRegistered" | "PushTargetRemoved")
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        for a in events {
            match a.event {
                Event::PushTargetRegistered(e) => {
                    sqlx::query(
                        "INSERT INTO push_targets (user_id, provider, device_token, create_time) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (user_id, provider, device_token) DO UPDATE SET create_time = excluded.create_time",
                    )
                    .bind(e.user.0)
                    .bind(e.provider.as_str())
                    .bind(&e.device_token)
                    .bind(e.at)
                    .execute(&mut *conn)
                    .await?;
                }
                Event::PushTargetRemoved(e) => {
                    sqlx::query("DELETE FROM push_targets WHERE user_id = $1 AND provider = $2 AND device_token = $3")
                        .bind(e.user.0)
                        .bind(e.provider.as_str())
                        .bind(&e.device_token)
                        .execute(&mut *conn)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        sqlx::query("DELETE FROM push_targets").execute(conn).await?;
        Ok(())
    }
}

/// Queries on push targets.
#[derive(Clone)]
pub struct PushTargets {
    db: ReadDb,
}

impl PushTargets {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// A user's targets, oldest first.
    pub async fn of(&self, user: i64) -> Result<Vec<(Provider, String)>, ReadError> {
        let rows =
            sqlx::query("SELECT provider, device_token FROM push_targets WHERE user_id = $1 ORDER BY create_time, provider, device_token")
                .bind(user)
                .fetch_all(self.db.pool())
                .await?;
        rows.into_iter()
            .map(|r| {
                let raw: String = r.try_get("provider")?;
                let provider = Provider::parse(&raw).ok_or_else(|| ReadError::Corrupt(format!("push provider {raw:?}")))?;
                Ok((provider, r.try_get("device_token")?))
            })
            .collect()
    }
}

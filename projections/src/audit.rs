//! The admin console's audit trail: every event an operator caused (`metadata.operator`),
//! newest first, with the operator's name.

use crate::projection::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

/// The event types an operator's action can append.
const HANDLES: &[&str] = &[
    "UserRegistered",
    "UsernameClaimed",
    "UsernameChanged",
    "ProfileUpdated",
    "PasswordChanged",
    "UserStatusChanged",
    "UserDeleted",
    "GroupChanged",
    "MessageRevoked",
    "ReportHandled",
];

/// The most characters of an event's payload kept as the row's detail.
const DETAIL_CHARS: usize = 1000;

pub struct AuditProjection;

#[async_trait]
impl Projection for AuditProjection {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn handles(&self, event_type: &str) -> bool {
        HANDLES.contains(&event_type)
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        for a in events {
            let Some(operator) = a.operator else { continue };
            let (_, mut payload) = a.event.encode();
            if let Some(fields) = payload.as_object_mut() {
                fields.remove("password_hash");
            }
            let detail: String = payload.to_string().chars().take(DETAIL_CHARS).collect();
            sqlx::query(
                "INSERT INTO operator_actions (position, operator, event_type, stream_id, detail, create_time) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (position) DO NOTHING",
            )
            .bind(a.position)
            .bind(operator)
            .bind(a.event_type)
            .bind(a.stream_id)
            .bind(detail)
            .bind(a.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        sqlx::query("DELETE FROM operator_actions").execute(conn).await?;
        Ok(())
    }
}

/// One operator action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub position: i64,
    pub operator: String,
    pub event_type: String,
    pub stream_id: String,
    pub detail: Value,
    pub at: i64,
}

/// Queries of the audit trail.
#[derive(Clone)]
pub struct Audit {
    db: ReadDb,
}

impl Audit {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// A page of operator actions, newest first (of one operator when `operator` is set),
    /// and how many there are.
    pub async fn page(&self, operator: Option<&str>, page: i64, limit: i64) -> Result<(i64, Vec<ActionRow>), ReadError> {
        let (count, rows) = match operator {
            Some(name) => {
                let count = sqlx::query_scalar("SELECT COUNT(*) FROM operator_actions WHERE operator = $1").bind(name);
                let rows = sqlx::query(
                    "SELECT position, operator, event_type, stream_id, detail, create_time FROM operator_actions \
                     WHERE operator = $3 ORDER BY position DESC LIMIT $1 OFFSET $2",
                );
                let count: i64 = count.fetch_one(self.db.pool()).await?;
                (count, rows.bind(limit).bind(crate::db::offset(page, limit)).bind(name).fetch_all(self.db.pool()).await?)
            }
            None => {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operator_actions").fetch_one(self.db.pool()).await?;
                let rows = sqlx::query(
                    "SELECT position, operator, event_type, stream_id, detail, create_time FROM operator_actions \
                     ORDER BY position DESC LIMIT $1 OFFSET $2",
                );
                (count, rows.bind(limit).bind(crate::db::offset(page, limit)).fetch_all(self.db.pool()).await?)
            }
        };
        let rows = rows
            .into_iter()
            .map(|r| -> Result<ActionRow, ReadError> {
                let detail: String = r.try_get("detail")?;
                Ok(ActionRow {
                    position: r.try_get("position")?,
                    operator: r.try_get("operator")?,
                    event_type: r.try_get("event_type")?,
                    stream_id: r.try_get("stream_id")?,
                    // Cut at DETAIL_CHARS, it may no longer parse: then it is shown as text.
                    detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                    at: r.try_get("create_time")?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((count, rows))
    }
}

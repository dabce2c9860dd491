//! Auto-reply pairs per user.

use crate::projection::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::Event;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

pub struct AskAnswerProjection;

#[async_trait]
impl Projection for AskAnswerProjection {
    fn name(&self) -> &'static str {
        "askanswer"
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(event_type, "AskAnswerSaved" | "AskAnswerDeleted")
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        for a in events {
            apply(conn, a.event).await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        sqlx::query("DELETE FROM askanswers").execute(conn).await?;
        Ok(())
    }
}

async fn apply(tx: &mut AnyConnection, event: &Event) -> Result<(), ReadError> {
    match event {
        Event::AskAnswerSaved(e) => {
            sqlx::query(
                "INSERT INTO askanswers (id, user_id, ask, answer, create_time, update_time) VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (id) DO UPDATE SET ask = excluded.ask, answer = excluded.answer, update_time = excluded.update_time",
            )
            .bind(e.id)
            .bind(e.user_id.0)
            .bind(&e.ask)
            .bind(&e.answer)
            .bind(e.at)
            .execute(&mut *tx)
            .await?;
        }
        Event::AskAnswerDeleted(e) => {
            sqlx::query("DELETE FROM askanswers WHERE id = $1").bind(e.id).execute(tx).await?;
        }
        _ => {}
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskAnswerRow {
    pub id: i64,
    pub user_id: i64,
    pub ask: String,
    pub answer: String,
    pub create_time: i64,
    pub update_time: i64,
}

impl AskAnswerRow {
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "user_id": self.user_id, "ask": self.ask, "answer": self.answer,
            "create_time": self.create_time, "update_time": self.update_time})
    }
}

fn decode(r: sqlx::any::AnyRow) -> Result<AskAnswerRow, ReadError> {
    Ok(AskAnswerRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        ask: r.try_get("ask")?,
        answer: r.try_get("answer")?,
        create_time: r.try_get("create_time")?,
        update_time: r.try_get("update_time")?,
    })
}

#[derive(Clone)]
pub struct AskAnswers {
    db: ReadDb,
}

impl AskAnswers {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    pub async fn get(&self, owner: i64, id: i64) -> Result<Option<AskAnswerRow>, ReadError> {
        sqlx::query("SELECT id, user_id, ask, answer, create_time, update_time FROM askanswers WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(owner)
            .fetch_optional(self.db.pool())
            .await?
            .map(decode)
            .transpose()
    }

    /// All of a user's pairs, oldest first.
    pub async fn all(&self, owner: i64) -> Result<Vec<AskAnswerRow>, ReadError> {
        let rows = sqlx::query("SELECT id, user_id, ask, answer, create_time, update_time FROM askanswers WHERE user_id = $1 ORDER BY id")
            .bind(owner)
            .fetch_all(self.db.pool())
            .await?;
        rows.into_iter().map(decode).collect()
    }

    /// A page, newest first: (total, rows).
    pub async fn page(&self, owner: i64, page: i64, limit: i64) -> Result<(i64, Vec<AskAnswerRow>), ReadError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM askanswers WHERE user_id = $1").bind(owner).fetch_one(self.db.pool()).await?;
        let rows = sqlx::query(
            "SELECT id, user_id, ask, answer, create_time, update_time FROM askanswers WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(owner)
        .bind(limit)
        .bind(crate::db::offset(page, limit))
        .fetch_all(self.db.pool())
        .await?;
        Ok((count, rows.into_iter().map(decode).collect::<Result<_, _>>()?))
    }
}

//! The `projection_checkpoints` table: how far each read model, the runner and the Kafka
//! relay have gone through the log. The only code that reads or writes it.

use crate::{ReadDb, ReadError};
use sqlx::AnyConnection;

/// The stored position of `name` (0: never moved).
pub async fn load(db: &ReadDb, name: &str) -> Result<i64, ReadError> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1").bind(name).fetch_optional(db.pool()).await?;
    Ok(position.unwrap_or(0))
}

/// Stores `position` for `name`, whatever it was (one writer per name, e.g. the relay).
pub async fn store(db: &ReadDb, name: &str, position: i64) -> Result<(), ReadError> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )
    .bind(name)
    .bind(position)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Moves a checkpoint from where this runner last stored it; false when another
/// instance moved it first.
pub(crate) async fn move_from(conn: &mut AnyConnection, name: &str, from: i64, to: i64) -> Result<bool, ReadError> {
    let moved = sqlx::query(
        "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position WHERE projection_checkpoints.position = $3",
    )
    .bind(name)
    .bind(to)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    Ok(moved.rows_affected() > 0)
}

/// Moves `name` forward to `to` (never back).
pub(crate) async fn advance(conn: &mut AnyConnection, name: &str, to: i64) -> Result<(), ReadError> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position WHERE projection_checkpoints.position < excluded.position",
    )
    .bind(name)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets `name` (a rebuild starts it from the beginning).
pub(crate) async fn forget(conn: &mut AnyConnection, name: &str) -> Result<(), ReadError> {
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1").bind(name).execute(&mut *conn).await?;
    Ok(())
}

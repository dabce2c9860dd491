//! The user directory: one row per account with its public profile, settings, status
//! and live session. Answers logins' token checks, profile and search queries.

use crate::runtime::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::Event;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

pub struct UsersProjection;

/// The event types this projection reads.
const HANDLES: &[&str] = &[
    "UserRegistered",
    "VisitorUpgraded",
    "UserLoggedIn",
    "UserLoggedOut",
    "PasswordChanged",
    "ProfileUpdated",
    "UserSettingsChanged",
    "UserStatusChanged",
    "UsernameChanged",
    "UserDeleted",
];

#[async_trait]
impl Projection for UsersProjection {
    fn name(&self) -> &'static str {
        "users"
    }

    fn handles(&self, event_type: &str) -> bool {
        HANDLES.contains(&event_type)
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        for a in events {
            apply(conn, a.event).await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        sqlx::query("DELETE FROM users").execute(conn).await?;
        Ok(())
    }
}

async fn apply(tx: &mut AnyConnection, event: &Event) -> Result<(), ReadError> {
    match event {
        Event::UserRegistered(e) => {
            let userset = serde_json::to_string(&im_domain::userset::UserSet::default())?;
            let device = e.device.as_ref().map(serde_json::to_string).transpose()?;
            sqlx::query(
                "INSERT INTO users (id, uuid, username, username_lower, nickname, nickname_lower, role, status, userset, \
                     device_fingerprint, device, last_login, create_time, update_time) \
                     VALUES ($1, $2, $3, $4, $5, $11, $6, 1, $7, $8, $9, $10, $10, $10) ON CONFLICT (id) DO NOTHING",
            )
            .bind(e.user_id.0)
            .bind(e.uuid.to_string())
            .bind(&e.username)
            .bind(e.username.to_lowercase())
            .bind(&e.nickname)
            .bind(e.role.as_str())
            .bind(userset)
            .bind(e.device_fingerprint.clone())
            .bind(device)
            .bind(e.at)
            .bind(e.nickname.to_lowercase())
            .execute(tx)
            .await?;
        }
        Event::VisitorUpgraded(e) => {
            sqlx::query("UPDATE users SET role = 'user', username = $2, username_lower = $3, update_time = $4 WHERE id = $1")
                .bind(e.user_id.0)
                .bind(&e.username)
                .bind(e.username.to_lowercase())
                .bind(e.at)
                .execute(tx)
                .await?;
        }
        Event::UserLoggedIn(e) => {
            sqlx::query("UPDATE users SET session_id = $2, last_login = $3 WHERE id = $1")
                .bind(e.user_id.0)
                .bind(e.session_id.to_string())
                .bind(e.at)
                .execute(tx)
                .await?;
        }
        Event::UserLoggedOut(e) => {
            sqlx::query("UPDATE users SET session_id = NULL WHERE id = $1 AND session_id = $2")
                .bind(e.user_id.0)
                .bind(e.session_id.to_string())
                .execute(tx)
                .await?;
        }
        Event::PasswordChanged(e) => {
            sqlx::query("UPDATE users SET update_time = $2 WHERE id = $1").bind(e.user_id.0).bind(e.at).execute(tx).await?;
        }
        Event::ProfileUpdated(e) => {
            sqlx::query(
                "UPDATE users SET nickname = COALESCE($2, nickname), nickname_lower = COALESCE($8, nickname_lower), \
                     avatar = COALESCE($3, avatar), sex = COALESCE($4, sex), sign = COALESCE($5, sign), area = COALESCE($6, area), \
                     update_time = $7 WHERE id = $1",
            )
            .bind(e.user_id.0)
            .bind(e.nickname.clone())
            .bind(e.avatar.clone())
            .bind(e.sex.clone())
            .bind(e.sign.clone())
            .bind(e.area.clone())
            .bind(e.at)
            .bind(e.nickname.as_ref().map(|n| n.to_lowercase()))
            .execute(tx)
            .await?;
        }
        Event::UserSettingsChanged(e) => {
            sqlx::query("UPDATE users SET userset = $2, update_time = $3 WHERE id = $1")
                .bind(e.user_id.0)
                .bind(serde_json::to_string(&e.userset)?)
                .bind(e.at)
                .execute(tx)
                .await?;
        }
        Event::UserStatusChanged(e) => {
            let sql = if e.active {
                "UPDATE users SET status = 1, update_time = $2 WHERE id = $1"
            } else {
                "UPDATE users SET status = 0, session_id = NULL, update_time = $2 WHERE id = $1"
            };
            sqlx::query(sql).bind(e.user_id.0).bind(e.at).execute(tx).await?;
        }
        Event::UsernameChanged(e) => {
            sqlx::query("UPDATE users SET username = $2, username_lower = $3, update_time = $4 WHERE id = $1")
                .bind(e.user_id.0)
                .bind(&e.username)
                .bind(e.username.to_lowercase())
                .bind(e.at)
                .execute(tx)
                .await?;
        }
        Event::UserDeleted(e) => {
            sqlx::query("DELETE FROM users WHERE id = $1").bind(e.user_id.0).execute(tx).await?;
        }
        _ => {}
    }
    Ok(())
}

/// A row of the user directory.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: i64,
    pub uuid: String,
    pub username: String,
    pub nickname: String,
    pub avatar: String,
    pub role: String,
    pub status: i64,
    pub userset: Value,
    /// `userset` read once (missing keys take their defaults).
    pub settings: im_domain::userset::UserSet,
    pub sex: String,
    pub sign: String,
    pub area: String,
    pub session_id: Option<String>,
    pub last_login: i64,
    pub create_time: i64,
    pub update_time: i64,
}

impl UserRow {
    pub fn is_active(&self) -> bool {
        self.status == 1
    }

    /// The nickname, else the username.
    pub fn display_name(&self) -> &str {
        if self.nickname.is_empty() { &self.username } else { &self.nickname }
    }

    /// The user object of the contract (never the password).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "uuid": self.uuid, "username": self.username, "nickname": self.nickname,
            "avatar": self.avatar, "role": self.role, "status": self.status, "userset": self.userset,
            "last_login": self.last_login, "create_time": self.create_time, "update_time": self.update_time,
        })
    }

    /// The public profile of `GET /api/userinfo/:uuid`.
    pub fn to_public_json(&self) -> Value {
        json!({
            "id": self.id, "uuid": self.uuid, "username": self.username, "nickname": self.nickname,
            "avatar": self.avatar, "role": self.role, "userset": self.userset,
            "userinfo": {"sex": self.sex, "sign": self.sign, "area": self.area},
        })
    }

    /// A search hit: public fields only.
    pub fn to_summary_json(&self) -> Value {
        json!({"id": self.id, "uuid": self.uuid, "username": self.username, "nickname": self.nickname, "avatar": self.avatar, "role": self.role})
    }
}

const COLUMNS: &str =
    "id, uuid, username, nickname, avatar, role, status, userset, sex, sign, area, session_id, last_login, create_time, update_time";

fn decode(row: AnyRow) -> Result<UserRow, ReadError> {
    let userset: String = row.try_get("userset")?;
    let userset: Value = serde_json::from_str(&userset)?;
    Ok(UserRow {
        settings: serde_json::from_value(userset.clone()).unwrap_or_default(),
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        username: row.try_get("username")?,
        nickname: row.try_get("nickname")?,
        avatar: row.try_get("avatar")?,
        role: row.try_get("role")?,
        status: row.try_get("status")?,
        userset,
        sex: row.try_get("sex")?,
        sign: row.try_get("sign")?,
        area: row.try_get("area")?,
        session_id: row.try_get("session_id")?,
        last_login: row.try_get("last_login")?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
    })
}

/// The tables the dashboard counts.
#[derive(Debug, Clone, Copy)]
pub enum Counted {
    Users,
    Groups,
    Messages,
    Reports,
}

/// Queries on the user directory.
#[derive(Clone)]
pub struct Users {
    db: ReadDb,
}

impl Users {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    pub async fn by_id(&self, id: i64) -> Result<Option<UserRow>, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1"));
        sqlx::query(sql).bind(id).fetch_optional(self.db.pool()).await?.map(decode).transpose()
    }

    pub async fn by_uuid(&self, uuid: &str) -> Result<Option<UserRow>, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE uuid = $1"));
        sqlx::query(sql).bind(uuid).fetch_optional(self.db.pool()).await?.map(decode).transpose()
    }

    /// Every account, newest first, optionally filtered by username/nickname: (total, page).
    pub async fn page(&self, query: &str, page: i64, limit: i64) -> Result<(i64, Vec<UserRow>), ReadError> {
        let pattern = format!("%{}%", query.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let filter = "(username_lower LIKE $1 ESCAPE '\\' OR nickname_lower LIKE $1 ESCAPE '\\')";
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM users WHERE {filter}")))
            .bind(&pattern)
            .fetch_one(self.db.pool())
            .await?;
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE {filter} ORDER BY id DESC LIMIT $2 OFFSET $3"));
        let rows = sqlx::query(sql).bind(&pattern).bind(limit).bind((page - 1) * limit).fetch_all(self.db.pool()).await?;
        Ok((count, rows.into_iter().map(decode).collect::<Result<_, _>>()?))
    }

    /// How many rows a read-model table has (dashboard figures).
    pub async fn count(&self, table: Counted) -> Result<i64, ReadError> {
        let sql = match table {
            Counted::Users => "SELECT COUNT(*) FROM users",
            Counted::Groups => "SELECT COUNT(*) FROM chat_groups WHERE status <> 0",
            Counted::Messages => "SELECT COUNT(*) FROM messages",
            Counted::Reports => "SELECT COUNT(*) FROM reports",
        };
        Ok(sqlx::query_scalar(sql).fetch_one(self.db.pool()).await?)
    }

    /// Active registered users (never visitors, never `me`) whose username or nickname
    /// contains `keyword`, case-insensitively.
    pub async fn search(&self, keyword: &str, me: i64, limit: i64) -> Result<Vec<UserRow>, ReadError> {
        let escaped: String =
            keyword.to_lowercase().chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
        let pattern = format!("%{escaped}%");
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM users WHERE role = 'user' AND status = 1 AND id <> $1 \
             AND (username_lower LIKE $2 ESCAPE '\\' OR nickname_lower LIKE $2 ESCAPE '\\') ORDER BY id LIMIT $3"
        ));
        let rows = sqlx::query(sql).bind(me).bind(pattern).bind(limit).fetch_all(self.db.pool()).await?;
        rows.into_iter().map(decode).collect()
    }
}

//! The user directory: one row per account with its public profile, settings, status
//! and live session. Answers logins' token checks, profile and search queries.

use crate::projection::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::event::Role;
use im_domain::userset::UserSet;
use im_domain::{Event, Slot, UserId};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

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
        // Accounts registered in this batch become whole rows in memory, their later
        // events in the batch folded in, and go in with one statement; events of other
        // accounts update their rows one by one (a row is only ever touched by its own
        // account's events, so the order between the two does not matter).
        let mut fresh: Vec<NewUser> = Vec::new();
        let mut index: HashMap<i64, usize> = HashMap::new();
        for a in events {
            if let Event::UserRegistered(e) = a.event {
                index.insert(e.user_id.0, fresh.len());
                fresh.push(NewUser::of(e)?);
                continue;
            }
            let Some(user) = user_of(a.event) else { continue };
            match index.get(&user) {
                Some(&i) => {
                    if fresh[i].fold(a.event)? == Fold::Deleted {
                        index.remove(&user);
                        fresh[i].deleted = true;
                    }
                }
                None => apply(conn, a.event).await?,
            }
        }
        fresh.retain(|u| !u.deleted);
        insert_new(conn, &fresh).await
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        sqlx::query("DELETE FROM users").execute(conn).await?;
        Ok(())
    }
}

/// The account an event of this projection concerns.
fn user_of(event: &Event) -> Option<i64> {
    Some(match event {
        Event::UserRegistered(e) => e.user_id.0,
        Event::VisitorUpgraded(e) => e.user_id.0,
        Event::UserLoggedIn(e) => e.user_id.0,
        Event::UserLoggedOut(e) => e.user_id.0,
        Event::PasswordChanged(e) => e.user_id.0,
        Event::ProfileUpdated(e) => e.user_id.0,
        Event::UserSettingsChanged(e) => e.user_id.0,
        Event::UserStatusChanged(e) => e.user_id.0,
        Event::UsernameChanged(e) => e.user_id.0,
        Event::UserDeleted(e) => e.user_id.0,
        _ => return None,
    })
}

/// A row registered in the current batch, with the batch's later events folded in
/// exactly as [`apply`]'s statements would change it.
#[derive(Debug, Serialize)]
struct NewUser {
    id: i64,
    uuid: String,
    username: String,
    username_lower: String,
    nickname: String,
    nickname_lower: String,
    avatar: String,
    role: &'static str,
    status: i64,
    userset: String,
    sex: String,
    sign: String,
    area: String,
    device_fingerprint: Option<String>,
    device: Option<String>,
    session_id: Option<String>,
    desktop_session_id: Option<String>,
    last_login: i64,
    create_time: i64,
    update_time: i64,
    #[serde(skip)]
    deleted: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Fold {
    Kept,
    Deleted,
}

impl NewUser {
    fn of(e: &im_domain::event::UserRegistered) -> Result<Self, ReadError> {
        Ok(Self {
            id: e.user_id.0,
            uuid: e.uuid.to_string(),
            username: e.username.clone(),
            username_lower: e.username.to_lowercase(),
            nickname: e.nickname.clone(),
            nickname_lower: e.nickname.to_lowercase(),
            avatar: String::new(),
            role: e.role.as_str(),
            status: 1,
            userset: serde_json::to_string(&im_domain::userset::UserSet::default())?,
            sex: String::new(),
            sign: String::new(),
            area: String::new(),
            device_fingerprint: e.device_fingerprint.clone(),
            device: e.device.as_ref().map(serde_json::to_string).transpose()?,
            session_id: None,
            desktop_session_id: None,
            last_login: e.at,
            create_time: e.at,
            update_time: e.at,
            deleted: false,
        })
    }

    fn fold(&mut self, event: &Event) -> Result<Fold, ReadError> {
        match event {
            Event::VisitorUpgraded(e) => {
                self.role = "user";
                self.username = e.username.clone();
                self.username_lower = e.username.to_lowercase();
                self.update_time = e.at;
            }
            Event::UserLoggedIn(e) => {
                let session = Some(e.session_id.to_string());
                match e.slot {
                    None => (self.session_id, self.desktop_session_id) = (session, None),
                    Some(Slot::Mobile) => self.session_id = session,
                    Some(Slot::Desktop) => self.desktop_session_id = session,
                }
                self.last_login = e.at;
            }
            Event::UserLoggedOut(e) => {
                let ended = e.session_id.to_string();
                for slot in [&mut self.session_id, &mut self.desktop_session_id] {
                    if slot.as_deref() == Some(ended.as_str()) {
                        *slot = None;
                    }
                }
            }
            Event::PasswordChanged(e) => self.update_time = e.at,
            Event::ProfileUpdated(e) => {
                if let Some(n) = &e.nickname {
                    self.nickname = n.clone();
                    self.nickname_lower = n.to_lowercase();
                }
                for (field, value) in
                    [(&mut self.avatar, &e.avatar), (&mut self.sex, &e.sex), (&mut self.sign, &e.sign), (&mut self.area, &e.area)]
                {
                    if let Some(v) = value {
                        *field = v.clone();
                    }
                }
                self.update_time = e.at;
            }
            Event::UserSettingsChanged(e) => {
                self.userset = match &e.raw {
                    Some(raw) => raw.clone(),
                    None => serde_json::to_string(&e.userset)?,
                };
                self.update_time = e.at;
            }
            Event::UserStatusChanged(e) => {
                self.status = i64::from(e.active);
                if !e.active {
                    (self.session_id, self.desktop_session_id) = (None, None);
                }
                self.update_time = e.at;
            }
            Event::UsernameChanged(e) => {
                self.username = e.username.clone();
                self.username_lower = e.username.to_lowercase();
                self.update_time = e.at;
            }
            Event::UserDeleted(_) => return Ok(Fold::Deleted),
            _ => {}
        }
        Ok(Fold::Kept)
    }
}

const USER_COLUMNS: &str = "id, uuid, username, username_lower, nickname, nickname_lower, avatar, role, status, userset, \
     sex, sign, area, device_fingerprint, device, session_id, desktop_session_id, last_login, create_time, update_time";

/// Inserts the batch's new rows, many per statement (on Postgres the rows travel as one
/// JSON array).
async fn insert_new(conn: &mut AnyConnection, rows: &[NewUser]) -> Result<(), ReadError> {
    if rows.is_empty() {
        return Ok(());
    }
    if conn.backend_name() != "SQLite" {
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) SELECT {USER_COLUMNS} FROM json_to_recordset($1::json) AS r(id BIGINT, uuid TEXT, \
             username TEXT, username_lower TEXT, nickname TEXT, nickname_lower TEXT, avatar TEXT, role TEXT, status BIGINT, \
             userset TEXT, sex TEXT, sign TEXT, area TEXT, device_fingerprint TEXT, device TEXT, session_id TEXT, \
             desktop_session_id TEXT, last_login BIGINT, create_time BIGINT, update_time BIGINT) ON CONFLICT (id) DO NOTHING"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(serde_json::to_string(rows)?).execute(conn).await?;
        return Ok(());
    }
    // A few statement texts for any number of rows, each bound while the one before it runs.
    let marks = crate::db::Placeholders::of(conn);
    let queries = crate::db::exact_chunks(rows).map(|chunk| {
        let sql = crate::db::statement_text("users", marks, chunk.len(), || {
            format!("INSERT OR IGNORE INTO users ({USER_COLUMNS}) VALUES {}", marks.values(chunk.len(), 20))
        });
        chunk.iter().fold(crate::db::query_for(sql, chunk.len() * 20), |query, u| {
            query
                .bind(u.id)
                .bind(u.uuid.as_str())
                .bind(u.username.as_str())
                .bind(u.username_lower.as_str())
                .bind(u.nickname.as_str())
                .bind(u.nickname_lower.as_str())
                .bind(u.avatar.as_str())
                .bind(u.role)
                .bind(u.status)
                .bind(u.userset.as_str())
                .bind(u.sex.as_str())
                .bind(u.sign.as_str())
                .bind(u.area.as_str())
                .bind(u.device_fingerprint.as_deref())
                .bind(u.device.as_deref())
                .bind(u.session_id.as_deref())
                .bind(u.desktop_session_id.as_deref())
                .bind(u.last_login)
                .bind(u.create_time)
                .bind(u.update_time)
        })
    });
    crate::db::run_all(conn, queries).await
}

/// Runs `sql`, an update of a user's name (`$1` id, `$2` name, `$3` its lower case,
/// `$4` time).
async fn set_username(tx: &mut AnyConnection, sql: &'static str, user: UserId, username: &str, at: i64) -> Result<(), ReadError> {
    sqlx::query(sql).bind(user.0).bind(username).bind(username.to_lowercase()).bind(at).execute(tx).await?;
    Ok(())
}

/// One event of an account registered before this batch.
async fn apply(tx: &mut AnyConnection, event: &Event) -> Result<(), ReadError> {
    match event {
        Event::VisitorUpgraded(e) => {
            let sql = "UPDATE users SET role = 'user', username = $2, username_lower = $3, update_time = $4 WHERE id = $1";
            set_username(tx, sql, e.user_id, &e.username, e.at).await?;
        }
        Event::UserLoggedIn(e) => {
            let sql = match e.slot {
                None => "UPDATE users SET session_id = $2, desktop_session_id = NULL, last_login = $3 WHERE id = $1",
                Some(Slot::Mobile) => "UPDATE users SET session_id = $2, last_login = $3 WHERE id = $1",
                Some(Slot::Desktop) => "UPDATE users SET desktop_session_id = $2, last_login = $3 WHERE id = $1",
            };
            sqlx::query(sql).bind(e.user_id.0).bind(e.session_id.to_string()).bind(e.at).execute(tx).await?;
        }
        Event::UserLoggedOut(e) => {
            sqlx::query(
                "UPDATE users SET session_id = CASE WHEN session_id = $2 THEN NULL ELSE session_id END, desktop_session_id = \
                 CASE WHEN desktop_session_id = $2 THEN NULL ELSE desktop_session_id END WHERE id = $1 AND $2 IN (session_id, desktop_session_id)",
            )
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
                .bind(match &e.raw {
                    Some(raw) => raw.clone(),
                    None => serde_json::to_string(&e.userset)?,
                })
                .bind(e.at)
                .execute(tx)
                .await?;
        }
        Event::UserStatusChanged(e) => {
            let sql = if e.active {
                "UPDATE users SET status = 1, update_time = $2 WHERE id = $1"
            } else {
                "UPDATE users SET status = 0, session_id = NULL, desktop_session_id = NULL, update_time = $2 WHERE id = $1"
            };
            sqlx::query(sql).bind(e.user_id.0).bind(e.at).execute(tx).await?;
        }
        Event::UsernameChanged(e) => {
            let sql = "UPDATE users SET username = $2, username_lower = $3, update_time = $4 WHERE id = $1";
            set_username(tx, sql, e.user_id, &e.username, e.at).await?;
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
    pub id: UserId,
    pub uuid: String,
    pub username: String,
    pub nickname: String,
    pub avatar: String,
    pub role: Role,
    /// Not disabled by an operator (the contract's `status` 1).
    pub active: bool,
    /// `userset`, read once (missing keys take their defaults). Kept typed rather than
    /// as a JSON tree: a cached row is a few hundred bytes instead of ~3 KiB.
    pub settings: im_domain::userset::UserSet,
    /// `userset` as stored: the text the client sent (the reference's TEXT column, which
    /// its client `JSON.parse`s), unknown keys kept.
    pub userset_text: Box<str>,
    pub sex: String,
    pub sign: String,
    pub area: String,
    /// The live session (under `IM_MULTI_DEVICE`, the phone's).
    pub session_id: Option<String>,
    /// The desktop/web device's live session (`IM_MULTI_DEVICE` only).
    pub desktop_session_id: Option<String>,
    pub last_login: i64,
    pub create_time: i64,
    pub update_time: i64,
}

impl UserRow {
    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn is_visitor(&self) -> bool {
        self.role == Role::Visitor
    }

    /// Which slot `session` is live in, if it is live.
    pub fn slot_of(&self, session: &str) -> Option<Slot> {
        if self.session_id.as_deref() == Some(session) {
            Some(Slot::Mobile)
        } else if self.desktop_session_id.as_deref() == Some(session) {
            Some(Slot::Desktop)
        } else {
            None
        }
    }

    /// The sessions live now (one, or one per slot).
    pub fn live_sessions(&self) -> Vec<&str> {
        self.session_id.iter().chain(&self.desktop_session_id).map(String::as_str).collect()
    }

    /// The contract's `status`: 1 active, 0 disabled.
    pub fn status(&self) -> i64 {
        i64::from(self.active)
    }

    /// The nickname, else the username.
    pub fn display_name(&self) -> &str {
        im_domain::values::display_name([self.nickname.as_str(), &self.username])
    }

    /// The settings as an object, defaults filled in (`getUserSetInfo`).
    pub fn userset(&self) -> Value {
        serde_json::to_value(self.settings).unwrap_or(Value::Null)
    }

    /// The user object of the contract (never the password).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.0, "uuid": self.uuid, "username": self.username, "nickname": self.nickname,
            "avatar": self.avatar, "role": self.role.as_str(), "status": self.status(), "userset": &*self.userset_text,
            "last_login": self.last_login, "create_time": self.create_time, "update_time": self.update_time,
        })
    }

    /// The public profile of `GET /api/userinfo/:uuid`.
    pub fn to_public_json(&self) -> Value {
        json!({
            "id": self.id.0, "uuid": self.uuid, "username": self.username, "nickname": self.nickname,
            "avatar": self.avatar, "role": self.role.as_str(), "userset": &*self.userset_text,
            "userinfo": {"sex": self.sex, "sign": self.sign, "area": self.area},
        })
    }

    /// A search hit: public fields only.
    pub fn to_summary_json(&self) -> Value {
        json!({"id": self.id.0, "uuid": self.uuid, "username": self.username, "nickname": self.nickname, "avatar": self.avatar, "role": self.role.as_str()})
    }
}

const COLUMNS: &str = "id, uuid, username, nickname, avatar, role, status, userset, sex, sign, area, session_id, desktop_session_id, last_login, create_time, update_time";

fn decode(row: AnyRow) -> Result<UserRow, ReadError> {
    let userset: String = row.try_get("userset")?;
    let id = UserId(row.try_get("id")?);
    let role = match row.try_get::<String, _>("role")?.as_str() {
        "user" => Role::User,
        "visitor" => Role::Visitor,
        other => return Err(ReadError::Corrupt(format!("user {}: role {other:?}", id.0))),
    };
    Ok(UserRow {
        settings: UserSet::parse(&userset).map_err(|e| ReadError::Corrupt(format!("user {}: userset: {}", id.0, e.0)))?,
        userset_text: userset.into_boxed_str(),
        id,
        role,
        active: row.try_get::<i64, _>("status")? == 1,
        uuid: row.try_get("uuid")?,
        username: row.try_get("username")?,
        nickname: row.try_get("nickname")?,
        avatar: row.try_get("avatar")?,
        sex: row.try_get("sex")?,
        sign: row.try_get("sign")?,
        area: row.try_get("area")?,
        session_id: row.try_get("session_id")?,
        desktop_session_id: row.try_get("desktop_session_id")?,
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
        let rows = sqlx::query(sql).bind(&pattern).bind(limit).bind(crate::db::offset(page, limit)).fetch_all(self.db.pool()).await?;
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

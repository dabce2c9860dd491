//! Friend lists (one row per side), friend requests and reports, projected from the
//! friendship and report streams; plus the queries the friend routes and message
//! sending use (`is_blocked_by`, `are_friends`).

use crate::projection::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::friendship::{RequestStatus, Side, SideChange, apply_change};
use im_domain::{Event, UserId};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

pub struct FriendsProjection;

async fn insert_side(conn: &mut AnyConnection, user: i64, friend: i64, side: &Side, at: i64) -> Result<(), ReadError> {
    upsert_sides(conn, &[(user, friend, side, at, at)]).await
}

/// Writes friend sides — (user, friend, side, created, updated), each key once (an
/// upsert must not meet its key twice) — keeping a side's creation time if it exists.
async fn upsert_sides(conn: &mut AnyConnection, sides: &[(i64, i64, &Side, i64, i64)]) -> Result<(), ReadError> {
    let marks = crate::db::Placeholders::of(conn);
    let queries = crate::db::exact_chunks(sides).map(|chunk| {
        let sql = format!(
            "INSERT INTO friends (user_id, friend_id, nickname, tags, star, isblack, lookme, lookhim, create_time, update_time) \
             VALUES {} ON CONFLICT (user_id, friend_id) DO UPDATE SET nickname = excluded.nickname, tags = excluded.tags, \
             star = excluded.star, isblack = excluded.isblack, lookme = excluded.lookme, lookhim = excluded.lookhim, \
             update_time = excluded.update_time",
            marks.values(chunk.len(), 10)
        );
        chunk.iter().fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |q, (user, friend, side, created, at)| {
            q.bind(*user)
                .bind(*friend)
                .bind(side.nickname.as_str())
                .bind(side.tags.as_str())
                .bind(i64::from(side.star))
                .bind(i64::from(side.black))
                .bind(i64::from(side.lookme))
                .bind(i64::from(side.lookhim))
                .bind(*created)
                .bind(*at)
        })
    });
    crate::db::run_all(conn, queries).await
}

/// A friendship that begins (`FriendRequestAccepted`, `FriendAdded`): both sides as each
/// chose, at `at`.
struct Begun<'e> {
    from: i64,
    to: i64,
    from_side: Cow<'e, Side>,
    to_side: Cow<'e, Side>,
    at: i64,
}

impl<'e> Begun<'e> {
    fn of(event: &'e Event) -> Option<Self> {
        match event {
            Event::FriendRequestAccepted(e) => Some(Self {
                from: e.from.0,
                to: e.to.0,
                from_side: Cow::Borrowed(&e.applicant_side),
                to_side: Cow::Borrowed(&e.addressee_side),
                at: e.at,
            }),
            Event::FriendAdded(e) => Some(Self {
                from: e.from.0,
                to: e.to.0,
                from_side: Cow::Borrowed(&e.from_side),
                to_side: Cow::Owned(Side::default()),
                at: e.at,
            }),
            _ => None,
        }
    }
}

/// Writes friendships that begin, in order, as applying them one at a time would: the
/// pending requests between each pair agreed (at the first one's time), both sides
/// written (a side written twice keeps its first time as its creation), and the blocks
/// that were already there shown on the new sides.
async fn begin_all(conn: &mut AnyConnection, begun: &[Begun<'_>]) -> Result<(), ReadError> {
    if begun.is_empty() {
        return Ok(());
    }
    let marks = crate::db::Placeholders::of(conn);
    // The first of each pair agrees its requests: none are pending after it.
    let mut pairs: Vec<(i64, i64, i64)> = Vec::with_capacity(begun.len());
    let mut seen = HashSet::new();
    for b in begun {
        if seen.insert((b.from.min(b.to), b.from.max(b.to))) {
            pairs.push((b.from, b.to, b.at));
        }
    }
    let agree = crate::db::exact_chunks(&pairs).map(|chunk| {
        let sql = format!(
            "WITH p (a, b, at) AS (VALUES {}) UPDATE friend_requests SET status = 'agree', update_time = p.at FROM p \
             WHERE friend_requests.status = 'pending' AND ((friend_requests.user_id = p.a AND friend_requests.friend_id = p.b) \
             OR (friend_requests.user_id = p.b AND friend_requests.friend_id = p.a))",
            marks.values(chunk.len(), 3)
        );
        chunk.iter().fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |q, (a, b, at)| q.bind(*a).bind(*b).bind(*at))
    });
    crate::db::run_all(conn, agree).await?;
    // Each side once (an upsert must not meet its key twice): the last write of it, with
    // the time of its first as the creation time.
    let mut sides: Vec<(i64, i64, &Side, i64, i64)> = Vec::with_capacity(begun.len() * 2);
    let mut index: HashMap<(i64, i64), usize> = HashMap::new();
    for b in begun {
        for (user, friend, side) in [(b.from, b.to, &*b.from_side), (b.to, b.from, &*b.to_side)] {
            match index.get(&(user, friend)) {
                Some(&i) => {
                    let created = sides[i].3;
                    sides[i] = (user, friend, side, created, b.at);
                }
                None => {
                    index.insert((user, friend), sides.len());
                    sides.push((user, friend, side, b.at, b.at));
                }
            }
        }
    }
    upsert_sides(conn, &sides).await?;
    // The new sides show the blocks that were already there.
    let show = crate::db::exact_chunks(&sides).map(|chunk| {
        let sql = format!(
            // (`IN` with the key's columns: SQLite finds the rows by key; an `EXISTS` over
            // the list made it scan every friend row.)
            "WITH s (u, f) AS (VALUES {}) UPDATE friends SET isblack = 1 WHERE (user_id, friend_id) IN (SELECT u, f FROM s) \
             AND EXISTS (SELECT 1 FROM blocks WHERE blocks.user_id = friends.user_id AND blocks.blocked_id = friends.friend_id)",
            marks.values(chunk.len(), 2)
        );
        chunk.iter().fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |q, (user, friend, ..)| q.bind(*user).bind(*friend))
    });
    crate::db::run_all(conn, show).await
}

async fn load_side(conn: &mut AnyConnection, user: i64, friend: i64) -> Result<Option<Side>, ReadError> {
    let row = sqlx::query("SELECT nickname, tags, star, isblack, lookme, lookhim FROM friends WHERE user_id = $1 AND friend_id = $2")
        .bind(user)
        .bind(friend)
        .fetch_optional(conn)
        .await?;
    row.map(|r| -> Result<Side, ReadError> {
        Ok(Side {
            nickname: r.try_get("nickname")?,
            tags: r.try_get("tags")?,
            star: r.try_get::<i64, _>("star")? != 0,
            black: r.try_get::<i64, _>("isblack")? != 0,
            lookme: r.try_get::<i64, _>("lookme")? != 0,
            lookhim: r.try_get::<i64, _>("lookhim")? != 0,
        })
    })
    .transpose()
}

/// The event types this projection reads.
const HANDLES: &[&str] = &[
    "FriendRequested",
    "FriendRequestAccepted",
    "FriendRequestRefused",
    "FriendAdded",
    "FriendSideChanged",
    "FriendshipEnded",
    "ReportFiled",
    "ReportHandled",
];

#[async_trait]
impl Projection for FriendsProjection {
    fn name(&self) -> &'static str {
        "friends"
    }

    fn handles(&self, event_type: &str) -> bool {
        HANDLES.contains(&event_type)
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        // Friendships that begin one after another are written together (a group's owner
        // adding its members makes hundreds in a row: four statements each, one at a time,
        // were most of that range of a rebuild).
        let mut begun: Vec<Begun<'_>> = Vec::new();
        for a in events {
            if let Some(b) = Begun::of(a.event) {
                begun.push(b);
                continue;
            }
            begin_all(conn, &std::mem::take(&mut begun)).await?;
            if let Event::ReportHandled(e) = a.event {
                sqlx::query(
                    "UPDATE reports SET status = 'handled', action = $2, note = $3, handled_by = $4, handled_time = $5 WHERE id = $1",
                )
                .bind(e.report_id)
                .bind(&e.action)
                .bind(&e.note)
                .bind(a.operator.unwrap_or_default())
                .bind(e.at)
                .execute(&mut *conn)
                .await?;
            } else {
                apply(conn, a.event).await?;
            }
        }
        begin_all(conn, &begun).await
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        for table in ["DELETE FROM friends", "DELETE FROM friend_requests", "DELETE FROM reports", "DELETE FROM blocks"] {
            sqlx::query(table).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

async fn apply(conn: &mut AnyConnection, event: &Event) -> Result<(), ReadError> {
    match event {
        Event::FriendRequested(e) => {
            sqlx::query(
                "INSERT INTO friend_requests (id, user_id, friend_id, nickname, lookme, lookhim, status, create_time, update_time) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(e.request_id)
            .bind(e.from.0)
            .bind(e.to.0)
            .bind(&e.nickname)
            .bind(i64::from(e.lookme))
            .bind(i64::from(e.lookhim))
            .bind(e.at)
            .execute(conn)
            .await?;
        }
        Event::FriendRequestRefused(e) => {
            sqlx::query("UPDATE friend_requests SET status = 'refuse', update_time = $2 WHERE id = $1")
                .bind(e.request_id)
                .bind(e.at)
                .execute(conn)
                .await?;
        }
        Event::FriendSideChanged(e) => {
            if let SideChange::Blacklist { black } = e.change {
                let query = if black {
                    sqlx::query("INSERT INTO blocks (user_id, blocked_id, create_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(e.user_id.0)
                        .bind(e.friend_id.0)
                        .bind(e.at)
                } else {
                    sqlx::query("DELETE FROM blocks WHERE user_id = $1 AND blocked_id = $2").bind(e.user_id.0).bind(e.friend_id.0)
                };
                query.execute(&mut *conn).await?;
            }
            if let Some(mut side) = load_side(conn, e.user_id.0, e.friend_id.0).await? {
                apply_change(&mut side, &e.change);
                insert_side(conn, e.user_id.0, e.friend_id.0, &side, e.at).await?;
            }
        }
        Event::FriendshipEnded(e) => {
            sqlx::query("DELETE FROM friends WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)")
                .bind(e.user_id.0)
                .bind(e.friend_id.0)
                .execute(conn)
                .await?;
        }
        Event::ReportFiled(e) => {
            sqlx::query(
                "INSERT INTO reports (id, user_id, reported_id, reported_type, category, content, create_time) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(e.report_id)
            .bind(e.user_id.0)
            .bind(e.reported_id)
            .bind(&e.reported_type)
            .bind(&e.category)
            .bind(&e.content)
            .bind(e.at)
            .execute(conn)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// One side of a friendship joined with the friend's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct FriendRow {
    pub user_id: UserId,
    pub friend_id: UserId,
    pub uuid: String,
    pub username: String,
    pub friend_nickname: String,
    pub avatar: String,
    pub sign: String,
    pub area: String,
    pub sex: String,
    pub nickname: String,
    pub tags: String,
    pub star: bool,
    /// I blacklisted them (`isblack`).
    pub blocked: bool,
    /// They may see my moments (`lookme`).
    pub lookme: bool,
    /// I see theirs (`lookhim`).
    pub lookhim: bool,
    pub create_time: i64,
}

impl FriendRow {
    /// My remark, else their nickname, else their username.
    pub fn name(&self) -> &str {
        im_domain::values::display_name([self.nickname.as_str(), &self.friend_nickname, &self.username])
    }

    /// An entry of `goodfriendlist`.
    pub fn to_list_json(&self) -> Value {
        json!({
            "id": self.friend_id.0, "friend_id": self.friend_id.0, "uuid": self.uuid, "username": self.username,
            "avatar": self.avatar, "friend_nickname": self.friend_nickname, "beizhu": self.nickname, "name": self.name(),
        })
    }

    /// `getgoodfriendinfo`: the friend's profile plus my settings for them.
    pub fn to_info_json(&self) -> Value {
        json!({
            "id": self.friend_id.0, "friend_id": self.friend_id.0, "uuid": self.uuid, "username": self.username,
            "avatar": self.avatar, "friend_nickname": self.friend_nickname, "name": self.name(),
            "sex": self.sex, "sign": self.sign, "area": self.area,
            "nickname": self.nickname, "tags": self.tags, "star": i64::from(self.star), "isblack": i64::from(self.blocked),
            "lookme": i64::from(self.lookme), "lookhim": i64::from(self.lookhim), "create_time": self.create_time,
        })
    }

    /// `ismygoodfriend`: the friendship row. Its `id` is the friend's id, as in the list
    /// (the reference's row ids; a side here is keyed by the pair).
    pub fn to_row_json(&self) -> Value {
        json!({
            "id": self.friend_id.0, "user_id": self.user_id.0, "friend_id": self.friend_id.0, "nickname": self.nickname, "tags": self.tags,
            "star": i64::from(self.star), "isblack": i64::from(self.blocked), "lookme": i64::from(self.lookme), "lookhim": i64::from(self.lookhim),
            "create_time": self.create_time,
        })
    }
}

const FRIEND_SELECT: &str = "SELECT f.user_id, f.friend_id, u.uuid, u.username, u.nickname AS friend_nickname, u.avatar, \
    u.sign, u.area, u.sex, f.nickname, f.tags, f.star, f.isblack, f.lookme, f.lookhim, f.create_time \
    FROM friends f JOIN users u ON u.id = f.friend_id";

fn decode_friend(r: AnyRow) -> Result<FriendRow, ReadError> {
    Ok(FriendRow {
        user_id: UserId(r.try_get("user_id")?),
        friend_id: UserId(r.try_get("friend_id")?),
        uuid: r.try_get("uuid")?,
        username: r.try_get("username")?,
        friend_nickname: r.try_get("friend_nickname")?,
        avatar: r.try_get("avatar")?,
        sign: r.try_get("sign")?,
        area: r.try_get("area")?,
        sex: r.try_get("sex")?,
        nickname: r.try_get("nickname")?,
        tags: r.try_get("tags")?,
        star: r.try_get::<i64, _>("star")? != 0,
        blocked: r.try_get::<i64, _>("isblack")? != 0,
        lookme: r.try_get::<i64, _>("lookme")? != 0,
        lookhim: r.try_get::<i64, _>("lookhim")? != 0,
        create_time: r.try_get("create_time")?,
    })
}

/// A friend request joined with the applicant's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: i64,
    /// Who asks.
    pub user_id: UserId,
    /// Who is asked.
    pub friend_id: UserId,
    pub nickname: String,
    pub lookme: bool,
    pub lookhim: bool,
    pub status: RequestStatus,
    pub create_time: i64,
    pub applicant: Value,
}

impl RequestRow {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "user_id": self.user_id.0, "friend_id": self.friend_id.0, "nickname": self.nickname,
            "lookme": i64::from(self.lookme), "lookhim": i64::from(self.lookhim), "status": self.status.as_str(), "create_time": self.create_time,
            "user": self.applicant,
        })
    }
}

const REQUEST_SELECT: &str = "SELECT r.id, r.user_id, r.friend_id, r.nickname, r.lookme, r.lookhim, r.status, r.create_time, \
    u.uuid, u.username, u.nickname AS user_nickname, u.avatar FROM friend_requests r JOIN users u ON u.id = r.user_id";

fn decode_request(r: AnyRow) -> Result<RequestRow, ReadError> {
    let id: i64 = r.try_get("id")?;
    let status = match r.try_get::<String, _>("status")?.as_str() {
        "pending" => RequestStatus::Pending,
        "agree" => RequestStatus::Agree,
        "refuse" => RequestStatus::Refuse,
        other => return Err(ReadError::Corrupt(format!("friend request {id}: status {other:?}"))),
    };
    Ok(RequestRow {
        id,
        user_id: UserId(r.try_get("user_id")?),
        friend_id: UserId(r.try_get("friend_id")?),
        nickname: r.try_get("nickname")?,
        lookme: r.try_get::<i64, _>("lookme")? != 0,
        lookhim: r.try_get::<i64, _>("lookhim")? != 0,
        status,
        create_time: r.try_get("create_time")?,
        applicant: json!({
            "id": r.try_get::<i64, _>("user_id")?, "uuid": r.try_get::<String, _>("uuid")?,
            "username": r.try_get::<String, _>("username")?, "nickname": r.try_get::<String, _>("user_nickname")?,
            "avatar": r.try_get::<String, _>("avatar")?,
        }),
    })
}

/// Queries on friends, requests and reports.
#[derive(Clone)]
pub struct Friends {
    db: ReadDb,
}

impl Friends {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// My side of the friendship with `friend`, if we are friends.
    pub async fn friend(&self, me: i64, friend: i64) -> Result<Option<FriendRow>, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!("{FRIEND_SELECT} WHERE f.user_id = $1 AND f.friend_id = $2"));
        sqlx::query(sql).bind(me).bind(friend).fetch_optional(self.db.pool()).await?.map(decode_friend).transpose()
    }

    /// All my friends.
    pub async fn friends_of(&self, me: i64) -> Result<Vec<FriendRow>, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!("{FRIEND_SELECT} WHERE f.user_id = $1 ORDER BY f.friend_id"));
        let rows = sqlx::query(sql).bind(me).fetch_all(self.db.pool()).await?;
        rows.into_iter().map(decode_friend).collect()
    }

    pub async fn are_friends(&self, a: i64, b: i64) -> Result<bool, ReadError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM friends WHERE user_id = $1 AND friend_id = $2")
            .bind(a)
            .bind(b)
            .fetch_one(self.db.pool())
            .await?;
        Ok(n > 0)
    }

    /// True when `owner` has blocked `other` (friends or not): `other` may not message
    /// them, ask to be their friend or invite them anywhere.
    pub async fn is_blocked_by(&self, owner: i64, other: i64) -> Result<bool, ReadError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blocks WHERE user_id = $1 AND blocked_id = $2")
            .bind(owner)
            .bind(other)
            .fetch_one(self.db.pool())
            .await?;
        Ok(n > 0)
    }

    pub async fn request(&self, id: i64) -> Result<Option<RequestRow>, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!("{REQUEST_SELECT} WHERE r.id = $1"));
        sqlx::query(sql).bind(id).fetch_optional(self.db.pool()).await?.map(decode_request).transpose()
    }

    /// The pending request from `from` to `to`, if any.
    pub async fn pending_request(&self, from: i64, to: i64) -> Result<Option<RequestRow>, ReadError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{REQUEST_SELECT} WHERE r.user_id = $1 AND r.friend_id = $2 AND r.status = 'pending' ORDER BY r.id DESC LIMIT 1"
        ));
        sqlx::query(sql).bind(from).bind(to).fetch_optional(self.db.pool()).await?.map(decode_request).transpose()
    }

    /// Requests addressed to me, newest first: (total, page rows).
    pub async fn requests_to(&self, me: i64, page: i64, limit: i64) -> Result<(i64, Vec<RequestRow>), ReadError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM friend_requests WHERE friend_id = $1").bind(me).fetch_one(self.db.pool()).await?;
        let sql = sqlx::AssertSqlSafe(format!("{REQUEST_SELECT} WHERE r.friend_id = $1 ORDER BY r.id DESC LIMIT $2 OFFSET $3"));
        let rows = sqlx::query(sql).bind(me).bind(limit).bind(crate::db::offset(page, limit)).fetch_all(self.db.pool()).await?;
        Ok((count, rows.into_iter().map(decode_request).collect::<Result<_, _>>()?))
    }

    /// Reports, newest first: (total, page rows).
    /// Reports, newest first; `pending` only the ones nobody handled yet.
    pub async fn reports(&self, pending: bool, page: i64, limit: i64) -> Result<(i64, Vec<Value>), ReadError> {
        let filter = if pending { "WHERE status = 'pending'" } else { "" };
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM reports {filter}"))).fetch_one(self.db.pool()).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{REPORT_COLUMNS} {filter} ORDER BY id DESC LIMIT $1 OFFSET $2")))
            .bind(limit)
            .bind(crate::db::offset(page, limit))
            .fetch_all(self.db.pool())
            .await?;
        let rows = rows.iter().map(report_json).collect::<Result<_, _>>()?;
        Ok((count, rows))
    }

    /// One report, as [`Friends::reports`] shows it.
    pub async fn report(&self, id: i64) -> Result<Option<Value>, ReadError> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("{REPORT_COLUMNS} WHERE id = $1"))).bind(id).fetch_optional(self.db.pool()).await?;
        row.as_ref().map(report_json).transpose()
    }
}

const REPORT_COLUMNS: &str = "SELECT id, user_id, reported_id, reported_type, category, content, status, create_time, \
     action, note, handled_by, handled_time FROM reports";

fn report_json(r: &sqlx::any::AnyRow) -> Result<Value, ReadError> {
    Ok(json!({
        "id": r.try_get::<i64, _>("id")?, "user_id": r.try_get::<i64, _>("user_id")?,
        "reported_id": r.try_get::<i64, _>("reported_id")?, "reported_type": r.try_get::<String, _>("reported_type")?,
        "category": r.try_get::<String, _>("category")?, "content": r.try_get::<String, _>("content")?,
        "status": r.try_get::<String, _>("status")?, "create_time": r.try_get::<i64, _>("create_time")?,
        "action": r.try_get::<String, _>("action")?, "note": r.try_get::<String, _>("note")?,
        "handled_by": r.try_get::<String, _>("handled_by")?, "handled_time": r.try_get::<Option<i64>, _>("handled_time")?,
    }))
}

/// The index letter of a display name: A–Z for Latin letters and for Chinese
/// characters (their pinyin initial), `#` for everything else.
pub fn index_letter(name: &str) -> char {
    use pinyin::ToPinyin;
    let Some(first) = name.trim().chars().next() else { return '#' };
    if first.is_ascii_alphabetic() {
        return first.to_ascii_uppercase();
    }
    match first.to_pinyin() {
        Some(p) => p.first_letter().chars().next().map_or('#', |c| c.to_ascii_uppercase()),
        None => '#',
    }
}

/// A sort key that orders Chinese names by their pinyin among Latin ones.
pub fn sort_key(name: &str) -> String {
    use pinyin::ToPinyin;
    name.trim().chars().map(|c| c.to_pinyin().map_or_else(|| c.to_lowercase().to_string(), |p| p.plain().to_owned())).collect()
}

/// Groups friends under their index letters: A–Z in order, `#` last; each group sorted
/// by name (pinyin order for Chinese names).
pub fn group_by_letter(mut friends: Vec<FriendRow>) -> Vec<Value> {
    friends.sort_by_cached_key(|f| (index_letter(f.name()) == '#', index_letter(f.name()), sort_key(f.name()), f.friend_id));
    let mut groups: Vec<(char, Vec<Value>)> = Vec::new();
    for f in friends {
        let letter = index_letter(f.name());
        match groups.last_mut() {
            Some((l, list)) if *l == letter => list.push(f.to_list_json()),
            _ => groups.push((letter, vec![f.to_list_json()])),
        }
    }
    groups.into_iter().map(|(title, list)| json!({"title": title.to_string(), "list": list})).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn friend(id: i64, name: &str) -> FriendRow {
        FriendRow {
            user_id: UserId(1),
            friend_id: UserId(id),
            uuid: String::new(),
            username: format!("user{id}"),
            friend_nickname: name.to_owned(),
            avatar: String::new(),
            sign: String::new(),
            area: String::new(),
            sex: String::new(),
            nickname: String::new(),
            tags: String::new(),
            star: false,
            blocked: false,
            lookme: true,
            lookhim: true,
            create_time: 0,
        }
    }

    #[test]
    fn index_letters_use_pinyin_initials() {
        assert_eq!(index_letter("alice"), 'A');
        assert_eq!(index_letter("Bob"), 'B');
        assert_eq!(index_letter("张三"), 'Z');
        assert_eq!(index_letter("李四"), 'L');
        assert_eq!(index_letter("阿里"), 'A');
        assert_eq!(index_letter("123"), '#');
        assert_eq!(index_letter("_x"), '#');
        assert_eq!(index_letter("😀"), '#');
        assert_eq!(index_letter(""), '#');
    }

    #[test]
    fn groups_are_ordered_with_hash_last_and_sorted_within() {
        let groups = group_by_letter(vec![
            friend(1, "张三"),
            friend(2, "zoe"),
            friend(3, "9lives"),
            friend(4, "阿里"),
            friend(5, "adam"),
            friend(6, "赵六"),
        ]);
        let titles: Vec<_> = groups.iter().map(|g| g["title"].as_str().unwrap_or("").to_owned()).collect();
        assert_eq!(titles, ["A", "Z", "#"]);
        let names = |i: usize| groups[i]["list"].as_array().map(|l| l.iter().map(|f| f["name"].clone()).collect::<Vec<_>>());
        assert_eq!(names(0), Some(vec![json!("adam"), json!("阿里")]));
        assert_eq!(names(1), Some(vec![json!("张三"), json!("赵六"), json!("zoe")]));
        assert_eq!(names(2), Some(vec![json!("9lives")]));
    }

    #[test]
    fn name_prefers_remark_then_nickname_then_username() {
        let mut f = friend(1, "");
        assert_eq!(f.name(), "user1");
        f.friend_nickname = "Nick".into();
        assert_eq!(f.name(), "Nick");
        f.nickname = "Remark".into();
        assert_eq!(f.name(), "Remark");
    }
}

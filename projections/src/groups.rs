//! Groups, members and join requests, kept by the inbox projection (its fan-out of group
//! system messages needs the membership, and a projection reads only its own tables),
//! plus the group queries.

use crate::{ReadDb, ReadError};
use im_domain::group::{GroupChange, GroupStatus, system_text};
use im_domain::{Event, GroupId};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// What a group event shows: a system message for these users, or a notice for one.
pub enum GroupEffect {
    System { group_id: i64, recipients: Vec<i64>, text: String },
    Notice { user: i64, data: Value },
}

async fn members(conn: &mut AnyConnection, group: i64) -> Result<Vec<i64>, ReadError> {
    Ok(sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id").bind(group).fetch_all(conn).await?)
}

/// Marks a pending invitation answered (nothing when there is none).
async fn settle_invitation(conn: &mut AnyConnection, group: i64, user: i64, status: &str) -> Result<(), ReadError> {
    sqlx::query("UPDATE group_invitations SET status = $3 WHERE group_id = $1 AND user_id = $2 AND status = 'pending'")
        .bind(group)
        .bind(user)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

async fn set_member_field(conn: &mut AnyConnection, group: i64, user: i64, sql: &'static str, value: &str) -> Result<(), ReadError> {
    sqlx::query(sql).bind(group).bind(user).bind(value).execute(conn).await?;
    Ok(())
}

/// Applies a group event to the group tables and says what it shows to whom.
pub async fn apply(conn: &mut AnyConnection, event: &Event) -> Result<Vec<GroupEffect>, ReadError> {
    match event {
        Event::GroupCreated(e) => {
            sqlx::query(
                "INSERT INTO chat_groups (id, name, user_id, create_time, update_time) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(e.group_id.0)
            .bind(&e.name)
            .bind(e.owner.id.0)
            .bind(e.at)
            .execute(&mut *conn)
            .await?;
            // Multi-row statements: one per member held a 1,000-member group's creation
            // in the projection for 60 ms.
            let marks = crate::db::Placeholders::of(conn);
            let queries = crate::db::exact_chunks(&e.members).map(|chunk| {
                let sql = format!(
                    "INSERT INTO group_members (group_id, user_id, create_time) VALUES {} ON CONFLICT DO NOTHING",
                    marks.values(chunk.len(), 3)
                );
                chunk.iter().fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |q, m| q.bind(e.group_id.0).bind(m.id.0).bind(e.at))
            });
            crate::db::run_all(conn, queries).await?;
            let names: Vec<&str> = e.members.iter().skip(1).map(|m| m.name.as_str()).collect();
            let text = format!("{} 创建了群聊,并邀请了 {}", e.owner.name, names.join("、"));
            Ok(vec![GroupEffect::System { group_id: e.group_id.0, recipients: members(conn, e.group_id.0).await?, text }])
        }
        Event::GroupChanged(e) => {
            let g = e.group_id.0;
            let before = members(conn, g).await?;
            sqlx::query("UPDATE chat_groups SET update_time = $2 WHERE id = $1").bind(g).bind(e.at).execute(&mut *conn).await?;
            let mut effects = Vec::new();
            match &e.change {
                GroupChange::AdminSet { user, admin } => {
                    sqlx::query("UPDATE group_members SET admin = $3 WHERE group_id = $1 AND user_id = $2")
                        .bind(g)
                        .bind(user.id.0)
                        .bind(i64::from(*admin))
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::OwnerChanged { to } => {
                    sqlx::query("UPDATE chat_groups SET user_id = $2 WHERE id = $1").bind(g).bind(to.id.0).execute(&mut *conn).await?;
                    sqlx::query("UPDATE group_members SET admin = 0 WHERE group_id = $1 AND user_id = $2")
                        .bind(g)
                        .bind(to.id.0)
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::AvatarChanged { avatar } => {
                    sqlx::query("UPDATE chat_groups SET avatar = $2 WHERE id = $1").bind(g).bind(avatar).execute(&mut *conn).await?;
                }
                GroupChange::Renamed { name } => {
                    sqlx::query("UPDATE chat_groups SET name = $2 WHERE id = $1").bind(g).bind(name).execute(&mut *conn).await?;
                }
                GroupChange::RemarkChanged { remark } => {
                    sqlx::query("UPDATE chat_groups SET remark = $2 WHERE id = $1").bind(g).bind(remark).execute(&mut *conn).await?;
                }
                GroupChange::JoinPolicyChanged { invite_confirm } => {
                    sqlx::query("UPDATE chat_groups SET invite_confirm = $2 WHERE id = $1")
                        .bind(g)
                        .bind(i64::from(*invite_confirm))
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::MemberAdded { user } => {
                    sqlx::query("INSERT INTO group_members (group_id, user_id, create_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(g)
                        .bind(user.id.0)
                        .bind(e.at)
                        .execute(&mut *conn)
                        .await?;
                    settle_invitation(conn, g, user.id.0, "agree").await?;
                    sqlx::query("UPDATE group_join_requests SET status = 'agree' WHERE group_id = $1 AND user_id = $2")
                        .bind(g)
                        .bind(user.id.0)
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::JoinRequested { user } => {
                    settle_invitation(conn, g, user.id.0, "agree").await?;
                    ask(conn, Asked::JoinRequest, g, user.id.0, e.by.id.0, e.at).await?;
                    let owner: i64 =
                        sqlx::query_scalar("SELECT user_id FROM chat_groups WHERE id = $1").bind(g).fetch_one(&mut *conn).await?;
                    effects.push(GroupEffect::Notice {
                        user: owner,
                        data: json!({"kind": "group_join_request", "group_id": g, "user_id": user.id.0, "user_name": user.name,
                            "inviter_id": e.by.id.0, "inviter_name": e.by.name, "create_time": e.at}),
                    });
                }
                GroupChange::Invited { user } => {
                    ask(conn, Asked::Invitation, g, user.id.0, e.by.id.0, e.at).await?;
                    let name: String =
                        sqlx::query_scalar("SELECT name FROM chat_groups WHERE id = $1").bind(g).fetch_one(&mut *conn).await?;
                    effects.push(GroupEffect::Notice {
                        user: user.id.0,
                        data: json!({"kind": "group_invitation", "group_id": g, "group_name": name, "inviter_id": e.by.id.0,
                            "inviter_name": e.by.name, "create_time": e.at}),
                    });
                }
                GroupChange::InvitationDeclined => {
                    settle_invitation(conn, g, e.by.id.0, "refuse").await?;
                }
                GroupChange::JoinRefused { user } => {
                    sqlx::query("UPDATE group_join_requests SET status = 'refuse' WHERE group_id = $1 AND user_id = $2")
                        .bind(g)
                        .bind(user.id.0)
                        .execute(&mut *conn)
                        .await?;
                    effects.push(GroupEffect::Notice {
                        user: user.id.0,
                        data: json!({"kind": "group_join_refused", "group_id": g, "create_time": e.at}),
                    });
                }
                GroupChange::MemberRemoved { user } => {
                    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                        .bind(g)
                        .bind(user.id.0)
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::MemberLeft => {
                    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                        .bind(g)
                        .bind(e.by.id.0)
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::NicknameChanged { nickname } => {
                    set_member_field(
                        conn,
                        g,
                        e.by.id.0,
                        "UPDATE group_members SET nickname = $3 WHERE group_id = $1 AND user_id = $2",
                        nickname,
                    )
                    .await?;
                }
                GroupChange::MemberMuted { user, muted, until } => {
                    sqlx::query("UPDATE group_members SET status = $3, mute_until = $4 WHERE group_id = $1 AND user_id = $2")
                        .bind(g)
                        .bind(user.id.0)
                        .bind(if *muted { 0_i64 } else { 1 })
                        .bind(*until)
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::HistoryShared { shared } => {
                    sqlx::query("UPDATE chat_groups SET share_history = $2 WHERE id = $1")
                        .bind(g)
                        .bind(i64::from(*shared))
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::AllMuted { muted } => {
                    sqlx::query("UPDATE chat_groups SET all_muted = $2 WHERE id = $1")
                        .bind(g)
                        .bind(i64::from(*muted))
                        .execute(&mut *conn)
                        .await?;
                }
                GroupChange::Locked { locked } => {
                    let status = if *locked { GroupStatus::Locked } else { GroupStatus::Normal };
                    sqlx::query("UPDATE chat_groups SET status = $2 WHERE id = $1").bind(g).bind(status.code()).execute(&mut *conn).await?;
                }
                GroupChange::Dissolved => {
                    sqlx::query("UPDATE chat_groups SET status = $2 WHERE id = $1")
                        .bind(g)
                        .bind(GroupStatus::Dissolved.code())
                        .execute(&mut *conn)
                        .await?;
                }
            }
            if let Some(text) = system_text(&e.change, &e.by) {
                // Everyone who was or is a member hears of it (a removed member learns
                // they were removed; a new one sees they joined).
                let mut recipients = before;
                for m in members(conn, g).await? {
                    if !recipients.contains(&m) {
                        recipients.push(m);
                    }
                }
                if matches!(e.change, GroupChange::MemberLeft) {
                    recipients.retain(|u| *u != e.by.id.0);
                }
                effects.push(GroupEffect::System { group_id: g, recipients, text });
            }
            Ok(effects)
        }
        _ => Ok(Vec::new()),
    }
}

/// A question waiting for an answer: the owner's to a join request, a user's to an
/// invitation.
enum Asked {
    JoinRequest,
    Invitation,
}

/// Records (or renews) a pending question about `user` joining `group`, put by `by`.
async fn ask(conn: &mut AnyConnection, asked: Asked, group: i64, user: i64, by: i64, at: i64) -> Result<(), ReadError> {
    let sql = match asked {
        Asked::JoinRequest => {
            "INSERT INTO group_join_requests (group_id, user_id, inviter_id, status, create_time) VALUES ($1, $2, $3, 'pending', $4) \
             ON CONFLICT (group_id, user_id) DO UPDATE SET inviter_id = excluded.inviter_id, status = 'pending', create_time = excluded.create_time"
        }
        Asked::Invitation => {
            "INSERT INTO group_invitations (group_id, user_id, inviter_id, status, create_time) VALUES ($1, $2, $3, 'pending', $4) \
             ON CONFLICT (user_id, group_id) DO UPDATE SET inviter_id = excluded.inviter_id, status = 'pending', create_time = excluded.create_time"
        }
    };
    sqlx::query(sql).bind(group).bind(user).bind(by).bind(at).execute(conn).await?;
    Ok(())
}

/// The columns of a group object (`group_json`).
const GROUP_COLUMNS: &str = "id, name, avatar, user_id, remark, invite_confirm, status, all_muted, share_history, create_time, update_time";

/// The group object of the contract from a `chat_groups` row (`GROUP_COLUMNS`); the
/// summary a message carries has no `update_time` nor `all_muted`.
fn group_json(r: &AnyRow, full: bool) -> Result<Value, ReadError> {
    let mut group = json!({
        "id": r.try_get::<i64, _>("id")?, "name": r.try_get::<String, _>("name")?, "avatar": r.try_get::<String, _>("avatar")?,
        "user_id": r.try_get::<i64, _>("user_id")?, "remark": r.try_get::<String, _>("remark")?,
        "invite_confirm": r.try_get::<i64, _>("invite_confirm")?, "status": r.try_get::<i64, _>("status")?,
        "create_time": r.try_get::<i64, _>("create_time")?,
    });
    if full {
        group["update_time"] = json!(r.try_get::<i64, _>("update_time")?);
        group["all_muted"] = json!(r.try_get::<i64, _>("all_muted")?);
        group["share_history"] = json!(r.try_get::<i64, _>("share_history")?);
    }
    Ok(group)
}

/// The compact summary a group message carries (never the member list).
pub async fn summary(conn: &mut AnyConnection, group: i64) -> Result<Value, ReadError> {
    let sql = format!("SELECT {GROUP_COLUMNS} FROM chat_groups WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(group).fetch_optional(conn).await?;
    Ok(match row {
        Some(r) => group_json(&r, false)?,
        None => json!({"id": group}),
    })
}

/// Members `groupinfo` carries; the rest come page by page (`members_page`).
pub const MEMBERS_IN_INFO: i64 = 100;

/// Group queries.
#[derive(Clone)]
pub struct Groups {
    db: ReadDb,
}

impl Groups {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// The group object of the contract, with its members (avatars from the users).
    pub async fn group(&self, id: GroupId) -> Result<Option<Value>, ReadError> {
        let id = id.0;
        let sql = format!("SELECT {GROUP_COLUMNS} FROM chat_groups WHERE id = $1");
        let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.db.pool()).await? else {
            return Ok(None);
        };
        let (count, group_users) = self.members_page(GroupId(id), 0, MEMBERS_IN_INFO).await?;
        let mut group = group_json(&r, true)?;
        group["group_users"] = Value::Array(group_users);
        group["member_count"] = json!(count);
        Ok(Some(group))
    }

    /// From when `user` reads the group (membership and join time in one query): `None`
    /// when they are not a member, `i64::MIN` when the group shares its history, else the
    /// time they (last) joined.
    pub async fn reads_from(&self, group: GroupId, user: i64) -> Result<Option<i64>, ReadError> {
        let row = sqlx::query(
            "SELECT g.share_history, m.create_time FROM chat_groups g JOIN group_members m ON m.group_id = g.id \
             WHERE g.id = $1 AND m.user_id = $2",
        )
        .bind(group.0)
        .bind(user)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| -> Result<i64, ReadError> {
            Ok(if r.try_get::<i64, _>("share_history")? == 0 { r.try_get::<i64, _>("create_time")? } else { i64::MIN })
        })
        .transpose()
    }

    /// A page of the members, in the order they joined: (how many there are, the page).
    pub async fn members_page(&self, group: GroupId, offset: i64, limit: i64) -> Result<(i64, Vec<Value>), ReadError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM group_members WHERE group_id = $1").bind(group.0).fetch_one(self.db.pool()).await?;
        let members = sqlx::query(
            "SELECT m.user_id, m.nickname, m.status, m.mute_until, m.admin, u.avatar, u.nickname AS user_nickname, u.username \
             FROM group_members m LEFT JOIN users u ON u.id = m.user_id WHERE m.group_id = $1 ORDER BY m.create_time, m.user_id \
             LIMIT $2 OFFSET $3",
        )
        .bind(group.0)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db.pool())
        .await?;
        let page = members
            .into_iter()
            .map(|m| -> Result<Value, ReadError> {
                Ok(json!({
                    "user_id": m.try_get::<i64, _>("user_id")?, "nickname": m.try_get::<String, _>("nickname")?,
                    "avatar": m.try_get::<Option<String>, _>("avatar")?.unwrap_or_default(), "status": m.try_get::<i64, _>("status")?,
                    "mute_until": m.try_get::<Option<i64>, _>("mute_until")?, "admin": m.try_get::<i64, _>("admin")?,
                    "user_nickname": m.try_get::<Option<String>, _>("user_nickname")?.unwrap_or_default(),
                    "username": m.try_get::<Option<String>, _>("username")?.unwrap_or_default(),
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((count, page))
    }

    /// Invitations waiting for `user`'s answer, newest first (at most 100).
    pub async fn invitations(&self, user: i64) -> Result<Vec<Value>, ReadError> {
        let rows = sqlx::query(
            "SELECT i.group_id, i.inviter_id, i.create_time, g.name, g.avatar, u.nickname, u.username \
             FROM group_invitations i JOIN chat_groups g ON g.id = i.group_id LEFT JOIN users u ON u.id = i.inviter_id \
             WHERE i.user_id = $1 AND i.status = 'pending' AND g.status <> 0 ORDER BY i.create_time DESC LIMIT 100",
        )
        .bind(user)
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| -> Result<Value, ReadError> {
                let nickname: Option<String> = r.try_get("nickname")?;
                let username: Option<String> = r.try_get("username")?;
                let inviter_name = im_domain::values::display_name([nickname.as_deref().unwrap_or(""), username.as_deref().unwrap_or("")]);
                Ok(json!({
                    "group_id": r.try_get::<i64, _>("group_id")?, "group_name": r.try_get::<String, _>("name")?,
                    "avatar": r.try_get::<Option<String>, _>("avatar")?.unwrap_or_default(),
                    "inviter_id": r.try_get::<i64, _>("inviter_id")?, "inviter_name": inviter_name,
                    "create_time": r.try_get::<i64, _>("create_time")?,
                }))
            })
            .collect()
    }

    pub async fn is_member(&self, group: GroupId, user: i64) -> Result<bool, ReadError> {
        let group = group.0;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group)
            .bind(user)
            .fetch_one(self.db.pool())
            .await?;
        Ok(n > 0)
    }

    /// For operators: every group (dissolved ones included), newest first, whose name
    /// contains `query` or whose id it is, with its member count: (total, page).
    pub async fn search(&self, query: &str, page: i64, limit: i64) -> Result<(i64, Vec<Value>), ReadError> {
        let query = query.trim();
        let id: i64 = query.parse().unwrap_or(-1);
        let pattern = format!("%{}%", query.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let filter = "(g.name LIKE $1 ESCAPE '\\' OR g.id = $2)";
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM chat_groups g WHERE {filter}")))
            .bind(&pattern)
            .bind(id)
            .fetch_one(self.db.pool())
            .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT g.id, g.name, g.avatar, g.user_id, g.remark, g.invite_confirm, g.status, g.all_muted, g.share_history, \
             g.create_time, g.update_time, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS member_count \
             FROM chat_groups g WHERE {filter} ORDER BY g.id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(&pattern)
        .bind(id)
        .bind(limit)
        .bind(crate::db::offset(page, limit))
        .fetch_all(self.db.pool())
        .await?;
        let rows = rows
            .into_iter()
            .map(|r| -> Result<Value, ReadError> {
                let mut group = group_json(&r, true)?;
                group["member_count"] = json!(r.try_get::<i64, _>("member_count")?);
                Ok(group)
            })
            .collect::<Result<_, _>>()?;
        Ok((count, rows))
    }

    /// My groups (not dissolved), newest first: (total, page).
    pub async fn groups_of(&self, user: i64, page: i64, limit: i64) -> Result<(i64, Vec<Value>), ReadError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM group_members m JOIN chat_groups g ON g.id = m.group_id WHERE m.user_id = $1 AND g.status <> 0",
        )
        .bind(user)
        .fetch_one(self.db.pool())
        .await?;
        let rows = sqlx::query(
            "SELECT g.id, g.name, g.avatar, g.user_id, g.remark, g.invite_confirm, g.status, g.all_muted, g.share_history, g.create_time, g.update_time \
             FROM group_members m JOIN chat_groups g ON g.id = m.group_id WHERE m.user_id = $1 AND g.status <> 0 \
             ORDER BY g.id DESC LIMIT $2 OFFSET $3",
        )
        .bind(user)
        .bind(limit)
        .bind(crate::db::offset(page, limit))
        .fetch_all(self.db.pool())
        .await?;
        let rows = rows.into_iter().map(|r| group_json(&r, true)).collect::<Result<_, _>>()?;
        Ok((count, rows))
    }
}

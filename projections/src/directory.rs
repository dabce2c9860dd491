//! The facts the message path decides on, in memory: user rows (active, role, settings,
//! live session, display name), friendship sides (friend or not, blacklisted,
//! remark) and users' auto-replies. A bounded cache over the `users` and `friends` read models, kept current by
//! the projector: after each commit it invalidates exactly the keys the batch changed,
//! in this process directly and, on Postgres, in every other process through
//! `NOTIFY im_directory` sent in the batch's transaction (so it arrives when the change
//! becomes visible).
//!
//! A miss reads the read model. A fill never overwrites a newer invalidation: each shard
//! counts its invalidations, and a value read while one happened is used once but not
//! kept.

use crate::askanswer::{AskAnswerRow, AskAnswers};
use crate::projection::Applied;
use crate::users::UserRow;
use crate::{ReadDb, ReadError};
use im_domain::Event;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Shards per map (each with its own lock and invalidation counter).
const SHARDS: usize = 32;
/// The channel other processes learn of changed keys on.
pub const CHANNEL: &str = "im_directory";
/// The largest `NOTIFY` payload sent; beyond it the notice says "everything".
const MAX_NOTICE: usize = 7000;

/// One user's view of another, as the send rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// They are friends.
    pub friend: bool,
    /// The remark this user gave the friend ('' when none).
    pub remark: String,
    /// This user has blocked the other (friends or not).
    pub black: bool,
}

/// How many entries the caches hold.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// User rows, and (separately) users' auto-reply lists.
    pub users: usize,
    pub sides: usize,
}

impl Default for Capacity {
    fn default() -> Self {
        Self { users: 100_000, sides: 400_000 }
    }
}

struct Shard<K, V> {
    map: HashMap<K, V>,
    /// Bumped by every invalidation in this shard.
    generation: u64,
}

struct Cache<K, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    per_shard: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard { map: HashMap::new(), generation: 0 })).collect();
        Self { shards, per_shard: capacity.div_ceil(SHARDS).max(1) }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<K, V>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, or the shard's generation to fill against.
    fn get(&self, key: &K) -> Result<V, u64> {
        let shard = self.shard(key);
        shard.map.get(key).cloned().ok_or(shard.generation)
    }

    /// Keeps a value read while the shard was at `generation`, unless an invalidation
    /// happened since.
    fn fill(&self, key: K, value: V, generation: u64) {
        let mut shard = self.shard(&key);
        if shard.generation != generation {
            return;
        }
        if shard.map.len() >= self.per_shard {
            // Bounded: make room by dropping an arbitrary entry.
            if let Some(victim) = shard.map.keys().next().cloned() {
                shard.map.remove(&victim);
            }
        }
        shard.map.insert(key, value);
    }

    fn invalidate(&self, key: &K) {
        let mut shard = self.shard(key);
        shard.generation += 1;
        shard.map.remove(key);
    }

    fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.generation += 1;
            shard.map.clear();
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len()).sum()
    }
}

/// user id → row (`None`: no such user).
type Users = Cache<i64, Option<Arc<UserRow>>>;
/// (owner, friend) → the owner's side (`None`: not friends).
type Sides = Cache<(i64, i64), Option<Arc<Side>>>;
/// user id → their auto-reply pairs, oldest first.
type Replies = Cache<i64, Arc<Vec<AskAnswerRow>>>;

/// The facts cache. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    db: ReadDb,
    users: Arc<Users>,
    sides: Arc<Sides>,
    replies: Arc<Replies>,
}

impl Directory {
    pub fn new(db: ReadDb, capacity: Capacity) -> Self {
        Self {
            db,
            users: Arc::new(Cache::new(capacity.users)),
            sides: Arc::new(Cache::new(capacity.sides)),
            replies: Arc::new(Cache::new(capacity.users)),
        }
    }

    /// A user's auto-reply pairs, oldest first (empty: none).
    pub async fn auto_replies(&self, user: i64) -> Result<Arc<Vec<AskAnswerRow>>, ReadError> {
        match self.replies.get(&user) {
            Ok(hit) => Ok(hit),
            Err(generation) => {
                let rows = Arc::new(AskAnswers::new(self.db.clone()).all(user).await?);
                self.replies.fill(user, rows.clone(), generation);
                Ok(rows)
            }
        }
    }

    /// A user's row (`None`: no such user).
    pub async fn user(&self, id: i64) -> Result<Option<Arc<UserRow>>, ReadError> {
        match self.users.get(&id) {
            Ok(hit) => Ok(hit),
            Err(generation) => {
                let row = crate::users::Users::new(self.db.clone()).by_id(id).await?.map(Arc::new);
                self.users.fill(id, row.clone(), generation);
                Ok(row)
            }
        }
    }

    /// `owner`'s view of `other` (`None`: not friends, no block).
    pub async fn side(&self, owner: i64, other: i64) -> Result<Option<Arc<Side>>, ReadError> {
        match self.sides.get(&(owner, other)) {
            Ok(hit) => Ok(hit),
            Err(generation) => {
                let row = sqlx::query(
                    "SELECT (SELECT nickname FROM friends WHERE user_id = $1 AND friend_id = $2) AS nickname, \
                     (SELECT COUNT(*) FROM blocks WHERE user_id = $1 AND blocked_id = $2) AS black",
                )
                .bind(owner)
                .bind(other)
                .fetch_one(self.db.pool())
                .await?;
                let remark: Option<String> = row.try_get("nickname")?;
                let black = row.try_get::<i64, _>("black")? != 0;
                let side = (remark.is_some() || black)
                    .then(|| Arc::new(Side { friend: remark.is_some(), remark: remark.unwrap_or_default(), black }));
                self.sides.fill((owner, other), side.clone(), generation);
                Ok(side)
            }
        }
    }

    /// Forgets what these keys held.
    pub fn invalidate(&self, keys: &Keys) {
        if keys.everything {
            self.clear();
            return;
        }
        for user in &keys.users {
            self.users.invalidate(user);
        }
        for side in &keys.sides {
            self.sides.invalidate(side);
        }
        for user in &keys.replies {
            self.replies.invalidate(user);
        }
    }

    /// Forgets everything (a lost notification channel, another projector instance).
    pub fn clear(&self) {
        self.users.clear();
        self.sides.clear();
        self.replies.clear();
    }

    /// Entries held (users, sides).
    pub fn len(&self) -> (usize, usize) {
        (self.users.len(), self.sides.len())
    }

    /// In a process that runs no projector (a gateway on Postgres): applies the keys the
    /// projector announces, and forgets everything whenever the channel was interrupted.
    pub fn follow_announcements(&self, url: &str) {
        let directory = self.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut listener) => match listener.listen(CHANNEL).await {
                        Ok(()) => {
                            // Whatever changed while we were not listening.
                            directory.clear();
                            loop {
                                match listener.recv().await {
                                    Ok(note) => directory.invalidate(&Keys::parse(note.payload())),
                                    Err(e) => {
                                        tracing::warn!(error = %e, "directory announcements interrupted");
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot listen for directory announcements"),
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot connect for directory announcements"),
                }
                directory.clear();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// The cached keys a batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub users: Vec<i64>,
    /// `(owner, friend)` sides.
    pub sides: Vec<(i64, i64)>,
    /// Users whose auto-replies changed.
    pub replies: Vec<i64>,
    /// Forget everything.
    pub everything: bool,
}

impl Keys {
    /// What these events change in the `users` and `friends` read models.
    pub fn of(events: &[Applied<'_>]) -> Self {
        let mut keys = Keys::default();
        for a in events {
            keys.add(a.event);
        }
        keys.users.sort_unstable();
        keys.users.dedup();
        keys.sides.sort_unstable();
        keys.sides.dedup();
        keys.replies.sort_unstable();
        keys.replies.dedup();
        keys
    }

    fn add(&mut self, event: &Event) {
        let both = |keys: &mut Keys, a: i64, b: i64| keys.sides.extend([(a, b), (b, a)]);
        match event {
            Event::UserRegistered(e) => self.users.push(e.user_id.0),
            Event::VisitorUpgraded(e) => self.users.push(e.user_id.0),
            Event::UserLoggedIn(e) => self.users.push(e.user_id.0),
            Event::UserLoggedOut(e) => self.users.push(e.user_id.0),
            Event::PasswordChanged(e) => self.users.push(e.user_id.0),
            Event::ProfileUpdated(e) => self.users.push(e.user_id.0),
            Event::UserSettingsChanged(e) => self.users.push(e.user_id.0),
            Event::UserStatusChanged(e) => self.users.push(e.user_id.0),
            Event::UsernameChanged(e) => self.users.push(e.user_id.0),
            Event::UserDeleted(e) => {
                self.users.push(e.user_id.0);
                self.replies.push(e.user_id.0);
            }
            Event::AskAnswerSaved(e) => self.replies.push(e.user_id.0),
            Event::AskAnswerDeleted(e) => self.replies.push(e.user_id.0),
            Event::FriendRequestAccepted(e) => both(self, e.from.0, e.to.0),
            Event::FriendAdded(e) => both(self, e.from.0, e.to.0),
            Event::FriendSideChanged(e) => self.sides.push((e.user_id.0, e.friend_id.0)),
            Event::FriendshipEnded(e) => both(self, e.user_id.0, e.friend_id.0),
            // Nothing the directory holds: listed so that a new event type must be
            // placed here on purpose.
            Event::UsernameClaimed(_)
            | Event::DeviceBound(_)
            | Event::FriendRequested(_)
            | Event::FriendRequestRefused(_)
            | Event::ReportFiled(_)
            | Event::ReportHandled(_)
            | Event::MessageSent(_)
            | Event::MessageRevoked(_)
            | Event::MessageEdited(_)
            | Event::MessageReacted(_)
            | Event::AllowanceUsed(_)
            | Event::ClientMessageKeyClaimed(_)
            | Event::GroupCreated(_)
            | Event::GroupChanged(_)
            | Event::AdminCreated(_)
            | Event::AdminLoggedOut(_)
            | Event::SystemMessageSent(_)
            | Event::ConversationRead(_)
            | Event::ConversationPinned(_)
            | Event::ConversationMuted(_)
            | Event::MessageHidden(_)
            | Event::PushTargetRegistered(_)
            | Event::PushTargetRemoved(_) => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.everything && self.users.is_empty() && self.sides.is_empty() && self.replies.is_empty()
    }

    /// `u1,2;s1-2,2-1;r2` or `*`.
    pub fn encode(&self) -> String {
        if self.everything {
            return "*".into();
        }
        let list = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sides: Vec<String> = self.sides.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        let text = format!("u{};s{};r{}", list(&self.users), sides.join(","), list(&self.replies));
        if text.len() > MAX_NOTICE { "*".into() } else { text }
    }

    /// The inverse of [`Keys::encode`]; anything unreadable means everything.
    pub fn parse(text: &str) -> Self {
        let everything = Keys { everything: true, ..Keys::default() };
        let mut parts = text.split(';');
        let (Some(users), Some(sides), Some(replies), None) = (
            parts.next().and_then(|p| p.strip_prefix('u')),
            parts.next().and_then(|p| p.strip_prefix('s')),
            parts.next().and_then(|p| p.strip_prefix('r')),
            parts.next(),
        ) else {
            return everything;
        };
        let mut keys = Keys::default();
        for (list, into) in [(users, &mut keys.users), (replies, &mut keys.replies)] {
            for id in list.split(',').filter(|u| !u.is_empty()) {
                match id.parse() {
                    Ok(id) => into.push(id),
                    Err(_) => return everything,
                }
            }
        }
        for s in sides.split(',').filter(|s| !s.is_empty()) {
            match s.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))) {
                Some(pair) => keys.sides.push(pair),
                None => return everything,
            }
        }
        keys
    }

    /// Tells other processes, inside the transaction that makes the change visible.
    pub async fn announce(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        if !self.is_empty() {
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(self.encode()).execute(conn).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_notice() {
        let keys = Keys { users: vec![1, 22], sides: vec![(1, 2), (2, 1)], replies: vec![7], everything: false };
        assert_eq!(keys.encode(), "u1,22;s1-2,2-1;r7");
        assert_eq!(Keys::parse(&keys.encode()), keys);
        assert_eq!(Keys::parse("u;s;r"), Keys::default());
        assert!(Keys::parse("*").everything);
        assert!(Keys::parse("garbage").everything);
        assert!(Keys::parse("u1,x;s;r").everything);
        assert!(Keys::parse("u1;s;r;x").everything);
        // An older process's notice (no auto-replies part) is not understood: everything.
        assert!(Keys::parse("u1;s").everything);
        let many = Keys { users: (0..5000).collect(), ..Keys::default() };
        assert_eq!(many.encode(), "*");
    }

    #[test]
    fn a_fill_never_overwrites_a_newer_invalidation() {
        let cache: Cache<i64, &str> = Cache::new(10);
        let Err(generation) = cache.get(&1) else { panic!("empty cache") };
        // The projector changes key 1 while the read was in flight.
        cache.invalidate(&1);
        cache.fill(1, "stale", generation);
        assert!(cache.get(&1).is_err(), "a stale value was kept");
        let Err(generation) = cache.get(&1) else { panic!("still empty") };
        cache.fill(1, "fresh", generation);
        assert_eq!(cache.get(&1), Ok("fresh"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache: Cache<i64, i64> = Cache::new(64);
        for k in 0..10_000 {
            let generation = cache.get(&k).err().unwrap_or(0);
            cache.fill(k, k, generation);
        }
        assert!(cache.len() <= 64 + SHARDS, "{} entries", cache.len());
    }
}

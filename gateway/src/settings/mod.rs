//! Runtime settings and every default (`Settings::with_data_dir`): the one place they
//! live. [`crate::config`] fills them from flags, the environment and `im.toml`.
//! Secrets never have a built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod role;

pub use crate::push::settings::PushSettings;
pub use role::Role;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `--role` / `IM_ROLE`, default `all`.
    pub role: Role,
    /// `KAFKA_BROKERS`: switches the event stream and delivery bus to Kafka.
    pub kafka_brokers: Option<String>,
    /// `REDIS_URL`: switches presence, sessions and kicks to Redis.
    pub redis_url: Option<String>,
    /// `IM_NODE_ID`: this process's name in presence (default: random).
    pub node_id: String,
    /// `IM_DELIVERY_PARTITIONS`: partitions of `im.deliveries` (P), default 8.
    pub delivery_partitions: i32,
    /// `IM_KAFKA_EVENTS_TOPIC` (default `im.events`).
    pub events_topic: String,
    /// `IM_KAFKA_DELIVERIES_TOPIC` (default `im.deliveries`).
    pub deliveries_topic: String,
    /// `IM_REDIS_PREFIX`: prefix of every Redis key (default `im:`).
    pub redis_prefix: String,
    /// `--listen` / `IM_LISTEN`, default 127.0.0.1:7001.
    pub listen: SocketAddr,
    /// `IM_TLS_CERT` / `IM_TLS_KEY`: PEM files; with both, the listener speaks TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `IM_TRUSTED_PROXIES`: the proxies whose forwarding headers count (default loopback).
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// `IM_CORS_ORIGINS`: origins allowed to call the API from a browser (default none).
    pub cors_origins: Vec<String>,
    /// `IM_CORS_CREDENTIALS`: whether they may send credentials (never with `*`).
    pub cors_credentials: bool,
    /// `IM_PUBLIC_URL`: the base of every URL handed to clients (`https://im.example.com`);
    /// default: the scheme and `Host` of the request.
    pub public_url: Option<String>,
    /// `IM_SYSTEM_AVATAR`: the avatar of messages from the system (default: the
    /// reference's kefu.png).
    pub system_avatar: String,
    /// `--data-dir` / `IM_DATA_DIR`, default ./data: SQLite file and the generated JWT secret.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: a `postgres://` URL switches the log and read models to Postgres.
    pub database_url: Option<String>,
    /// `JWT_SECRET`: without it a random secret is generated once and kept in the data dir.
    pub jwt_secret: Option<String>,
    /// `IM_TOKEN_TTL_SECS`: token lifetime, default 30 days; a token used in its last
    /// quarter is answered with a fresh one (`X-Refresh-Token`, the welcome frame).
    pub token_ttl_secs: i64,
    /// `IM_HEARTBEAT_MS`: WebSocket ping interval, default 30 s; silent for 3 → closed.
    pub heartbeat: Duration,
    /// `IM_MULTI_DEVICE`: a user may keep a phone and a desktop/web session at once
    /// (default false: one session, the seed's rule).
    pub multi_device: bool,
    /// `IM_TYPING_INTERVAL_MS`, `IM_TYPING_TTL_MS`: typing indicators.
    pub typing: TypingSettings,
    /// `IM_PUSH_*`: pushes to offline devices.
    pub push: PushSettings,
    /// `IM_LAST_SEEN_KEPT`, `IM_LAST_SEEN_TTL_SECS`: friends' last-seen times.
    pub last_seen: im_adapters::presence::LastSeenLimits,
    /// `IM_REVOKE_WINDOW_SECS`: how long after sending a message may be revoked
    /// (default 120 s; 0 = no limit).
    pub revoke_window: Duration,
    /// `IM_EDIT_WINDOW_SECS`: how long after sending a text message may be edited
    /// (default 900 s; 0 = no limit).
    pub edit_window: Duration,
    /// `IM_MAX_GROUP_SIZE`: the most members a group may have (default 500).
    pub max_group_size: usize,
    /// `IM_FRIEND_RETRY_SECS`: how long after a refusal the same friend request may not
    /// be repeated (default a day).
    pub friend_retry: Duration,
    /// `IM_USERNAME_GRACE_SECS`: how long a deleted account's username stays unavailable
    /// (default 30 days).
    pub username_grace: Duration,
    /// `IM_CONSOLE_SAMPLE_SECS`: how often the admin console's dashboard takes a sample
    /// for its charts (it keeps the last 60; default a minute: the last hour).
    pub console_sample: Duration,
    /// Rate limits per minute (0 = none).
    pub limits: Limits,
    /// `IM_HASH_THREADS`, `IM_HASH_QUEUE`: the password hashing pool.
    pub hashing: im_commands::auth::HashingLimits,
    /// Uploads: where and how big.
    pub files: FileSettings,
    /// `IM_WS_QUEUE`, `IM_WS_WRITE_TIMEOUT_MS`, `IM_WS_IN_FLIGHT`: per-socket bounds.
    pub sockets: crate::hub::SocketLimits,
    /// `IM_CACHE_USERS`, `IM_CACHE_SIDES`: how many users and friendship sides the
    /// message path keeps in memory.
    pub directory: im_projections::directory::Capacity,
    /// `IM_PROJECTION_GATHER_MS`: how long the projections may gather commits nobody
    /// waits for into one read-model transaction (embedded mode; default 10 ms, 0 = none).
    pub projection_gather: Duration,
    /// `IM_APPEND_GATHER_US`: how long a Postgres log writer that shares the log with
    /// other processes' writers, and is busy, waits for more requests before a commit.
    pub append_gather: Duration,
    /// `IM_PROJECTOR_GATHER_MS`: how long a projector process lets the log move after a
    /// read that shows it moving fast (`runtime::LOG_GATHER_MIN` events or more).
    pub projector_gather: Duration,
    /// `IM_RELAY_GATHER_MS`: how long the Kafka relay lets the log move after a read
    /// that did not fill its batch (distributed mode; default 10 ms, 0 = none).
    pub relay_gather: Duration,
    /// `IM_REBUILD_RANGE`: log positions `im rebuild` replays per transaction.
    pub rebuild_range: i64,
}

/// Uploads (SPEC 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// `IM_UPLOAD_DIR`: the local store, served under `/public` (default `<data-dir>/uploads`).
    pub upload_dir: PathBuf,
    /// `IM_UPLOAD_MAX_IMAGE`: bytes for images and audio (default 10 MiB).
    pub max_image_bytes: usize,
    /// `IM_UPLOAD_MAX_VIDEO`: bytes for video (default 100 MiB).
    pub max_video_bytes: usize,
    /// `IM_UPLOAD_MAX_FILE`: bytes for documents — pdf, office, archives, text (default
    /// 20 MiB).
    pub max_file_bytes: usize,
    /// Where uploads are written while they arrive (`<data-dir>/incoming`); emptied at start.
    pub incoming_dir: PathBuf,
    /// `IM_UPLOAD_CONCURRENCY`: uploads received at once by one process (default 8).
    pub max_concurrent: usize,
    /// `IM_UPLOAD_QUOTA_MB`: MiB one user may upload a day (default 1024; per client IP
    /// four times that; 0 = none).
    pub quota_mib_per_day: u32,
    /// `IM_FFMPEG`: the ffmpeg binary for video screenshots (default `ffmpeg` on PATH).
    pub ffmpeg: String,
    /// `IM_FFMPEG_CONCURRENCY`: screenshots taken at once (default 2).
    pub ffmpeg_concurrent: usize,
    /// `IM_FFMPEG_TIMEOUT_SECS`: how long one ffmpeg run may take (default 20 s).
    pub ffmpeg_timeout: Duration,
    /// `IM_S3_*`: the S3-compatible store `uploadAliyun` writes to (default: the local one).
    pub s3: Option<im_adapters::objects::S3Settings>,
}

impl FileSettings {
    pub fn under(data_dir: &Path) -> Self {
        Self {
            upload_dir: data_dir.join("uploads"),
            max_image_bytes: 10 << 20,
            max_video_bytes: 100 << 20,
            max_file_bytes: 20 << 20,
            incoming_dir: data_dir.join("incoming"),
            max_concurrent: 8,
            quota_mib_per_day: 1024,
            ffmpeg: "ffmpeg".into(),
            ffmpeg_concurrent: 2,
            ffmpeg_timeout: Duration::from_secs(20),
            s3: None,
        }
    }
}

/// Abuse limits, per minute; 0 switches one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `IM_RATE_LOGIN`: logins per client IP, and per username (default 60).
    pub login: u32,
    /// `IM_RATE_REGISTER`: registrations (users and visitors) per client IP (default 30).
    pub register: u32,
    /// `IM_RATE_SEND`: messages per sender (default 300); per client IP, four times that.
    pub send: u32,
    /// `IM_RATE_WRITE`: every other write per user — profile, settings, friend requests
    /// and answers, blacklist and remarks, reports, groups, auto-replies, revokes
    /// (default 120).
    pub write: u32,
    /// `IM_RATE_PASSWORD`: password changes and visitor upgrades per user (default 10);
    /// visitor upgrades also count against `register` per client IP.
    pub password: u32,
    /// `IM_RATE_KEYS`: counters one process keeps at most (default 100,000; the
    /// distributed mode keeps them in Redis, each expiring with its window).
    pub keys: usize,
}

impl Limits {
    pub const NONE: Limits =
        Limits { login: 0, register: 0, send: 0, write: 0, password: 0, keys: im_adapters::ratelimit::DEFAULT_RATE_KEYS };
}

impl Default for Limits {
    fn default() -> Self {
        Self { login: 60, register: 30, send: 300, write: 120, password: 10, keys: im_adapters::ratelimit::DEFAULT_RATE_KEYS }
    }
}

impl Settings {
    /// Defaults for everything, with `data_dir` as given (handy for tests).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        Self {
            files: FileSettings::under(&data_dir),
            role: Role::All,
            kafka_brokers: None,
            redis_url: None,
            node_id: format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            delivery_partitions: 8,
            events_topic: "im.events".into(),
            deliveries_topic: "im.deliveries".into(),
            redis_prefix: "im:".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7001)),
            data_dir,
            database_url: None,
            jwt_secret: None,
            token_ttl_secs: 30 * 24 * 3600,
            public_url: None,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: crate::proxy::TrustedProxies::default(),
            cors_origins: Vec::new(),
            cors_credentials: false,
            system_avatar: im_commands::accounts::DEFAULT_SYSTEM_AVATAR.to_owned(),
            heartbeat: Duration::from_secs(30),
            projection_gather: Duration::from_millis(10),
            projector_gather: Duration::from_millis(5),
            append_gather: Duration::from_micros(1000),
            relay_gather: Duration::from_millis(10),
            rebuild_range: im_projections::runtime::REBUILD_RANGE,
            multi_device: false,
            typing: TypingSettings::default(),
            push: PushSettings::default(),
            last_seen: im_adapters::presence::LastSeenLimits::default(),
            revoke_window: Duration::from_secs(120),
            edit_window: Duration::from_secs(900),
            max_group_size: 500,
            friend_retry: Duration::from_secs(24 * 3600),
            username_grace: im_commands::accounts::DEFAULT_USERNAME_GRACE,
            console_sample: Duration::from_secs(60),
            limits: Limits::default(),
            hashing: im_commands::auth::HashingLimits::default(),
            sockets: crate::hub::SocketLimits::default(),
            directory: im_projections::directory::Capacity::default(),
        }
    }

    /// The S3 settings before any is given: no endpoint (the local store is used), the
    /// default bucket and region.
    pub fn s3_unset() -> im_adapters::objects::S3Settings {
        im_adapters::objects::S3Settings {
            endpoint: String::new(),
            bucket: "im-uploads".into(),
            region: "us-east-1".into(),
            access_key: String::new(),
            secret_key: String::new(),
            public_url: None,
        }
    }

    /// Password-hashing threads when none are configured: half the cores, at least one.
    pub fn default_hash_threads() -> usize {
        im_commands::auth::HashingLimits::default().threads
    }

    /// The event log's SQLite file in the embedded mode.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("im.db")
    }

    /// The read models' SQLite file in the embedded mode (rebuilt from the log when
    /// missing).
    pub fn read_db_path(&self) -> PathBuf {
        self.data_dir.join("read.db")
    }

    /// The JWT secret: the configured one, else the one kept in the data dir, else a
    /// new random one written there (mode 0600) for next time.
    pub fn load_or_create_secret(&self) -> std::io::Result<Vec<u8>> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.as_bytes().to_vec());
        }
        let path = self.data_dir.join("jwt_secret");
        match std::fs::read_to_string(&path) {
            Ok(existing) if !existing.trim().is_empty() => return Ok(existing.trim().as_bytes().to_vec()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(&self.data_dir)?;
        let secret = random_hex(32);
        write_private(&path, &secret)?;
        Ok(secret.into_bytes())
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_random_and_kept() {
        let dir = std::env::temp_dir().join(format!("im-settings-{}", uuid::Uuid::new_v4()));
        let settings = Settings::with_data_dir(&dir);
        let first = settings.load_or_create_secret().unwrap_or_default();
        let again = settings.load_or_create_secret().unwrap_or_default();
        assert_eq!(first.len(), 64);
        assert_eq!(first, again);
        let other = Settings::with_data_dir(dir.join("other")).load_or_create_secret().unwrap_or_default();
        assert_ne!(first, other);
        let configured = Settings { jwt_secret: Some("s3cret".into()), ..settings };
        assert_eq!(configured.load_or_create_secret().unwrap_or_default(), b"s3cret".to_vec());
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `IM_TYPING_INTERVAL_MS` and `IM_TYPING_TTL_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingSettings {
    /// The least time between two frames a socket forwards (default 1 s).
    pub interval: Duration,
    /// How long a receiver shows the indicator without a newer frame (default 6 s).
    pub ttl: Duration,
}

impl Default for TypingSettings {
    fn default() -> Self {
        Self { interval: Duration::from_secs(1), ttl: Duration::from_secs(6) }
    }
}

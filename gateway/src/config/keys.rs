//! Every setting, listed once: its name (the `--flag` and the `im.toml` key), its
//! environment variable, its help, and how it is read from and written to [`Settings`].
//! The defaults are not here: they are [`Settings::with_data_dir`]'s.

use crate::settings::{Role, Settings};
use im_adapters::objects::S3Settings;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// How much of a value `--print-config` may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    No,
    /// Nothing of it.
    Whole,
    /// A URL whose password is hidden.
    UrlPassword,
}

/// One setting.
pub struct Key {
    /// The `im.toml` key; the flag is the same with dashes.
    pub name: &'static str,
    pub env: &'static str,
    pub help: &'static str,
    pub secret: Secret,
    /// The value as text (`None`: unset).
    pub get: fn(&Settings) -> Option<String>,
    /// Parses and stores a value, or says what is wrong with it.
    pub set: fn(&mut Settings, &str) -> Result<(), String>,
}

impl Key {
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The value as `--print-config` shows it.
    pub fn shown(&self, settings: &Settings) -> Option<String> {
        let value = (self.get)(settings)?;
        Some(match self.secret {
            Secret::No => value,
            Secret::Whole => "********".to_owned(),
            Secret::UrlPassword => mask_url_password(&value),
        })
    }
}

/// `scheme://user:password@host…` → `scheme://user:********@host…`.
pub(super) fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:********{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

fn parse<T: FromStr>(v: &str) -> Result<T, String>
where
    T::Err: Display,
{
    v.trim().parse().map_err(|e| format!("{e}"))
}

/// A number of at least `min`.
fn at_least<T: FromStr + PartialOrd + Display>(v: &str, min: T) -> Result<T, String>
where
    T::Err: Display,
{
    let n: T = parse(v)?;
    if n < min { Err(format!("must be at least {min}")) } else { Ok(n) }
}

/// A number from `min` to `max`.
fn within<T: FromStr + PartialOrd + Display>(v: &str, min: T, max: T) -> Result<T, String>
where
    T::Err: Display,
{
    let n: T = at_least(v, min)?;
    if n > max { Err(format!("must be at most {max}")) } else { Ok(n) }
}

/// A number of at most `max`.
fn at_most<T: FromStr + PartialOrd + Display>(v: &str, max: T) -> Result<T, String>
where
    T::Err: Display,
{
    let n: T = parse(v)?;
    if n > max { Err(format!("must be at most {max}")) } else { Ok(n) }
}

/// An optional text: empty is unset.
fn optional(v: &str) -> Option<String> {
    Some(v.trim()).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn shown(v: &Option<String>) -> Option<String> {
    v.clone()
}

/// The S3 settings being filled in (dropped again when no endpoint is set).
fn s3(s: &mut Settings) -> &mut S3Settings {
    s.files.s3.get_or_insert_with(Settings::s3_unset)
}

fn s3_shown(s: &Settings, field: fn(&S3Settings) -> String) -> Option<String> {
    Some(field(s.files.s3.as_ref().unwrap_or(&Settings::s3_unset()))).filter(|v| !v.is_empty())
}

/// `key! { name, "ENV", secret, "help", get |s| <its text>, set |s, v| <store v> }`; braces
/// keep rustfmt's hands off the table, so that each setting stays two lines.
macro_rules! key {
    ($name:ident, $env:literal, $secret:ident, $help:literal, get |$g:ident| $get:expr, set |$s:ident, $v:ident| $set:expr) => {
        Key {
            name: stringify!($name),
            env: $env,
            help: $help,
            secret: Secret::$secret,
            get: |$g: &Settings| $get,
            set: |$s: &mut Settings, $v: &str| {
                $set;
                Ok(())
            },
        }
    };
}

/// The settings, in the order `--help` and `--print-config` show them. `data_dir` comes
/// first: the others' defaults (the upload dirs) hang off it.
pub static KEYS: &[Key] = &[
    key! { data_dir, "IM_DATA_DIR", No, "Directory of the embedded database, the generated JWT secret and local uploads",
    get |s| Some(s.data_dir.display().to_string()), set |s, v| s.data_dir = v.trim().into() },
    key! { listen, "IM_LISTEN", No, "Address to listen on (HTTP and WebSocket)",
    get |s| Some(s.listen.to_string()), set |s, v| s.listen = parse(v)? },
    key! { database_url, "DATABASE_URL", UrlPassword, "postgres://… to keep the event log and read models in Postgres",
    get |s| shown(&s.database_url), set |s, v| s.database_url = optional(v) },
    key! { role, "IM_ROLE", No, "What this process does: all, gateway, projector, relay or pusher",
    get |s| Some(s.role.name().to_owned()), set |s, v| s.role = Role::named(v)? },
    key! { kafka_brokers, "KAFKA_BROKERS", No, "Kafka bootstrap servers: the event stream and delivery bus go through Kafka",
    get |s| shown(&s.kafka_brokers), set |s, v| s.kafka_brokers = optional(v) },
    key! { redis_url, "REDIS_URL", UrlPassword, "redis://…: presence, sessions, kicks and rate limits go through Redis",
    get |s| shown(&s.redis_url), set |s, v| s.redis_url = optional(v) },
    key! { node_id, "IM_NODE_ID", No, "This process's name in presence (default: random)",
    get |s| Some(s.node_id.clone()), set |s, v| if let Some(id) = optional(v) { s.node_id = id } },
    key! { delivery_partitions, "IM_DELIVERY_PARTITIONS", No, "Partitions of the delivery topic",
    get |s| Some(s.delivery_partitions.to_string()), set |s, v| s.delivery_partitions = at_least(v, 1)? },
    key! { events_topic, "IM_KAFKA_EVENTS_TOPIC", No, "Kafka topic of the event stream",
    get |s| Some(s.events_topic.clone()), set |s, v| s.events_topic = parse(v)? },
    key! { deliveries_topic, "IM_KAFKA_DELIVERIES_TOPIC", No, "Kafka topic of the delivery bus",
    get |s| Some(s.deliveries_topic.clone()), set |s, v| s.deliveries_topic = parse(v)? },
    key! { redis_prefix, "IM_REDIS_PREFIX", No, "Prefix of every Redis key",
    get |s| Some(s.redis_prefix.clone()), set |s, v| s.redis_prefix = v.to_owned() },
    key! { jwt_secret, "JWT_SECRET", Whole, "Secret for signing tokens; generated and kept in the data dir when absent",
    get |s| shown(&s.jwt_secret), set |s, v| s.jwt_secret = optional(v) },
    key! { token_ttl_secs, "IM_TOKEN_TTL_SECS", No, "Token lifetime in seconds (a token in its last quarter is renewed)",
    get |s| Some(s.token_ttl_secs.to_string()), set |s, v| s.token_ttl_secs = at_least(v, 60)? },
    key! { tls_cert, "IM_TLS_CERT", No, "TLS certificate chain (PEM) for serving HTTPS/WSS directly; needs IM_TLS_KEY",
    get |s| s.tls_cert.as_ref().map(|p| p.display().to_string()), set |s, v| s.tls_cert = optional(v).map(std::path::PathBuf::from) },
    key! { tls_key, "IM_TLS_KEY", No, "TLS private key (PEM); needs IM_TLS_CERT",
    get |s| s.tls_key.as_ref().map(|p| p.display().to_string()), set |s, v| s.tls_key = optional(v).map(std::path::PathBuf::from) },
    key! { trusted_proxies, "IM_TRUSTED_PROXIES", No, "Reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For/-Proto/-Host count; empty: none",
    get |s| Some(s.trusted_proxies.to_setting()), set |s, v| s.trusted_proxies = crate::proxy::TrustedProxies::parse(v)? },
    key! { cors_origins, "IM_CORS_ORIGINS", No, "Origins whose web pages may call the API (comma-separated, or *; default none)",
    get |s| Some(s.cors_origins.join(",")), set |s, v| s.cors_origins = v.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect() },
    key! { cors_credentials, "IM_CORS_CREDENTIALS", No, "Whether those origins may send cookies and credentials (not with *)",
    get |s| Some(s.cors_credentials.to_string()), set |s, v| s.cors_credentials = v.trim().parse().map_err(|_| format!("{v:?} is not true or false"))? },
    key! { public_url, "IM_PUBLIC_URL", No, "Base of the URLs handed to clients, e.g. https://im.example.com (default: the request's scheme and Host)",
    get |s| shown(&s.public_url), set |s, v| s.public_url = optional(v).map(|u| u.trim_end_matches('/').to_owned()) },
    key! { system_avatar, "IM_SYSTEM_AVATAR", No, "The avatar of messages from the system (the visitor reminder, the kick notice)",
    get |s| Some(s.system_avatar.clone()), set |s, v| s.system_avatar = v.trim().to_owned() },
    key! { heartbeat_ms, "IM_HEARTBEAT_MS", No, "WebSocket heartbeat interval in milliseconds (silent for three: closed)",
    get |s| Some(s.heartbeat.as_millis().to_string()), set |s, v| s.heartbeat = Duration::from_millis(at_least(v, 10)?) },
    key! { projection_gather_ms, "IM_PROJECTION_GATHER_MS", No, "Milliseconds the read models may gather commits nobody waits for into one transaction (embedded; 0: none)",
    get |s| Some(s.projection_gather.as_millis().to_string()), set |s, v| s.projection_gather = Duration::from_millis(at_most(v, 60_000)?) },
    key! { append_gather_us, "IM_APPEND_GATHER_US", No, "Microseconds a Postgres log writer waits for more requests before a commit while other processes append too and its last commit carried 4 or more (0: none)",
    get |s| Some(s.append_gather.as_micros().to_string()), set |s, v| s.append_gather = Duration::from_micros(at_most(v, 100_000)?) },
    key! { projector_gather_ms, "IM_PROJECTOR_GATHER_MS", No, "Milliseconds a projector process lets the log move after a read of 16 events or more, before reading again (distributed; 0: none)",
    get |s| Some(s.projector_gather.as_millis().to_string()), set |s, v| s.projector_gather = Duration::from_millis(at_most(v, 60_000)?) },
    key! { relay_gather_ms, "IM_RELAY_GATHER_MS", No, "Milliseconds the Kafka relay lets the log move after a read that did not fill its batch (distributed; 0: none)",
    get |s| Some(s.relay_gather.as_millis().to_string()), set |s, v| s.relay_gather = Duration::from_millis(at_most(v, 60_000)?) },
    key! { rebuild_range, "IM_REBUILD_RANGE", No, "Log positions `im rebuild` replays per read-model transaction (1 to 1000000; its memory grows with it)",
    get |s| Some(s.rebuild_range.to_string()), set |s, v| s.rebuild_range = within(v, 1, 1_000_000)? },
    key! { multi_device, "IM_MULTI_DEVICE", No, "Whether a user may keep one mobile and one desktop/web session at once (loginChat's device_type)",
    get |s| Some(s.multi_device.to_string()), set |s, v| s.multi_device = v.trim().parse().map_err(|_| format!("{v:?} is not true or false"))? },
    key! { typing_interval_ms, "IM_TYPING_INTERVAL_MS", No, "Least milliseconds between two typing frames a socket passes on (more are dropped)",
    get |s| Some(s.typing.interval.as_millis().to_string()), set |s, v| s.typing.interval = Duration::from_millis(parse(v)?) },
    key! { typing_ttl_ms, "IM_TYPING_TTL_MS", No, "Milliseconds a receiver shows a typing indicator without a newer frame",
    get |s| Some(s.typing.ttl.as_millis().to_string()), set |s, v| s.typing.ttl = Duration::from_millis(at_least(v, 100)?) },
    key! { push_unipush_url, "IM_PUSH_UNIPUSH_URL", No, "Where uni-push (Getui) push requests go (unset: no uni-push)",
    get |s| shown(&s.push.unipush_url), set |s, v| s.push.unipush_url = optional(v) },
    key! { push_fcm_url, "IM_PUSH_FCM_URL", No, "The FCM v1 messages:send URL (unset: no FCM)",
    get |s| shown(&s.push.fcm_url), set |s, v| s.push.fcm_url = optional(v) },
    key! { push_apns_url, "IM_PUSH_APNS_URL", No, "The APNs base URL; /3/device/<token> is added (unset: no APNs)",
    get |s| shown(&s.push.apns_url), set |s, v| s.push.apns_url = optional(v) },
    key! { push_webhook_url, "IM_PUSH_WEBHOOK_URL", No, "The operator's endpoint for webhook pushes (unset: no webhook)",
    get |s| shown(&s.push.webhook_url), set |s, v| s.push.webhook_url = optional(v) },
    key! { push_auth, "IM_PUSH_AUTH", Whole, "Sent as Authorization: Bearer to every push endpoint",
    get |s| shown(&s.push.auth), set |s, v| s.push.auth = optional(v) },
    key! { push_collapse_ms, "IM_PUSH_COLLAPSE_MS", No, "Messages to one chat within this many ms of the first become one push",
    get |s| Some(s.push.collapse.as_millis().to_string()), set |s, v| s.push.collapse = Duration::from_millis(parse(v)?) },
    key! { push_retries, "IM_PUSH_RETRIES", No, "Retries of a push whose endpoint fails (5xx, 429, no answer)",
    get |s| Some(s.push.retries.to_string()), set |s, v| s.push.retries = parse(v)? },
    key! { push_backoff_ms, "IM_PUSH_BACKOFF_MS", No, "The first push retry's wait in ms, doubled for each next one",
    get |s| Some(s.push.backoff.as_millis().to_string()), set |s, v| s.push.backoff = Duration::from_millis(at_least(v, 1)?) },
    key! { push_queue, "IM_PUSH_QUEUE", No, "Messages waiting to be pushed at most (beyond: dropped and counted)",
    get |s| Some(s.push.queue.to_string()), set |s, v| s.push.queue = at_least(v, 1)? },
    key! { last_seen_kept, "IM_LAST_SEEN_KEPT", No, "Users whose last-seen time one embedded node keeps in memory (the older half is dropped beyond it)",
    get |s| Some(s.last_seen.kept.to_string()), set |s, v| s.last_seen.kept = at_least(v, 1)? },
    key! { last_seen_ttl_secs, "IM_LAST_SEEN_TTL_SECS", No, "Seconds Redis keeps a user's last-seen time (distributed mode)",
    get |s| Some(s.last_seen.ttl.as_secs().to_string()), set |s, v| s.last_seen.ttl = Duration::from_secs(at_least(v, 1)?) },
    key! { edit_window_secs, "IM_EDIT_WINDOW_SECS", No, "Seconds after sending during which a text message may be edited (0 = no limit)",
    get |s| Some(s.edit_window.as_secs().to_string()), set |s, v| s.edit_window = Duration::from_secs(parse(v)?) },
    key! { revoke_window_secs, "IM_REVOKE_WINDOW_SECS", No, "Seconds after sending during which a message may be revoked (0 = no limit)",
    get |s| Some(s.revoke_window.as_secs().to_string()), set |s, v| s.revoke_window = Duration::from_secs(parse(v)?) },
    key! { max_group_size, "IM_MAX_GROUP_SIZE", No, "The most members a group may have",
    get |s| Some(s.max_group_size.to_string()), set |s, v| s.max_group_size = at_least(v, 2)? },
    key! { friend_retry_secs, "IM_FRIEND_RETRY_SECS", No, "Seconds after a refusal before the same friend request may be sent again",
    get |s| Some(s.friend_retry.as_secs().to_string()), set |s, v| s.friend_retry = Duration::from_secs(parse(v)?) },
    key! { username_grace_secs, "IM_USERNAME_GRACE_SECS", No, "Seconds after an account's deletion before its username may be registered again",
    get |s| Some(s.username_grace.as_secs().to_string()), set |s, v| s.username_grace = Duration::from_secs(parse(v)?) },
    key! { console_sample_secs, "IM_CONSOLE_SAMPLE_SECS", No, "Seconds between the admin dashboard's chart samples (it keeps the last 60)",
    get |s| Some(s.console_sample.as_secs().to_string()), set |s, v| s.console_sample = Duration::from_secs(at_least(v, 1)?) },
    key! { rate_login, "IM_RATE_LOGIN", No, "Logins per minute per client IP and per username (0 = no limit)",
    get |s| Some(s.limits.login.to_string()), set |s, v| s.limits.login = parse(v)? },
    key! { rate_register, "IM_RATE_REGISTER", No, "Registrations per minute per client IP (0 = no limit)",
    get |s| Some(s.limits.register.to_string()), set |s, v| s.limits.register = parse(v)? },
    key! { rate_send, "IM_RATE_SEND", No, "Messages per minute per sender; per IP four times that (0 = no limit)",
    get |s| Some(s.limits.send.to_string()), set |s, v| s.limits.send = parse(v)? },
    key! { rate_write, "IM_RATE_WRITE", No, "Other writes per minute per user: profile, friends, reports, groups (0 = no limit)",
    get |s| Some(s.limits.write.to_string()), set |s, v| s.limits.write = parse(v)? },
    key! { rate_password, "IM_RATE_PASSWORD", No, "Password changes and visitor upgrades per minute per user (0 = no limit)",
    get |s| Some(s.limits.password.to_string()), set |s, v| s.limits.password = parse(v)? },
    key! { rate_keys, "IM_RATE_KEYS", No, "Rate-limit counters one process keeps at most (oldest dropped first)",
    get |s| Some(s.limits.keys.to_string()), set |s, v| s.limits.keys = at_least(v, 1)? },
    key! { hash_threads, "IM_HASH_THREADS", No, "Threads that hash passwords (0: half the cores, at least one)",
    get |s| Some(s.hashing.threads.to_string()), set |s, v| s.hashing.threads = match parse(v)? { 0 => Settings::default_hash_threads(), n => n, } },
    key! { hash_queue, "IM_HASH_QUEUE", No, "Password hashes that may wait for a thread; more are refused as busy (429)",
    get |s| Some(s.hashing.queue.to_string()), set |s, v| s.hashing.queue = parse(v)? },
    key! { upload_dir, "IM_UPLOAD_DIR", No, "The local upload store, served under /public (default <data-dir>/uploads)",
    get |s| Some(s.files.upload_dir.display().to_string()), set |s, v| if let Some(dir) = optional(v) { s.files.upload_dir = dir.into() } },
    key! { upload_max_image, "IM_UPLOAD_MAX_IMAGE", No, "Largest image or audio upload, in bytes",
    get |s| Some(s.files.max_image_bytes.to_string()), set |s, v| s.files.max_image_bytes = at_least(v, 1)? },
    key! { upload_max_video, "IM_UPLOAD_MAX_VIDEO", No, "Largest video upload, in bytes",
    get |s| Some(s.files.max_video_bytes.to_string()), set |s, v| s.files.max_video_bytes = at_least(v, 1)? },
    key! { upload_max_file, "IM_UPLOAD_MAX_FILE", No, "Largest document upload (pdf, office, archives, text), in bytes",
    get |s| Some(s.files.max_file_bytes.to_string()), set |s, v| s.files.max_file_bytes = at_least(v, 1)? },
    key! { upload_concurrency, "IM_UPLOAD_CONCURRENCY", No, "Uploads received at once; more are refused as busy (429)",
    get |s| Some(s.files.max_concurrent.to_string()), set |s, v| s.files.max_concurrent = at_least(v, 1)? },
    key! { upload_quota_mb, "IM_UPLOAD_QUOTA_MB", No, "MiB one user may upload a day; per client IP four times that (0 = no quota)",
    get |s| Some(s.files.quota_mib_per_day.to_string()), set |s, v| s.files.quota_mib_per_day = parse(v)? },
    key! { ffmpeg, "IM_FFMPEG", No, "The ffmpeg binary used for video screenshots",
    get |s| Some(s.files.ffmpeg.clone()), set |s, v| s.files.ffmpeg = v.trim().to_owned() },
    key! { ffmpeg_concurrency, "IM_FFMPEG_CONCURRENCY", No, "Video screenshots taken at once; more are refused as busy (429)",
    get |s| Some(s.files.ffmpeg_concurrent.to_string()), set |s, v| s.files.ffmpeg_concurrent = at_least(v, 1)? },
    key! { ffmpeg_timeout_secs, "IM_FFMPEG_TIMEOUT_SECS", No, "Seconds one ffmpeg run may take before it is killed",
    get |s| Some(s.files.ffmpeg_timeout.as_secs().to_string()), set |s, v| s.files.ffmpeg_timeout = Duration::from_secs(at_least(v, 1)?) },
    key! { s3_endpoint, "IM_S3_ENDPOINT", No, "S3-compatible endpoint for uploadAliyun, e.g. https://oss-cn-hangzhou.aliyuncs.com (default: the local store)",
    get |s| s3_shown(s, |x| x.endpoint.clone()), set |s, v| s3(s).endpoint = v.trim().to_owned() },
    key! { s3_bucket, "IM_S3_BUCKET", No, "The S3 bucket",
    get |s| s3_shown(s, |x| x.bucket.clone()), set |s, v| s3(s).bucket = v.trim().to_owned() },
    key! { s3_region, "IM_S3_REGION", No, "The S3 region",
    get |s| s3_shown(s, |x| x.region.clone()), set |s, v| s3(s).region = v.trim().to_owned() },
    key! { s3_access_key, "IM_S3_ACCESS_KEY", Whole, "The S3 access key",
    get |s| s3_shown(s, |x| x.access_key.clone()), set |s, v| s3(s) .access_key = v.trim().to_owned() },
    key! { s3_secret_key, "IM_S3_SECRET_KEY", Whole, "The S3 secret key",
    get |s| s3_shown(s, |x| x.secret_key.clone()), set |s, v| s3(s) .secret_key = v.trim().to_owned() },
    key! { s3_public_url, "IM_S3_PUBLIC_URL", No, "Base of the URLs handed out for stored objects (default <endpoint>/<bucket>)",
    get |s| s3_shown(s, |x| x.public_url.clone().unwrap_or_default()), set |s, v| s3(s).public_url = optional(v) },
    key! { ws_queue, "IM_WS_QUEUE", No, "Frames queued per WebSocket; a socket whose queue fills up is closed as too slow",
    get |s| Some(s.sockets.queue.to_string()), set |s, v| s.sockets.queue = at_least(v, 4)? },
    key! { ws_queue_bytes, "IM_WS_QUEUE_BYTES", No, "Bytes queued per WebSocket at most (the same rule as ws_queue)",
    get |s| Some(s.sockets.queue_bytes.to_string()), set |s, v| s.sockets.queue_bytes = at_least(v, crate::ws::MAX_FRAME)? },
    key! { ws_write_timeout_ms, "IM_WS_WRITE_TIMEOUT_MS", No, "How long a WebSocket write may block before the socket is closed (ms)",
    get |s| Some(s.sockets.write_timeout.as_millis().to_string()), set |s, v| s.sockets.write_timeout = Duration::from_millis(at_least(v, 10)?) },
    key! { ws_in_flight, "IM_WS_IN_FLIGHT", No, "`send` frames one socket may have waiting for the log at once",
    get |s| Some(s.sockets.in_flight.to_string()), set |s, v| s.sockets.in_flight = at_least(v, 1)? },
    key! { cache_users, "IM_CACHE_USERS", No, "Users whose rows the message path keeps in memory",
    get |s| Some(s.directory.users.to_string()), set |s, v| s.directory.users = at_least(v, 1)? },
    key! { cache_sides, "IM_CACHE_SIDES", No, "Friendship sides the message path keeps in memory",
    get |s| Some(s.directory.sides.to_string()), set |s, v| s.directory.sides = at_least(v, 1)? },
];

//! Building and running the server.

use crate::settings::{FileSettings, Limits, Role, Settings};
use crate::ws::{Hub, HubSink, SocketLimits};
use crate::{error::ApiError, ok, routes, ws};
use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use im_adapters::kafka::{DeliveryConsumer, KafkaDeliverySink, KafkaSettings, run_relay};
use im_adapters::objects::{LocalStore, ObjectStore, S3Store};
use im_adapters::presence::{LocalPresence, NodeMessage, Presence, RedisPresence};
use im_adapters::ratelimit::{LocalRateLimiter, RateLimiter, RedisRateLimiter};
use im_commands::accounts::Accounts;
use im_commands::askanswer::AskAnswers as AskAnswerCommands;
use im_commands::auth::Tokens;
use im_commands::friends::Friends as FriendCommands;
use im_commands::groups::Groups as GroupCommands;
use im_commands::messages::Messages;
use im_eventlog::SharedEventStore;
use im_eventlog::postgres::PostgresEventStore;
use im_eventlog::sqlite::SqliteEventStore;
use im_projections::askanswer::{AskAnswerProjection, AskAnswers};
use im_projections::directory::Directory;
use im_projections::friends::{Friends, FriendsProjection};
use im_projections::groups::Groups;
use im_projections::inbox::{DeliverySink, Ledger};
use im_projections::inbox::{Inbox, InboxProjection};
use im_projections::runtime::Extras;
use im_projections::users::{Users, UsersProjection};
use im_projections::{Projection, Projector, ReadDb};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: SharedEventStore,
    accounts: Accounts,
    friend_commands: FriendCommands,
    users: Users,
    friends: Friends,
    messages: Messages,
    inbox: Inbox,
    askanswer_commands: AskAnswerCommands,
    group_commands: GroupCommands,
    groups: Groups,
    askanswers: AskAnswers,
    revoke_window: Duration,
    projector: Projector,
    hub: Hub,
    presence: Arc<dyn Presence>,
    deliveries: Option<DeliveryConsumer>,
    node_id: String,
    role: Role,
    heartbeat: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    limiter: Arc<dyn RateLimiter>,
    limits: Limits,
    files: FileSettings,
    public_url: Option<String>,
    uploads: crate::routes::files::Uploads,
    local_files: Arc<dyn ObjectStore>,
    admins: im_commands::admin::Admins,
    admin_secret: Vec<u8>,
    object_store: Arc<dyn ObjectStore>,
    shutdown: watch::Receiver<bool>,
    directory: Directory,
    ledger: Ledger,
    socket_limits: SocketLimits,
}

impl AppState {
    pub fn store(&self) -> &SharedEventStore {
        &self.0.store
    }

    pub fn accounts(&self) -> &Accounts {
        &self.0.accounts
    }

    pub fn users(&self) -> &Users {
        &self.0.users
    }

    /// The facts the message path decides on, in memory.
    pub fn directory(&self) -> &Directory {
        &self.0.directory
    }

    /// Where sockets report the inbox rows that reached them.
    pub fn ledger(&self) -> &Ledger {
        &self.0.ledger
    }

    pub fn socket_limits(&self) -> SocketLimits {
        self.0.socket_limits
    }

    pub fn friend_commands(&self) -> &FriendCommands {
        &self.0.friend_commands
    }

    pub fn friends(&self) -> &Friends {
        &self.0.friends
    }

    pub fn messages(&self) -> &Messages {
        &self.0.messages
    }

    pub fn inbox(&self) -> &Inbox {
        &self.0.inbox
    }

    pub fn askanswer_commands(&self) -> &AskAnswerCommands {
        &self.0.askanswer_commands
    }

    pub fn askanswers(&self) -> &AskAnswers {
        &self.0.askanswers
    }

    pub fn group_commands(&self) -> &GroupCommands {
        &self.0.group_commands
    }

    pub fn groups(&self) -> &Groups {
        &self.0.groups
    }

    pub fn revoke_window(&self) -> Duration {
        self.0.revoke_window
    }

    pub fn projector(&self) -> &Projector {
        &self.0.projector
    }

    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// Presence, live sessions and kicks (in-process, or Redis).
    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.0.presence
    }

    /// The Kafka delivery consumer, in the distributed mode.
    pub fn deliveries(&self) -> Option<&DeliveryConsumer> {
        self.0.deliveries.as_ref()
    }

    pub fn node_id(&self) -> &str {
        &self.0.node_id
    }

    pub fn role(&self) -> Role {
        self.0.role
    }

    /// Records a user's new live session where other gateways look first.
    pub async fn remember_session(&self, user: i64, session: Option<&str>) {
        if let Err(e) = self.0.presence.set_session(user, session).await {
            tracing::warn!(user_id = user, error = %e, "could not record the live session");
        }
    }

    /// Counts one `kind` action by `who` (a user id or a client IP) against `limit` per
    /// minute; 429 when over. A limiter that cannot answer lets the request through.
    pub async fn limit(&self, kind: &str, who: &str, limit: u32) -> Result<(), ApiError> {
        self.charge(kind, who, 1, limit, Duration::from_secs(60)).await
    }

    /// Counts `cost` against `who`'s `limit` of this kind per `window` (0 = no limit).
    pub async fn charge(&self, kind: &str, who: &str, cost: u32, limit: u32, window: Duration) -> Result<(), ApiError> {
        if limit == 0 {
            return Ok(());
        }
        match self.0.limiter.allow_n(&format!("{kind}:{who}"), cost, limit, window).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "请求过于频繁,请稍后再试")),
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable");
                Ok(())
            }
        }
    }

    pub fn files(&self) -> &FileSettings {
        &self.0.files
    }

    pub fn admins(&self) -> &im_commands::admin::Admins {
        &self.0.admins
    }

    /// The key that signs admin console sessions.
    pub fn admin_secret(&self) -> &[u8] {
        &self.0.admin_secret
    }

    /// Operator action: delete an account, revoking its session and closing its socket.
    pub async fn delete_user(&self, user: im_domain::UserId) -> Result<(), ApiError> {
        let position = self.accounts().delete(&im_commands::Ctx::anonymous(), user).await?;
        self.settle(position).await?;
        self.remember_session(user.0, Some("deleted")).await;
        self.sessions_changed(user, None, false).await;
        Ok(())
    }

    /// Operator action: a new password, which ends the user's live session (its token is
    /// refused and its socket closed everywhere).
    pub async fn reset_password(&self, user: im_domain::UserId, password: &str) -> Result<i64, ApiError> {
        let position = self.accounts().reset_password(&im_commands::Ctx::anonymous(), user, password).await?;
        self.settle(position).await?;
        self.remember_session(user.0, None).await;
        self.sessions_changed(user, None, false).await;
        Ok(position)
    }

    /// The user's live session changed (it is `live` now): their socket closes unless
    /// it belongs to `live` — here at once, and on the gateway that holds it through
    /// Redis, which checks the live session itself (so a late message never closes a
    /// socket of a newer session). `notice`: the socket is told it was logged in
    /// elsewhere. Call after the change is settled and remembered.
    pub async fn sessions_changed(&self, user: im_domain::UserId, live: Option<im_domain::SessionId>, notice: bool) {
        self.hub().close_unless(user, live, notice);
        match self.presence().node_of(user.0).await {
            Ok(Some(node)) if node != self.node_id() => {
                if let Err(e) = self.presence().tell(&node, &NodeMessage::Recheck { user: user.0, notice }).await {
                    tracing::warn!(user_id = user.0, error = %e, "could not ask the user's gateway to close the socket");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(user_id = user.0, error = %e, "presence unavailable: the socket closes at its next heartbeat"),
        }
    }

    /// Whether the user has a socket on any gateway (errors: presence cannot tell).
    pub async fn is_online(&self, user: im_domain::UserId) -> Result<bool, im_adapters::presence::PresenceError> {
        if self.hub().is_online(user) {
            return Ok(true);
        }
        Ok(self.presence().node_of(user.0).await?.is_some())
    }

    /// Users connected to any gateway (this one's hub when presence is in-process, or
    /// cannot answer).
    pub async fn online_count(&self) -> u64 {
        match self.presence().online_count().await {
            Ok(Some(count)) => count,
            Ok(None) => self.hub().online_count() as u64,
            Err(e) => {
                tracing::warn!(error = %e, "presence cannot count: this gateway's sockets only");
                self.hub().online_count() as u64
            }
        }
    }

    /// The base of the URLs handed to clients: `IM_PUBLIC_URL`, else this request's
    /// `Host` over http.
    pub fn public_base(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(base) = &self.0.public_url {
            return base.clone();
        }
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty());
        format!("http://{}", host.unwrap_or("127.0.0.1"))
    }

    /// `url` as clients get it: a path of ours gets the public base in front.
    pub fn absolute_url(&self, headers: &axum::http::HeaderMap, url: &str) -> String {
        if url.starts_with('/') { format!("{}{url}", self.public_base(headers)) } else { url.to_owned() }
    }

    /// How many uploads and screenshots are taken on at once.
    pub fn uploads(&self) -> &crate::routes::files::Uploads {
        &self.0.uploads
    }

    /// The local upload directory (served under `/public`).
    pub fn local_files(&self) -> &Arc<dyn ObjectStore> {
        &self.0.local_files
    }

    /// Where `uploadAliyun` writes: the S3-compatible store, else the local one.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.0.object_store
    }

    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.0.metrics
    }

    pub fn heartbeat(&self) -> Duration {
        self.0.heartbeat
    }

    /// Flips to `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }

    /// Operator action: disable (revoking the session and closing the socket at once)
    /// or re-enable an account. Returns when the read models show the change.
    pub async fn set_user_active(&self, user: im_domain::UserId, active: bool) -> Result<(), ApiError> {
        let position = self.accounts().set_active(&im_commands::Ctx::anonymous(), user, active).await?;
        self.settle(position).await?;
        if !active {
            self.remember_session(user.0, None).await;
            // The socket may be on another gateway.
            self.sessions_changed(user, None, false).await;
        }
        Ok(())
    }

    /// Read-your-writes: waits until the read models include `position`.
    pub async fn settle(&self, position: i64) -> Result<(), ApiError> {
        Ok(self.0.projector.wait_for(position).await?)
    }

    /// Waits until the read models include everything the log held when this was
    /// called (an inbox read: rows handed to sockets before they were written, and after
    /// a restart the ones the projector is still catching up on).
    pub async fn settle_head(&self) -> Result<(), ApiError> {
        let head = *self.0.store.watch_head().borrow();
        self.settle(head).await
    }
}

/// Opens the event log (running the migrations) and the read-model database: SQLite
/// under the data dir, or Postgres when `database_url` is set.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<(SharedEventStore, ReadDb)> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let (store, read_url): (SharedEventStore, String) = match &settings.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            (Arc::new(PostgresEventStore::connect(url).await.context("connecting to Postgres")?), url.clone())
        }
        Some(other) => anyhow::bail!("DATABASE_URL must be a postgres:// URL, got {other:?}"),
        None => {
            let path = settings.sqlite_path();
            let store = SqliteEventStore::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
            (Arc::new(store), format!("sqlite://{}", settings.read_db_path().display()))
        }
    };
    let db = ReadDb::connect(&read_url).await.context("opening read models")?;
    Ok((store, db))
}

/// Every projection, with deliveries going to `sink`.
pub fn projections(sink: Arc<dyn DeliverySink>) -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(UsersProjection), Arc::new(FriendsProjection), Arc::new(InboxProjection::new(sink)), Arc::new(AskAnswerProjection)]
}

/// A built server with its listener bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Opens the event log and read models (SQLite under the data dir, or Postgres when
    /// `database_url` is set), starts the projections and binds the listen address.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (store, db) = open_stores(&settings).await?;
        let role = settings.role;
        let kafka = settings.kafka_brokers.as_ref().map(|brokers| KafkaSettings {
            brokers: brokers.clone(),
            events_topic: settings.events_topic.clone(),
            deliveries_topic: settings.deliveries_topic.clone(),
            delivery_partitions: settings.delivery_partitions,
        });
        if role != Role::All && kafka.is_none() {
            anyhow::bail!("--role {role:?} splits the server across processes and needs KAFKA_BROKERS");
        }
        let presence: Arc<dyn Presence> = match &settings.redis_url {
            Some(url) => {
                Arc::new(RedisPresence::connect(url, &settings.redis_prefix, settings.heartbeat * 3).await.context("connecting to Redis")?)
            }
            None => Arc::new(LocalPresence::default()),
        };
        let hub = Hub::new(&settings.system_avatar);
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let hub_sink = HubSink::new(hub.clone(), metrics.clone());
        let directory = Directory::new(db.clone(), settings.directory);
        let (ledger, marks) = Ledger::channel();
        let projector = if role.runs_projections() {
            let sink: Arc<dyn DeliverySink> = match &kafka {
                Some(k) => Arc::new(KafkaDeliverySink::start(k).context("starting the delivery producer")?),
                None => Arc::new(hub_sink.clone()),
            };
            // Sockets of this process report deliveries to the projector's writer.
            let marks = role.serves_clients().then_some(marks);
            Projector::start(store.clone(), db.clone(), projections(sink), Extras { marks, directory: Some(directory.clone()) }).await?
        } else {
            // The projector is another process: deliveries are written here, and the
            // directory follows what it announces.
            Ledger::write_alone(db.clone(), marks);
            if let Some(url) = &settings.database_url {
                directory.follow_announcements(url);
            }
            Projector::follow(db.clone(), &PROJECTIONS).await?
        };
        let passwords = im_commands::auth::Passwords::new(settings.hashing);
        let admins = im_commands::admin::Admins::with_passwords(store.clone(), passwords.clone());
        let local_files: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&settings.files.upload_dir));
        let object_store: Arc<dyn ObjectStore> = match &settings.files.s3 {
            Some(s3) => {
                let store = S3Store::new(s3).context("configuring the S3 store")?;
                store.ensure_bucket().await.context("reaching the S3 store")?;
                Arc::new(store)
            }
            None => local_files.clone(),
        };
        let limiter: Arc<dyn RateLimiter> = match &settings.redis_url {
            Some(url) => Arc::new(RedisRateLimiter::connect(url, &settings.redis_prefix).await.context("connecting to Redis")?),
            None => Arc::new(LocalRateLimiter::with_capacity(settings.limits.keys)),
        };
        let deliveries = match (&kafka, role.serves_clients()) {
            (Some(k), true) => Some(
                DeliveryConsumer::start(k, &settings.node_id, move |d| hub_sink.deliver(vec![d]))
                    .context("starting the delivery consumer")?,
            ),
            _ => None,
        };
        if let (Some(k), true) = (&kafka, role.runs_relay()) {
            let (store, db, k) = (store.clone(), db.clone(), k.clone());
            tokio::spawn(async move {
                if let Err(e) = run_relay(store, db, k).await {
                    tracing::error!(error = %e, "relay stopped");
                }
            });
        }
        let messages =
            if role.serves_clients() { Some(presence.messages(&settings.node_id).await.context("subscribing to kicks")?) } else { None };
        let secret = settings.load_or_create_secret().context("loading the JWT secret")?;
        let tokens = Tokens::new(&secret, settings.token_ttl_secs);
        let listener = TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState(Arc::new(Inner {
            accounts: Accounts::new(store.clone(), tokens, passwords).with_system_avatar(settings.system_avatar.clone()),
            friend_commands: FriendCommands::new(store.clone()).with_retry_after(settings.friend_retry),
            users: Users::new(db.clone()),
            friends: Friends::new(db.clone()),
            messages: Messages::new(store.clone()),
            inbox: Inbox::new(db.clone()),
            askanswer_commands: AskAnswerCommands::new(store.clone()),
            askanswers: AskAnswers::new(db.clone()),
            group_commands: GroupCommands::new(store.clone(), settings.max_group_size),
            groups: Groups::new(db),
            revoke_window: settings.revoke_window,
            projector,
            store,
            hub,
            presence,
            deliveries,
            node_id: settings.node_id.clone(),
            role,
            heartbeat: settings.heartbeat,
            metrics,
            limiter,
            limits: settings.limits,
            files: settings.files.clone(),
            public_url: settings.public_url.clone(),
            uploads: crate::routes::files::Uploads::new(&settings.files),
            local_files,
            object_store,
            admins,
            admin_secret: [secret.as_slice(), b":admin-console"].concat(),
            shutdown: shutdown_rx,
            directory,
            ledger,
            socket_limits: settings.sockets,
        }));
        if let Some(messages) = messages {
            tokio::spawn(crate::ws::carry_out(state.clone(), messages));
        }
        tracing::info!(addr = %listener.local_addr()?, backend = state.store().backend(), ?role, node = %settings.node_id, "server built");
        Ok(Self { listener, state, shutdown })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `signal` completes, then closes every socket and drains requests.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let router = router(self.state.clone());
        let shutdown = self.shutdown;
        axum::serve(no_delay(self.listener), router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down");
                let _ = shutdown.send(true);
            })
            .await
    }
}

/// Accepted connections send small frames at once instead of waiting on Nagle's
/// algorithm for more to coalesce.
pub(crate) fn no_delay(listener: TcpListener) -> axum::serve::TapIo<TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

/// The names of the projections, for processes that follow them.
pub const PROJECTIONS: [&str; 4] = ["users", "friends", "inbox", "askanswer"];

pub fn router(state: AppState) -> Router {
    if !state.role().serves_clients() {
        // Projector and relay processes answer health checks only.
        return Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(crate::metrics::render))
            .fallback(not_found)
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(state);
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .route("/ws", get(ws::handler))
        .merge(routes::accounts::router())
        .merge(routes::friends::router())
        .merge(routes::messages::router())
        .merge(routes::askanswer::router())
        .merge(routes::groups::router())
        .merge(crate::admin::router())
        .merge(routes::files::router(state.files().max_video_bytes.max(state.files().max_image_bytes) + (1 << 20)))
        .nest_service("/public", tower_http::services::ServeDir::new(&state.files().upload_dir))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(crate::error::envelope_rejections))
        .layer(axum::middleware::from_fn(crate::auth::refresh::layer))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// How far behind the log head the read models may be for this process to take traffic.
const READY_LAG: i64 = 1000;

/// `GET /readyz`: 200 when the log answers and the projections are caught up (within
/// a small lag), 503 otherwise.
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let head = state.store().head().await.map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "存储不可用"))?;
    let lag = head - state.projector().position();
    if lag > READY_LAG {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "lagging", "读模型正在追赶事件日志"));
    }
    Ok(ok(json!({"ready": true, "log_head": head, "lag": lag.max(0)})))
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let head = state.store().head().await.map_err(ApiError::internal)?;
    Ok(ok(json!({
        "status": "ok",
        "store": state.store().backend(),
        "log_head": head,
        "projections_at": state.projector().position(),
        "online": state.hub().online_count(),
        "role": format!("{:?}", state.role()).to_lowercase(),
        "node": state.node_id(),
    })))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "请求的接口不存在")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "请求方法不允许")
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_sockets_do_without_nagle() {
        let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = raw.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        let mut listener = super::no_delay(raw);
        let client = tokio::spawn(tokio::net::TcpStream::connect(addr));
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap_or(false), "TCP_NODELAY is set on accepted sockets");
        drop(client.await);
    }
}

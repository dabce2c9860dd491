//! Building and running the server: [`Application::build`] wires the stores, the
//! projector, presence and the hub into an [`AppState`]; [`router`] maps the routes.

use crate::hub::{Hub, HubSink};
use crate::settings::{Role, Settings};
use crate::state::{AppState, Inner};
use crate::{error::ApiError, routes};
use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use im_adapters::kafka::{DeliveryConsumer, KafkaDeliverySink, KafkaSettings, run_relay};
use im_adapters::objects::{LocalStore, ObjectStore, S3Store};
use im_adapters::presence::{LocalPresence, Presence, RedisPresence};
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
use im_projections::askanswer::AskAnswers;
use im_projections::directory::Directory;
use im_projections::friends::Friends;
use im_projections::groups::Groups;
use im_projections::inbox::Inbox;
use im_projections::inbox::{DeliverySink, Ledger};
use im_projections::runtime::Extras;
use im_projections::users::Users;
use im_projections::{Projector, ReadDb};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Opens the event log (running the migrations) and the read-model database: SQLite
/// under the data dir, or Postgres when `database_url` is set.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<(SharedEventStore, ReadDb)> {
    let (store, read_url) = open_log(settings).await?;
    let db = ReadDb::connect(&read_url).await.context("opening read models")?;
    Ok((store, db))
}

/// Opens the event log (running the migrations); also says where the read models are.
pub async fn open_log(settings: &Settings) -> anyhow::Result<(SharedEventStore, String)> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let (store, read_url): (SharedEventStore, String) = match &settings.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            (Arc::new(PostgresEventStore::connect_with(url, settings.append_gather).await.context("connecting to Postgres")?), url.clone())
        }
        Some(other) => anyhow::bail!("DATABASE_URL must be a postgres:// URL, got {other:?}"),
        None => {
            let path = settings.sqlite_path();
            let store = SqliteEventStore::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
            (Arc::new(store), format!("sqlite://{}", settings.read_db_path().display()))
        }
    };
    Ok((store, read_url))
}

/// A built server with its listener bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    /// With `--tls-cert`/`--tls-key`: the listener speaks TLS.
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    state: AppState,
    /// The read models, settled at the end like the log.
    db: ReadDb,
    shutdown: watch::Sender<bool>,
    /// The settings this process shares with the rest of its deployment, kept recorded.
    _shared: Vec<im_projections::deployment::Held>,
}

impl Application {
    /// Opens the event log and read models (SQLite under the data dir, or Postgres when
    /// `database_url` is set), starts the projections and binds the listen address.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::config(cert, key).map_err(anyhow::Error::msg)?),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both IM_TLS_CERT and IM_TLS_KEY (--tls-cert, --tls-key)"),
        };
        if settings.cors_credentials && settings.cors_origins.iter().any(|o| o == "*") {
            anyhow::bail!("IM_CORS_ORIGINS=* cannot go with IM_CORS_CREDENTIALS=true: list the origins that may send credentials");
        }
        let (store, db) = open_stores(&settings).await?;
        let role = settings.role;
        let kafka = settings.kafka_brokers.as_ref().map(|brokers| KafkaSettings {
            brokers: brokers.clone(),
            events_topic: settings.events_topic.clone(),
            deliveries_topic: settings.deliveries_topic.clone(),
            delivery_partitions: settings.delivery_partitions,
            relay_gather: settings.relay_gather,
        });
        if role != Role::All && kafka.is_none() {
            anyhow::bail!("--role {role:?} splits the server across processes and needs KAFKA_BROKERS");
        }
        let secret = settings.load_or_create_secret().context("loading the JWT secret")?;
        let shared = crate::shared::agree(
            &settings,
            &db,
            Some(secret.as_slice()).filter(|_| role.serves_clients()),
            kafka.as_ref().filter(|_| role.uses_deliveries()),
        )
        .await?;
        let presence: Arc<dyn Presence> = match &settings.redis_url {
            Some(url) => Arc::new(
                RedisPresence::connect(url, &settings.redis_prefix, settings.heartbeat * 3)
                    .await
                    .context("connecting to Redis")?
                    .with_last_seen_ttl(settings.last_seen.ttl),
            ),
            None => Arc::new(LocalPresence::new(settings.last_seen)),
        };
        let hub = Hub::new(&settings.system_avatar);
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let pusher = (settings.push.enabled() && role.runs_pusher()).then(|| {
            let local: Option<Arc<dyn Fn(im_domain::UserId) -> bool + Send + Sync>> = match role.serves_clients() {
                true => {
                    let hub = hub.clone();
                    Some(Arc::new(move |user| hub.is_online(user)))
                }
                false => None,
            };
            let lookups = crate::push::Lookups {
                targets: im_projections::push::PushTargets::new(db.clone()),
                conversations: im_projections::conversations::Conversations::new(db.clone()),
                presence: presence.clone(),
                local,
            };
            crate::push::Pusher::start(settings.push.clone(), lookups, metrics.clone())
        });
        let hub_sink = HubSink::new(hub.clone(), metrics.clone());
        let directory = Directory::new(db.clone(), settings.directory);
        let (ledger, marks) = Ledger::channel();
        let projector = if role.runs_projections() {
            let sink: Arc<dyn DeliverySink> = match &kafka {
                Some(k) => Arc::new(KafkaDeliverySink::start(k).context("starting the delivery producer")?),
                // Embedded, this sink sees every row: the ones without a socket here may be pushed.
                None => match &pusher {
                    Some(pusher) => Arc::new(hub_sink.clone().with_pusher(pusher.clone())),
                    None => Arc::new(hub_sink.clone()),
                },
            };
            // Sockets of this process report deliveries to the projector's writer.
            let marks = role.serves_clients().then_some(marks);
            Projector::start(
                store.clone(),
                db.clone(),
                im_projections::catalogue(sink),
                im_projections::trailing(),
                Extras {
                    marks,
                    directory: Some(directory.clone()),
                    // Another process's commands could not end a gathering: only embedded.
                    gather: if role.serves_clients() { settings.projection_gather } else { Duration::ZERO },
                    // A projector process reads other processes' commits from the log.
                    log_gather: if role.serves_clients() { Duration::ZERO } else { settings.projector_gather },
                },
            )
            .await?
        } else {
            // The projector is another process: deliveries are written here, and the
            // directory follows what it announces.
            Ledger::write_alone(db.clone(), marks);
            if let Some(url) = &settings.database_url {
                directory.follow_announcements(url);
            }
            Projector::follow(store.clone(), db.clone(), &im_projections::names(), im_projections::trailing()).await?
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
        // Distributed, the pusher reads every delivery partition itself.
        if let (Some(k), Some(pusher)) = (&kafka, &pusher) {
            let pusher = pusher.clone();
            let consumer = DeliveryConsumer::start(k, &format!("{}-pusher", settings.node_id), move |d| pusher.offer(&d))
                .context("starting the pusher's delivery consumer")?;
            // Its task consumes for the life of the process.
            consumer.follow_all().await;
        }
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
        let tokens = Tokens::new(&secret, settings.token_ttl_secs);
        let listener = TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState(Arc::new(Inner {
            accounts: Accounts::new(store.clone(), tokens, passwords)
                .with_system_avatar(settings.system_avatar.clone())
                .with_username_grace(settings.username_grace),
            friend_commands: FriendCommands::new(store.clone()).with_retry_after(settings.friend_retry),
            users: Users::new(db.clone()),
            friends: Friends::new(db.clone()),
            messages: Messages::new(store.clone()),
            inbox: Inbox::new(db.clone()),
            conversations: im_commands::conversations::Conversations::new(store.clone()),
            conversation_list: im_projections::conversations::Conversations::new(db.clone()),
            search: im_projections::search::Search::new(db.clone()),
            push: im_commands::push::Push::new(store.clone()),
            push_targets: im_projections::push::PushTargets::new(db.clone()),
            askanswer_commands: AskAnswerCommands::new(store.clone()),
            askanswers: AskAnswers::new(db.clone()),
            group_commands: GroupCommands::new(store.clone(), settings.max_group_size),
            groups: Groups::new(db.clone()),
            audit: im_projections::audit::Audit::new(db.clone()),
            revoke_window: settings.revoke_window,
            edit_window: settings.edit_window,
            projector,
            store,
            hub,
            presence,
            deliveries,
            node_id: settings.node_id.clone(),
            role,
            heartbeat: settings.heartbeat,
            typing: settings.typing,
            multi_device: settings.multi_device,
            metrics,
            limiter,
            limits: settings.limits,
            files: settings.files.clone(),
            public_url: settings.public_url.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            cors_origins: settings.cors_origins.clone(),
            cors_credentials: settings.cors_credentials,
            uploads: crate::uploads::Uploads::new(&settings.files),
            local_files,
            object_store,
            admins,
            admin_secret: [secret.as_slice(), b":admin-console"].concat(),
            shutdown: shutdown_rx,
            directory,
            ledger,
            socket_limits: settings.sockets,
            samples: crate::samples::Samples::default(),
        }));
        if role.serves_clients() {
            tokio::spawn(crate::admin::dashboard::sample(state.clone(), settings.console_sample));
        }
        if let Some(messages) = messages {
            tokio::spawn(crate::ws::carry_out(state.clone(), messages));
        }
        tracing::info!(addr = %listener.local_addr()?, backend = state.store().backend(), ?role, node = %settings.node_id, "server built");
        Ok(Self { listener, tls, state, db, shutdown, _shared: shared })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `signal` completes, then closes every socket, drains requests and
    /// settles the files (see [`settle`]).
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (store, db) = (self.state.store().clone(), self.db.clone());
        let served = self.serve(signal).await;
        settle(&*store, &db).await;
        served
    }

    async fn serve(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let service = router(self.state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let shutdown = self.shutdown;
        let stopping = async move {
            signal.await;
            tracing::info!("shutting down");
            let _ = shutdown.send(true);
        };
        match self.tls {
            Some(config) => {
                use axum::serve::ListenerExt;
                // (Tapped only for axum's connect info; TCP_NODELAY is set on accept.)
                fn untouched(_: &mut crate::tls::TlsIo) {}
                let listener = crate::tls::TlsListener::new(self.listener, config)?.tap_io(untouched as fn(&mut crate::tls::TlsIo));
                axum::serve(listener, service).with_graceful_shutdown(stopping).await
            }
            None => axum::serve(no_delay(self.listener), service).with_graceful_shutdown(stopping).await,
        }
    }
}

/// What a clean close of the embedded files would do, since the process exits with its
/// connections open: the log's and the read models' WALs copied back and truncated, so
/// the next start (or `im rebuild`) does not copy back megabytes of frames first. A
/// failure only costs that time later.
async fn settle(store: &dyn im_eventlog::EventStore, db: &ReadDb) {
    let started = std::time::Instant::now();
    if let Err(e) = store.settle().await {
        tracing::warn!(error = %e, "could not settle the event log at shutdown");
    }
    if let Err(e) = db.settle().await {
        tracing::warn!(error = %e, "could not settle the read models at shutdown");
    }
    tracing::info!(ms = started.elapsed().as_millis() as u64, "files settled");
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

pub fn router(state: AppState) -> Router {
    if !state.role().serves_clients() {
        // Projector and relay processes answer health checks only.
        return Router::new()
            .route("/healthz", get(routes::health::healthz))
            .route("/readyz", get(routes::health::readyz))
            .route("/metrics", get(routes::health::render))
            .fallback(not_found)
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(state);
    }
    let max_upload = state.files().max_video_bytes.max(state.files().max_image_bytes).max(state.files().max_file_bytes) + (1 << 20);
    let (api, description) = routes::api(max_upload).split_for_parts();
    crate::openapi::publish(description);
    api.merge(crate::admin::router())
        .merge(routes::web::router())
        .merge(routes::files::public(&state.files().upload_dir))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(crate::error::envelope_rejections))
        .layer(axum::middleware::from_fn(crate::auth::refresh::layer))
        .layer(axum::middleware::from_fn_with_state(state.clone(), routes::health::track))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(std::sync::Arc::new(state.trusted_proxies().clone()), crate::proxy::layer))
        .layer(tower::util::option_layer(crate::proxy::cors(&state.0.cors_origins, state.0.cors_credentials)))
        .with_state(state)
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

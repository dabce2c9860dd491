//! `im`: the chat backend's one binary.

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use im_gateway::{Application, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "im", version, about = "Event-sourced instant-messaging backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API + WebSocket).
    Serve(Box<ServeArgs>),
    /// Measure a server from outside: messages/s, send→deliver latency, server CPU and
    /// memory (see README, "Benchmark").
    Bench(BenchArgs),
    /// The bare WebSocket relay `im bench --ceiling` measures against (bench-only).
    #[command(hide = true)]
    BenchRelay,
    /// Bring the database schema up to date and exit.
    Migrate(StoreArgs),
    /// Print the event log as JSON lines (the records of im.events).
    Events(EventsArgs),
    /// Empty read models and replay the log into them (stop the projector first).
    Rebuild(RebuildArgs),
    /// Publish the log again to Kafka im.events from a position.
    Replay(ReplayArgs),
    /// Admin console accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an operator account. The password comes from IM_ADMIN_PASSWORD or the
    /// first line of standard input; there is no default.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        username: String,
    },
}

/// Where the log is.
#[derive(clap::Args)]
struct StoreArgs {
    #[arg(long, env = "IM_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl StoreArgs {
    fn settings(&self) -> Settings {
        let mut settings = Settings::with_data_dir(&self.data_dir);
        settings.database_url = self.database_url.clone().filter(|u| !u.is_empty());
        settings
    }
}

#[derive(clap::Args)]
struct EventsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// First position to print.
    #[arg(long, default_value_t = 1)]
    from: i64,
    /// Keep printing new events as they are appended.
    #[arg(long)]
    follow: bool,
}

#[derive(clap::Args)]
struct RebuildArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Projections to rebuild (users, friends, inbox, askanswer); all when none is named.
    projections: Vec<String>,
}

#[derive(clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// First position to publish.
    #[arg(long)]
    from: i64,
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    #[arg(long, env = "IM_KAFKA_EVENTS_TOPIC", default_value = "im.events")]
    events_topic: String,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Servers started separately (`http://127.0.0.1:7001`; several, comma-separated,
    /// for gateways of one deployment). Without it a server is built in this process.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// Measure the bare in-memory WebSocket relay instead (the machine's ceiling).
    #[arg(long, conflicts_with = "target")]
    ceiling: bool,
    /// Connected sender/receiver pairs.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Messages each sender sends (group: messages the owner sends; http: sends).
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Messages each sender keeps in flight (unacknowledged).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Group fan-out instead: one group of this many members, all connected.
    #[arg(long)]
    group_size: Option<usize>,
    /// Idle sockets instead: open this many authenticated sockets, report memory each.
    #[arg(long)]
    idle: Option<usize>,
    /// One client sending over HTTP, one message after another.
    #[arg(long)]
    http: bool,
    /// In-process server only: postgres://… (default: embedded SQLite in a temp dir).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// In-process server only: Kafka bootstrap servers (the distributed adapters).
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// In-process server only: Redis for presence and sessions.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// What this process does: all, gateway, projector or relay.
    #[arg(long, env = "IM_ROLE", value_enum, default_value = "all")]
    role: im_gateway::settings::Role,
    /// Kafka bootstrap servers: the event stream and delivery bus go through Kafka.
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// redis://…: presence, sessions and kicks go through Redis.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// This process's name in presence (default: random).
    #[arg(long, env = "IM_NODE_ID")]
    node_id: Option<String>,
    /// Partitions of the delivery topic.
    #[arg(long, env = "IM_DELIVERY_PARTITIONS", default_value_t = 8)]
    delivery_partitions: i32,
    #[arg(long, env = "IM_KAFKA_EVENTS_TOPIC", default_value = "im.events")]
    events_topic: String,
    #[arg(long, env = "IM_KAFKA_DELIVERIES_TOPIC", default_value = "im.deliveries")]
    deliveries_topic: String,
    /// Prefix of every Redis key.
    #[arg(long, env = "IM_REDIS_PREFIX", default_value = "im:")]
    redis_prefix: String,
    /// Address to listen on.
    #[arg(long, env = "IM_LISTEN", default_value = "127.0.0.1:7001")]
    listen: SocketAddr,
    /// Directory for the embedded database and the generated JWT secret.
    #[arg(long, env = "IM_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// postgres://… to keep the event log and read models in Postgres.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Secret for signing tokens; generated and kept in the data dir when absent.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Token lifetime in seconds.
    #[arg(long, env = "IM_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    token_ttl_secs: i64,
    /// Base of the URLs handed to clients, e.g. `https://im.example.com` (default: the
    /// request's scheme and Host).
    #[arg(long, env = "IM_PUBLIC_URL")]
    public_url: Option<String>,
    /// The avatar of messages from the system (the visitor reminder, the kick notice).
    #[arg(long, env = "IM_SYSTEM_AVATAR", default_value = im_commands::accounts::DEFAULT_SYSTEM_AVATAR)]
    system_avatar: String,
    /// WebSocket heartbeat interval in milliseconds.
    #[arg(long, env = "IM_HEARTBEAT_MS", default_value_t = 30_000)]
    heartbeat_ms: u64,
    /// Seconds after sending during which a message may be revoked (0 = no limit).
    #[arg(long, env = "IM_REVOKE_WINDOW_SECS", default_value_t = 120)]
    revoke_window_secs: u64,
    /// The most members a group may have.
    #[arg(long, env = "IM_MAX_GROUP_SIZE", default_value_t = 500)]
    max_group_size: usize,
    /// Seconds after a refusal before the same friend request may be sent again.
    #[arg(long, env = "IM_FRIEND_RETRY_SECS", default_value_t = 24 * 3600)]
    friend_retry_secs: u64,
    /// Logins per minute per client IP and per username (0 = no limit).
    #[arg(long, env = "IM_RATE_LOGIN", default_value_t = 60)]
    rate_login: u32,
    /// Registrations per minute per client IP (0 = no limit).
    #[arg(long, env = "IM_RATE_REGISTER", default_value_t = 30)]
    rate_register: u32,
    /// Messages per minute per sender; per IP four times that (0 = no limit).
    #[arg(long, env = "IM_RATE_SEND", default_value_t = 300)]
    rate_send: u32,
    /// Other writes per minute per user: profile, friends, reports, groups (0 = no limit).
    #[arg(long, env = "IM_RATE_WRITE", default_value_t = 120)]
    rate_write: u32,
    /// Password changes and visitor upgrades per minute per user (0 = no limit).
    #[arg(long, env = "IM_RATE_PASSWORD", default_value_t = 10)]
    rate_password: u32,
    /// Threads that hash passwords (default: half the cores, at least one).
    #[arg(long, env = "IM_HASH_THREADS")]
    hash_threads: Option<usize>,
    /// Password hashes that may wait for a thread; more are refused as busy (429).
    #[arg(long, env = "IM_HASH_QUEUE", default_value_t = 256)]
    hash_queue: usize,
    /// Rate-limit counters one process keeps at most (hashed keys; oldest dropped first).
    #[arg(long, env = "IM_RATE_KEYS", default_value_t = im_adapters::ratelimit::DEFAULT_RATE_KEYS)]
    rate_keys: usize,
    /// The local upload store, served under /public (default <data-dir>/uploads).
    #[arg(long, env = "IM_UPLOAD_DIR")]
    upload_dir: Option<PathBuf>,
    /// Largest image or audio upload, in bytes.
    #[arg(long, env = "IM_UPLOAD_MAX_IMAGE", default_value_t = 10 << 20)]
    upload_max_image: usize,
    /// Largest video upload, in bytes.
    #[arg(long, env = "IM_UPLOAD_MAX_VIDEO", default_value_t = 100 << 20)]
    upload_max_video: usize,
    /// Uploads received at once; more are refused as busy (429).
    #[arg(long, env = "IM_UPLOAD_CONCURRENCY", default_value_t = 8)]
    upload_concurrency: usize,
    /// MiB one user may upload a day; per client IP four times that (0 = no quota).
    #[arg(long, env = "IM_UPLOAD_QUOTA_MB", default_value_t = 1024)]
    upload_quota_mb: u32,
    /// The ffmpeg binary used for video screenshots.
    #[arg(long, env = "IM_FFMPEG", default_value = "ffmpeg")]
    ffmpeg: String,
    /// Video screenshots taken at once; more are refused as busy (429).
    #[arg(long, env = "IM_FFMPEG_CONCURRENCY", default_value_t = 2)]
    ffmpeg_concurrency: usize,
    /// Seconds one ffmpeg run may take before it is killed.
    #[arg(long, env = "IM_FFMPEG_TIMEOUT_SECS", default_value_t = 20)]
    ffmpeg_timeout_secs: u64,
    /// S3-compatible endpoint for uploadAliyun (e.g. https://oss-cn-hangzhou.aliyuncs.com).
    #[arg(long, env = "IM_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "IM_S3_BUCKET", default_value = "im-uploads")]
    s3_bucket: String,
    #[arg(long, env = "IM_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    #[arg(long, env = "IM_S3_ACCESS_KEY", hide_env_values = true, default_value = "")]
    s3_access_key: String,
    #[arg(long, env = "IM_S3_SECRET_KEY", hide_env_values = true, default_value = "")]
    s3_secret_key: String,
    /// Base of the URLs handed out for stored objects (default <endpoint>/<bucket>).
    #[arg(long, env = "IM_S3_PUBLIC_URL")]
    s3_public_url: Option<String>,
    /// Frames queued per WebSocket; a socket whose queue fills up is closed as too slow.
    #[arg(long, env = "IM_WS_QUEUE", default_value_t = 1024)]
    ws_queue: usize,
    /// Bytes queued per WebSocket at most (the same rule as --ws-queue).
    #[arg(long, env = "IM_WS_QUEUE_BYTES", default_value_t = 1 << 20)]
    ws_queue_bytes: usize,
    /// How long a WebSocket write may block before the socket is closed (ms).
    #[arg(long, env = "IM_WS_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    ws_write_timeout_ms: u64,
    /// `send` frames one socket may have waiting for the log at once.
    #[arg(long, env = "IM_WS_IN_FLIGHT", default_value_t = 64)]
    ws_in_flight: usize,
    /// Users whose rows the message path keeps in memory.
    #[arg(long, env = "IM_CACHE_USERS", default_value_t = 100_000)]
    cache_users: usize,
    /// Friendship sides the message path keeps in memory.
    #[arg(long, env = "IM_CACHE_SIDES", default_value_t = 400_000)]
    cache_sides: usize,
}

impl From<ServeArgs> for Settings {
    fn from(a: ServeArgs) -> Self {
        let defaults = Settings::with_data_dir(&a.data_dir);
        let upload_dir = a.upload_dir.clone().unwrap_or_else(|| a.data_dir.join("uploads"));
        Settings {
            role: a.role,
            kafka_brokers: a.kafka_brokers.filter(|b| !b.is_empty()),
            redis_url: a.redis_url.filter(|u| !u.is_empty()),
            node_id: a.node_id.filter(|n| !n.is_empty()).unwrap_or(defaults.node_id),
            delivery_partitions: a.delivery_partitions.max(1),
            events_topic: a.events_topic,
            deliveries_topic: a.deliveries_topic,
            redis_prefix: a.redis_prefix,
            listen: a.listen,
            data_dir: a.data_dir,
            database_url: a.database_url.filter(|u| !u.is_empty()),
            jwt_secret: a.jwt_secret.filter(|s| !s.is_empty()),
            token_ttl_secs: a.token_ttl_secs,
            public_url: a.public_url.filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_owned()),
            system_avatar: a.system_avatar,
            heartbeat: Duration::from_millis(a.heartbeat_ms.max(10)),
            revoke_window: Duration::from_secs(a.revoke_window_secs),
            max_group_size: a.max_group_size.max(2),
            friend_retry: Duration::from_secs(a.friend_retry_secs),
            limits: im_gateway::settings::Limits {
                login: a.rate_login,
                register: a.rate_register,
                send: a.rate_send,
                write: a.rate_write,
                password: a.rate_password,
                keys: a.rate_keys.max(1),
            },
            hashing: im_commands::auth::HashingLimits {
                threads: a.hash_threads.filter(|&n| n > 0).unwrap_or(defaults.hashing.threads),
                queue: a.hash_queue,
            },
            sockets: im_gateway::ws::SocketLimits {
                queue: a.ws_queue.max(4),
                queue_bytes: a.ws_queue_bytes.max(im_gateway::ws::MAX_FRAME),
                write_timeout: Duration::from_millis(a.ws_write_timeout_ms.max(10)),
                in_flight: a.ws_in_flight.max(1),
            },
            directory: im_projections::directory::Capacity { users: a.cache_users.max(1), sides: a.cache_sides.max(1) },
            files: im_gateway::settings::FileSettings {
                upload_dir,
                max_image_bytes: a.upload_max_image,
                max_video_bytes: a.upload_max_video,
                incoming_dir: defaults.files.incoming_dir.clone(),
                max_concurrent: a.upload_concurrency.max(1),
                quota_mib_per_day: a.upload_quota_mb,
                ffmpeg: a.ffmpeg,
                ffmpeg_concurrent: a.ffmpeg_concurrency.max(1),
                ffmpeg_timeout: Duration::from_secs(a.ffmpeg_timeout_secs.max(1)),
                s3: a.s3_endpoint.filter(|e| !e.is_empty()).map(|endpoint| im_adapters::objects::S3Settings {
                    endpoint,
                    bucket: a.s3_bucket,
                    region: a.s3_region,
                    access_key: a.s3_access_key,
                    secret_key: a.s3_secret_key,
                    public_url: a.s3_public_url.filter(|u| !u.is_empty()),
                }),
            },
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve((*args).into()).await,
        Command::Bench(args) => bench(args).await,
        Command::BenchRelay => bench_relay().await,
        Command::Migrate(args) => migrate(args).await,
        Command::Events(args) => events(args).await,
        Command::Rebuild(args) => rebuild(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Admin(AdminCommand::Create { store, username }) => admin_create(store, username).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<im_gateway::tools::Usage>().is_some() => {
            eprintln!("im: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("im: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    use im_gateway::bench::{Target, Workload};
    let workload = if let Some(members) = args.group_size {
        Workload::Group { members: members.max(2), messages: args.messages.max(1) }
    } else if let Some(sockets) = args.idle {
        Workload::Idle { sockets: sockets.max(1) }
    } else if args.http {
        Workload::Http { messages: args.messages.max(1) }
    } else {
        Workload::Pairs { pairs: args.pairs.max(1), messages: args.messages.max(1), in_flight: args.in_flight.max(1) }
    };
    let target = if args.ceiling {
        Target::Ceiling
    } else if !args.target.is_empty() {
        Target::External(args.target.iter().map(|t| t.trim_end_matches('/').to_owned()).collect())
    } else {
        Target::InProcess {
            database_url: args.database_url.filter(|u| !u.is_empty()),
            kafka_brokers: args.kafka_brokers.filter(|u| !u.is_empty()),
            redis_url: args.redis_url.filter(|u| !u.is_empty()),
        }
    };
    let report = im_gateway::bench::run(workload, target).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    Ok(())
}

async fn bench_relay() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    #[allow(clippy::print_stdout)]
    {
        println!("LISTEN={}", listener.local_addr()?);
    }
    im_gateway::bench::relay::serve(listener).await
}

async fn migrate(args: StoreArgs) -> anyhow::Result<()> {
    let (backend, head) = im_gateway::tools::migrate(&args.settings()).await?;
    eprintln!("im: {backend} schema is up to date (log head {head})");
    Ok(())
}

async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    im_gateway::tools::events(&args.store.settings(), args.from, args.follow, &mut out).await?;
    Ok(())
}

/// A one-line progress bar on stderr.
fn progress_bar(label: &str, at: i64, head: i64) {
    use std::io::Write;
    let width = 30;
    let done = if head > 0 { (at * width / head).clamp(0, width) } else { width };
    let bar: String = "#".repeat(done as usize) + &"-".repeat((width - done) as usize);
    let mut err = std::io::stderr();
    let _ = write!(err, "\r{label:<10} [{bar}] {at}/{head}");
    if at >= head {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let done =
        im_gateway::tools::rebuild(&args.store.settings(), &args.projections, &mut |name, at, head| progress_bar(name, at, head)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let names: Vec<&str> = done.iter().map(|(name, _)| *name).collect();
    let position = done.first().map_or(0, |(_, position)| *position);
    eprintln!(
        "im: rebuilt {} up to log position {position} in {seconds:.2} s ({:.0} positions/s)",
        names.join(", "),
        position as f64 / seconds.max(1e-9)
    );
    Ok(())
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let mut settings = args.store.settings();
    settings.kafka_brokers = args.kafka_brokers.filter(|b| !b.is_empty());
    settings.events_topic = args.events_topic;
    let count = im_gateway::tools::replay(&settings, args.from, &mut |at, head| progress_bar("replay", at, head)).await?;
    eprintln!("im: published {count} events");
    Ok(())
}

async fn admin_create(store: StoreArgs, username: String) -> anyhow::Result<()> {
    let password = match std::env::var("IM_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        return Err(im_gateway::tools::Usage("no password: set IM_ADMIN_PASSWORD or pipe it on standard input".into()).into());
    }
    let (store, _) = im_gateway::app::open_stores(&store.settings()).await?;
    match im_commands::admin::Admins::new(store).create(&username, &password).await {
        Ok(()) => {
            eprintln!("im: operator {username} created");
            Ok(())
        }
        Err(e @ (im_commands::CommandError::UsernameTaken | im_commands::CommandError::Invalid(_))) => {
            Err(im_gateway::tools::Usage(format!("cannot create {username}: {e}")).into())
        }
        Err(e) => Err(e.into()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

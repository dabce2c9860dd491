//! `im`: the chat backend's one binary.

use clap::{Parser, Subcommand};

mod memory;
mod priority;

use im_gateway::Application;
use im_gateway::config::{AllFlags, ConfigArgs, RebuildFlags, ReplayFlags, StoreFlags};
use std::io::IsTerminal;
use std::process::ExitCode;

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
    Bench(im_gateway::bench::BenchArgs),
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
    /// Back the embedded store up while it runs: the log, the token secret, the uploads.
    Backup(BackupArgs),
    /// Restore a backup into an empty data dir (read models are rebuilt on start).
    Restore(RestoreArgs),
    /// Admin console accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Move the embedded store elsewhere.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy the embedded deployment (stopped) to Postgres: the log in order, checked by
    /// count and checksum, the read models rebuilt there, the token secret and uploads
    /// into a new data dir.
    Copy {
        #[command(flatten)]
        store: StoreArgs,
        /// The Postgres database to copy into (its event log must be empty).
        #[arg(long)]
        to: String,
        /// The data dir of the server that will run on Postgres (token secret, uploads).
        #[arg(long)]
        to_data_dir: std::path::PathBuf,
    },
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

/// Where the log is: `--data-dir`, `--database-url` and `--config` (the same settings,
/// environment and config file as `im serve`).
type StoreArgs = ConfigArgs<StoreFlags>;

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
    store: ConfigArgs<RebuildFlags>,
    /// Projections to rebuild (users, friends, inbox, askanswer); all when none is named.
    projections: Vec<String>,
}

#[derive(clap::Args)]
struct BackupArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// A new (or empty) directory to write the backup into.
    #[arg(long)]
    to: std::path::PathBuf,
}

#[derive(clap::Args)]
struct RestoreArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The directory `im backup` wrote.
    #[arg(long)]
    from: std::path::PathBuf,
}

#[derive(clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    store: ConfigArgs<ReplayFlags>,
    /// First position to publish.
    #[arg(long)]
    from: i64,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs<AllFlags>,
    /// Print the effective settings (secrets masked) as an im.toml would hold them, and exit.
    #[arg(long)]
    print_config: bool,
}

/// `IM_LOG_FORMAT`: `text` (the default) or `json` (one object per line, for log
/// shippers). Colours only when stdout is a terminal.
fn init_logs() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match std::env::var("IM_LOG_FORMAT").as_deref() {
        Err(_) | Ok("" | "text") => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        Ok("json") => logs.json().with_ansi(false).init(),
        Ok(other) => return Err(format!("IM_LOG_FORMAT: must be text or json, not {other:?}")),
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = init_logs() {
        eprintln!("im: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if matches!(cli.command, Command::Rebuild(_)) {
        runtime.on_thread_start(priority::working_ahead);
    }
    match runtime.build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("im: starting the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Bench(args) => bench(args).await,
        Command::BenchRelay => bench_relay().await,
        Command::Migrate(args) => migrate(args).await,
        Command::Events(args) => events(args).await,
        Command::Rebuild(args) => rebuild(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Backup(args) => backup(args).await,
        Command::Restore(args) => restore(args).await,
        Command::Store(StoreCommand::Copy { store, to, to_data_dir }) => store_copy(store, to, to_data_dir).await,
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let resolved = args.config.resolve().map_err(|e| im_gateway::tools::Usage(e.to_string()))?;
    if args.print_config {
        #[allow(clippy::print_stdout)]
        {
            print!("{}", resolved.print());
        }
        return Ok(());
    }
    let app = Application::build(resolved.settings).await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

async fn bench(args: im_gateway::bench::BenchArgs) -> anyhow::Result<()> {
    let (workload, target) = args.workload_and_target();
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
    let (backend, head) = im_gateway::tools::migrate(&store_settings(&args)?).await?;
    eprintln!("im: {backend} schema is up to date (log head {head})");
    Ok(())
}

async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    im_gateway::tools::events(&store_settings(&args.store)?, args.from, args.follow, &mut out).await?;
    Ok(())
}

/// A rebuild's progress on stderr: a bar redrawn in place on a terminal; elsewhere (a
/// file, a pipe, a journal) a plain line at each tenth and at the end, never a redraw.
struct Progress {
    terminal: bool,
    /// Per label: the last tenth written as a line.
    written: std::collections::HashMap<String, i64>,
}

impl Progress {
    fn new() -> Self {
        Self { terminal: std::io::stderr().is_terminal(), written: Default::default() }
    }

    fn show(&mut self, label: &str, at: i64, head: i64) {
        use std::io::Write;
        let mut err = std::io::stderr();
        if !self.terminal {
            let tenth = if head > 0 { (at * 10 / head).clamp(0, 10) } else { 10 };
            if self.written.get(label) != Some(&tenth) {
                self.written.insert(label.to_owned(), tenth);
                let _ = writeln!(err, "{label:<10} {at}/{head}");
            }
            return;
        }
        let width = 30;
        let done = if head > 0 { (at * width / head).clamp(0, width) } else { width };
        let bar: String = "#".repeat(done as usize) + &"-".repeat((width - done) as usize);
        let _ = write!(err, "\r{label:<10} [{bar}] {at}/{head}");
        if at >= head {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    memory::for_rebuild();
    let started = std::time::Instant::now();
    let mut progress = Progress::new();
    let done =
        im_gateway::tools::rebuild(&store_settings(&args.store)?, &args.projections, &mut |name, at, head| progress.show(name, at, head))
            .await?;
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
    let settings = store_settings(&args.store)?;
    let mut progress = Progress::new();
    let count = im_gateway::tools::replay(&settings, args.from, &mut |at, head| progress.show("replay", at, head)).await?;
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
    let (store, _) = im_gateway::app::open_stores(&store_settings(&store)?).await?;
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

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let m = im_gateway::backup::backup(&store_settings(&args.store)?, &args.to).await?;
    eprintln!(
        "im: backed up {} events (log head {}), {} upload files{} into {}",
        m.events,
        m.log_head,
        m.uploads,
        if m.secret { ", the token secret" } else { "" },
        args.to.display()
    );
    Ok(())
}

async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let settings = store_settings(&args.store)?;
    let m = im_gateway::backup::restore(&settings, &args.from).await?;
    eprintln!(
        "im: restored {} events (log head {}) and {} upload files into {}; read models are rebuilt when the server starts",
        m.events,
        m.log_head,
        m.uploads,
        settings.data_dir.display()
    );
    Ok(())
}

async fn store_copy(store: StoreArgs, to: String, to_data_dir: std::path::PathBuf) -> anyhow::Result<()> {
    let settings = store_settings(&store)?;
    let mut progress = Progress::new();
    let c =
        im_gateway::store_copy::copy_to_postgres(&settings, &to, &to_data_dir, &mut |stage, at, of| progress.show(stage, at, of)).await?;
    eprintln!(
        "im: copied {} events (log head {}, sha256 {}) to Postgres, rebuilt the read models there, moved {} upload files{} into {}",
        c.events,
        c.head,
        c.checksum,
        c.uploads,
        if c.secret { " and the token secret" } else { "" },
        to_data_dir.display()
    );
    Ok(())
}

/// A tool's settings; one that cannot be read is a usage error (exit 2).
fn store_settings<F: im_gateway::config::Flags>(args: &ConfigArgs<F>) -> anyhow::Result<im_gateway::Settings> {
    Ok(args.settings().map_err(|e| im_gateway::tools::Usage(e.to_string()))?)
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

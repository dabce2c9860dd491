//! `im bench`'s flags, turned into a workload and a target.

use super::setup::{Keys, Target, Workload};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Servers started separately (`http://127.0.0.1:7001`; several, comma-separated,
    /// for gateways of one deployment). Without it a server is built in this process.
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// Measure the bare in-memory WebSocket relay instead (the machine's ceiling).
    #[arg(long, conflicts_with = "target")]
    pub ceiling: bool,
    /// Connected sender/receiver pairs.
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    /// Messages each sender sends (group: messages the owner sends; http: sends).
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Messages each sender keeps in flight (unacknowledged).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// The `client_msg_id` each message carries (pairs).
    #[arg(long, value_enum, default_value_t = Keys::Time)]
    pub keys: Keys,
    /// Group fan-out instead: one group of this many members, all connected.
    #[arg(long)]
    pub group_size: Option<usize>,
    /// Idle sockets instead: open this many authenticated sockets, report memory each.
    #[arg(long)]
    pub idle: Option<usize>,
    /// One client sending over HTTP, one message after another.
    #[arg(long)]
    pub http: bool,
    /// In-process server only: postgres://… (default: embedded SQLite in a temp dir).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// In-process server only: Kafka bootstrap servers (the distributed adapters).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// In-process server only: Redis for presence and sessions.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
}

impl BenchArgs {
    /// The workload the flags describe and the target they name.
    pub fn workload_and_target(self) -> (Workload, Target) {
        let args = self;
        let workload = if let Some(members) = args.group_size {
            Workload::Group { members: members.max(2), messages: args.messages.max(1) }
        } else if let Some(sockets) = args.idle {
            Workload::Idle { sockets: sockets.max(1) }
        } else if args.http {
            Workload::Http { messages: args.messages.max(1) }
        } else {
            Workload::Pairs { pairs: args.pairs.max(1), messages: args.messages.max(1), in_flight: args.in_flight.max(1), keys: args.keys }
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
        (workload, target)
    }
}

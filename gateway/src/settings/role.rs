//! What one `im serve` process does.

/// What a process does. `all` is the single-process server; the others split it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Gateway, projector and relay in one process.
    All,
    /// HTTP API and WebSocket: commands, queries, sockets, deliveries from Kafka.
    Gateway,
    /// The projections (read models, inboxes) and the delivery producer.
    Projector,
    /// Publishes the event log to Kafka.
    Relay,
    /// Pushes to offline devices: consumes every delivery partition.
    Pusher,
}

impl Role {
    pub fn serves_clients(self) -> bool {
        matches!(self, Role::All | Role::Gateway)
    }

    pub fn runs_projections(self) -> bool {
        matches!(self, Role::All | Role::Projector)
    }

    /// Produces to or consumes from the delivery topic (when Kafka is configured).
    pub fn uses_deliveries(self) -> bool {
        self.serves_clients() || self.runs_projections() || self.runs_pusher()
    }

    /// Hands messages for users without a live socket to push providers (when one is
    /// configured).
    pub fn runs_pusher(self) -> bool {
        matches!(self, Role::All | Role::Pusher)
    }

    pub fn runs_relay(self) -> bool {
        matches!(self, Role::All | Role::Relay)
    }

    /// The role's name, as `--role` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Gateway => "gateway",
            Role::Projector => "projector",
            Role::Relay => "relay",
            Role::Pusher => "pusher",
        }
    }

    /// The role named `name`.
    pub fn named(name: &str) -> Result<Self, String> {
        [Role::All, Role::Gateway, Role::Projector, Role::Relay, Role::Pusher]
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| "one of all, gateway, projector, relay, pusher".to_owned())
    }
}

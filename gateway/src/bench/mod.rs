//! `im bench`: load on a server over loopback, measured from the client side, with the
//! server's own CPU time and resident memory read from its `/metrics` before and after.
//!
//! Targets: servers started separately (`--target http://…`, several for a
//! distributed deployment: each pair's sender and receiver then sit on different
//! gateways), the bare relay of [`relay`] (`--ceiling`: the same clients against a
//! server that stores and checks nothing, to tell what the machine allows), or a server
//! built in this process (the default, handy but sharing the CPU with the clients).
//!
//! Workloads: sender/receiver pairs over WebSocket with a number of messages in flight
//! per sender; a group fan-out (one group, every member connected, time until the last
//! member has each message); idle authenticated sockets (memory per socket); one client
//! sending over HTTP one message after another.

mod args;
pub mod client;
pub mod relay;
mod report;
mod setup;
mod workloads;

pub use args::BenchArgs;
pub use report::Report;
pub use setup::{Target, Workload};

use client::Http;
use setup::Running;
use workloads::{group_run, http_run, idle_run, pairs_run};

/// Runs one workload on one target.
pub async fn run(workload: Workload, target: Target) -> anyhow::Result<Report> {
    let running = Running::start(&target, &workload).await?;
    let http = Http::new()?;
    let outcome = match &workload {
        Workload::Pairs { pairs, messages, in_flight, keys } => {
            pairs_run(&running, &http, *pairs, *messages, (*in_flight).max(1), *keys).await
        }
        Workload::Group { members, messages } => group_run(&running, &http, *members, *messages).await,
        Workload::Idle { sockets } => idle_run(&running, &http, *sockets).await,
        Workload::Http { messages } => http_run(&running, &http, *messages).await,
    };
    let label = running.label.clone();
    running.stop();
    let mut report = outcome?;
    report.target = label;
    report.latencies.sort();
    Ok(report)
}

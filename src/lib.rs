//! rtchat: a real-time chat backend on hyper and PostgreSQL.
//!
//! Data flows one way: request → `router` → a handler in `http` → one database transaction
//! (`store`) that also appends to the event log → `delivery` commits it and hands its events
//! to the WebSocket sessions (`ws`) here and, by a hint, in the other processes. Message
//! sends take that path in batches: the handler queues them for `delivery`, whose writer
//! commits a batch in one statement and hands its events on.

pub mod auth;
pub mod config;
pub mod conn;
pub mod db;
pub mod delivery;
pub mod error;
pub mod events;
pub mod gate;
pub mod http;
pub mod identity;
pub mod leases;
pub mod limits;
pub mod lru;
pub mod metrics;
pub mod model;
pub mod revocation;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
pub mod ws;

/// Logs to stdout, one line per event, filtered by `filter` (`RTCHAT_LOG`).
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("can install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

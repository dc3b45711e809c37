//! rtchat: a real-time chat backend on hyper and PostgreSQL.
//!
//! Data flows one way: request → `router` → a handler in `http` → one database transaction
//! (`store`) that also appends to the event log → `delivery` commits it and hands its events
//! to the WebSocket sessions (`ws`) here and, by a hint, in the other processes. Message
//! sends take that path in batches: the handler queues them for `delivery`, whose writer
//! commits a batch in one statement and hands its events on.

mod auth;
pub mod cli;
pub mod config;
mod conn;
mod db;
mod delivery;
mod error;
mod gate;
mod http;
mod identity;
mod leases;
mod limits;
mod logging;
mod lru;
mod metrics;
mod model;
mod revocation;
mod router;
mod server;
mod state;
mod store;
mod ws;

pub use auth::load_or_create_secret;
pub use db::embedded::EmbeddedPostgres;
pub use logging::{check_log_filter, init_logging, init_logging_as, LogFormat};
pub use server::run;

/// Internals that the integration tests and the load generator reach into (signing tokens,
/// direct database set-up, parsers under fuzzing): not an API, and only built with the
/// `test-support` feature, which `tests/` and `bench/` turn on.
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod testing {
    pub use crate::auth::{prune_sessions, unix_now, Auth};
    pub use crate::db::pool;
    pub use crate::error::ApiError;
    pub use crate::http::auth::normalize_email;
    pub use crate::http::docs::OPENAPI_YAML;
    pub use crate::http::{parse_json, parse_query, request_token};
    pub use crate::leases::LEASE_TTL_RENEWALS;
    pub use crate::revocation::Revoked;
    pub use crate::router::ROUTES;
    pub use crate::store::events::prune as prune_events;
    pub use crate::store::schema::{apply_schema, schema_version};
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

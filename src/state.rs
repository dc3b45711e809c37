//! `AppState`: what every request and session shares, built once in `server::run`. Fields
//! only: the behaviour is in the components it holds.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::limits::Limits;
use crate::logging::RequestIds;
use crate::metrics::Metrics;
use crate::revocation::Revoked;

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
    pub auth: Auth,
    /// Commits' events to the sockets, here and in the other processes; message sends.
    pub delivery: Arc<Delivery>,
    /// Rate limiters.
    pub limits: Limits,
    /// Revoked login sessions whose tokens may still be presented (kept current by
    /// `delivery`'s listener).
    pub revoked: Arc<Revoked>,
    pub metrics: Metrics,
    /// Cancelled when the server shuts down: sessions close with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket session task, so shutdown can wait for their close frames (hyper's
    /// graceful shutdown forgets a connection once it is upgraded).
    pub sessions: TaskTracker,
    /// Ids for requests that bring no usable `X-Request-Id`.
    pub request_ids: RequestIds,
}

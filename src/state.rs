//! `AppState`: what every request and session shares, built once in `server::run`.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::Config;
use crate::error::ApiError;
use crate::events::Outbox;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::revocation::Revoked;
use crate::sends::SendQueue;

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
    pub auth: Auth,
    pub hub: Arc<Hub>,
    /// Message sends waiting for their batch (group commit).
    pub sends: SendQueue,
    /// Hints for the other processes sharing the database.
    pub notifier: Notifier,
    /// Rate limiters.
    pub limits: Limits,
    /// Revoked login sessions whose tokens may still be presented.
    pub revoked: Revoked,
    /// Whether the LISTEN connection is up (part of readiness: without it, events from
    /// other processes arrive only by the sweep).
    pub listening: std::sync::atomic::AtomicBool,
    pub metrics: Metrics,
    /// Cancelled when the server shuts down: sessions close with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket session task, so shutdown can wait for their close frames (hyper's
    /// graceful shutdown forgets a connection once it is upgraded).
    pub sessions: TaskTracker,
}

impl AppState {
    /// A pooled connection, or 503.
    pub async fn db(&self) -> Result<deadpool_postgres::Object, ApiError> {
        Ok(self.pool.get().await?)
    }

    /// Ends login sessions everywhere: their tokens stop working in this process at once and
    /// in the others as soon as the hint arrives (or the next sweep), and their sockets close
    /// with 4001.
    pub fn revoke_sessions(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        self.revoked.insert(ids);
        self.hub.close_sessions(ids);
        self.notifier.revoked(ids);
    }

    /// Writes the transaction's events to the log, commits, then hands the events to the
    /// sockets. The one way a write that emits events ends.
    pub async fn commit(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        mut outbox: Outbox,
    ) -> Result<(), ApiError> {
        outbox.write(&tx).await?;
        tx.commit().await?;
        self.publish(outbox);
        Ok(())
    }

    /// Hands committed events to this process's sockets and hints the other processes.
    /// Call only after the commit.
    pub fn publish(&self, outbox: Outbox) {
        if !outbox.events.is_empty() {
            self.hub.publish(&outbox);
            self.notifier.events(
                outbox
                    .events
                    .iter()
                    .flat_map(|e| e.deliveries.iter().copied()),
            );
        }
    }
}

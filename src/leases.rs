//! Process leases: each rtchat process holds a row in `process_leases` that it renews every
//! `RTCHAT_LEASE_RENEW_SECS` and that lapses after `LEASE_TTL_RENEWALS` missed renewals, so
//! every process knows how many live processes share the database. The rate limits divide
//! their budgets by that number (src/limits.rs); presence hangs each process's rows off its
//! lease (src/delivery/presence.rs), which is why the process id comes from delivery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::store::{self, StoreResult};

/// A lease lapses after this many renewal intervals without a renewal: one slow or failed
/// renewal (a busy database, a pool briefly empty) must not make the others believe this
/// process is gone and raise their share of the limits.
pub const LEASE_TTL_RENEWALS: u32 = 3;

/// How many rtchat processes hold a live lease, this one included; 1 until the first renewal
/// has counted (a lone process is the safe assumption only for availability, and it lasts
/// one round trip). Cloned handles share the number.
#[derive(Clone, Debug)]
pub struct LiveProcesses(Arc<AtomicUsize>);

impl Default for LiveProcesses {
    fn default() -> Self {
        LiveProcesses(Arc::new(AtomicUsize::new(1)))
    }
}

impl LiveProcesses {
    /// The live processes, at least 1.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed).max(1)
    }

    pub fn set(&self, n: usize) {
        self.0.store(n.max(1), Ordering::Relaxed);
    }
}

/// Holds this process's lease, renewed every `renew`, until `shutdown`, then gives it up;
/// keeps `live` at the number of live processes. Spawned once by `server::run` on the
/// session tracker, so that shutdown waits for the lease to be deleted.
/// `process_id` is also this process's in `presence_sockets` (delivery picks it).
pub async fn run(
    pool: Pool,
    process_id: i64,
    renew: Duration,
    live: LiveProcesses,
    shutdown: CancellationToken,
) {
    let ttl = renew * LEASE_TTL_RENEWALS;
    let mut tick = tokio::time::interval(renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match renew_lease(&pool, process_id, ttl).await {
            Ok(others) => live.set(1 + others),
            // The last count stays: better slightly stale than a wrong guess.
            Err(e) => tracing::warn!(error = ?e, "renewing the process lease failed"),
        }
    }
    // Deleted at once, so the others take back this process's share now, not after the TTL.
    let released: StoreResult<()> = async {
        let client = pool.get().await?;
        store::leases::delete(&client, process_id).await
    }
    .await;
    if let Err(e) = released {
        tracing::warn!(error = ?e, "releasing the process lease failed; it lapses by itself");
    }
}

/// Renews this process's lease, forgets lapsed ones, and counts the other live ones.
async fn renew_lease(pool: &Pool, process_id: i64, ttl: Duration) -> StoreResult<usize> {
    let client = pool.get().await?;
    store::leases::renew(&client, process_id, ttl).await
}

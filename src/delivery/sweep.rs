//! The safety net for a lost hint: every `RTCHAT_SWEEP_SECS` one query compares the
//! connected users' `last_seq` with what their sessions delivered, and revocations whose
//! hint was lost are read again.

use std::sync::Arc;

use super::Delivery;
use crate::store::events as log;

/// Every `RTCHAT_SWEEP_SECS`, wakes local sessions that are still behind where the log
/// stood at the previous sweep. Comparing with the previous reading, not the current one,
/// leaves alone the events that are merely in flight: under load, waking every socket that
/// is a few milliseconds behind made them all re-read the log at once (a latency spike every
/// interval); a socket that has not caught up with a seq one interval old did miss its push.
pub(super) async fn run(state: Arc<Delivery>) {
    let mut tick = tokio::time::interval(state.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Vec<(i64, i64)> = Vec::new();
    loop {
        tick.tick().await;
        // Revocations whose hint was lost.
        if let Ok(client) = state.pool.get().await {
            if let Ok(new) = state.revoked.load(&client).await {
                state.hub.close_sessions(&new);
            }
        }
        let missing = state.hub.wake_behind(&previous);
        state.metrics.sweep_missing(missing);
        let users = state.hub.connected_users();
        if users.is_empty() {
            previous.clear();
            continue;
        }
        let result = async {
            let client = state.pool.get().await?;
            log::last_seqs(&client, &users).await
        }
        .await;
        match result {
            Ok(seqs) => previous = seqs,
            Err(e) => tracing::debug!(error = ?e, "sweep skipped"),
        }
    }
}

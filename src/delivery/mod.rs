//! Delivery: everything between a commit and the sockets. Its API is narrow: commit or
//! publish what a transaction wrote, subscribe a socket, read a user's log since a seq, send
//! a message through the group commit, revoke login sessions, forward typing. Behind it:
//!
//! - `hub`: this process's sockets by user, and handing them events (`frame` builds them);
//! - `notifier`: coalesced hints to the other processes (`hints` is their wire form);
//! - `listener`: the LISTEN connection, waking local sockets for the other processes' events;
//! - `sweep`: the safety net for a lost hint;
//! - `presence`: who is online over all processes, and telling their chat partners;
//! - `writers`: the send writers (group commit of `POST /chats/{id}/messages`).
//!
//! It owns its background tasks and supervises them (`supervise`): a task that ends while the
//! server runs is restarted, and one that keeps failing takes the process out of readiness
//! and stops it (see `supervise` for why each task is treated so).

mod frame;
mod hints;
mod hub;
mod listener;
mod notifier;
mod presence;
mod queue;
mod supervise;
mod sweep;
mod writers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Faults};
use crate::metrics::{DeliveryMetrics, FrameType, Stamp};
use crate::revocation::Revoked;
use crate::store::events::{self as log, Outbox, Stored};
use crate::store::StoreResult;

pub use crate::store::sends::{NewMessage, Sent};
use frame::typing_frame;
use hub::Hub;
pub use queue::{CapReached, Push, QueueBounds, Subscription};
pub use writers::SendError;

use notifier::Notifier;
use writers::SendQueue;

/// The delivery component: one per process, shared by the handlers and its own tasks.
pub struct Delivery {
    pool: Pool,
    hub: Arc<Hub>,
    notifier: Notifier,
    sends: SendQueue,
    revoked: Arc<Revoked>,
    /// Whether the LISTEN connection is up (part of readiness: without it, events from
    /// other processes arrive only by the sweep).
    listening: AtomicBool,
    /// Set when a task failed for good: readiness fails with it and the server stops.
    failed: OnceLock<String>,
    /// Cancelled with `failed`: `server::run` stops on it.
    fatal: CancellationToken,
    /// Cancelled at shutdown: the notifier, listener and sweep stop (and are not restarted).
    stop_background: CancellationToken,
    /// Cancelled once the HTTP requests drained: the send writers stop.
    stop_writers: CancellationToken,
    /// Task restarts by task (`rtchat_task_restarts_total`).
    restarts: prometheus::IntCounterVec,
    /// Batches, sweep findings, listener reconnects (the sockets count their own).
    metrics: Arc<DeliveryMetrics>,
    sweep_interval: Duration,
    /// This process's presence rows and its view of everyone's presence.
    presence: presence::Presence,
    database_url: String,
    faults: Faults,
}

impl Delivery {
    /// The component, its tasks not started yet (`start`). `revoked` is shared with the
    /// token checks: the listener keeps it current. `restarts` counts task restarts.
    pub fn new(
        config: &Config,
        pool: Pool,
        revoked: Arc<Revoked>,
        restarts: prometheus::IntCounterVec,
        metrics: Arc<DeliveryMetrics>,
    ) -> Arc<Delivery> {
        Arc::new(Delivery {
            pool,
            hub: Arc::new(Hub::default()),
            notifier: Notifier::new(rand::random()),
            sends: SendQueue::new(config.send_writers),
            revoked,
            listening: AtomicBool::new(false),
            failed: OnceLock::new(),
            fatal: CancellationToken::new(),
            stop_background: CancellationToken::new(),
            stop_writers: CancellationToken::new(),
            restarts,
            metrics,
            sweep_interval: config.sweep_interval,
            // Random, so processes need no coordination to pick one; 63 bits make a clash
            // negligible. Also this process's lease (`leases::run`).
            presence: presence::Presence::new(
                (rand::random::<u64>() >> 1) as i64,
                config.presence_grace,
                config.lease_renew,
            ),
            database_url: config
                .database_url
                .as_ref()
                .map(|u| u.expose().to_string())
                .unwrap_or_default(),
            faults: config.faults.clone(),
        })
    }

    /// Starts the supervised tasks: notifier, listener, sweep and the send writers.
    pub fn start(self: &Arc<Self>) {
        let d = self.clone();
        self.supervise("notifier", &self.stop_background, move || {
            notifier::run(d.clone())
        });
        let d = self.clone();
        self.supervise("listener", &self.stop_background, move || {
            listener::run(d.clone())
        });
        let d = self.clone();
        self.supervise("sweep", &self.stop_background, move || {
            sweep::run(d.clone())
        });
        let d = self.clone();
        self.supervise("presence", &self.stop_background, move || {
            presence::run(d.clone())
        });
        for queue in self.sends.receivers() {
            let d = self.clone();
            self.supervise("send_writer", &self.stop_writers, move || {
                writers::run(d.clone(), queue.clone())
            });
        }
    }

    /// Stops the notifier, listener and sweep (shutdown begins).
    pub fn stop_background(&self) {
        self.stop_background.cancel();
    }

    /// Stops the send writers: only after the HTTP requests drained, since a handler waiting
    /// for its batch answers 503 once they are gone (and so does any send after this).
    pub async fn stop_writers(&self) {
        self.stop_writers.cancel();
        self.sends.close().await;
    }

    /// Completes when a task failed for good (the server then stops).
    pub async fn failed(&self) -> String {
        self.fatal.cancelled().await;
        self.failed.get().cloned().unwrap_or_default()
    }

    /// Whether this process can deliver: `Err` with the reason if not.
    pub fn ready(&self) -> Result<(), String> {
        if let Some(why) = self.failed.get() {
            return Err(why.clone());
        }
        if !self.listening.load(Ordering::Relaxed) {
            return Err("not yet listening for other processes' events".into());
        }
        Ok(())
    }

    /// Writes the transaction's events to the log, commits, then hands the events to the
    /// sockets. The one way a write that emits events ends.
    pub async fn commit(&self, tx: Transaction<'_>, mut outbox: Outbox) -> StoreResult<()> {
        outbox.write(&tx).await?;
        tx.commit().await?;
        self.publish(outbox, Stamp::now());
        Ok(())
    }

    /// Hands committed events to this process's sockets and hints the other processes.
    /// Call only after the commit; `committed` is when it happened.
    fn publish(&self, outbox: Outbox, committed: Stamp) {
        if !outbox.events.is_empty() {
            self.hub.publish(&outbox, committed);
            self.notifier.events(
                outbox
                    .events
                    .iter()
                    .flat_map(|e| e.deliveries.iter().copied()),
            );
        }
    }

    /// Queues a message send for its batch and waits until the batch committed.
    pub async fn send(&self, message: NewMessage) -> Result<Sent, SendError> {
        self.sends.send(message, &self.stop_writers).await
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

    /// Registers a socket (see `Hub::try_subscribe`).
    pub fn subscribe(
        &self,
        user_id: i64,
        session_id: i64,
        bounds: QueueBounds,
        max_sockets: usize,
        max_per_user: usize,
    ) -> Result<Subscription, CapReached> {
        self.hub
            .try_subscribe(user_id, session_id, bounds, max_sockets, max_per_user)
    }

    /// Open sockets in this process.
    pub fn socket_count(&self) -> usize {
        self.hub.socket_count()
    }

    /// This process's id in `process_leases` and `presence_sockets`.
    pub fn process_id(&self) -> i64 {
        self.presence.process_id
    }

    /// Presence frames queued to this process's sockets so far.
    pub fn presence_frames(&self) -> u64 {
        self.presence.frames.load(Ordering::Relaxed)
    }

    /// Users online over all processes, as this process knows them (those within the grace
    /// period after their last close included, as `GET /presence` shows them).
    pub fn online_users(&self) -> usize {
        self.presence.online.load(Ordering::Relaxed)
    }

    /// Frames handed to socket queues so far.
    pub fn frames_queued(&self) -> u64 {
        self.hub.delivered.load(Ordering::Relaxed)
    }

    /// Message sends waiting for a send writer.
    pub fn send_queue_depth(&self) -> usize {
        self.sends.depth()
    }

    /// Whether the LISTEN connection is up.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// `user_id` is typing in `chat_id`: tells `others` (the chat's other members) here, and
    /// the other processes by a hint that names the chat.
    pub fn typing(&self, chat_id: i64, user_id: i64, others: &[i64]) {
        self.notifier.typing(chat_id, user_id);
        self.hub
            .send_ephemeral(others, FrameType::Typing, typing_frame(chat_id, user_id));
    }

    /// The user's latest seq (0 before their first event).
    pub async fn latest_seq(&self, user_id: i64) -> StoreResult<i64> {
        let client = self.pool.get().await?;
        log::latest_seq(&client, user_id).await
    }

    /// Up to `limit` logged events of `user_id` after `since` (see `store::events::read_since`).
    pub async fn read_since(
        &self,
        user_id: i64,
        since: i64,
        limit: i64,
    ) -> StoreResult<(Vec<Stored>, bool)> {
        let client = self.pool.get().await?;
        log::read_since(&client, user_id, since, limit).await
    }

    /// From here on hints may be lost: readiness goes, and tokens are refused until the
    /// revocation set is reloaded.
    fn mark_down(&self) {
        self.revoked.set_current(false);
        self.listening.store(false, Ordering::Relaxed);
    }
}

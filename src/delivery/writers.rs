//! Group commit of message sends: `POST /chats/{id}/messages` queues its send here, and a
//! writer task commits every send queued meanwhile in one statement and one transaction
//! (`rtchat_send_messages` in schema.sql).
//!
//! Why: a durable commit waits for one WAL flush (milliseconds on an ordinary disk), and a
//! transaction costs PostgreSQL fixed CPU of its own (snapshot, commit record, the function
//! call), so one send per transaction caps sends at a few thousand a second on two cores.
//! A batch shares the flush, the round trip, the counter bump of a user who gets several of
//! its messages, and one hint to the other processes. Batches form by themselves: while a
//! writer waits on PostgreSQL, sends pile up in the queue and the next batch takes them all,
//! so a quiet server still commits each send at once, alone.
//!
//! What a send may rely on is unchanged: messages of a chat get ids in the order their sends
//! were taken from the queue, every member's seq follows that order, and a repeated
//! `client_id` (in an earlier batch or the same one) answers the original.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;

use super::Delivery;
use crate::metrics::Stamp;
use crate::store::events::Outbox;
use crate::store::sends::{self as store, NewMessage, Sent};
use crate::store::StoreError;

/// Sends waiting for the writers, split among their queues. Bounded so that a stalled
/// database backs sends up into their handlers (each waits for room, holding only its own
/// connection) instead of into memory: 4,096 sends of at most 4 KiB of text is at most
/// 16 MiB, ~30 full batches.
pub const SEND_QUEUE: usize = 4096;

/// Most sends in one transaction. Bounds how long one batch holds its chat and user locks
/// and how big it gets (a message to a 1,000-member chat writes 1,000 log rows); a batch of
/// 128 small sends already takes several times the flush it shares, so more buys nothing.
pub const MAX_BATCH: usize = 128;

/// Why a send got no outcome of its own.
#[derive(Debug)]
pub enum SendError {
    /// The batch failed (nothing of it was written, or for `Unavailable` the outcome is
    /// unknown and a retry with the same `client_id` tells).
    Store(StoreError),
    /// The writers are stopping with the server.
    ShuttingDown,
}

pub(super) struct Queued {
    message: NewMessage,
    reply: oneshot::Sender<Result<Sent, StoreError>>,
}

/// The handlers' end of the queues: one queue per writer, and a chat's sends always go to
/// the same one.
pub(super) struct SendQueue {
    queues: Vec<mpsc::Sender<Queued>>,
    /// The writers' ends. Outside the writer tasks, so that a writer that dies leaves its
    /// queue, and the sends in it, to the one that replaces it.
    receivers: Vec<Arc<Mutex<mpsc::Receiver<Queued>>>>,
}

impl SendQueue {
    /// Queues for `writers` writer tasks.
    pub(super) fn new(writers: usize) -> SendQueue {
        let (queues, receivers) = (0..writers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(SEND_QUEUE / writers.max(1));
                (tx, Arc::new(Mutex::new(rx)))
            })
            .unzip();
        SendQueue { queues, receivers }
    }

    /// Sends waiting in the queues (not yet taken by a writer).
    pub(super) fn depth(&self) -> usize {
        self.queues
            .iter()
            .map(|q| q.max_capacity() - q.capacity())
            .sum()
    }

    /// The writers' ends of the queues, one per writer task.
    pub(super) fn receivers(&self) -> Vec<Arc<Mutex<mpsc::Receiver<Queued>>>> {
        self.receivers.clone()
    }

    /// Closes the queues once their writers are stopped: the sends still queued, and any
    /// sent from now on, answer `ShuttingDown` (the writers' ends outlive the writers, so
    /// without this they would wait for ever).
    pub(super) async fn close(&self) {
        for receiver in &self.receivers {
            // Free once the stopped writer's task is dropped.
            let mut rx = receiver.lock().await;
            rx.close();
            while rx.try_recv().is_ok() {}
        }
    }

    /// Queues `message` and waits until its batch committed (or failed: then nothing of it
    /// was written, or the outcome is unknown and a retry with the same `client_id` tells).
    /// A writer that died with the batch answers `Unavailable` unless the writers are
    /// stopping (`stopped`).
    pub(super) async fn send(
        &self,
        message: NewMessage,
        stopped: &CancellationToken,
    ) -> Result<Sent, SendError> {
        let (reply, answer) = oneshot::channel();
        let queue = &self.queues[message.chat_id.unsigned_abs() as usize % self.queues.len()];
        queue
            .send(Queued { message, reply })
            .await
            .map_err(|_| SendError::ShuttingDown)?;
        match answer.await {
            Ok(outcome) => outcome.map_err(SendError::Store),
            Err(_) if stopped.is_cancelled() => Err(SendError::ShuttingDown),
            Err(_) => Err(SendError::Store(StoreError::Unavailable(
                "the send writer failed with this batch; retry with the same client_id".into(),
            ))),
        }
    }
}

/// One writer: takes whatever is queued (up to a batch) and commits it. Chats are split
/// among the writers by id, so batches of different writers share no chat; they may share
/// users (a user in chats of both), and then one waits for the other's commit. Both take
/// locks in one order (chats ascending, then users ascending), so they never deadlock.
/// Supervised (`supervise`): a writer that dies is replaced on the same queue.
pub(super) async fn run(state: Arc<Delivery>, queue: Arc<Mutex<mpsc::Receiver<Queued>>>) {
    // Held for the writer's life; a panic releases it with the receiver intact.
    let mut rx = queue.lock().await;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // Whatever is queued, at least one send.
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return; // every handle dropped
        }
        if state.faults.take_writer_panic() {
            panic!("injected send writer failure (a test)");
        }
        let (messages, replies): (Vec<NewMessage>, Vec<_>) =
            batch.drain(..).map(|q| (q.message, q.reply)).unzip();
        state.metrics.batch(messages.len());
        // The committed events of the batch, handed to the sockets after the replies: the
        // senders' HTTP answers do not wait for a large chat's fan-out.
        let mut committed = Vec::new();
        let outcomes = match write(&state, &messages).await {
            // A failure that is not the database going away may be one send's doing: each
            // send then goes alone, so one cannot fail the others.
            Err(StoreError::Bug(why)) if messages.len() > 1 => {
                tracing::warn!(error = %why, sends = messages.len(), "a batch failed: sending one by one");
                let mut outcomes = Vec::with_capacity(messages.len());
                for message in &messages {
                    outcomes.push(match write(&state, std::slice::from_ref(message)).await {
                        Ok((mut sent, events)) => {
                            committed.extend(events);
                            sent.remove(0)
                        }
                        Err(e) => Err(e),
                    });
                }
                outcomes
            }
            Err(e) => {
                let why = format!("{e:?}");
                messages.iter().map(|_| Err(copy_error(&e, &why))).collect()
            }
            Ok((sent, events)) => {
                committed = events;
                sent
            }
        };
        // Right after the commit (the last one, when the sends went one by one).
        let committed_at = Stamp::now();
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome); // the client may have gone: fine
        }
        // This writer's batches reach the hub in commit order.
        state.publish(Outbox::from_committed(committed), committed_at);
    }
}

/// The same failure for every send of a failed batch: 503 stays 503 (retry), anything else
/// is a 500 whose cause is logged once per request.
fn copy_error(e: &StoreError, why: &str) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        _ => StoreError::Bug(why.to_string()),
    }
}

/// Commits one batch (see `store::sends::send_messages`).
async fn write(
    state: &Delivery,
    messages: &[NewMessage],
) -> Result<
    (
        Vec<Result<Sent, StoreError>>,
        Vec<crate::store::events::Appended>,
    ),
    StoreError,
> {
    let client = state.pool.get().await?;
    store::send_messages(&client, messages).await
}

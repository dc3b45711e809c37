//! Group commit of message sends: `POST /chats/{id}/messages` queues its send here, and a
//! writer task commits every send queued meanwhile in one statement and one transaction
//! (`rtchat_send_messages` in schema.sql).
//!
//! Why: a durable commit waits for one WAL flush (3.3 ms on the disk this was measured on),
//! and a transaction costs PostgreSQL fixed CPU of its own (snapshot, commit record, the
//! function call); one send per transaction topped out at ~2,500 sends/s on two cores.
//! A batch shares the flush, the round trip, the counter bump of a user who gets several of
//! its messages, and one hint to the other processes. Batches form by themselves: while a
//! writer waits on PostgreSQL, sends pile up in the queue and the next batch takes them all,
//! so a quiet server still commits each send at once, alone.
//!
//! What a send may rely on is unchanged: messages of a chat get ids in the order their sends
//! were taken from the queue, every member's seq follows that order, and a repeated
//! `client_id` (in an earlier batch or the same one) answers the original.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::events::{Appended, EventType, Outbox};
use crate::state::AppState;

/// Sends waiting for the writers, split among their queues. Bounded so that a stalled
/// database backs sends up into their handlers (each waits for room, holding only its own
/// connection) instead of into memory: 4,096 sends of at most 4 KiB of text is at most
/// 16 MiB, ~30 full batches.
pub const SEND_QUEUE: usize = 4096;

/// Most sends in one transaction. Bounds how long one batch holds its chat and user locks
/// and how big it gets (a message to a 1,000-member chat writes 1,000 log rows); at 128 a
/// batch of 2-member sends runs ~15 ms in PostgreSQL, well past the flush it shares.
pub const MAX_BATCH: usize = 128;

/// One send as the handler validated it.
#[derive(Debug)]
pub struct NewMessage {
    pub chat_id: i64,
    pub sender_id: i64,
    pub text: String,
    pub client_id: Option<String>,
}

/// How a send ended.
#[derive(Debug)]
pub enum Sent {
    /// A new message; its `new_message` event is committed and handed to the sockets.
    Created { id: i64, created_at: DateTime<Utc> },
    /// This sender sent this `client_id` to this chat before: the original's id.
    Repeat(i64),
    /// The chat does not exist or the sender is not a member.
    NotFound,
    /// The chat is inactive.
    Inactive,
}

struct Queued {
    message: NewMessage,
    reply: oneshot::Sender<Result<Sent, ApiError>>,
}

/// The handlers' end of the queues: one queue per writer, and a chat's sends always go to
/// the same one.
pub struct SendQueue {
    queues: Vec<mpsc::Sender<Queued>>,
    /// The writers' ends; taken once by `spawn_writers`.
    writers: std::sync::Mutex<Vec<mpsc::Receiver<Queued>>>,
}

impl SendQueue {
    /// Queues for `writers` writer tasks.
    pub fn new(writers: usize) -> SendQueue {
        let (queues, receivers) = (0..writers.max(1))
            .map(|_| mpsc::channel(SEND_QUEUE / writers.max(1)))
            .unzip();
        SendQueue {
            queues,
            writers: std::sync::Mutex::new(receivers),
        }
    }

    /// Queues `message` and waits until its batch committed (or failed: then nothing of it
    /// was written, or the outcome is unknown and a retry with the same `client_id` tells).
    pub async fn send(&self, message: NewMessage) -> Result<Sent, ApiError> {
        let (reply, answer) = oneshot::channel();
        let queue = &self.queues[message.chat_id.unsigned_abs() as usize % self.queues.len()];
        queue
            .send(Queued { message, reply })
            .await
            .map_err(|_| ApiError::ShuttingDown)?;
        answer.await.map_err(|_| ApiError::ShuttingDown)?
    }
}

/// Starts the writer tasks, one per queue. Chats are split among them by id, so batches of
/// different writers share no chat; they may share users (a user in chats of both), and then
/// one waits for the other's commit. Both take locks in one order (chats ascending, then
/// users ascending), so they never deadlock. Abort the writers only after the HTTP requests
/// drained: a handler waiting for its batch answers 503 once they are gone.
pub fn spawn_writers(state: &Arc<AppState>) -> Vec<tokio::task::JoinHandle<()>> {
    let receivers = std::mem::take(
        &mut *state
            .sends
            .writers
            .lock()
            .expect("send queue lock poisoned"),
    );
    assert!(!receivers.is_empty(), "the writers are started once");
    receivers
        .into_iter()
        .map(|rx| tokio::spawn(run_writer(state.clone(), rx)))
        .collect()
}

async fn run_writer(state: Arc<AppState>, mut rx: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // Whatever is queued, at least one send.
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return; // every handle dropped
        }
        let (messages, replies): (Vec<NewMessage>, Vec<_>) =
            batch.drain(..).map(|q| (q.message, q.reply)).unzip();
        // The committed events of the batch, handed to the sockets after the replies: the
        // senders' HTTP answers do not wait for a large chat's fan-out.
        let mut committed = Vec::new();
        let outcomes = match write(&state, &messages).await {
            // A failure that is not the database going away may be one send's doing: each
            // send then goes alone, so one cannot fail the others.
            Err(ApiError::Internal(why)) if messages.len() > 1 => {
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
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome); // the client may have gone: fine
        }
        // This writer's batches reach the hub in commit order.
        state.publish(Outbox::from_committed(committed));
    }
}

/// The same failure for every send of a failed batch: 503 stays 503 (retry), anything else
/// is a 500 whose cause is logged once per request.
fn copy_error(e: &ApiError, why: &str) -> ApiError {
    match e {
        ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
        _ => ApiError::Internal(why.to_string()),
    }
}

/// Commits one batch; returns each send's outcome in the batch's order, and the committed
/// events for the hub. An `Err` means the statement failed, so nothing of the batch was
/// written (or, for `Unavailable`, the connection broke and the outcome is unknown).
async fn write(
    state: &AppState,
    messages: &[NewMessage],
) -> Result<(Vec<Result<Sent, ApiError>>, Vec<Appended>), ApiError> {
    let chats: Vec<i64> = messages.iter().map(|m| m.chat_id).collect();
    let senders: Vec<i64> = messages.iter().map(|m| m.sender_id).collect();
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    let client_ids: Vec<Option<&str>> = messages.iter().map(|m| m.client_id.as_deref()).collect();

    let client = state.db().await?;
    let statement = client
        .prepare_cached(
            "SELECT ord, status, message_id, created_at, payload, users, seqs
             FROM rtchat_send_messages($1, $2, $3, $4)",
        )
        .await?;
    let rows = client
        .query(&statement, &[&chats, &senders, &texts, &client_ids])
        .await?;
    drop(client);

    // Committed: from here on nothing may fail the batch (a retry would send it twice). A
    // send the function did not answer, which it always does, gets a 500 of its own.
    let mut outcomes: Vec<Result<Sent, ApiError>> = messages
        .iter()
        .map(|_| {
            Err(ApiError::Internal(
                "rtchat_send_messages did not answer this send".into(),
            ))
        })
        .collect();
    let mut appended = Vec::new();
    for row in &rows {
        let Some(slot) = usize::try_from(row.get::<_, i32>(0) - 1)
            .ok()
            .and_then(|i| outcomes.get_mut(i))
        else {
            continue;
        };
        *slot = Ok(match row.get::<_, &str>(1) {
            "created" => {
                let users: Vec<i64> = row.get(5);
                let seqs: Vec<i64> = row.get(6);
                appended.push(Appended {
                    kind: EventType::NewMessage.as_str(),
                    payload: row.get::<_, &str>(4).into(),
                    deliveries: users.into_iter().zip(seqs).collect(),
                });
                Sent::Created {
                    id: row.get(2),
                    created_at: row.get(3),
                }
            }
            "repeat" => Sent::Repeat(row.get(2)),
            "inactive" => Sent::Inactive,
            _ => Sent::NotFound,
        });
    }
    Ok((outcomes, appended))
}

//! The durable per-user event log: appending events inside the writing transaction, and
//! reading them back for replay (`since`) and `GET /events`.
//!
//! # How `seq` stays consecutive and in commit order
//!
//! Every user row carries `last_seq`, the seq of the last event appended for that user.
//! Appending an event for recipients R, inside the transaction that makes the change:
//!
//! 1. locks the rows of R in ascending id order (`SELECT ... ORDER BY id FOR NO KEY UPDATE`),
//! 2. bumps each `last_seq` by one and writes `user_events(user_id, seq, event_id)` rows,
//!    pointing at one `events` row holding the payload serialised once.
//!
//! The row lock is held until commit, so a second transaction appending for the same user
//! waits, then reads the committed `last_seq`: seqs are handed out in commit order, and a
//! rolled-back transaction gives its seq back. A reader therefore only ever sees a prefix
//! 1..N of a user's log, never a gap that fills in later (the flaw of sequence-based logs).
//! Locks are always taken in the same order (the chat row first, where a chat is involved,
//! then users by ascending id), so concurrent writers cannot deadlock.

use std::sync::Arc;

use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::error::ApiError;

/// The durable event types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    CreateChat,
    UpdateChat,
    DeleteChat,
    NewMessage,
    UpdateMessage,
    DeleteMessage,
    Read,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CreateChat => "create_chat",
            EventType::UpdateChat => "update_chat",
            EventType::DeleteChat => "delete_chat",
            EventType::NewMessage => "new_message",
            EventType::UpdateMessage => "update_message",
            EventType::DeleteMessage => "delete_message",
            EventType::Read => "read",
        }
    }
}

/// One appended event: its type, its payload JSON (serialised once) and the seq it got for
/// each recipient.
#[derive(Debug, Clone)]
pub struct Appended {
    pub kind: &'static str,
    pub payload: Arc<str>,
    /// `(user_id, seq)` for every recipient.
    pub deliveries: Vec<(i64, i64)>,
}

/// The events a transaction appended, to hand to the hub once it has committed.
#[derive(Debug, Default)]
pub struct Outbox {
    pub events: Vec<Appended>,
}

/// Appends one event for `recipients` inside the caller's transaction.
///
/// `client` must be a transaction: the row locks taken here are what keep seqs in commit
/// order, and they last until that transaction ends.
pub async fn append(
    client: &impl GenericClient,
    outbox: &mut Outbox,
    kind: EventType,
    recipients: &[i64],
    payload: &impl Serialize,
) -> Result<(), ApiError> {
    if recipients.is_empty() {
        return Ok(());
    }
    let payload: Arc<str> = serde_json::to_string(payload)
        .map_err(|e| ApiError::Internal(format!("event payload: {e}")))?
        .into();
    let statement = client
        .prepare_cached(
            "WITH locked AS (
                 SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE
             ), bumped AS (
                 UPDATE users u SET last_seq = u.last_seq + 1
                 FROM locked WHERE u.id = locked.id
                 RETURNING u.id, u.last_seq
             ), event AS (
                 INSERT INTO events (type, payload) VALUES ($2, $3) RETURNING id
             )
             INSERT INTO user_events (user_id, seq, event_id)
             SELECT bumped.id, bumped.last_seq, event.id FROM bumped, event
             RETURNING user_id, seq",
        )
        .await?;
    let rows = client
        .query(&statement, &[&recipients, &kind.as_str(), &&*payload])
        .await?;
    let deliveries = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    outbox.events.push(Appended {
        kind: kind.as_str(),
        payload,
        deliveries,
    });
    Ok(())
}

/// The text of a durable frame: `{"type": ..., "seq": N, "payload": {...}}`.
pub fn frame(kind: &str, seq: i64, payload: &str) -> String {
    format!(r#"{{"type":"{kind}","seq":{seq},"payload":{payload}}}"#)
}

/// One stored event of a user, as its frame text.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: i64,
    pub frame: String,
}

/// The user's latest seq (0 before their first event).
pub async fn latest_seq(client: &impl GenericClient, user_id: i64) -> Result<i64, ApiError> {
    let statement = client
        .prepare_cached("SELECT last_seq FROM users WHERE id = $1")
        .await?;
    let row = client.query_opt(&statement, &[&user_id]).await?;
    Ok(row.map(|r| r.get(0)).unwrap_or(0))
}

/// Up to `limit` events of `user_id` with seq > `since`, ascending, and whether more follow.
/// `ResyncRequired` when events after `since` were pruned by retention.
pub async fn read_since(
    client: &impl GenericClient,
    user_id: i64,
    since: i64,
    limit: i64,
) -> Result<(Vec<Stored>, bool), ApiError> {
    let statement = client
        .prepare_cached(
            "SELECT ue.seq, e.type, e.payload
             FROM user_events ue JOIN events e ON e.id = ue.event_id
             WHERE ue.user_id = $1 AND ue.seq > $2
             ORDER BY ue.seq
             LIMIT $3",
        )
        .await?;
    let rows = client
        .query(&statement, &[&user_id, &since, &(limit + 1)])
        .await?;
    let has_more = rows.len() as i64 > limit;
    let events: Vec<Stored> = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            let seq: i64 = r.get(0);
            let kind: &str = r.get(1);
            let payload: &str = r.get(2);
            Stored {
                seq,
                frame: frame(kind, seq, payload),
            }
        })
        .collect();
    // The log is a prefix 1..last_seq minus what retention pruned from its start: if the
    // first event after `since` is not the one numbered since+1, it was pruned.
    match events.first() {
        Some(first) if first.seq != since + 1 => Err(ApiError::ResyncRequired),
        None if latest_seq(client, user_id).await? > since => Err(ApiError::ResyncRequired),
        _ => Ok((events, has_more)),
    }
}

/// Deletes events older than `retention`; returns how many per-user rows went.
pub async fn prune(
    client: &impl GenericClient,
    retention: std::time::Duration,
) -> Result<u64, ApiError> {
    let seconds = retention.as_secs_f64();
    let statement = client
        .prepare_cached(
            "DELETE FROM user_events WHERE created_at < now() - make_interval(secs => $1)",
        )
        .await?;
    let pruned = client.execute(&statement, &[&seconds]).await?;
    let statement = client
        .prepare_cached("DELETE FROM events WHERE created_at < now() - make_interval(secs => $1)")
        .await?;
    client.execute(&statement, &[&seconds]).await?;
    Ok(pruned)
}

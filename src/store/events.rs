//! The durable per-user event log: appending events inside the writing transaction, reading
//! them back for replay (`since`) and `GET /events`, pruning, and the reads and NOTIFY of
//! the cross-process wake-ups (`delivery`).
//!
//! # How `seq` stays consecutive and in commit order
//!
//! Every user row carries `last_seq`, the seq of the last event appended for that user.
//! Appending an event for recipients R, inside the transaction that makes the change:
//!
//! 1. inserts the event body once into `events` (the payload serialised once),
//! 2. locks the recipients' rows in ascending id order with one statement
//!    (`SELECT ... ORDER BY id FOR NO KEY UPDATE`, run to its end), then bumps every
//!    `last_seq` with one set-based UPDATE and writes `user_events(user_id, seq, event_id)`.
//!
//! All of it happens in one call of `rtchat_append_events` (schema.sql), made by
//! `Outbox::write` for all the events of a transaction at once just before it commits, and
//! by `rtchat_send_messages` for a batch of sends. (A first version locked and updated in
//! one statement, a CTE feeding the UPDATE, so locking and updating interleaved in the
//! UPDATE's own row order; the property test caught it deadlocking. Locking in a statement
//! of its own first, then updating rows already held, cannot; a 20 s pgbench of 10 clients
//! mixing batches and appends over overlapping users saw none. A second version bumped one
//! row per statement, which made the counters most of a large chat's database time.)
//!
//! The row lock is held until commit, so a second transaction appending for the same user
//! waits, then reads the committed `last_seq`: seqs are handed out in commit order, and a
//! rolled-back transaction gives its seq back. A reader therefore only ever sees a prefix
//! 1..N of a user's log, never a gap that fills in later (the flaw of sequence-based logs).
//! Locks are always taken in the same order (chat rows first, by ascending id, where chats
//! are involved, then users by ascending id), so concurrent writers cannot deadlock.

use std::sync::Arc;

use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::{StoreError, StoreResult};
use crate::metrics::FrameType;

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
    Reaction,
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
            EventType::Reaction => "reaction",
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

/// The events of one transaction: staged with `add` while it runs, written to the log by
/// `write` just before commit (one round trip for all of them), handed to the hub after.
#[derive(Debug, Default)]
pub struct Outbox {
    staged: Vec<(EventType, Vec<i64>, Arc<str>)>,
    /// Filled by `write`: what the hub delivers once the transaction committed.
    pub events: Vec<Appended>,
}

impl Outbox {
    /// Stages an event for `recipients` (no database work yet).
    pub fn add(
        &mut self,
        kind: EventType,
        recipients: &[i64],
        payload: &impl Serialize,
    ) -> StoreResult<()> {
        if recipients.is_empty() {
            return Ok(());
        }
        let payload: Arc<str> = serde_json::to_string(payload)
            .map_err(|e| StoreError::Bug(format!("event payload: {e}")))?
            .into();
        self.staged.push((kind, recipients.to_vec(), payload));
        Ok(())
    }

    /// An outbox for events a database function already appended and committed.
    pub fn from_committed(events: Vec<Appended>) -> Outbox {
        Outbox {
            staged: Vec::new(),
            events,
        }
    }

    /// Appends the staged events to the log inside the caller's transaction.
    ///
    /// `client` must be that transaction: the counter row locks taken here are what keep
    /// seqs in commit order, and they last until it ends.
    pub async fn write(&mut self, client: &impl GenericClient) -> StoreResult<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let types: Vec<&str> = self.staged.iter().map(|(k, _, _)| k.as_str()).collect();
        let payloads: Vec<&str> = self.staged.iter().map(|(_, _, p)| &**p).collect();
        let mut users = Vec::new();
        let mut event_index = Vec::new();
        for (i, (_, recipients, _)) in self.staged.iter().enumerate() {
            users.extend_from_slice(recipients);
            event_index.extend(std::iter::repeat_n(i as i32 + 1, recipients.len()));
        }
        let statement = client
            .prepare_cached(
                "SELECT user_id, seq, event_index FROM rtchat_append_events($1, $2, $3, $4)",
            )
            .await?;
        let rows = client
            .query(&statement, &[&types, &payloads, &users, &event_index])
            .await?;
        let mut events: Vec<Appended> = self
            .staged
            .drain(..)
            .map(|(kind, _, payload)| Appended {
                kind: kind.as_str(),
                payload,
                deliveries: Vec::new(),
            })
            .collect();
        for row in rows {
            let index: i32 = row.get(2);
            let event = events
                .get_mut((index as usize).wrapping_sub(1))
                .ok_or_else(|| StoreError::Bug(format!("event index {index} out of range")))?;
            event.deliveries.push((row.get(0), row.get(1)));
        }
        self.events.extend(events);
        Ok(())
    }
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
    /// Its type, for the count of frames sent by type.
    pub kind: FrameType,
}

/// The user's latest seq (0 before their first event).
pub async fn latest_seq(client: &impl GenericClient, user_id: i64) -> StoreResult<i64> {
    let statement = client
        .prepare_cached("SELECT last_seq FROM users WHERE id = $1")
        .await?;
    let row = client.query_opt(&statement, &[&user_id]).await?;
    Ok(row.map(|r| r.get(0)).unwrap_or(0))
}

/// Up to `limit` events of `user_id` with seq > `since`, ascending, and whether more follow.
/// `ResyncRequired` (with the user's latest seq) when any event after `since` is missing
/// (pruned by retention, or deleted by hand), or `since` is ahead of the log.
pub async fn read_since(
    client: &impl GenericClient,
    user_id: i64,
    since: i64,
    limit: i64,
) -> StoreResult<(Vec<Stored>, bool)> {
    // One statement, so the user's last_seq and the events come from one snapshot: with two,
    // an event committed between them would look like a pruned one.
    let statement = client
        .prepare_cached(
            "SELECT u.last_seq, ev.seq, ev.type, ev.payload
             FROM users u
             LEFT JOIN LATERAL (
                 SELECT ue.seq, e.type, e.payload
                 FROM user_events ue JOIN events e ON e.id = ue.event_id
                 WHERE ue.user_id = u.id AND ue.seq > $2
                 ORDER BY ue.seq
                 LIMIT $3
             ) ev ON true
             WHERE u.id = $1
             ORDER BY ev.seq",
        )
        .await?;
    let rows = client
        .query(&statement, &[&user_id, &since, &(limit + 1)])
        .await?;
    let last_seq: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
    let has_more = rows.len() as i64 > limit;
    let events: Vec<Stored> = rows
        .iter()
        .take(limit as usize)
        .filter_map(|r| {
            let seq: i64 = r.get::<_, Option<i64>>(1)?;
            let kind: &str = r.get(2);
            let payload: &str = r.get(3);
            Some(Stored {
                seq,
                frame: frame(kind, seq, payload),
                kind: FrameType::of_event(kind),
            })
        })
        .collect();
    // The log is 1..last_seq minus what retention pruned from its start, and a reader sees
    // it as of one snapshot: the page must be since+1, since+2, ... with no seq missing, and
    // a last page must end at last_seq. Anything else is a hole (retention pruning `events`
    // and `user_events` apart, rows deleted by hand) and is never skipped silently.
    let consecutive = events
        .iter()
        .zip(since + 1..)
        .all(|(event, expected)| event.seq == expected);
    let complete = has_more || since + events.len() as i64 == last_seq;
    if !consecutive || !complete {
        return Err(StoreError::ResyncRequired { seq: last_seq });
    }
    Ok((events, has_more))
}

/// Rows deleted per statement by `prune`.
const PRUNE_BATCH: u64 = 10_000;

/// Deletes events older than `retention`; returns how many per-user rows went.
pub async fn prune(
    client: &impl GenericClient,
    retention: std::time::Duration,
) -> StoreResult<u64> {
    let seconds = retention.as_secs_f64();
    let mut pruned = 0;
    // One cutoff for both tables (each batch's own now() would move it between them). An
    // event's row is written before its user_events rows, so nothing kept points at an
    // event older than the cutoff except from the same transaction; a hole that leaves
    // anyway is caught by `read_since`.
    let cutoff: std::time::SystemTime = client
        .query_one(
            "SELECT now() - make_interval(secs => $1::float8)",
            &[&seconds],
        )
        .await?
        .get(0);
    // In batches, so retention never holds long locks or builds one huge transaction.
    for table in ["user_events", "events"] {
        let statement = client
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM {table}
                     WHERE created_at < $1
                     LIMIT {PRUNE_BATCH}))"
            ))
            .await?;
        loop {
            let n = client.execute(&statement, &[&cutoff]).await?;
            if table == "user_events" {
                pruned += n;
            }
            if n < PRUNE_BATCH {
                break;
            }
        }
    }
    Ok(pruned)
}

/// Reads, for each `(user, after, upto)` of a batch of hints, the user's events in
/// `after+1..=upto`: one row per event with the hinted users that have it and their seqs, so
/// the payload crosses the wire and is decoded once, not once per recipient. `each` gets
/// `(type, payload, users, seqs)` of every event.
pub async fn hinted_events(
    client: &impl GenericClient,
    users: &[i64],
    afters: &[i64],
    uptos: &[i64],
    mut each: impl FnMut(&str, &str, Vec<i64>, Vec<i64>),
) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "SELECT e.type, e.payload, array_agg(ue.user_id), array_agg(ue.seq)
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS w(user_id, after, upto)
             JOIN user_events ue ON ue.user_id = w.user_id AND ue.seq > w.after AND ue.seq <= w.upto
             JOIN events e ON e.id = ue.event_id
             GROUP BY e.id",
        )
        .await?;
    let rows = client.query(&statement, &[&users, &afters, &uptos]).await?;
    for row in &rows {
        each(row.get(0), row.get(1), row.get(2), row.get(3));
    }
    Ok(())
}

/// `(user, last_seq)` of these users (the sweep's reading of where their logs stand).
pub async fn last_seqs(client: &impl GenericClient, users: &[i64]) -> StoreResult<Vec<(i64, i64)>> {
    let statement = client
        .prepare_cached("SELECT id, last_seq FROM users WHERE id = ANY($1)")
        .await?;
    let rows = client.query(&statement, &[&users]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The members of each of these chats, for typing hints from other processes (which name
/// the chat, not its members).
pub async fn members_of_chats(
    client: &impl GenericClient,
    chats: &[i64],
) -> StoreResult<std::collections::HashMap<i64, Vec<i64>>> {
    let statement = client
        .prepare_cached(
            "SELECT chat_id, array_agg(user_id) FROM chat_members
             WHERE chat_id = ANY($1) GROUP BY chat_id",
        )
        .await?;
    let rows = client.query(&statement, &[&chats]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Sends one hint to the other processes on `channel`. In its own statement, outside any
/// writing transaction: a NOTIFY in one would take PostgreSQL's instance-wide notify lock at
/// every commit.
pub async fn notify(client: &impl GenericClient, channel: &str, payload: &str) -> StoreResult<()> {
    let statement = client.prepare_cached("SELECT pg_notify($1, $2)").await?;
    client.execute(&statement, &[&channel, &payload]).await?;
    Ok(())
}
